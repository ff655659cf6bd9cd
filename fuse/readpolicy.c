/*
 * readpolicy.c - what to fetch ahead for one open file handle (see
 * readpolicy.h).
 */
#include "readpolicy.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void readpolicy_opts_init(struct readpolicy_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->whole_max = READPOLICY_DEFAULT_WHOLE_MAX;
	o->initial_window = READPOLICY_DEFAULT_INITIAL_WINDOW;
	o->max_window = READPOLICY_DEFAULT_MAX_WINDOW;
	o->tolerance = READPOLICY_DEFAULT_TOLERANCE;
	o->random_seeks = READPOLICY_DEFAULT_RANDOM_SEEKS;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Ask for [p->asked_end, end), clipped to the object; nothing if empty. */
static void ask_until(struct readpolicy *p, uint64_t end, struct readpolicy_action *a)
{
	end = min_u64(end, p->size);
	if (end <= p->asked_end)
		return;
	a->off = p->asked_end;
	a->len = end - p->asked_end;
	p->asked_end = end;
}

void readpolicy_open(struct readpolicy *p, const struct readpolicy_opts *o, uint64_t size,
                     const char *name, struct readpolicy_action *a)
{
	memset(p, 0, sizeof(*p));
	memset(a, 0, sizeof(*a));
	p->o = o;
	p->size = size;
	p->safetensors = name != NULL && ends_with(name, ".safetensors");
	if (size == 0 || size > o->whole_max) {
		p->mode = READPOLICY_STREAM;
		return;
	}
	p->mode = READPOLICY_WHOLE;
	ask_until(p, o->ahead_max ? o->ahead_max : size, a);
}

/* A read that continues the stream: within tolerance of the furthest end
 * (exactly at it while the stream has not been sequential yet). */
static int follows_on(const struct readpolicy *p, uint64_t off, uint64_t len)
{
	uint64_t slack = p->window > 0 ? p->o->tolerance : 0;
	uint64_t back = min_u64(p->read_end, slack + (slack ? len : 0));

	if (p->reads == 0)
		return off == 0;
	return off >= p->read_end - back && off <= p->read_end + slack;
}

static void read_whole(struct readpolicy *p, uint64_t off, uint64_t len,
                       struct readpolicy_action *a)
{
	uint64_t ahead = p->o->ahead_max ? p->o->ahead_max : p->size;

	/* Reads beyond what was asked (a jump to the end) do not drag the
	 * fetch along: it goes on in file order from where it is. */
	if (off <= p->asked_end && off + len > p->read_end)
		p->read_end = off + len;
	if (p->read_end + ahead > p->read_end)
		ask_until(p, p->read_end + ahead, a);
}

static void read_stream(struct readpolicy *p, uint64_t off, uint64_t len,
                        struct readpolicy_action *a)
{
	uint64_t end;

	if (!follows_on(p, off, len)) {
		p->window = 0;
		p->read_end = off + len;
		p->asked_end = off + len;
		if (p->reads > 0)
			p->seeks++;
		if (p->o->random_seeks != 0 && p->mode != READPOLICY_RANDOM &&
		    p->seeks >= (p->safetensors ? 1 : p->o->random_seeks)) {
			p->mode = READPOLICY_RANDOM;
			a->fill = 1;
		}
		return;
	}
	if (off + len > p->read_end)
		p->read_end = off + len;
	if (p->asked_end < p->read_end)
		p->asked_end = p->read_end;
	p->window =
	    p->window == 0 ? p->o->initial_window : min_u64(2 * p->window, p->o->max_window);
	end = p->read_end + p->window;
	if (p->o->round != 0 && end % p->o->round != 0)
		end += p->o->round - end % p->o->round;
	ask_until(p, end, a);
}

/* RANGES: the first read inside a piece asks for all of it. */
static void read_ranges(struct readpolicy *p, uint64_t off, struct readpolicy_action *a)
{
	size_t lo = 0, hi = p->n_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->ranges[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == p->n_ranges || p->ranges[lo].off > off || p->ranges[lo].asked)
		return;
	p->ranges[lo].asked = 1;
	a->off = p->ranges[lo].off;
	a->len = p->ranges[lo].end - p->ranges[lo].off;
}

void readpolicy_read(struct readpolicy *p, uint64_t off, uint64_t len, struct readpolicy_action *a)
{
	memset(a, 0, sizeof(*a));
	if (off + len < off)
		len = UINT64_MAX - off;
	if (p->mode == READPOLICY_WHOLE)
		read_whole(p, off, len, a);
	else if (p->mode == READPOLICY_RANGES)
		read_ranges(p, off, a);
	else
		read_stream(p, off, len, a);
	p->reads++;
}

int readpolicy_wants_ranges(const struct readpolicy *p)
{
	return p->safetensors && p->mode == READPOLICY_STREAM;
}

static int range_cmp(const void *a, const void *b)
{
	const struct readpolicy_range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

int readpolicy_safetensors_ranges(const void *buf, size_t len, uint64_t file_size,
                                  struct readpolicy_range **out, size_t *n, size_t *need)
{
	const unsigned char *b = buf;
	struct readpolicy_range *r = NULL;
	uint64_t hlen = 0, base;
	const char *name;
	json_t *root, *t;
	size_t count = 0;

	*out = NULL;
	*n = 0;
	*need = 8;
	if (len < 8)
		return -EAGAIN;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | b[i];
	if (file_size < 8 || hlen == 0 || hlen > file_size - 8)
		return -EINVAL;
	*need = (size_t)(8 + hlen);
	if (len < 8 + hlen)
		return -EAGAIN;
	base = 8 + hlen;
	root = json_loadb((const char *)b + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return -EINVAL;
	}
	r = calloc(json_object_size(root) + 1, sizeof(*r));
	if (r == NULL) {
		json_decref(root);
		return -ENOMEM;
	}
	json_object_foreach(root, name, t)
	{
		json_t *offs = json_object_get(t, "data_offsets");
		json_int_t s, e;

		if (strcmp(name, "__metadata__") == 0)
			continue;
		if (!json_is_array(offs) || json_array_size(offs) != 2 ||
		    !json_is_integer(json_array_get(offs, 0)) ||
		    !json_is_integer(json_array_get(offs, 1)))
			goto bad;
		s = json_integer_value(json_array_get(offs, 0));
		e = json_integer_value(json_array_get(offs, 1));
		if (s < 0 || e < s || (uint64_t)e > file_size - base)
			goto bad;
		if (e > s) {
			r[count].off = base + (uint64_t)s;
			r[count].end = base + (uint64_t)e;
			count++;
		}
	}
	json_decref(root);
	qsort(r, count, sizeof(*r), range_cmp);
	for (size_t i = 1; i < count; i++)
		if (r[i].off < r[i - 1].end) {
			free(r);
			return -EINVAL; /* overlapping tensors */
		}
	*out = r;
	*n = count;
	return 0;
bad:
	json_decref(root);
	free(r);
	return -EINVAL;
}

void readpolicy_set_ranges(struct readpolicy *p, struct readpolicy_range *ranges, size_t n)
{
	free(p->ranges);
	p->ranges = ranges;
	p->n_ranges = n;
	p->mode = READPOLICY_RANGES;
}

void readpolicy_refused(struct readpolicy *p, const struct readpolicy_action *a)
{
	if (a->len == 0)
		return;
	if (p->mode == READPOLICY_RANGES) {
		for (size_t i = 0; i < p->n_ranges; i++)
			if (p->ranges[i].off == a->off)
				p->ranges[i].asked = 0;
	} else if (p->asked_end == a->off + a->len) {
		p->asked_end = a->off;
	}
}

void readpolicy_close(struct readpolicy *p)
{
	free(p->ranges);
	p->ranges = NULL;
	p->n_ranges = 0;
}
