/*
 * shutdown.h - a clean end for a mount: SIGTERM, SIGINT and SIGHUP unmount
 * it lazily (no new opens by path), files still open are served until
 * they are closed, so their uploads finish, and then the daemon exits.
 * A second signal, or shutdown_timeout seconds, end the wait; unsaved
 * data then stays in the staging directory and the log says where.
 *
 * Also the FUSE destroy op, which runs when the kernel lets go of the
 * mount (fusermount3 -u, umount, or the end of the wait above).
 */
#ifndef CHUNKFS_SHUTDOWN_H
#define CHUNKFS_SHUTDOWN_H

#include <fuse_lowlevel.h>

struct chunkfs;
struct shutdown;

/*
 * Block SIGTERM, SIGINT and SIGHUP in the calling thread (and so in the
 * threads it creates later) and ignore SIGPIPE.  Call before any thread
 * is created.  0 or -errno.
 */
int shutdown_signals_block(void);

/*
 * Start the thread that waits for those signals and shuts the mount at
 * mnt down as described above; grace is the longest wait for open files in
 * seconds (0: no limit).  NULL + errno on failure.
 */
struct shutdown *shutdown_start(struct fuse_session *se, struct chunkfs *fs, const char *mnt,
                                double grace);

/* Stop and free the thread (after the session loop ended).  NULL is fine. */
void shutdown_stop(struct shutdown *s);

/*
 * Unmount a dead FUSE mount (its daemon crashed: "Transport endpoint is
 * not connected") at mnt, lazily: umount2(MNT_DETACH) as root, else
 * fusermount3 -uz.  0 or -errno.
 */
int shutdown_lazy_unmount(const char *mnt);

/* The FUSE destroy op: saves and frees what the kernel left open. */
void shutdown_destroy_op(void *userdata);

#endif
