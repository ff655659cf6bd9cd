/*
 * listbe.h - a backend whose listings are whatever the test says: every
 * list() call is answered by a function of the test, which fills the page
 * as it likes (keys outside the prefix, names with '/', tokens that never
 * end).  For tests and fuzz targets of the listing consumers, which must
 * hold up against a store that answers anything.
 */
#ifndef CHUNKFS_TEST_LISTBE_H
#define CHUNKFS_TEST_LISTBE_H

#include "backend.h"

/* Answer one list() call: fill *out (zeroed) with strings the backend
 * will free (backend_list_free()).  0 or -errno. */
typedef int (*listbe_fn)(void *ctx, const char *prefix, const char *token,
                         struct backend_list *out);

struct listbe {
	struct backend base;
	listbe_fn fn;
	void *ctx;
	unsigned calls; /* list() calls so far */
};

/* A backend with list() only (stat gives -ENOENT).  Free with
 * backend_destroy(&l->base).  NULL on failure. */
struct listbe *listbe_create(listbe_fn fn, void *ctx);

/* Append a copy of key as an entry of size 1 (or of prefix when is_prefix)
 * to out.  0 or -ENOMEM. */
int listbe_add(struct backend_list *out, const char *key, int is_prefix);

#endif
