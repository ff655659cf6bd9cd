/*
 * check_sigv4.c - unit tests for backends/s3/sigv4.c.
 *
 * Three groups:
 *
 *   vectors  The AWS signing test suite copied to tests/data/sigv4 (one
 *            directory per case).  main() lists the directory, so a case
 *            added there runs without touching this file; each case's
 *            request.txt is parsed (request line, headers with folded
 *            continuation lines, body), signed, and the canonical request,
 *            string to sign, signature and Authorization value compared
 *            byte for byte with the expected files.  The cases in
 *            skip_table[] expect path normalization, which S3 does not do:
 *            their test checks that the path line is the only difference
 *            and prints "SKIP sigv4/<case>: <reason>", which
 *            tests/run-tests.sh counts as skipped.
 *   s3       The S3 documentation's examples ("Signature Calculations for
 *            the Authorization Header: Transferring Payload in a Single
 *            Chunk") and the S3 specifics the generic suite does not cover:
 *            object keys with ' ', '+', '%', '=', '&' and UTF-8, query
 *            parameters with empty and no values, x-amz-content-sha256,
 *            the session token.
 *   api      Helpers, input validation, the order of the headers to add.
 *
 * The data directory is $CHUNKFS_TEST_DATA/sigv4 ("tests/data" by
 * default, i.e. run from the top of the repository).
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "s3/sigv4.h"
#include "suites.h"

/* ------------------------------------------------------------------------ */
/* Vector cases that do not apply to S3                                     */

/*
 * The suite signs these paths after removing "." and ".." segments and
 * merging slashes, as most AWS services do.  S3 signs the path exactly as
 * sent (a key may contain "a/./b" or "//"), so these expectations are
 * wrong for S3.  Each has a "-unnormalized" twin with the same request and
 * the path kept as sent; those twins run like every other case.
 */

struct skip {
	const char *name;
	const char *reason;
};

#define NORMALIZES "expects path normalization (\"normalize\": true), which S3 does not do"

static const struct skip skip_table[] = {
    {"get-relative-normalized", NORMALIZES ": \"/example/..\" signed as \"/\""},
    {"get-relative-relative-normalized",
     NORMALIZES ": \"/example1/example2/../..\" signed as \"/\""},
    {"get-slash-dot-slash-normalized", NORMALIZES ": \"/./\" signed as \"/\""},
    {"get-slash-normalized", NORMALIZES ": \"//\" signed as \"/\""},
    {"get-slash-pointless-dot-normalized", NORMALIZES ": \"/./example\" signed as \"/example\""},
    {"get-slashes-normalized", NORMALIZES ": \"//example//\" signed as \"/example/\""},
};
#define N_SKIP (sizeof(skip_table) / sizeof(skip_table[0]))

/* How many case directories the shipped copy of the suite has. */
#define VECTORS_SHIPPED 38

/* Filled by main() before the runner forks; read-only in the tests. */
static char data_dir[4096];
static char **cases; /* every case directory, sorted */
static size_t n_cases;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* Whole file as a NUL-terminated string (the caller frees), NULL if absent. */
static char *slurp(const char *dir, const char *name, size_t *lenp)
{
	char path[8192];
	FILE *f;
	char *buf = NULL;
	long len;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	buf = malloc((size_t)len + 1);
	if (buf == NULL)
		goto out;
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[len] = '\0';
	if (lenp)
		*lenp = (size_t)len;
out:
	fclose(f);
	return buf;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Decode %XX escapes in place (the request line of the vectors is encoded). */
static void pct_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
			*o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

#define MAX_ITEMS 32

/* A request.txt taken apart.  Strings point into text or into values[]. */
struct vreq {
	char *text;
	char *method, *path, *body;
	size_t body_len;
	struct sigv4_param query[MAX_ITEMS];
	size_t n_query;
	struct sigv4_header headers[MAX_ITEMS];
	char *values[MAX_ITEMS]; /* header values, malloc'd */
	size_t n_headers;
};

static void vreq_free(struct vreq *r)
{
	for (size_t i = 0; i < r->n_headers; i++)
		free(r->values[i]);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

/*
 * Parse "METHOD target HTTP/1.1\nName:value\n[ continuation\n]...\n\nbody".
 * A continuation line (leading SP or HTAB) is joined to the previous value
 * with one SP, as RFC 9112 says a recipient may replace obs-fold.  Header
 * values are passed on raw, so the signer's trimming is what gets tested.
 */
static void parse_request(char *text, size_t len, struct vreq *r)
{
	char *line, *next, *sp, *q;

	memset(r, 0, sizeof(*r));
	r->text = text;
	next = strchr(text, '\n');
	ck_assert_ptr_nonnull(next);
	*next++ = '\0';

	/* Request line. */
	sp = strchr(text, ' ');
	ck_assert_ptr_nonnull(sp);
	*sp = '\0';
	r->method = text;
	r->path = sp + 1;
	sp = strrchr(r->path, ' ');
	ck_assert_ptr_nonnull(sp);
	ck_assert_str_eq(sp + 1, "HTTP/1.1");
	*sp = '\0';
	q = strchr(r->path, '?');
	if (q) {
		*q++ = '\0';
		while (q && *q) {
			char *amp = strchr(q, '&'), *eq;

			if (amp)
				*amp++ = '\0';
			ck_assert_uint_lt(r->n_query, MAX_ITEMS);
			eq = strchr(q, '=');
			if (eq)
				*eq++ = '\0';
			pct_decode(q);
			if (eq)
				pct_decode(eq);
			r->query[r->n_query].name = q;
			r->query[r->n_query].value = eq;
			r->n_query++;
			q = amp;
		}
	}
	pct_decode(r->path);

	/* Headers, up to an empty line or the end. */
	r->body = text + len;
	while (next && *next) {
		line = next;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line == '\0') {
			r->body = next ? next : text + len;
			break;
		}
		if (*line == ' ' || *line == '\t') {
			char *prev, *joined;

			ck_assert_uint_gt(r->n_headers, 0);
			prev = r->values[r->n_headers - 1];
			joined = malloc(strlen(prev) + strlen(line) + 2);
			ck_assert_ptr_nonnull(joined);
			sprintf(joined, "%s %s", prev, line);
			free(prev);
			r->values[r->n_headers - 1] = joined;
			r->headers[r->n_headers - 1].value = joined;
			continue;
		}
		sp = strchr(line, ':');
		ck_assert_ptr_nonnull(sp);
		*sp = '\0';
		ck_assert_uint_lt(r->n_headers, MAX_ITEMS);
		r->values[r->n_headers] = strdup(sp + 1);
		ck_assert_ptr_nonnull(r->values[r->n_headers]);
		r->headers[r->n_headers].name = line;
		r->headers[r->n_headers].value = r->values[r->n_headers];
		r->n_headers++;
	}
	r->body_len = (size_t)(text + len - r->body);
}

/* The value of header name in a signed-request file, NULL if absent. */
static char *find_header(const char *signed_request, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	for (const char *p = signed_request; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		const char *eol = strchr(p, '\n');
		size_t l = eol ? (size_t)(eol - p) : strlen(p);

		if (l == 0)
			break; /* end of the headers */
		if (l > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
			ck_assert_uint_lt(l - n, outlen);
			memcpy(out, p + n + 1, l - n - 1);
			out[l - n - 1] = '\0';
			return out;
		}
	}
	return NULL;
}

/* Everything needed to sign one vector case. */
struct vcase {
	char dir[8192];
	json_t *ctx;
	struct vreq req;
	struct sigv4_credentials creds;
	struct sigv4_request sreq;
	char payload_hash[65];
};

static const char *ctx_str(json_t *ctx, const char *key)
{
	const char *s = json_string_value(json_object_get(ctx, key));

	ck_assert_msg(s != NULL, "context.json: no string \"%s\"", key);
	return s;
}

static void vcase_load(struct vcase *vc, const char *name)
{
	json_error_t jerr;
	json_t *cred;
	struct tm tm;
	const char *ts, *end;
	char *text;
	size_t len = 0;

	memset(vc, 0, sizeof(*vc));
	snprintf(vc->dir, sizeof(vc->dir), "%s/%s", data_dir, name);
	text = slurp(vc->dir, "request.txt", &len);
	ck_assert_msg(text != NULL, "%s/request.txt: %s", vc->dir, strerror(errno));
	parse_request(text, len, &vc->req);

	snprintf(vc->payload_hash, sizeof(vc->payload_hash), "%s", "");
	ck_assert_int_eq(sigv4_sha256_hex(vc->req.body, vc->req.body_len, vc->payload_hash), 0);

	{
		char path[8300];

		snprintf(path, sizeof(path), "%s/context.json", vc->dir);
		vc->ctx = json_load_file(path, 0, &jerr);
		ck_assert_msg(vc->ctx != NULL, "%s: %s", path, jerr.text);
	}
	cred = json_object_get(vc->ctx, "credentials");
	ck_assert_ptr_nonnull(cred);
	vc->creds.access_key_id = ctx_str(cred, "access_key_id");
	vc->creds.secret_access_key = ctx_str(cred, "secret_access_key");
	vc->creds.session_token = json_string_value(json_object_get(cred, "token"));

	ts = ctx_str(vc->ctx, "timestamp");
	memset(&tm, 0, sizeof(tm));
	end = strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	ck_assert_msg(end != NULL && *end == '\0', "bad timestamp %s", ts);

	vc->sreq = (struct sigv4_request){
	    .method = vc->req.method,
	    .path = vc->req.path,
	    .query = vc->req.query,
	    .n_query = vc->req.n_query,
	    .headers = vc->req.headers,
	    .n_headers = vc->req.n_headers,
	    .payload_hash = vc->payload_hash,
	    .region = ctx_str(vc->ctx, "region"),
	    .service = ctx_str(vc->ctx, "service"),
	    .timestamp = timegm(&tm),
	};
	if (json_is_true(json_object_get(vc->ctx, "sign_body")))
		vc->sreq.flags |= SIGV4_CONTENT_SHA256;
	if (json_is_true(json_object_get(vc->ctx, "omit_session_token")))
		vc->sreq.flags |= SIGV4_UNSIGNED_TOKEN;
}

static void vcase_free(struct vcase *vc)
{
	vreq_free(&vc->req);
	json_decref(vc->ctx);
}

static char *expect_file(const struct vcase *vc, const char *name)
{
	char *s = slurp(vc->dir, name, NULL);

	ck_assert_msg(s != NULL, "%s/%s: %s", vc->dir, name, strerror(errno));
	return s;
}

/* Line n (0-based) of s, copied into out. */
static const char *nth_line(const char *s, int n, char *out, size_t outlen)
{
	const char *e;

	for (; n > 0 && s; n--) {
		s = strchr(s, '\n');
		s = s ? s + 1 : NULL;
	}
	ck_assert_ptr_nonnull(s);
	e = strchr(s, '\n');
	if (e == NULL)
		e = s + strlen(s);
	ck_assert_uint_lt((size_t)(e - s), outlen);
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return out;
}

/* s with line n removed (the caller frees). */
static char *drop_line(const char *s, int n)
{
	char *d = strdup(s), *b = d, *e;

	ck_assert_ptr_nonnull(d);
	for (; n > 0; n--) {
		b = strchr(b, '\n');
		ck_assert_ptr_nonnull(b);
		b++;
	}
	e = strchr(b, '\n');
	ck_assert_ptr_nonnull(e);
	memmove(b, e + 1, strlen(e + 1) + 1);
	return d;
}

/* ------------------------------------------------------------------------ */
/* vectors                                                                  */

static const char *skip_reason(const char *name)
{
	for (size_t i = 0; i < N_SKIP; i++)
		if (strcmp(name, skip_table[i].name) == 0)
			return skip_table[i].reason;
	return NULL;
}

/*
 * A skipped case: check that the reason holds, i.e. the expected canonical
 * request differs from ours only in the path line and our path line is the
 * path as sent, encoded once; then say SKIP.  tests/run-tests.sh counts a
 * test that printed SKIP as skipped, not passed.
 */
static void vector_skip(const char *name, const char *reason)
{
	struct vcase vc;
	struct sigv4_result res;
	char *creq, *ours, *theirs, *enc, line[1024];

	vcase_load(&vc, name);
	creq = expect_file(&vc, "header-canonical-request.txt");
	ck_assert_int_eq(sigv4_sign(&vc.creds, &vc.sreq, &res), 0);

	ck_assert_str_ne(res.canonical_request, creq);
	ours = drop_line(res.canonical_request, 1);
	theirs = drop_line(creq, 1);
	ck_assert_str_eq(ours, theirs);
	enc = sigv4_uri_encode(vc.req.path, 1);
	ck_assert_str_eq(nth_line(res.canonical_request, 1, line, sizeof(line)), enc);

	free(enc);
	free(ours);
	free(theirs);
	free(creq);
	sigv4_result_free(&res);
	vcase_free(&vc);
	printf("SKIP sigv4/%s: %s\n", name, reason);
	fflush(stdout);
}

START_TEST(test_vector)
{
	struct vcase vc;
	struct sigv4_result res;
	char *creq, *sts, *sig, *signed_req, want_auth[2048], got[4096];
	const char *reason = skip_reason(cases[_i]);

	if (reason) {
		vector_skip(cases[_i], reason);
		return;
	}
	vcase_load(&vc, cases[_i]);
	creq = expect_file(&vc, "header-canonical-request.txt");
	sts = expect_file(&vc, "header-string-to-sign.txt");
	sig = expect_file(&vc, "header-signature.txt");
	signed_req = expect_file(&vc, "header-signed-request.txt");
	ck_assert_ptr_nonnull(
	    find_header(signed_req, "Authorization", want_auth, sizeof(want_auth)));

	ck_assert_int_eq(sigv4_sign(&vc.creds, &vc.sreq, &res), 0);
	ck_assert_str_eq(res.canonical_request, creq);
	ck_assert_str_eq(res.string_to_sign, sts);
	ck_assert_str_eq(res.signature, sig);
	ck_assert_str_eq(res.authorization, want_auth);

	/* The headers we tell the caller to add are the ones the signed
	 * request of the suite carries, with the same values. */
	for (size_t i = 0; i < res.n_add; i++) {
		ck_assert_msg(find_header(signed_req, res.add[i].name, got, sizeof(got)) != NULL,
		              "%s: header %s not in the signed request", cases[_i],
		              res.add[i].name);
		ck_assert_str_eq(got, res.add[i].value);
	}

	sigv4_result_free(&res);
	free(creq);
	free(sts);
	free(sig);
	free(signed_req);
	vcase_free(&vc);
}
END_TEST

/* The data is there, and the skip table names no case that is not. */
START_TEST(test_vectors_present)
{
	ck_assert_msg(n_cases >= VECTORS_SHIPPED, "found %zu vector cases in %s, expected %d",
	              n_cases, data_dir, VECTORS_SHIPPED);
	for (size_t i = 0; i < N_SKIP; i++) {
		int found = 0;

		for (size_t k = 0; k < n_cases; k++)
			found |= strcmp(cases[k], skip_table[i].name) == 0;
		ck_assert_msg(found, "skip table entry %s has no directory in %s",
		              skip_table[i].name, data_dir);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* s3: the examples of the S3 API reference                                 */

/* Credentials and time of every example in "Signature Calculations for the
 * Authorization Header: Transferring Payload in a Single Chunk". */
static const struct sigv4_credentials doc_creds = {
    .access_key_id = "AKIAIOSFODNN7EXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
#define DOC_TIME ((time_t)1369353600) /* 2013-05-24T00:00:00Z */
#define DOC_HOST "examplebucket.s3.amazonaws.com"

START_TEST(test_s3_doc_get_object)
{
	const struct sigv4_header h[] = {{"Host", DOC_HOST}, {"Range", "bytes=0-9"}};
	const struct sigv4_request req = {
	    .method = "GET",
	    .path = "/test.txt",
	    .headers = h,
	    .n_headers = 2,
	    .payload_hash = SIGV4_EMPTY_SHA256,
	    .region = "us-east-1",
	    .service = "s3",
	    .timestamp = DOC_TIME,
	    .flags = SIGV4_CONTENT_SHA256,
	};
	struct sigv4_result res;

	ck_assert_int_eq(sigv4_sign(&doc_creds, &req, &res), 0);
	ck_assert_str_eq(res.canonical_request, "GET\n"
	                                        "/test.txt\n"
	                                        "\n"
	                                        "host:examplebucket.s3.amazonaws.com\n"
	                                        "range:bytes=0-9\n"
	                                        "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
	                                        "x-amz-date:20130524T000000Z\n"
	                                        "\n"
	                                        "host;range;x-amz-content-sha256;x-amz-date\n"
	                                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c"
	                                        "a495991b7852b855");
	ck_assert_str_eq(res.string_to_sign,
	                 "AWS4-HMAC-SHA256\n"
	                 "20130524T000000Z\n"
	                 "20130524/us-east-1/s3/aws4_request\n"
	                 "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	ck_assert_str_eq(res.signature,
	                 "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	/* The documentation writes the header without blanks after the
	 * commas; both forms are accepted, the generic suite has the blanks. */
	ck_assert_str_eq(res.authorization,
	                 "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
	                 "s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
	                 "x-amz-date, Signature="
	                 "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	sigv4_result_free(&res);
}
END_TEST

START_TEST(test_s3_doc_put_object)
{
	const char body[] = "Welcome to Amazon S3.";
	char hash[65];
	const struct sigv4_header h[] = {{"Host", DOC_HOST},
	                                 {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
	                                 {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
	struct sigv4_request req = {
	    .method = "PUT",
	    .path = "/test$file.text",
	    .headers = h,
	    .n_headers = 3,
	    .payload_hash = hash,
	    .region = "us-east-1",
	    .service = "s3",
	    .timestamp = DOC_TIME,
	    .flags = SIGV4_CONTENT_SHA256,
	};
	struct sigv4_result res;

	ck_assert_int_eq(sigv4_sha256_hex(body, strlen(body), hash), 0);
	ck_assert_str_eq(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	ck_assert_int_eq(sigv4_sign(&doc_creds, &req, &res), 0);
	ck_assert_str_eq(res.canonical_request,
	                 "PUT\n"
	                 "/test%24file.text\n"
	                 "\n"
	                 "date:Fri, 24 May 2013 00:00:00 GMT\n"
	                 "host:examplebucket.s3.amazonaws.com\n"
	                 "x-amz-content-sha256:"
	                 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
	                 "x-amz-date:20130524T000000Z\n"
	                 "x-amz-storage-class:REDUCED_REDUNDANCY\n"
	                 "\n"
	                 "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
	                 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	ck_assert_str_eq(res.string_to_sign,
	                 "AWS4-HMAC-SHA256\n"
	                 "20130524T000000Z\n"
	                 "20130524/us-east-1/s3/aws4_request\n"
	                 "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
	ck_assert_str_eq(res.signature,
	                 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	sigv4_result_free(&res);
}
END_TEST

/* "?lifecycle": a parameter without a value is signed as "lifecycle=". */
START_TEST(test_s3_doc_get_lifecycle)
{
	const struct sigv4_header h[] = {{"Host", DOC_HOST}};
	const struct sigv4_param q[] = {{"lifecycle", NULL}};
	const struct sigv4_request req = {
	    .method = "GET",
	    .path = "/",
	    .query = q,
	    .n_query = 1,
	    .headers = h,
	    .n_headers = 1,
	    .payload_hash = SIGV4_EMPTY_SHA256,
	    .region = "us-east-1",
	    .service = "s3",
	    .timestamp = DOC_TIME,
	    .flags = SIGV4_CONTENT_SHA256,
	};
	struct sigv4_result res;
	char line[256];

	ck_assert_int_eq(sigv4_sign(&doc_creds, &req, &res), 0);
	ck_assert_str_eq(nth_line(res.canonical_request, 2, line, sizeof(line)), "lifecycle=");
	ck_assert_str_eq(nth_line(res.string_to_sign, 3, line, sizeof(line)),
	                 "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
	ck_assert_str_eq(res.signature,
	                 "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	sigv4_result_free(&res);
}
END_TEST

/* "?max-keys=2&prefix=J", given out of order. */
START_TEST(test_s3_doc_list_objects)
{
	const struct sigv4_header h[] = {{"Host", DOC_HOST}};
	const struct sigv4_param q[] = {{"prefix", "J"}, {"max-keys", "2"}};
	const struct sigv4_request req = {
	    .method = "GET",
	    .path = "/",
	    .query = q,
	    .n_query = 2,
	    .headers = h,
	    .n_headers = 1,
	    .payload_hash = SIGV4_EMPTY_SHA256,
	    .region = "us-east-1",
	    .service = "s3",
	    .timestamp = DOC_TIME,
	    .flags = SIGV4_CONTENT_SHA256,
	};
	struct sigv4_result res;
	char line[256];

	ck_assert_int_eq(sigv4_sign(&doc_creds, &req, &res), 0);
	ck_assert_str_eq(nth_line(res.canonical_request, 2, line, sizeof(line)),
	                 "max-keys=2&prefix=J");
	ck_assert_str_eq(res.signature,
	                 "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	sigv4_result_free(&res);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* s3: keys, queries, headers                                               */

/* Test credentials with a session token, and a request for the tests below
 * to adjust.  Expected signatures were cross-checked with botocore's
 * S3SigV4Auth (1.43) given the same request. */
static const struct sigv4_credentials tok_creds = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    .session_token = "FQoGZXIvYXdzEXAMPLE//token+with/slashes==",
};
#define T0 ((time_t)1440938160) /* 2015-08-30T12:36:00Z */

static struct sigv4_request s3_req(const char *method, const char *path,
                                   const struct sigv4_header *h, size_t nh)
{
	return (struct sigv4_request){
	    .method = method,
	    .path = path,
	    .headers = h,
	    .n_headers = nh,
	    .payload_hash = SIGV4_EMPTY_SHA256,
	    .region = "eu-central-1",
	    .service = "s3",
	    .timestamp = T0,
	    .flags = SIGV4_CONTENT_SHA256,
	};
}

static const struct sigv4_header host_only[] = {{"Host", "s3.eu-central-1.amazonaws.com"}};

/* A key with every character that URL encoders disagree on. */
START_TEST(test_s3_key_special_characters)
{
	struct sigv4_request req =
	    s3_req("GET", "/bucket/dir one/my key+%=&\xc3\xa9\xe2\x82\xac.txt", host_only, 1);
	struct sigv4_result res;

	ck_assert_int_eq(sigv4_sign(&tok_creds, &req, &res), 0);
	ck_assert_str_eq(
	    res.canonical_request,
	    "GET\n"
	    "/bucket/dir%20one/my%20key%2B%25%3D%26%C3%A9%E2%82%AC.txt\n"
	    "\n"
	    "host:s3.eu-central-1.amazonaws.com\n"
	    "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
	    "x-amz-date:20150830T123600Z\n"
	    "x-amz-security-token:FQoGZXIvYXdzEXAMPLE//token+with/slashes==\n"
	    "\n"
	    "host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n" SIGV4_EMPTY_SHA256);
	ck_assert_str_eq(res.signature,
	                 "73d42b2193d17ae5b22ccf8e6b466ada4acc75aa327fcabb5c784cd9a5bfe9f1");
	sigv4_result_free(&res);
}
END_TEST

/* S3 keys may hold ".", ".." and empty segments: signed as given. */
START_TEST(test_s3_path_not_normalized)
{
	static const char *const paths[] = {"/bucket/a/./b", "/bucket/a/../b", "//", "/bucket//x//",
	                                    "/bucket/.",     "/bucket/..",     "/"};
	char line[256];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct sigv4_request req = s3_req("GET", paths[i], host_only, 1);
		char *creq = sigv4_canonical_request(&tok_creds, &req);

		ck_assert_ptr_nonnull(creq);
		ck_assert_str_eq(nth_line(creq, 1, line, sizeof(line)), paths[i]);
		free(creq);
	}
}
END_TEST

/* The path is encoded once: a '%' that looks like an escape is a literal. */
START_TEST(test_s3_path_encoded_once)
{
	struct sigv4_request req = s3_req("GET", "/bucket/a%20b%2Fc", host_only, 1);
	char *creq = sigv4_canonical_request(&tok_creds, &req);
	char line[256];

	ck_assert_ptr_nonnull(creq);
	ck_assert_str_eq(nth_line(creq, 1, line, sizeof(line)), "/bucket/a%2520b%252Fc");
	free(creq);
}
END_TEST

START_TEST(test_s3_query_encoding_and_order)
{
	const struct sigv4_param q[] = {
	    {"prefix", "dir/sub dir/"},
	    {"list-type", "2"},
	    {"delimiter", "/"},
	    {"continuation-token", "a+b=="},
	    {"uploads", NULL},
	    {"empty", ""},
	    {"k", "b"},
	    {"k", "a"},
	    {"aZ", "1"},
	    {"a[", "2"},
	    {"x&y=z", "1&2=3"},
	    {"\xc3\xa9", "\xe2\x82\xac"},
	    {"p/q", "r/s"},
	};
	struct sigv4_request req = s3_req("GET", "/bucket", host_only, 1);
	char *creq;
	char line[1024];

	req.query = q;
	req.n_query = sizeof(q) / sizeof(q[0]);
	creq = sigv4_canonical_request(&tok_creds, &req);
	ck_assert_ptr_nonnull(creq);
	/* Sorted by the encoded name: "a%5B" < "aZ" although '[' > 'Z'. */
	ck_assert_str_eq(nth_line(creq, 2, line, sizeof(line)),
	                 "%C3%A9=%E2%82%AC&a%5B=2&aZ=1&continuation-token=a%2Bb%3D%3D&"
	                 "delimiter=%2F&empty=&k=a&k=b&list-type=2&p%2Fq=r%2Fs&"
	                 "prefix=dir%2Fsub%20dir%2F&uploads=&x%26y%3Dz=1%262%3D3");
	free(creq);
}
END_TEST

START_TEST(test_s3_query_signature)
{
	const struct sigv4_param q[] = {{"uploadId", "a/b+c=="}, {"partNumber", "2"}};
	struct sigv4_request req = s3_req("PUT", "/bucket/big file.bin", host_only, 1);
	struct sigv4_result res;

	req.query = q;
	req.n_query = 2;
	req.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
	ck_assert_int_eq(sigv4_sign(&tok_creds, &req, &res), 0);
	ck_assert_str_eq(res.canonical_request,
	                 "PUT\n"
	                 "/bucket/big%20file.bin\n"
	                 "partNumber=2&uploadId=a%2Fb%2Bc%3D%3D\n"
	                 "host:s3.eu-central-1.amazonaws.com\n"
	                 "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
	                 "x-amz-date:20150830T123600Z\n"
	                 "x-amz-security-token:FQoGZXIvYXdzEXAMPLE//token+with/slashes==\n"
	                 "\n"
	                 "host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n"
	                 "UNSIGNED-PAYLOAD");
	ck_assert_str_eq(res.signature,
	                 "900aacef8f0b2e8d5a41d5cc933335e0f80877cc1c4e5bd77aa26e3a38327310");
	sigv4_result_free(&res);
}
END_TEST

START_TEST(test_s3_header_canonical_form)
{
	const struct sigv4_header h[] = {
	    {"X-Custom", "  a   b\t\tc  "}, {"Host", "s3.eu-central-1.amazonaws.com"},
	    {"x-custom", "second"},         {"Content-Type", "text/plain"},
	    {"X-Amz-Meta-Empty", ""},       {"X-CUSTOM", "\tthird value "},
	};
	struct sigv4_request req = s3_req("PUT", "/bucket/k", h, sizeof(h) / sizeof(h[0]));
	struct sigv4_result res;

	ck_assert_int_eq(sigv4_sign(&tok_creds, &req, &res), 0);
	ck_assert_str_eq(res.canonical_request,
	                 "PUT\n"
	                 "/bucket/k\n"
	                 "\n"
	                 "content-type:text/plain\n"
	                 "host:s3.eu-central-1.amazonaws.com\n"
	                 "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
	                 "x-amz-date:20150830T123600Z\n"
	                 "x-amz-meta-empty:\n"
	                 "x-amz-security-token:FQoGZXIvYXdzEXAMPLE//token+with/slashes==\n"
	                 "x-custom:a b c,second,third value\n"
	                 "\n"
	                 "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-empty;"
	                 "x-amz-security-token;x-custom\n" SIGV4_EMPTY_SHA256);
	ck_assert_str_eq(res.signed_headers, "content-type;host;x-amz-content-sha256;x-amz-date;"
	                                     "x-amz-meta-empty;x-amz-security-token;x-custom");
	sigv4_result_free(&res);
}
END_TEST

/* x-amz-content-sha256 is added, signed and handed back only when asked. */
START_TEST(test_s3_content_sha256)
{
	const struct sigv4_credentials c = {"AKIDEXAMPLE", "secret", NULL};
	struct sigv4_request req = s3_req("GET", "/b/k", host_only, 1);
	struct sigv4_result res;
	const char *hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";

	req.payload_hash = hash;
	ck_assert_int_eq(sigv4_sign(&c, &req, &res), 0);
	ck_assert_ptr_nonnull(
	    strstr(res.canonical_request,
	           "\nx-amz-content-sha256:"
	           "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\n"));
	ck_assert_str_eq(res.signed_headers, "host;x-amz-content-sha256;x-amz-date");
	ck_assert_uint_eq(res.n_add, 3);
	ck_assert_str_eq(res.add[1].name, "X-Amz-Content-SHA256");
	ck_assert_str_eq(res.add[1].value, hash);
	sigv4_result_free(&res);

	req.flags = 0;
	ck_assert_int_eq(sigv4_sign(&c, &req, &res), 0);
	ck_assert_ptr_null(strstr(res.canonical_request, "x-amz-content-sha256"));
	ck_assert_str_eq(res.signed_headers, "host;x-amz-date");
	ck_assert_uint_eq(res.n_add, 2);
	ck_assert_str_eq(res.add[0].name, "X-Amz-Date");
	ck_assert_str_eq(res.add[1].name, "Authorization");
	sigv4_result_free(&res);

	/* Without the flag the caller may sign its own copy. */
	{
		const struct sigv4_header h[] = {{"Host", "h"}, {"X-Amz-Content-SHA256", hash}};

		req.headers = h;
		req.n_headers = 2;
		ck_assert_int_eq(sigv4_sign(&c, &req, &res), 0);
		ck_assert_str_eq(res.signed_headers, "host;x-amz-content-sha256;x-amz-date");
		ck_assert_uint_eq(res.n_add, 2);
		sigv4_result_free(&res);
	}
}
END_TEST

START_TEST(test_s3_session_token)
{
	struct sigv4_request req = s3_req("HEAD", "/b/k", host_only, 1);
	struct sigv4_result res;

	ck_assert_int_eq(sigv4_sign(&tok_creds, &req, &res), 0);
	ck_assert_ptr_nonnull(
	    strstr(res.canonical_request,
	           "\nx-amz-security-token:FQoGZXIvYXdzEXAMPLE//token+with/slashes==\n"));
	ck_assert_ptr_nonnull(
	    strstr(res.authorization,
	           "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "));
	ck_assert_uint_eq(res.n_add, 4);
	ck_assert_str_eq(res.add[1].name, "X-Amz-Security-Token");
	ck_assert_str_eq(res.add[1].value, tok_creds.session_token);
	sigv4_result_free(&res);

	/* SIGV4_UNSIGNED_TOKEN: sent, not signed. */
	req.flags |= SIGV4_UNSIGNED_TOKEN;
	ck_assert_int_eq(sigv4_sign(&tok_creds, &req, &res), 0);
	ck_assert_ptr_null(strstr(res.canonical_request, "x-amz-security-token"));
	ck_assert_str_eq(res.signed_headers, "host;x-amz-content-sha256;x-amz-date");
	ck_assert_str_eq(res.add[1].name, "X-Amz-Security-Token");
	sigv4_result_free(&res);

	/* An empty token is no token. */
	{
		const struct sigv4_credentials c = {"AKIDEXAMPLE", "secret", ""};

		req.flags = 0;
		ck_assert_int_eq(sigv4_sign(&c, &req, &res), 0);
		ck_assert_str_eq(res.signed_headers, "host;x-amz-date");
		ck_assert_uint_eq(res.n_add, 2);
		sigv4_result_free(&res);
	}
}
END_TEST

/* Every input is covered by the signature. */
START_TEST(test_s3_every_input_changes_signature)
{
	const struct sigv4_header h2[] = {{"Host", "s3.eu-central-1.amazonaws.com"},
	                                  {"Range", "bytes=0-9"}};
	const struct sigv4_param q[] = {{"versionId", "1"}};
	const struct sigv4_credentials other_secret = {tok_creds.access_key_id, "other",
	                                               tok_creds.session_token};
	const struct sigv4_credentials other_token = {tok_creds.access_key_id,
	                                              tok_creds.secret_access_key, "other"};
	struct sigv4_request base = s3_req("GET", "/b/k", h2, 2), r;
	char *ref, *sig;

	ref = sigv4_signature(&tok_creds, &base);
	ck_assert_ptr_nonnull(ref);
	for (int i = 0; i < 9; i++) {
		const struct sigv4_credentials *c = &tok_creds;

		r = base;
		switch (i) {
		case 0:
			r.method = "HEAD";
			break;
		case 1:
			r.path = "/b/K";
			break;
		case 2:
			r.query = q;
			r.n_query = 1;
			break;
		case 3:
			r.n_headers = 1;
			break;
		case 4:
			r.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
			break;
		case 5:
			r.region = "us-east-1";
			break;
		case 6:
			r.timestamp++;
			break;
		case 7:
			c = &other_secret;
			break;
		case 8:
			c = &other_token;
			break;
		}
		sig = sigv4_signature(c, &r);
		ck_assert_ptr_nonnull(sig);
		ck_assert_msg(strcmp(sig, ref) != 0, "change %d left the signature alone", i);
		free(sig);
	}
	free(ref);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* api                                                                      */

START_TEST(test_uri_encode_every_byte)
{
	for (int c = 1; c < 256; c++) {
		char in[2] = {(char)c, 0}, want[4];
		int unreserved = isalnum(c) && c < 128;

		unreserved = unreserved || c == '-' || c == '.' || c == '_' || c == '~';
		for (int slash = 0; slash < 2; slash++) {
			char *got = sigv4_uri_encode(in, slash);

			if (unreserved || (slash && c == '/'))
				snprintf(want, sizeof(want), "%c", c);
			else
				snprintf(want, sizeof(want), "%%%02X", c);
			ck_assert_ptr_nonnull(got);
			ck_assert_str_eq(got, want);
			free(got);
		}
	}
}
END_TEST

START_TEST(test_uri_encode_strings)
{
	static const struct {
		const char *in;
		int slash;
		const char *out;
	} t[] = {
	    {"/bucket/my key+%.txt", 1, "/bucket/my%20key%2B%25.txt"},
	    {"/bucket/my key+%.txt", 0, "%2Fbucket%2Fmy%20key%2B%25.txt"},
	    {"a=b&c", 0, "a%3Db%26c"},
	    {"caf\xc3\xa9", 1, "caf%C3%A9"},
	    {"-._~AZaz09", 0, "-._~AZaz09"},
	    {"!'()*", 0, "%21%27%28%29%2A"},
	    {"", 1, ""},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *got = sigv4_uri_encode(t[i].in, t[i].slash);

		ck_assert_ptr_nonnull(got);
		ck_assert_str_eq(got, t[i].out);
		free(got);
	}
	errno = 0;
	ck_assert_ptr_null(sigv4_uri_encode(NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_amz_date)
{
	char out[17];

	ck_assert_int_eq(sigv4_amz_date(0, out), 0);
	ck_assert_str_eq(out, "19700101T000000Z");
	ck_assert_int_eq(sigv4_amz_date(1440938160, out), 0);
	ck_assert_str_eq(out, "20150830T123600Z");
	ck_assert_int_eq(sigv4_amz_date(951825599, out), 0);
	ck_assert_str_eq(out, "20000229T115959Z");
	ck_assert_int_eq(sigv4_amz_date((time_t)253402300799LL, out), 0);
	ck_assert_str_eq(out, "99991231T235959Z");
	ck_assert_int_eq(sigv4_amz_date((time_t)253402300800LL, out), -EINVAL);
}
END_TEST

START_TEST(test_sha256_hex)
{
	char out[65];

	ck_assert_int_eq(sigv4_sha256_hex("", 0, out), 0);
	ck_assert_str_eq(out, SIGV4_EMPTY_SHA256);
	ck_assert_int_eq(sigv4_sha256_hex("abc", 3, out), 0);
	ck_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

/* The derived key of the AWS General Reference example (IAM, 2015-08-30). */
START_TEST(test_derive_key)
{
	unsigned char key[SIGV4_KEY_LEN];
	char hex[2 * SIGV4_KEY_LEN + 1];

	ck_assert_int_eq(sigv4_derive_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830",
	                                  "us-east-1", "iam", key),
	                 0);
	for (int i = 0; i < SIGV4_KEY_LEN; i++)
		sprintf(hex + 2 * i, "%02x", key[i]);
	ck_assert_str_eq(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
	ck_assert_int_eq(sigv4_derive_key("s", "2015083", "us-east-1", "s3", key), -EINVAL);
	ck_assert_int_eq(sigv4_derive_key("s", "2015083x", "us-east-1", "s3", key), -EINVAL);
	ck_assert_int_eq(sigv4_derive_key("", "20150830", "us-east-1", "s3", key), -EINVAL);
	ck_assert_int_eq(sigv4_derive_key("s", "20150830", "us/east", "s3", key), -EINVAL);
}
END_TEST

/* The headers to add come in a fixed order, Authorization last. */
START_TEST(test_add_headers)
{
	struct sigv4_request req = s3_req("GET", "/b/k", host_only, 1);
	struct sigv4_result res;
	char *line;

	ck_assert_int_eq(sigv4_sign(&tok_creds, &req, &res), 0);
	ck_assert_uint_eq(res.n_add, 4);
	ck_assert_str_eq(res.add[0].name, "X-Amz-Date");
	ck_assert_str_eq(res.add[0].value, "20150830T123600Z");
	ck_assert_str_eq(res.amz_date, "20150830T123600Z");
	ck_assert_str_eq(res.add[1].name, "X-Amz-Security-Token");
	ck_assert_str_eq(res.add[2].name, "X-Amz-Content-SHA256");
	ck_assert_str_eq(res.add[2].value, SIGV4_EMPTY_SHA256);
	ck_assert_str_eq(res.add[3].name, "Authorization");
	ck_assert_str_eq(res.add[3].value, res.authorization);
	line = sigv4_header_line(&res.add[0]);
	ck_assert_str_eq(line, "X-Amz-Date: 20150830T123600Z");
	free(line);
	sigv4_result_free(&res);
	ck_assert_ptr_null(res.canonical_request);
	ck_assert_uint_eq(res.n_add, 0);
	sigv4_result_free(&res); /* twice is harmless */
}
END_TEST

/* Each single-piece function returns what sigv4_sign() does. */
START_TEST(test_pieces)
{
	struct sigv4_request req = s3_req("DELETE", "/b/some key", host_only, 1);
	struct sigv4_result res;
	char *s;

	ck_assert_int_eq(sigv4_sign(&tok_creds, &req, &res), 0);
	s = sigv4_canonical_request(&tok_creds, &req);
	ck_assert_str_eq(s, res.canonical_request);
	free(s);
	s = sigv4_string_to_sign(&tok_creds, &req);
	ck_assert_str_eq(s, res.string_to_sign);
	free(s);
	s = sigv4_signature(&tok_creds, &req);
	ck_assert_str_eq(s, res.signature);
	free(s);
	s = sigv4_authorization(&tok_creds, &req);
	ck_assert_str_eq(s, res.authorization);
	free(s);
	sigv4_result_free(&res);
}
END_TEST

/* Malformed input is refused with -EINVAL, and nothing is left to free. */
START_TEST(test_rejects)
{
	const struct sigv4_credentials good = {"AKIDEXAMPLE", "secret", "token"};
	const struct sigv4_credentials bad_creds[] = {
	    {NULL, "secret", NULL},     {"", "secret", NULL},
	    {"AKID/X", "secret", NULL}, {"AKID,X", "secret", NULL},
	    {"AKID X", "secret", NULL}, {"AKIDEXAMPLE", NULL, NULL},
	    {"AKIDEXAMPLE", "", NULL},  {"AKIDEXAMPLE", "s", "tok\nen"},
	};
	static const struct sigv4_header no_host[] = {{"Range", "bytes=0-1"}};
	static const struct sigv4_header bad_headers[][2] = {
	    {{"Host", "h"}, {"X-A", "a\r\nX-Injected: 1"}},
	    {{"Host", "h"}, {"X-A", "a\nb"}},
	    {{"Host", "h"}, {"X-A", "a\x01"}},
	    {{"Host", "h"}, {"X A", "a"}},
	    {{"Host", "h"}, {"X-A:", "a"}},
	    {{"Host", "h"}, {"", "a"}},
	    {{"Host", "h"}, {NULL, "a"}},
	    {{"Host", "h"}, {"X-A", NULL}},
	    {{"Host", "h"}, {"Authorization", "x"}},
	    {{"Host", "h"}, {"X-Amz-Date", "20150830T123600Z"}},
	    {{"Host", "h"}, {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}},
	    {{"Host", "h"}, {"X-Amz-Security-Token", "token"}},
	};
	const struct sigv4_param null_name[] = {{NULL, "v"}};
	struct sigv4_request req, base = s3_req("GET", "/b/k", host_only, 1);
	struct sigv4_result res;

	for (size_t i = 0; i < sizeof(bad_creds) / sizeof(bad_creds[0]); i++) {
		ck_assert_int_eq(sigv4_sign(&bad_creds[i], &base, &res), -EINVAL);
		ck_assert_ptr_null(res.canonical_request);
	}
	for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
		req = base;
		req.headers = bad_headers[i];
		req.n_headers = 2;
		ck_assert_msg(sigv4_sign(&good, &req, &res) == -EINVAL, "bad header %zu accepted",
		              i);
	}
	for (int i = 0; i < 17; i++) {
		req = base;
		switch (i) {
		case 0:
			req.headers = no_host;
			break;
		case 1:
			req.n_headers = 0;
			break;
		case 2:
			req.path = NULL;
			break;
		case 3:
			req.path = "b/k";
			break;
		case 4:
			req.path = "";
			break;
		case 5:
			req.method = NULL;
			break;
		case 6:
			req.method = "GE T";
			break;
		case 7:
			req.payload_hash = NULL;
			break;
		case 8:
			req.payload_hash = "abc";
			break;
		case 9:
			req.payload_hash =
			    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855x";
			break;
		case 10:
			req.payload_hash = "unsigned-payload";
			break;
		case 11:
			req.region = "us/east-1";
			break;
		case 12:
			req.region = "";
			break;
		case 13:
			req.service = NULL;
			break;
		case 14:
			req.query = null_name;
			req.n_query = 1;
			break;
		case 15:
			req.query = NULL;
			req.n_query = 1;
			break;
		case 16:
			req.timestamp = (time_t)253402300800LL;
			break;
		}
		ck_assert_msg(sigv4_sign(&good, &req, &res) == -EINVAL, "bad request %d accepted",
		              i);
		ck_assert_ptr_null(res.authorization);
	}
	ck_assert_int_eq(sigv4_sign(NULL, &base, &res), -EINVAL);
	ck_assert_int_eq(sigv4_sign(&good, NULL, &res), -EINVAL);
	ck_assert_int_eq(sigv4_sign(&good, &base, NULL), -EINVAL);
	errno = 0;
	ck_assert_ptr_null(sigv4_authorization(&good, NULL));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List the case directories (those holding a request.txt) into cases[]. */
static void scan_vectors(void)
{
	const char *base = getenv("CHUNKFS_TEST_DATA");
	size_t cap = 0;
	DIR *d;
	struct dirent *e;

	snprintf(data_dir, sizeof(data_dir), "%s/sigv4", base && *base ? base : "tests/data");
	d = opendir(data_dir);
	if (d == NULL) {
		fprintf(stderr, "check_sigv4: %s: %s\n", data_dir, strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char path[8192];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/request.txt", data_dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (n_cases == cap) {
			cap = cap ? 2 * cap : 64;
			cases = realloc(cases, cap * sizeof(*cases));
			if (cases == NULL)
				abort();
		}
		cases[n_cases] = strdup(e->d_name);
		if (cases[n_cases] == NULL)
			abort();
		n_cases++;
	}
	closedir(d);
	if (n_cases)
		qsort(cases, n_cases, sizeof(*cases), cmp_str);
}

static Suite *sigv4_suite(void)
{
	Suite *s = suite_create("sigv4");
	TCase *tc;

	tc = tcase_create("vectors");
	tcase_add_test(tc, test_vectors_present);
	tcase_add_loop_test(tc, test_vector, 0, (int)n_cases);
	suite_add_tcase(s, tc);

	tc = tcase_create("s3");
	tcase_add_test(tc, test_s3_doc_get_object);
	tcase_add_test(tc, test_s3_doc_put_object);
	tcase_add_test(tc, test_s3_doc_get_lifecycle);
	tcase_add_test(tc, test_s3_doc_list_objects);
	tcase_add_test(tc, test_s3_key_special_characters);
	tcase_add_test(tc, test_s3_path_not_normalized);
	tcase_add_test(tc, test_s3_path_encoded_once);
	tcase_add_test(tc, test_s3_query_encoding_and_order);
	tcase_add_test(tc, test_s3_query_signature);
	tcase_add_test(tc, test_s3_header_canonical_form);
	tcase_add_test(tc, test_s3_content_sha256);
	tcase_add_test(tc, test_s3_session_token);
	tcase_add_test(tc, test_s3_every_input_changes_signature);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_uri_encode_every_byte);
	tcase_add_test(tc, test_uri_encode_strings);
	tcase_add_test(tc, test_amz_date);
	tcase_add_test(tc, test_sha256_hex);
	tcase_add_test(tc, test_derive_key);
	tcase_add_test(tc, test_add_headers);
	tcase_add_test(tc, test_pieces);
	tcase_add_test(tc, test_rejects);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed;

	scan_vectors();
	failed = suites_run(sigv4_suite());
	for (size_t i = 0; i < n_cases; i++)
		free(cases[i]);
	free(cases);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
