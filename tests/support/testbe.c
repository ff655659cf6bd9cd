/* testbe.c - see testbe.h. */
#include "testbe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "mount.h"

static struct testbe *testbe_of(struct backend *b)
{
	return (struct testbe *)b;
}

void testbe_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Take one failure for a read at off, if one is due; 1 if taken. */
static int take_failure(struct testbe *t, uint64_t off)
{
	uint64_t at = __atomic_load_n(&t->fail_off, __ATOMIC_RELAXED);
	int left = __atomic_load_n(&t->fail_count, __ATOMIC_RELAXED);

	if (at != TESTBE_ANY_OFF && at != off)
		return 0;
	while (left > 0 && !__atomic_compare_exchange_n(&t->fail_count, &left, left - 1, 0,
	                                                __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return left > 0;
}

/* With const_etag set: the etag every object shows. */
static void const_etag(struct testbe *t, struct backend_stat *st)
{
	if (st != NULL && __atomic_load_n(&t->const_etag, __ATOMIC_RELAXED) && st->etag[0] != '\0')
		snprintf(st->etag, sizeof(st->etag), "%s", TESTBE_CONST_ETAG);
}

static int testbe_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	struct backend *in = testbe_of(b)->inner;
	int ret = in->ops->stat(in, key, st);

	if (ret == 0)
		const_etag(testbe_of(b), st);
	return ret;
}

/*
 * The delay comes after the inner read, so a test can see (done_reads)
 * that the bytes were taken and act while the read is still in flight.
 */
static ssize_t testbe_read(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                           const char *etag, struct backend_stat *st)
{
	struct testbe *t = testbe_of(b);
	int now = __atomic_add_fetch(&t->in_flight, 1, __ATOMIC_RELAXED);
	int max = __atomic_load_n(&t->max_in_flight, __ATOMIC_RELAXED);
	size_t longer = __atomic_load_n(&t->fail_longer, __ATOMIC_RELAXED);
	ssize_t n;

	while (now > max && !__atomic_compare_exchange_n(&t->max_in_flight, &max, now, 0,
	                                                 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	__atomic_add_fetch(&t->reads, 1, __ATOMIC_RELAXED);
	if (take_failure(t, off) || (longer != 0 && len > longer)) {
		n = -EIO;
	} else {
		if (__atomic_load_n(&t->const_etag, __ATOMIC_RELAXED) && etag != NULL &&
		    strcmp(etag, TESTBE_CONST_ETAG) == 0)
			etag = NULL; /* it matches whatever is stored */
		n = t->inner->ops->read(t->inner, key, off, dst, len, etag, st);
		if (n >= 0)
			const_etag(t, st);
		__atomic_add_fetch(&t->done_reads, 1, __ATOMIC_RELEASE);
		if (n == 0 && len > 0)
			__atomic_add_fetch(&t->empty_reads, 1, __ATOMIC_RELAXED);
	}
	testbe_sleep_ms(__atomic_load_n(&t->delay_ms, __ATOMIC_RELAXED));
	__atomic_sub_fetch(&t->in_flight, 1, __ATOMIC_RELAXED);
	return n;
}

static int testbe_save(struct backend *b, const char *key, const struct backend_source *src,
                       const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct backend *in = testbe_of(b)->inner;

	return in->ops->save(in, key, src, attrs, st);
}

static int testbe_remove(struct backend *b, const char *key)
{
	struct backend *in = testbe_of(b)->inner;

	return in->ops->remove(in, key);
}

static int testbe_list(struct backend *b, const char *prefix, char delimiter,
                       const char *start_after, const char *token, size_t max_keys,
                       struct backend_list *out)
{
	struct backend *in = testbe_of(b)->inner;
	int ret = in->ops->list(in, prefix, delimiter, start_after, token, max_keys, out);

	for (size_t i = 0; ret == 0 && i < out->n_entries; i++)
		const_etag(testbe_of(b), &out->entries[i].st);
	return ret;
}

static int testbe_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	struct backend *in = testbe_of(b)->inner;

	return in->ops->copy(in, src, dst, st);
}

/* One key only (copy, then remove): enough for a layer above to show that
 * it invalidates both names. */
static int testbe_rename(struct backend *b, const char *src, const char *dst)
{
	struct backend *in = testbe_of(b)->inner;
	int ret = in->ops->copy(in, src, dst, NULL);

	return ret < 0 ? ret : in->ops->remove(in, src);
}

static void testbe_destroy(struct backend *b)
{
	struct testbe *t = testbe_of(b);

	if (!t->borrowed)
		backend_destroy(t->inner);
	free(t);
}

static const struct backend_ops testbe_template = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "testbe",
    .stat = testbe_stat,
    .read = testbe_read,
    .save = testbe_save,
    .remove = testbe_remove,
    .list = testbe_list,
    .copy = testbe_copy,
    .rename = testbe_rename,
    .destroy = testbe_destroy,
};

struct testbe *testbe_create(struct backend *inner, unsigned flags)
{
	struct testbe *t;

	if ((flags & (TESTBE_COPY | TESTBE_RENAME)) && inner->ops->copy == NULL) {
		errno = ENOTSUP;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->ops = testbe_template;
	if (!(flags & TESTBE_COPY))
		t->ops.copy = NULL;
	if (!(flags & TESTBE_RENAME))
		t->ops.rename = NULL;
	t->base.ops = &t->ops;
	t->inner = inner;
	t->borrowed = (flags & TESTBE_BORROW) != 0;
	t->fail_off = TESTBE_ANY_OFF;
	return t;
}

int testbe_put_pattern(struct backend *b, const char *key, size_t size, uint32_t seed,
                       struct backend_stat *st)
{
	unsigned char *buf = malloc(size ? size : 1);
	int ret;

	if (buf == NULL)
		return -ENOMEM;
	tm_pattern(buf, 0, size, seed);
	ret = backend_save_buffer(b, key, buf, size, st);
	free(buf);
	return ret;
}

void *testbe_sample_cache(void *arg)
{
	struct testbe_sampler *a = arg;

	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		struct cache_stats s;

		cache_get_stats(a->cache, &s);
		if (s.bytes_cached > a->max_cached)
			a->max_cached = s.bytes_cached;
		cache_debug_check(a->cache); /* aborts on a broken invariant */
		a->samples++;
		testbe_sleep_ms(1);
	}
	return NULL;
}
