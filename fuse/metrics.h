/*
 * metrics.h - the statistics document in Prometheus' text format, served
 * on http://127.0.0.1:PORT/metrics by one thread (-o metrics_port=PORT),
 * to many clients at once, each within a short deadline.
 *
 * Every number of `chunkfs stats` becomes one line
 * "chunkfs_<group>_<name> <value>" (chunkfs_s3_get 12,
 * chunkfs_fuse_read_bytes 3145728).  Only loopback is listened on: the
 * numbers name no keys, but the port is no business of other hosts.
 */
#ifndef CHUNKFS_METRICS_H
#define CHUNKFS_METRICS_H

struct chunkfs;
struct metrics;

/*
 * Listen on 127.0.0.1:port.  Serves nothing before metrics_run().  On
 * failure prints one sentence to stderr and returns NULL with errno:
 * EINVAL when port is no TCP port (a mistake in the options), another
 * errno when the port cannot be had (taken by another process: the
 * sentence is a warning, the mount goes on without metrics).
 */
struct metrics *metrics_open(struct chunkfs *fs, unsigned port);

/* Start the serving thread (after daemonizing).  0 or -1 + errno. */
int metrics_run(struct metrics *m);

/* Stop the thread, close the socket, free.  NULL is fine. */
void metrics_stop(struct metrics *m);

/*
 * The text served for the document json (a stats document): one line per
 * number.  The caller frees it.  NULL on failure.
 */
char *metrics_text(const char *json);

#endif
