#!/bin/bash
# Run Check test programs and add up their results.
#
#   tests/run-tests.sh PROGRAM...
#
# Each program prints Check's summary line ("N%: Checks: C, Failures: F,
# Errors: E") and one "SKIP name: reason" line per test that could not run
# here.  A skipped test is counted as skipped, never as passed: Check counts
# a test that printed SKIP and returned as a pass, so those are subtracted.
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
	summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
	skips=$(printf '%s\n' "$out" | grep -c '^SKIP ')
	checks=0 failures=0 errors=0
	if [ -n "$summary" ]; then
		checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$summary")
		failures=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$summary")
		errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$summary")
	fi
	bad=$((failures + errors))
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		echo "*** $prog exited with status $rc"
		bad=1
	fi
	pass=$((checks - failures - errors - skips))
	[ "$pass" -lt 0 ] && pass=0
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + bad))
	total_skip=$((total_skip + skips))
done
echo "${RESULT_LABEL:-tests}: $total_pass passed, $total_fail failed, $total_skip skipped"
if [ -n "${RESULTS_FILE:-}" ]; then
	echo "$total_pass $total_fail $total_skip" >>"$RESULTS_FILE"
fi
[ "$total_fail" -eq 0 ]
