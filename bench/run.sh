#!/bin/bash
# Run every benchmark bench/*.sh (except this one and lib.sh, the functions
# they share) in name order; `make bench` calls this.  Each prints its own markdown table.  Environment variables
# (CHUNKFS, BENCH_*) pass through.  Exit status: number of benchmarks that
# failed (0 = all ran).
set -uo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$(basename "${BASH_SOURCE[0]}")
failed=()
ran=0
for b in "$BENCH"/*.sh; do
	[ -e "$b" ] || continue
	case $(basename "$b") in "$self" | lib.sh) continue ;; esac
	ran=$((ran + 1))
	echo "## bench/$(basename "$b")"
	start=$(date +%s)
	if bash "$b"; then
		echo
		echo "(bench/$(basename "$b"): $(($(date +%s) - start)) s)"
	else
		rc=$?
		echo "bench/$(basename "$b"): FAILED (exit $rc)" >&2
		failed+=("$(basename "$b")")
	fi
	echo
done
echo "bench/run.sh: ran $ran benchmark(s), ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
exit "${#failed[@]}"
