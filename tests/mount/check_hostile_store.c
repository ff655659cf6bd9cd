/*
 * check_hostile_store.c - a mount over a store that answers what no honest
 * S3 server would (issue 13): the S3 test server's hostile mode
 * (tests/s3/README.md) lists names outside the listed prefix, names no
 * directory can show, continuation tokens that never end, and sends GET
 * bodies that never end or crawl.  Each must end in the right names, or
 * EIO within seconds, never a crash, a hang or unbounded memory.
 *
 * Suites: hostile_fs (options: junk is refused before mounting) and
 * hostile_s3 (the hostile server).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
	if (g_kind == STORE_S3)
		store_control("DELETE", "/hostile", NULL);
	tm_stop(&m);
	store_close(&st);
}

static void mount_with(const char *opts)
{
	ck_assert_msg(store_mount(&st, &m, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

/* Make the server hostile (modes, see tests/s3/README.md) for the keys
 * under dir/ of this test's prefix. */
static void hostile(const char *modes, const char *dir)
{
	char json[1024];

	snprintf(json, sizeof(json), "{\"modes\":\"%s\",\"prefix\":\"%s%s/\",\"trickle_bps\":4}",
	         modes, store_s3_prefix(&st), dir);
	ck_assert_int_eq(store_control("POST", "/hostile", json), 0);
}

/* How many answers the server made hostile with mode. */
static long long pages_of(const char *mode)
{
	return store_control_number("/hostile", "applied", mode);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The names in path, sorted and joined with ',' (without . and ..), or
 * -errno of opendir/readdir as a string "E<n>". */
static char *list_names(const char *path)
{
	static char out[4096];
	char *names[64];
	size_t n = 0, len = 0;
	struct dirent *e;
	DIR *d = opendir(path);

	if (d == NULL) {
		snprintf(out, sizeof(out), "E%d", errno);
		return out;
	}
	errno = 0;
	while ((e = readdir(d)) != NULL && n < 64) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			names[n++] = strdup(e->d_name);
	}
	if (errno != 0)
		snprintf(out, sizeof(out), "E%d", errno);
	closedir(d);
	if (errno != 0)
		n = 0;
	else
		out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(names[j], names[i]) < 0) {
				char *t = names[i];

				names[i] = names[j];
				names[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		len +=
		    (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? "," : "", names[i]);
		free(names[i]);
	}
	return out;
}

/* Names outside the directory, with '/', '.', '..', empty or with control
 * characters are left out; the good names still list, and the mount lives
 * on (an out-of-bounds read crashed it, a '/' made the directory EIO). */
START_TEST(test_s3_unusable_names_skipped)
{
	struct stat sb;

	ck_assert_int_eq(store_put(&st, "h/a", "a", 1), 0);
	ck_assert_int_eq(store_put(&st, "h/sub/b", "b", 1), 0);
	hostile("outside,slash,ctl", "h");
	mount_with(NULL);
	ck_assert_str_eq(list_names(tm_path(m.mnt, "h")), "a,sub");
	ck_assert_int_eq(stat(tm_path(m.mnt, "h/a"), &sb), 0);
	ck_assert_int_eq(stat(tm_path(m.mnt, "h/sub/b"), &sb), 0);
	ck_assert_int_eq(stat(tm_path(m.mnt, "h/sl"), &sb), -1);
	ck_assert_str_eq(list_names(tm_path(m.mnt, "h")), "a,sub");
}
END_TEST

/* Mount with opts, make listings of e/ endless with mode, and check that
 * ls of e gets EIO within secs after exactly pages pages. */
static void endless_listing_eio(const char *opts, const char *mode, double secs, long long pages)
{
	double t0;

	ck_assert_int_eq(store_put(&st, "e/a", "a", 1), 0);
	mount_with(opts);
	hostile(mode, "e");
	t0 = now_s();
	ck_assert_str_eq(list_names(tm_path(m.mnt, "e")), "E5");
	ck_assert_double_lt(now_s() - t0, secs);
	ck_assert_int_eq(pages_of(mode), pages);
}

/* The same continuation token again: EIO at once (two pages: the first,
 * and the one that repeats its token), not a listing for ever. */
START_TEST(test_s3_repeated_token_eio)
{
	endless_listing_eio("list_ttl=0", "same_token", 10, 2);
}
END_TEST

/* Ever new tokens: EIO after list_pages pages; the directory next to it
 * still lists. */
START_TEST(test_s3_endless_listing_eio)
{
	endless_listing_eio("list_ttl=0,list_pages=20", "new_tokens", 20, 20);
	ck_assert_int_eq(store_put(&st, "ok/a", "a", 1), 0);
	ck_assert_str_eq(list_names(tm_path(m.mnt, "ok")), "a");
}
END_TEST

static Suite *hostile_suite(enum store_kind kind)
{
	Suite *s = suite_create(kind == STORE_FS ? "hostile_fs" : "hostile_s3");
	TCase *tc = tcase_create(kind == STORE_FS ? "fs" : "s3");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	if (kind == STORE_S3) {
		tcase_add_test(tc, test_s3_unusable_names_skipped);
		tcase_add_test(tc, test_s3_repeated_token_eio);
		tcase_add_test(tc, test_s3_endless_listing_eio);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return store_run_suites(hostile_suite, &g_kind, "hostile");
}
