/*
 * suites.h - what every mount test program shares: running its suite once
 * per store kind, mounting a store, and the S3 test server's counters.
 */
#ifndef CHUNKFS_TEST_SUITES_H
#define CHUNKFS_TEST_SUITES_H

#include <check.h>

#include "mount.h"
#include "store.h"

/* Run one suite in fork mode; main()'s exit status (1 if a test failed). */
int suites_run(Suite *s);

/* Makes the suite for one store kind. */
typedef Suite *(*suite_make_fn)(enum store_kind kind);

/*
 * Run make(kind) for the filesystem store, then for the S3 store (NOT RUN,
 * with the reason, when there is no test server), setting *current to the
 * kind first; "NOT RUN <label>: ..." when /dev/fuse cannot be used.
 * Returns main()'s exit status.
 */
int suites_run_over_stores(suite_make_fn make, enum store_kind *current, const char *label);

/* Mount the store s on m with its options plus opts (may be NULL);
 * ck_assert fails the test, naming the daemon's log, if it does not. */
void suites_mount_store(struct test_mount *m, const struct store *s, const char *opts);

/*
 * A top-level number from the S3 test server's counters (0 when absent,
 * -1 when the server cannot be asked); scratch is a directory for the
 * answer.  suites_reset_counters() zeroes them (0 or -1).
 */
long long suites_s3_counter(const char *name, const char *scratch);
int suites_s3_reset_counters(void);

#endif
