/*
 * store.h - the store behind a test mount, seen from the test.
 *
 * Mount tests run the same cases over every backend.  A struct store says
 * what to mount (a scratch directory, or a fresh prefix of the S3 test
 * bucket that tests/check.sh starts) and gives the test its own view of
 * the stored objects through the backend interface, so a test can put
 * objects before mounting and check what landed after writing through the
 * mount.
 */
#ifndef CHUNKFS_TEST_STORE_H
#define CHUNKFS_TEST_STORE_H

#include <limits.h>
#include <stddef.h>

#include "backend.h"

enum store_kind { STORE_FS, STORE_S3 };

struct store {
	enum store_kind kind;
	char source[PATH_MAX]; /* chunkfs SOURCE */
	char opts[1024];       /* -o options the mount needs ("" if none) */
	struct backend *be;    /* the same objects, for the test */
};

/*
 * Set up a store of this kind.  STORE_FS uses dir (which must exist);
 * STORE_S3 makes a new prefix in $CHUNKFS_TEST_S3_BUCKET on
 * $CHUNKFS_TEST_S3_ENDPOINT and sets the test credentials in the
 * environment (the daemon inherits them).  0, -ENODEV when there is no S3
 * test server, or -errno.
 */
int store_open(struct store *s, enum store_kind kind, const char *dir);

/* Remove what an S3 store holds, and free the view. */
void store_close(struct store *s);

/* Reason an S3 store cannot be had, for NOT RUN lines; NULL when it can. */
const char *store_s3_unavailable(void);

int store_put(struct store *s, const char *key, const void *buf, size_t len);

/* The object's bytes (a NUL follows them) or NULL with errno set; the
 * caller frees. */
char *store_get(struct store *s, const char *key, size_t *len);

/* 1 if the object exists, 0 if not. */
int store_has(struct store *s, const char *key);

/* 1 if anything is stored under "dir/" (marker or keys), 0 if not. */
int store_has_dir(struct store *s, const char *dir);

/* Upload every file under the local directory dir, and a marker for every
 * directory that has no files, as keys relative to dir.  0 or -errno. */
int store_put_tree(struct store *s, const char *dir);

/* Upload one local file as key.  0 or -errno. */
int store_put_file(struct store *s, const char *key, const char *path);

/* The S3 store's key prefix on the server ("mt-.../"); "" for others. */
const char *store_s3_prefix(const struct store *s);

/* A request to the S3 test server's control port; 0 on success. */
int store_control(const char *method, const char *path, const char *json);

/* A number from the S3 test server's counters: counters[name] (sub NULL)
 * or counters[name][sub]; 0 when absent, -1 when unreadable. */
long long store_counter(const char *name, const char *sub);

/* The same from the JSON answer of GET path on the control port
 * (e.g. "/hostile", "applied", "same_token"). */
long long store_control_number(const char *path, const char *name, const char *sub);

struct test_mount;

/* Mount the store on m with its own options plus opts (may be NULL), as
 * tm_mount() does.  0 or -errno. */
int store_mount(const struct store *s, struct test_mount *m, const char *opts);

/* A mount test's fixture: m's scratch directories and a store of kind in
 * m->src (the test fails if either cannot be had); the end unmounts and
 * removes both. */
void store_fixture_begin(struct test_mount *m, struct store *s, enum store_kind kind);
void store_fixture_end(struct test_mount *m, struct store *s);

/* Mount the store with opts, or fail the test naming the daemon's log. */
void store_mount_ok(const struct store *s, struct test_mount *m, const char *opts);

/* The mount with opts fails before mounting and the daemon's log holds why
 * (one sentence); else the test fails. */
void store_mount_refused(const struct store *s, struct test_mount *m, const char *opts,
                         const char *why);

struct Suite;

/*
 * main() of a mount test program: for each store kind, set *kind and run
 * make(kind) in fork mode (S3 reported NOT RUN without the test server;
 * everything NOT RUN without /dev/fuse).  Returns the exit status.
 */
int store_run_suites(struct Suite *(*make)(enum store_kind kind), enum store_kind *kind,
                     const char *what);

#endif
