#!/bin/bash
# The whole test suite, run by `make check`:
#   0. the formatting check (make format-check),
#   1. unit tests in the normal build,
#   2. the same unit tests built with AddressSanitizer + UBSan,
#   3. brief libFuzzer runs (tests/fuzz/run.sh) when clang is there,
#   4. checks of contrib/ (tests/contrib/check.sh),
#   5. mount tests: the real daemon, mounted for real.
# Starts what the tests need (the S3 test server, tests/s3/), always cleans
# up (mounts, servers, scratch
# directories), and ends with one line "chunkfs: N passed, N failed,
# N skipped".  Exit status 0 only when nothing failed.
set -u
cd "$(dirname "$0")/.." || exit 1

results=$(mktemp)
scratch=$(mktemp -d /tmp/chunkfs-tests.XXXXXX)
export RESULTS_FILE=$results CHUNKFS_TEST_TMP=$scratch CHUNKFS_BIN=$PWD/chunkfs

s3_state=$scratch/s3.state
cleanup() {
	[ -f "$s3_state" ] && tests/s3/stop.sh "$s3_state" >/dev/null 2>&1
	# Unmount anything a crashed test left under the scratch directory.
	awk -v d="$scratch" '$2 ~ "^"d {print $2}' /proc/mounts | sort -r | while read -r mp; do
		fusermount3 -uz "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null
	done
	rm -rf --one-file-system "$scratch" "$results"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n##### %s\n' "$*"; }
record_failure() { echo "0 1 0" >>"$results"; echo "*** $*"; }

step "build"
make -j2 all || record_failure "build failed"

step "S3 test server"
# The tests find it through CHUNKFS_TEST_S3_*; without it they report
# themselves NOT RUN.  Credentials are set by each test, not here.
if S3_STATE_FILE=$s3_state tests/s3/start.sh --bucket chunkfs-test \
	--public-bucket chunkfs-public --quiet >/dev/null; then
	# shellcheck disable=SC1090
	. "$s3_state"
	export CHUNKFS_TEST_S3_ENDPOINT=$S3_ENDPOINT CHUNKFS_TEST_S3_CONTROL=$S3_CONTROL \
		CHUNKFS_TEST_S3_BUCKET=chunkfs-test CHUNKFS_TEST_S3_PUBLIC_BUCKET=chunkfs-public
	echo "S3 test server at $S3_ENDPOINT (control $S3_CONTROL)"
else
	echo "*** the S3 test server did not start; S3 tests will be reported NOT RUN"
fi

step "formatting (.clang-format)"
if command -v clang-format >/dev/null; then
	if make -s format-check; then
		echo "format: 1 passed, 0 failed"
		echo "1 0 0" >>"$results"
	else
		record_failure "sources differ from .clang-format: run make format"
	fi
else
	echo "NOT RUN format: clang-format is not installed"
	echo "0 0 1" >>"$results"
fi

step "unit tests"
RESULT_LABEL=unit make -s unit || true

step "unit tests under AddressSanitizer + UBSan"
ASAN_OPTIONS=detect_leaks=1 RESULT_LABEL=unit-asan make -s BUILD=build-asan SAN=1 unit || true

if [ -x tests/fuzz/run.sh ]; then
	step "fuzzing (brief)"
	out=$(tests/fuzz/run.sh 2>&1)
	rc=$?
	printf '%s\n' "$out"
	if [ $rc -ne 0 ]; then
		record_failure "fuzzing found a problem"
	elif grep -q '^SKIP ' <<<"$out"; then
		echo "0 0 $(grep -c '^SKIP ' <<<"$out")" >>"$results"
	else
		echo "$(grep -c '^PASS ' <<<"$out") 0 0" >>"$results"
	fi
fi

step "contrib (systemd units, Dockerfile, compose, Kubernetes: syntax and settings)"
out=$(tests/contrib/check.sh 2>&1)
printf '%s\n' "$out"
echo "$(grep -c '^PASS ' <<<"$out") $(grep -c '^FAIL ' <<<"$out") $(grep -c '^SKIP ' <<<"$out")" >>"$results"

step "mount tests"
RESULT_LABEL=mount make -s mount-tests || true

awk '{p += $1; f += $2; s += $3} END {printf "\nchunkfs: %d passed, %d failed, %d skipped\n", p, f, s; exit (f > 0 || p == 0)}' "$results"
