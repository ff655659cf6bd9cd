/*
 * prefetch.c - the prefetch layer (see prefetch.h).
 *
 * Design
 *   One mutex (prefetch.lock) guards the stream table and the counters.
 *   It is never held across a call into the inner backend: read() decides
 *   under the lock what to ask for, moves the stream's mark (how far the
 *   stream has asked) before asking, then calls inner->prefetch and
 *   inner->read without it.  A refused request moves the mark back if no
 *   other read has moved it since, so the next read asks again.
 *
 *   A stream (struct prefetch_stream) is one slot of a fixed table,
 *   unused while its key is NULL.  Its state:
 *     next      furthest end of any read so far (reads slightly out of
 *               order never move it back);
 *     last_len  length of the last read (widens the backward slack);
 *     window    0 after the first read and after a seek, else the
 *               current read-ahead, initial_window .. max_window;
 *     mark      end of what the stream has asked the inner layer for
 *               (>= next after every decision);
 *     size      the object's size as the last read reported, if known.
 *
 * Invariants (prefetch_check(), unless NDEBUG): a used slot has a key,
 * window is 0 or within [initial_window, max_window], its tick is at most
 * the table's.
 */
#include "prefetch.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prefetch_stream {
	char *key;                   /* lock; NULL: slot unused */
	char etag[BACKEND_ETAG_MAX]; /* lock; "" for reads without one */
	uint64_t next;               /* lock */
	uint64_t last_len;           /* lock */
	uint64_t window;             /* lock */
	uint64_t mark;               /* lock */
	uint64_t size;               /* lock; valid when size_known */
	int size_known;              /* lock */
	uint64_t tick;               /* lock; last use, for LRU recycling */
};

struct prefetch {
	struct backend base;
	struct backend_ops ops;          /* immutable; our table, trimmed to inner's */
	struct backend *inner;           /* owned */
	struct prefetch_opts opts;       /* immutable */
	pthread_mutex_t lock;            /* the only lock */
	struct prefetch_stream *streams; /* lock; opts.max_streams slots */
	uint64_t tick;                   /* lock */
	struct prefetch_stats stats;     /* lock */
};

/* What one read asks the inner layer to prefetch (len 0: nothing). */
struct prefetch_req {
	uint64_t off, len;
};

static struct prefetch *prefetch_of(struct backend *b)
{
	return (struct prefetch *)b;
}

static struct backend *prefetch_inner(struct backend *b)
{
	return prefetch_of(b)->inner;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

#ifndef NDEBUG
/* Assert the invariants listed at the top.  Caller holds p->lock. */
static void prefetch_check(const struct prefetch *p)
{
	for (unsigned i = 0; i < p->opts.max_streams; i++) {
		const struct prefetch_stream *s = &p->streams[i];

		if (s->key == NULL)
			continue;
		assert(s->window == 0 ||
		       (s->window >= p->opts.initial_window && s->window <= p->opts.max_window));
		assert(s->tick <= p->tick);
	}
}
#else
#define prefetch_check(p) ((void)(p))
#endif

/* The stream of (key, etag), or NULL.  Caller holds p->lock. */
static int prefetch_is(const struct prefetch_stream *s, const char *key, const char *etag)
{
	return s->key != NULL && strcmp(s->key, key) == 0 && strcmp(s->etag, etag) == 0;
}

/*
 * Whether a read at off follows on from stream s (see the policy).  A
 * stream not yet seen sequential (window 0) takes only reads that touch or
 * overlap its last one, so scattered reads of a small file do not pass for
 * a stream within the tolerance of one another.
 */
static int prefetch_follows(const struct prefetch *p, const struct prefetch_stream *s, uint64_t off)
{
	uint64_t tol = s->window > 0 ? p->opts.tolerance : 0;
	uint64_t slack = sat_add(tol, s->last_len);
	uint64_t lo = s->next > slack ? s->next - slack : 0;

	return off >= lo && off <= sat_add(s->next, tol);
}

/*
 * The stream of (key, etag) that a read at off follows on from; else, when
 * the version already has PREFETCH_STREAMS_PER_VERSION streams, the least
 * recently used of them (the read is a seek in it); else NULL (a new
 * reader).  *n_same receives the version's number of streams.
 */
static struct prefetch_stream *prefetch_find(struct prefetch *p, const char *key, const char *etag,
                                             uint64_t off, unsigned *n_same)
{
	struct prefetch_stream *lru = NULL, *best = NULL;

	*n_same = 0;
	for (unsigned i = 0; i < p->opts.max_streams; i++) {
		struct prefetch_stream *s = &p->streams[i];

		if (!prefetch_is(s, key, etag))
			continue;
		(*n_same)++;
		/* of the streams it follows, the one furthest into its run */
		if (prefetch_follows(p, s, off) && (best == NULL || s->window > best->window))
			best = s;
		if (lru == NULL || s->tick < lru->tick)
			lru = s;
	}
	if (best != NULL)
		return best;
	return *n_same >= PREFETCH_STREAMS_PER_VERSION ? lru : NULL;
}

/*
 * Account a read of [off, off + len) of (key, etag) to its stream and
 * decide what to prefetch; moves the stream's mark over the request.
 * Caller holds p->lock.
 */
static struct prefetch_req prefetch_decide(struct prefetch *p, const char *key, const char *etag,
                                           uint64_t off, uint64_t len)
{
	struct prefetch_req req = {0, 0};
	unsigned n_same;
	struct prefetch_stream *s = prefetch_find(p, key, etag, off, &n_same);
	uint64_t end = sat_add(off, len), start, target;

	if (s == NULL) {
		char *k = strdup(key);
		uint64_t size = 0;
		int size_known = 0;

		if (k == NULL)
			return req; /* no stream, no prefetch: only a hint lost */
		/* A new reader of a version whose size another stream knows. */
		for (unsigned i = 0; i < p->opts.max_streams && !size_known; i++)
			if (prefetch_is(&p->streams[i], key, etag) && p->streams[i].size_known) {
				size = p->streams[i].size;
				size_known = 1;
			}
		s = &p->streams[0];
		for (unsigned i = 1; i < p->opts.max_streams && s->key != NULL; i++)
			if (p->streams[i].key == NULL || p->streams[i].tick < s->tick)
				s = &p->streams[i];
		free(s->key);
		memset(s, 0, sizeof(*s));
		s->key = k;
		snprintf(s->etag, sizeof(s->etag), "%s", etag);
		s->next = s->mark = end;
		s->last_len = len;
		s->size = size;
		s->size_known = size_known;
		s->tick = ++p->tick;
		p->stats.streams++;
		return req;
	}

	s->tick = ++p->tick;
	if (prefetch_follows(p, s, off)) {
		p->stats.sequential_hits++;
		if (s->window == 0)
			s->window = p->opts.initial_window;
		else if (s->window < p->opts.max_window / 2)
			s->window *= 2;
		else
			s->window = p->opts.max_window;
		if (end > s->next)
			s->next = end;
	} else {
		p->stats.seeks++;
		s->window = 0;
		s->next = s->mark = end;
	}
	s->last_len = len;
	/* Nothing before a read told the size: a window past the end of a
	 * small object would cost a request for nothing. */
	if (s->window == 0 || !s->size_known)
		return req;
	start = s->mark > s->next ? s->mark : s->next;
	target = sat_add(s->next, s->window);
	if (s->size_known && target > s->size)
		target = s->size;
	if (target <= start)
		return req;
	s->mark = target;
	req.off = start;
	req.len = target - start;
	return req;
}

/* Account a read to its stream and ask the inner layer to prefetch. */
static void prefetch_account(struct prefetch *p, const char *key, const char *tag, uint64_t off,
                             size_t len)
{
	struct backend *in = p->inner;
	struct prefetch_req req = {0, 0};
	struct prefetch_stream *s;

	if (len > 0 && strlen(tag) < BACKEND_ETAG_MAX) {
		pthread_mutex_lock(&p->lock);
		req = prefetch_decide(p, key, tag, off, len);
		prefetch_check(p);
		pthread_mutex_unlock(&p->lock);
	}
	if (req.len > 0 && in->ops->prefetch != NULL) {
		int ret = in->ops->prefetch(in, key, tag[0] != '\0' ? tag : NULL, req.off, req.len);

		pthread_mutex_lock(&p->lock);
		if (ret == 0) {
			p->stats.prefetch_requests++;
			p->stats.prefetch_bytes += req.len;
		} else {
			for (unsigned i = 0; i < p->opts.max_streams; i++) {
				s = &p->streams[i];
				if (prefetch_is(s, key, tag) && s->mark == req.off + req.len)
					s->mark = req.off; /* ask again next time */
			}
		}
		pthread_mutex_unlock(&p->lock);
	}
}

/* Remember the object's size for its stream, so windows stop at the end. */
static void prefetch_learn_size(struct prefetch *p, const char *key, const char *tag, uint64_t size)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->opts.max_streams; i++) {
		struct prefetch_stream *s = &p->streams[i];

		if (prefetch_is(s, key, tag)) {
			s->size = size;
			s->size_known = 1;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * read and read_ref: account the read, ask for the window, then read
 * through the inner layer (into dst, or lent pieces into ref when ref is
 * not NULL) and learn the object's size from the answer.
 */
static ssize_t prefetch_read_any(struct backend *b, const char *key, uint64_t off, void *dst,
                                 size_t len, const char *etag, struct backend_ref *ref,
                                 struct backend_stat *st)
{
	struct prefetch *p = prefetch_of(b);
	struct backend *in = p->inner;
	const char *tag = etag != NULL ? etag : "";
	struct backend_stat local;
	ssize_t n;

	prefetch_account(p, key, tag, off, len);
	if (st == NULL)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (ref != NULL)
		n = in->ops->read_ref(in, key, off, len, etag, ref, st);
	else
		n = in->ops->read(in, key, off, dst, len, etag, st);
	if (n >= 0 && st->etag[0] != '\0' && len > 0)
		prefetch_learn_size(p, key, tag, st->size);
	return n;
}

static ssize_t prefetch_read(struct backend *b, const char *key, uint64_t off, void *dst,
                             size_t len, const char *etag, struct backend_stat *st)
{
	return prefetch_read_any(b, key, off, dst, len, etag, NULL, st);
}

static ssize_t prefetch_read_ref(struct backend *b, const char *key, uint64_t off, size_t len,
                                 const char *etag, struct backend_ref *ref, struct backend_stat *st)
{
	return prefetch_read_any(b, key, off, NULL, len, etag, ref, st);
}

/* --- pass-through ops --------------------------------------------------- */

static int prefetch_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	return prefetch_inner(b)->ops->stat(prefetch_inner(b), key, st);
}

static int prefetch_read_fd(struct backend *b, const char *key, const char *etag,
                            struct backend_stat *st)
{
	return prefetch_inner(b)->ops->read_fd(prefetch_inner(b), key, etag, st);
}

static int prefetch_save(struct backend *b, const char *key, const struct backend_source *src,
                         const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	return prefetch_inner(b)->ops->save(prefetch_inner(b), key, src, attrs, st);
}

static int prefetch_upload_begin(struct backend *b, const char *key,
                                 const struct backend_source *src,
                                 const struct backend_save_attrs *attrs,
                                 struct backend_upload **out)
{
	return prefetch_inner(b)->ops->upload_begin(prefetch_inner(b), key, src, attrs, out);
}

static int prefetch_remove(struct backend *b, const char *key)
{
	return prefetch_inner(b)->ops->remove(prefetch_inner(b), key);
}

static int prefetch_list(struct backend *b, const char *prefix, char delimiter,
                         const char *start_after, const char *token, size_t max_keys,
                         struct backend_list *out)
{
	return prefetch_inner(b)->ops->list(prefetch_inner(b), prefix, delimiter, start_after,
	                                    token, max_keys, out);
}

static int prefetch_copy(struct backend *b, const char *src, const char *dst,
                         struct backend_stat *st)
{
	return prefetch_inner(b)->ops->copy(prefetch_inner(b), src, dst, st);
}

static int prefetch_rename(struct backend *b, const char *src, const char *dst)
{
	return prefetch_inner(b)->ops->rename(prefetch_inner(b), src, dst);
}

static int prefetch_setattr(struct backend *b, const char *key,
                            const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct backend *in = prefetch_inner(b);

	return in->ops->setattr ? in->ops->setattr(in, key, attrs, st) : -ENOTSUP;
}

static int prefetch_space(struct backend *b, uint64_t *total, uint64_t *avail)
{
	return prefetch_inner(b)->ops->space(prefetch_inner(b), total, avail);
}

static int prefetch_prefetch(struct backend *b, const char *key, const char *etag, uint64_t off,
                             uint64_t len)
{
	return prefetch_inner(b)->ops->prefetch(prefetch_inner(b), key, etag, off, len);
}

/* The counters of prefetch_stats, then the inner backend's. */
static void prefetch_stats_op(struct backend *b, backend_stats_fn emit, void *ctx)
{
	struct prefetch *p = prefetch_of(b);
	struct prefetch_stats s;

	pthread_mutex_lock(&p->lock);
	s = p->stats;
	pthread_mutex_unlock(&p->lock);
	emit(ctx, "prefetch", "streams", s.streams);
	emit(ctx, "prefetch", "sequential_hits", s.sequential_hits);
	emit(ctx, "prefetch", "seeks", s.seeks);
	emit(ctx, "prefetch", "prefetch_requests", s.prefetch_requests);
	emit(ctx, "prefetch", "prefetch_bytes", s.prefetch_bytes);
	backend_stats(p->inner, emit, ctx);
}

static void prefetch_destroy(struct backend *b)
{
	struct prefetch *p = prefetch_of(b);

	backend_destroy(p->inner);
	for (unsigned i = 0; i < p->opts.max_streams; i++)
		free(p->streams[i].key);
	free(p->streams);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct backend_ops prefetch_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "prefetch",
    .stat = prefetch_stat,
    .read = prefetch_read,
    .read_fd = prefetch_read_fd,
    .read_ref = prefetch_read_ref,
    .save = prefetch_save,
    .upload_begin = prefetch_upload_begin,
    .remove = prefetch_remove,
    .list = prefetch_list,
    .copy = prefetch_copy,
    .rename = prefetch_rename,
    .setattr = prefetch_setattr,
    .space = prefetch_space,
    .prefetch = prefetch_prefetch,
    .stats = prefetch_stats_op,
    .destroy = prefetch_destroy,
};

void prefetch_opts_init(struct prefetch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->initial_window = PREFETCH_DEFAULT_INITIAL_WINDOW;
	o->max_window = PREFETCH_DEFAULT_MAX_WINDOW;
	o->tolerance = PREFETCH_DEFAULT_TOLERANCE;
	o->max_streams = PREFETCH_DEFAULT_MAX_STREAMS;
}

struct backend *prefetch_create(struct backend *inner, const struct prefetch_opts *opts)
{
	struct prefetch_opts o;
	struct prefetch *p;
	int err;

	prefetch_opts_init(&o);
	if (opts != NULL) {
		if (opts->initial_window != 0)
			o.initial_window = opts->initial_window;
		if (opts->max_window != 0)
			o.max_window = opts->max_window;
		if (opts->tolerance != 0)
			o.tolerance = opts->tolerance;
		if (opts->max_streams != 0)
			o.max_streams = opts->max_streams;
	}
	if (inner == NULL || o.max_window < o.initial_window || o.max_streams > (1u << 16)) {
		errno = EINVAL;
		return NULL;
	}

	err = ENOMEM;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto fail;
	p->ops = prefetch_ops;
	backend_ops_trim(&p->ops, inner);
	p->base.ops = &p->ops;
	p->base.flags = inner->flags;
	p->inner = inner;
	p->opts = o;
	p->streams = calloc(o.max_streams, sizeof(*p->streams));
	if (p->streams == NULL)
		goto fail_p;
	err = pthread_mutex_init(&p->lock, NULL);
	if (err != 0)
		goto fail_streams;
	return &p->base;

fail_streams:
	free(p->streams);
fail_p:
	free(p);
fail:
	errno = err;
	return NULL;
}

void prefetch_get_stats(struct backend *b, struct prefetch_stats *out)
{
	struct prefetch *p;

	if (b == NULL || b->ops == NULL || b->ops->destroy != prefetch_destroy) {
		memset(out, 0, sizeof(*out));
		return;
	}
	p = prefetch_of(b);
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	pthread_mutex_unlock(&p->lock);
}
