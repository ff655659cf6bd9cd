/*
 * mount.h - mounting chunkfs for real in a test.
 *
 * Each test gets its own scratch directory under $CHUNKFS_TEST_TMP
 * (default /tmp/chunkfs-tests) holding src/ (the backing directory), mnt/
 * (the mountpoint) and staging/.  tm_start() runs the chunkfs binary
 * ($CHUNKFS_BIN, default ./chunkfs) in the foreground as a child and waits
 * until the mount is up.  The mount comes down in tm_stop(), and also when
 * the test process exits early: an atexit() handler (a failed ck_assert
 * exits the forked test), and the daemon's parent-death signal (a test
 * killed by its timeout).  tests/check.sh sweeps whatever is left.
 */
#ifndef CHUNKFS_TEST_MOUNT_H
#define CHUNKFS_TEST_MOUNT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct test_mount {
	char root[PATH_MAX];
	char src[PATH_MAX];
	char mnt[PATH_MAX];
	char staging[PATH_MAX];
	pid_t pid;
};

/* Make the scratch directories (no mount).  0 or -errno. */
int tm_prepare(struct test_mount *m);

/*
 * Mount m->src (or source, when not NULL) on m->mnt with extra -o options
 * (may be NULL).  0 once mounted, or -errno (the daemon exited or the mount
 * did not appear within 10 s).
 */
int tm_mount(struct test_mount *m, const char *source, const char *opts);

/* Unmount and wait for the daemon.  Returns the daemon's exit status. */
int tm_unmount(struct test_mount *m);

/* tm_prepare + tm_mount of m->src. */
int tm_start(struct test_mount *m, const char *opts);

/* Unmount if mounted and remove the scratch directory. */
void tm_stop(struct test_mount *m);

/* "<dir>/<rel>" in a static rotating buffer (8 slots). */
const char *tm_path(const char *dir, const char *rel);

/* Peak resident memory of the daemon in KiB (VmHWM), or -1. */
long tm_daemon_peak_rss_kb(const struct test_mount *m);

/* Run a shell command; returns its exit status (or -1). */
int tm_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write len bytes of pattern(seed) to path; 0 or -errno. */
int tm_write_pattern(const char *path, uint64_t len, uint32_t seed);

/* Fill buf with the pattern bytes at [off, off + len) of pattern(seed). */
void tm_pattern(void *buf, uint64_t off, size_t len, uint32_t seed);

/* Where buf, holding [off, off + len) of pattern(seed), first differs
 * from it: the index of the first wrong byte, or len if none is. */
size_t tm_pattern_check(const void *buf, uint64_t off, size_t len, uint32_t seed);

/* Whole-file helpers: read a file (caller frees, *len set; a NUL follows
 * the data) / write one. */
char *tm_read_file(const char *path, size_t *len);
int tm_write_file(const char *path, const void *buf, size_t len);

#endif
