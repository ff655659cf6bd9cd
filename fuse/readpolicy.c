/*
 * readpolicy.c - what to fetch ahead for one open file handle (see
 * readpolicy.h).
 */
#include "readpolicy.h"

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
	ask_until(p, p->read_end + p->window, a);
}

void readpolicy_read(struct readpolicy *p, uint64_t off, uint64_t len, struct readpolicy_action *a)
{
	memset(a, 0, sizeof(*a));
	if (off + len < off)
		len = UINT64_MAX - off;
	if (p->mode == READPOLICY_WHOLE)
		read_whole(p, off, len, a);
	else
		read_stream(p, off, len, a);
	p->reads++;
}
