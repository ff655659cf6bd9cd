/*
 * fault.c - the fault-injection layer (see fault.h).
 *
 * One mutex guards the options, the generator and the counters; it is
 * held only to decide, never across a call into the inner backend or the
 * delay.  The generator is splitmix64 over the seed, so the sequence of
 * decisions repeats for a given seed and order of calls.
 */
#include "fault.h"
#include "opts.h"

#include <errno.h>
#include <fuse_opt.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fault {
	struct backend base;
	struct backend_ops ops; /* immutable; our table, trimmed to inner's */
	struct backend *inner;  /* owned */
	pthread_mutex_t lock;
	struct fault_opts opts;   /* lock */
	uint64_t rng;             /* lock */
	unsigned left;            /* lock; calls still to fail from count */
	struct fault_stats stats; /* lock */
};

static const struct backend_ops fault_ops;

static struct fault *fault_of(struct backend *b)
{
	return (struct fault *)b;
}

static struct backend *fault_inner(struct backend *b)
{
	return fault_of(b)->inner;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/*
 * Before a call of an op in class `op` (FAULT_* bit, 0 for ops that never
 * fail): sleep the delay, then decide.  Returns 0 to go on, or -err.
 */
static int fault_enter(struct backend *b, unsigned op)
{
	struct fault *f = fault_of(b);
	unsigned delay_ms;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	delay_ms = f->opts.delay_ms;
	if (op & f->opts.ops) {
		f->stats.calls++;
		if (f->left > 0) {
			f->left--;
			ret = -f->opts.err;
		} else if (f->opts.rate > 0 &&
		           (double)(splitmix64(&f->rng) >> 11) / 9007199254740992.0 <
		               f->opts.rate) {
			ret = -f->opts.err;
		}
		if (ret < 0)
			f->stats.injected++;
	}
	pthread_mutex_unlock(&f->lock);
	if (delay_ms > 0) {
		struct timespec ts = {(time_t)(delay_ms / 1000),
		                      (long)(delay_ms % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return ret;
}

/* --- ops: decide, then pass through ----------------------------------- */

static int fault_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	int ret = fault_enter(b, FAULT_STAT);

	return ret < 0 ? ret : fault_inner(b)->ops->stat(fault_inner(b), key, st);
}

static ssize_t fault_read(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                          const char *etag, struct backend_stat *st)
{
	int ret = fault_enter(b, FAULT_READ);

	return ret < 0 ? ret
	               : fault_inner(b)->ops->read(fault_inner(b), key, off, dst, len, etag, st);
}

static int fault_read_fd(struct backend *b, const char *key, const char *etag,
                         struct backend_stat *st)
{
	int ret = fault_enter(b, FAULT_READ);

	return ret < 0 ? ret : fault_inner(b)->ops->read_fd(fault_inner(b), key, etag, st);
}

static ssize_t fault_read_ref(struct backend *b, const char *key, uint64_t off, size_t len,
                              const char *etag, struct backend_ref *ref, struct backend_stat *st)
{
	int ret = fault_enter(b, FAULT_READ);

	return ret < 0
	           ? ret
	           : fault_inner(b)->ops->read_ref(fault_inner(b), key, off, len, etag, ref, st);
}

static int fault_save(struct backend *b, const char *key, const struct backend_source *src,
                      const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	int ret = fault_enter(b, FAULT_SAVE);

	if (ret < 0) {
		backend_upload_abort(src);
		return ret;
	}
	return fault_inner(b)->ops->save(fault_inner(b), key, src, attrs, st);
}

static int fault_upload_begin(struct backend *b, const char *key, const struct backend_source *src,
                              const struct backend_save_attrs *attrs, struct backend_upload **out)
{
	return fault_inner(b)->ops->upload_begin(fault_inner(b), key, src, attrs, out);
}

static int fault_remove(struct backend *b, const char *key)
{
	int ret = fault_enter(b, FAULT_REMOVE);

	return ret < 0 ? ret : fault_inner(b)->ops->remove(fault_inner(b), key);
}

static int fault_list(struct backend *b, const char *prefix, char delimiter,
                      const char *start_after, const char *token, size_t max_keys,
                      struct backend_list *out)
{
	int ret = fault_enter(b, FAULT_LIST);

	return ret < 0 ? ret
	               : fault_inner(b)->ops->list(fault_inner(b), prefix, delimiter, start_after,
	                                           token, max_keys, out);
}

static int fault_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	int ret = fault_enter(b, FAULT_COPY);

	return ret < 0 ? ret : fault_inner(b)->ops->copy(fault_inner(b), src, dst, st);
}

static int fault_rename(struct backend *b, const char *src, const char *dst)
{
	int ret = fault_enter(b, FAULT_COPY);

	return ret < 0 ? ret : fault_inner(b)->ops->rename(fault_inner(b), src, dst);
}

static int fault_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                         struct backend_stat *st)
{
	int ret = fault_enter(b, FAULT_SAVE);
	struct backend *in = fault_inner(b);

	if (ret < 0)
		return ret;
	return in->ops->setattr ? in->ops->setattr(in, key, attrs, st) : -ENOTSUP;
}

static int fault_space(struct backend *b, uint64_t *total, uint64_t *avail)
{
	int ret = fault_enter(b, FAULT_STAT);

	return ret < 0 ? ret : fault_inner(b)->ops->space(fault_inner(b), total, avail);
}

static int fault_prefetch(struct backend *b, const char *key, const char *etag, uint64_t off,
                          uint64_t len)
{
	return fault_inner(b)->ops->prefetch(fault_inner(b), key, etag, off, len);
}

static void fault_stats_op(struct backend *b, backend_stats_fn emit, void *ctx)
{
	struct fault_stats s;

	fault_get_stats(b, &s);
	emit(ctx, "fault", "calls", s.calls);
	emit(ctx, "fault", "injected", s.injected);
	backend_stats(fault_inner(b), emit, ctx);
}

static void fault_destroy(struct backend *b)
{
	struct fault *f = fault_of(b);

	backend_destroy(f->inner);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static const struct backend_ops fault_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "fault",
    .stat = fault_stat,
    .read = fault_read,
    .read_fd = fault_read_fd,
    .read_ref = fault_read_ref,
    .save = fault_save,
    .upload_begin = fault_upload_begin,
    .remove = fault_remove,
    .list = fault_list,
    .copy = fault_copy,
    .rename = fault_rename,
    .setattr = fault_setattr,
    .space = fault_space,
    .prefetch = fault_prefetch,
    .stats = fault_stats_op,
    .destroy = fault_destroy,
};

/* --- creation and options --------------------------------------------- */

static int fault_opts_valid(const struct fault_opts *o)
{
	return o->rate >= 0 && o->rate <= 1 && o->err >= 0 && (o->ops & ~(unsigned)FAULT_ALL) == 0;
}

static void fault_apply(struct fault *f, const struct fault_opts *o)
{
	f->opts = *o;
	if (f->opts.err == 0)
		f->opts.err = EIO;
	f->rng = o->seed;
	f->left = o->count;
}

struct backend *fault_create(struct backend *inner, const struct fault_opts *o)
{
	struct fault_opts none = {0};
	struct fault *f;

	if (o == NULL)
		o = &none;
	if (inner == NULL || !fault_opts_valid(o)) {
		errno = EINVAL;
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	if (pthread_mutex_init(&f->lock, NULL) != 0) {
		free(f);
		errno = ENOMEM;
		return NULL;
	}
	f->ops = fault_ops;
	backend_ops_trim(&f->ops, inner);
	f->base.ops = &f->ops;
	f->base.flags = inner->flags;
	f->base.key_max = inner->key_max;
	f->base.size_max = inner->size_max;
	f->inner = inner;
	fault_apply(f, o);
	return &f->base;
}

static int fault_is(struct backend *b)
{
	return b != NULL && b->ops->destroy == fault_destroy;
}

int fault_set(struct backend *b, const struct fault_opts *o)
{
	struct fault *f;

	if (!fault_is(b) || o == NULL || !fault_opts_valid(o))
		return -EINVAL;
	f = fault_of(b);
	pthread_mutex_lock(&f->lock);
	fault_apply(f, o);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

void fault_get_stats(struct backend *b, struct fault_stats *out)
{
	struct fault *f;

	if (!fault_is(b)) {
		memset(out, 0, sizeof(*out));
		return;
	}
	f = fault_of(b);
	pthread_mutex_lock(&f->lock);
	*out = f->stats;
	pthread_mutex_unlock(&f->lock);
}

struct fault_cmdline {
	char *ops;
	char *err;
	double rate;
	unsigned count;
	unsigned delay_ms;
	unsigned long long seed;
};

#define FAULTOPT(t, p)                                                                             \
	{                                                                                          \
		t, offsetof(struct fault_cmdline, p), 0                                            \
	}
static const struct fuse_opt fault_opt_spec[] = {
    FAULTOPT("fault_ops=%s", ops),
    FAULTOPT("fault_errno=%s", err),
    FAULTOPT("fault_rate=%lf", rate),
    FAULTOPT("fault_count=%u", count),
    FAULTOPT("fault_delay_ms=%u", delay_ms),
    FAULTOPT("fault_seed=%llu", seed),
    FUSE_OPT_END,
};

static const struct {
	const char *name;
	unsigned bit;
} fault_op_names[] = {
    {"stat", FAULT_STAT}, {"read", FAULT_READ}, {"save", FAULT_SAVE}, {"remove", FAULT_REMOVE},
    {"list", FAULT_LIST}, {"copy", FAULT_COPY}, {"all", FAULT_ALL},
};

static const struct {
	const char *name;
	int err;
} fault_errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC},       {"EACCES", EACCES}, {"EPERM", EPERM},
    {"ENOENT", ENOENT}, {"ETIMEDOUT", ETIMEDOUT}, {"EAGAIN", EAGAIN}, {"EROFS", EROFS},
};

/* "read+save" -> bits; -1 for an unknown name. */
static int fault_parse_ops(const char *s, unsigned *bits)
{
	*bits = 0;
	while (*s != '\0') {
		size_t len = strcspn(s, "+");
		size_t i;

		for (i = 0; i < sizeof(fault_op_names) / sizeof(fault_op_names[0]); i++)
			if (strlen(fault_op_names[i].name) == len &&
			    strncmp(s, fault_op_names[i].name, len) == 0)
				break;
		if (i == sizeof(fault_op_names) / sizeof(fault_op_names[0]))
			return -1;
		*bits |= fault_op_names[i].bit;
		s += len;
		if (*s == '+')
			s++;
	}
	return 0;
}

static int fault_parse_errno(const char *s, int *err)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s != '\0' && *end == '\0' && v > 0 && v < 4096) {
		*err = (int)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof(fault_errnos) / sizeof(fault_errnos[0]); i++)
		if (strcmp(s, fault_errnos[i].name) == 0) {
			*err = fault_errnos[i].err;
			return 0;
		}
	return -1;
}

int fault_opts_parse(struct fuse_args *args, struct fault_opts *o, int *enabled)
{
	struct fault_cmdline c = {0};
	int ret = 0;

	memset(o, 0, sizeof(*o));
	if (opts_parse(args, &c, fault_opt_spec, NULL) < 0)
		return -1;
	*enabled = c.ops != NULL || c.err != NULL || c.rate > 0 || c.count > 0 || c.delay_ms > 0;
	if (c.ops != NULL && fault_parse_ops(c.ops, &o->ops) < 0) {
		fprintf(stderr,
		        "chunkfs: fault_ops=%s: expected op names joined by '+' (stat, read, save, "
		        "remove, list, copy, all)\n",
		        c.ops);
		ret = -1;
	}
	if (c.err != NULL && fault_parse_errno(c.err, &o->err) < 0) {
		fprintf(stderr, "chunkfs: fault_errno=%s: expected a number or a name like EIO\n",
		        c.err);
		ret = -1;
	}
	o->rate = c.rate;
	o->count = c.count;
	o->delay_ms = c.delay_ms;
	o->seed = c.seed;
	if (ret == 0 && !fault_opts_valid(o)) {
		fprintf(stderr, "chunkfs: fault_rate must be between 0 and 1\n");
		ret = -1;
	}
	free(c.ops);
	free(c.err);
	return ret;
}

void fault_opts_usage(FILE *out)
{
	fprintf(out,
	        "Fault injection (for testing; the layer sits right above the store):\n"
	        "    -o fault_ops=OPS       ops that fail: stat, read, save, remove, list, copy,\n"
	        "                           all, joined by '+'\n"
	        "    -o fault_rate=P        chance that each such call fails (0..1)\n"
	        "    -o fault_count=N       fail the first N such calls\n"
	        "    -o fault_errno=E       the error: a number or EIO (default), ENOSPC, EACCES,\n"
	        "                           EPERM, ENOENT, ETIMEDOUT, EAGAIN, EROFS\n"
	        "    -o fault_delay_ms=MS   delay added to every call\n"
	        "    -o fault_seed=N        seed of the random choices (runs repeat)\n");
}
