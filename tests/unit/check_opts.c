/*
 * check_opts.c - numeric -o options parsed strictly (lib/opts.c): junk,
 * signs, overflow, infinities and NaN are refused with the option named;
 * good values, escaped commas and both "-o list" and "-olist" forms pass.
 * The S3 header options (storage_class, acl, expected_bucket_owner) take
 * only values S3 would.
 */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "s3/s3.h"
#include "suites.h"

START_TEST(test_uint)
{
	static const char *const bad[] = {
	    "12abc", "", "-1", "+5", " 5", "5 ", "0x10", "4294967296", "99999999999999999999999",
	    "1e3"};
	unsigned v = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_msg(opts_uint("cache_size", bad[i], &v) == -1, "\"%s\" taken", bad[i]);
		ck_assert_uint_eq(v, 7);
	}
	ck_assert_int_eq(opts_uint("retries", "0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(opts_uint("retries", "4294967295", &v), 0);
	ck_assert_uint_eq(v, UINT_MAX);
	ck_assert_int_eq(opts_uint("retries", "007", &v), 0);
	ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(test_double)
{
	static const char *const bad[] = {"x", "", "1.5s", "-1", "nan", "inf", "1e999", "-0.5"};
	double v = 3;

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_msg(opts_double("list_ttl", bad[i], &v) == -1, "\"%s\" taken", bad[i]);
		ck_assert(v == 3);
	}
	ck_assert_int_eq(opts_double("list_ttl", "2.5", &v), 0);
	ck_assert(v == 2.5);
	ck_assert_int_eq(opts_double("list_ttl", "0", &v), 0);
	ck_assert(v == 0);
}
END_TEST

struct conf {
	unsigned n;
	double secs;
	char *name;
};

static const struct fuse_opt spec[] = {
    {"n=%u", offsetof(struct conf, n), 0},
    {"secs=%lf", offsetof(struct conf, secs), 0},
    {"name=%s", offsetof(struct conf, name), 0},
    FUSE_OPT_END,
};

/* opts_parse() over argv (NULL-terminated) into *c: its return. */
static int parse(const char **argv, struct conf *c)
{
	int argc = 0, ret;

	while (argv[argc] != NULL)
		argc++;
	struct fuse_args args = FUSE_ARGS_INIT(argc, (char **)argv);
	memset(c, 0, sizeof(*c));
	ret = opts_parse(&args, c, spec, NULL);
	fuse_opt_free_args(&args);
	return ret;
}

START_TEST(test_parse)
{
	const char *good[] = {"prog", "-o", "n=12,name=a\\,n=junk", "-osecs=1.5", NULL};
	const char *junk[] = {"prog", "-o", "name=x,n=12abc", NULL};
	const char *junk2[] = {"prog", "-osecs=1e999", NULL};
	const char *other[] = {"prog", "-o", "other=12abc", "src", NULL};
	struct conf c;

	ck_assert_int_eq(parse(good, &c), 0);
	ck_assert_uint_eq(c.n, 12);
	ck_assert(c.secs == 1.5);
	ck_assert_str_eq(c.name, "a,n=junk");
	free(c.name);
	ck_assert_int_eq(parse(junk, &c), -1);
	ck_assert_int_eq(parse(junk2, &c), -1);
	/* Not a numeric option of this spec: left to whoever takes it. */
	ck_assert_int_eq(parse(other, &c), 0);
}
END_TEST

/* s3_opts_parse() of "-o opt": its return; *o is freed. */
static int parse_s3(const char *opt)
{
	const char *argv[] = {"prog", "-o", opt, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, (char **)argv);
	struct s3_opts o;
	int ret;

	s3_opts_init(&o);
	ret = s3_opts_parse(&args, &o);
	fuse_opt_free_args(&args);
	s3_opts_free(&o);
	return ret;
}

START_TEST(test_s3_header_opts)
{
	static const char *const good[] = {"storage_class=STANDARD",
	                                   "storage_class=GLACIER_IR",
	                                   "storage_class=ONEZONE_IA",
	                                   "acl=private",
	                                   "acl=bucket-owner-full-control",
	                                   "expected_bucket_owner=123456789012",
	                                   "expected_bucket_owner=000000000000,requester_pays"};
	static const char *const bad[] = {"storage_class=",
	                                  "storage_class=standard",
	                                  "storage_class=STANDARD IA",
	                                  "storage_class=A;B",
	                                  "acl=",
	                                  "acl=Private",
	                                  "acl=everyone",
	                                  "expected_bucket_owner=",
	                                  "expected_bucket_owner=12345678901",
	                                  "expected_bucket_owner=1234567890123",
	                                  "expected_bucket_owner=12345678901x",
	                                  "expected_bucket_owner=-12345678901"};

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ck_assert_msg(parse_s3(good[i]) == 0, "\"%s\" refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(parse_s3(bad[i]) == -1, "\"%s\" taken", bad[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("opts");
	TCase *tc = tcase_create("strict");

	tcase_add_test(tc, test_uint);
	tcase_add_test(tc, test_double);
	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_s3_header_opts);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
