/*
 * warm.h - `chunkfs warm`: read files through a mount once, in parallel,
 * so later reads are served from the caches (the disk cache with
 * -o cache_dir, else the memory cache and the kernel's page cache).
 *
 *   chunkfs warm MOUNTPOINT [PATH...] [--manifest FILE] [-j N] [-q]
 *
 * PATHs are files or directories inside the mount (relative to it or
 * absolute; none: the whole mount).  A manifest is a chunk_info.json in
 * the chunk library's format or chunkfs's superset of it (manifest.h):
 * its chunk files are read in its order, then its "config" (else a
 * config.json beside it, if any), relative to the manifest's directory
 * when the manifest is inside the mount, else relative to MOUNTPOINT.  A
 * name that is absolute, has a ".." component or resolves (through
 * symlinks) outside that directory is refused; anything but a regular
 * file (a FIFO, a device) is skipped, and files are opened with
 * O_NONBLOCK | O_NOFOLLOW.  Progress goes to stderr: a bar with bytes,
 * rate and ETA on a terminal, a plain line every 5 s otherwise.
 * SIGINT/SIGTERM stop it (exit 130, with a line saying so), within about
 * a second even when a read is stuck in a slow store.
 */
#ifndef CHUNKFS_WARM_H
#define CHUNKFS_WARM_H

/* argv[0] is "warm".  Returns the exit status. */
int warm_command(int argc, char *argv[]);

#endif
