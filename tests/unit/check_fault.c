/*
 * check_fault.c - the fault-injection layer: which ops fail, how often,
 * with what error, that a failed call never reaches the store, and the
 * -o fault_* options.  (Its pass-through behaviour is covered by the
 * backend contract suite.)
 */
#include <check.h>
#include <errno.h>
#include <fuse_opt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "mem.h"
#include "suites.h"

static struct backend *g_mem, *g_f;

static void setup(void)
{
	g_mem = mem_backend_create();
	ck_assert_ptr_nonnull(g_mem);
	g_f = fault_create(g_mem, NULL);
	ck_assert_ptr_nonnull(g_f);
}

static void teardown(void)
{
	backend_destroy(g_f);
}

static int put(const char *key, const char *s)
{
	return backend_save_buffer(g_f, key, s, strlen(s), NULL);
}

/* count failures come first, on the named ops only, and a failed save
 * stores nothing. */
START_TEST(test_count_and_ops)
{
	struct fault_opts o = {.ops = FAULT_SAVE, .count = 2, .err = ENOSPC};
	struct mem_backend_stats ms;
	struct fault_stats fs;
	struct backend_stat st;
	char buf[8];

	ck_assert_int_eq(put("a", "old"), 0);
	ck_assert_int_eq(fault_set(g_f, &o), 0);
	mem_backend_reset_stats(g_mem);
	ck_assert_int_eq(put("a", "new1"), -ENOSPC);
	ck_assert_int_eq(put("a", "new2"), -ENOSPC);
	mem_backend_get_stats(g_mem, &ms);
	ck_assert_uint_eq(ms.save, 0); /* never reached the store */
	/* Reads are not named: they pass, and see the old object. */
	ck_assert_int_eq(g_f->ops->stat(g_f, "a", &st), 0);
	ck_assert_int_eq(g_f->ops->read(g_f, "a", 0, buf, sizeof(buf), NULL, NULL), 3);
	ck_assert_int_eq(memcmp(buf, "old", 3), 0);
	ck_assert_int_eq(put("a", "new3"), 0); /* the third save passes */
	ck_assert_int_eq(g_f->ops->read(g_f, "a", 0, buf, sizeof(buf), NULL, NULL), 4);
	fault_get_stats(g_f, &fs);
	ck_assert_uint_eq(fs.calls, 3);
	ck_assert_uint_eq(fs.injected, 2);
}
END_TEST

/* rate: about that share of calls fail; the same seed repeats the same
 * choices; EIO when no errno is given. */
START_TEST(test_rate_and_seed)
{
	struct fault_opts o = {.ops = FAULT_READ | FAULT_STAT, .rate = 0.25, .seed = 42};
	struct backend_stat st;
	int first[400], fails = 0;
	char buf[4];

	ck_assert_int_eq(put("r", "data"), 0);
	ck_assert_int_eq(fault_set(g_f, &o), 0);
	for (int i = 0; i < 400; i++) {
		first[i] = (int)g_f->ops->read(g_f, "r", 0, buf, sizeof(buf), NULL, NULL);
		ck_assert(first[i] == 4 || first[i] == -EIO);
		fails += first[i] < 0;
	}
	ck_assert_int_gt(fails, 60); /* 100 expected */
	ck_assert_int_lt(fails, 140);
	ck_assert_int_eq(fault_set(g_f, &o), 0); /* same seed: same sequence */
	for (int i = 0; i < 400; i++)
		ck_assert_int_eq((int)g_f->ops->read(g_f, "r", 0, buf, sizeof(buf), NULL, NULL),
		                 first[i]);
	o.rate = 1;
	ck_assert_int_eq(fault_set(g_f, &o), 0);
	ck_assert_int_eq(g_f->ops->stat(g_f, "r", &st), -EIO);
	ck_assert_int_eq(g_f->ops->remove(g_f, "r"), 0); /* not named */
}
END_TEST

/* delay_ms slows every call; bad options are refused. */
START_TEST(test_delay_and_invalid)
{
	struct fault_opts o = {.delay_ms = 30};
	struct timespec t0, t1;
	struct backend_stat st;
	double secs;

	ck_assert_int_eq(put("d", "x"), 0);
	ck_assert_int_eq(fault_set(g_f, &o), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(g_f->ops->stat(g_f, "d", &st), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs >= 0.09, "3 calls with 30 ms each took %.3f s", secs);

	o = (struct fault_opts){.rate = 1.5};
	ck_assert_int_eq(fault_set(g_f, &o), -EINVAL);
	o = (struct fault_opts){.ops = 1u << 20};
	ck_assert_int_eq(fault_set(g_f, &o), -EINVAL);
	ck_assert_int_eq(fault_set(g_mem, &o), -EINVAL); /* not a fault layer */
}
END_TEST

/* The -o options: parsed, removed from the arguments, errors named. */
START_TEST(test_options)
{
	char *argv_ok[] = {"chunkfs", "-o",
	                   "ro,fault_ops=read+save,fault_rate=0.5,fault_errno=EACCES,fault_count=3,"
	                   "fault_delay_ms=7,fault_seed=9",
	                   NULL};
	char *argv_none[] = {"chunkfs", "-o", "ro", NULL};
	char *argv_bad_op[] = {"chunkfs", "-o", "fault_ops=read+bogus", NULL};
	char *argv_bad_err[] = {"chunkfs", "-o", "fault_errno=EWHAT", NULL};
	char *argv_num_err[] = {"chunkfs", "-o", "fault_ops=all,fault_errno=28", NULL};
	struct fuse_args a = FUSE_ARGS_INIT(3, argv_ok);
	struct fault_opts o;
	int on;

	ck_assert_int_eq(fault_opts_parse(&a, &o, &on), 0);
	ck_assert_int_eq(on, 1);
	ck_assert_uint_eq(o.ops, FAULT_READ | FAULT_SAVE);
	ck_assert(o.rate == 0.5);
	ck_assert_int_eq(o.err, EACCES);
	ck_assert_uint_eq(o.count, 3);
	ck_assert_uint_eq(o.delay_ms, 7);
	ck_assert_uint_eq(o.seed, 9);
	for (int i = 0; i < a.argc; i++)
		ck_assert_ptr_null(strstr(a.argv[i], "fault_"));
	fuse_opt_free_args(&a);

	a = (struct fuse_args)FUSE_ARGS_INIT(3, argv_none);
	ck_assert_int_eq(fault_opts_parse(&a, &o, &on), 0);
	ck_assert_int_eq(on, 0);
	fuse_opt_free_args(&a);

	a = (struct fuse_args)FUSE_ARGS_INIT(3, argv_bad_op);
	ck_assert_int_eq(fault_opts_parse(&a, &o, &on), -1);
	fuse_opt_free_args(&a);
	a = (struct fuse_args)FUSE_ARGS_INIT(3, argv_bad_err);
	ck_assert_int_eq(fault_opts_parse(&a, &o, &on), -1);
	fuse_opt_free_args(&a);
	a = (struct fuse_args)FUSE_ARGS_INIT(3, argv_num_err);
	ck_assert_int_eq(fault_opts_parse(&a, &o, &on), 0);
	ck_assert_uint_eq(o.ops, FAULT_ALL);
	ck_assert_int_eq(o.err, 28);
	fuse_opt_free_args(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault");
	TCase *tc = tcase_create("fault");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_count_and_ops);
	tcase_add_test(tc, test_rate_and_seed);
	tcase_add_test(tc, test_delay_and_invalid);
	tcase_add_test(tc, test_options);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
