#!/bin/bash
# Read path over S3: chunkfs side by side with s3fs, rclone and the raw server
# limit, against the test server (tests/s3) with BENCH_LATENCY_MS (20) added
# before every response, like real S3.  One run, a fresh mount for each case,
# the same objects for every peer; prints ONE markdown table:
#
#   cold seq read   dd bs=1M of the BENCH_SIZE_MB random object, fresh mount
#                   (page cache for that file dropped first), MB/s
#   warm re-read    the same dd again on the same mount, MB/s
#   4K rand IOPS    fio randread bs=4k psync 1 job, BENCH_FIO_SECONDS (20),
#                   --invalidate=1, on a fresh mount (cold caches); with the
#                   GETs and bytes the server sent meanwhile
#   4 readers       four dd bs=1M at once, each of a different BENCH_SIZE_MB
#                   object (two of them server-side copies), fresh mount:
#                   total MB/s and the daemon's VmHWM in that mount
#   ls -l           ls -l of the directory of BENCH_KEYS small keys on a fresh
#                   mount: seconds, and requests seen by the server
#   tensors         BENCH_TENSORS (50) random tensors read through
#                   numpy.memmap from a safetensors file of BENCH_SIZE_MB
#                   (same mount as ls; bytes checked against the source)
#   peak RSS        VmHWM of the daemon, max over its mounts, MiB
#
# Rows: chunkfs, s3fs, rclone --vfs-cache-mode off, rclone --vfs-cache-mode
# full, raw (curl: 8 parallel 8 MiB ranged GETs of the object, SigV4-signed),
# and tmpfs (the warm re-read reference: the same bytes read from tmpfs).
# A peer whose binary is missing is skipped with a note; a step that fails or
# times out shows as such in its cell; exit status is nonzero only when the
# setup fails.
#
# Environment:
#   BENCH_PEERS="chunkfs s3fs rclone-off rclone-full raw"  rows to measure
#   BENCH_SIZE_MB=1024      size of the random object and of the safetensors file
#   BENCH_KEYS=10000        number of small keys in the listed directory
#   BENCH_LATENCY_MS=20     latency the server adds before each response
#   BENCH_FIO_SECONDS=20    fio runtime
#   BENCH_TENSORS=50        tensors read through numpy.memmap
#   BENCH_TIMEOUT=300       bound on each timed step (seconds)
#   BENCH_LS_TIMEOUT=120    bound on ls -l (rclone HEADs every key one at a
#                           time: about 24 s per 1,000 keys at 20 ms)
#   CHUNKFS=PATH            binary (default ./chunkfs, built with make if missing)
#   CHUNKFS_OPTS=LIST       extra -o options for chunkfs (endpoint and ro are added)
#   BENCH_TMPDIR=DIR        where the objects' local copies go (default $TMPDIR or /tmp)
# Needs: node (tests/s3), curl, fio, /usr/bin/python3 with numpy; peers from
# scripts/install-deps.sh bench.  Runs as root (FUSE mounts).
set -uo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init s3_read
bench_s3_env

SIZE_MB=${BENCH_SIZE_MB:-1024}
KEYS=${BENCH_KEYS:-10000}
LAT=${BENCH_LATENCY_MS:-20}
FIO_S=${BENCH_FIO_SECONDS:-20}
NTENSORS=${BENCH_TENSORS:-50}
TO=${BENCH_TIMEOUT:-300}
LS_TO=${BENCH_LS_TIMEOUT:-120}
PEERS=${BENCH_PEERS:-chunkfs s3fs rclone-off rclone-full raw}
PY=/usr/bin/python3
BUCKET=bench
NOTES=()

note() { NOTES+=("$*"); say "note: $*"; }

case "$SIZE_MB$KEYS$LAT$FIO_S$NTENSORS$TO$LS_TO" in *[!0-9]*) die "BENCH_* sizes, counts and times must be numbers" ;; esac
[ "$SIZE_MB" -ge 16 ] || die "BENCH_SIZE_MB must be at least 16"
[ "$(id -u)" = 0 ] || say "warning: not root; FUSE mounts or page-cache drops may fail"
for t in curl node fio fusermount3 mountpoint timeout; do
	command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh bench)"
done
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || die "$PY with numpy needed (apt-get install python3-numpy)"

# --- which rows run -------------------------------------------------------
for p in $PEERS; do
	case $p in chunkfs | s3fs | rclone-off | rclone-full | raw) ;; *) die "unknown peer '$p' in BENCH_PEERS" ;; esac
done
SKIP_chunkfs= SKIP_s3fs= SKIP_rclone=
if want chunkfs; then
	if [ -n "${CHUNKFS:-}" ]; then
		command -v "$CHUNKFS" >/dev/null || SKIP_chunkfs="CHUNKFS=$CHUNKFS is not an executable"
	else
		bench_build_chunkfs || SKIP_chunkfs="make chunkfs failed"
	fi
fi
CHUNKFS_LABEL=
if want chunkfs && [ -z "$SKIP_chunkfs" ]; then
	CHUNKFS_LABEL="($(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo '?'), binary of $(date -u -r "$(command -v "$CHUNKFS")" '+%m-%d %H:%M'))"
fi
command -v s3fs >/dev/null || SKIP_s3fs="s3fs not installed (scripts/install-deps.sh bench)"
command -v rclone >/dev/null || SKIP_rclone="rclone not installed (scripts/install-deps.sh bench)"

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/chunkfs-s3bench.XXXXXX") || die "mktemp failed"
SRC=$WORK/src
mkdir -p "$SRC/small" "$WORK/mnt"
BYTES=$((SIZE_MB * 1024 * 1024))

# --- server ------------------------------------------------------------------
say "starting the test server"
bench_start_server "$BUCKET" || die "tests/s3/start.sh failed"
ctl() { curl -sS -m 30 "$@"; }
counters_json() { ctl "$S3_CONTROL/counters"; }

# --- objects (uploaded with no added latency) --------------------------------
t_setup=$(date +%s)
say "creating a ${SIZE_MB} MiB random object"
head -c "$BYTES" /dev/urandom >"$SRC/big.bin" || die "cannot write $SRC/big.bin"

cat >"$WORK/st.py" <<'PYEOF'
# safetensors writer and random-tensor reader (stdlib + numpy for reading)
import json, os, random, struct, sys, time, zlib

def write(path, size):
    H = 1024
    tensors, off = {}, 0
    def add(name, dtype, shape):
        nonlocal off
        n = {"F16": 2, "F32": 4}[dtype]
        for d in shape:
            n *= d
        tensors[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    layer = [("attn.qkv.weight", "F16", [3 * H, H]), ("attn.qkv.bias", "F16", [3 * H]),
             ("attn.out.weight", "F16", [H, H]), ("norm1.weight", "F32", [H]),
             ("mlp.up.weight", "F16", [4 * H, H]), ("mlp.down.weight", "F16", [H, 4 * H]),
             ("norm2.weight", "F32", [H])]
    per = sum({"F16": 2, "F32": 4}[d] * (s[0] * (s[1] if len(s) > 1 else 1)) for _, d, s in layer)
    i = 0
    while off + per <= size - 2 * H:
        for n, d, s in layer:
            add("layers.%d.%s" % (i, n), d, s)
        i += 1
    rows = (size - off) // (2 * H)
    if rows > 0:
        add("lm_head.weight", "F16", [rows, H])
    hdr = dict(tensors)
    hdr["__metadata__"] = {"format": "pt"}
    hb = json.dumps(hdr, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        left = off
        while left > 0:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    print(len(tensors))

def read(path, count, ref):
    import numpy as np
    dt = {"F16": np.float16, "F32": np.float32}
    t0 = time.monotonic()
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    names = sorted(hdr)
    picks = random.Random(1).sample(names, min(count, len(names)))
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    crcs, nbytes = [], 0
    for name in picks:
        t = hdr[name]
        s, e = t["data_offsets"]
        a = np.array(mm[s:e].view(dt[t["dtype"]]).reshape(t["shape"]))  # copy: reads the pages
        crcs.append(zlib.crc32(a.view(np.uint8)))
        nbytes += a.nbytes
    secs = time.monotonic() - t0
    del mm
    # check the bytes against the local source (not timed)
    ok = True
    with open(ref, "rb") as f:
        for name, c in zip(picks, crcs):
            s, e = hdr[name]["data_offsets"]
            f.seek(8 + n + s)
            if zlib.crc32(f.read(e - s)) != c:
                ok = False
    print("%.3f %d %d %s" % (secs, len(picks), nbytes, "ok" if ok else "MISMATCH"))

if sys.argv[1] == "write":
    write(sys.argv[2], int(sys.argv[3]))
else:
    read(sys.argv[2], int(sys.argv[3]), sys.argv[4])
PYEOF
say "creating a ${SIZE_MB} MiB safetensors file"
ntens=$("$PY" "$WORK/st.py" write "$SRC/model.safetensors" "$BYTES") || die "writing the safetensors file failed"

put_big() { # FILE KEY
	local code
	code=$(timeout 600 curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$1" -o /dev/null -w '%{http_code}' \
		"$S3_ENDPOINT/$BUCKET/$2") || true
	[ "$code" = 200 ] || die "PUT $2 failed (HTTP $code)"
}
say "uploading the two large objects"
put_big "$SRC/big.bin" big.bin
put_big "$SRC/model.safetensors" model.safetensors
# two more large objects for the four-reader case, copied by the server
for k in big2.bin big3.bin; do
	code=$(scurl -X PUT -H "x-amz-copy-source: /$BUCKET/big.bin" -o /dev/null -w '%{http_code}' \
		"$S3_ENDPOINT/$BUCKET/$k") || true
	[ "$code" = 200 ] || die "CopyObject to $k failed (HTTP $code)"
done

# Small keys: curl --parallel (one process, 32 PUTs in flight) took 34 s for
# 10,000 keys here, `aws s3 cp --recursive` of a local directory 38 s; the
# server is the bottleneck either way.
say "uploading $KEYS small keys"
: >"$WORK/small.cfg"
for i in $(seq 0 $((KEYS - 1))); do
	k=$(printf 'k%05d' "$i")
	printf 'small object %s\n' "$k" >"$SRC/small/$k"
	printf 'url = "%s/%s/small/%s"\nupload-file = "%s/small/%s"\noutput = "/dev/null"\n' \
		"$S3_ENDPOINT" "$BUCKET" "$k" "$SRC" "$k"
done >"$WORK/small.cfg"
ok=$(timeout 900 curl -sS --parallel --parallel-max 32 --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -w '%{http_code}\n' -K "$WORK/small.cfg" 2>/dev/null | grep -c '^200$')
[ "$ok" = "$KEYS" ] || die "only $ok of $KEYS small PUTs succeeded"
rm -rf "$SRC/small" "$WORK/small.cfg"
t_setup=$(($(date +%s) - t_setup))
say "setup took ${t_setup} s"

bench_latency "$LAT" || die "cannot set the server latency"

# --- helpers -------------------------------------------------------------------
# read_mbps FILE: one timed sequential dd; prints MB/s or an error word
read_mbps() {
	bench_dd "$1" "$TO"
	if [ $DD_RC = 124 ] || [ $DD_RC = 137 ]; then
		echo "timeout (${TO} s)"
		return 1
	fi
	if [ $DD_RC != 0 ] || [ "$DD_BYTES" != "$BYTES" ]; then
		say "dd of $1: rc=$DD_RC, ${DD_BYTES:-?} of $BYTES bytes: $(tail -n 1 <<<"$DD_OUT")"
		echo "error"
		return 1
	fi
	bench_mbps "$BYTES" "$DD_T0" "$DD_T1"
}

# drop_file_cache FILE: evict FILE's pages from the page cache
drop_file_cache() {
	timeout -k 5 60 dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || true
}

bench_peer_configs

MNT= DPID= NMOUNT=0
# mount_peer PEER: fresh mountpoint and daemon (foreground, in the background,
# so that its pid is ours); sets MNT and DPID; returns 1 on failure
mount_peer() {
	local peer=$1 log rc
	NMOUNT=$((NMOUNT + 1))
	MNT=$WORK/mnt/$peer.$NMOUNT
	log=$WORK/$peer.$NMOUNT.log
	mkdir -p "$MNT"
	case $peer in
	chunkfs)
		"$CHUNKFS" "s3://$BUCKET" "$MNT" -f -o "endpoint=$S3_ENDPOINT,ro${CHUNKFS_OPTS:+,$CHUNKFS_OPTS}" >"$log" 2>&1 &
		;;
	s3fs)
		s3fs "$BUCKET" "$MNT" -f -o ro -o "url=$S3_ENDPOINT" -o use_path_request_style \
			-o endpoint=us-east-1 -o "passwd_file=$PASSWD" >"$log" 2>&1 &
		;;
	rclone-off | rclone-full)
		mkdir -p "$WORK/rclone-cache.$NMOUNT"
		env -u AWS_CA_BUNDLE rclone --config "$RCONF" mount "remote:$BUCKET" "$MNT" --read-only \
			--vfs-cache-mode "${peer#rclone-}" --cache-dir "$WORK/rclone-cache.$NMOUNT" >"$log" 2>&1 &
		;;
	esac
	DPID=$!
	DAEMONS+=("$DPID")
	MOUNTED+=("$MNT")
	bench_wait_mount "$MNT" "$DPID"
	rc=$?
	if [ $rc = 1 ]; then
		say "$peer exited before mounting; its log:"
		tail -n 10 "$log" >&2
		return 1
	elif [ $rc = 2 ]; then
		say "$peer did not mount within 30 s"
		bench_unmount "$MNT" "$DPID"
		return 1
	fi
	return 0
}

declare -A COLD WARM IOPS LS TENS RSS MULTI
hwm_max() { # PEER PID: keep the max VmHWM
	local v
	v=$(bench_vmhwm_mib "$2")
	[ -n "$v" ] || return 0
	if [ -z "${RSS[$1]:-}" ] || [ "$v" -gt "${RSS[$1]}" ]; then RSS[$1]=$v; fi
}

bench_peer() {
	local peer=$1 out t0 t1 rc n j
	COLD[$peer]="-" WARM[$peer]="-" IOPS[$peer]="-" LS[$peer]="-" TENS[$peer]="-"

	# 1. cold + warm sequential read
	say "$peer: sequential reads"
	if mount_peer "$peer"; then
		drop_file_cache "$MNT/big.bin"
		COLD[$peer]=$(read_mbps "$MNT/big.bin")
		if [ "${COLD[$peer]}" != error ] && [[ "${COLD[$peer]}" != timeout* ]]; then
			WARM[$peer]=$(read_mbps "$MNT/big.bin")
		fi
		hwm_max "$peer" "$DPID"
		bench_unmount "$MNT" "$DPID"
	else
		COLD[$peer]="mount failed"
	fi

	# 2. fio 4K random reads, fresh mount
	say "$peer: fio 4K random reads, ${FIO_S} s"
	if mount_peer "$peer"; then
		ctl -X POST "$S3_CONTROL/counters/reset" >/dev/null
		out=$(cd "$WORK" && timeout -k 10 $((FIO_S + TO)) fio --name=r --filename="$MNT/big.bin" --readonly \
			--rw=randread --bs=4k --runtime="$FIO_S" --time_based --ioengine=psync --numjobs=1 \
			--direct=0 --invalidate=1 --output-format=json 2>"$WORK/fio.err")
		rc=$?
		if [ $rc = 0 ]; then
			IOPS[$peer]=$("$PY" -c 'import json,sys; j=json.load(sys.stdin); print("%.0f" % j["jobs"][0]["read"]["iops"])' <<<"${out#"${out%%\{*}"}" 2>/dev/null) || IOPS[$peer]=error
		elif [ $rc = 124 ] || [ $rc = 137 ]; then
			IOPS[$peer]="timeout"
		else
			say "fio on $peer failed: $(tail -n 2 "$WORK/fio.err")"
			IOPS[$peer]=error
		fi
		# what the daemon fetched meanwhile (a whole-file download shows here)
		j=$(counters_json)
		IOPS[$peer]+=$("$PY" -c 'import json,sys; j=json.loads(sys.argv[1]); print(" (%d GET, %.0f MB fetched)" % (j.get("GET", 0), j.get("bytes_out", 0) / 1e6))' "$j" 2>/dev/null)
		hwm_max "$peer" "$DPID"
		bench_unmount "$MNT" "$DPID"
	else
		IOPS[$peer]="mount failed"
	fi

	# 3. four processes each read a different large object, fresh mount:
	# total MB/s and the daemon's peak RSS during that case alone
	say "$peer: 4 readers of 4 objects"
	MULTI[$peer]="-"
	if mount_peer "$peer"; then
		local pids=() f bad=0
		t0=$(date +%s.%N)
		for f in big.bin big2.bin big3.bin model.safetensors; do
			timeout -k 10 "$TO" dd if="$MNT/$f" of=/dev/null bs=1M status=none &
			pids+=($!)
		done
		for j in "${pids[@]}"; do wait "$j" || bad=1; done
		t1=$(date +%s.%N)
		if [ $bad = 0 ]; then
			MULTI[$peer]=$(awk -v b="$BYTES" -v t0="$t0" -v t1="$t1" -v r="$(bench_vmhwm_mib "$DPID")" \
				'BEGIN { printf "%.0f MB/s, %s MiB", 4 * b / (t1 - t0) / 1e6, r }')
		else
			MULTI[$peer]=error
		fi
		hwm_max "$peer" "$DPID"
		bench_unmount "$MNT" "$DPID"
	else
		MULTI[$peer]="mount failed"
	fi

	# 4. ls -l of the small-key directory, then safetensors tensors, fresh mount
	say "$peer: ls -l of $KEYS keys, then $NTENSORS tensors"
	if mount_peer "$peer"; then
		ctl -X POST "$S3_CONTROL/counters/reset" >/dev/null
		t0=$(date +%s.%N)
		timeout -k 10 "$LS_TO" ls -l "$MNT/small" >"$WORK/ls.out" 2>"$WORK/ls.err"
		rc=$?
		t1=$(date +%s.%N)
		n=$(grep -c '^-' "$WORK/ls.out")
		j=$(counters_json)
		# "SECS s / N req (n LIST, n HEAD, n GET)", from the server's counters
		LS[$peer]=$(
			"$PY" -c '
import json, sys
j = json.loads(sys.argv[1]); secs = float(sys.argv[2])
parts = [(k, j.get(k, 0)) for k in ("ListObjectsV2", "HEAD", "GET")]
detail = ", ".join("%d %s" % (v, "LIST" if k == "ListObjectsV2" else k) for k, v in parts if v)
print("%.2f s / %d req%s" % (secs, j["total"], " (" + detail + ")" if detail else ""))
' "$j" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
		) || LS[$peer]=error
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			LS[$peer]="timeout: > ${LS[$peer]} so far"
		elif [ "$rc" != 0 ] || [ "$n" != "$KEYS" ]; then
			say "ls -l on $peer: rc=$rc, $n of $KEYS files: $(head -n 2 "$WORK/ls.err")"
			LS[$peer]="error ($n of $KEYS files; ${LS[$peer]})"
		fi
		out=$(timeout -k 10 "$TO" "$PY" "$WORK/st.py" read "$MNT/model.safetensors" "$NTENSORS" "$SRC/model.safetensors" 2>"$WORK/st.err")
		rc=$?
		if [ $rc = 0 ]; then
			TENS[$peer]=$(awk '{ printf "%d in %.2f s, %.1f/s (%.0f MB)%s", $2, $1, $2 / ($1 > 0 ? $1 : 1e-6), $3 / 1e6, ($4 == "ok" ? "" : " WRONG BYTES") }' <<<"$out")
		elif [ $rc = 124 ] || [ $rc = 137 ]; then
			TENS[$peer]="timeout (${TO} s)"
		else
			say "tensor reads on $peer failed: $(tail -n 2 "$WORK/st.err")"
			TENS[$peer]=error
		fi
		hwm_max "$peer" "$DPID"
		bench_unmount "$MNT" "$DPID"
	else
		LS[$peer]="mount failed"
	fi
}

# raw server limit: 8 parallel 8 MiB ranged GETs covering the whole object
bench_raw() {
	local cfg=$WORK/raw.cfg off=0 chunk=$((8 << 20)) t0 t1 got
	: >"$cfg"
	while [ $off -lt "$BYTES" ]; do
		end=$((off + chunk - 1))
		[ $end -lt "$BYTES" ] || end=$((BYTES - 1))
		# options after `next` start afresh for each transfer, so each block repeats them
		[ $off = 0 ] || echo next
		printf 'url = "%s/%s/big.bin"\nrange = "%d-%d"\noutput = "/dev/null"\naws-sigv4 = "aws:amz:us-east-1:s3"\nuser = "S3RVER:S3RVER"\nheader = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\nwrite-out = "%%{size_download}\\n"\nsilent\nshow-error\n' \
			"$S3_ENDPOINT" "$BUCKET" "$off" "$end"
		off=$((end + 1))
	done >"$cfg"
	t0=$(date +%s.%N)
	got=$(timeout -k 10 "$TO" curl -sS --parallel --parallel-max 8 -K "$cfg" 2>"$WORK/raw.err" | awk '{ s += $1 } END { printf "%d\n", s }')
	t1=$(date +%s.%N)
	if [ "$got" != "$BYTES" ]; then
		say "raw GETs returned $got of $BYTES bytes: $(head -n 2 "$WORK/raw.err")"
		COLD[raw]=error
	else
		COLD[raw]=$(bench_mbps "$BYTES" "$t0" "$t1")
	fi
	WARM[raw]="-" IOPS[raw]="-" LS[raw]="-" TENS[raw]="-" RSS[raw]="-" MULTI[raw]="-"
}

# --- run -----------------------------------------------------------------------
t_run=$(date +%s)
ROWS=()
for p in $PEERS; do
	case $p in
	chunkfs) skip=$SKIP_chunkfs ;;
	s3fs) skip=$SKIP_s3fs ;;
	rclone-*) skip=$SKIP_rclone ;;
	*) skip= ;;
	esac
	if [ -n "$skip" ]; then
		note "$p skipped: $skip"
		continue
	fi
	ROWS+=("$p")
	if [ "$p" = raw ]; then
		say "raw: 8 parallel 8 MiB ranged GETs"
		bench_raw
	else
		bench_peer "$p"
	fi
done

# tmpfs reference for the warm re-read
say "tmpfs reference"
SHM=$(mktemp -d /dev/shm/chunkfs-s3bench.XXXXXX) || die "mktemp in /dev/shm failed"
SCRATCH+=("$SHM")
cp "$SRC/big.bin" "$SHM/big.bin"
read_mbps "$SHM/big.bin" >/dev/null
TMPFS_WARM=$(read_mbps "$SHM/big.bin")
rm -rf "$SHM"
t_run=$(($(date +%s) - t_run))

# --- report --------------------------------------------------------------------
label() {
	case $1 in
	chunkfs) echo "chunkfs $CHUNKFS_LABEL" ;;
	s3fs) echo "s3fs $(s3fs --version 2>/dev/null | sed -n '1s/.*V\([0-9.]*\).*/\1/p')" ;;
	rclone-off) echo "rclone $(rclone version 2>/dev/null | sed -n '1s/^rclone v//p') --vfs-cache-mode off" ;;
	rclone-full) echo "rclone $(rclone version 2>/dev/null | sed -n '1s/^rclone v//p') --vfs-cache-mode full" ;;
	raw) echo "raw server limit (curl, 8 x 8 MiB ranged GETs in parallel)" ;;
	esac
}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")

cat <<EOF

### S3 read path: ${SIZE_MB} MiB objects, ${KEYS} keys, ${LAT} ms server latency

$(date -u '+%Y-%m-%d %H:%M UTC'); $(hostname); ${os:-Linux}, kernel $(uname -r); ${cpu:-?}, $(nproc) cores, $mem.
Server: tests/s3 (s3rver 3.7.1 + front end) on 127.0.0.1, ${LAT} ms before each response. One run; each cell from a fresh mount
(cold read and warm re-read share one; fio has its own, so do the 4 readers; ls -l and tensors share one). Cold: dd bs=1M after dropping the
file's page cache; warm: the same dd again; fio: randread 4k psync, 1 job, ${FIO_S} s, --invalidate=1; ls -l: time and requests
counted by the server; tensors: ${NTENSORS} random (of ${ntens}; all if fewer) through numpy.memmap, bytes checked; 4 readers:
four dd bs=1M at once, each of a different ${SIZE_MB} MiB object, total rate and the daemon's VmHWM in that mount; peak RSS: VmHWM
of the daemon over all its mounts.

| | cold seq read (MB/s) | warm re-read (MB/s) | 4K rand read IOPS (server traffic) | 4 readers (total, RSS) | ls -l ${KEYS} keys | ${NTENSORS} random tensors | peak RSS (MiB) |
|---|---:|---:|---:|---:|---|---|---:|
EOF
for p in "${ROWS[@]}"; do
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label "$p")" "${COLD[$p]}" "${WARM[$p]}" "${IOPS[$p]}" "${MULTI[$p]}" "${LS[$p]}" "${TENS[$p]}" "${RSS[$p]:--}"
done
printf '| tmpfs (reference: same bytes from memory) | - | %s | - | - | - | - | - |\n' "$TMPFS_WARM"
echo
echo "Setup (objects, no added latency): ${t_setup} s; measurements: ${t_run} s."
for n in "${NOTES[@]}"; do
	echo "- $n"
done
exit 0
