/*
 * check_lookup.c - what a lookup costs (issue 12, item 3), mounted for
 * real: a recent listing of the parent answers lookups of its children,
 * a HEAD only where metadata is asked for, nothing at all under -o pin;
 * changes through the mount are seen at once, changes behind its back
 * after list_ttl (never under pin until a remount).
 *
 * Suites: lookup_fs (a scratch directory: own changes only) and lookup_s3
 * (the S3 test server, which counts requests by type).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount.h"
#include "store.h"

enum { N_FILES = 27 };

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

static void reset_counters(void)
{
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
}

static long long lists(void)
{
	return store_counter("ListObjectsV2", NULL);
}

static long long heads(void)
{
	return store_counter("ops", "HeadObject");
}

static long long requests(void)
{
	return store_counter("total", NULL);
}

static int exists(const char *rel)
{
	struct stat sb;

	return stat(tm_path(m.mnt, rel), &sb) == 0;
}

static void assert_absent(const char *rel)
{
	struct stat sb;

	ck_assert_msg(stat(tm_path(m.mnt, rel), &sb) < 0 && errno == ENOENT, "%s exists", rel);
}

/* N_FILES small files "m/layer_I.pt" holding "layer I". */
static void put_model(void)
{
	char key[64], text[64];

	for (int i = 0; i < N_FILES; i++) {
		snprintf(key, sizeof(key), "m/layer_%d.pt", i);
		snprintf(text, sizeof(text), "layer %d", i);
		ck_assert_int_eq(store_put(&st, key, text, strlen(text)), 0);
	}
}

/* stat every file of the model; each must have its size. */
static void stat_model(void)
{
	char rel[64];
	struct stat sb;

	for (int i = 0; i < N_FILES; i++) {
		snprintf(rel, sizeof(rel), "m/layer_%d.pt", i);
		ck_assert_int_eq(stat(tm_path(m.mnt, rel), &sb), 0);
		ck_assert_int_eq(sb.st_size, i < 10 ? 7 : 8);
	}
}

/* Cold stats of N files in one directory: one LIST, and one HEAD per file
 * with the default metadata=store; a name that is not there and an open
 * right after the lookup cost nothing more. */
START_TEST(test_s3_cold_stats_one_list)
{
	put_model();
	mount_with(NULL);
	ck_assert(exists("m")); /* the root's listing */
	reset_counters();
	stat_model();
	ck_assert_int_eq(lists(), 1);
	ck_assert_int_eq(heads(), N_FILES);
	assert_absent("m/layer_99.pt");
	assert_absent("m/layer_1");
	ck_assert_int_eq(requests(), 1 + N_FILES);
	/* A new name: lookup (from the listing, HEAD) then open, no stat. */
	ck_assert_int_eq(store_put(&st, "m/extra.pt", "extra", 5), 0);
	tm_unmount(&m);
	mount_with(NULL);
	ck_assert(exists("m"));
	reset_counters();
	ck_assert_int_eq(tm_sh("cat '%s/m/extra.pt' >/dev/null", m.mnt), 0);
	ck_assert_int_eq(lists(), 1);
	ck_assert_int_eq(heads(), 1);
}
END_TEST

/* metadata=refuse: the listing is all a lookup needs. */
START_TEST(test_s3_no_head_mode)
{
	put_model();
	mount_with("metadata=refuse");
	ck_assert(exists("m"));
	reset_counters();
	stat_model();
	assert_absent("m/nothing");
	ck_assert_int_eq(lists(), 1);
	ck_assert_int_eq(heads(), 0);
	ck_assert_int_eq(requests(), 1);
}
END_TEST

/* Creating, renaming and removing through the mount are seen right after,
 * though the directory's listing said otherwise a moment before. */
START_TEST(test_own_changes_seen_at_once)
{
	ck_assert_int_eq(store_put(&st, "d/x", "x", 1), 0);
	mount_with(NULL);
	assert_absent("d/new");
	assert_absent("d/sub");
	ck_assert_int_eq(tm_write_file(tm_path(m.mnt, "d/new"), "new", 3), 0);
	ck_assert(exists("d/new"));
	ck_assert_int_eq(rename(tm_path(m.mnt, "d/new"), tm_path(m.mnt, "d/moved")), 0);
	assert_absent("d/new");
	ck_assert(exists("d/moved"));
	ck_assert_int_eq(unlink(tm_path(m.mnt, "d/moved")), 0);
	assert_absent("d/moved");
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d/sub"), 0755), 0);
	ck_assert(exists("d/sub"));
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "d/sub")), 0);
	assert_absent("d/sub");
	/* A file being written is found before it is saved. */
	{
		int fd = open(tm_path(m.mnt, "d/open"), O_CREAT | O_WRONLY, 0644);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "abc", 3), 3);
		ck_assert(exists("d/open"));
		ck_assert_int_eq(close(fd), 0);
	}
	ck_assert(exists("d/open"));
	ck_assert(exists("d/x"));
}
END_TEST

/* An object added behind the mount's back shows once list_ttl has passed;
 * under pin it does not show until a remount. */
START_TEST(test_s3_others_changes_after_ttl_not_with_pin)
{
	ck_assert_int_eq(store_put(&st, "d/x", "x", 1), 0);
	mount_with("list_ttl=1");
	assert_absent("d/late");
	ck_assert_int_eq(store_put(&st, "d/late", "late", 4), 0);
	assert_absent("d/late"); /* the listing still answers */
	usleep(1300 * 1000);
	ck_assert(exists("d/late"));
	tm_unmount(&m);

	mount_with("pin,list_ttl=1");
	assert_absent("d/later");
	ck_assert_int_eq(store_put(&st, "d/later", "later", 5), 0);
	usleep(1300 * 1000);
	assert_absent("d/later");
	ck_assert_int_ne(tm_sh("ls '%s/d' | grep -qx later", m.mnt), 0); /* nor in ls */
	tm_unmount(&m);
	mount_with("pin");
	ck_assert(exists("d/later"));
}
END_TEST

/* Under pin, a second stat, open and read of the same files sends no
 * request at all. */
START_TEST(test_s3_pin_second_load_sends_nothing)
{
	put_model();
	mount_with("pin");
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			reset_counters();
		stat_model();
		ck_assert_int_eq(tm_sh("cat '%s'/m/layer_*.pt >/dev/null", m.mnt), 0);
		assert_absent("m/nothing");
	}
	ck_assert_msg(requests() == 0, "%lld requests: %lld LIST, %lld HEAD, %lld GET", requests(),
	              lists(), heads(), store_counter("GET", NULL));
}
END_TEST

/* pin with cache_dir: a remount answers lookups from the listings it kept
 * in the cache directory and reads from the disk tier: a whole load sends
 * no request; a change through the mount forgets the kept listings. */
START_TEST(test_s3_pin_cache_dir_remount_sends_nothing)
{
	char opts[PATH_MAX + 32], *text;
	size_t len;

	put_model();
	snprintf(opts, sizeof(opts), "pin,cache_dir=%s/dcache", m.root);
	mount_with(opts);
	stat_model();
	ck_assert_int_eq(tm_sh("cat '%s'/m/layer_*.pt >/dev/null", m.mnt), 0);
	ck_assert_int_eq(tm_unmount(&m), 0);
	ck_assert_int_eq(tm_sh("ls '%s'/dcache/listings/*.json >/dev/null", m.root), 0);
	mount_with(opts);
	reset_counters();
	stat_model();
	ck_assert_int_eq(tm_sh("cat '%s'/m/layer_*.pt >/dev/null", m.mnt), 0);
	text = tm_read_file(tm_path(m.mnt, "m/layer_12.pt"), &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(len, 8);
	ck_assert(memcmp(text, "layer 12", 8) == 0);
	free(text);
	assert_absent("m/nothing");
	ck_assert_msg(requests() == 0, "%lld requests: %lld LIST, %lld HEAD, %lld GET", requests(),
	              lists(), heads(), store_counter("GET", NULL));
	/* a write through the mount: the kept listings are gone, a new name
	 * is seen */
	ck_assert_int_eq(tm_sh("echo new > '%s'/m/fresh.pt", m.mnt), 0);
	ck_assert_int_ne(tm_sh("ls '%s'/dcache/listings/*.json >/dev/null 2>&1", m.root), 0);
	ck_assert(exists("m/fresh.pt"));
}
END_TEST

/* A name that is both an object and a prefix is the directory. */
START_TEST(test_s3_directory_wins)
{
	struct stat sb;

	ck_assert_int_eq(store_put(&st, "both", "object", 6), 0);
	ck_assert_int_eq(store_put(&st, "both/child", "c", 1), 0);
	ck_assert_int_eq(store_put(&st, "plain", "p", 1), 0);
	mount_with(NULL);
	ck_assert_int_eq(stat(tm_path(m.mnt, "both"), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(stat(tm_path(m.mnt, "both/child"), &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_int_eq(stat(tm_path(m.mnt, "plain"), &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
}
END_TEST

static Suite *lookup_suite(enum store_kind kind)
{
	Suite *s = suite_create(kind == STORE_FS ? "lookup_fs" : "lookup_s3");
	TCase *tc = tcase_create(kind == STORE_FS ? "fs" : "s3");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_own_changes_seen_at_once);
	if (kind == STORE_S3) {
		tcase_add_test(tc, test_s3_cold_stats_one_list);
		tcase_add_test(tc, test_s3_no_head_mode);
		tcase_add_test(tc, test_s3_others_changes_after_ttl_not_with_pin);
		tcase_add_test(tc, test_s3_pin_second_load_sends_nothing);
		tcase_add_test(tc, test_s3_pin_cache_dir_remount_sends_nothing);
		tcase_add_test(tc, test_s3_directory_wins);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return store_run_suites(lookup_suite, &g_kind, "lookup");
}
