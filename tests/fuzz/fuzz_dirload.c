/*
 * fuzz_dirload.c - libFuzzer target for the listing consumers of fuse/:
 * dircache_list() (what opendir and lookups load a directory with) and
 * backend_list_keep(), over listings a store could answer anything in.
 *
 * fuzz-pkgs: jansson
 *
 * fuzz-sources: fuse/dircache.c backends/backend.c lib/log.c lib/io.c
 * fuzz-sources: lib/safedir.c tests/support/listbe.c
 *
 * The input is lines ('\n'): the first is the prefix listed (a '/' is
 * added when missing and it is not empty), then one item a line: "K..." a
 * key, "P..." a common prefix, "T..." ends a page with that continuation
 * token ("T" alone: the last page), anything else is skipped.  The pages
 * are answered in order by tests/support/listbe.c, then empty last pages.
 * The first byte of the input also picks the bounds (pages, memory).
 *
 * Checked on every input, aborting on a violation:
 *   - dircache_list() returns 0, -EIO (token repeated, bounds) or -E2BIG;
 *   - on 0, the items are sorted with unique names, each a name a
 *     directory can show (not empty, not . or .., no '/' or control
 *     character, at most 255 bytes), typed S_IFREG or S_IFDIR, and each
 *     was in the input: prefix + name a key, or prefix + name + '/' a
 *     common prefix; a directory wins over a file of the same name;
 *   - on -EIO with a page bound, no more pages were asked than allowed
 *     (one more to see the token repeat);
 *   - backend_list_keep() keeps exactly the keys that start with the
 *     prefix and the common prefixes that start with it and are longer.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuse/dircache.h"
#include "log.h"
#include "tests/support/listbe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* The input cut into lines (NUL-terminated copies). */
struct input {
	char *text;
	char **lines;
	size_t n;
	size_t next; /* the line the next page starts at */
};

static int split(struct input *in, const uint8_t *data, size_t size)
{
	in->text = malloc(size + 1);
	in->lines = malloc((size + 1) * sizeof(*in->lines));
	if (in->text == NULL || in->lines == NULL)
		return -1;
	memcpy(in->text, data, size);
	in->text[size] = '\0';
	in->n = 0;
	for (char *p = in->text;;) {
		char *nl = memchr(p, '\n', (size_t)(in->text + size - p));

		in->lines[in->n++] = p;
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return 0;
}

/* listbe_fn: the next page of the input. */
static int next_page(void *ctx, const char *prefix, const char *token, struct backend_list *out)
{
	struct input *in = ctx;

	(void)prefix;
	(void)token;
	for (; in->next < in->n; in->next++) {
		const char *l = in->lines[in->next];
		int ret = 0;

		if (l[0] == 'K' || l[0] == 'P')
			ret = listbe_add(out, l + 1, l[0] == 'P');
		else if (l[0] == 'T') {
			in->next++;
			if (l[1] == '\0')
				return 0;
			out->next_token = strdup(l + 1);
			return out->next_token ? 0 : -ENOMEM;
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Whether the pages answered so far have a line kind + want. */
static int in_input(const struct input *in, char kind, const char *want)
{
	for (size_t i = 1; i < in->next && i < in->n; i++)
		if (in->lines[i][0] == kind && strcmp(in->lines[i] + 1, want) == 0)
			return 1;
	return 0;
}

static void check_name(const char *name)
{
	size_t len = strlen(name);

	CHECK(len > 0 && len <= 255);
	CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		CHECK(*c != '/' && *c >= 0x20 && *c != 0x7f);
}

static void check_listing(const struct input *in, const char *prefix,
                          const struct dircache_listing *l)
{
	size_t plen = strlen(prefix);

	for (size_t i = 0; i < l->n; i++) {
		const struct dircache_item *it = &l->items[i];
		size_t len = strlen(it->name);
		char *full = malloc(plen + len + 2);

		CHECK(full != NULL);
		check_name(it->name);
		CHECK(i == 0 || strcmp(l->items[i - 1].name, it->name) < 0);
		memcpy(full, prefix, plen);
		memcpy(full + plen, it->name, len + 1);
		if (it->type == S_IFREG) {
			CHECK(in_input(in, 'K', full));
			strcat(full, "/");
			CHECK(!in_input(in, 'P', full)); /* the directory wins */
		} else {
			CHECK(it->type == S_IFDIR);
			strcat(full, "/");
			CHECK(in_input(in, 'P', full));
		}
		free(full);
	}
}

/* backend_list_keep() over one page of everything in the input. */
static void check_keep(struct input *in, const char *prefix)
{
	struct backend_list l = {0};
	size_t plen = strlen(prefix), n, want = 0;

	for (size_t i = 1; i < in->n; i++) {
		const char *s = in->lines[i];

		if (s[0] != 'K' && s[0] != 'P')
			continue;
		CHECK(listbe_add(&l, s + 1, s[0] == 'P') == 0);
		want += strncmp(s + 1, prefix, plen) != 0 || (s[0] == 'P' && strlen(s + 1) <= plen);
	}
	n = backend_list_keep(&l, prefix, plen);
	CHECK(n == want);
	for (size_t i = 0; i < l.n_prefixes; i++)
		CHECK(l.prefixes[i][0] != '\0');
	backend_list_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pages[] = {0, 1, 3, 50};
	static const size_t bytes[] = {0, 256, 4096, 1 << 20};
	struct input in = {0};
	struct dircache_listing l = {0};
	struct dircache_limits lim = {0};
	struct listbe *lb;
	char *prefix;
	size_t plen;
	int ret;

	log_set_level(LOG_LEVEL_ERROR);
	if (split(&in, data, size) < 0)
		goto out;
	plen = strlen(in.lines[0]);
	prefix = malloc(plen + 2);
	CHECK(prefix != NULL);
	memcpy(prefix, in.lines[0], plen + 1);
	if (plen > 0 && prefix[plen - 1] != '/')
		strcpy(prefix + plen, "/");
	if (size > 0) {
		lim.max_pages = pages[data[0] & 3];
		lim.max_bytes = bytes[(data[0] >> 2) & 3];
		lim.max_items = (data[0] & 0x10) ? 4 : 0;
	}
	in.next = 1;
	lb = listbe_create(next_page, &in);
	CHECK(lb != NULL);
	ret = dircache_list(&lb->base, prefix, &lim, &l);
	CHECK(ret == 0 || ret == -EIO || ret == -E2BIG);
	if (ret == 0)
		check_listing(&in, prefix, &l);
	if (ret == -EIO && lim.max_pages > 0)
		CHECK(lb->calls <= lim.max_pages + 1);
	if (ret == -E2BIG)
		CHECK(lim.max_items > 0);
	dircache_listing_free(&l);
	backend_destroy(&lb->base);
	check_keep(&in, prefix);
	free(prefix);
out:
	free(in.text);
	free(in.lines);
	return 0;
}
