#!/bin/bash
# Sequential read of a 1 GiB file whose backing copy is in the page cache:
#   (a) direct read of the file          dd if=FILE of=/dev/null bs=1M
#   (b) first read through bindfs        (Debian's FUSE passthrough fs; fresh mount)
#   (c) first read through chunkfs       (./chunkfs DIR MNT -o ro; fresh mount)
#   (d) second read through chunkfs      (same mount as (c))
# Each case runs BENCH_REPS times (fresh mounts for first reads) and the median
# is reported as a markdown table, with the floors chunkfs is held to:
#   chunkfs first read  >= 1.5x bindfs first read
#   chunkfs second read >= 0.8x direct read
# It only reports (PASS/BELOW); exit status is nonzero only if something errored.
#
# Environment:
#   CHUNKFS=PATH        binary to measure (default: ./chunkfs, built with make if missing);
#                       CHUNKFS=bindfs runs the script without chunkfs
#   CHUNKFS_OPTS=LIST   its -o options (default: ro)
#   BENCH_SIZE_MB=N     file size in MiB (default 1024)
#   BENCH_REPS=N        repetitions per case (default 3)
#   BENCH_TMPDIR=DIR    where the file and mountpoints go (default: $TMPDIR or /tmp)
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init local_read.sh
UNMOUNT_PAUSE=0.2

SIZE_MB=${BENCH_SIZE_MB:-1024}
REPS=${BENCH_REPS:-3}
CHUNKFS_OPTS=${CHUNKFS_OPTS:-ro}

case "$SIZE_MB$REPS" in *[!0-9]*) die "BENCH_SIZE_MB and BENCH_REPS must be numbers" ;; esac
[ "$REPS" -ge 1 ] || die "BENCH_REPS must be at least 1"
command -v bindfs >/dev/null || die "bindfs not found (scripts/install-deps.sh test)"
command -v fusermount3 >/dev/null || die "fusermount3 not found (apt-get install fuse3)"
if [ -n "${CHUNKFS:-}" ]; then
	command -v "$CHUNKFS" >/dev/null || die "CHUNKFS=$CHUNKFS is not an executable"
else
	bench_build_chunkfs || die "make failed"
fi

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/chunkfs-bench.XXXXXX")
DATA=$WORK/data
FILE=$DATA/file.bin
BYTES=$((SIZE_MB * 1024 * 1024))
mkdir -p "$DATA" "$WORK/mnt-bindfs" "$WORK/mnt-chunkfs"

# mount_fs KIND MNT: a fresh mount of $DATA, ready when it returns
mount_fs() {
	local kind=$1 mnt=$2
	MOUNTED+=("$mnt")
	case "$kind" in
	bindfs) bindfs -o ro "$DATA" "$mnt" ;;
	chunkfs) "$CHUNKFS" "$DATA" "$mnt" -o "$CHUNKFS_OPTS" ;;
	esac || die "mounting $kind on $mnt failed"
	bench_wait_mount "$mnt" "" 100 || die "$mnt is not a mountpoint after starting $kind"
}

# read_mbps FILE: one sequential dd read; prints MB/s (10^6 bytes/s)
read_mbps() {
	bench_dd "$1" || die "dd of $1 failed: $DD_OUT"
	[ "$DD_BYTES" = "$BYTES" ] || die "read $DD_BYTES bytes from $1, expected $BYTES"
	bench_mbps "$BYTES" "$DD_T0" "$DD_T1"
}

median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "-" }'
}

echo "local_read: creating a ${SIZE_MB} MiB file of random data in $DATA" >&2
head -c "$BYTES" /dev/urandom >"$FILE" || die "cannot write $FILE"
cat "$FILE" >/dev/null # into the page cache

# One untimed round first: loads the binaries and libraries, so that the
# first timed round does not pay for it.
echo "local_read: warm-up round (not counted)" >&2
for kind in bindfs chunkfs; do
	mount_fs "$kind" "$WORK/mnt-$kind"
	dd if="$WORK/mnt-$kind/file.bin" of=/dev/null bs=1M count=64 status=none || die "warm-up read through $kind failed"
	bench_unmount "$WORK/mnt-$kind"
done

direct=() bind_first=() cfs_first=() cfs_second=()
for r in $(seq "$REPS"); do
	echo "local_read: round $r/$REPS" >&2
	direct+=("$(read_mbps "$FILE")")

	mount_fs bindfs "$WORK/mnt-bindfs"
	bind_first+=("$(read_mbps "$WORK/mnt-bindfs/file.bin")")
	bench_unmount "$WORK/mnt-bindfs"

	mount_fs chunkfs "$WORK/mnt-chunkfs"
	cfs_first+=("$(read_mbps "$WORK/mnt-chunkfs/file.bin")")
	cfs_second+=("$(read_mbps "$WORK/mnt-chunkfs/file.bin")")
	bench_unmount "$WORK/mnt-chunkfs"
done

d=$(median "${direct[@]}")
b=$(median "${bind_first[@]}")
c1=$(median "${cfs_first[@]}")
c2=$(median "${cfs_second[@]}")

verdict() { # value floor
	awk -v v="$1" -v f="$2" 'BEGIN { print (v >= f) ? "PASS" : "BELOW" }'
}

row() { # label median runs...
	local label=$1 m=$2
	shift 2
	printf '| %s | %s | %s | %s | %s |\n' "$label" "$m" "$(ratio "$m" "$b")" "$(ratio "$m" "$d")" "$*"
}

label=chunkfs
[ "$(basename "$CHUNKFS")" = chunkfs ] || label="chunkfs (CHUNKFS=$CHUNKFS)"
r1=$(ratio "$c1" "$b")
r2=$(ratio "$c2" "$d")

cat <<EOF

### Local sequential read: ${SIZE_MB} MiB file, backing copy in the page cache

dd bs=1M, median of $REPS runs (fresh mount for each first read); $(uname -r), $(nproc) cores; chunkfs -o $CHUNKFS_OPTS.

| case | MB/s | vs bindfs | vs direct | runs (MB/s) |
|---|---:|---:|---:|---|
EOF
row "direct read (page cache)" "$d" "${direct[@]}"
row "bindfs, first read" "$b" "${bind_first[@]}"
row "$label, first read" "$c1" "${cfs_first[@]}"
row "$label, second read (same mount)" "$c2" "${cfs_second[@]}"
cat <<EOF

| floor | measured | result |
|---|---:|---|
| chunkfs first read >= 1.5x bindfs first read | ${r1}x | $(verdict "$r1" 1.5) |
| chunkfs second read >= 0.8x direct read | ${r2}x | $(verdict "$r2" 0.8) |
EOF
