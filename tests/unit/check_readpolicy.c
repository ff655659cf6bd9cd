/*
 * check_readpolicy.c - the per-handle read policy (fuse/readpolicy.c):
 * what each mode asks the cache to fetch, read by read.
 */
#include "readpolicy.h"
#include "suites.h"

#include <check.h>
#include <stdint.h>

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

int main(void)
{
	Suite *s = suite_create("readpolicy");
	TCase *tc = tcase_create("readpolicy");

	tcase_add_test(tc, test_whole_at_open);
	tcase_add_test(tc, test_whole_ahead_bounded);
	tcase_add_test(tc, test_stream_window);
	tcase_add_test(tc, test_random_asks_fill_once);
	tcase_add_test(tc, test_whole_off);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
