/*
 * check_readpolicy.c - the per-handle read policy (fuse/readpolicy.c):
 * what each mode asks the cache to fetch, read by read.
 */
#include "readpolicy.h"
#include "suites.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((uint64_t)1 << 20)

static struct readpolicy_opts opts(void)
{
	struct readpolicy_opts o;

	readpolicy_opts_init(&o);
	o.ahead_max = 128 * MIB;
	return o;
}

#define ck_action(a, o, l, f)                                                                      \
	do {                                                                                       \
		ck_assert_uint_eq((a).off, (o));                                                   \
		ck_assert_uint_eq((a).len, (l));                                                   \
		ck_assert_int_eq((a).fill, (f));                                                   \
	} while (0)

/* A chunk file is asked for whole at open; torch.load's reads (start, end,
 * records) ask for nothing more. */
START_TEST(test_whole_at_open)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a;

	readpolicy_open(&p, &o, 24 * MIB + 5, "layer_0.pt", &a);
	ck_assert_int_eq(p.mode, READPOLICY_WHOLE);
	ck_action(a, 0, 24 * MIB + 5, 0);
	readpolicy_read(&p, 0, 4096, &a);
	ck_action(a, 0, 0, 0);
	readpolicy_read(&p, 24 * MIB - 65536, 65541, &a);
	ck_action(a, 0, 0, 0);
	for (uint64_t off = 4096; off < 24 * MIB; off += MIB) {
		readpolicy_read(&p, off, MIB, &a);
		ck_action(a, 0, 0, 0);
	}
}
END_TEST

/* A whole object larger than ahead_max: asked in file order, ahead_max
 * past the reads; a jump to the end does not drag the fetch there. */
START_TEST(test_whole_ahead_bounded)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a;

	o.ahead_max = 32 * MIB;
	readpolicy_open(&p, &o, 100 * MIB, "big.pt", &a);
	ck_action(a, 0, 32 * MIB, 0);
	readpolicy_read(&p, 100 * MIB - 4096, 4096, &a);
	ck_action(a, 0, 0, 0);
	readpolicy_read(&p, 0, MIB, &a);
	ck_action(a, 32 * MIB, MIB, 0);
	readpolicy_read(&p, 30 * MIB, 2 * MIB, &a);
	ck_action(a, 33 * MIB, 31 * MIB, 0);
	readpolicy_read(&p, 80 * MIB, MIB, &a); /* past what was asked: a jump */
	ck_action(a, 0, 0, 0);
	readpolicy_read(&p, 60 * MIB, MIB, &a);
	ck_action(a, 64 * MIB, 29 * MIB, 0);
	readpolicy_read(&p, 90 * MIB, MIB, &a);
	ck_action(a, 93 * MIB, 7 * MIB, 0); /* clipped to the object */
}
END_TEST

/* Larger than whole_max: a window that starts with the first sequential
 * read, doubles, and drops on a seek. */
START_TEST(test_stream_window)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a;

	readpolicy_open(&p, &o, 1024 * MIB, "data.bin", &a);
	ck_assert_int_eq(p.mode, READPOLICY_STREAM);
	ck_action(a, 0, 0, 0);
	readpolicy_read(&p, 0, MIB, &a);
	ck_action(a, MIB, 8 * MIB, 0);
	readpolicy_read(&p, MIB, MIB, &a);
	ck_action(a, 9 * MIB, 9 * MIB, 0); /* window 16 MiB from 2 MiB */
	/* readahead out of order: still sequential */
	readpolicy_read(&p, 3 * MIB, MIB, &a);
	ck_action(a, 18 * MIB, 18 * MIB, 0);
	readpolicy_read(&p, 2 * MIB, MIB, &a);
	ck_action(a, 36 * MIB, 32 * MIB, 0);
	/* a seek: nothing asked, then the window starts again */
	readpolicy_read(&p, 500 * MIB, MIB, &a);
	ck_action(a, 0, 0, 0);
	readpolicy_read(&p, 501 * MIB, MIB, &a);
	ck_action(a, 502 * MIB, 8 * MIB, 0);
	/* the end of the object clips, and nothing is asked twice */
	readpolicy_read(&p, 1020 * MIB, MIB, &a);
	readpolicy_read(&p, 1021 * MIB, MIB, &a);
	ck_action(a, 1022 * MIB, 2 * MIB, 0);
	readpolicy_read(&p, 1022 * MIB, MIB, &a);
	ck_action(a, 0, 0, 0);
	ck_assert_uint_eq(o.max_window, READPOLICY_DEFAULT_MAX_WINDOW);
}
END_TEST

/* random_seeks seeks ask for one fill; a safetensors file after one. */
START_TEST(test_random_asks_fill_once)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a;
	int fills = 0;

	readpolicy_open(&p, &o, 1024 * MIB, "weights.bin", &a);
	for (int i = 0; i < 20; i++) {
		readpolicy_read(&p, (uint64_t)(i * 7919 % 1000) * MIB, 4096, &a);
		fills += a.fill;
		if (i < 4)
			ck_assert_int_eq(a.fill, 0);
	}
	ck_assert_int_eq(fills, 1);
	ck_assert_int_eq(p.mode, READPOLICY_RANDOM);

	readpolicy_open(&p, &o, 1024 * MIB, "model.safetensors", &a);
	readpolicy_read(&p, 0, 8, &a);
	ck_assert_int_eq(a.fill, 0);
	readpolicy_read(&p, 8, 4000, &a); /* the header follows on */
	ck_assert_int_eq(a.fill, 0);
	readpolicy_read(&p, 300 * MIB, 65536, &a); /* the first tensor touched */
	ck_assert_int_eq(a.fill, 1);

	o.random_seeks = 0; /* fill_max=0 */
	readpolicy_open(&p, &o, 1024 * MIB, "model.safetensors", &a);
	readpolicy_read(&p, 0, 8, &a);
	readpolicy_read(&p, 300 * MIB, 8, &a);
	ck_assert_int_eq(a.fill, 0);
}
END_TEST

/* whole_max 0, and empty files: never whole. */
START_TEST(test_whole_off)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a;

	o.whole_max = 0;
	readpolicy_open(&p, &o, MIB, "small.pt", &a);
	ck_assert_int_eq(p.mode, READPOLICY_STREAM);
	ck_action(a, 0, 0, 0);
	o = opts();
	readpolicy_open(&p, &o, 0, "empty.pt", &a);
	ck_action(a, 0, 0, 0);
	readpolicy_read(&p, 0, 4096, &a);
	ck_action(a, 0, 0, 0);
}
END_TEST

/* A safetensors header of the given JSON, padded, as a file's first bytes. */
static size_t st_header(char *buf, size_t cap, const char *json)
{
	size_t n = strlen(json);

	ck_assert_uint_le(8 + n, cap);
	for (int i = 0; i < 8; i++)
		buf[i] = (char)((n >> (8 * i)) & 0xff);
	memcpy(buf + 8, json, n);
	return 8 + n;
}

/* The tensors of a header, sorted, in file offsets; malformed ones refused. */
START_TEST(test_safetensors_header)
{
	char buf[512];
	struct readpolicy_range *r;
	size_t n, need, len;
	const char *good = "{\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]},"
	                   "\"__metadata__\":{\"format\":\"pt\"},"
	                   "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
	                   "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[32,32]}}";

	len = st_header(buf, sizeof(buf), good);
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, len, len + 32, &r, &n, &need), 0);
	ck_assert_uint_eq(n, 2); /* the empty tensor has no bytes */
	ck_assert_uint_eq(r[0].off, len);
	ck_assert_uint_eq(r[0].end, len + 16);
	ck_assert_uint_eq(r[1].off, len + 16);
	ck_assert_uint_eq(r[1].end, len + 32);
	free(r);
	/* not all of the header yet: how much is needed */
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, 20, len + 32, &r, &n, &need), -EAGAIN);
	ck_assert_uint_eq(need, len);
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, 4, len + 32, &r, &n, &need), -EAGAIN);
	/* bytes past the end of the file, overlaps, junk, a lying length */
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, len, len + 31, &r, &n, &need), -EINVAL);
	len = st_header(buf, sizeof(buf),
	                "{\"a\":{\"data_offsets\":[0,16]},\"b\":{\"data_offsets\":[8,24]}}");
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, len, len + 32, &r, &n, &need), -EINVAL);
	len = st_header(buf, sizeof(buf), "{\"a\":{\"data_offsets\":[16,0]}}");
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, len, len + 32, &r, &n, &need), -EINVAL);
	len = st_header(buf, sizeof(buf), "[1,2,3]");
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, len, len + 32, &r, &n, &need), -EINVAL);
	len = st_header(buf, sizeof(buf), "{\"a\":{\"data_offsets\":[0,\"16\"]}}");
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, len, len + 32, &r, &n, &need), -EINVAL);
	memset(buf, 0xff, 8);
	ck_assert_int_eq(readpolicy_safetensors_ranges(buf, 64, 1 << 20, &r, &n, &need), -EINVAL);
}
END_TEST

/* RANGES: a read inside a tensor asks for that whole tensor, once; reads
 * between tensors (the header) ask for nothing. */
START_TEST(test_ranges_by_tensor)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a;
	struct readpolicy_range *r = calloc(3, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r[0] = (struct readpolicy_range){.off = 1000, .end = 1000 + 5 * MIB};
	r[1] = (struct readpolicy_range){.off = 1000 + 5 * MIB, .end = 1000 + 13 * MIB};
	r[2] = (struct readpolicy_range){.off = 1000 + 20 * MIB, .end = 1000 + 22 * MIB};
	readpolicy_open(&p, &o, 2048 * MIB, "m.safetensors", &a);
	ck_assert(readpolicy_wants_ranges(&p));
	readpolicy_set_ranges(&p, r, 3);
	ck_assert(!readpolicy_wants_ranges(&p));
	readpolicy_read(&p, 0, 1000, &a);
	ck_action(a, 0, 0, 0);
	readpolicy_read(&p, 1000 + 7 * MIB, 4096, &a);
	ck_action(a, 1000 + 5 * MIB, 8 * MIB, 0);
	readpolicy_read(&p, 1000 + 6 * MIB, 4096, &a);
	ck_action(a, 0, 0, 0); /* asked already */
	readpolicy_read(&p, 1000 + 15 * MIB, 4096, &a);
	ck_action(a, 0, 0, 0); /* a gap */
	readpolicy_read(&p, 1000 + 22 * MIB - 1, 1, &a);
	ck_action(a, 1000 + 20 * MIB, 2 * MIB, 0);
	readpolicy_read(&p, 1000, 1, &a);
	ck_action(a, 1000, 5 * MIB, 0);
	for (int i = 0; i < 50; i++) {
		readpolicy_read(&p, (uint64_t)(i * 7919 % 2000) * MIB, 4096, &a);
		ck_assert_int_eq(a.fill, 0); /* never a whole-file fill */
	}
	readpolicy_close(&p);
}
END_TEST

/* STREAM asks end on whole parts when round is set. */
START_TEST(test_stream_rounds_to_parts)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a;

	o.round = 8 * MIB;
	readpolicy_open(&p, &o, 1024 * MIB, "data.bin", &a);
	readpolicy_read(&p, 0, 3 * MIB, &a);
	ck_action(a, 3 * MIB, 13 * MIB, 0); /* to 16 MiB, not 11 */
	readpolicy_read(&p, 3 * MIB, MIB, &a);
	ck_action(a, 16 * MIB, 8 * MIB, 0); /* 4 + 16 = 20, to 24 */
}
END_TEST

/* A prefetch the cache refused is asked again by the next read. */
START_TEST(test_refused_asked_again)
{
	struct readpolicy_opts o = opts();
	struct readpolicy p;
	struct readpolicy_action a, first;

	readpolicy_open(&p, &o, 24 * MIB, "layer_3.pt", &first);
	ck_action(first, 0, 24 * MIB, 0);
	readpolicy_refused(&p, &first);
	readpolicy_read(&p, 0, MIB, &a);
	ck_action(a, 0, 24 * MIB, 0);
	readpolicy_read(&p, MIB, MIB, &a);
	ck_action(a, 0, 0, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("readpolicy");
	TCase *tc = tcase_create("readpolicy");

	tcase_add_test(tc, test_whole_at_open);
	tcase_add_test(tc, test_whole_ahead_bounded);
	tcase_add_test(tc, test_stream_window);
	tcase_add_test(tc, test_random_asks_fill_once);
	tcase_add_test(tc, test_whole_off);
	tcase_add_test(tc, test_safetensors_header);
	tcase_add_test(tc, test_ranges_by_tensor);
	tcase_add_test(tc, test_stream_rounds_to_parts);
	tcase_add_test(tc, test_refused_asked_again);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
