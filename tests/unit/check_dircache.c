/*
 * check_dircache.c - the listing cache (fuse/dircache.c) over a mem
 * backend, counting the listings it sends: one per directory, answers
 * positive and negative, paging, the "big" bound, ttl and pin, LRU and
 * the memory budget, changes, metadata kept per version.  And against a
 * store that answers anything (listbe.h): keys outside the directory or
 * shorter than its prefix, names no directory can show, continuation
 * tokens that repeat or never end.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dircache.h"
#include "listbe.h"
#include "mem.h"
#include "suites.h"
#include "testbe.h"

static struct backend *be;
static struct dircache *dc;

static struct dircache_opts opts(double ttl)
{
	struct dircache_opts o = {
	    .ttl = ttl,
	    .max_dirs = 16,
	    .max_entries = 10000,
	    .max_bytes = 16u << 20,
	};
	return o;
}

static void setup(void)
{
	struct dircache_opts o = opts(60);

	be = mem_backend_create();
	ck_assert_ptr_nonnull(be);
	dc = dircache_create(be, &o);
	ck_assert_ptr_nonnull(dc);
}

static void teardown(void)
{
	ck_assert_int_eq(dircache_check(dc), 0);
	dircache_destroy(dc);
	backend_destroy(be);
}

/* Replace the cache with one made with o. */
static void recreate(struct dircache_opts o)
{
	dircache_destroy(dc);
	dc = dircache_create(be, &o);
	ck_assert_ptr_nonnull(dc);
}

static void put(const char *key, const char *text)
{
	struct backend_stat st;

	ck_assert_int_eq(backend_save_buffer(be, key, text, strlen(text), &st), 0);
}

static uint64_t lists(void)
{
	struct mem_backend_stats s;

	mem_backend_get_stats(be, &s);
	return s.list;
}

static int look(const char *key)
{
	struct backend_stat st;
	int have_meta;

	return dircache_lookup(dc, key, 1, &st, &have_meta);
}

START_TEST(test_one_listing_answers_every_child)
{
	struct backend_stat st;
	int have_meta = 1;
	char key[64];

	for (int i = 0; i < 27; i++) {
		snprintf(key, sizeof(key), "m/layer_%d.pt", i);
		put(key, "weights");
	}
	put("m/sub/x", "x");
	for (int i = 0; i < 27; i++) {
		snprintf(key, sizeof(key), "m/layer_%d.pt", i);
		ck_assert_int_eq(dircache_lookup(dc, key, 1, &st, &have_meta), S_IFREG);
		ck_assert_uint_eq(st.size, 7);
		ck_assert_str_ne(st.etag, "");
		ck_assert_int_eq(have_meta, 0);
	}
	ck_assert_int_eq(look("m/sub"), S_IFDIR);
	ck_assert_int_eq(look("m/nope"), -ENOENT);
	ck_assert_int_eq(look("m/layer_1"), -ENOENT);
	ck_assert_uint_eq(lists(), 1);
	/* The root is another directory: one more listing. */
	ck_assert_int_eq(look("m"), S_IFDIR);
	ck_assert_int_eq(look("absent"), -ENOENT);
	ck_assert_uint_eq(lists(), 2);
	/* Without load, an unlisted directory says nothing. */
	ck_assert_int_eq(dircache_lookup(dc, "m/sub/x", 0, &st, &have_meta), DIRCACHE_UNKNOWN);
	ck_assert_uint_eq(lists(), 2);
}
END_TEST

START_TEST(test_directory_wins)
{
	put("both", "object");
	put("both/child", "c");
	ck_assert_int_eq(look("both"), S_IFDIR);
	ck_assert_int_eq(look("both/child"), S_IFREG);
}
END_TEST

START_TEST(test_paging_and_big_directories)
{
	struct dircache_opts o = opts(60);
	char key[64];

	for (int i = 0; i < 2500; i++) {
		snprintf(key, sizeof(key), "many/f%05d", i);
		put(key, "x");
	}
	/* 2,500 names come in three pages and are all kept. */
	ck_assert_int_eq(look("many/f00000"), S_IFREG);
	ck_assert_int_eq(look("many/f02499"), S_IFREG);
	ck_assert_int_eq(look("many/f02500"), -ENOENT);
	ck_assert_uint_eq(lists(), 3);
	/* Past max_entries the directory is "big": the caller probes names,
	 * and the cache does not list it again for ttl. */
	o.max_entries = 1000;
	recreate(o);
	mem_backend_reset_stats(be);
	ck_assert_int_eq(look("many/f00000"), DIRCACHE_UNKNOWN);
	ck_assert_int_eq(look("many/f00001"), DIRCACHE_UNKNOWN);
	ck_assert_uint_eq(lists(), 2); /* stopped after the page that went past */
}
END_TEST

START_TEST(test_ttl_and_pin)
{
	put("d/a", "a");
	recreate(opts(0.2));
	ck_assert_int_eq(look("d/b"), -ENOENT);
	put("d/b", "b"); /* behind the cache's back */
	ck_assert_int_eq(look("d/b"), -ENOENT);
	ck_assert_uint_eq(lists(), 1);
	usleep(300 * 1000);
	ck_assert_int_eq(look("d/b"), S_IFREG);
	ck_assert_uint_eq(lists(), 2);

	recreate(opts(-1)); /* pin: for ever */
	ck_assert_int_eq(look("d/c"), -ENOENT);
	put("d/c", "c");
	usleep(300 * 1000);
	ck_assert_int_eq(look("d/c"), -ENOENT);
	ck_assert_uint_eq(lists(), 3);
}
END_TEST

START_TEST(test_lru_and_budget)
{
	struct dircache_opts o = opts(60);
	struct dircache_stats s;
	char key[64];

	o.max_dirs = 2;
	recreate(o);
	put("a/x", "x");
	put("b/x", "x");
	put("c/x", "x");
	ck_assert_int_eq(look("a/x"), S_IFREG);
	ck_assert_int_eq(look("b/x"), S_IFREG);
	ck_assert_int_eq(look("a/x"), S_IFREG); /* a is now the most recent */
	ck_assert_int_eq(look("c/x"), S_IFREG); /* evicts b */
	ck_assert_uint_eq(lists(), 3);
	ck_assert_int_eq(look("a/x"), S_IFREG);
	ck_assert_uint_eq(lists(), 3);
	ck_assert_int_eq(look("b/x"), S_IFREG);
	ck_assert_uint_eq(lists(), 4);
	dircache_get_stats(dc, &s);
	ck_assert_uint_eq(s.dirs, 2);
	ck_assert_uint_eq(s.evicted, 2);

	/* A budget of bytes: a listing bigger than all of it is not kept. */
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "wide/some-long-file-name-%05d", i);
		put(key, "x");
	}
	o.max_dirs = 16;
	o.max_bytes = 8192;
	recreate(o);
	mem_backend_reset_stats(be);
	ck_assert_int_eq(look("wide/some-long-file-name-00000"), DIRCACHE_UNKNOWN);
	ck_assert_int_eq(look("a/x"), S_IFREG);
	dircache_get_stats(dc, &s);
	ck_assert_uint_le(s.bytes, 8192);
	ck_assert_uint_eq(s.dirs, 2); /* "wide/" is kept as big, without names */
}
END_TEST

START_TEST(test_changes_drop_listings)
{
	struct backend_stat st;
	int have_meta;

	put("d/sub/x", "x");
	put("d/f", "f");
	ck_assert_int_eq(look("d/new"), -ENOENT);
	ck_assert_int_eq(look("d/sub/x"), S_IFREG);
	ck_assert_int_eq(look("d"), S_IFDIR);
	ck_assert_uint_eq(lists(), 3);
	/* A file saved in d drops d/ and its ancestors, not d/sub/. */
	put("d/new", "n");
	dircache_changed(dc, "d/new", 0);
	ck_assert_int_eq(dircache_lookup(dc, "d/sub/x", 0, &st, &have_meta), S_IFREG);
	ck_assert_int_eq(dircache_lookup(dc, "d/f", 0, &st, &have_meta), DIRCACHE_UNKNOWN);
	ck_assert_int_eq(dircache_lookup(dc, "d", 0, &st, &have_meta), DIRCACHE_UNKNOWN);
	ck_assert_int_eq(look("d/new"), S_IFREG);
	/* A directory changed as a tree drops what is under it too. */
	dircache_changed(dc, "d", 1);
	ck_assert_int_eq(dircache_lookup(dc, "d/sub/x", 0, &st, &have_meta), DIRCACHE_UNKNOWN);
	ck_assert_int_eq(dircache_lookup(dc, "d/new", 0, &st, &have_meta), DIRCACHE_UNKNOWN);
	ck_assert_int_eq(dircache_check(dc), 0);
}
END_TEST

START_TEST(test_put_and_generation)
{
	struct dircache_listing l = {0};
	uint64_t gen;

	put("p/a", "a");
	gen = dircache_gen(dc);
	ck_assert_int_eq(dircache_list(be, "p/", &(struct dircache_limits){0}, &l), 0);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_ptr_nonnull(dircache_listing_find(&l, "a"));
	ck_assert_ptr_null(dircache_listing_find(&l, "b"));
	/* A change after the listing was asked for: the copy is not kept. */
	dircache_changed(dc, "p/b", 0);
	dircache_put(dc, "p/", &l, gen);
	ck_assert_int_eq(look("p/a"), S_IFREG);
	ck_assert_uint_eq(lists(), 2);
	dircache_changed(dc, "p/b", 0);
	gen = dircache_gen(dc);
	dircache_put(dc, "p/", &l, gen);
	ck_assert_int_eq(look("p/a"), S_IFREG);
	ck_assert_int_eq(look("p/b"), -ENOENT);
	ck_assert_uint_eq(lists(), 2);
	dircache_listing_free(&l);
}
END_TEST

START_TEST(test_metadata_kept_per_version)
{
	struct backend_stat st, full;
	int have_meta;

	recreate(opts(0.2));
	put("d/f", "one");
	ck_assert_int_eq(dircache_lookup(dc, "d/f", 1, &st, &have_meta), S_IFREG);
	ck_assert_int_eq(have_meta, 0);
	full = st;
	full.meta = BACKEND_META_MODE;
	full.mode = 0600;
	dircache_set_meta(dc, "d/f", &full);
	ck_assert_int_eq(dircache_lookup(dc, "d/f", 1, &st, &have_meta), S_IFREG);
	ck_assert_int_eq(have_meta, 1);
	ck_assert_uint_eq(st.mode, 0600);
	/* A new listing of the same version keeps it ... */
	usleep(300 * 1000);
	ck_assert_int_eq(dircache_lookup(dc, "d/f", 1, &st, &have_meta), S_IFREG);
	ck_assert_int_eq(have_meta, 1);
	ck_assert_uint_eq(lists(), 2);
	/* ... a new version does not. */
	put("d/f", "two!");
	usleep(300 * 1000);
	ck_assert_int_eq(dircache_lookup(dc, "d/f", 1, &st, &have_meta), S_IFREG);
	ck_assert_int_eq(have_meta, 0);
	ck_assert_uint_eq(st.size, 4);
}
END_TEST

/* --- a hostile store ---------------------------------------------------- */

/* One page of everything a listing of "p/" must not show, and two names it
 * must: the file a and the directory d. */
static int hostile_page(void *ctx, const char *prefix, const char *token, struct backend_list *out)
{
	static const char *const keys[] = {
	    "p/a", "p", "", "q/zz", "p/b/c", "p/\x01ctl", "p/.", "p/..", "o", "p/",
	};
	static const char *const prefixes[] = {
	    "p/d/", "p/d/e/", "p/", "x/", "p/./", "p/../", "p/f", "p", "", "p//",
	};
	int ret = 0;

	(void)ctx;
	(void)prefix;
	(void)token;
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys) && ret == 0; i++)
		ret = listbe_add(out, keys[i], 0);
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes) && ret == 0; i++)
		ret = listbe_add(out, prefixes[i], 1);
	return ret;
}

START_TEST(test_hostile_names_skipped)
{
	struct listbe *lb = listbe_create(hostile_page, NULL);
	struct dircache_listing l = {0};

	ck_assert_ptr_nonnull(lb);
	ck_assert_int_eq(dircache_list(&lb->base, "p/", &(struct dircache_limits){0}, &l), 0);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.items[0].name, "a");
	ck_assert_uint_eq(l.items[0].type, S_IFREG);
	ck_assert_str_eq(l.items[1].name, "d");
	ck_assert_uint_eq(l.items[1].type, S_IFDIR);
	dircache_listing_free(&l);
	backend_destroy(&lb->base);
}
END_TEST

/* Pages of one new key each; the token is "same" (repeated) or new every
 * time, as ctx says. */
static int endless_page(void *ctx, const char *prefix, const char *token, struct backend_list *out)
{
	static unsigned n;
	char key[64];

	snprintf(key, sizeof(key), "%sk%u", prefix, n++);
	if (listbe_add(out, key, 0) < 0)
		return -ENOMEM;
	if (*(const int *)ctx)
		snprintf(key, sizeof(key), "same");
	else
		snprintf(key, sizeof(key), "%s+", token ? token : "t");
	out->next_token = strdup(key);
	return out->next_token ? 0 : -ENOMEM;
}

/* How many list() calls a listing of "p/" over endless pages took before
 * it failed with -EIO, as it must, under lim. */
static unsigned calls_until_eio(int same, struct dircache_limits lim)
{
	struct listbe *lb = listbe_create(endless_page, &same);
	struct dircache_listing l = {0};
	unsigned calls;

	ck_assert_ptr_nonnull(lb);
	ck_assert_int_eq(dircache_list(&lb->base, "p/", &lim, &l), -EIO);
	ck_assert_uint_eq(l.n, 0);
	calls = lb->calls;
	backend_destroy(&lb->base);
	return calls;
}

START_TEST(test_repeated_token_fails_at_once)
{
	ck_assert_uint_eq(calls_until_eio(1, (struct dircache_limits){0}), 2);
}
END_TEST

START_TEST(test_endless_listing_bounded)
{
	unsigned calls;

	ck_assert_uint_eq(calls_until_eio(0, (struct dircache_limits){.max_pages = 5}), 5);
	/* The memory bound holds without a page bound. */
	calls = calls_until_eio(0, (struct dircache_limits){.max_bytes = 4096});
	ck_assert_uint_gt(calls, 1);
	ck_assert_uint_lt(calls, 4096 / sizeof(struct dircache_item) + 2);
}
END_TEST

START_TEST(test_lookup_through_endless_listing)
{
	int same = 0;
	struct listbe *lb = listbe_create(endless_page, &same);
	struct dircache_opts o = opts(60);
	struct dircache *hostile;
	struct backend_stat st;
	int have_meta;

	ck_assert_ptr_nonnull(lb);
	o.max_entries = 0;
	o.max_pages = 7;
	hostile = dircache_create(&lb->base, &o);
	ck_assert_ptr_nonnull(hostile);
	ck_assert_int_eq(dircache_lookup(hostile, "p/x", 1, &st, &have_meta), -EIO);
	ck_assert_uint_eq(lb->calls, 7);
	ck_assert_int_eq(dircache_check(hostile), 0);
	dircache_destroy(hostile);
	backend_destroy(&lb->base);
}
END_TEST

/* On a store with constant ETags a new object of another size does not
 * take the old one's attributes, its size among them (finding 7 of
 * issue 13). */
START_TEST(test_metadata_not_kept_for_same_etag_other_size)
{
	struct testbe *t = testbe_create(be, TESTBE_BORROW);
	struct dircache_opts o = opts(0.2);
	struct backend_stat st, full;
	int have_meta;

	ck_assert_ptr_nonnull(t);
	t->const_etag = 1;
	dircache_destroy(dc);
	dc = dircache_create(&t->base, &o);
	ck_assert_ptr_nonnull(dc);
	put("d/f", "one");
	ck_assert_int_eq(dircache_lookup(dc, "d/f", 1, &st, &have_meta), S_IFREG);
	ck_assert_str_eq(st.etag, TESTBE_CONST_ETAG);
	full = st;
	full.meta = BACKEND_META_MODE;
	full.mode = 0600;
	dircache_set_meta(dc, "d/f", &full);
	put("d/f", "two!");
	usleep(300 * 1000);
	ck_assert_int_eq(dircache_lookup(dc, "d/f", 1, &st, &have_meta), S_IFREG);
	ck_assert_str_eq(st.etag, TESTBE_CONST_ETAG);
	ck_assert_int_eq(have_meta, 0);
	ck_assert_uint_eq(st.size, 4);
	recreate(opts(60)); /* over be again, before t goes */
	backend_destroy(&t->base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dircache");
	TCase *tc = tcase_create("listings");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_one_listing_answers_every_child);
	tcase_add_test(tc, test_directory_wins);
	tcase_add_test(tc, test_paging_and_big_directories);
	tcase_add_test(tc, test_ttl_and_pin);
	tcase_add_test(tc, test_metadata_not_kept_for_same_etag_other_size);
	tcase_add_test(tc, test_lru_and_budget);
	tcase_add_test(tc, test_changes_drop_listings);
	tcase_add_test(tc, test_put_and_generation);
	tcase_add_test(tc, test_metadata_kept_per_version);
	tcase_add_test(tc, test_hostile_names_skipped);
	tcase_add_test(tc, test_repeated_token_fails_at_once);
	tcase_add_test(tc, test_endless_listing_bounded);
	tcase_add_test(tc, test_lookup_through_endless_listing);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
