/*
 * check_backend_contract.c - the contract of backend.h, run against every
 * backend.
 *
 * contract_factories[] lists the backends under test.  main() runs one
 * SRunner per factory: it points g_factory at the entry and the forked test
 * processes inherit it.  Each test gets a fresh, empty backend from the
 * checked fixture (factory create() in setup, destroy_fixture() in
 * teardown).  Adding a backend or a layer means adding one entry; its flags
 * state where it may legitimately differ (CF_REAL_DIRS), and add_cases adds
 * cases that only make sense for it.
 *
 * All scratch files live under g_root, made by main() and removed by it at
 * the end, so a failed test (whose teardown does not run) leaves nothing.
 *
 * Listings are compared as strings: every page of a listing merged into
 * one line, entries as "key(size)" and common prefixes as "[prefix]", in
 * key order.  list_all() checks the paging invariants on the way.
 */
#include "backend.h"
#include "cache.h"
#include "diskcache.h"
#include "fault.h"
#include "fs.h"
#include "mem.h"
#include "mount.h"
#include "s3/s3.h"
#include "suites.h"
#include "testbe.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

/* Backend properties that the contract allows to differ. */
enum {
	CF_REAL_DIRS = 1 << 0, /* every existing directory reports a marker */
};

struct contract_factory {
	const char *name;
	unsigned flags;                             /* CF_* */
	struct backend *(*create)(void);            /* a new, empty backend; NULL + errno */
	void (*destroy_fixture)(struct backend *b); /* destroy b and its scratch files */
	void (*add_cases)(Suite *s);                /* backend-only cases; may be NULL */
};

static const struct contract_factory *g_factory; /* set by main() per runner */
static char g_root[1024];                        /* scratch root of the run */
static struct backend *g_b;                      /* the backend of the current test */
static char g_fs_dir[1100];                      /* base of the fs backend under test */

/* --- helpers ------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* rm -rf path (symlinks are removed, not followed). */
static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *key, const char *s)
{
	int ret = backend_save_buffer(g_b, key, s, strlen(s), NULL);

	ck_assert_msg(ret == 0, "save %s: %s", key, strerror(-ret));
}

/* The whole object key as a string (it must exist).  Caller frees. */
static char *get(const char *key)
{
	struct backend_stat st;
	ssize_t n;
	char *buf;
	int ret;

	ret = g_b->ops->stat(g_b, key, &st);
	ck_assert_msg(ret == 0, "stat %s: %s", key, strerror(-ret));
	buf = malloc(st.size + 1);
	ck_assert_ptr_nonnull(buf);
	n = backend_read_full(g_b, key, 0, buf, st.size, st.etag);
	ck_assert_int_eq(n, (ssize_t)st.size);
	buf[n] = '\0';
	return buf;
}

static void assert_content(const char *key, const char *want)
{
	char *got = get(key);

	ck_assert_str_eq(got, want);
	free(got);
}

static int do_stat(const char *key)
{
	struct backend_stat st;

	return g_b->ops->stat(g_b, key, &st);
}

static ssize_t do_read(const char *key, uint64_t off, void *dst, size_t len, const char *etag)
{
	return g_b->ops->read(g_b, key, off, dst, len, etag, NULL);
}

/*
 * Every page of a listing, merged into one string (see the top).  Checks
 * that items strictly increase across pages, that each starts with prefix
 * and sorts after start_after, that entries carry no delimiter after the
 * prefix and common prefixes exactly one at their end, that a page holds
 * at most max_keys items and that a page with a next_token is not empty.
 * *n_pages (if not NULL) receives the page count.  Caller frees.
 */
static char *list_all(const char *prefix, char delim, const char *start_after, size_t max_keys,
                      int *n_pages)
{
	size_t plen = strlen(prefix), len = 0;
	char *token = NULL, *last = NULL, *str = NULL;
	FILE *f = open_memstream(&str, &len);
	int pages = 0, first = 1;

	ck_assert_ptr_nonnull(f);
	do {
		struct backend_list l;
		size_t i = 0, j = 0, n;
		int ret;

		ret = g_b->ops->list(g_b, prefix, delim, start_after, token, max_keys, &l);
		ck_assert_msg(ret == 0, "list \"%s\": %s", prefix, strerror(-ret));
		ck_assert_int_lt(++pages, 10000);
		n = l.n_entries + l.n_prefixes;
		if (max_keys > 0)
			ck_assert_uint_le(n, max_keys);
		if (l.next_token != NULL)
			ck_assert_uint_gt(n, 0);
		while (i < l.n_entries || j < l.n_prefixes) {
			int entry =
			    j == l.n_prefixes ||
			    (i < l.n_entries && strcmp(l.entries[i].key, l.prefixes[j]) < 0);
			const char *item = entry ? l.entries[i].key : l.prefixes[j];
			const char *d = delim ? strchr(item + plen, delim) : NULL;

			ck_assert_msg(strncmp(item, prefix, plen) == 0, "%s outside %s", item,
			              prefix);
			if (last != NULL)
				ck_assert_msg(strcmp(last, item) < 0, "order: \"%s\" then \"%s\"",
				              last, item);
			if (start_after != NULL)
				ck_assert_str_gt(item, start_after);
			if (entry) {
				ck_assert_msg(d == NULL, "entry %s holds the delimiter", item);
				fprintf(f, "%s%s(%" PRIu64 ")", first ? "" : " ", item,
				        l.entries[i].st.size);
				i++;
			} else {
				ck_assert_msg(d != NULL && d[1] == '\0', "bad common prefix %s",
				              item);
				fprintf(f, "%s[%s]", first ? "" : " ", item);
				j++;
			}
			free(last);
			last = strdup(item);
			first = 0;
		}
		free(token);
		token = l.next_token != NULL ? strdup(l.next_token) : NULL;
		backend_list_free(&l);
		ck_assert_ptr_null(l.entries);
	} while (token != NULL);
	free(last);
	fclose(f);
	if (n_pages != NULL)
		*n_pages = pages;
	return str;
}

static void assert_list(const char *prefix, char delim, const char *want)
{
	char *got = list_all(prefix, delim, NULL, 0, NULL);

	ck_assert_str_eq(got, want);
	free(got);
}

/* A source that serves pattern seed 7 but fails with -EIO for any read
 * reaching past fail_at. */
static int failing_read(const struct backend_source *src, uint64_t off, void *dst, size_t len)
{
	uint64_t fail_at = *(const uint64_t *)src->opaque;

	if (off + len > fail_at)
		return -EIO;
	tm_pattern(dst, off, len, 7);
	return 0;
}

/* --- fixture ------------------------------------------------------------ */

static void setup(void)
{
	errno = 0;
	g_b = g_factory->create();
	ck_assert_msg(g_b != NULL, "create %s: %s", g_factory->name, strerror(errno));
	ck_assert_int_eq(g_b->ops->abi_version, BACKEND_ABI_VERSION);
}

static void teardown(void)
{
	g_factory->destroy_fixture(g_b);
	g_b = NULL;
}

/* --- cases for every backend -------------------------------------------- */

START_TEST(test_roundtrip)
{
	unsigned char data[1000], buf[2000];
	struct backend_stat sst, st, rst;

	tm_pattern(data, 0, sizeof(data), 1);
	ck_assert_int_eq(backend_save_buffer(g_b, "obj", data, sizeof(data), &sst), 0);
	ck_assert_str_ne(sst.etag, "");
	ck_assert_int_eq(g_b->ops->stat(g_b, "obj", &st), 0);
	ck_assert_uint_eq(st.size, sizeof(data));
	ck_assert_str_eq(st.etag, sst.etag);

	/* A read longer than the object returns the object. */
	memset(&rst, 0, sizeof(rst));
	ck_assert_int_eq(g_b->ops->read(g_b, "obj", 0, buf, sizeof(buf), NULL, &rst), 1000);
	ck_assert_mem_eq(buf, data, 1000);
	ck_assert_uint_eq(rst.size, 1000);
	ck_assert_str_eq(rst.etag, st.etag);

	/* Ranges, short reads at the end, reads past the end. */
	ck_assert_int_eq(do_read("obj", 10, buf, 20, NULL), 20);
	ck_assert_mem_eq(buf, data + 10, 20);
	ck_assert_int_eq(do_read("obj", 990, buf, 100, st.etag), 10);
	ck_assert_mem_eq(buf, data + 990, 10);
	ck_assert_int_eq(do_read("obj", 999, buf, 1, ""), 1);
	ck_assert_uint_eq(buf[0], data[999]);
	ck_assert_int_eq(do_read("obj", 1000, buf, 10, NULL), 0);
	ck_assert_int_eq(do_read("obj", 5000, buf, 10, NULL), 0);
	ck_assert_int_eq(do_read("obj", 0, buf, 0, NULL), 0);
	ck_assert_int_eq(backend_read_full(g_b, "obj", 500, buf, sizeof(buf), st.etag), 500);
	ck_assert_mem_eq(buf, data + 500, 500);
}
END_TEST

START_TEST(test_zero_length)
{
	struct backend_stat st;
	char buf[16];

	ck_assert_int_eq(backend_save_buffer(g_b, "empty", "", 0, &st), 0);
	ck_assert_uint_eq(st.size, 0);
	ck_assert_int_eq(g_b->ops->stat(g_b, "empty", &st), 0);
	ck_assert_uint_eq(st.size, 0);
	ck_assert_int_eq(do_read("empty", 0, buf, sizeof(buf), st.etag), 0);
	ck_assert_int_eq(do_read("empty", 3, buf, sizeof(buf), NULL), 0);
	assert_list("", '/', "empty(0)");

	/* An object can shrink to nothing and grow again. */
	put("k", "abc");
	ck_assert_int_eq(backend_save_buffer(g_b, "k", "", 0, NULL), 0);
	ck_assert_int_eq(g_b->ops->stat(g_b, "k", &st), 0);
	ck_assert_uint_eq(st.size, 0);
	put("k", "abcd");
	assert_content("k", "abcd");
}
END_TEST

START_TEST(test_overwrite_etag)
{
	struct backend_stat s1, s2, s3;
	char buf[32];

	put("k", "version-one");
	ck_assert_int_eq(g_b->ops->stat(g_b, "k", &s1), 0);
	put("k", "version-two"); /* same size */
	ck_assert_int_eq(g_b->ops->stat(g_b, "k", &s2), 0);
	ck_assert_str_ne(s1.etag, s2.etag);
	ck_assert_uint_eq(s2.size, 11);

	ck_assert_int_eq(do_read("k", 0, buf, sizeof(buf), s1.etag), -ESTALE);
	ck_assert_int_eq(backend_read_full(g_b, "k", 0, buf, sizeof(buf), s1.etag), -ESTALE);
	ck_assert_int_eq(do_read("k", 0, buf, sizeof(buf), s2.etag), 11);
	ck_assert_mem_eq(buf, "version-two", 11);
	ck_assert_int_eq(do_read("k", 0, buf, sizeof(buf), ""), 11);

	put("k", "v3");
	ck_assert_int_eq(g_b->ops->stat(g_b, "k", &s3), 0);
	ck_assert_str_ne(s3.etag, s2.etag);
	ck_assert_str_ne(s3.etag, s1.etag);
	ck_assert_int_eq(do_read("k", 0, buf, sizeof(buf), s2.etag), -ESTALE);
	assert_content("k", "v3");
}
END_TEST

START_TEST(test_remove)
{
	char buf[8];

	put("r", "data");
	ck_assert_int_eq(g_b->ops->remove(g_b, "r"), 0);
	ck_assert_int_eq(do_stat("r"), -ENOENT);
	ck_assert_int_eq(do_read("r", 0, buf, sizeof(buf), NULL), -ENOENT);
	ck_assert_int_eq(g_b->ops->remove(g_b, "r"), -ENOENT);
	ck_assert_int_eq(g_b->ops->remove(g_b, "never"), -ENOENT);
	ck_assert_int_eq(g_b->ops->remove(g_b, "no/such/dir/key"), -ENOENT);
	assert_list("", 0, "");

	/* The key can come back, and removing one key leaves its neighbours. */
	put("r", "again");
	put("r2", "other");
	assert_content("r", "again");
	ck_assert_int_eq(g_b->ops->remove(g_b, "r2"), 0);
	assert_list("", 0, "r(5)");
}
END_TEST

START_TEST(test_missing)
{
	struct backend_stat st;
	char buf[8];

	ck_assert_int_eq(g_b->ops->stat(g_b, "nothing", &st), -ENOENT);
	ck_assert_int_eq(g_b->ops->stat(g_b, "no/thing", &st), -ENOENT);
	ck_assert_int_eq(g_b->ops->stat(g_b, "nodir/", &st), -ENOENT);
	ck_assert_int_eq(do_read("nothing", 0, buf, sizeof(buf), NULL), -ENOENT);
	ck_assert_int_eq(do_read("nothing", 0, buf, sizeof(buf), "someetag"), -ENOENT);
	ck_assert_int_eq(backend_copy(g_b, "nothing", "dst", NULL), -ENOENT);
	ck_assert_int_eq(do_stat("dst"), -ENOENT);
	assert_list("", 0, "");
	assert_list("", '/', "");
	assert_list("nodir/", '/', "");
}
END_TEST

START_TEST(test_invalid_keys)
{
	static const char *const bad[] = {"",    "/",   "/a",   "a//b", "a/../b", "./a",
	                                  "a/.", "..",  ".",    "../x", "a/./b",  "//",
	                                  "a//", "/a/", "a/..", "x/../"};
	const struct backend_ops *ops = g_b->ops;
	struct backend_source src = backend_source_buffer("x", 1);
	struct backend_stat st;
	char buf[4];

	put("ok", "fine");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *k = bad[i];

		ck_assert_msg(!backend_key_valid(k), "\"%s\" passes backend_key_valid", k);
		ck_assert_int_eq(ops->stat(g_b, k, &st), -EINVAL);
		ck_assert_int_eq(ops->read(g_b, k, 0, buf, sizeof(buf), NULL, NULL), -EINVAL);
		ck_assert_int_eq(ops->save(g_b, k, &src, NULL, NULL), -EINVAL);
		ck_assert_int_eq(ops->remove(g_b, k), -EINVAL);
		ck_assert_int_eq(backend_copy(g_b, k, "ok2", NULL), -EINVAL);
		ck_assert_int_eq(backend_copy(g_b, "ok", k, NULL), -EINVAL);
		if (ops->rename != NULL) {
			ck_assert_int_eq(ops->rename(g_b, k, "ok2"), -EINVAL);
			ck_assert_int_eq(ops->rename(g_b, "ok", k), -EINVAL);
		}
	}
	/* Nothing was created or lost on the way. */
	assert_list("", 0, "ok(4)");
}
END_TEST

START_TEST(test_markers)
{
	struct backend_source three = backend_source_buffer("abc", 3);
	int real = g_factory->flags & CF_REAL_DIRS;
	struct backend_stat st;
	char buf[8];

	ck_assert_int_eq(backend_save_buffer(g_b, "d/", "", 0, &st), 0);
	ck_assert_int_eq(g_b->ops->stat(g_b, "d/", &st), 0);
	ck_assert_uint_eq(st.size, 0);
	ck_assert_int_eq(do_read("d/", 0, buf, sizeof(buf), st.etag), 0);
	ck_assert_int_eq(g_b->ops->save(g_b, "e/", &three, NULL, NULL), -EINVAL);
	ck_assert_int_eq(do_stat("e/"), -ENOENT);
	ck_assert_int_eq(do_stat("d"), -ENOENT); /* the marker is "d/", not "d" */

	assert_list("d/", '/', "d/(0)");
	assert_list("", '/', "[d/]");
	assert_list("", 0, "d/(0)");
	put("d/x", "1");
	assert_list("d/", '/', "d/(0) d/x(1)");
	assert_list("d", '/', "[d/]");

	/* Removing a marker with keys under it: the keys stay visible. */
	ck_assert_int_eq(g_b->ops->remove(g_b, "d/"), 0);
	ck_assert_int_eq(do_stat("d/x"), 0);
	assert_list("d/", '/', real ? "d/(0) d/x(1)" : "d/x(1)");
	assert_list("", '/', "[d/]");
	ck_assert_int_eq(do_stat("d/"), real ? 0 : -ENOENT);

	/* An empty marker goes away for good. */
	ck_assert_int_eq(backend_save_buffer(g_b, "e/", "", 0, NULL), 0);
	ck_assert_int_eq(g_b->ops->remove(g_b, "e/"), 0);
	ck_assert_int_eq(do_stat("e/"), -ENOENT);
	ck_assert_int_eq(g_b->ops->remove(g_b, "e/"), -ENOENT);
	assert_list("", '/', "[d/]");

	/* Saving a marker again is harmless. */
	ck_assert_int_eq(backend_save_buffer(g_b, "d/", "", 0, NULL), 0);
	ck_assert_int_eq(backend_save_buffer(g_b, "d/", "", 0, NULL), 0);
	assert_content("d/x", "1");

	/* Nested markers. */
	ck_assert_int_eq(backend_save_buffer(g_b, "n/a/b/", "", 0, NULL), 0);
	ck_assert_int_eq(do_stat("n/a/b/"), 0);
	assert_list("n/a/", '/', real ? "n/a/(0) [n/a/b/]" : "[n/a/b/]");
}
END_TEST

/* The tree used by the listing cases: markers are saved explicitly so
 * backends with and without real directories list the same. */
static void make_tree(void)
{
	static const char *const markers[] = {"b/", "b/c/", "d/", "m/"};

	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
		ck_assert_int_eq(backend_save_buffer(g_b, markers[i], "", 0, NULL), 0);
	put("a", "1");
	put("a-b", "22");
	put("a0", "333");
	put("b/1", "4444");
	put("b/2", "55555");
	put("b/c/3", "666666");
	put("c", "");
	put("m-n", "77");
	put("m/k", "8888888");
	put("m0", "999");
}

START_TEST(test_list_delimiter)
{
	make_tree();
	/* '-' < '/' < '0': entries and prefixes interleave in key order. */
	assert_list("", '/', "a(1) a-b(2) a0(3) [b/] c(0) [d/] m-n(2) [m/] m0(3)");
	assert_list("b/", '/', "b/(0) b/1(4) b/2(5) [b/c/]");
	assert_list("b", '/', "[b/]");
	assert_list("b/c/", '/', "b/c/(0) b/c/3(6)");
	assert_list("b/c", '/', "[b/c/]");
	assert_list("m", '/', "m-n(2) [m/] m0(3)");
	assert_list("a", '/', "a(1) a-b(2) a0(3)");
	assert_list("b/1", '/', "b/1(4)");
	assert_list("b/", '/', "b/(0) b/1(4) b/2(5) [b/c/]");
	assert_list("d/", '/', "d/(0)");
	assert_list("zzz", '/', "");
	assert_list("nope/", '/', "");
	assert_list("b/c/3/", '/', "");
	assert_list("a/", '/', "");
	assert_list("c", '/', "c(0)");
}
END_TEST

START_TEST(test_list_recursive)
{
	make_tree();
	assert_list("", 0,
	            "a(1) a-b(2) a0(3) b/(0) b/1(4) b/2(5) b/c/(0) b/c/3(6) c(0) d/(0) m-n(2) "
	            "m/(0) m/k(7) m0(3)");
	assert_list("b", 0, "b/(0) b/1(4) b/2(5) b/c/(0) b/c/3(6)");
	assert_list("b/", 0, "b/(0) b/1(4) b/2(5) b/c/(0) b/c/3(6)");
	assert_list("b/c", 0, "b/c/(0) b/c/3(6)");
	assert_list("m", 0, "m-n(2) m/(0) m/k(7) m0(3)");
	assert_list("m/k", 0, "m/k(7)");
	assert_list("x", 0, "");
}
END_TEST

START_TEST(test_list_entry_stat)
{
	struct backend_list l;
	int ret;

	make_tree();
	ret = g_b->ops->list(g_b, "", 0, NULL, NULL, 0, &l);
	ck_assert_int_eq(ret, 0);
	ck_assert_ptr_null(l.next_token);
	ck_assert_uint_eq(l.n_prefixes, 0);
	ck_assert_uint_eq(l.n_entries, 14);
	for (size_t i = 0; i < l.n_entries; i++) {
		struct backend_stat st;

		ck_assert_int_eq(g_b->ops->stat(g_b, l.entries[i].key, &st), 0);
		ck_assert_uint_eq(l.entries[i].st.size, st.size);
		ck_assert_str_eq(l.entries[i].st.etag, st.etag);
		ck_assert_int_eq(l.entries[i].st.mtime.tv_sec, st.mtime.tv_sec);
	}
	backend_list_free(&l);
	backend_list_free(&l); /* safe on an empty list */
}
END_TEST

static void make_paging_keys(void)
{
	char key[32], val[32];

	ck_assert_int_eq(backend_save_buffer(g_b, "p/", "", 0, NULL), 0);
	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "p/k%02d", i);
		memset(val, 'v', sizeof(val));
		ck_assert_int_eq(backend_save_buffer(g_b, key, val, (size_t)i, NULL), 0);
	}
	put("o", "before");
	put("q", "after");
}

START_TEST(test_list_paging)
{
	char want[1024], *one, *paged;
	size_t len = 0;
	int pages;

	make_paging_keys();
	len += (size_t)snprintf(want + len, sizeof(want) - len, "p/(0)");
	for (int i = 0; i < 25; i++)
		len += (size_t)snprintf(want + len, sizeof(want) - len, " p/k%02d(%d)", i, i);

	one = list_all("p/", 0, NULL, 0, &pages);
	ck_assert_str_eq(one, want);
	ck_assert_int_eq(pages, 1);
	free(one);

	/* 26 items in pages of 7: every key exactly once, in order. */
	paged = list_all("p/", 0, NULL, 7, &pages);
	ck_assert_str_eq(paged, want);
	ck_assert_int_eq(pages, 4);
	free(paged);

	paged = list_all("p/", 0, NULL, 1, &pages);
	ck_assert_str_eq(paged, want);
	ck_assert_int_eq(pages, 26);
	free(paged);

	/* A page that ends exactly with the last item has no next_token. */
	paged = list_all("p/", 0, NULL, 13, &pages);
	ck_assert_str_eq(paged, want);
	ck_assert_int_eq(pages, 2);
	free(paged);
	paged = list_all("p/", 0, NULL, 26, &pages);
	ck_assert_str_eq(paged, want);
	ck_assert_int_eq(pages, 1);
	free(paged);

	/* Same through the delimiter, where nothing is rolled up. */
	paged = list_all("p/", '/', NULL, 7, &pages);
	ck_assert_str_eq(paged, want);
	ck_assert_int_eq(pages, 4);
	free(paged);
}
END_TEST

START_TEST(test_list_paging_prefixes)
{
	char key[32], want[2048], *one, *paged;
	size_t len = 0;
	int pages;

	/* 1 marker, 15 files and 10 directories of 2 keys each: 26 items. */
	ck_assert_int_eq(backend_save_buffer(g_b, "q/", "", 0, NULL), 0);
	for (int i = 0; i < 15; i++) {
		snprintf(key, sizeof(key), "q/f%02d", i * 2);
		put(key, "f");
	}
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "q/d%02d/x", i * 3);
		put(key, "x");
		snprintf(key, sizeof(key), "q/d%02d/y", i * 3);
		put(key, "yy");
	}
	len += (size_t)snprintf(want + len, sizeof(want) - len, "q/(0)");
	for (int i = 0; i < 10; i++)
		len += (size_t)snprintf(want + len, sizeof(want) - len, " [q/d%02d/]", i * 3);
	for (int i = 0; i < 15; i++)
		len += (size_t)snprintf(want + len, sizeof(want) - len, " q/f%02d(1)", i * 2);

	one = list_all("q/", '/', NULL, 0, &pages);
	ck_assert_str_eq(one, want);
	ck_assert_int_eq(pages, 1);
	free(one);
	for (size_t max = 1; max <= 27; max += 2) {
		paged = list_all("q/", '/', NULL, max, &pages);
		ck_assert_str_eq(paged, want);
		ck_assert_int_eq(pages, (int)((26 + max - 1) / max));
		free(paged);
	}
}
END_TEST

START_TEST(test_list_start_after)
{
	char *got;

	make_paging_keys();
	got = list_all("p/", 0, "p/k20", 0, NULL);
	ck_assert_str_eq(got, "p/k21(21) p/k22(22) p/k23(23) p/k24(24)");
	free(got);
	got = list_all("p/", 0, "p/k20", 2, NULL);
	ck_assert_str_eq(got, "p/k21(21) p/k22(22) p/k23(23) p/k24(24)");
	free(got);
	got = list_all("p/", 0, "p/k24", 0, NULL);
	ck_assert_str_eq(got, "");
	free(got);
	got = list_all("p/", 0, "p/k235", 0, NULL); /* not a key itself */
	ck_assert_str_eq(got, "p/k24(24)");
	free(got);
	got = list_all("p/", '/', "p/", 3, NULL); /* skips the marker only */
	ck_assert_int_eq(strncmp(got, "p/k00(0) p/k01(1)", 17), 0);
	free(got);
	got = list_all("p/", 0, "a", 0, NULL); /* before the prefix: no effect */
	ck_assert_int_eq(strncmp(got, "p/(0) p/k00(0)", 14), 0);
	free(got);
	got = list_all("p/", 0, "z", 0, NULL); /* after the prefix: nothing */
	ck_assert_str_eq(got, "");
	free(got);
	got = list_all("", '/', "o", 0, NULL);
	ck_assert_str_eq(got, "[p/] q(5)");
	free(got);
	got = list_all("", '/', "p/", 0, NULL); /* a common prefix is an item too */
	ck_assert_str_eq(got, "q(5)");
	free(got);
}
END_TEST

START_TEST(test_copy)
{
	unsigned char data[5000], buf[6000];
	struct backend_stat st, sst;

	tm_pattern(data, 0, sizeof(data), 3);
	ck_assert_int_eq(backend_save_buffer(g_b, "src", data, sizeof(data), NULL), 0);
	ck_assert_int_eq(backend_copy(g_b, "src", "dst", &st), 0);
	ck_assert_uint_eq(st.size, sizeof(data));
	ck_assert_int_eq(g_b->ops->stat(g_b, "dst", &sst), 0);
	ck_assert_str_eq(sst.etag, st.etag);
	ck_assert_int_eq(backend_read_full(g_b, "dst", 0, buf, sizeof(buf), NULL), 5000);
	ck_assert_mem_eq(buf, data, sizeof(data));
	ck_assert_int_eq(backend_read_full(g_b, "src", 0, buf, sizeof(buf), NULL), 5000);
	ck_assert_mem_eq(buf, data, sizeof(data));

	/* Over an existing key, and into new directories. */
	put("dst2", "old");
	ck_assert_int_eq(backend_copy(g_b, "src", "dst2", NULL), 0);
	ck_assert_int_eq(backend_read_full(g_b, "dst2", 0, buf, sizeof(buf), NULL), 5000);
	ck_assert_mem_eq(buf, data, sizeof(data));
	ck_assert_int_eq(backend_copy(g_b, "src", "x/y/z", NULL), 0);
	ck_assert_int_eq(backend_read_full(g_b, "x/y/z", 0, buf, sizeof(buf), NULL), 5000);
	ck_assert_mem_eq(buf, data, sizeof(data));

	/* The copy is independent of its source. */
	put("src", "changed");
	ck_assert_int_eq(backend_read_full(g_b, "dst", 0, buf, sizeof(buf), NULL), 5000);
	ck_assert_mem_eq(buf, data, sizeof(data));
	ck_assert_int_eq(g_b->ops->remove(g_b, "src"), 0);
	ck_assert_int_eq(do_stat("dst"), 0);

	/* An empty object, and a copy onto itself. */
	ck_assert_int_eq(backend_save_buffer(g_b, "e", "", 0, NULL), 0);
	ck_assert_int_eq(backend_copy(g_b, "e", "e2", &st), 0);
	ck_assert_uint_eq(st.size, 0);
	ck_assert_int_eq(backend_copy(g_b, "dst", "dst", NULL), 0);
	ck_assert_int_eq(backend_read_full(g_b, "dst", 0, buf, sizeof(buf), NULL), 5000);
	ck_assert_mem_eq(buf, data, sizeof(data));
	ck_assert_int_eq(backend_copy(g_b, "src", "dst", NULL), -ENOENT);
}
END_TEST

START_TEST(test_copy_fallback)
{
	/* A layer that forwards everything but copy, so backend_copy() must
	 * use its fallback.  It does not own g_b (the fixture destroys that). */
	struct testbe *w = testbe_create(g_b, TESTBE_BORROW);
	unsigned char data[3 * MIB / 2];
	struct backend_stat st;
	unsigned char *buf = malloc(sizeof(data));

	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(buf);
	tm_pattern(data, 0, sizeof(data), 4);
	ck_assert_int_eq(backend_save_buffer(g_b, "src", data, sizeof(data), NULL), 0);
	put("dst", "old");
	ck_assert_int_eq(backend_copy(&w->base, "src", "dst", &st), 0);
	ck_assert_uint_eq(st.size, sizeof(data));
	ck_assert_int_eq(backend_read_full(g_b, "dst", 0, buf, sizeof(data), st.etag),
	                 (ssize_t)sizeof(data));
	ck_assert_mem_eq(buf, data, sizeof(data));
	ck_assert_int_eq(backend_copy(&w->base, "missing", "dst2", NULL), -ENOENT);
	ck_assert_int_eq(do_stat("dst2"), -ENOENT);
	free(buf);
	backend_destroy(&w->base);
}
END_TEST

START_TEST(test_rename)
{
	int (*ren)(struct backend *, const char *, const char *) = g_b->ops->rename;

	put("a", "1");
	ck_assert_int_eq(ren(g_b, "a", "b"), 0);
	ck_assert_int_eq(do_stat("a"), -ENOENT);
	assert_content("b", "1");

	put("c", "2");
	ck_assert_int_eq(ren(g_b, "b", "c"), 0); /* replaces c */
	assert_content("c", "1");
	ck_assert_int_eq(ren(g_b, "c", "n1/n2/c"), 0); /* creates parents */
	assert_content("n1/n2/c", "1");
	ck_assert_int_eq(ren(g_b, "missing", "x"), -ENOENT);
	ck_assert_int_eq(do_stat("x"), -ENOENT);

	/* A whole prefix. */
	put("d/1", "x");
	put("d/s/2", "yy");
	ck_assert_int_eq(ren(g_b, "d/", "e/"), 0);
	assert_content("e/1", "x");
	assert_content("e/s/2", "yy");
	ck_assert_int_eq(do_stat("d/1"), -ENOENT);
	assert_list("d/", 0, "");
	if (g_factory->flags & CF_REAL_DIRS)
		assert_list("", 0, "e/(0) e/1(1) e/s/(0) e/s/2(2) n1/(0) n1/n2/(0) n1/n2/c(1)");
	else
		assert_list("", 0, "e/1(1) e/s/2(2) n1/n2/c(1)");
}
END_TEST

START_TEST(test_large_fd)
{
	const uint64_t size = 20 * MIB + 12345;
	char in_path[PATH_MAX], out_path[PATH_MAX];
	unsigned char *buf = malloc(MIB);
	struct backend_stat st, rst;
	int in, out;

	ck_assert_ptr_nonnull(buf);
	snprintf(in_path, sizeof(in_path), "%s/large-in.XXXXXX", g_root);
	snprintf(out_path, sizeof(out_path), "%s/large-out.XXXXXX", g_root);
	in = mkstemp(in_path);
	out = mkstemp(out_path);
	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(out, 0);
	unlink(in_path);
	unlink(out_path);
	for (uint64_t off = 0; off < size; off += MIB) {
		size_t n = size - off < MIB ? (size_t)(size - off) : MIB;

		tm_pattern(buf, off, n, 5);
		ck_assert_int_eq(pwrite(in, buf, n, (off_t)off), (ssize_t)n);
	}

	ck_assert_int_eq(backend_save_fd(g_b, "big/object.bin", in, size, &st), 0);
	ck_assert_uint_eq(st.size, size);
	ck_assert_int_eq(g_b->ops->stat(g_b, "big/object.bin", &rst), 0);
	ck_assert_uint_eq(rst.size, size);
	ck_assert_str_eq(rst.etag, st.etag);

	ck_assert_int_eq(backend_read_to_fd(g_b, "big/object.bin", out, &rst), 0);
	ck_assert_uint_eq(rst.size, size);
	ck_assert_int_eq(lseek(out, 0, SEEK_END), (off_t)size);
	for (uint64_t off = 0; off < size; off += MIB) {
		size_t n = size - off < MIB ? (size_t)(size - off) : MIB;

		ck_assert_int_eq(pread(out, buf, n, (off_t)off), (ssize_t)n);
		ck_assert_uint_eq(tm_pattern_check(buf, off, n, 5), n);
	}

	/* Ranges across the piece boundaries, and the tail. */
	for (uint64_t off = MIB - 100; off < size; off += 4 * MIB) {
		ck_assert_int_eq(do_read("big/object.bin", off, buf, 300, st.etag), 300);
		ck_assert_uint_eq(tm_pattern_check(buf, off, 300, 5), 300);
	}
	ck_assert_int_eq(do_read("big/object.bin", size - 10, buf, 100, NULL), 10);
	ck_assert_uint_eq(tm_pattern_check(buf, size - 10, 10, 5), 10);
	close(in);
	close(out);
	free(buf);
}
END_TEST

/* A sparse scratch file of size bytes: pattern 6 at [at, at + len), holes
 * elsewhere (unlinked; the caller closes it). */
static int sparse_file(uint64_t size, uint64_t at, size_t len)
{
	char path[PATH_MAX], *buf = malloc(len);
	int fd;

	snprintf(path, sizeof(path), "%s/sparse.XXXXXX", g_root);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	tm_pattern(buf, at, len, 6);
	ck_assert_int_eq(pwrite(fd, buf, len, (off_t)at), (ssize_t)len);
	free(buf);
	return fd;
}

/*
 * A sparse source: its holes are read as zeros without reading the file,
 * data() says where they are, and a save of it stores the right bytes.
 * A source whose file shrank fails to read rather than give zeros.
 */
START_TEST(test_sparse_fd)
{
	const uint64_t size = 40 * MIB, at = 20 * MIB + 7;
	const size_t len = 5000;
	int fd = sparse_file(size, at, len);
	struct backend_source src = backend_source_fd(fd, size);
	unsigned char *buf = malloc(MIB), zero[4096] = {0};

	ck_assert_uint_eq(backend_source_data(&src, 0, MIB), MIB);
	ck_assert_uint_le(backend_source_data(&src, 0, size), at);
	ck_assert_uint_eq(backend_source_data(&src, at + len + 8192, size), size);
	ck_assert_int_eq(src.read(&src, at - 100, buf, len + 200), 0);
	ck_assert(memcmp(buf, zero, 100) == 0);
	ck_assert_uint_eq(tm_pattern_check(buf + 100, at, len, 6), len);
	ck_assert(memcmp(buf + 100 + len, zero, 100) == 0);

	ck_assert_int_eq(backend_save_fd(g_b, "sparse.bin", fd, size, NULL), 0);
	ck_assert_int_eq(do_read("sparse.bin", at - 100, buf, len + 200, NULL), (ssize_t)len + 200);
	ck_assert(memcmp(buf, zero, 100) == 0);
	ck_assert_uint_eq(tm_pattern_check(buf + 100, at, len, 6), len);
	ck_assert_int_eq(do_read("sparse.bin", size - 4096, buf, MIB, NULL), 4096);
	ck_assert(memcmp(buf, zero, 4096) == 0);

	ck_assert_int_eq(ftruncate(fd, (off_t)(size / 2)), 0);
	ck_assert_int_eq(src.read(&src, size - MIB, buf, MIB), -EIO);
	close(fd);
	free(buf);
}
END_TEST

/* The object key holds exactly want (len bytes). */
static void assert_bytes(const char *key, const char *want, size_t len)
{
	char *back = malloc(len + 1);

	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(backend_read_full(g_b, key, 0, back, len + 1, NULL), (ssize_t)len);
	ck_assert_msg(memcmp(back, want, len) == 0, "%s has other bytes", key);
	free(back);
}

/*
 * Streaming uploads (upload_begin), on stacks that have them: bytes sent
 * while "being written", some written again, are stored exactly at the
 * save; nothing is visible before; abort leaves nothing; a save under
 * another key or at a small size is a plain save.
 */
START_TEST(test_upload_stream)
{
	size_t len = (23 << 20) + 3, small = 3 << 20;
	char *buf = calloc(1, len);
	struct backend_source src = backend_source_buffer(buf, len), at_save;
	struct backend_upload *u;
	struct backend_stat st;

	if (g_b->ops->upload_begin == NULL) {
		fprintf(stderr,
		        "note: backend %s has no upload_begin op; test_upload_stream not run\n",
		        g_b->ops->name);
		free(buf);
		return;
	}
	ck_assert_ptr_nonnull(buf);
	tm_pattern(buf, 0, len, 11);

	/* Begun, fed in steps, two ranges written again, saved. */
	ck_assert_int_eq(g_b->ops->upload_begin(g_b, "up/obj", &src, NULL, &u), 0);
	u->ops->ready(u, 7 << 20);
	u->ops->ready(u, 12 << 20);
	tm_pattern(buf + (1 << 20), 0, 10, 12);
	u->ops->changed(u, 1 << 20, 10);
	u->ops->ready(u, len);
	tm_pattern(buf + (10 << 20) - 5, 0, 10, 13);
	u->ops->changed(u, (10 << 20) - 5, 10);
	usleep(200000); /* let background parts run, if the backend has any */
	ck_assert_int_eq(do_stat("up/obj"), -ENOENT);
	at_save = src;
	at_save.upload = u;
	ck_assert_int_eq(g_b->ops->save(g_b, "up/obj", &at_save, NULL, &st), 0);
	ck_assert_uint_eq(st.size, len);
	assert_bytes("up/obj", buf, len);

	/* Aborted: nothing stored. */
	ck_assert_int_eq(g_b->ops->upload_begin(g_b, "up/gone", &src, NULL, &u), 0);
	u->ops->ready(u, len);
	u->ops->abort(u);
	ck_assert_int_eq(do_stat("up/gone"), -ENOENT);

	/* Begun for one key, saved under another (a rename). */
	ck_assert_int_eq(g_b->ops->upload_begin(g_b, "up/a", &src, NULL, &u), 0);
	u->ops->ready(u, len);
	at_save.upload = u;
	ck_assert_int_eq(g_b->ops->save(g_b, "up/b", &at_save, NULL, &st), 0);
	ck_assert_int_eq(do_stat("up/a"), -ENOENT);
	assert_bytes("up/b", buf, len);

	/* Cut short to a size one PUT takes. */
	ck_assert_int_eq(g_b->ops->upload_begin(g_b, "up/small", &src, NULL, &u), 0);
	u->ops->ready(u, len);
	at_save = backend_source_buffer(buf, small);
	at_save.upload = u;
	ck_assert_int_eq(g_b->ops->save(g_b, "up/small", &at_save, NULL, &st), 0);
	assert_bytes("up/small", buf, small);
	free(buf);
}
END_TEST

#define CONC_THREADS 8
#define CONC_ROUNDS  20

struct conc_arg {
	int id;
	int errors;
	char why[128];
};

/* Object of thread id, round r: an 8-byte header (id, r) and a pattern. */
static size_t conc_size(int id, int r)
{
	return 8 + 3000 + (size_t)id * 100 + (size_t)r * 7;
}

static void conc_fill(unsigned char *buf, int id, int r)
{
	size_t size = conc_size(id, r);

	buf[0] = (unsigned char)id;
	buf[1] = (unsigned char)r;
	memset(buf + 2, 0, 6);
	tm_pattern(buf + 8, 0, size - 8, (uint32_t)(id * 1000 + r));
}

/* 1 if buf (n bytes) is a complete object of some (id, r). */
static int conc_valid(const unsigned char *buf, ssize_t n)
{
	int id = buf[0], r = buf[1];

	if (n < 8 || id >= CONC_THREADS || r >= CONC_ROUNDS || (size_t)n != conc_size(id, r))
		return 0;
	return tm_pattern_check(buf + 8, 0, (size_t)n - 8, (uint32_t)(id * 1000 + r)) ==
	       (size_t)n - 8;
}

static void *conc_thread(void *p)
{
	struct conc_arg *a = p;
	unsigned char wbuf[8192], rbuf[8192];
	char key[32], other[32];

	snprintf(key, sizeof(key), "t/%d/obj", a->id);
	for (int r = 0; r < CONC_ROUNDS; r++) {
		size_t size = conc_size(a->id, r);
		struct backend_stat st;
		ssize_t n;
		int ret;

		conc_fill(wbuf, a->id, r);
		ret = backend_save_buffer(g_b, key, wbuf, size, &st);
		if (ret < 0 || st.size != size) {
			a->errors++;
			snprintf(a->why, sizeof(a->why), "save %s: %d", key, ret);
			continue;
		}
		n = do_read(key, 0, rbuf, sizeof(rbuf), NULL);
		if (n != (ssize_t)size || memcmp(rbuf, wbuf, size) != 0) {
			a->errors++;
			snprintf(a->why, sizeof(a->why), "read back %s: %zd", key, n);
		}
		/* Someone else's object: absent yet, or whole. */
		snprintf(other, sizeof(other), "t/%d/obj", (a->id + 1 + r) % CONC_THREADS);
		n = do_read(other, 0, rbuf, sizeof(rbuf), NULL);
		if (n != -ENOENT && !conc_valid(rbuf, n)) {
			a->errors++;
			snprintf(a->why, sizeof(a->why), "read %s: %zd", other, n);
		}
	}
	return NULL;
}

START_TEST(test_concurrent)
{
	struct conc_arg args[CONC_THREADS];
	pthread_t th[CONC_THREADS];
	unsigned char buf[8192];

	for (int i = 0; i < CONC_THREADS; i++) {
		args[i] = (struct conc_arg){.id = i};
		ck_assert_int_eq(pthread_create(&th[i], NULL, conc_thread, &args[i]), 0);
	}
	for (int i = 0; i < CONC_THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_msg(args[i].errors == 0, "thread %d: %d errors, last: %s", i,
		              args[i].errors, args[i].why);
	}
	for (int i = 0; i < CONC_THREADS; i++) {
		char key[32];
		ssize_t n;

		snprintf(key, sizeof(key), "t/%d/obj", i);
		n = do_read(key, 0, buf, sizeof(buf), NULL);
		ck_assert_int_eq(n, (ssize_t)conc_size(i, CONC_ROUNDS - 1));
		ck_assert(conc_valid(buf, n));
	}
}
END_TEST

#define ATOM_SIZE (2 * MIB)

struct atom_arg {
	volatile int done; /* set by the writer when it is finished */
	int reads, errors;
};

static void *atom_reader(void *p)
{
	struct atom_arg *a = p;
	unsigned char *buf = malloc(ATOM_SIZE + 1);

	if (buf == NULL) {
		a->errors++;
		return NULL;
	}
	while (!__atomic_load_n(&a->done, __ATOMIC_ACQUIRE)) {
		ssize_t n = do_read("atom", 0, buf, ATOM_SIZE + 1, NULL);

		__atomic_add_fetch(&a->reads, 1, __ATOMIC_RELAXED);
		if (n != ATOM_SIZE || (buf[0] != 'A' && buf[0] != 'B') ||
		    memchr(buf, buf[0] == 'A' ? 'B' : 'A', ATOM_SIZE) != NULL)
			a->errors++;
	}
	free(buf);
	return NULL;
}

START_TEST(test_atomic_readers)
{
	struct atom_arg a[2] = {{0}, {0}};
	unsigned char *data = malloc(ATOM_SIZE);
	pthread_t th[2];

	ck_assert_ptr_nonnull(data);
	memset(data, 'A', ATOM_SIZE);
	ck_assert_int_eq(backend_save_buffer(g_b, "atom", data, ATOM_SIZE, NULL), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, atom_reader, &a[i]), 0);
	/* At least 20 saves, and on until both readers have overlapped a few. */
	for (int i = 0; i < 20 || __atomic_load_n(&a[0].reads, __ATOMIC_RELAXED) < 10 ||
	                __atomic_load_n(&a[1].reads, __ATOMIC_RELAXED) < 10;
	     i++) {
		ck_assert_int_lt(i, 100000);
		memset(data, i % 2 ? 'A' : 'B', ATOM_SIZE);
		ck_assert_int_eq(backend_save_buffer(g_b, "atom", data, ATOM_SIZE, NULL), 0);
	}
	for (int i = 0; i < 2; i++) {
		__atomic_store_n(&a[i].done, 1, __ATOMIC_RELEASE);
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_msg(a[i].errors == 0, "reader %d saw %d torn or failed reads of %d", i,
		              a[i].errors, a[i].reads);
	}
	free(data);
}
END_TEST

START_TEST(test_failed_save_keeps_old)
{
	uint64_t fail_at = MIB;
	struct backend_source src = {
	    .size = 3 * MIB, .read = failing_read, .fd = -1, .opaque = &fail_at};
	struct backend_stat before, after;

	put("keep", "old content");
	ck_assert_int_eq(g_b->ops->stat(g_b, "keep", &before), 0);
	ck_assert_int_eq(g_b->ops->save(g_b, "keep", &src, NULL, NULL), -EIO);
	assert_content("keep", "old content");
	ck_assert_int_eq(g_b->ops->stat(g_b, "keep", &after), 0);
	ck_assert_str_eq(after.etag, before.etag);

	ck_assert_int_eq(g_b->ops->save(g_b, "newdir/fresh", &src, NULL, NULL), -EIO);
	ck_assert_int_eq(do_stat("newdir/fresh"), -ENOENT);

	/* The same source, allowed to finish, works. */
	fail_at = UINT64_MAX;
	ck_assert_int_eq(g_b->ops->save(g_b, "keep", &src, NULL, &after), 0);
	ck_assert_uint_eq(after.size, 3 * MIB);
}
END_TEST

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

START_TEST(test_unicode_keys)
{
	const char *keys[] = {
	    "dir with space/", "dir with space/file name.txt",
	    "ünïcödé/",        "ünïcödé/日本",
	    "emoji 🎉",         "z",
	    " leading space",  "trailing space ",
	    "tab\there",       "semi;colon&amp=eq+plus%25",
	};
	size_t n = sizeof(keys) / sizeof(keys[0]), len = 0;
	char want[1024], *got;

	for (size_t i = 0; i < n; i++) {
		size_t klen = strlen(keys[i]);

		if (keys[i][klen - 1] == '/')
			ck_assert_int_eq(backend_save_buffer(g_b, keys[i], "", 0, NULL), 0);
		else
			put(keys[i], keys[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (keys[i][strlen(keys[i]) - 1] != '/')
			assert_content(keys[i], keys[i]);
		else
			ck_assert_int_eq(do_stat(keys[i]), 0);
	}
	/* Bytes >= 0x80 sort after ASCII (memcmp order). */
	qsort(keys, n, sizeof(keys[0]), str_cmp);
	ck_assert_str_eq(keys[n - 1], "ünïcödé/日本");
	for (size_t i = 0; i < n; i++) {
		size_t klen = strlen(keys[i]);

		len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s(%zu)", i ? " " : "",
		                        keys[i], keys[i][klen - 1] == '/' ? 0 : klen);
	}
	got = list_all("", 0, NULL, 0, NULL);
	ck_assert_str_eq(got, want);
	free(got);
	got = list_all("", 0, NULL, 3, NULL);
	ck_assert_str_eq(got, want);
	free(got);
	assert_list("dir with space/", '/', "dir with space/(0) dir with space/file name.txt(28)");
	ck_assert_int_eq(g_b->ops->remove(g_b, "emoji 🎉"), 0);
	ck_assert_int_eq(do_stat("emoji 🎉"), -ENOENT);
}
END_TEST

START_TEST(test_save_attrs)
{
	struct backend_save_attrs attrs = {
	    .meta = BACKEND_META_MODE, .mode = 0640, .mtime = {1600000000, 123456789}};
	struct backend_source src = backend_source_buffer("attrs", 5);
	struct backend_stat st, sst;
	time_t before, after;

	ck_assert_int_eq(g_b->ops->save(g_b, "with-attrs", &src, &attrs, &sst), 0);
	ck_assert_int_eq(g_b->ops->stat(g_b, "with-attrs", &st), 0);
	ck_assert_int_eq(st.mtime.tv_sec, 1600000000);
	/* Sub-second precision may be lost, but not invented. */
	if (st.mtime.tv_nsec != 0)
		ck_assert_int_eq(st.mtime.tv_nsec, 123456789);
	ck_assert_int_eq(sst.mtime.tv_sec, 1600000000);
	if (st.meta & BACKEND_META_MODE)
		ck_assert_uint_eq(st.mode, 0640);
	ck_assert_str_eq(st.etag, sst.etag);

	/* No attributes: the store sets the time of the save. */
	before = time(NULL);
	ck_assert_int_eq(g_b->ops->save(g_b, "no-attrs", &src, NULL, NULL), 0);
	after = time(NULL);
	ck_assert_int_eq(g_b->ops->stat(g_b, "no-attrs", &st), 0);
	ck_assert_int_ge(st.mtime.tv_sec, before - 1);
	ck_assert_int_le(st.mtime.tv_sec, after + 1);

	/* Attributes on a marker. */
	ck_assert_int_eq(g_b->ops->save(g_b, "dir/", &(struct backend_source){.size = 0, .fd = -1},
	                                &attrs, NULL),
	                 0);
	ck_assert_int_eq(g_b->ops->stat(g_b, "dir/", &st), 0);
	ck_assert_int_eq(st.mtime.tv_sec, 1600000000);
}
END_TEST

/* setattr (or its fallback) changes the attributes, never the bytes. */
START_TEST(test_setattr)
{
	struct backend_save_attrs first = {
	    .meta = BACKEND_META_MODE, .mode = 0644, .mtime = {1500000000, 0}};
	struct backend_save_attrs next = {
	    .meta = BACKEND_META_MODE, .mode = 0600, .mtime = {1600000000, 0}};
	struct backend_source src = backend_source_buffer("same bytes", 10);
	struct backend_stat st, sst;
	char buf[32];

	ck_assert_int_eq(g_b->ops->save(g_b, "meta/file", &src, &first, NULL), 0);
	ck_assert_int_eq(backend_setattr(g_b, "meta/file", &next, &sst), 0);
	ck_assert_int_eq(g_b->ops->stat(g_b, "meta/file", &st), 0);
	ck_assert_int_eq(st.mtime.tv_sec, 1600000000);
	ck_assert_int_eq(sst.mtime.tv_sec, 1600000000);
	ck_assert_uint_eq(st.size, 10);
	if (st.meta & BACKEND_META_MODE)
		ck_assert_uint_eq(st.mode & 07777, 0600);
	ck_assert_str_eq(st.etag, sst.etag);
	ck_assert_int_eq(backend_read_full(g_b, "meta/file", 0, buf, sizeof(buf), NULL), 10);
	ck_assert(memcmp(buf, "same bytes", 10) == 0);
	/* A missing object stays missing. */
	ck_assert_int_eq(backend_setattr(g_b, "meta/none", &next, NULL), -ENOENT);
	ck_assert_int_eq(g_b->ops->stat(g_b, "meta/none", &st), -ENOENT);
}
END_TEST

START_TEST(test_nested_keys)
{
	int real = g_factory->flags & CF_REAL_DIRS;

	put("n1/n2/n3/leaf", "leaf");
	assert_content("n1/n2/n3/leaf", "leaf");
	ck_assert_int_eq(do_stat("n1/"), real ? 0 : -ENOENT);
	ck_assert_int_eq(do_stat("n1/n2/n3/"), real ? 0 : -ENOENT);
	ck_assert_int_eq(do_stat("n1"), -ENOENT);
	assert_list("", '/', "[n1/]");
	assert_list("n1/", '/', real ? "n1/(0) [n1/n2/]" : "[n1/n2/]");
	assert_list("n1/n2/n3/", '/', real ? "n1/n2/n3/(0) n1/n2/n3/leaf(4)" : "n1/n2/n3/leaf(4)");
	put("n1/n2/other", "o");
	assert_list("n1/n2/", '/',
	            real ? "n1/n2/(0) [n1/n2/n3/] n1/n2/other(1)" : "[n1/n2/n3/] n1/n2/other(1)");
}
END_TEST

/* read_fd, where a backend has it: the bytes of the version opened, even
 * after the object is replaced. */
START_TEST(test_read_fd)
{
	struct backend_stat st, st2;
	char buf[64] = {0};
	int fd;

	put("f", "first version");
	put("d/", "");
	fd = g_b->ops->read_fd(g_b, "f", NULL, &st);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(st.size, 13);
	put("f", "second");
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 13);
	ck_assert_str_eq(buf, "first version");
	close(fd);
	ck_assert_int_eq(g_b->ops->read_fd(g_b, "f", st.etag, &st2), -ESTALE);
	ck_assert_int_eq(g_b->ops->stat(g_b, "f", &st2), 0);
	fd = g_b->ops->read_fd(g_b, "f", st2.etag, NULL);
	ck_assert_int_ge(fd, 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 6);
	ck_assert_str_eq(buf, "second");
	close(fd);
	ck_assert_int_eq(g_b->ops->read_fd(g_b, "missing", NULL, NULL), -ENOENT);
	ck_assert_int_eq(g_b->ops->read_fd(g_b, "d/", NULL, NULL), -EISDIR);
	ck_assert_int_eq(g_b->ops->read_fd(g_b, "a//b", NULL, NULL), -EINVAL);
}
END_TEST

/* read_ref lends exactly the bytes read() copies, ends where the object
 * ends, and refuses another version.  -ENOBUFS is allowed (then read()). */
START_TEST(test_read_ref)
{
	const size_t size = 300 * 1024 + 7;
	const uint64_t offs[] = {0, 1, 65535, 65536, 200000, size - 10, size, size + 100};
	unsigned char *data = malloc(size), *got = malloc(size), *lent = malloc(size);
	struct backend_stat st;
	int answered = 0;

	ck_assert(data != NULL && got != NULL && lent != NULL);
	tm_pattern(data, 0, size, 31);
	ck_assert_int_eq(backend_save_buffer(g_b, "ref", data, size, &st), 0);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		struct backend_ref ref;
		ssize_t n1, n2;
		size_t flat = 0;

		n1 = backend_read_full(g_b, "ref", offs[i], got, 150000, st.etag);
		n2 = g_b->ops->read_ref(g_b, "ref", offs[i], 150000, st.etag, &ref, NULL);
		if (n2 == -ENOBUFS)
			continue;
		ck_assert_int_eq(n2, n1);
		ck_assert_uint_le(ref.n, BACKEND_REF_SEGS);
		for (unsigned k = 0; k < ref.n; k++)
			flat += ref.seg[k].len;
		ck_assert_int_eq(backend_ref_copy(&ref, lent), (ssize_t)flat);
		ck_assert_uint_eq(flat, (size_t)n2);
		ck_assert_int_eq(memcmp(lent, got, flat), 0);
		ck_assert_uint_eq(tm_pattern_check(lent, offs[i], flat, 31), flat);
		backend_release_ref(&ref);
		answered++;
	}
	ck_assert_int_gt(answered, 0);
	{
		struct backend_ref ref;

		ck_assert_int_eq(g_b->ops->read_ref(g_b, "ref", 0, 10, "\"nope\"", &ref, NULL),
		                 -ESTALE);
	}
	free(data);
	free(got);
	free(lent);
}
END_TEST

/* --- mem-only cases ------------------------------------------------------ */

START_TEST(test_mem_stats)
{
	struct mem_backend_stats s;
	struct backend_list l;
	char buf[100];

	mem_backend_reset_stats(g_b);
	mem_backend_get_stats(g_b, &s);
	ck_assert_uint_eq(s.save + s.read + s.stat + s.list + s.copy + s.remove + s.bytes_read, 0);

	put("a", "12345");
	put("b", "xy");
	ck_assert_int_eq(do_stat("a"), 0);
	ck_assert_int_eq(do_read("a", 0, buf, 3, NULL), 3);
	ck_assert_int_eq(do_read("a", 2, buf, sizeof(buf), NULL), 3);
	ck_assert_int_eq(do_read("missing", 0, buf, sizeof(buf), NULL), -ENOENT);
	ck_assert_int_eq(g_b->ops->list(g_b, "", 0, NULL, NULL, 0, &l), 0);
	backend_list_free(&l);
	ck_assert_int_eq(backend_copy(g_b, "a", "c", NULL), 0);
	ck_assert_int_eq(g_b->ops->remove(g_b, "b"), 0);

	mem_backend_get_stats(g_b, &s);
	ck_assert_uint_eq(s.save, 2);
	ck_assert_uint_eq(s.stat, 1);
	ck_assert_uint_eq(s.read, 3);
	ck_assert_uint_eq(s.bytes_read, 6);
	ck_assert_uint_eq(s.list, 1);
	ck_assert_uint_eq(s.copy, 1); /* server-side: no read, no save */
	ck_assert_uint_eq(s.remove, 1);

	mem_backend_reset_stats(g_b);
	mem_backend_get_stats(g_b, &s);
	ck_assert_uint_eq(s.save + s.read + s.stat + s.list + s.copy + s.remove + s.bytes_read, 0);
}
END_TEST

START_TEST(test_mem_optional_ops)
{
	ck_assert_str_eq(g_b->ops->name, "mem");
	ck_assert_ptr_nonnull(g_b->ops->copy);
	ck_assert_ptr_null(g_b->ops->rename);
	ck_assert_ptr_null(g_b->ops->space);
}
END_TEST

/* --- fs-only cases ------------------------------------------------------- */

static const char *fs_path(const char *rel)
{
	static char buf[4][PATH_MAX + 1200];
	static int slot;

	slot = (slot + 1) % 4;
	snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", g_fs_dir, rel);
	return buf[slot];
}

static int tmp_found(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	return strncmp(path + ftw->base, ".chunkfs-tmp.", 13) == 0;
}

/* 1 if a temporary file is left anywhere under the base. */
static int fs_has_tmp(void)
{
	return nftw(g_fs_dir, tmp_found, 16, FTW_PHYS) == 1;
}

static char *slurp_file(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return buf;
}

/* Send stderr to a new unlinked file until stderr_end(); returns its fd
 * and the saved stderr in *saved. */
static int stderr_begin(int *saved)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/stderr.XXXXXX", g_root);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	fflush(stderr);
	*saved = dup(STDERR_FILENO);
	ck_assert_int_ge(*saved, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	return fd;
}

/* Restore stderr and return what was written to it.  Caller frees. */
static char *stderr_end(int fd, int saved)
{
	char *text = calloc(1, 65536);
	ssize_t n;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_ptr_nonnull(text);
	n = pread(fd, text, 65535, 0);
	ck_assert_int_ge(n, 0);
	close(fd);
	return text;
}

START_TEST(test_fs_escape)
{
	char outside[PATH_MAX], rel[PATH_MAX + 8], secret[PATH_MAX + 16];
	static const char *const links[] = {"abs", "rel"};
	struct backend_source src = backend_source_buffer("x", 1);
	struct backend_list l;
	int fd, err_fd, saved;
	char buf[64], *log;

	snprintf(outside, sizeof(outside), "%s/outside.XXXXXX", g_root);
	ck_assert_ptr_nonnull(mkdtemp(outside));
	snprintf(secret, sizeof(secret), "%s/secret", outside);
	fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "s3cret", 6), 6);
	close(fd);
	snprintf(rel, sizeof(rel), "../%s", strrchr(outside, '/') + 1);
	ck_assert_int_eq(symlink(outside, fs_path("abs")), 0);
	ck_assert_int_eq(symlink(rel, fs_path("rel")), 0);
	ck_assert_int_eq(symlink(secret, fs_path("filelink")), 0);
	ck_assert_int_eq(symlink("/etc", fs_path("etc")), 0);
	put("inside", "mine");
	err_fd = stderr_begin(&saved);

	for (size_t i = 0; i < 2; i++) {
		char k_secret[32], k_new[32], k_deep[32], k_dir[32];

		snprintf(k_secret, sizeof(k_secret), "%s/secret", links[i]);
		snprintf(k_new, sizeof(k_new), "%s/new", links[i]);
		snprintf(k_deep, sizeof(k_deep), "%s/deep/new", links[i]);
		snprintf(k_dir, sizeof(k_dir), "%s/", links[i]);
		ck_assert_int_eq(do_stat(k_secret), -EPERM);
		ck_assert_int_eq(do_read(k_secret, 0, buf, sizeof(buf), NULL), -EPERM);
		ck_assert_int_eq(g_b->ops->save(g_b, k_new, &src, NULL, NULL), -EPERM);
		ck_assert_int_eq(g_b->ops->save(g_b, k_deep, &src, NULL, NULL), -EPERM);
		ck_assert_int_eq(backend_save_buffer(g_b, k_dir, "", 0, NULL), -EPERM);
		ck_assert_int_eq(g_b->ops->remove(g_b, k_secret), -EPERM);
		ck_assert_int_eq(do_stat(k_dir), -EPERM);
		ck_assert_int_eq(g_b->ops->list(g_b, k_dir, '/', NULL, NULL, 0, &l), -EPERM);
		ck_assert_ptr_null(l.entries);
		ck_assert_int_eq(g_b->ops->copy(g_b, k_secret, "stolen", NULL), -EPERM);
		ck_assert_int_eq(g_b->ops->copy(g_b, "inside", k_new, NULL), -EPERM);
		ck_assert_int_eq(g_b->ops->rename(g_b, k_secret, "stolen"), -EPERM);
		ck_assert_int_eq(g_b->ops->rename(g_b, "inside", k_new), -EPERM);
	}
	ck_assert_int_eq(do_stat("filelink"), -EPERM);
	ck_assert_int_eq(do_read("filelink", 0, buf, sizeof(buf), NULL), -EPERM);
	ck_assert_int_eq(do_stat("etc/passwd"), -EPERM);
	ck_assert_int_eq(do_read("etc/passwd", 0, buf, sizeof(buf), NULL), -EPERM);
	ck_assert_int_eq(do_stat("etc/"), -EPERM);
	ck_assert_int_eq(do_stat("../x"), -EINVAL);
	ck_assert_int_eq(g_b->ops->save(g_b, "../x", &src, NULL, NULL), -EINVAL);

	/* Each refusal was logged with the key. */
	log = stderr_end(err_fd, saved);
	ck_assert_msg(strstr(log, "\"abs/secret\"") != NULL, "log: %s", log);
	ck_assert_msg(strstr(log, "\"rel/new\"") != NULL, "log: %s", log);
	ck_assert_msg(strstr(log, "\"etc/passwd\"") != NULL, "log: %s", log);
	free(log);

	/* Links out are not listed, and nothing leaked out or in. */
	assert_list("", 0, "inside(4)");
	assert_list("", '/', "inside(4)");
	ck_assert_int_eq(do_stat("stolen"), -ENOENT);
	ck_assert_str_eq(slurp_file(secret), "s3cret");
	snprintf(secret, sizeof(secret), "%s/new", outside);
	ck_assert_int_eq(access(secret, F_OK), -1);
	snprintf(secret, sizeof(secret), "%s/secret", outside);

	/* Saving over the link replaces the link, not what it points at. */
	put("filelink", "replaced");
	assert_content("filelink", "replaced");
	ck_assert_str_eq(slurp_file(secret), "s3cret");
}
END_TEST

START_TEST(test_fs_symlinks_inside)
{
	put("real/f", "hello");
	ck_assert_int_eq(symlink("real", fs_path("alias")), 0);
	ck_assert_int_eq(symlink("real/f", fs_path("flink")), 0);
	ck_assert_int_eq(symlink("alias/../real/f", fs_path("dotdot")), 0);
	assert_content("alias/f", "hello");
	assert_content("flink", "hello");
	assert_content("dotdot", "hello");
	ck_assert_int_eq(do_stat("alias/"), 0);
	put("alias/g", "x");
	assert_content("real/g", "x");
	assert_list("alias/", '/', "alias/(0) alias/f(5) alias/g(1)");
	assert_list("", '/', "[alias/] dotdot(5) flink(5) [real/]");
	assert_list("", 0,
	            "alias/(0) alias/f(5) alias/g(1) dotdot(5) flink(5) real/(0) real/f(5) "
	            "real/g(1)");

	/* A link to an ancestor is listed once, not followed forever. */
	ck_assert_int_eq(symlink(".", fs_path("real/loop")), 0);
	assert_list("real/", 0, "real/(0) real/f(5) real/g(1) real/loop/(0)");
	assert_list("", '/', "[alias/] dotdot(5) flink(5) [real/]");
}
END_TEST

START_TEST(test_fs_no_temp_files)
{
	uint64_t fail_at = MIB;
	struct backend_source bad = {
	    .size = 3 * MIB, .read = failing_read, .fd = -1, .opaque = &fail_at};

	put("a/b/c", "data");
	put("a/b/c", "data2");
	ck_assert_int_eq(backend_save_buffer(g_b, "m/", "", 0, NULL), 0);
	ck_assert_int_eq(backend_copy(g_b, "a/b/c", "a/d", NULL), 0);
	ck_assert(!fs_has_tmp());
	ck_assert_int_eq(g_b->ops->save(g_b, "a/b/c", &bad, NULL, NULL), -EIO);
	ck_assert_int_eq(g_b->ops->save(g_b, "x/y", &bad, NULL, NULL), -EIO);
	ck_assert(!fs_has_tmp());
	assert_content("a/b/c", "data2");
	/* Saving a file over a directory fails cleanly too. */
	ck_assert_int_eq(backend_save_buffer(g_b, "a/b", "z", 1, NULL), -EISDIR);
	ck_assert(!fs_has_tmp());
	assert_content("a/b/c", "data2");
}
END_TEST

START_TEST(test_fs_layout)
{
	struct stat sb;

	put("x/y/z", "on disk");
	ck_assert_str_eq(slurp_file(fs_path("x/y/z")), "on disk");
	ck_assert_int_eq(lstat(fs_path("x/y"), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(backend_save_buffer(g_b, "m/n/", "", 0, NULL), 0);
	ck_assert_int_eq(lstat(fs_path("m/n"), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(g_b->ops->remove(g_b, "x/y/z"), 0);
	ck_assert_int_eq(lstat(fs_path("x/y/z"), &sb), -1);
	ck_assert_int_eq(lstat(fs_path("x/y"), &sb), 0); /* directories stay */

	/* A file written behind the backend's back is an object. */
	ck_assert_int_eq(mkdir(fs_path("ext"), 0755), 0);
	ck_assert_int_eq(symlink("/nonexistent", fs_path("ext/dangling")), 0);
	ck_assert_int_eq(close(open(fs_path("ext/file"), O_WRONLY | O_CREAT, 0644)), 0);
	assert_list("ext/", '/', "ext/(0) ext/file(0)");
}
END_TEST

START_TEST(test_fs_dirs_vs_files)
{
	char buf[8];

	put("d/f", "1");
	put("file", "1");
	ck_assert_int_eq(do_stat("d"), -ENOENT);
	ck_assert_int_eq(do_read("d", 0, buf, sizeof(buf), NULL), -ENOENT);
	ck_assert_int_eq(g_b->ops->remove(g_b, "d"), -ENOENT);
	ck_assert_int_eq(do_stat("file/"), -ENOENT);
	ck_assert_int_eq(g_b->ops->remove(g_b, "file/"), -ENOENT);
	ck_assert_int_eq(do_stat("file/x"), -ENOENT);
	ck_assert_int_eq(backend_save_buffer(g_b, "file/x", "2", 1, NULL), -ENOTDIR);
	ck_assert_int_eq(backend_save_buffer(g_b, "d", "2", 1, NULL), -EISDIR);
	ck_assert_int_eq(g_b->ops->rename(g_b, "d", "e"), -ENOENT);
	ck_assert_int_eq(g_b->ops->rename(g_b, "file/", "e/"), -ENOENT);

	/* Special files are not objects, and reading a FIFO does not hang. */
	ck_assert_int_eq(mkfifo(fs_path("fifo"), 0644), 0);
	ck_assert_int_eq(do_stat("fifo"), -ENOENT);
	ck_assert_int_eq(do_read("fifo", 0, buf, sizeof(buf), NULL), -ENOENT);
	assert_list("", '/', "[d/] file(1)");
}
END_TEST

START_TEST(test_fs_reserved_names)
{
	int fd = open(fs_path(".chunkfs-tmp.abcdefabcdef"), O_WRONLY | O_CREAT, 0644);

	ck_assert_int_ge(fd, 0);
	close(fd);
	put("a", "1");
	assert_list("", 0, "a(1)");
	ck_assert_int_eq(do_stat(".chunkfs-tmp.abcdefabcdef"), -EINVAL);
	ck_assert_int_eq(backend_save_buffer(g_b, "d/.chunkfs-tmp.x", "", 0, NULL), -EINVAL);
	/* Other dot files are ordinary keys. */
	put(".hidden", "h");
	assert_list("", 0, ".hidden(1) a(1)");
}
END_TEST

START_TEST(test_fs_create_errors)
{
	char path[PATH_MAX + 16];
	struct backend *b;

	snprintf(path, sizeof(path), "%s/missing", g_fs_dir);
	errno = 0;
	b = fs_backend_create(path);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(errno, ENOENT);
	put("file", "1");
	snprintf(path, sizeof(path), "%s/file", g_fs_dir);
	errno = 0;
	b = fs_backend_create(path);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(errno, ENOTDIR);
}
END_TEST

START_TEST(test_fs_meta_and_space)
{
	struct backend_save_attrs attrs = {.meta = BACKEND_META_MODE, .mode = 0600};
	struct backend_source src = backend_source_buffer("m", 1);
	struct backend_stat st;
	uint64_t total = 0, avail = 0;
	struct stat sb;

	put("plain", "p");
	ck_assert_int_eq(g_b->ops->stat(g_b, "plain", &st), 0);
	ck_assert_int_eq(lstat(fs_path("plain"), &sb), 0);
	ck_assert_uint_eq(st.meta, BACKEND_META_MODE | BACKEND_META_UID | BACKEND_META_GID);
	ck_assert_uint_eq(st.mode, sb.st_mode & 07777);
	ck_assert_uint_eq(st.uid, sb.st_uid);
	ck_assert_uint_eq(st.gid, sb.st_gid);
	ck_assert_int_eq(st.mtime.tv_sec, sb.st_mtim.tv_sec);
	ck_assert_int_eq(st.mtime.tv_nsec, sb.st_mtim.tv_nsec);

	ck_assert_int_eq(g_b->ops->save(g_b, "private", &src, &attrs, NULL), 0);
	ck_assert_int_eq(lstat(fs_path("private"), &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0600);

	ck_assert_int_eq(g_b->ops->space(g_b, &total, &avail), 0);
	ck_assert_uint_gt(total, 0);
	ck_assert_uint_le(avail, total);
}
END_TEST

/* The widest mode of a temporary file seen while a save reads its data. */
static mode_t g_tmp_mode;

static int tmp_mode_seen(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)type;
	if (strncmp(path + ftw->base, ".chunkfs-tmp.", 13) == 0)
		g_tmp_mode |= sb->st_mode & 07777;
	return 0;
}

static int read_noting_tmp_mode(const struct backend_source *src, uint64_t off, void *dst,
                                size_t len)
{
	(void)src;
	nftw(g_fs_dir, tmp_mode_seen, 16, FTW_PHYS);
	memset(dst, 'x', len);
	(void)off;
	return 0;
}

/* A file being saved is 0600 until its data is in: another user cannot
 * read a private file's new content through the temporary file.  A save
 * without a mode still ends with the default (0666 less the umask). */
START_TEST(test_fs_save_tmp_private)
{
	struct backend_save_attrs attrs = {.meta = BACKEND_META_MODE, .mode = 0600};
	struct backend_source src = {.size = 3 << 20, .read = read_noting_tmp_mode};
	mode_t mask = umask(022);
	struct stat sb;

	g_tmp_mode = 0;
	ck_assert_int_eq(g_b->ops->save(g_b, "secret", &src, &attrs, NULL), 0);
	ck_assert_uint_eq(g_tmp_mode, 0600);
	ck_assert_int_eq(lstat(fs_path("secret"), &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0600);
	put("plain", "p");
	ck_assert_int_eq(lstat(fs_path("plain"), &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0666 & ~mask);
	umask(mask);
}
END_TEST

START_TEST(test_fs_rename_dirs)
{
	put("a/1", "1");
	put("b/2", "2");
	ck_assert_int_eq(g_b->ops->rename(g_b, "a/", "b/"), -ENOTEMPTY);
	ck_assert_int_eq(g_b->ops->rename(g_b, "a/", "a2"), -EINVAL);
	ck_assert_int_eq(backend_save_buffer(g_b, "empty/", "", 0, NULL), 0);
	ck_assert_int_eq(g_b->ops->rename(g_b, "a/", "empty/"), 0);
	assert_content("empty/1", "1");
	ck_assert_int_eq(do_stat("a/"), -ENOENT);
	ck_assert(!fs_has_tmp());
}
END_TEST

/* --- suites ---------------------------------------------------------------- */

static TCase *new_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	return tc;
}

static void add_mem_cases(Suite *s)
{
	TCase *tc = new_tcase("mem");

	tcase_add_test(tc, test_mem_stats);
	tcase_add_test(tc, test_mem_optional_ops);
	suite_add_tcase(s, tc);
}

/* A save of a sparse source leaves its holes holes on disk, and so do
 * pages of zeros it holds as data. */
START_TEST(test_fs_sparse_save)
{
	const uint64_t size = 1024 * MIB, at = 512 * MIB;
	int fd = sparse_file(size, at, MIB);
	char *zeros = calloc(1, 4 * MIB);
	struct stat sb;

	ck_assert_int_eq(backend_save_fd(g_b, "sparse.bin", fd, size, NULL), 0);
	ck_assert_int_eq(stat(fs_path("sparse.bin"), &sb), 0);
	ck_assert_uint_eq((uint64_t)sb.st_size, size);
	ck_assert_msg(sb.st_blocks <= 2 * 2048, "%lld blocks of 512 bytes for 1 MiB of data",
	              (long long)sb.st_blocks);
	close(fd);
	ck_assert_int_eq(backend_save_buffer(g_b, "zeros.bin", zeros, 4 * MIB, NULL), 0);
	ck_assert_int_eq(stat(fs_path("zeros.bin"), &sb), 0);
	ck_assert_uint_eq((uint64_t)sb.st_size, 4 * MIB);
	ck_assert_int_le(sb.st_blocks, 8);
	free(zeros);
}
END_TEST

static void add_fs_cases(Suite *s)
{
	TCase *tc = new_tcase("fs");

	tcase_add_test(tc, test_fs_escape);
	tcase_add_test(tc, test_fs_symlinks_inside);
	tcase_add_test(tc, test_fs_no_temp_files);
	tcase_add_test(tc, test_fs_layout);
	tcase_add_test(tc, test_fs_dirs_vs_files);
	tcase_add_test(tc, test_fs_reserved_names);
	tcase_add_test(tc, test_fs_create_errors);
	tcase_add_test(tc, test_fs_meta_and_space);
	tcase_add_test(tc, test_fs_save_tmp_private);
	tcase_add_test(tc, test_fs_rename_dirs);
	tcase_add_test(tc, test_fs_sparse_save);
	suite_add_tcase(s, tc);
}

static struct backend *mem_factory_create(void)
{
	return mem_backend_create();
}

static void plain_destroy(struct backend *b)
{
	backend_destroy(b);
}

/* The block cache over a mem backend, with small blocks and a budget of 16
 * of them, so the cases cross blocks and evict. */
static struct backend *cache_factory_create(void)
{
	struct cache_opts o = {.block_size = 64 * 1024, .mem_budget = MIB};
	struct backend *inner = mem_backend_create(), *b;

	if (inner == NULL)
		return NULL;
	b = cache_create(inner, &o);
	if (b == NULL)
		backend_destroy(inner);
	return b;
}

/* The fault layer over a mem backend, injecting nothing: a pure
 * pass-through must keep every promise of its inner backend. */
static struct backend *fault_factory_create(void)
{
	struct backend *inner = mem_backend_create(), *b;

	if (inner == NULL)
		return NULL;
	b = fault_create(inner, NULL);
	if (b == NULL)
		backend_destroy(inner);
	return b;
}

static struct backend *fs_factory_create(void)
{
	snprintf(g_fs_dir, sizeof(g_fs_dir), "%s/fs.XXXXXX", g_root);
	if (mkdtemp(g_fs_dir) == NULL)
		return NULL;
	return fs_backend_create(g_fs_dir);
}

static void fs_factory_destroy(struct backend *b)
{
	backend_destroy(b);
	rm_rf(g_fs_dir);
}

/* The block cache with a disk tier over a mem backend, in a scratch
 * directory under g_root, with small blocks, room for 16 of them on disk
 * and 4 in memory, so the cases cross blocks, evict, and read blocks back
 * from disk. */
static char g_dc_dir[1100];

static struct backend *diskcache_factory_create(void)
{
	struct cache_opts co = {.block_size = 64 * 1024, .mem_budget = 4 * 64 * 1024};
	struct diskcache_opts o;
	struct backend *inner, *b;

	snprintf(g_dc_dir, sizeof(g_dc_dir), "%s/diskcache.XXXXXX", g_root);
	if (mkdtemp(g_dc_dir) == NULL)
		return NULL;
	inner = mem_backend_create();
	if (inner == NULL)
		return NULL;
	diskcache_opts_init(&o);
	o.dir = g_dc_dir;
	o.block_size = 64 * 1024;
	o.max_bytes = 16 * (64 * 1024 + 4096);
	o.min_free_percent = -1;
	co.disk = diskcache_create(&o);
	if (co.disk == NULL) {
		backend_destroy(inner);
		return NULL;
	}
	b = cache_create(inner, &co);
	if (b == NULL) {
		co.disk->ops->destroy(co.disk);
		backend_destroy(inner);
	}
	return b;
}

static void diskcache_factory_destroy(struct backend *b)
{
	backend_destroy(b);
	rm_rf(g_dc_dir);
}

/*
 * S3: a fresh prefix of the test bucket on the server tests/check.sh
 * starts (CHUNKFS_TEST_S3_*).  Without it the suite is NOT RUN.
 */
static struct backend *s3_factory_create(void)
{
	const char *ep = getenv("CHUNKFS_TEST_S3_ENDPOINT");
	const char *bucket = getenv("CHUNKFS_TEST_S3_BUCKET");
	static unsigned serial;
	char url[512], err[1024];
	struct s3_opts o;
	struct backend *b;

	if (ep == NULL || bucket == NULL) {
		errno = ENODEV;
		return NULL;
	}
	setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	s3_opts_init(&o);
	o.endpoint = strdup(ep);
	o.part_size_mb = 5; /* so the 20 MiB case goes through multipart */
	snprintf(url, sizeof(url), "s3://%s/contract-%d-%u-%ld", bucket, (int)getpid(), serial++,
	         (long)time(NULL));
	b = s3_backend_create(url, &o, err, sizeof(err));
	if (b == NULL)
		fprintf(stderr, "s3 backend: %s\n", err);
	s3_opts_free(&o);
	return b;
}

/* Remove every key the test left, then the backend. */
static void s3_factory_destroy(struct backend *b)
{
	struct backend_list l;

	for (int round = 0; round < 100; round++) {
		if (b->ops->list(b, "", 0, NULL, NULL, 1000, &l) != 0 || l.n_entries == 0) {
			backend_list_free(&l);
			break;
		}
		for (size_t i = 0; i < l.n_entries; i++)
			b->ops->remove(b, l.entries[i].key);
		backend_list_free(&l);
	}
	backend_destroy(b);
}

static const struct contract_factory contract_factories[] = {
    {.name = "mem",
     .create = mem_factory_create,
     .destroy_fixture = plain_destroy,
     .add_cases = add_mem_cases},
    {.name = "fs",
     .flags = CF_REAL_DIRS,
     .create = fs_factory_create,
     .destroy_fixture = fs_factory_destroy,
     .add_cases = add_fs_cases},
    {.name = "cache", .create = cache_factory_create, .destroy_fixture = plain_destroy},
    {.name = "fault", .create = fault_factory_create, .destroy_fixture = plain_destroy},
    {.name = "diskcache",
     .create = diskcache_factory_create,
     .destroy_fixture = diskcache_factory_destroy},
    {.name = "s3", .create = s3_factory_create, .destroy_fixture = s3_factory_destroy},
};

/* The suite for f, named into name (which must outlive the suite). */
static Suite *contract_suite(const struct contract_factory *f, char *name, size_t size)
{
	Suite *s;
	TCase *tc;
	struct backend *probe;
	int has_rename, has_read_fd, has_read_ref;

	/* Which optional ops the backend has decides the rename case. */
	probe = f->create();
	if (probe == NULL && errno == ENODEV) {
		printf("NOT RUN backend_contract_%s: no test server (run through make check)\n",
		       f->name);
		*name = '\0';
		return NULL;
	}
	if (probe == NULL) {
		fprintf(stderr, "cannot create a %s backend: %s\n", f->name, strerror(errno));
		return NULL;
	}
	has_rename = probe->ops->rename != NULL;
	has_read_fd = probe->ops->read_fd != NULL;
	has_read_ref = probe->ops->read_ref != NULL;
	f->destroy_fixture(probe);
	if (!has_rename)
		printf("note: backend %s has no rename op; test_rename not run\n", f->name);

	snprintf(name, size, "backend_contract_%s", f->name);
	s = suite_create(name);
	tc = new_tcase("contract");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_upload_stream);
	tcase_add_test(tc, test_zero_length);
	tcase_add_test(tc, test_overwrite_etag);
	tcase_add_test(tc, test_remove);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_invalid_keys);
	tcase_add_test(tc, test_markers);
	tcase_add_test(tc, test_list_delimiter);
	tcase_add_test(tc, test_list_recursive);
	tcase_add_test(tc, test_list_entry_stat);
	tcase_add_test(tc, test_list_paging);
	tcase_add_test(tc, test_list_paging_prefixes);
	tcase_add_test(tc, test_list_start_after);
	tcase_add_test(tc, test_copy);
	tcase_add_test(tc, test_copy_fallback);
	tcase_add_test(tc, test_large_fd);
	tcase_add_test(tc, test_sparse_fd);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_atomic_readers);
	tcase_add_test(tc, test_failed_save_keeps_old);
	tcase_add_test(tc, test_unicode_keys);
	tcase_add_test(tc, test_save_attrs);
	tcase_add_test(tc, test_setattr);
	tcase_add_test(tc, test_nested_keys);
	if (has_rename)
		tcase_add_test(tc, test_rename);
	if (has_read_fd)
		tcase_add_test(tc, test_read_fd);
	if (has_read_ref)
		tcase_add_test(tc, test_read_ref);
	suite_add_tcase(s, tc);
	if (f->add_cases != NULL)
		f->add_cases(s);
	return s;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	int failed = 0;

	snprintf(g_root, sizeof(g_root), "%s/check_backend_contract.XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(g_root) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < sizeof(contract_factories) / sizeof(contract_factories[0]); i++) {
		char name[64];
		Suite *s;

		g_factory = &contract_factories[i];
		name[0] = 'x';
		s = contract_suite(g_factory, name, sizeof(name));
		if (s == NULL) {
			failed += name[0] != '\0'; /* "" : not run, not failed */
			continue;
		}
		failed += suites_run(s);
	}
	rm_rf(g_root);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
