#!/bin/sh
# The container's command: mount $CHUNKFS_SOURCE on $CHUNKFS_MOUNTPOINT in
# the foreground, as PID 1, so `docker stop` (SIGTERM) unmounts cleanly
# after open files are finished.  allow_other lets other containers that
# share the mount (bind propagation) read it.  The mount tests run this
# same script (tests/mount/check_ops.c).
#
#   CHUNKFS_SOURCE      s3://BUCKET[/PREFIX] or a directory (required)
#   CHUNKFS_MOUNTPOINT  where to mount (default /mnt/chunks)
#   CHUNKFS_OPTIONS     more -o options, comma-separated (default ro)
#   CHUNKFS_WARM        a chunk_info.json inside the mount to warm from,
#                       or "all" for every file (default: none)
# Credentials come from the environment (AWS_*), a mounted ~/.aws, web
# identity (IRSA) or the instance profile; never from the command line.
set -eu
: "${CHUNKFS_SOURCE:?set CHUNKFS_SOURCE to s3://BUCKET[/PREFIX] or a directory}"
mnt=${CHUNKFS_MOUNTPOINT:-/mnt/chunks}
opts=allow_other
extra=${CHUNKFS_OPTIONS-ro}
[ -z "$extra" ] || opts=$opts,$extra
mkdir -p "$mnt"
if [ -n "${CHUNKFS_WARM:-}" ]; then
	# Mount, warm, and stay: chunkfs is still PID 1's child then, so
	# forward SIGTERM to it and wait.
	chunkfs "$CHUNKFS_SOURCE" "$mnt" -f -o "$opts" &
	pid=$!
	trap 'kill -TERM $pid 2>/dev/null' TERM INT
	until chunkfs stats "$mnt" >/dev/null 2>&1; do
		kill -0 $pid 2>/dev/null || exit 1
		sleep 0.2
	done
	if [ "$CHUNKFS_WARM" = all ]; then
		chunkfs warm "$mnt" || true
	else
		chunkfs warm "$mnt" --manifest "$mnt/$CHUNKFS_WARM" || true
	fi
	# wait returns early when the trap runs: wait again until chunkfs
	# has unmounted and exited, then exit with its status.
	while kill -0 $pid 2>/dev/null; do wait $pid || true; done
	status=0
	wait $pid || status=$?
	exit $status
fi
exec chunkfs "$CHUNKFS_SOURCE" "$mnt" -f -o "$opts"
