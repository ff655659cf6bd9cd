#!/bin/sh
# tests/fuzz/run.sh [SECONDS] - build and run every tests/fuzz/fuzz_*.c.
#
# Each target is built with clang's libFuzzer plus ASan and UBSan and run
# for SECONDS (default 10, or $FUZZ_SECONDS).  A target names what it needs
# in its header comment, one line each:
#
#     fuzz-sources: backends/s3/sigv4.c lib/log.c    (compiled in)
#     fuzz-pkgs: openssl                            (pkg-config packages)
#
# A key may be given on several lines; their values are joined.  Keep each
# on a line of its own, apart from prose, so clang-format does not join it
# into the text around it.
#
# Output goes to $BUILD/fuzz (default build/fuzz): the binary, its log, a
# corpus kept between runs (seeded from tests/fuzz/corpus/<target>/ when
# that exists) and, after a crash, the input that caused it.
#
# Exit status: 0 when every target ran clean, or when clang with libFuzzer
# is missing (prints "SKIP fuzz: ..."); 1 when a target crashed or failed
# to build.
set -eu

cd "$(dirname "$0")/../.."

secs=${1:-${FUZZ_SECONDS:-10}}
clang=${CLANG:-clang}
out=${BUILD:-build}/fuzz

case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

if ! command -v "$clang" >/dev/null 2>&1; then
	echo "SKIP fuzz: clang with libFuzzer not installed"
	exit 0
fi
mkdir -p "$out"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
	'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
	>"$out/probe.c"
if ! "$clang" -fsanitize=fuzzer -o "$out/probe" "$out/probe.c" >/dev/null 2>&1; then
	echo "SKIP fuzz: clang with libFuzzer not installed ($clang cannot link -fsanitize=fuzzer)"
	exit 0
fi

# The value of a "fuzz-<key>:" line in the header comment of $1.
field() {
	sed -n "s/^[ /*]*fuzz-$2:[[:space:]]*//p" "$1" |
		sed 's/[[:space:]]*\*\/[[:space:]]*$//' | tr '\n' ' ' |
		sed 's/[[:space:]]*$//'
}

status=0
found=0
targets=$(ls tests/fuzz/fuzz_*.c 2>/dev/null || true)
set -f # no globbing of the names read from the sources below
for src in $targets; do
	[ -e "$src" ] || continue
	found=1
	name=$(basename "$src" .c)
	sources=$(field "$src" sources)
	pkgs=$(field "$src" pkgs)
	pkg_cflags=
	pkg_libs=
	if [ -n "$pkgs" ]; then
		# shellcheck disable=SC2086
		pkg_cflags=$(pkg-config --cflags $pkgs)
		# shellcheck disable=SC2086
		pkg_libs=$(pkg-config --libs $pkgs)
	fi

	echo "fuzz: building $name"
	# shellcheck disable=SC2086
	if ! "$clang" -std=gnu11 -g -O1 -fno-omit-frame-pointer \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
		-D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -Ilib -Ibackends $pkg_cflags \
		-o "$out/$name" "$src" $sources $pkg_libs; then
		echo "FAIL fuzz: $name does not build"
		status=1
		continue
	fi

	corpus=$out/$name.corpus
	mkdir -p "$corpus"
	if [ -d "tests/fuzz/corpus/$name" ]; then
		cp -R "tests/fuzz/corpus/$name"/. "$corpus"/
	fi
	set +f
	rm -f "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* "$out/$name"-oom-*
	set -f

	echo "fuzz: running $name for ${secs}s"
	if "$out/$name" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$out/$name-" "$corpus" >"$out/$name.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$out/$name.log")
		echo "PASS fuzz: $name (${runs:-?} inputs, log $out/$name.log)"
	else
		tail -n 40 "$out/$name.log"
		saved=
		set +f
		for f in "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* \
			"$out/$name"-oom-*; do
			if [ -e "$f" ]; then saved="$saved $f"; fi
		done
		set -f
		echo "FAIL fuzz: $name crashed; input saved as${saved:- (none)}"
		status=1
	fi
done

if [ $found = 0 ]; then
	echo "SKIP fuzz: no tests/fuzz/fuzz_*.c"
fi
exit $status
