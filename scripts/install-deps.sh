#!/bin/bash
# Install what chunkfs needs to build, test and benchmark, on Debian 12, with apt-get.
#
#   scripts/install-deps.sh [--check] [GROUP...]
#
# GROUP is one of (each includes the ones before it):
#   build   compiler, libfuse3, libcurl, OpenSSL, Check, libxml2, jansson, inih, xxhash, clang-format
#   test    build + test tools: awscli, fio, attr, bindfs, nodejs, npm, python3-numpy,
#           curl, man-db, python3-yaml, systemd (systemd-analyze for contrib/), ...
#           (+ clang and its runtime for libFuzzer, and python3-torch for the
#           torch.load test, when the archive has them)
#   bench   test + the peer filesystems s3fs and rclone, curl, and for
#           bench/model_load.sh python3-boto3 and python3-torch (required here)
# Default: test.
#
# Idempotent: when everything is installed it does nothing and touches no
# network.  When something is missing it runs `apt-get update` once and
# `apt-get install -y --no-install-recommends` for the missing packages
# (root only; otherwise it prints the sudo command to run and exits 1).
# --check only reports what is missing (exit 1 if anything is).
set -euo pipefail

BUILD_PKGS=(build-essential pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev check
	libxml2-dev libjansson-dev libinih-dev libxxhash-dev ca-certificates git clang-format)
TEST_PKGS=(awscli fio attr bindfs nodejs npm python3 python3-numpy procps psmisc util-linux
	curl mount bsdutils man-db python3-yaml systemd)
# Installed when the archive has them; their absence is not an error.
TEST_OPTIONAL=(clang libclang-rt-14-dev python3-torch)
BENCH_PKGS=(s3fs rclone curl python3-boto3 python3-torch)

usage() {
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

check_only=0
want_build=0 want_test=0 want_bench=0
for arg in "$@"; do
	case "$arg" in
	build) want_build=1 ;;
	test) want_test=1 ;;
	bench) want_bench=1 ;;
	--check) check_only=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "install-deps.sh: unknown argument '$arg'" >&2
		usage >&2
		exit 2
		;;
	esac
done
if [ $((want_build + want_test + want_bench)) -eq 0 ]; then
	want_test=1
fi

required=("${BUILD_PKGS[@]}")
optional=()
if [ "$want_test" = 1 ] || [ "$want_bench" = 1 ]; then
	required+=("${TEST_PKGS[@]}")
	optional+=("${TEST_OPTIONAL[@]}")
fi
if [ "$want_bench" = 1 ]; then
	required+=("${BENCH_PKGS[@]}")
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps.sh: needs a Debian system (dpkg-query and apt-get); install these by hand:" >&2
	echo "  ${required[*]}" >&2
	exit 1
fi

# Every installed package name, and every name an installed package provides
# (Node.js from NodeSource provides npm and conflicts with Debian's npm: asking
# apt for npm there would replace Node.js 20 by Debian's 18).
installed_names() {
	dpkg-query -W -f='${db:Status-Status}|${Package}|${Provides}\n' 2>/dev/null |
		awk -F'|' '$1 == "installed" {
			print $2
			n = split($3, p, ",")
			for (i = 1; i <= n; i++) { sub(/^ +/, "", p[i]); sub(/ .*/, "", p[i]); if (p[i] != "") print p[i] }
		}' | sort -u
}

# missing_from NAME... -> the names not installed (nor provided), one per line
missing_from() {
	local have
	have=$(installed_names)
	local p
	for p in "$@"; do
		if ! grep -qxF -- "$p" <<<"$have"; then
			echo "$p"
		fi
	done
}

# available NAME -> true when apt knows an installable version (no network)
available() {
	local cand
	cand=$(apt-cache policy -- "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
	[ -n "$cand" ] && [ "$cand" != "(none)" ]
}

mapfile -t missing < <(missing_from "${required[@]}")
missing_opt=()
if [ "${#optional[@]}" -gt 0 ]; then
	while IFS= read -r p; do
		if [ -n "$p" ] && available "$p"; then missing_opt+=("$p"); fi
	done < <(missing_from "${optional[@]}")
fi

if [ "${#missing[@]}" -eq 0 ] && [ "${#missing_opt[@]}" -eq 0 ]; then
	echo "install-deps.sh: all ${#required[@]} packages are installed."
	exit 0
fi

to_install=("${missing[@]}" "${missing_opt[@]}")
echo "install-deps.sh: missing: ${to_install[*]}"
if [ "$check_only" = 1 ]; then
	exit 1
fi

if [ "$(id -u)" != 0 ]; then
	echo "install-deps.sh: not root; run:" >&2
	echo "sudo apt-get update && sudo apt-get install -y --no-install-recommends ${to_install[*]}"
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update

# Optional packages the old package lists did not know of may be there now.
if [ "${#optional[@]}" -gt 0 ]; then
	missing_opt=()
	while IFS= read -r p; do
		if [ -z "$p" ]; then continue; fi
		if available "$p"; then
			missing_opt+=("$p")
		else
			echo "install-deps.sh: optional package $p is not in the archive; skipping it."
		fi
	done < <(missing_from "${optional[@]}")
	to_install=("${missing[@]}" "${missing_opt[@]}")
fi

if [ "${#to_install[@]}" -gt 0 ]; then
	apt-get install -y --no-install-recommends "${to_install[@]}"
fi

mapfile -t still < <(missing_from "${required[@]}")
if [ "${#still[@]}" -gt 0 ]; then
	echo "install-deps.sh: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
echo "install-deps.sh: done; installed ${to_install[*]}."
