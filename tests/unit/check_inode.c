/* check_inode.c - the inode table (fuse/inode.c): names, keys, lifetimes. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inode.h"
#include "suites.h"

static struct inode_table *t;

static void setup(void)
{
	t = inode_table_create();
	ck_assert_ptr_nonnull(t);
}

static void teardown(void)
{
	inode_table_destroy(t);
}

static void assert_key(struct node *n, const char *child, const char *want)
{
	char *key = inode_key(t, n, child);

	ck_assert_ptr_nonnull(key);
	ck_assert_str_eq(key, want);
	free(key);
}

START_TEST(test_keys)
{
	struct node *root = inode_from_ino(t, FUSE_ROOT_ID);
	struct node *a = inode_link(t, root, "a", S_IFDIR);
	struct node *b = inode_link(t, a, "b c", S_IFDIR);
	struct node *f = inode_link(t, b, "f.pt", S_IFREG);

	ck_assert_int_eq(inode_to_ino(root), FUSE_ROOT_ID);
	assert_key(root, NULL, "");
	assert_key(root, "x", "x");
	assert_key(a, NULL, "a");
	assert_key(a, "x", "a/x");
	assert_key(b, NULL, "a/b c");
	assert_key(f, NULL, "a/b c/f.pt");
	ck_assert_ptr_eq(inode_from_ino(t, inode_to_ino(f)), f);
	ck_assert_uint_ne(f->number, b->number);
}
END_TEST

START_TEST(test_link_finds_same_node)
{
	struct node *root = inode_from_ino(t, FUSE_ROOT_ID);
	struct node *a = inode_link(t, root, "a", S_IFREG);
	struct node *again = inode_link(t, root, "a", S_IFREG);

	ck_assert_ptr_eq(a, again);
	ck_assert_uint_eq(a->nlookup, 2);
	ck_assert_ptr_eq(inode_find(t, root, "a"), a);
	ck_assert_uint_eq(a->nlookup, 3);
	ck_assert_ptr_null(inode_find(t, root, "b"));
	inode_forget(t, a, 3);
	/* Forgotten: a new lookup makes a new node with a new number. */
	ck_assert_ptr_null(inode_find(t, root, "a"));
}
END_TEST

START_TEST(test_type_change_detaches)
{
	struct node *root = inode_from_ino(t, FUSE_ROOT_ID);
	struct node *f = inode_link(t, root, "x", S_IFREG);
	struct node *d = inode_link(t, root, "x", S_IFDIR);

	ck_assert_ptr_ne(f, d);
	ck_assert_int_eq(d->type, S_IFDIR);
	ck_assert_ptr_eq(inode_find(t, root, "x"), d);
	/* The old node lives on for the kernel's lookups, unfindable. */
	ck_assert_int_eq(f->hashed, 0);
	inode_forget(t, f, 1);
	inode_forget(t, d, 2);
}
END_TEST

START_TEST(test_move_and_children_follow)
{
	struct node *root = inode_from_ino(t, FUSE_ROOT_ID);
	struct node *a = inode_link(t, root, "a", S_IFDIR);
	struct node *f = inode_link(t, a, "f", S_IFREG);
	struct node *z = inode_link(t, root, "z", S_IFDIR);
	struct node *victim = inode_link(t, z, "g", S_IFREG);

	ck_assert_int_eq(inode_move(t, a, root, "renamed"), 0);
	assert_key(f, NULL, "renamed/f");
	ck_assert_ptr_null(inode_find(t, root, "a"));
	ck_assert_int_eq(inode_move(t, f, z, "g"), 0);
	assert_key(f, NULL, "z/g");
	ck_assert_ptr_eq(inode_find(t, z, "g"), f);
	ck_assert_int_eq(victim->hashed, 0);
	ck_assert_uint_eq(a->nchildren, 0);
	ck_assert_uint_eq(z->nchildren, 2);
	inode_forget(t, victim, 1);
	ck_assert_uint_eq(z->nchildren, 1);
}
END_TEST

START_TEST(test_parent_outlives_children)
{
	struct node *root = inode_from_ino(t, FUSE_ROOT_ID);
	struct node *a = inode_link(t, root, "a", S_IFDIR);
	struct node *f = inode_link(t, a, "f", S_IFREG);

	/* The kernel may forget a directory before its child: the child still
	 * needs the parent to build its key. */
	inode_forget(t, a, 1);
	assert_key(f, NULL, "a/f");
	inode_forget(t, f, 1);
	ck_assert_ptr_null(inode_find(t, root, "a"));
}
END_TEST

START_TEST(test_many_nodes_rehash)
{
	struct node *root = inode_from_ino(t, FUSE_ROOT_ID);
	enum { N = 20000 };
	static struct node *nodes[N];
	char name[32];

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		nodes[i] = inode_link(t, root, name, S_IFREG);
		ck_assert_ptr_nonnull(nodes[i]);
	}
	for (int i = 0; i < N; i += 997) {
		snprintf(name, sizeof(name), "n%d", i);
		ck_assert_ptr_eq(inode_find(t, root, name), nodes[i]);
		inode_forget(t, nodes[i], 1);
	}
	for (int i = 0; i < N; i++)
		inode_forget(t, nodes[i], 1);
	ck_assert_uint_eq(root->nchildren, 0);
}
END_TEST

static void *linker(void *arg)
{
	struct node *root = arg;
	char name[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "c%d", i % 50);
		struct node *n = inode_link(t, root, name, S_IFREG);
		inode_forget(t, n, 1);
	}
	return NULL;
}

START_TEST(test_concurrent_link_forget)
{
	struct node *root = inode_from_ino(t, FUSE_ROOT_ID);
	pthread_t th[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, linker, root);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_eq(root->nchildren, 0);
}
END_TEST

/* The version an open saw is its ETag and its size: keep_cache and page
 * fills never take one object's pages for another with the same ETag
 * (finding 7 of issue 13). */
START_TEST(test_opened_version_needs_size)
{
	struct node *n = inode_link(t, inode_from_ino(t, FUSE_ROOT_ID), "f", S_IFREG);

	ck_assert_ptr_nonnull(n);
	snprintf(n->open_etag, sizeof(n->open_etag), "constant");
	n->open_size = 100;
	ck_assert(inode_opened_version(n, "constant", 100));
	ck_assert(!inode_opened_version(n, "constant", 101));
	ck_assert(!inode_opened_version(n, "other", 100));
	n->open_etag[0] = '\0';
	ck_assert(!inode_opened_version(n, "", 100)); /* no ETag: never the same */
	inode_forget(t, n, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inode");
	TCase *tc = tcase_create("table");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_link_finds_same_node);
	tcase_add_test(tc, test_type_change_detaches);
	tcase_add_test(tc, test_move_and_children_follow);
	tcase_add_test(tc, test_parent_outlives_children);
	tcase_add_test(tc, test_many_nodes_rehash);
	tcase_add_test(tc, test_concurrent_link_forget);
	tcase_add_test(tc, test_opened_version_needs_size);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
