/*
 * suites.h - running a test program's Check suite: fork mode (each test in
 * its own process, as tests/run-tests.sh and the mount harness expect).
 * Mount test programs that run over every store use store_run_suites()
 * (store.h), which runs each of its suites through this.
 */
#ifndef CHUNKFS_TEST_SUITES_H
#define CHUNKFS_TEST_SUITES_H

#include <check.h>

/* Run s in fork mode and free it; main()'s exit status (1 if a test
 * failed, else 0). */
int suites_run(Suite *s);

#endif
