/*
 * check_ops_units.c - the pieces of issue 6 that need no mount: the
 * latency histogram (lib/histogram.c), the access options
 * (fuse/access.c) and the Prometheus text (fuse/metrics.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "histogram.h"
#include "metrics.h"
#include "suites.h"

START_TEST(test_histogram_bounds_grow)
{
	ck_assert_int_eq(histogram_bound_us(0), HISTOGRAM_BASE_US);
	ck_assert_int_eq(histogram_bound_us(4), 2 * HISTOGRAM_BASE_US);
	ck_assert_int_eq(histogram_bound_us(40), 1024 * HISTOGRAM_BASE_US);
	for (unsigned i = 1; i < HISTOGRAM_BUCKETS; i++)
		ck_assert_uint_gt(histogram_bound_us(i), histogram_bound_us(i - 1));
	/* Past 10 s the last bucket catches the rest. */
	ck_assert_uint_gt(histogram_bound_us(HISTOGRAM_BUCKETS - 1), 10 * 1000 * 1000);
}
END_TEST

START_TEST(test_histogram_quantiles)
{
	struct histogram h = {0};

	ck_assert_int_eq(histogram_quantile_us(&h, 0.5), 0);
	/* 98 requests of 1 ms, 2 of 200 ms: p50 about 1 ms, p99 about 200 ms. */
	for (int i = 0; i < 98; i++)
		histogram_add(&h, 1000);
	histogram_add(&h, 200000);
	histogram_add(&h, 200000);
	ck_assert_int_eq(h.count, 100);
	ck_assert_uint_ge(histogram_quantile_us(&h, 0.5), 1000);
	ck_assert_uint_le(histogram_quantile_us(&h, 0.5), 1190);
	ck_assert_uint_ge(histogram_quantile_us(&h, 0.99), 200000);
	ck_assert_uint_le(histogram_quantile_us(&h, 0.99), 238000);
	/* p98 is still the fast ones; never below the true value. */
	ck_assert_uint_le(histogram_quantile_us(&h, 0.98), 1190);
	histogram_add(&h, 0);
	histogram_add(&h, 999999999999ull);
	ck_assert_int_eq(h.buckets[0], 1);
	ck_assert_int_eq(h.buckets[HISTOGRAM_BUCKETS - 1], 1);
}
END_TEST

static int parse(const char *opts, struct access_opts *o)
{
	char *argv[] = {"chunkfs", "-o", (char *)opts, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int ret;

	args.allocated = 0;
	ret = access_opts_parse(&args, o);
	/* What is left must be only what FUSE itself takes. */
	if (ret == 0 && args.argc > 1 && strstr(args.argv[args.argc - 1], "x-") != NULL)
		ret = -2;
	fuse_opt_free_args(&args);
	return ret;
}

START_TEST(test_access_apply)
{
	struct access_opts o;
	struct stat st = {.st_mode = S_IFREG | 0644, .st_uid = 0, .st_gid = 0};
	struct stat d = {.st_mode = S_IFDIR | 0755};

	ck_assert_int_eq(parse("uid=65534,gid=0,file_mode=0640,dir_mode=0750,umask=027", &o), 0);
	access_apply(&o, &st);
	access_apply(&o, &d);
	ck_assert_int_eq(st.st_uid, 65534);
	ck_assert_int_eq(st.st_mode, S_IFREG | 0640);
	ck_assert_int_eq(d.st_mode, S_IFDIR | 0750);
	/* umask alone clears bits of the defaults. */
	ck_assert_int_eq(parse("umask=077", &o), 0);
	st.st_mode = S_IFREG | 0644;
	access_apply(&o, &st);
	ck_assert_int_eq(st.st_mode, S_IFREG | 0600);
	ck_assert_int_eq(st.st_uid, 65534); /* not set: left alone */
	/* Names work; mount(8)'s options are swallowed. */
	ck_assert_int_eq(parse("uid=root,gid=root,_netdev,nofail,x-systemd.automount,"
	                       "x-systemd.mount-timeout=30,comment=x,defaults,noauto",
	                       &o),
	                 0);
	ck_assert(o.set_uid && o.uid == 0 && o.set_gid);
	ck_assert_int_eq(parse("uid=no-such-user-here", &o), -1);
	ck_assert_int_eq(parse("file_mode=0999", &o), -1);
	ck_assert_int_eq(parse("dir_mode=17777", &o), -1);
	ck_assert_int_eq(parse("umask=", &o), -1);
}
END_TEST

START_TEST(test_metrics_text)
{
	char *t = metrics_text("{\"version\": 1, \"uptime_s\": 2.5, \"s3\": {\"get\": 12, "
	                       "\"bytes-down\": 7}, \"ratios\": {\"cache_hit_ratio\": 0.75}, "
	                       "\"s3_latency\": {\"get_p99_us\": 840}}");

	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(strstr(t, "chunkfs_version 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "chunkfs_uptime_s 2.5\n"));
	ck_assert_ptr_nonnull(strstr(t, "chunkfs_s3_get 12\n"));
	ck_assert_ptr_nonnull(strstr(t, "chunkfs_s3_bytes_down 7\n"));
	ck_assert_ptr_nonnull(strstr(t, "chunkfs_ratios_cache_hit_ratio 0.75\n"));
	ck_assert_ptr_nonnull(strstr(t, "chunkfs_s3_latency_get_p99_us 840\n"));
	free(t);
	ck_assert_ptr_null(metrics_text("not json"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ops_units");
	TCase *tc = tcase_create("units");

	tcase_add_test(tc, test_histogram_bounds_grow);
	tcase_add_test(tc, test_histogram_quantiles);
	tcase_add_test(tc, test_access_apply);
	tcase_add_test(tc, test_metrics_text);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
