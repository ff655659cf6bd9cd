#!/bin/bash
# Write path over S3: writing BENCH_SIZE_MB (1024) through chunkfs, s3fs and
# rclone (--vfs-cache-mode writes) with `cp` and with `dd bs=1M`, beside the
# raw PUT limit, against the test server (tests/s3) with BENCH_LATENCY_MS (20)
# added before every response.  Prints ONE markdown table.
#
# A third column, "paced", writes the same bytes in 1 MiB writes at most
# BENCH_PACE_MBPS (100) MB/s (bench/paced-write.js): a program producing its
# output at a steady rate, as torch.save does while it serializes.  There
# the best a filesystem can do is to have the upload done when the writer
# is: BENCH_PACE_MBPS itself.
#
# Each cell is MB/s from the start of the command until the object is stored
# whole on the server (HEAD shows its full size).  chunkfs and s3fs upload
# before close() returns; rclone uploads after close, so the clock runs until
# its upload lands.  Every stored object is downloaded afterwards and compared
# with the source (a mismatch shows as WRONG BYTES).
#
# raw: the object split into parts of BENCH_PART_MB (16, chunkfs's default
# part size, so that the ratio measures what chunkfs adds, not a choice of
# part size; beforehand, not timed), then one multipart upload with curl,
# 8 parts in flight, SigV4-signed with
# UNSIGNED-PAYLOAD.  The server is plain http: the row "chunkfs" runs with
# -o unsigned_payload, as raw does; "chunkfs-signed" with the default, which
# signs each payload's SHA-256 over http (a SHA-256 pass on the client and one
# on the single-threaded server).  s3fs 1.90 always signs payloads (it has no
# unsigned option); over https chunkfs never signs them.
#
# Staging: every writer stages on tmpfs (BENCH_STAGE_DIR, default a
# directory in /dev/shm), except the row "chunkfs-disk", which stages on the
# disk the server stores its objects on.  The server runs on this machine;
# S3 does not.  Here the kernel's dirty-page budget and the disk are
# shared: a writer's 1 GiB staging file on disk adds to the server's 1 GiB
# of parts, and the writeback of the sum slows the server.  When the server
# still copied the parts at completion (2 GiB dirty per upload), a staging
# file on disk took the total past the point where the kernel starts
# writeback (about 2.3 GB here), and the completion ran at the disk's rate:
# 2.6-3.2 s where raw's took 2.0-2.5 in the same run (sampled from
# /proc/meminfo).  chunkfs-disk shows what staging on this disk costs.
#
# Environment:
#   BENCH_WRITE_PEERS="chunkfs chunkfs-disk chunkfs-signed s3fs rclone raw"
#                           rows to measure
#   BENCH_SIZE_MB=1024      size written
#   BENCH_LATENCY_MS=20     latency the server adds before each response
#   BENCH_TIMEOUT=600       bound on each timed step (seconds)
#   BENCH_PACE_MBPS=100     the paced writer's rate (0: no paced column)
#   BENCH_REPEAT=3          runs of every cell (the table shows the median)
#   BENCH_PART_MB=16        raw's part size
#   CHUNKFS=PATH            binary (default ./chunkfs, built with make if missing)
#   CHUNKFS_OPTS=LIST       extra -o options for chunkfs
#   BENCH_TMPDIR=DIR        where the source file, the server's data and
#                           chunkfs-disk's staging go (default $TMPDIR or
#                           /var/tmp; needs 4x the size)
#   BENCH_STAGE_DIR=DIR     where the other writers stage (default: in
#                           /dev/shm when it has 2x the size free, else in
#                           BENCH_TMPDIR)
# Needs: node (tests/s3), curl; peers from scripts/install-deps.sh bench.
# Runs as root (FUSE mounts).
set -uo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init s3_write
bench_s3_env
UNMOUNT_TRIES=20 UNMOUNT_PAUSE=0.5

SIZE_MB=${BENCH_SIZE_MB:-1024}
LAT=${BENCH_LATENCY_MS:-20}
TO=${BENCH_TIMEOUT:-600}
PACE=${BENCH_PACE_MBPS:-100}
REPS=${BENCH_REPEAT:-3}
PART_MB=${BENCH_PART_MB:-16}
PEERS=${BENCH_WRITE_PEERS:-chunkfs chunkfs-disk chunkfs-signed s3fs rclone raw}
BUCKET=wbench
MNT= DPID=

case "$SIZE_MB$LAT$TO$PACE$REPS$PART_MB" in *[!0-9]*) die "BENCH_* sizes and times must be numbers" ;; esac
[ "$SIZE_MB" -ge 16 ] || die "BENCH_SIZE_MB must be at least 16"
for t in curl node fusermount3 mountpoint timeout split; do
	command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh bench)"
done
if { want chunkfs || want chunkfs-disk || want chunkfs-signed; } && [ -z "${CHUNKFS:-}" ]; then
	bench_build_chunkfs || die "make chunkfs failed"
fi

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/var/tmp}}/chunkfs-wbench.XXXXXX") || die "mktemp failed"
STAGE=${BENCH_STAGE_DIR:-}
if [ -z "$STAGE" ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
	[ "$(($(stat -f -c '%a * %S' /dev/shm)))" -gt $((2 * SIZE_MB * 1024 * 1024)) ]; then
	STAGE=$(mktemp -d /dev/shm/chunkfs-wbench.XXXXXX) || die "mktemp in /dev/shm failed"
	SCRATCH+=("$STAGE")
fi
if [ -z "$STAGE" ]; then
	say "no room on /dev/shm: every writer stages on disk"
	STAGE=$WORK
fi
say "writers stage in $STAGE (chunkfs-disk in $WORK)"
BYTES=$((SIZE_MB * 1024 * 1024))
say "creating a ${SIZE_MB} MiB random file in $WORK"
head -c "$BYTES" /dev/urandom >"$WORK/src.bin" || die "cannot write the source file"

bench_start_server "$BUCKET" || die "tests/s3/start.sh failed"
bench_latency "$LAT" || die "cannot set the latency"
stored_size() { # KEY
	scurl -I -o /dev/null -w '%header{content-length}' "$S3_ENDPOINT/$BUCKET/$1" 2>/dev/null
}
# Wait (up to LIMIT seconds, default the timeout) until KEY is stored whole;
# print the seconds since T0.
stored_after() { # KEY T0 [LIMIT]
	local i
	for i in $(seq $((${3:-$TO} * 10))); do
		[ "$(stored_size "$1")" = "$BYTES" ] && break
		sleep 0.1
	done
	awk -v t0="$2" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.3f\n", t1 - t0 }'
}
mbps() { bench_mbps "$BYTES" 0 "$1"; }
check_bytes() { # KEY -> "" or " WRONG BYTES"
	scurl -o "$WORK/back.bin" "$S3_ENDPOINT/$BUCKET/$1" 2>/dev/null
	cmp -s "$WORK/back.bin" "$WORK/src.bin" || echo " WRONG BYTES"
	rm -f "$WORK/back.bin"
}

bench_peer_configs

mount_peer() { # PEER
	local log=$WORK/$1.log
	MNT=$WORK/mnt.$1
	STAGED=$STAGE/stage.$1
	[ "$1" = chunkfs-disk ] && STAGED=$WORK/stage.$1
	mkdir -p "$MNT" "$STAGED"
	case $1 in
	chunkfs*)
		"$CHUNKFS" "s3://$BUCKET/$1" "$MNT" -f \
			-o "endpoint=$S3_ENDPOINT,staging_dir=$STAGED${CHUNKFS_OPTS:+,$CHUNKFS_OPTS}" \
			$([ "$1" != chunkfs-signed ] && echo "-o unsigned_payload") >"$log" 2>&1 &
		;;
	s3fs)
		s3fs "$BUCKET:/$1" "$MNT" -f -o "url=$S3_ENDPOINT" -o use_path_request_style \
			-o endpoint=us-east-1 -o "passwd_file=$PASSWD" -o "tmpdir=$STAGED" >"$log" 2>&1 &
		;;
	rclone)
		env -u AWS_CA_BUNDLE rclone --config "$RCONF" mount "remote:$BUCKET/$1" "$MNT" \
			--vfs-cache-mode writes --cache-dir "$STAGED" >"$log" 2>&1 &
		;;
	esac
	DPID=$!
	MOUNTED+=("$MNT")
	DAEMONS+=("$DPID")
	bench_wait_mount "$MNT" "$DPID" && return 0
	say "$1 did not mount: $(tail -n 3 "$log")"
	bench_unmount "$MNT" "$DPID"
	return 1
}

# Every cell starts from the same state: the last cell's dirty pages written
# back and the page cache dropped (on this machine a cell that follows
# gigabytes of writes pays for reclaiming them: the first cell of a run was
# up to 1.6x faster), then the source read back into the cache.
settle() {
	sync
	echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || say "cannot drop the page cache (not root?): cells are not independent"
	cat "$WORK/src.bin" >/dev/null
}

run_write() { # PEER NAME COMMAND... -> sets REPLY to the cell
	local peer=$1 name=$2 t0 secs rc
	shift 2
	# An earlier run's object would look stored at once (rclone uploads
	# after close, and the clock waits for the object).
	scurl -X DELETE "$S3_ENDPOINT/$BUCKET/$peer/$name" >/dev/null 2>&1
	settle
	t0=$(date +%s.%N)
	timeout -k 10 "$TO" "$@" >/dev/null 2>"$WORK/cmd.err"
	rc=$?
	if [ $rc != 0 ]; then
		say "$peer $name: exit $rc: $(tail -n 2 "$WORK/cmd.err")"
		REPLY="error"
		return
	fi
	secs=$(stored_after "$peer/$name" "$t0")
	if [ "$(stored_size "$peer/$name")" != "$BYTES" ]; then
		REPLY="not stored after ${TO} s"
		return
	fi
	REPLY="$(mbps "$secs")$(check_bytes "$peer/$name")"
}

# Results: each run's MB/s per (peer, kind), or what went wrong instead.
declare -A VALS FLAGS
record() { # PEER KIND REPLY
	local k=$1/$2
	case $3 in
	*WRONG*) FLAGS[$k]="WRONG BYTES" ;;
	[0-9]*) VALS[$k]="${VALS[$k]:-} $3" ;;
	*) FLAGS[$k]=${FLAGS[$k]:-$3} ;;
	esac
}
# The median of the runs, then their range: "126 (121-154)".
cell() { # PEER KIND
	local k=$1/$2
	if [ -n "${FLAGS[$k]:-}" ]; then
		echo "${FLAGS[$k]}"
	elif [ -n "${VALS[$k]:-}" ]; then
		tr ' ' '\n' <<<"${VALS[$k]}" | sed '/^$/d' | sort -n |
			awk '{ v[NR] = $1 } END { m = v[int((NR + 1) / 2)]; if (NR > 1) printf "%s (%s-%s)\n", m, v[1], v[NR]; else print m }'
	else
		echo "-"
	fi
}

measure_peer() { # PEER
	local peer=$1
	case $peer in
	chunkfs*) ;;
	*) command -v "$peer" >/dev/null || {
		record "$peer" cp "not installed"
		record "$peer" dd "not installed"
		record "$peer" paced "not installed"
		return
	} ;;
	esac
	say "$peer: cp, dd bs=1M and paced writes of $SIZE_MB MiB (run $rep of $REPS)"
	if ! mount_peer "$peer"; then
		record "$peer" cp "mount failed"
		record "$peer" dd "mount failed"
		record "$peer" paced "mount failed"
		return
	fi
	run_write "$peer" cp.bin cp "$WORK/src.bin" "$MNT/cp.bin"
	record "$peer" cp "$REPLY"
	run_write "$peer" dd.bin dd if="$WORK/src.bin" of="$MNT/dd.bin" bs=1M
	record "$peer" dd "$REPLY"
	if [ "$PACE" != 0 ]; then
		run_write "$peer" paced.bin node "$REPO/bench/paced-write.js" "$WORK/src.bin" \
			"$MNT/paced.bin" "$PACE"
		record "$peer" paced "$REPLY"
	fi
	bench_unmount "$MNT" "$DPID"
	# rclone keeps what it uploaded in its cache for an hour: tmpfs is memory.
	rm -rf --one-file-system "$STAGED"
}

# raw_upload KEY: the source as one multipart upload with curl, 8 parts in
# flight, from part files cut and cached beforehand (not timed).  Sets T0
# (its start); 1 when a part got no ETag.
raw_upload() {
	local key=$1 id n p
	mkdir -p "$WORK/parts"
	split -b "${PART_MB}M" -d -a 5 "$WORK/src.bin" "$WORK/parts/p" || die "split failed"
	settle
	cat "$WORK"/parts/p* >/dev/null
	T0=$(date +%s.%N)
	id=$(scurl -X POST "$S3_ENDPOINT/$BUCKET/$key?uploads=" | sed -n 's:.*<UploadId>\(.*\)</UploadId>.*:\1:p')
	: >"$WORK/parts.cfg"
	n=0
	for p in "$WORK"/parts/p*; do
		n=$((n + 1))
		printf 'url = "%s/%s/%s?partNumber=%d&uploadId=%s"\nupload-file = "%s"\noutput = "/dev/null"\n' \
			"$S3_ENDPOINT" "$BUCKET" "$key" "$n" "$id" "$p" >>"$WORK/parts.cfg"
	done
	# -w is global in a config file: the URL tells which part an etag is.
	scurl --parallel --parallel-max 8 -w '%{url} %header{etag}\n' -K "$WORK/parts.cfg" 2>/dev/null |
		sed -n 's/.*partNumber=\([0-9]*\)&.* \(.*\)/\1 \2/p' | sort -n >"$WORK/etags"
	{
		echo "<CompleteMultipartUpload>"
		awk '{ printf "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>\n", $1, $2 }' "$WORK/etags"
		echo "</CompleteMultipartUpload>"
	} >"$WORK/complete.xml"
	scurl -X POST --data-binary "@$WORK/complete.xml" "$S3_ENDPOINT/$BUCKET/$key?uploadId=$id" >/dev/null
	rm -rf "$WORK/parts"
	[ "$(wc -l <"$WORK/etags")" = "$n" ]
}

measure_raw() {
	local secs ok=1
	say "raw: multipart upload with curl, $PART_MB MiB parts, 8 in flight (run $rep of $REPS)"
	raw_upload raw/raw.bin || ok=0
	secs=$(stored_after raw/raw.bin "$T0" 5)
	if [ $ok = 1 ] && [ "$(stored_size raw/raw.bin)" = "$BYTES" ]; then
		record raw cp "$(mbps "$secs")$(check_bytes raw/raw.bin)"
	else
		record raw cp error
	fi
	# The next run's upload must not find this one's object already whole.
	scurl -X DELETE "$S3_ENDPOINT/$BUCKET/raw/raw.bin" >/dev/null 2>&1
}

# The server's first upload after it starts is up to 2 s slower than the
# next ones (its JIT and heap warming up): one upload, not timed, before the
# runs, or the first row measured pays for it.
say "warming the server up: one upload of $SIZE_MB MiB, not timed"
raw_upload warmup.bin || say "the warm-up upload failed"
scurl -X DELETE "$S3_ENDPOINT/$BUCKET/warmup.bin" >/dev/null 2>&1

# Runs interleave the writers, so that the machine's slow and fast moments
# fall on all of them alike.
for rep in $(seq "$REPS"); do
	for peer in chunkfs chunkfs-disk chunkfs-signed s3fs rclone; do
		want "$peer" && measure_peer "$peer"
	done
	want raw && measure_raw
done
RAW=$(cell raw cp)

ratio() { # CELL BASE
	awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'
}
echo
echo "Writing $SIZE_MB MiB over S3 (tests/s3 server, $LAT ms added latency, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) at the end), MB/s until stored whole: median of $REPS runs (range); staging in $(stat -f -c %T "$STAGE") (chunkfs-disk: $(stat -f -c %T "$WORK"))"
echo
echo "| writer | cp | dd bs=1M | paced $PACE MB/s | cp vs raw | dd vs raw | cp vs s3fs | dd vs s3fs | paced vs s3fs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for peer in chunkfs chunkfs-disk chunkfs-signed s3fs rclone; do
	want "$peer" || continue
	c=$(cell "$peer" cp) d=$(cell "$peer" dd) p=$(cell "$peer" paced)
	echo "| $peer | $c | $d | $p | $(ratio "$c" "$RAW") | $(ratio "$d" "$RAW") | $(ratio "$c" "$(cell s3fs cp)") | $(ratio "$d" "$(cell s3fs dd)") | $(ratio "$p" "$(cell s3fs paced)") |"
done
want raw && echo "| raw (curl multipart, $PART_MB MiB parts, 8 in flight) | $RAW | | | | | | | |"
exit 0
