#!/usr/bin/env bash
# Start the chunkfs S3 test server (s3rver + strict SigV4 + faults) in the
# background on 127.0.0.1 with a fresh data directory, wait until it listens,
# and print shell-evalable variables:
#
#   eval "$(tests/s3/start.sh --bucket test)" || exit 1
#   trap 'tests/s3/stop.sh' EXIT       # uses $S3_PID / $S3_DIR
#
# Printed: S3_PORT S3_CONTROL_PORT S3_PID S3_DIR S3_ENDPOINT S3_CONTROL S3_LOG
# (one NAME=value per line, then an export line). All arguments go to
# server.js (see `node tests/s3/server.js --help`); without any --bucket or
# --public-bucket, a bucket named "test" is created.
#
# Environment:
#   S3_START_TIMEOUT  seconds to wait for the server (default 30)
#   S3_STATE_FILE     also write the variables to this file (for stop.sh FILE)
#   S3_VERBOSE=1      let s3rver log every request to $S3_LOG
#   TMPDIR            where the data directory is made (default /tmp)
#
# Exit status: 0 when listening; 1 on failure (nothing left running);
# 127 when node/npm are missing.

set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
timeout_s=${S3_START_TIMEOUT:-30}

say() { printf 'start.sh: %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1; then
    say "node is not installed. Install it with: apt-get install -y nodejs npm"
    exit 127
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "${node_major:-0}" -lt 18 ]; then
    say "node $(node --version 2>/dev/null) is too old; need Node.js >= 18 (apt-get install -y nodejs npm on Debian 12)"
    exit 127
fi

# --- dependencies (s3rver@3.7.1), installed once into tests/s3/node_modules
if [ ! -f "$here/node_modules/s3rver/package.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        say "npm is not installed. Install it with: apt-get install -y nodejs npm"
        exit 127
    fi
    npm_log=$(mktemp "${TMPDIR:-/tmp}/chunkfs-s3-npm.XXXXXX")
    (
        # one installer at a time when several tests start together
        if command -v flock >/dev/null 2>&1; then flock 9; fi
        cd "$here" || exit 1
        [ -f node_modules/s3rver/package.json ] && exit 0
        if [ -f package-lock.json ]; then
            npm ci --no-audit --no-fund --loglevel=error
        else
            npm install --no-audit --no-fund --loglevel=error
        fi
    ) 9>"$here/.npm-install.lock" </dev/null >"$npm_log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] || [ ! -f "$here/node_modules/s3rver/package.json" ]; then
        say "installing s3rver with npm failed (exit $rc). The npm registry must be"
        say "reachable (or copy tests/s3/node_modules from a machine where"
        say "'npm ci' in tests/s3 worked). Last lines of npm's output:"
        tail -n 15 "$npm_log" >&2
        rm -f "$npm_log"
        exit 1
    fi
    rm -f "$npm_log"
fi

# --- arguments: default bucket
have_bucket=0
for a in "$@"; do
    case $a in --bucket|--bucket=*|--public-bucket|--public-bucket=*) have_bucket=1 ;; esac
done
extra=()
[ $have_bucket -eq 1 ] || extra+=(--bucket test)
[ "${S3_VERBOSE:-0}" = 1 ] || extra+=(--silent)

dir=$(mktemp -d "${TMPDIR:-/tmp}/chunkfs-s3.XXXXXX") || { say "mktemp failed"; exit 1; }
: >"$dir/.chunkfs-s3-test"          # marker: stop.sh only removes such dirs
mkdir -p "$dir/data" "$dir/spool"
ready="$dir/ready.json"
logf="$dir/server.log"

node --openssl-legacy-provider "$here/server.js" \
    --port 0 --dir "$dir/data" --spool-dir "$dir/spool" --ready-file "$ready" \
    "${extra[@]}" "$@" </dev/null >>"$logf" 2>&1 &
pid=$!
echo "$pid" >"$dir/pid"

fail() {
    say "$*"
    if [ -s "$logf" ]; then
        say "server log ($logf):"
        tail -n 20 "$logf" >&2
    fi
    kill "$pid" 2>/dev/null
    sleep 0.2
    kill -9 "$pid" 2>/dev/null
    rm -rf "$dir"
    exit 1
}

deadline=$(( $(date +%s) + timeout_s ))
while [ ! -s "$ready" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        fail "the server exited during startup (exit $?)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        fail "the server did not become ready within ${timeout_s}s"
    fi
    sleep 0.1
done

json=$(cat "$ready")
port=$(printf '%s' "$json" | sed -n 's/.*"port":\([0-9][0-9]*\).*/\1/p')
cport=$(printf '%s' "$json" | sed -n 's/.*"control_port":\([0-9][0-9]*\).*/\1/p')
[ -n "$port" ] && [ -n "$cport" ] || fail "cannot parse $ready: $json"

vars=$(
    printf 'S3_PORT=%q\n' "$port"
    printf 'S3_CONTROL_PORT=%q\n' "$cport"
    printf 'S3_PID=%q\n' "$pid"
    printf 'S3_DIR=%q\n' "$dir"
    printf 'S3_ENDPOINT=%q\n' "http://127.0.0.1:$port"
    printf 'S3_CONTROL=%q\n' "http://127.0.0.1:$cport"
    printf 'S3_LOG=%q\n' "$logf"
    echo 'export S3_PORT S3_CONTROL_PORT S3_PID S3_DIR S3_ENDPOINT S3_CONTROL S3_LOG'
)
printf '%s\n' "$vars" >"$dir/state"
if [ -n "${S3_STATE_FILE:-}" ]; then
    printf '%s\n' "$vars" >"$S3_STATE_FILE.tmp.$$" && mv -f "$S3_STATE_FILE.tmp.$$" "$S3_STATE_FILE"
fi
printf '%s\n' "$vars"
