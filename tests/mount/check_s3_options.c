/*
 * check_s3_options.c - the S3 options of issue 16 item 3 through a mount:
 * -o storage_class and -o acl on every request that creates an object
 * (PutObject, CreateMultipartUpload, CopyObject), -o requester_pays and
 * -o expected_bucket_owner on every request, a wrong owner refused at
 * mount time with one sentence, and junk values refused before mounting.
 * The S3 test server notes the headers it receives (GET /amz-headers,
 * tests/s3/README.md) and checks every signature.
 *
 * Suites: s3_options_fs (junk values are refused) and s3_options_s3.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount.h"
#include "store.h"

#define PART_OPTS "part_size_mb=5"
#define BIG_SIZE  (12u << 20) /* over two 5 MiB parts: a multipart upload */

static struct test_mount m;
static struct store st;
static enum store_kind g_kind;

static void setup(void)
{
	store_fixture_begin(&m, &st, g_kind);
}

static void teardown(void)
{
	store_fixture_end(&m, &st);
}

/* Requests of operation op (or "all") since the last counter reset whose
 * header was value ("with") or anything else ("other"). */
static long long requests(const char *header, const char *value, const char *op, const char *which)
{
	char path[512];

	snprintf(path, sizeof(path), "/amz-headers?header=%s&value=%s", header, value);
	return store_control_number(path, op, which);
}

/* Every request of each operation in ops carried header: value. */
static void header_on(const char *header, const char *value, const char *const *ops)
{
	for (size_t i = 0; ops[i] != NULL; i++) {
		ck_assert_msg(requests(header, value, ops[i], "with") >= 1, "no %s with %s: %s",
		              ops[i], header, value);
		ck_assert_msg(requests(header, value, ops[i], "other") == 0, "a %s without %s: %s",
		              ops[i], header, value);
	}
}

/* Write a small file, a multipart-sized one and rename the small one. */
static void write_put_multipart_copy(void)
{
	ck_assert_int_eq(tm_write_file(tm_path(m.mnt, "small"), "hello\n", 6), 0);
	ck_assert_int_eq(tm_write_pattern(tm_path(m.mnt, "big"), BIG_SIZE, 16), 0);
	ck_assert_int_eq(rename(tm_path(m.mnt, "small"), tm_path(m.mnt, "moved")), 0);
}

/* 0 when a HEAD of the mount's key answers x-amz-storage-class: cls (by
 * curl, which signs with its own SigV4; the hash is of the empty body). */
static int stored_class_is(const char *key, const char *cls)
{
	return tm_sh("curl -sfI --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER "
	             "-H 'x-amz-content-sha256: %s' '%s/%s/%s%s' | tr -d '\\r' | "
	             "grep -qix 'x-amz-storage-class: %s'",
	             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	             getenv("CHUNKFS_TEST_S3_ENDPOINT"), getenv("CHUNKFS_TEST_S3_BUCKET"),
	             store_s3_prefix(&st), key, cls);
}

/* -o storage_class and -o acl go on each request that creates an object,
 * only there, and S3 keeps the class of what was written, renamed or
 * uploaded in parts. */
START_TEST(test_s3_storage_class_and_acl_on_writes)
{
	static const char *const creating[] = {"PutObject", "CreateMultipartUpload", "CopyObject",
	                                       NULL};
	static const char *const not_creating[] = {"HeadBucket", "UploadPart",
	                                           "CompleteMultipartUpload", NULL};

	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	store_mount_ok(&st, &m,
	               PART_OPTS ",storage_class=STANDARD_IA,acl=bucket-owner-full-control");
	write_put_multipart_copy();
	ck_assert_int_eq(tm_unmount(&m), 0);
	header_on("x-amz-storage-class", "STANDARD_IA", creating);
	header_on("x-amz-acl", "bucket-owner-full-control", creating);
	header_on("x-amz-storage-class", "", not_creating);
	header_on("x-amz-acl", "", not_creating);
	ck_assert_int_eq(stored_class_is("moved", "STANDARD_IA"), 0);
	ck_assert_int_eq(stored_class_is("big", "STANDARD_IA"), 0);
}
END_TEST

/* -o requester_pays and -o expected_bucket_owner go on every request:
 * the mount-time check, writes, multipart parts, copy, delete, reads and
 * listings. */
START_TEST(test_s3_payer_and_owner_on_every_request)
{
	static const char *const kinds[] = {"HeadBucket",
	                                    "PutObject",
	                                    "CreateMultipartUpload",
	                                    "UploadPart",
	                                    "CompleteMultipartUpload",
	                                    "CopyObject",
	                                    "DeleteObject",
	                                    "HeadObject",
	                                    "GetObject",
	                                    "ListObjectsV2",
	                                    NULL};
	const char *opts = PART_OPTS ",requester_pays,expected_bucket_owner=123456789012";
	struct stat sb;
	size_t len;
	char *got;

	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	store_mount_ok(&st, &m, opts);
	write_put_multipart_copy();
	ck_assert_int_eq(tm_unmount(&m), 0);
	store_mount_ok(&st, &m, opts); /* a new mount reads from the store, not its cache */
	ck_assert_int_eq(stat(tm_path(m.mnt, "big"), &sb), 0);
	got = tm_read_file(tm_path(m.mnt, "moved"), &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, "hello\n");
	free(got);
	ck_assert_int_eq(unlink(tm_path(m.mnt, "moved")), 0);
	ck_assert_int_eq(tm_unmount(&m), 0);
	header_on("x-amz-request-payer", "requester", kinds);
	header_on("x-amz-expected-bucket-owner", "123456789012", kinds);
	ck_assert_int_eq(requests("x-amz-request-payer", "requester", "all", "other"), 0);
	ck_assert_int_eq(requests("x-amz-expected-bucket-owner", "123456789012", "all", "other"),
	                 0);
}
END_TEST

/* A bucket owned by another account is refused at mount time, with one
 * sentence naming the bucket and the owner expected. */
START_TEST(test_s3_wrong_owner_refused)
{
	char why[256];

	snprintf(why, sizeof(why),
	         "access to bucket \"%s\" denied: either account 210987654321 "
	         "(-o expected_bucket_owner) does not own it",
	         getenv("CHUNKFS_TEST_S3_BUCKET"));
	store_mount_refused(&st, &m, "expected_bucket_owner=210987654321", why);
	ck_assert_int_ge(
	    requests("x-amz-expected-bucket-owner", "210987654321", "HeadBucket", "with"), 1);
}
END_TEST

/* Values S3 would refuse are refused before mounting, with a sentence
 * naming the option. */
START_TEST(test_junk_values_refused)
{
	static const char *const junk[][2] = {
	    {"storage_class=", "-o storage_class=: not a storage class name"},
	    {"storage_class=standard-ia", "-o storage_class=standard-ia: not a storage class"},
	    {"acl=everyone", "-o acl=everyone: not a canned ACL"},
	    {"acl=", "-o acl=: not a canned ACL"},
	    {"expected_bucket_owner=12345", "-o expected_bucket_owner=12345: not an AWS account"},
	    {"expected_bucket_owner=12345678901a", "=12345678901a: not an AWS account id"},
	    {"expected_bucket_owner=1234567890123", "=1234567890123: not an AWS account id"},
	};

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		store_mount_refused(&st, &m, junk[i][0], junk[i][1]);
}
END_TEST

static Suite *s3_options_suite(enum store_kind kind)
{
	Suite *s = suite_create(kind == STORE_FS ? "s3_options_fs" : "s3_options_s3");
	TCase *tc = tcase_create(kind == STORE_FS ? "fs" : "s3");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_junk_values_refused);
	if (kind == STORE_S3) {
		tcase_add_test(tc, test_s3_storage_class_and_acl_on_writes);
		tcase_add_test(tc, test_s3_payer_and_owner_on_every_request);
		tcase_add_test(tc, test_s3_wrong_owner_refused);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return store_run_suites(s3_options_suite, &g_kind, "s3_options");
}
