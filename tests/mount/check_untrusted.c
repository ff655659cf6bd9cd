/*
 * check_untrusted.c - a mount facing what it cannot trust, mounted for
 * real (issue 13):
 *
 *   logs     a key holding "\n", a tab and DEL shows in the
 *            daemon's log as escapes, on the one line of its event: it
 *            cannot forge a line (finding 10).
 *
 * Suites: untrusted_fs (a scratch directory) and untrusted_s3 (the S3
 * test server).
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount.h"
#include "store.h"

static struct test_mount m;
static struct store st;
static enum store_kind g_kind;

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
	ck_assert_int_eq(store_open(&st, g_kind, m.src), 0);
}

static void teardown(void)
{
	tm_stop(&m);
	store_close(&st);
}

static void mount_with(const char *opts)
{
	ck_assert_msg(store_mount(&st, &m, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

/* Lines of the daemon's log that hold s (0 when none or unreadable). */
static int log_lines_with(const char *s)
{
	char path[PATH_MAX + 16], line[4096];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/daemon.log", m.root);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

/* An object and a directory of one name make the lookup log the key: the
 * key's newline and escape sequence show escaped on that line. */
START_TEST(test_s3_key_escaped_in_log)
{
	static const char name[] = "evil\nchunkfs: error: forged line\t\x7f";
	char child[sizeof(name) + 8];
	struct stat sb;

	snprintf(child, sizeof(child), "%s/child", name);
	ck_assert_int_eq(store_put(&st, name, "object", 6), 0);
	ck_assert_int_eq(store_put(&st, child, "c", 1), 0);
	mount_with(NULL);
	ck_assert_int_eq(stat(tm_path(m.mnt, name), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(log_lines_with("\"evil\\nchunkfs: error: forged line\\t\\x7f\" is both an "
	                                "object and a directory"),
	                 1);
	ck_assert_int_eq(log_lines_with("forged line"), 1);
	ck_assert_int_eq(log_lines_with("\x7f"), 0);
}
END_TEST

static Suite *untrusted_suite(enum store_kind kind)
{
	Suite *s = suite_create(kind == STORE_FS ? "untrusted_fs" : "untrusted_s3");
	TCase *tc = tcase_create(kind == STORE_FS ? "fs" : "s3");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	if (kind == STORE_S3) {
		tcase_add_test(tc, test_s3_key_escaped_in_log);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return store_run_suites(untrusted_suite, &g_kind, "untrusted");
}
