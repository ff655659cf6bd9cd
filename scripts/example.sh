#!/bin/bash
# The README's main job, end to end: mount the example chunk set
# examples/bert-tiny (the streaming_weights chunker's layout) read-only with
# chunkfs, list it, check every byte read through the mount against
# examples/bert-tiny.sha256, then load it through the mount the way the chunk
# library does (scripts/load-example.py: chunk_info.json first, then each chunk
# in manifest order: exists, read, torch.load of the bytes) and check every
# tensor against examples/bert-tiny.tensors.json.  Without torch the chunks are
# still read and checked as bytes and the script says torch.load was skipped.
# Always unmounts and removes its temp mountpoint, also on failure or Ctrl-C.
# Exit status 0 only if everything matched.
#
#   scripts/example.sh            (builds ./chunkfs with make if it is missing)
#   CHUNKFS=/usr/local/bin/chunkfs scripts/example.sh     (use another binary)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STORE=$REPO/examples/bert-tiny
SUMS=$REPO/examples/bert-tiny.sha256
TENSORS=$REPO/examples/bert-tiny.tensors.json
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
if [ ! -f "$SUMS" ] || [ ! -f "$TENSORS" ] || [ ! -f "$STORE/chunk_info.json" ]; then
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

echo "== loading it as the chunk library does: chunk_info.json, then each chunk (exists, read, torch.load)"
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	echo "   (no torch in $PYTHON: the chunks are read and checked byte for byte, but torch.load is"
	echo "    skipped; apt-get install python3-torch, or scripts/install-deps.sh test, adds it)"
fi
"$PYTHON" "$REPO/scripts/load-example.py" "$MNT" --sums "$SUMS" --tensors "$TENSORS" ||
	fail "loading the chunks through the mount failed"

echo "OK: chunkfs served examples/bert-tiny read-only: $nfiles files match bert-tiny.sha256," \
	"and the chunks load through the mount in the library's order"
