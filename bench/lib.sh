# shellcheck shell=bash
# Shell functions the benchmarks share; sourced, never run (bench/run.sh
# skips it).  A benchmark does
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_init NAME        # messages start with "NAME: "
#
# and then registers what it starts, so that bench_cleanup (run on every
# exit, by the traps bench_init sets) takes it down:
#   MOUNTED+=(MNT)    unmounted
#   DAEMONS+=(PID)    killed if it is still running
#   SCRATCH+=(DIR)    removed (--one-file-system); WORK is removed too
#   bench_start_server, bench_stop: the S3 test server (tests/s3)
#
# UNMOUNT_TRIES and UNMOUNT_PAUSE (set by the benchmark, default 10 and
# 0.3 s) say how long bench_unmount retries a busy mount.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LC_ALL=C

BENCH_NAME=bench
WORK=
SERVER_UP=0
MOUNTED=()
DAEMONS=()
SCRATCH=()
UNMOUNT_TRIES=10
UNMOUNT_PAUSE=0.3

say() { echo "$BENCH_NAME: $*" >&2; }
die() {
	say "$*"
	exit 1
}

bench_init() { # NAME
	BENCH_NAME=$1
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# bench_unmount MNT [PID]: unmount MNT, retrying while it is busy, lazily
# if it stays mounted; with PID, wait for that daemon to exit (10 s, then
# it is killed) and reap it.
bench_unmount() {
	local mnt=$1 pid=${2:-} _
	for _ in $(seq "$UNMOUNT_TRIES"); do
		mountpoint -q "$mnt" 2>/dev/null || break
		fusermount3 -u "$mnt" 2>/dev/null && break
		sleep "$UNMOUNT_PAUSE"
	done
	if mountpoint -q "$mnt" 2>/dev/null; then
		say "$mnt still mounted; lazy unmount"
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	[ -n "$pid" ] || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "daemon $pid still running after unmount of $mnt; killing it"
		kill -TERM "$pid" 2>/dev/null
		sleep 1
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# bench_wait_mount MNT [PID [TRIES]]: wait until MNT is a mountpoint,
# TRIES (300) times 0.1 s.  0 when it is; 1 when the daemon PID exited
# first; 2 when time ran out.
bench_wait_mount() {
	local mnt=$1 pid=${2:-} _
	for _ in $(seq "${3:-300}"); do
		mountpoint -q "$mnt" && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 2
}

bench_cleanup() {
	local rc=$? m p d
	trap - EXIT INT TERM
	cd /
	for m in "${MOUNTED[@]}"; do
		bench_unmount "$m"
	done
	# Only daemons still among this shell's children: a reaped one's pid
	# may belong to someone else by now.
	for p in "${DAEMONS[@]}"; do
		if [[ " $(jobs -p | tr '\n' ' ') " == *" $p "* ]]; then
			kill -KILL "$p" 2>/dev/null
		fi
	done
	bench_stop
	for d in "${SCRATCH[@]}" "$WORK"; do
		if [ -n "$d" ] && [ -d "$d" ]; then
			rm -rf --one-file-system "$d"
		fi
	done
	exit "$rc"
}

# The chunkfs binary to measure when CHUNKFS is not set: ./chunkfs, built
# with make when missing.  Sets CHUNKFS; 1 if make failed.
bench_build_chunkfs() {
	CHUNKFS=$REPO/chunkfs
	[ -x "$CHUNKFS" ] || make -C "$REPO" chunkfs >&2
}

# MB/s (10^6 bytes a second) for BYTES moved from time T0 to T1 (seconds).
bench_mbps() { # BYTES T0 T1
	awk -v b="$1" -v t0="$2" -v t1="$3" 'BEGIN { d = t1 - t0; if (d <= 0) d = 1e-6; printf "%.0f\n", b / d / 1e6 }'
}

# bench_dd FILE [TIMEOUT]: one timed sequential read, dd bs=1M, bounded by
# TIMEOUT seconds when given.  Sets DD_OUT (what dd said), DD_RC, DD_BYTES
# (bytes it read) and DD_T0/DD_T1 (start and end); returns DD_RC.
# shellcheck disable=SC2034 # the DD_* variables are for the caller
bench_dd() {
	DD_T0=$(date +%s.%N)
	if [ -n "${2:-}" ]; then
		DD_OUT=$(timeout -k 10 "$2" dd if="$1" of=/dev/null bs=1M 2>&1)
	else
		DD_OUT=$(dd if="$1" of=/dev/null bs=1M 2>&1)
	fi
	DD_RC=$?
	DD_T1=$(date +%s.%N)
	DD_BYTES=$(sed -n 's/^\([0-9][0-9]*\) bytes.*/\1/p' <<<"$DD_OUT")
	return $DD_RC
}

# --- the S3 test server and its peers ------------------------------------------

# The test server's credentials and region, for chunkfs, the peers and curl.
bench_s3_env() {
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_EC2_METADATA_DISABLED=true
	export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
	unset AWS_SESSION_TOKEN AWS_PROFILE
}

# bench_start_server BUCKET: start tests/s3 with BUCKET, its data under
# WORK and no added latency; sets S3_ENDPOINT, S3_CONTROL, ... (start.sh's
# variables).  1 if it did not start.
bench_start_server() {
	local env_out
	env_out=$(TMPDIR=$WORK "$REPO/tests/s3/start.sh" --bucket "$1" --latency-ms 0) || return 1
	eval "$env_out"
	SERVER_UP=1
}

bench_stop() {
	if [ "$SERVER_UP" = 1 ]; then
		"$REPO/tests/s3/stop.sh" >/dev/null 2>&1
		SERVER_UP=0
	fi
}

# The latency the server adds before each response, in ms.
bench_latency() { # MS
	curl -sS -m 30 -X POST "$S3_CONTROL/latency?ms=$1" >/dev/null
}

# curl with the test server's SigV4 signature (payload unsigned).
scurl() {
	curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# Is peer $1 in PEERS (the benchmark's list of rows)?
want() { [[ " $PEERS " == *" $1 "* ]]; }

# Credentials for the peers: PASSWD (s3fs's passwd_file) and RCONF
# (rclone's config with the remote "remote"), in WORK.
bench_peer_configs() {
	PASSWD=$WORK/s3fs.passwd
	printf 'S3RVER:S3RVER\n' >"$PASSWD"
	chmod 600 "$PASSWD"
	RCONF=$WORK/rclone.conf
	cat >"$RCONF" <<EOF
[remote]
type = s3
provider = Other
access_key_id = S3RVER
secret_access_key = S3RVER
region = us-east-1
endpoint = $S3_ENDPOINT
force_path_style = true
EOF
}

# --- page cache and daemons ----------------------------------------------------

# Write dirty pages back and drop the page cache, dentries and inodes.
bench_drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || say "cannot drop the page cache (not root?): cells are not independent"
}

# CPU seconds (user + system) process PID has used so far; empty when gone.
bench_cpu_seconds() { # PID
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null
}

# Peak RSS (VmHWM) of process PID in MiB; empty when gone.
bench_vmhwm_mib() { # PID
	awk '/^VmHWM:/ { printf "%.0f\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}
