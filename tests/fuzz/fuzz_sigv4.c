/*
 * fuzz_sigv4.c - libFuzzer target for backends/s3/sigv4.c.
 *
 * fuzz-sources: backends/s3/sigv4.c
 * fuzz-pkgs: openssl
 *
 * (tests/fuzz/run.sh reads the two lines above: what to compile in, and
 * which pkg-config packages to link.)
 *
 * Input layout: byte 0 holds flags, the rest is split at NUL bytes into
 * fields: the object path, then 2 * n_query query name/value fields, then
 * header name/value pairs.  A Host header is always added so that most
 * inputs get past validation and reach the canonicalizer.
 *
 *   byte 0  bit 0    SIGV4_CONTENT_SHA256
 *           bit 1    credentials carry a session token (the next field)
 *           bit 2    SIGV4_UNSIGNED_TOKEN
 *           bit 3    a query field "\x01" means "no value" (NULL)
 *           bits 4-6 number of query parameters (0-7)
 *
 * Checked on every input, aborting on a violation:
 *   - sigv4_uri_encode() output holds only unreserved bytes, '/' (when
 *     kept) and %XX with upper-case hex, and decodes back to its input;
 *   - sigv4_sign() returns 0, -EINVAL or -ENOMEM and nothing else;
 *   - on success: the canonical request has the path line equal to the
 *     encoded path, 5 + N newlines for N signed header names and no CR;
 *     the query line holds only encoded bytes, '=' and '&'; the signature
 *     is 64 lower-case hex digits; no value to send holds CR or LF; and
 *     signing the same request again gives the same result.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "s3/sigv4.h"

#define MAX_FIELDS 64

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int is_upper_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int hexval(unsigned char c)
{
	return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* Check that enc[0..len) is a valid encoding; with orig, that it decodes to
 * orig.  extra lists further bytes allowed as themselves. */
static void check_encoded(const char *enc, size_t len, int keep_slash, const char *extra,
                          const char *orig)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)enc[i], d;

		if (c == '%') {
			CHECK(i + 2 < len);
			CHECK(is_upper_hex((unsigned char)enc[i + 1]) &&
			      is_upper_hex((unsigned char)enc[i + 2]));
			d = (unsigned char)(hexval((unsigned char)enc[i + 1]) * 16 +
			                    hexval((unsigned char)enc[i + 2]));
			/* Never escape what may stay as it is. */
			CHECK(!is_unreserved(d) && !(keep_slash && d == '/'));
			i += 2;
		} else {
			CHECK(is_unreserved(c) || (keep_slash && c == '/') ||
			      (extra && c && strchr(extra, c)));
			d = c;
		}
		if (orig) {
			CHECK(orig[o] != '\0' && (unsigned char)orig[o] == d);
			o++;
		}
	}
	if (orig)
		CHECK(orig[o] == '\0');
}

static void check_uri_encode(const char *s)
{
	for (int keep = 0; keep < 2; keep++) {
		char *enc = sigv4_uri_encode(s, keep);

		if (enc == NULL) {
			CHECK(errno == ENOMEM);
			continue;
		}
		CHECK(strlen(enc) <= 3 * strlen(s));
		check_encoded(enc, strlen(enc), keep, NULL, s);
		free(enc);
	}
}

/* Line n (0-based) of s: start in *b, length returned. */
static size_t line_at(const char *s, int n, const char **b)
{
	const char *e;

	for (; n > 0; n--) {
		s = strchr(s, '\n');
		CHECK(s != NULL);
		s++;
	}
	e = strchr(s, '\n');
	*b = s;
	return e ? (size_t)(e - s) : strlen(s);
}

static void check_result(const struct sigv4_request *req, const struct sigv4_result *res)
{
	size_t newlines = 0, names = 1, len;
	const char *line;
	char *enc;

	for (const char *p = res->canonical_request; *p; p++) {
		CHECK(*p != '\r');
		newlines += *p == '\n';
	}
	for (const char *p = res->signed_headers; *p; p++)
		names += *p == ';';
	CHECK(newlines == names + 5);

	len = line_at(res->canonical_request, 0, &line);
	CHECK(len == strlen(req->method) && memcmp(line, req->method, len) == 0);
	len = line_at(res->canonical_request, 1, &line);
	enc = sigv4_uri_encode(req->path, 1);
	if (enc) {
		CHECK(strlen(enc) == len && memcmp(enc, line, len) == 0);
		free(enc);
	}
	check_encoded(line, len, 1, NULL, req->path);
	len = line_at(res->canonical_request, 2, &line);
	check_encoded(line, len, 0, "=&", NULL);

	CHECK(strlen(res->signature) == 64);
	CHECK(strspn(res->signature, "0123456789abcdef") == 64);
	CHECK(strpbrk(res->authorization, "\r\n") == NULL);
	CHECK(res->n_add >= 2 && res->n_add <= SIGV4_ADD_MAX);
	for (size_t i = 0; i < res->n_add; i++)
		CHECK(strpbrk(res->add[i].value, "\r\n") == NULL);
	CHECK(strcmp(res->add[res->n_add - 1].value, res->authorization) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *fields[MAX_FIELDS], *path;
	size_t n_fields = 0, k = 0, n_query, n_headers = 0;
	struct sigv4_param query[8];
	struct sigv4_header headers[MAX_FIELDS / 2 + 1];
	struct sigv4_credentials creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	                                  NULL};
	struct sigv4_request req = {0};
	struct sigv4_result res, again;
	unsigned flags;
	int err;

	if (size < 1)
		return 0;
	flags = data[0];
	buf = malloc(size + 1); /* data after the flags byte, NUL-terminated */
	path = malloc(size + 2);
	if (buf == NULL || path == NULL)
		goto out;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	for (char *p = buf; n_fields < MAX_FIELDS && p <= buf + size - 1; p += strlen(p) + 1)
		fields[n_fields++] = p;

	/* The encoder on its own, on every field. */
	for (size_t i = 0; i < n_fields; i++)
		check_uri_encode(fields[i]);

	path[0] = '/';
	strcpy(path + 1, k < n_fields ? fields[k++] : "");
	if ((flags & 2) && k < n_fields)
		creds.session_token = fields[k++];
	n_query = (flags >> 4) & 7;
	for (size_t i = 0; i < n_query; i++) {
		query[i].name = k < n_fields ? fields[k++] : "";
		query[i].value = k < n_fields ? fields[k++] : "";
		if ((flags & 8) && strcmp(query[i].value, "\x01") == 0)
			query[i].value = NULL;
	}
	headers[n_headers++] = (struct sigv4_header){"Host", "bucket.s3.amazonaws.com"};
	while (k + 1 < n_fields) {
		headers[n_headers].name = fields[k++];
		headers[n_headers].value = fields[k++];
		n_headers++;
	}

	req = (struct sigv4_request){
	    .method = "PUT",
	    .path = path,
	    .query = query,
	    .n_query = n_query,
	    .headers = headers,
	    .n_headers = n_headers,
	    .payload_hash = SIGV4_UNSIGNED_PAYLOAD,
	    .region = "us-east-1",
	    .service = "s3",
	    .timestamp = 1440938160,
	    .flags = flags & (SIGV4_CONTENT_SHA256 | SIGV4_UNSIGNED_TOKEN),
	};
	err = sigv4_sign(&creds, &req, &res);
	CHECK(err == 0 || err == -EINVAL || err == -ENOMEM);
	if (err)
		goto out;
	check_result(&req, &res);
	if (sigv4_sign(&creds, &req, &again) == 0) {
		CHECK(strcmp(res.canonical_request, again.canonical_request) == 0);
		CHECK(strcmp(res.authorization, again.authorization) == 0);
		sigv4_result_free(&again);
	}
	sigv4_result_free(&res);
out:
	free(path);
	free(buf);
	return 0;
}
