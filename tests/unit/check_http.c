/*
 * check_http.c - unit tests for what backends/s3/http.c reads from a
 * server (http_i.h): header lines and body bytes, without a network.
 *
 *   headers  the headers of interest are parsed; values that would go
 *            into a request header or a log line with control characters
 *            or quotes are ignored; x-amz-meta-mtime out of any time_t's
 *            range is ignored (it converted with undefined behaviour).
 *   body     a 2xx body into the caller's buffer (skip, cap, overflow),
 *            other bodies collected.
 *
 * The fuzz target tests/fuzz/fuzz_http.c checks the same properties on
 * arbitrary input.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/http_i.h"
#include "suites.h"

static void feed(struct http_result *r, const char *line)
{
	http_header_line(r, line, strlen(line));
}

START_TEST(test_headers_parsed)
{
	struct http_result r = {0};

	feed(&r, "HTTP/1.1 206 Partial Content\r\n");
	feed(&r, "ETag: \"d41d8cd98f00b204e9800998ecf8427e\"\r\n");
	feed(&r, "Content-Length: 5\r\n");
	feed(&r, "Content-Range: bytes 5-9/10\r\n");
	feed(&r, "x-amz-request-id: 4442587FB7D0A2F9\r\n");
	feed(&r, "x-amz-bucket-region: eu-west-1\r\n");
	feed(&r, "x-amz-meta-mode: 33188\r\n");
	feed(&r, "x-amz-meta-mtime: 1700000000.5\r\n");
	ck_assert_str_eq(r.etag, "d41d8cd98f00b204e9800998ecf8427e");
	ck_assert(r.has_content_length && r.content_length == 5);
	ck_assert(r.has_content_range && r.range_start == 5 && r.range_total == 10);
	ck_assert_str_eq(r.request_id, "4442587FB7D0A2F9");
	ck_assert_str_eq(r.bucket_region, "eu-west-1");
	ck_assert(r.meta & BACKEND_META_MODE);
	ck_assert_uint_eq(r.mode, 33188);
	ck_assert(r.has_meta_mtime);
	ck_assert_int_eq(r.meta_mtime.tv_sec, 1700000000);
	ck_assert_int_eq(r.meta_mtime.tv_nsec, 500000000);
}
END_TEST

/* A CR inside a line reaches the parser (libcurl splits at LF only). */
START_TEST(test_header_controls_ignored)
{
	struct http_result r = {0};

	feed(&r, "ETag: \"abc\rX-Injected: 1\"\r\n");
	feed(&r, "x-amz-request-id: id\x1b[2J\r\n");
	feed(&r, "x-amz-bucket-region: eu\x01west\r\n");
	ck_assert_str_eq(r.etag, "");
	ck_assert_str_eq(r.request_id, "");
	ck_assert_str_eq(r.bucket_region, "");
	feed(&r, "ETag: \"a\"b\"\r\n");
	ck_assert_str_eq(r.etag, "");
}
END_TEST

START_TEST(test_meta_mtime_out_of_range)
{
	static const char *const bad[] = {"1e300", "-1", "nan", "inf", "12abc", ""};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_result r = {0};
		char line[64];

		snprintf(line, sizeof(line), "x-amz-meta-mtime: %s\r\n", bad[i]);
		feed(&r, line);
		ck_assert_msg(!r.has_meta_mtime, "x-amz-meta-mtime %s was taken", bad[i]);
	}
}
END_TEST

START_TEST(test_body_into_dst)
{
	char dst[8];
	struct http_call c = {.method = "GET", .dst = dst, .dst_cap = sizeof(dst), .dst_skip = 3};
	struct http_body_state s = {0};
	struct http_result r = {0};

	/* A 200 answer to a ranged GET: the first 3 bytes are skipped. */
	ck_assert_uint_eq(http_body_bytes(&c, &r, &s, 200, "0123", 4), 4);
	/* Past the buffer the transfer is cut off (0: curl stops), after
	 * the bytes that fit were taken. */
	ck_assert_uint_eq(http_body_bytes(&c, &r, &s, 200, "456789abcdef", 12), 0);
	ck_assert_uint_eq(r.dst_len, 8);
	ck_assert(memcmp(dst, "3456789a", 8) == 0);
	ck_assert(r.dst_overflow);
	ck_assert_ptr_null(r.body);
}
END_TEST

START_TEST(test_body_error_collected)
{
	char dst[8];
	struct http_call c = {.method = "GET", .dst = dst, .dst_cap = sizeof(dst)};
	struct http_body_state s = {0};
	struct http_result r = {0};

	ck_assert_uint_eq(http_body_bytes(&c, &r, &s, 404, "<Error>", 7), 7);
	ck_assert_uint_eq(http_body_bytes(&c, &r, &s, 404, "</Error>", 8), 8);
	ck_assert_uint_eq(r.body_len, 15);
	ck_assert_str_eq(r.body, "<Error></Error>");
	ck_assert_uint_eq(r.dst_len, 0);
	http_result_clear(&r);
}
END_TEST

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("headers");

	tcase_add_test(tc, test_headers_parsed);
	tcase_add_test(tc, test_header_controls_ignored);
	tcase_add_test(tc, test_meta_mtime_out_of_range);
	tcase_add_test(tc, test_body_into_dst);
	tcase_add_test(tc, test_body_error_collected);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return suites_run(http_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
