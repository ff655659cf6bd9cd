#!/bin/bash
# The README's main job, end to end: mount the example chunk store
# examples/bert-tiny read-only with chunkfs, list it, and check every byte read
# through the mount against examples/bert-tiny.sha256 and the store's own
# manifest chunk_info.json.  Always unmounts and removes its temp mountpoint,
# also on failure or Ctrl-C.  Exit status 0 only if everything matched.
#
#   scripts/example.sh            (builds ./chunkfs with make if it is missing)
#   CHUNKFS=/usr/local/bin/chunkfs scripts/example.sh     (use another binary)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STORE=$REPO/examples/bert-tiny
SUMS=$REPO/examples/bert-tiny.sha256
PYTHON=/usr/bin/python3 # not a pyenv shim (see TESTING.md)
MNT=

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	cd / # never keep the mount busy ourselves
	if [ -n "$MNT" ]; then
		if mountpoint -q "$MNT" 2>/dev/null; then
			local _
			for _ in 1 2 3 4 5; do
				fusermount3 -u "$MNT" 2>/dev/null && break
				sleep 0.2
			done
			if mountpoint -q "$MNT" 2>/dev/null; then
				echo "example.sh: mount still busy; lazy unmount (fusermount3 -uz)" >&2
				fusermount3 -uz "$MNT" || true
			fi
		fi
		rmdir "$MNT" 2>/dev/null || echo "example.sh: could not remove $MNT" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${CHUNKFS:-}" ]; then
	command -v "$CHUNKFS" >/dev/null || fail "CHUNKFS=$CHUNKFS is not an executable"
else
	CHUNKFS=$REPO/chunkfs
	if [ ! -x "$CHUNKFS" ]; then
		echo "== building chunkfs (make)"
		make -C "$REPO" chunkfs >&2 || fail "make failed (scripts/install-deps.sh build installs what it needs)"
	fi
fi
if [ ! -f "$SUMS" ] || [ ! -f "$STORE/chunk_info.json" ]; then
	fail "example store missing under $REPO/examples"
fi
command -v fusermount3 >/dev/null || fail "fusermount3 not found (apt-get install fuse3)"
[ -x "$PYTHON" ] || fail "$PYTHON not found (apt-get install python3)"

MNT=$(mktemp -d "${TMPDIR:-/tmp}/chunkfs-example.XXXXXX")

echo "== mounting $STORE on $MNT (read-only)"
"$CHUNKFS" "$STORE" "$MNT" -o ro || fail "$CHUNKFS exited with status $?"
# chunkfs daemonizes once the mount is up; give a slow start a few seconds.
for _ in $(seq 50); do
	mountpoint -q "$MNT" && break
	sleep 0.1
done
mountpoint -q "$MNT" || fail "$MNT is not a mountpoint after starting chunkfs"
findmnt -n -o SOURCE,FSTYPE,OPTIONS --target "$MNT" || true

echo "== ls -l $MNT"
ls -l "$MNT"

echo "== sha256sum -c examples/bert-tiny.sha256 (cwd = mountpoint)"
nfiles=$(grep -c . "$SUMS")
(cd "$MNT" && sha256sum --strict -c "$SUMS") || fail "checksums through the mount do not match $SUMS"

echo "== chunks listed in chunk_info.json (read through the mount)"
# One line per chunk: file, size, sha256 (the manifest itself is read from the mount).
manifest=$("$PYTHON" -c '
import json, sys
m = json.load(open(sys.argv[1]))
for c in m["chunks"]:
    f = c["file"]
    if "/" in f or f in (".", "..") or not f:
        sys.exit("bad chunk file name %r" % f)
    print("%s\t%d\t%s" % (f, int(c["size"]), c["sha256"]))
print("total\t%d\t-" % int(m["total_size"]))
' "$MNT/chunk_info.json") || fail "cannot parse $MNT/chunk_info.json"

nchunks=0
total=0
bad=0
while IFS=$'\t' read -r file size sum; do
	if [ "$file" = total ]; then
		want_total=$size
		continue
	fi
	nchunks=$((nchunks + 1))
	path=$MNT/$file
	if [ ! -f "$path" ]; then
		echo "  $file: MISSING from the mount"
		bad=$((bad + 1))
		continue
	fi
	got_size=$(stat -c %s "$path")
	got_sum=$(sha256sum <"$path" | cut -d' ' -f1)
	got_len=$(wc -c <"$path") # bytes actually read, not just what stat says
	if [ "$got_size" != "$size" ] || [ "$got_len" != "$size" ] || [ "$got_sum" != "$sum" ]; then
		echo "  $file: MISMATCH size stat=$got_size read=$got_len manifest=$size sha256 $got_sum manifest $sum"
		bad=$((bad + 1))
	else
		printf '  %-16s %9d bytes  sha256 %s  ok\n' "$file" "$size" "$sum"
	fi
	total=$((total + size))
done <<<"$manifest"

[ "$nchunks" -gt 0 ] || fail "chunk_info.json lists no chunks"
[ "$bad" = 0 ] || fail "$bad of $nchunks chunks differ from chunk_info.json"
[ "$total" = "${want_total:-}" ] || fail "chunk sizes add up to $total, chunk_info.json says total_size ${want_total:-?}"

echo "OK: chunkfs served examples/bert-tiny read-only: $nfiles files match bert-tiny.sha256," \
	"$nchunks chunks ($total bytes) match chunk_info.json"
