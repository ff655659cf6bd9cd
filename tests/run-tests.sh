#!/bin/bash
# Run Check test programs and add up their results.
#
#   tests/run-tests.sh PROGRAM...
#
# Each program prints Check's summary line ("N%: Checks: C, Failures: F,
# Errors: E"; several when it runs several suites) and, for what could not
# run here, either "SKIP name: reason" from inside a test that Check still
# counts (it is subtracted from the passes) or "NOT RUN name: reason" for a
# test or suite that was never handed to Check.  Either way it is counted
# as skipped, never as passed.
# A program that exits non-zero without failures in its summary (a crash,
# a missing summary) counts as one failure.
#
# Prints "LABEL: N passed, N failed, N skipped" (LABEL from $RESULT_LABEL,
# default "tests") and appends "passed failed skipped" to $RESULTS_FILE when
# set.  Exits 1 when anything failed.
set -u
total_pass=0 total_fail=0 total_skip=0
for prog in "$@"; do
	echo "=== $prog"
	out=$("$prog" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	# A program may run several suites: add up every summary line.
	read -r checks failures errors < <(printf '%s\n' "$out" | awk '
		/^[0-9]+%: Checks: / {
			gsub(/,/, ""); c += $3; f += $5; e += $7
		}
		END { print c + 0, f + 0, e + 0 }')
	skips=$(printf '%s\n' "$out" | grep -c '^SKIP ')
	not_run=$(printf '%s\n' "$out" | grep -c '^NOT RUN ')
	bad=$((failures + errors))
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		echo "*** $prog exited with status $rc"
		bad=1
	fi
	pass=$((checks - failures - errors - skips))
	[ "$pass" -lt 0 ] && pass=0
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + bad))
	total_skip=$((total_skip + skips + not_run))
done
echo "${RESULT_LABEL:-tests}: $total_pass passed, $total_fail failed, $total_skip skipped"
if [ -n "${RESULTS_FILE:-}" ]; then
	echo "$total_pass $total_fail $total_skip" >>"$RESULTS_FILE"
fi
[ "$total_fail" -eq 0 ]
