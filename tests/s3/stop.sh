#!/usr/bin/env bash
# Stop a server started by start.sh and remove its data directory.
#
#   tests/s3/stop.sh                 # uses $S3_PID and $S3_DIR from the env
#   tests/s3/stop.sh STATE_FILE      # a file written via S3_STATE_FILE
#   tests/s3/stop.sh S3_DIR          # the directory start.sh printed
#   tests/s3/stop.sh PID [S3_DIR]
#
# Safe in a trap: idempotent, never prompts, always exits 0 (a server that is
# already gone is not an error). Only a process whose command line is our
# server.js is signalled, and only a directory carrying start.sh's marker file
# is removed.

pid=${S3_PID:-}
dir=${S3_DIR:-}

load_state() { # $1: state file written by start.sh
    local line
    while IFS= read -r line; do
        case $line in
            S3_PID=*) pid=${line#S3_PID=} ;;
            S3_DIR=*) eval "dir=${line#S3_DIR=}" ;;   # value is printf %q-quoted
        esac
    done <"$1"
}

if [ $# -ge 1 ]; then
    if [ -d "$1" ]; then
        dir=$1; pid=
        [ -f "$dir/pid" ] && pid=$(cat "$dir/pid" 2>/dev/null)
    elif [ -f "$1" ]; then
        load_state "$1"
    else
        pid=$1
        dir=${2:-}
    fi
fi
if [ -z "$pid" ] && [ -n "$dir" ] && [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid" 2>/dev/null)
fi

is_ours() { # is $1 alive and our server.js?
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'tests/s3/server\.js\|/server\.js '
}

case $pid in
    ''|*[!0-9]*) pid= ;;
esac
if [ -n "$pid" ] && is_ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do          # up to 5 s for a clean exit
        is_ours "$pid" || break
        sleep 0.1
    done
    if is_ours "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        sleep 0.1
    fi
fi

if [ -n "$dir" ] && [ -d "$dir" ] && [ -f "$dir/.chunkfs-s3-test" ]; then
    rm -rf -- "$dir" 2>/dev/null
fi
exit 0
