/*
 * listbe.c - see listbe.h.
 */
#include "listbe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int listbe_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	(void)b;
	(void)key;
	(void)st;
	return -ENOENT;
}

static int listbe_list(struct backend *b, const char *prefix, char delimiter,
                       const char *start_after, const char *token, size_t max_keys,
                       struct backend_list *out)
{
	struct listbe *l = (struct listbe *)b;
	int ret;

	(void)delimiter;
	(void)start_after;
	(void)max_keys;
	memset(out, 0, sizeof(*out));
	l->calls++;
	ret = l->fn(l->ctx, prefix, token, out);
	if (ret < 0)
		backend_list_free(out);
	return ret;
}

static void listbe_destroy(struct backend *b)
{
	free(b);
}

static const struct backend_ops listbe_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "listbe",
    .stat = listbe_stat,
    .list = listbe_list,
    .destroy = listbe_destroy,
};

struct listbe *listbe_create(listbe_fn fn, void *ctx)
{
	struct listbe *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->base.ops = &listbe_ops;
	l->fn = fn;
	l->ctx = ctx;
	return l;
}

static int grow(void *arr, size_t n, size_t elem)
{
	void **p = arr;
	void *q;

	if (n & (n - 1) && n != 0)
		return 0; /* room left: capacities are powers of two */
	q = realloc(*p, (n ? n * 2 : 1) * elem);
	if (q == NULL)
		return -ENOMEM;
	*p = q;
	return 0;
}

int listbe_add(struct backend_list *out, const char *key, int is_prefix)
{
	char *s = strdup(key);

	if (s == NULL)
		return -ENOMEM;
	if (is_prefix) {
		if (grow(&out->prefixes, out->n_prefixes, sizeof(*out->prefixes)) < 0)
			goto fail;
		out->prefixes[out->n_prefixes++] = s;
		return 0;
	}
	if (grow(&out->entries, out->n_entries, sizeof(*out->entries)) < 0)
		goto fail;
	memset(&out->entries[out->n_entries], 0, sizeof(*out->entries));
	out->entries[out->n_entries].key = s;
	out->entries[out->n_entries++].st.size = 1;
	return 0;
fail:
	free(s);
	return -ENOMEM;
}
