#!/bin/bash
# Model loading over S3 (issue 12): a chunk set in the layout of the Surfing
# Weights chunker (CHUNK-LAYOUT.md: config.json, embeddings.pt, layer_N.pt,
# pooler.pt, chunk_info.json; a BERT-large shape in fp16, 24 layers, 639 MiB)
# loaded every way a user would, against the test server (tests/s3) with
# BENCH_LATENCY_MS (20) added before every response.  Prints ONE markdown
# table.  The Python parts are bench/model_load.py.
#
# Rows (cells), each run BENCH_REPEAT (3) times, the runs interleaved across
# the cells; before every timed load the page cache is dropped (sync; echo 3
# > drop_caches) and the server's counters reset; each mount cell has a fresh
# mount:
#   boto3          the library's S3 backend: chunk_info.json (head_object,
#                  get_object), then per chunk head_object + get_object(...)
#                  ["Body"].read() + torch.load(BytesIO, map_location="cpu")
#   boto3-ahead    the same with the next chunk fetched by a thread while
#                  this one is torch.loaded (the streaming model's pattern)
#   awscp          aws s3 cp --recursive to local disk, then the library's
#                  FilesystemBackend sequence there; the copy is in the total
#   s3fs           s3fs mount, the FilesystemBackend sequence (Path.exists,
#                  Path.read_bytes, torch.load(BytesIO))
#   chunkfs        chunkfs mount (default options), the same sequence
#   chunkfs-ahead  chunkfs, one chunk ahead
#   chunkfs-warm   chunkfs -o cache_dir=DIR: one untimed load fills DIR,
#                  unmount, remount, page cache dropped, then the timed load
#   chunkfs-pin    the same with -o pin ("n/a (option missing)" when this
#                  chunkfs does not know it)
#   paths-chunkfs  Path.exists + torch.load(path) on chunkfs (the zip
#   paths-s3fs     reader seeks) and on s3fs
#   local          the FilesystemBackend sequence on local disk: the floor
#   memmap-chunkfs BENCH_ST_TENSORS (64) seeded random tensors read through
#   memmap-s3fs    numpy.memmap from a BENCH_ST_MB (1024) MiB safetensors
#   memmap-local   file (2-8 MiB tensors) on chunkfs, s3fs and local disk
#
# Columns: total seconds (median, range), first layer ready (until layer_0
# is torch.loaded), the ratio to boto3 one at a time (memmap rows: to s3fs
# memmap), requests the server counted during the timed load by type, the
# daemon's CPU seconds during the load (utime+stime from /proc/PID/stat) and
# its peak RSS (VmHWM).  Every load is checked: a CRC-32 of every tensor
# against those computed when the set was generated; a wrong byte shows as
# WRONG BYTES in the table and makes the exit status 1.
#
# The chunk set and the safetensors file are generated once (deterministic,
# seeded) into BENCH_CACHE_DIR, keyed by model_load.py's VERSION and the
# layer count, and reused by later runs.
#
# Environment:
#   BENCH_LAYERS=24        layers of the model (2 for a quick run)
#   BENCH_REPEAT=3         runs of every cell (the table shows the median)
#   BENCH_LATENCY_MS=20    latency the server adds before each response
#   BENCH_ST_MB=1024       size of the safetensors file (MiB)
#   BENCH_ST_TENSORS=64    tensors the memmap cells read
#   BENCH_MODEL_CELLS="..." cells to run (default: all of the above)
#   BENCH_TIMEOUT=600      bound on each load (seconds)
#   BENCH_CACHE_DIR=/var/tmp/chunkfs-model-bench  where generated sets are kept
#   BENCH_TMPDIR=DIR       server data, local copies, disk caches (default
#                          $TMPDIR or /var/tmp; needs about 3x the set + the
#                          safetensors file)
#   CHUNKFS=PATH           binary (default ./chunkfs, built with make if missing)
#   CHUNKFS_OPTS=LIST      extra -o options for every chunkfs mount
# Needs: /usr/bin/python3 with torch, numpy and boto3, /usr/bin/aws, node
# (tests/s3), s3fs: scripts/install-deps.sh bench.  Runs as root.
set -uo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init model_load
bench_s3_env
UNMOUNT_TRIES=20 UNMOUNT_PAUSE=0.5

LAYERS=${BENCH_LAYERS:-24}
REPS=${BENCH_REPEAT:-3}
LAT=${BENCH_LATENCY_MS:-20}
ST_MB=${BENCH_ST_MB:-1024}
NT=${BENCH_ST_TENSORS:-64}
TO=${BENCH_TIMEOUT:-600}
CACHE=${BENCH_CACHE_DIR:-/var/tmp/chunkfs-model-bench}
ALL_CELLS="boto3 boto3-ahead awscp s3fs chunkfs chunkfs-ahead chunkfs-warm chunkfs-pin paths-chunkfs paths-s3fs local memmap-chunkfs memmap-s3fs memmap-local"
PEERS=${BENCH_MODEL_CELLS:-$ALL_CELLS} # want() looks here
PY=/usr/bin/python3
AWS=/usr/bin/aws
HELPER=$REPO/bench/model_load.py
BUCKET=models
PREFIX=bert

case "$LAYERS$REPS$LAT$ST_MB$NT$TO" in *[!0-9]*) die "BENCH_* sizes, counts and times must be numbers" ;; esac
if [ "$LAYERS" -lt 1 ] || [ "$REPS" -lt 1 ]; then die "BENCH_LAYERS and BENCH_REPEAT must be at least 1"; fi
for c in $PEERS; do
	[[ " $ALL_CELLS " == *" $c "* ]] || die "unknown cell '$c' in BENCH_MODEL_CELLS (known: $ALL_CELLS)"
done
[ "$(id -u)" = 0 ] || die "needs root (FUSE mounts, dropping the page cache)"
for t in curl node fusermount3 mountpoint timeout flock; do
	command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh bench)"
done
[ -x "$AWS" ] || die "$AWS not found (scripts/install-deps.sh bench)"
"$PY" -c 'import torch, numpy, boto3' 2>/dev/null || die "$PY needs torch, numpy and boto3 (scripts/install-deps.sh bench)"
HAVE_S3FS=1
command -v s3fs >/dev/null || HAVE_S3FS=0
if [ -z "${CHUNKFS:-}" ]; then
	bench_build_chunkfs || die "make chunkfs failed"
fi
command -v "$CHUNKFS" >/dev/null || die "CHUNKFS=$CHUNKFS is not an executable"

# --- the chunk set and the safetensors file, generated once ---------------------
VERSION=$("$PY" "$HELPER" version) || die "$HELPER does not run"
SET=$CACHE/$VERSION-bert-L$LAYERS
ST=$CACHE/$VERSION-st-$ST_MB
mkdir -p "$CACHE" || die "cannot create $CACHE"
# cached DIR SUBCOMMAND ARG: DIR made by `model_load.py SUBCOMMAND DIR.tmp ARG`
# unless it is there; one generator at a time.
cached() {
	local dir=$1
	(
		flock 9
		[ -f "$dir/done" ] && exit 0
		rm -rf "$dir" "$dir.tmp"
		say "generating $dir"
		"$PY" "$HELPER" "$2" "$dir.tmp" "$3" >/dev/null && touch "$dir.tmp/done" && mv "$dir.tmp" "$dir"
	) 9>"$CACHE/.lock"
}
cached "$SET" generate "$LAYERS" || die "generating the chunk set failed"
want_memmap() { want memmap-chunkfs || want memmap-s3fs || want memmap-local; }
if want_memmap; then
	cached "$ST" safetensors "$ST_MB" || die "generating the safetensors file failed"
fi
NTENS=0
if want_memmap; then
	NTENS=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$ST/st-expected.json") ||
		die "cannot read $ST/st-expected.json"
	[ "$NT" -le "$NTENS" ] || NT=$NTENS
fi
SET_BYTES=$(du -sb --apparent-size "$SET/model" | cut -f1)
NFILES=$(find "$SET/model" -type f | wc -l)

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/var/tmp}}/chunkfs-model-bench.XXXXXX") || die "mktemp failed"
RES=$WORK/results
mkdir -p "$RES" "$WORK/mnt" "$WORK/log"
# the aws CLI reads no file of the user's
export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"

# --- server and upload (no added latency) ------------------------------------------
say "starting the test server"
bench_start_server "$BUCKET" || die "tests/s3/start.sh failed"
say "uploading the chunk set ($SET_BYTES bytes)"
"$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --recursive --only-show-errors "$SET/model" "s3://$BUCKET/$PREFIX/" ||
	die "uploading the chunk set failed"
if want_memmap; then
	say "uploading the safetensors file"
	"$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "$ST/st/model.safetensors" "s3://$BUCKET/st/model.safetensors" ||
		die "uploading the safetensors file failed"
fi
n=$("$AWS" --endpoint-url "$S3_ENDPOINT" s3 ls "s3://$BUCKET/$PREFIX/" | wc -l)
[ "$n" = "$NFILES" ] || die "the server lists $n keys under $PREFIX/, not $NFILES"
bench_latency "$LAT" || die "cannot set the server latency"
bench_peer_configs

# --- mounts ---------------------------------------------------------------------------
NMOUNT=0 MNT='' DPID='' MLOG=''
# mount_fs chunkfs|s3fs [OPTIONS]: a fresh mount (read-only, foreground
# daemon in the background); sets MNT, DPID and MLOG; 1 when it failed.
mount_fs() {
	NMOUNT=$((NMOUNT + 1))
	MNT=$WORK/mnt/$1.$NMOUNT
	MLOG=$WORK/log/$1.$NMOUNT.log
	mkdir -p "$MNT"
	case $1 in
	chunkfs)
		"$CHUNKFS" "s3://$BUCKET" "$MNT" -f \
			-o "endpoint=$S3_ENDPOINT,ro${2:+,$2}${CHUNKFS_OPTS:+,$CHUNKFS_OPTS}" >"$MLOG" 2>&1 &
		;;
	s3fs)
		s3fs "$BUCKET" "$MNT" -f -o ro -o "url=$S3_ENDPOINT" -o use_path_request_style \
			-o endpoint=us-east-1 -o "passwd_file=$PASSWD" >"$MLOG" 2>&1 &
		;;
	esac
	DPID=$!
	DAEMONS+=("$DPID")
	MOUNTED+=("$MNT")
	bench_wait_mount "$MNT" "$DPID" && return 0
	say "$1 did not mount: $(tail -n 3 "$MLOG")"
	bench_unmount "$MNT" "$DPID"
	return 1
}

# --- one timed load ---------------------------------------------------------------------
# cell_begin [PID]: a clean start: page cache dropped, counters reset, the
# daemon's CPU time so far noted.
CPU0='' BEGUN=0
cell_begin() {
	BEGUN=1
	bench_drop_caches
	curl -sS -m 30 -X POST "$S3_CONTROL/counters/reset" >/dev/null || say "cannot reset the server's counters"
	CPU0=
	[ -z "${1:-}" ] || CPU0=$(bench_cpu_seconds "$1")
}
# cell_end CELL REP LINE [PID]: store one run: the load's line, the server's
# counters, the daemon's CPU seconds since cell_begin and its VmHWM (the
# counters and the daemon's figures only after a cell_begin: a cell that
# failed before its load has none).
cell_end() {
	local r=$RES/$1.$2
	echo "$3" >"$r.load"
	[ "$BEGUN" = 1 ] || return 0
	BEGUN=0
	curl -sS -m 30 "$S3_CONTROL/counters" >"$r.counters" || say "cannot read the server's counters"
	if [ -n "${4:-}" ] && [ -n "$CPU0" ]; then
		echo "$(awk -v a="$CPU0" -v b="$(bench_cpu_seconds "$4")" 'BEGIN { print b - a }') $(bench_vmhwm_mib "$4")" >"$r.daemon"
	fi
}
# py_load COMMAND...: run a model_load.py load; print its line, or
# "timeout" / "error:exit_N" (its stderr goes to WORK/py.err).
py_load() {
	local out rc
	out=$(timeout -k 10 "$TO" "$PY" "$HELPER" "$@" 2>>"$WORK/py.err")
	rc=$?
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		echo timeout
	elif [ $rc != 0 ] || [ -z "$out" ]; then
		say "model_load.py $1 failed (exit $rc): $(tail -n 2 "$WORK/py.err")"
		echo "error:exit_$rc"
	else
		tail -n 1 <<<"$out"
	fi
}
# The files as local disk has them, laid out as in the bucket.
LOCAL=$WORK/local
mkdir -p "$LOCAL"
ln -s "$SET/model" "$LOCAL/$PREFIX"
ln -s "$ST/st" "$LOCAL/st"
# load_cmd CELL ROOT: the model_load.py command line of CELL's load, for
# the bucket's files under ROOT (a mount, or LOCAL)
load_cmd() {
	case $1 in
	*-ahead) echo load-files "$2/$PREFIX" "$SET/expected.json" --ahead ;;
	paths-*) echo load-paths "$2/$PREFIX" "$SET/expected.json" ;;
	memmap-*) echo memmap "$2/st/model.safetensors" "$ST/st-expected.json" "$NT" ;;
	*) echo load-files "$2/$PREFIX" "$SET/expected.json" ;;
	esac
}

# mount_cell CELL REP FS [OPTIONS]: fresh mount, timed load, unmount
mount_cell() {
	local line
	if ! mount_fs "$3" "${4:-}"; then
		cell_end "$1" "$2" "mount_failed"
		return
	fi
	cell_begin "$DPID"
	# shellcheck disable=SC2046 # load_cmd's words are the arguments
	line=$(py_load $(load_cmd "$1" "$MNT"))
	cell_end "$1" "$2" "$line" "$DPID"
	bench_unmount "$MNT" "$DPID"
}

# warm_cell CELL REP OPTIONS: a disk cache filled by one untimed load, then a
# second mount and the timed load.
warm_cell() {
	local cdir=$WORK/cache.$1.$2 opts line
	opts="cache_dir=$cdir${3:+,$3}"
	mkdir -p "$cdir"
	if ! mount_fs chunkfs "$opts"; then
		if grep -qi "unknown option" "$MLOG"; then
			cell_end "$1" "$2" "n/a_(option_missing)"
		else
			cell_end "$1" "$2" "mount_failed"
		fi
		rm -rf "$cdir"
		return
	fi
	line=$(py_load load-files "$MNT/$PREFIX" "$SET/expected.json")
	bench_unmount "$MNT" "$DPID"
	if [ "${line##* }" != ok ]; then
		cell_end "$1" "$2" "fill_${line##* }"
	elif ! mount_fs chunkfs "$opts"; then
		cell_end "$1" "$2" "remount_failed"
	else
		cell_begin "$DPID"
		line=$(py_load load-files "$MNT/$PREFIX" "$SET/expected.json")
		cell_end "$1" "$2" "$line" "$DPID"
		bench_unmount "$MNT" "$DPID"
	fi
	rm -rf "$cdir"
}

run_cell() { # CELL REP
	local cell=$1 rep=$2 line t0 t1 copy ahead
	say "$cell (run $rep of $REPS)"
	case $cell in
	*s3fs*)
		if [ "$HAVE_S3FS" = 0 ]; then
			cell_end "$cell" "$rep" "s3fs_not_installed"
			return
		fi
		;;
	esac
	case $cell in
	boto3 | boto3-ahead)
		ahead=--one-at-a-time
		[ "$cell" = boto3-ahead ] && ahead=--ahead
		cell_begin
		line=$(py_load load-boto3 "$S3_ENDPOINT" "$BUCKET" "$PREFIX" "$SET/expected.json" "$ahead")
		cell_end "$cell" "$rep" "$line"
		;;
	awscp)
		copy=$WORK/awscp
		rm -rf "$copy"
		cell_begin
		t0=$(date +%s.%N)
		if timeout -k 10 "$TO" "$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --recursive --only-show-errors \
			"s3://$BUCKET/$PREFIX/" "$copy/$PREFIX/" 2>>"$WORK/aws.err"; then
			t1=$(date +%s.%N)
			line=$(py_load load-files "$copy/$PREFIX" "$SET/expected.json" --add "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
		else
			say "aws s3 cp failed: $(tail -n 2 "$WORK/aws.err")"
			line=aws_s3_cp_failed
		fi
		cell_end "$cell" "$rep" "$line"
		rm -rf "$copy"
		;;
	chunkfs-warm) warm_cell "$cell" "$rep" "" ;;
	chunkfs-pin) warm_cell "$cell" "$rep" pin ;;
	chunkfs | chunkfs-ahead | paths-chunkfs | memmap-chunkfs) mount_cell "$cell" "$rep" chunkfs ;;
	s3fs | paths-s3fs | memmap-s3fs) mount_cell "$cell" "$rep" s3fs ;;
	local | memmap-local)
		cell_begin
		# shellcheck disable=SC2046
		line=$(py_load $(load_cmd "$cell" "$LOCAL"))
		cell_end "$cell" "$rep" "$line"
		;;
	esac
}

label() { # CELL
	local s3fs_v
	s3fs_v=$(s3fs --version 2>/dev/null | sed -n '1s/.*V\([0-9.]*\).*/\1/p')
	case $1 in
	boto3) echo "boto3 get_object + torch.load(bytes), one chunk at a time (the library's S3 backend)" ;;
	boto3-ahead) echo "boto3, one chunk ahead (the streaming model's pattern)" ;;
	awscp) echo "aws s3 cp --recursive, then load from local disk" ;;
	s3fs) echo "s3fs $s3fs_v mount (exists, read, torch.load(bytes))" ;;
	chunkfs) echo "chunkfs cold (fresh mount, default options)" ;;
	chunkfs-ahead) echo "chunkfs cold, one chunk ahead" ;;
	chunkfs-warm) echo "chunkfs warm: -o cache_dir, remounted" ;;
	chunkfs-pin) echo "chunkfs warm: -o cache_dir,pin, remounted" ;;
	paths-chunkfs) echo "torch.load(path) on chunkfs (cold)" ;;
	paths-s3fs) echo "torch.load(path) on s3fs" ;;
	local) echo "local disk, page cache dropped (the floor)" ;;
	memmap-chunkfs) echo "numpy.memmap, $NT random tensors, on chunkfs (cold)" ;;
	memmap-s3fs) echo "numpy.memmap, $NT random tensors, on s3fs" ;;
	memmap-local) echo "numpy.memmap, $NT random tensors, on local disk" ;;
	esac
}
for c in $ALL_CELLS; do
	want "$c" && printf '%s\t%s\n' "$c" "$(label "$c")"
done >"$RES/cells"

# --- runs, interleaved -----------------------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
t_run=$(date +%s)
for rep in $(seq "$REPS"); do
	for c in $ALL_CELLS; do
		want "$c" && run_cell "$c" "$rep"
	done
done
t_run=$(($(date +%s) - t_run))

# --- report --------------------------------------------------------------------------------
echo
echo "### Model load: BERT-large shape, $LAYERS layers, fp16, $NFILES files, $(awk -v b="$SET_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }') MiB; ${LAT} ms server latency"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); chunkfs $(cd "$REPO" && git describe --always --dirty 2>/dev/null); $(nproc) cores; load average $LOAD0 before, $(cut -d' ' -f1-3 /proc/loadavg) after (${t_run} s of runs)."
echo "Server tests/s3 on 127.0.0.1, ${LAT} ms before each response. Median of $REPS runs (range), interleaved; page cache dropped and"
echo "counters reset before every timed load; fresh mount for each mount cell. Requests: what the server counted during the timed load."
want_memmap && echo "memmap: $NT seeded random tensors of a ${ST_MB} MiB safetensors file ($NTENS tensors of 2-8 MiB)."
echo
"$PY" "$HELPER" table "$RES" boto3 memmap-s3fs "$SET_BYTES"
rc=$?
if [ $rc = 3 ]; then
	say "WRONG BYTES: see the table and $WORK/py.err"
elif [ $rc != 0 ]; then
	say "model_load.py table failed (exit $rc)"
fi
[ $rc = 0 ]
