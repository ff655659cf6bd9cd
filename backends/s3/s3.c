/*
 * s3.c - the S3 backend.
 *
 * Every op becomes one or a few S3 requests, made by s3_do(): build the
 * URL for the addressing style, sign with SigV4 (fresh credentials and
 * time on every attempt), perform with http.c, and decide what a failure
 * means.  The retry policy and the status/code -> errno table sit together
 * below, so what is retried and what is reported are read in one place.
 *
 * Keys: the backend's key K is the object PREFIX + K.  Listing strips the
 * prefix back off.
 *
 *   stat    HEAD                      read    GET with Range (If-Match etag)
 *   save    PUT, or multipart upload  remove  HEAD then DELETE (S3 answers
 *   list    ListObjectsV2                     204 for missing keys)
 *   copy    PUT with x-amz-copy-source (CopyObject)
 *
 * Addressing: path style (http://host/bucket/key) for custom endpoints and
 * bucket names with dots, virtual-hosted (https://bucket.s3.REGION.
 * amazonaws.com/key) otherwise; -o path_style / -o virtual_hosted force it.
 */
#include "s3_i.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "creds.h"
#include "http.h"
#include "log.h"
#include "opts.h"
#include "s3xml.h"
#include "sigv4.h"

/* --- options ------------------------------------------------------------ */

/* More retries than this are a typo, and past UINT_MAX - 1 the count of
 * attempts would wrap to 0. */
#define S3_MAX_RETRIES 100

#define S3OPT(t, p, v)                                                                             \
	{                                                                                          \
		t, offsetof(struct s3_opts, p), v                                                  \
	}
static const struct fuse_opt s3_opt_spec[] = {
    S3OPT("region=%s", region, 0),
    S3OPT("endpoint=%s", endpoint, 0),
    S3OPT("ca_bundle=%s", ca_bundle, 0),
    S3OPT("profile=%s", profile, 0),
    S3OPT("credentials_file=%s", credentials_file, 0),
    S3OPT("path_style", path_style, 1),
    S3OPT("virtual_hosted", virtual_hosted, 1),
    S3OPT("unsigned_payload", unsigned_payload, 1),
    S3OPT("anonymous", anonymous, 1),
    S3OPT("retries=%u", retries, 0),
    S3OPT("connect_timeout=%u", connect_timeout, 0),
    S3OPT("read_timeout=%u", read_timeout, 0),
    S3OPT("request_timeout=%u", request_timeout, 0),
    S3OPT("part_size_mb=%u", part_size_mb, 0),
    S3OPT("max_copy_mb=%u", max_copy_mb, 0),
    S3OPT("upload_concurrency=%u", upload_concurrency, 0),
    S3OPT("storage_class=%s", storage_class, 0),
    S3OPT("acl=%s", acl, 0),
    S3OPT("expected_bucket_owner=%s", expected_owner, 0),
    S3OPT("requester_pays", requester_pays, 1),
    FUSE_OPT_END,
};

void s3_opts_init(struct s3_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->retries = 6;
	o->connect_timeout = 5;
	o->read_timeout = 30;
	o->request_timeout = 60;
	o->part_size_mb = 16;
	o->upload_concurrency = 8;
}

/* S3's canned ACLs (x-amz-acl). */
static const char *const canned_acls[] = {
    "private",       "public-read",       "public-read-write",         "authenticated-read",
    "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control", NULL,
};

/* A storage class name as S3 spells them: upper case, digits and '_'.
 * Not a fixed list: S3-compatible stores name classes of their own. */
static int storage_class_valid(const char *v)
{
	size_t n = strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

	return n > 0 && n <= 64 && v[n] == '\0';
}

static int acl_valid(const char *v)
{
	for (size_t i = 0; canned_acls[i] != NULL; i++) {
		if (strcmp(v, canned_acls[i]) == 0)
			return 1;
	}
	return 0;
}

/* An AWS account id: exactly 12 digits. */
static int account_id_valid(const char *v)
{
	return strlen(v) == 12 && strspn(v, "0123456789") == 12;
}

/* Refuse -o values S3 would refuse, with one sentence each.  0 or -1. */
static int check_header_opts(const struct s3_opts *o)
{
	const struct {
		const char *name, *value;
		int (*valid)(const char *v);
		const char *what;
	} checks[] = {
	    {"storage_class", o->storage_class, storage_class_valid,
	     "not a storage class name; give one such as STANDARD, STANDARD_IA, "
	     "INTELLIGENT_TIERING, ONEZONE_IA or GLACIER_IR"},
	    {"acl", o->acl, acl_valid,
	     "not a canned ACL; give private, public-read, public-read-write, "
	     "authenticated-read, aws-exec-read, bucket-owner-read or bucket-owner-full-control"},
	    {"expected_bucket_owner", o->expected_owner, account_id_valid,
	     "not an AWS account id; give the bucket owner's 12-digit account id"},
	};

	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		if (checks[i].value != NULL && !checks[i].valid(checks[i].value)) {
			fprintf(stderr, "chunkfs: -o %s=%s: %s\n", checks[i].name, checks[i].value,
			        checks[i].what);
			return -1;
		}
	}
	return 0;
}

int s3_opts_parse(struct fuse_args *args, struct s3_opts *o)
{
	if (opts_parse(args, o, s3_opt_spec, NULL) < 0)
		return -1;
	if (o->retries > S3_MAX_RETRIES) {
		fprintf(stderr, "chunkfs: -o retries=%u: too many (at most %u)\n", o->retries,
		        S3_MAX_RETRIES);
		return -1;
	}
	return check_header_opts(o);
}

void s3_opts_usage(FILE *out)
{
	fprintf(
	    out,
	    "S3 options (SOURCE s3://BUCKET[/PREFIX]):\n"
	    "    -o region=REGION       bucket region (else AWS_REGION, AWS_DEFAULT_REGION,\n"
	    "                           us-east-1; corrected from the server's answer)\n"
	    "    -o endpoint=URL        S3-compatible endpoint (else AWS_ENDPOINT_URL_S3,\n"
	    "                           AWS_ENDPOINT_URL; default AWS)\n"
	    "    -o path_style          path-style URLs (default for custom endpoints)\n"
	    "    -o virtual_hosted      virtual-hosted URLs (default for AWS)\n"
	    "    -o unsigned_payload    over plain http, send uploaded data as UNSIGNED-PAYLOAD\n"
	    "                           instead of signing its SHA-256 (faster; the data is\n"
	    "                           then not covered by the signature; https always\n"
	    "                           sends it unsigned, TLS protects it)\n"
	    "    -o ca_bundle=FILE      CA certificates for https (else AWS_CA_BUNDLE)\n"
	    "    -o profile=NAME        profile in the shared credentials files\n"
	    "    -o credentials_file=F  shared credentials file to read\n"
	    "    -o anonymous           no credentials (public buckets)\n"
	    "    -o retries=N           retries of a failed request: N + 1 attempts at most\n"
	    "                           (default 6)\n"
	    "    -o connect_timeout=S   seconds to connect (default 5)\n"
	    "    -o read_timeout=S      seconds under 1 KiB/s before a retry (default 30)\n"
	    "    -o request_timeout=S   longest a request may take: S plus 4 s per MiB it\n"
	    "                           carries (default 60), then it is retried\n"
	    "    -o part_size_mb=N      multipart upload part size (default 16)\n"
	    "    -o max_copy_mb=N       objects larger than this are copied (rename) in parts\n"
	    "                           with UploadPartCopy (default 5120, S3's limit)\n"
	    "    -o upload_concurrency=N  parts uploaded in parallel (default 8)\n"
	    "    -o storage_class=CLASS storage class of the objects written (STANDARD,\n"
	    "                           STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR, ...)\n"
	    "    -o acl=CANNED          canned ACL of the objects written (private,\n"
	    "                           bucket-owner-full-control, ...)\n"
	    "    -o requester_pays      accept the charges of a requester-pays bucket\n"
	    "    -o expected_bucket_owner=ID  refuse the bucket unless account ID owns it\n"
	    "  Credentials: environment, web identity, ~/.aws files, container and\n"
	    "  instance metadata, in the AWS SDKs' order; never on the command line.\n");
}

void s3_opts_free(struct s3_opts *o)
{
	free(o->region);
	free(o->endpoint);
	free(o->ca_bundle);
	free(o->profile);
	free(o->credentials_file);
	free(o->storage_class);
	free(o->acl);
	free(o->expected_owner);
	memset(o, 0, sizeof(*o));
}

/* --- statistics ----------------------------------------------------------- */

static void count(struct s3 *s3, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&s3->stats_lock);
	*field += n;
	pthread_mutex_unlock(&s3->stats_lock);
}

void s3_backend_get_stats(struct backend *b, struct s3_stats *out)
{
	struct s3 *s3 = (struct s3 *)b;

	pthread_mutex_lock(&s3->stats_lock);
	*out = s3->stats;
	pthread_mutex_unlock(&s3->stats_lock);
}

/* --- one request, with retries -------------------------------------------- */

/* An answer slower than this (bytes a second) for read_timeout seconds is
 * given up; and every request must go at least S3_FLOOR_RATE on average
 * to finish within its deadline (request_timeout plus 4 s per MiB). */
#define S3_LOW_SPEED  1024
#define S3_FLOOR_RATE (256 * 1024)

/*
 * The one table that says what an S3 answer means: retry it, or which
 * errno it is.  Codes are looked up first, then the status.
 */
static const struct {
	const char *code;
	long status;
	int retry;
	int err;
} answers[] = {
    {"SlowDown", 0, 1, -EIO},
    {"RequestTimeout", 0, 1, -EIO},
    {"InternalError", 0, 1, -EIO},
    {"ServiceUnavailable", 0, 1, -EIO},
    {"Throttling", 0, 1, -EIO},
    {"RequestTimeTooSkewed", 0, 1, -EIO},
    {"NoSuchKey", 0, 0, -ENOENT},
    {"NoSuchBucket", 0, 0, -ENOENT},
    {"NoSuchUpload", 0, 0, -ENOENT},
    {"AccessDenied", 0, 0, -EACCES},
    {"InvalidAccessKeyId", 0, 0, -EACCES},
    {"SignatureDoesNotMatch", 0, 0, -EACCES},
    {"ExpiredToken", 0, 1, -EACCES}, /* credentials are re-read on retry */
    {"InvalidToken", 0, 0, -EACCES},
    {"EntityTooLarge", 0, 0, -EFBIG},
    {"KeyTooLongError", 0, 0, -ENAMETOOLONG},
    {"PreconditionFailed", 0, 0, -ESTALE},
    {"InvalidRange", 0, 0, -ERANGE},
    {"NotImplemented", 0, 0, -ENOTSUP},
    {"QuotaExceeded", 0, 0, -EDQUOT},
    {NULL, 429, 1, -EIO},
    {NULL, 500, 1, -EIO},
    {NULL, 502, 1, -EIO},
    {NULL, 503, 1, -EIO},
    {NULL, 504, 1, -EIO},
    {NULL, 400, 0, -EINVAL},
    {NULL, 401, 0, -EACCES},
    {NULL, 403, 0, -EACCES},
    {NULL, 404, 0, -ENOENT},
    {NULL, 405, 0, -ENOTSUP},
    {NULL, 409, 0, -EBUSY},
    {NULL, 412, 0, -ESTALE},
    {NULL, 416, 0, -ERANGE},
    {NULL, 501, 0, -ENOTSUP},
    {NULL, 507, 0, -ENOSPC},
};

static void classify(long status, const char *code, int *retry, int *err)
{
	size_t n = sizeof(answers) / sizeof(answers[0]);

	for (size_t i = 0; i < n && code != NULL && *code; i++) {
		if (answers[i].code != NULL && strcmp(answers[i].code, code) == 0) {
			*retry = answers[i].retry;
			*err = answers[i].err;
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (answers[i].code == NULL && answers[i].status == status) {
			*retry = answers[i].retry;
			*err = answers[i].err;
			return;
		}
	}
	*retry = status >= 500;
	*err = -EIO;
}

/* Sleep before attempt n (1, 2, ...): full jitter, 100 ms doubling, 5 s cap. */
static void backoff(unsigned attempt)
{
	unsigned cap_ms = 100u << (attempt < 6 ? attempt : 6);
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&attempt ^ attempt;
	unsigned ms = (unsigned)(rand_r(&seed) % (cap_ms < 5000 ? cap_ms : 5000));
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Hex SHA-256 of the request body (read from the source when there is one). */
static int payload_hash(const struct s3_req *r, char out[65])
{
	EVP_MD_CTX *ctx;
	unsigned char md[32];
	char *buf = NULL;
	int ret = 0;

	if (r->src == NULL) {
		sigv4_sha256_hex(r->body ? r->body : "", r->body_len, out);
		return 0;
	}
	ctx = EVP_MD_CTX_new();
	buf = malloc(1 << 20);
	if (ctx == NULL || buf == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t done = 0; done < r->src_len;) {
		size_t n = r->src_len - done < (1 << 20) ? (size_t)(r->src_len - done) : (1 << 20);

		ret = r->src->read(r->src, r->src_off + done, buf, n);
		if (ret < 0)
			goto out;
		EVP_DigestUpdate(ctx, buf, n);
		done += n;
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return ret;
}

/* The raw (unencoded) request path for a key or the bucket. */
static char *request_path(struct s3 *s3, const char *key)
{
	char *path;
	int n;

	if (s3->path_style)
		n = key ? asprintf(&path, "/%s/%s%s", s3->bucket, s3->prefix, key)
		        : asprintf(&path, "/%s", s3->bucket);
	else
		n = key ? asprintf(&path, "/%s%s", s3->prefix, key) : asprintf(&path, "/");
	return n < 0 ? NULL : path;
}

static char *build_url(struct s3 *s3, const char *path, const struct s3_req *r)
{
	char *epath = sigv4_uri_encode(path, 1), *url = NULL;
	size_t len, cap;

	if (epath == NULL)
		return NULL;
	cap = strlen(s3->origin) + strlen(epath) + 2;
	for (size_t i = 0; i < r->n_query; i++)
		cap += 3 * (strlen(r->query[i].name) +
		            (r->query[i].value ? strlen(r->query[i].value) : 0)) +
		       2;
	url = malloc(cap);
	if (url == NULL)
		goto out;
	len = (size_t)sprintf(url, "%s%s", s3->origin, epath);
	for (size_t i = 0; i < r->n_query; i++) {
		char *en = sigv4_uri_encode(r->query[i].name, 0);
		char *ev = sigv4_uri_encode(r->query[i].value ? r->query[i].value : "", 0);

		if (en == NULL || ev == NULL) {
			free(en);
			free(ev);
			free(url);
			url = NULL;
			goto out;
		}
		len += (size_t)sprintf(url + len, "%c%s%s%s", i ? '&' : '?', en,
		                       r->query[i].value ? "=" : "", ev);
		free(en);
		free(ev);
	}
out:
	free(epath);
	return url;
}

const char *const s3_op_names[S3_OPS] = {"get", "head", "put", "post", "delete", "list", "copy"};

static enum s3_op op_index(const char *op)
{
	static const char *const methods[S3_OPS] = {"GET",    "HEAD", "PUT", "POST",
	                                            "DELETE", "LIST", "COPY"};

	for (int i = 0; i < S3_OPS; i++) {
		if (strcmp(op, methods[i]) == 0)
			return (enum s3_op)i;
	}
	return S3_COPY;
}

/* Count one attempt's duration in its type's histogram. */
static void count_latency(struct s3 *s3, const char *op, struct timespec t0)
{
	struct timespec t1;
	int64_t us;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
	pthread_mutex_lock(&s3->stats_lock);
	histogram_add(&s3->stats.latency[op_index(op)], us > 0 ? (uint64_t)us : 0);
	pthread_mutex_unlock(&s3->stats_lock);
}

static uint64_t *op_counter(struct s3 *s3, const char *op)
{
	if (strcmp(op, "GET") == 0)
		return &s3->stats.get;
	if (strcmp(op, "HEAD") == 0)
		return &s3->stats.head;
	if (strcmp(op, "PUT") == 0)
		return &s3->stats.put;
	if (strcmp(op, "POST") == 0)
		return &s3->stats.post;
	if (strcmp(op, "DELETE") == 0)
		return &s3->stats.del;
	if (strcmp(op, "LIST") == 0)
		return &s3->stats.list;
	return &s3->stats.copy;
}

/*
 * Build "Name: value" lines for every header of one attempt: Host, the
 * request's own, and what the signer adds.  The caller frees lines[0..n).
 */
/* Headers every request carries: -o requester_pays, -o expected_bucket_owner.
 * Fills at most MAX_BUCKET_HEADERS of h; returns how many. */
static size_t bucket_headers(const struct s3 *s3, struct sigv4_header *h)
{
	size_t n = 0;

	if (s3->requester_pays)
		h[n++] = (struct sigv4_header){"x-amz-request-payer", "requester"};
	if (s3->expected_owner != NULL)
		h[n++] = (struct sigv4_header){"x-amz-expected-bucket-owner", s3->expected_owner};
	return n;
}

/*
 * Build "Name: value" lines for every header of one attempt: Host, the
 * request's own, the bucket's, and what the signer adds (all signed).  The
 * caller frees lines[0..n).
 */
static int sign_headers(struct s3 *s3, const struct s3_req *r, const char *path, const char *hash,
                        char **lines, size_t *n)
{
	struct sigv4_header hdrs[1 + MAX_EXTRA_HEADERS + MAX_BUCKET_HEADERS];
	size_t n_hdrs = 1 + r->n_headers;
	struct sigv4_request sreq;
	struct sigv4_result res;
	struct creds c = {0};
	int ret = 0;

	*n = 0;
	hdrs[0] = (struct sigv4_header){"Host", s3->host};
	memcpy(hdrs + 1, r->headers, r->n_headers * sizeof(hdrs[0]));
	n_hdrs += bucket_headers(s3, hdrs + n_hdrs);
	for (size_t i = 1; i < n_hdrs; i++) {
		if (asprintf(&lines[(*n)++], "%s: %s", hdrs[i].name, hdrs[i].value) < 0)
			return -ENOMEM;
	}
	if (creds_anonymous(s3->creds))
		return 0;
	ret = creds_get(s3->creds, &c);
	if (ret < 0)
		return ret;
	sreq = (struct sigv4_request){
	    .method = r->method,
	    .path = path,
	    .query = r->query,
	    .n_query = r->n_query,
	    .headers = hdrs,
	    .n_headers = n_hdrs,
	    .payload_hash = hash,
	    .region = s3->region,
	    .service = "s3",
	    .timestamp = time(NULL),
	    .flags = SIGV4_CONTENT_SHA256,
	};
	ret = sigv4_sign(
	    &(struct sigv4_credentials){c.access_key_id, c.secret_access_key, c.session_token},
	    &sreq, &res);
	creds_free(&c);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < res.n_add && ret == 0; i++) {
		lines[*n] = sigv4_header_line(&res.add[i]);
		if (lines[*n] == NULL)
			ret = -ENOMEM;
		else
			(*n)++;
	}
	sigv4_result_free(&res);
	return ret;
}

static void free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* Authorization and the token are secrets: wipe before freeing. */
		memset(lines[i], 0, strlen(lines[i]));
		free(lines[i]);
	}
}

/*
 * The deadline of one attempt of r: the fixed part plus the time its
 * bytes (sent or asked for) take at S3_FLOOR_RATE, so that no answer, not
 * even one trickling just above the low-speed limit, holds it for ever.
 */
static long request_deadline_ms(const struct s3 *s3, const struct s3_req *r)
{
	uint64_t bytes = r->src != NULL ? r->src_len : r->body_len;

	if (r->dst != NULL)
		bytes += r->dst_cap;
	if (s3->request_timeout_ms <= 0)
		return 0;
	return s3->request_timeout_ms + (long)(bytes * 1000 / S3_FLOOR_RATE);
}

/*
 * Make the request r, retrying what the table says to retry.  Returns 0
 * for a 2xx answer (in *res, which the caller clears) or -errno.  When
 * fail is not NULL it describes the last failure.
 */
int s3_do(struct s3 *s3, const struct s3_req *r, struct http_result *res, struct s3_failure *fail)
{
	unsigned attempts = r->max_attempts ? r->max_attempts : s3->max_attempts;
	char *path = request_path(s3, r->key), *url = NULL,
	     *lines[MAX_EXTRA_HEADERS + MAX_BUCKET_HEADERS + 8];
	char hash[65];
	size_t n_lines = 0;
	int ret = -ENOMEM, retry = 0, quick_retry_used = 0;
	struct s3_failure local;
	struct timespec t0;

	if (fail == NULL)
		fail = &local;
	memset(fail, 0, sizeof(*fail));
	memset(res, 0, sizeof(*res));
	if (path == NULL || (url = build_url(s3, path, r)) == NULL)
		goto out;
	if (r->src == NULL && r->body == NULL)
		strcpy(hash, SIGV4_EMPTY_SHA256);
	else if (s3->tls || (s3->unsigned_payload && r->src != NULL))
		strcpy(hash, SIGV4_UNSIGNED_PAYLOAD);
	else if ((ret = payload_hash(r, hash)) < 0)
		goto out;

	for (unsigned attempt = 0; attempt < attempts; attempt++) {
		struct http_call call = {
		    .method = r->method,
		    .url = url,
		    .src = r->src,
		    .src_off = r->src_off,
		    .src_len = r->src_len,
		    .body = r->body,
		    .body_len = r->body_len,
		    .want_md5 = r->want_md5,
		    .dst = r->dst,
		    .dst_cap = r->dst_cap,
		    .dst_skip = r->dst_skip,
		    .timeout_ms = request_deadline_ms(s3, r),
		};

		if (attempt > 0) {
			if (!retry)
				break;
			count(s3, &s3->stats.retries, 1);
		}
		http_result_clear(res);
		ret = sign_headers(s3, r, path, hash, lines, &n_lines);
		if (ret < 0) {
			free_lines(lines, n_lines);
			goto out;
		}
		call.headers = lines;
		call.n_headers = n_lines;
		count(s3, op_counter(s3, r->op), 1);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ret = http_perform(s3->pool, &call, res);
		count_latency(s3, r->op, t0);
		free_lines(lines, n_lines);
		n_lines = 0;
		fail->attempts++;
		if (res->body_sent)
			fail->body_sent = 1;
		if (res->body_md5[0] != '\0')
			memcpy(fail->body_md5, res->body_md5, sizeof(fail->body_md5));
		if (ret == -ENOMEM)
			goto out;
		if (ret < 0) {
			fail->status = 0;
			fail->curl_code = res->curl_code;
			snprintf(fail->curl_error, sizeof(fail->curl_error), "%s", res->curl_error);
			retry = http_transport_retryable(res->curl_code);
			ret = -EIO;
			/* A kept-alive connection the server had closed: the next
			 * attempt goes at once, without a backoff (but within
			 * the retries promised: a server that resets every
			 * request gets no more attempts than any other). */
			if (res->reused && !quick_retry_used &&
			    (res->curl_code == CURLE_SEND_ERROR ||
			     res->curl_code == CURLE_RECV_ERROR ||
			     res->curl_code == CURLE_GOT_NOTHING)) {
				quick_retry_used = 1;
				continue;
			}
			log_debug("%s %s: %s (attempt %u)", r->op, r->key ? r->key : "(bucket)",
			          res->curl_error, fail->attempts);
		} else if (res->status >= 200 && res->status < 300 && r->check != NULL &&
		           r->check(res) < 0) {
			/* An answer in good form but not the document it must carry
			 * (cut short by a proxy, an empty body): ask again. */
			fail->status = res->status;
			snprintf(fail->xml.code, sizeof(fail->xml.code), "%s", "IncompleteBody");
			snprintf(fail->xml.message, sizeof(fail->xml.message),
			         "a %zu-byte answer without the expected result", res->body_len);
			retry = 1;
			ret = -EIO;
			log_debug("%s %s: HTTP %ld without its result document (attempt %u)", r->op,
			          r->key ? r->key : "(bucket)", res->status, fail->attempts);
		} else if (res->status >= 200 && res->status < 300) {
			log_debug("%s %s%s%s: HTTP %ld, %zu bytes (request id %s, attempt %u)",
			          r->op, r->key ? "key " : "bucket ",
			          r->key ? s3->prefix : s3->bucket, r->key ? r->key : "",
			          res->status, res->dst_len + res->body_len,
			          res->request_id[0] ? res->request_id : "none", fail->attempts);
			count(s3, &s3->stats.bytes_down, res->dst_len + res->body_len);
			count(s3, &s3->stats.bytes_up, r->src ? r->src_len : r->body_len);
			ret = 0;
			goto out;
		} else {
			fail->status = res->status;
			s3xml_parse_error(res->body, res->body_len, &fail->xml);
			classify(res->status, fail->xml.code, &retry, &ret);
			if (res->status == r->quiet_status && r->quiet_status != 0)
				goto out;
			log_debug("%s %s: HTTP %ld %s (request id %s, attempt %u)", r->op,
			          r->key ? r->key : "(bucket)", res->status, fail->xml.code,
			          res->request_id, fail->attempts);
		}
		if (retry && attempt + 1 < attempts)
			backoff(attempt + 1);
	}
	count(s3, &s3->stats.errors, 1);
	if (r->quiet)
		log_debug("%s failed (explained by the caller)", r->op);
	else if (fail->status != 0)
		log_warn("%s %s%s%s failed after %u attempt%s: HTTP %ld %s%s%s (request id %s)",
		         r->op, r->key ? "key " : "bucket ", r->key ? s3->prefix : s3->bucket,
		         r->key ? r->key : "", fail->attempts, fail->attempts == 1 ? "" : "s",
		         fail->status, fail->xml.code, fail->xml.message[0] ? ": " : "",
		         fail->xml.message, res->request_id[0] ? res->request_id : "none");
	else
		log_warn("%s %s%s%s failed after %u attempt%s: %s", r->op,
		         r->key ? "key " : "bucket ", r->key ? s3->prefix : s3->bucket,
		         r->key ? r->key : "", fail->attempts, fail->attempts == 1 ? "" : "s",
		         fail->curl_error);
out:
	free(path);
	free(url);
	return ret;
}

/* --- the ops -------------------------------------------------------------- */

static void stat_from_result(const struct http_result *res, uint64_t size, struct backend_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->size = size;
	snprintf(st->etag, sizeof(st->etag), "%s", res->etag);
	st->mtime = res->has_meta_mtime ? res->meta_mtime : res->last_modified;
	st->meta = res->meta;
	st->mode = res->mode & 07777; /* s3fs stores the file type too */
	st->uid = res->uid;
	st->gid = res->gid;
}

static int s3_stat(struct backend *b, const char *key, struct backend_stat *st)
{
	struct s3 *s3 = (struct s3 *)b;
	struct s3_req r = {.method = "HEAD", .op = "HEAD", .key = key, .quiet_status = 404};
	struct http_result res;
	int ret;

	if (!backend_key_valid(key))
		return -EINVAL;
	ret = s3_do(s3, &r, &res, NULL);
	if (ret == 0)
		stat_from_result(&res, res.content_length, st);
	http_result_clear(&res);
	return ret;
}

/*
 * One ranged GET of [off, off + len).  Returns the bytes, or -EAGAIN when
 * the answer contradicts itself (a body shorter than its range says, a
 * 416 for an offset inside the object): the caller asks again.
 */
static ssize_t s3_read_once(struct s3 *s3, const char *key, uint64_t off, void *dst, size_t len,
                            const char *etag, struct backend_stat *st)
{
	struct s3_req r = {
	    .method = "GET",
	    .op = "GET",
	    .key = key,
	    .dst = dst,
	    .dst_cap = len,
	    .dst_skip = off,
	    .quiet_status = 416,
	};
	char range[64], match[BACKEND_ETAG_MAX + 4];
	struct http_result res;
	uint64_t total, expect;
	ssize_t ret;

	snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
	         (unsigned long long)(off + len - 1));
	r.headers[r.n_headers++] = (struct sigv4_header){"Range", range};
	if (etag != NULL && *etag) {
		snprintf(match, sizeof(match), "\"%s\"", etag);
		r.headers[r.n_headers++] = (struct sigv4_header){"If-Match", match};
	}
	ret = s3_do(s3, &r, &res, NULL);
	if (ret == -ERANGE && res.has_total_only && res.range_total > off) {
		log_warn("GET \"%s%s\": 416 at offset %llu of a %llu-byte object; asking again",
		         s3->prefix, key, (unsigned long long)off,
		         (unsigned long long)res.range_total);
		ret = -EAGAIN;
		goto out;
	}
	if (ret == -ERANGE) {
		ret = 0; /* at or past the end (or an empty object) */
		goto out;
	}
	if (ret < 0)
		goto out;
	if (etag != NULL && *etag && strcmp(res.etag, etag) != 0) {
		ret = -ESTALE;
		goto out;
	}
	if (res.status == 206 && res.dst_overflow) {
		log_warn("GET \"%s%s\": the server sent more than the %zu bytes asked for; "
		         "not used",
		         s3->prefix, key, len);
		ret = -EIO;
		goto out;
	}
	if (res.status == 206 && (!res.has_content_range || res.range_start != off)) {
		log_warn("GET \"%s%s\": the server answered another range than asked; not used",
		         s3->prefix, key);
		ret = -EIO;
		goto out;
	}
	/* The body must hold all the object has at off, up to len. */
	total = res.status == 206 ? res.range_total : res.content_length;
	expect = off >= total ? 0 : total - off < len ? total - off : len;
	if ((res.status == 206 || res.has_content_length) && res.dst_len != expect) {
		log_warn("GET \"%s%s\": %zu bytes at offset %llu where the object has %llu; "
		         "asking again",
		         s3->prefix, key, res.dst_len, (unsigned long long)off,
		         (unsigned long long)expect);
		ret = -EAGAIN;
		goto out;
	}
	if (st != NULL)
		stat_from_result(&res, total, st);
	ret = (ssize_t)res.dst_len;
out:
	http_result_clear(&res);
	return ret;
}

/* Answers that contradict themselves are asked again this many times. */
#define S3_INCONSISTENT_RETRIES 3

static ssize_t s3_read(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                       const char *etag, struct backend_stat *st)
{
	struct s3 *s3 = (struct s3 *)b;
	ssize_t ret = -EAGAIN;

	if (!backend_key_valid(key))
		return -EINVAL;
	if (len == 0)
		return 0;
	for (int i = 0; i <= S3_INCONSISTENT_RETRIES && ret == -EAGAIN; i++)
		ret = s3_read_once(s3, key, off, dst, len, etag, st);
	return ret == -EAGAIN ? -EIO : ret;
}

/*
 * Metadata headers as s3fs writes them, from save attrs.  s3fs stores the
 * whole st_mode, file type included.
 */
void s3_meta_headers(struct s3_req *r, const char *key, const struct backend_save_attrs *a,
                     char buf[4][32])
{
	unsigned type = key[strlen(key) - 1] == '/' ? S_IFDIR : S_IFREG;

	if (a == NULL)
		return;
	if (a->mtime.tv_sec != 0) {
		snprintf(buf[0], 32, "%lld", (long long)a->mtime.tv_sec);
		r->headers[r->n_headers++] = (struct sigv4_header){"x-amz-meta-mtime", buf[0]};
	}
	if (a->meta & BACKEND_META_MODE) {
		snprintf(buf[1], 32, "%u", type | ((unsigned)a->mode & 07777));
		r->headers[r->n_headers++] = (struct sigv4_header){"x-amz-meta-mode", buf[1]};
	}
	if (a->meta & BACKEND_META_UID) {
		snprintf(buf[2], 32, "%u", (unsigned)a->uid);
		r->headers[r->n_headers++] = (struct sigv4_header){"x-amz-meta-uid", buf[2]};
	}
	if (a->meta & BACKEND_META_GID) {
		snprintf(buf[3], 32, "%u", (unsigned)a->gid);
		r->headers[r->n_headers++] = (struct sigv4_header){"x-amz-meta-gid", buf[3]};
	}
}

void s3_create_headers(const struct s3 *s3, struct s3_req *r)
{
	if (s3->storage_class != NULL)
		r->headers[r->n_headers++] =
		    (struct sigv4_header){"x-amz-storage-class", s3->storage_class};
	if (s3->acl != NULL)
		r->headers[r->n_headers++] = (struct sigv4_header){"x-amz-acl", s3->acl};
}

void s3_stat_after_save(uint64_t size, const char *etag, const struct backend_save_attrs *a,
                        struct backend_stat *st)
{
	if (st == NULL)
		return;
	memset(st, 0, sizeof(*st));
	st->size = size;
	snprintf(st->etag, sizeof(st->etag), "%s", etag);
	if (a != NULL && a->mtime.tv_sec != 0)
		st->mtime = a->mtime;
	else
		clock_gettime(CLOCK_REALTIME, &st->mtime);
	st->mtime.tv_nsec = 0; /* whole seconds, as the store reports it later */
	if (a != NULL) {
		st->meta = a->meta;
		st->mode = a->mode;
		st->uid = a->uid;
		st->gid = a->gid;
	}
}

int s3_stored_as(struct s3 *s3, const char *key, uint64_t size, const char *etag,
                 const struct backend_save_attrs *a)
{
	struct s3_req r = {
	    .method = "HEAD", .op = "HEAD", .key = key, .quiet_status = 404, .quiet = 1};
	struct http_result res;
	int stored;

	if (s3_do(s3, &r, &res, NULL) < 0) {
		http_result_clear(&res);
		return 0;
	}
	stored = res.content_length == size && strcasecmp(res.etag, etag) == 0;
	if (stored && a != NULL) {
		unsigned want = a->meta & (BACKEND_META_MODE | BACKEND_META_UID | BACKEND_META_GID);

		stored = (res.meta & want) == want &&
		         (!(want & BACKEND_META_MODE) || (res.mode & 07777) == (a->mode & 07777)) &&
		         (!(want & BACKEND_META_UID) || res.uid == a->uid) &&
		         (!(want & BACKEND_META_GID) || res.gid == a->gid) &&
		         (a->mtime.tv_sec == 0 ||
		          (res.has_meta_mtime && res.meta_mtime.tv_sec == a->mtime.tv_sec));
	}
	http_result_clear(&res);
	return stored;
}

int s3_put_object(struct s3 *s3, const char *key, const struct backend_source *src,
                  const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct s3_req r = {.method = "PUT",
	                   .op = "PUT",
	                   .key = key,
	                   .src = src,
	                   .src_len = src->size,
	                   .want_md5 = 1};
	struct http_result res;
	struct s3_failure fail;
	char meta[4][32];
	int ret;

	s3_meta_headers(&r, key, attrs, meta);
	s3_create_headers(s3, &r);
	ret = s3_do(s3, &r, &res, &fail);
	if (ret == 0) {
		s3_stat_after_save(src->size, res.etag, attrs, st);
	} else if (ret != -ENOMEM && fail.body_md5[0] != '\0' &&
	           s3_stored_as(s3, key, src->size, fail.body_md5, attrs)) {
		/* An attempt whose answer was lost had stored it. */
		log_info("PUT of \"%s%s\": the answer was lost, but the object is stored "
		         "(ETag %s, %llu bytes)",
		         s3->prefix, key, fail.body_md5, (unsigned long long)src->size);
		s3_stat_after_save(src->size, fail.body_md5, attrs, st);
		ret = 0;
	}
	http_result_clear(&res);
	return ret;
}

static int s3_save(struct backend *b, const char *key, const struct backend_source *src,
                   const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct s3 *s3 = (struct s3 *)b;

	if (!backend_key_valid(key) || (key[strlen(key) - 1] == '/' && src->size != 0)) {
		backend_upload_abort(src);
		return -EINVAL;
	}
	if (src->upload != NULL)
		return s3_upload_save(s3, key, src, attrs, st);
	if (src->size > 2 * s3->part_size)
		return s3_multipart(s3, key, src, NULL, src->size, s3->part_size, attrs, st);
	return s3_put_object(s3, key, src, attrs, st);
}

static int s3_remove(struct backend *b, const char *key)
{
	struct s3 *s3 = (struct s3 *)b;
	struct s3_req r = {.method = "DELETE", .op = "DELETE", .key = key};
	struct backend_stat st;
	struct http_result res;
	int ret;

	/* S3 answers 204 for a key that does not exist; ask first. */
	ret = s3_stat(b, key, &st);
	if (ret < 0)
		return ret;
	ret = s3_do(s3, &r, &res, NULL);
	http_result_clear(&res);
	return ret;
}

/* A listing answer must be a whole ListBucketResult document. */
static int list_check(const struct http_result *res)
{
	static const char end[] = "</ListBucketResult>";
	size_t n = res->body_len;

	while (n > 0 &&
	       (res->body[n - 1] == '\n' || res->body[n - 1] == '\r' || res->body[n - 1] == ' '))
		n--;
	return n >= sizeof(end) - 1 &&
	               memcmp(res->body + n - (sizeof(end) - 1), end, sizeof(end) - 1) == 0
	           ? 0
	           : -1;
}

/* One line per listing page whose answer held keys it was not asked for. */
static void warn_outside(const char *prefix, size_t dropped)
{
	if (dropped > 0)
		log_warn("listing \"%s\": %zu keys or prefixes outside it in the server's answer; "
		         "ignored (is the endpoint an S3 server?)",
		         prefix, dropped);
}

static int s3_list(struct backend *b, const char *prefix, char delimiter, const char *start_after,
                   const char *token, size_t max_keys, struct backend_list *out)
{
	struct s3 *s3 = (struct s3 *)b;
	struct sigv4_param q[6];
	char *full_prefix = NULL, *full_after = NULL, max[24], delim[2] = {delimiter, '\0'};
	struct http_result res;
	struct s3_req r = {.method = "GET", .op = "LIST", .query = q, .check = list_check};
	int ret = -ENOMEM;

	memset(out, 0, sizeof(*out));
	if (asprintf(&full_prefix, "%s%s", s3->prefix, prefix) < 0) {
		full_prefix = NULL;
		goto out;
	}
	snprintf(max, sizeof(max), "%zu",
	         max_keys == 0 || max_keys > 1000 ? (size_t)1000 : max_keys);
	q[r.n_query++] = (struct sigv4_param){"list-type", "2"};
	q[r.n_query++] = (struct sigv4_param){"prefix", full_prefix};
	q[r.n_query++] = (struct sigv4_param){"max-keys", max};
	if (delimiter)
		q[r.n_query++] = (struct sigv4_param){"delimiter", delim};
	if (token != NULL)
		q[r.n_query++] = (struct sigv4_param){"continuation-token", token};
	if (start_after != NULL) {
		if (asprintf(&full_after, "%s%s", s3->prefix, start_after) < 0) {
			full_after = NULL;
			goto out;
		}
		q[r.n_query++] = (struct sigv4_param){"start-after", full_after};
	}
	ret = s3_do(s3, &r, &res, NULL);
	if (ret == 0) {
		ret = s3xml_parse_list(res.body, res.body_len, 0, out);
		if (ret < 0) {
			log_warn(
			    "listing \"%s\": the server's answer is not a ListObjectsV2 result",
			    full_prefix);
			backend_list_free(out);
			ret = -EIO;
		}
		if (ret == 0)
			warn_outside(full_prefix,
			             backend_list_keep(out, full_prefix, s3->prefix_len));
		/* Whole seconds, as HEAD's Last-Modified: the kernel drops a
		 * file's page cache when its mtime seems to change. */
		for (size_t i = 0; ret == 0 && i < out->n_entries; i++)
			out->entries[i].st.mtime.tv_nsec = 0;
	}
	http_result_clear(&res);
out:
	free(full_prefix);
	free(full_after);
	return ret;
}

/* A CopyObject or Complete answer must carry its result's ETag (S3 may
 * also report a failure inside a 200 answer). */
int s3_result_check(const struct http_result *res)
{
	char etag[BACKEND_ETAG_MAX];
	struct s3xml_error xerr;

	return s3xml_parse_result_etag(res->body, res->body_len, etag, sizeof(etag), &xerr) == 0
	           ? 0
	           : -1;
}

/*
 * CopyObject of src (whose stat is *sst) to dst.  With attrs, the
 * metadata is replaced by attrs (x-amz-metadata-directive: REPLACE, which
 * also allows a copy onto itself); without, it is copied.
 */
static int copy_object(struct s3 *s3, const char *src, const char *dst,
                       const struct backend_save_attrs *attrs, const struct backend_stat *sst,
                       struct backend_stat *st)
{
	struct s3_req r = {.method = "PUT",
	                   .op = "COPY",
	                   .key = dst,
	                   .quiet_status = 404,
	                   .check = s3_result_check};
	struct http_result res;
	struct s3xml_error xerr;
	char *source = NULL, *raw = NULL, etag[BACKEND_ETAG_MAX], meta[4][32];
	int ret;

	if (asprintf(&raw, "/%s/%s%s", s3->bucket, s3->prefix, src) < 0)
		return -ENOMEM;
	source = sigv4_uri_encode(raw, 1);
	free(raw);
	if (source == NULL)
		return -ENOMEM;
	if (sst->size > s3->max_copy_size) {
		/* CopyObject stops at 5 GiB: copy in parts, server-side. */
		struct backend_save_attrs keep = {.meta = sst->meta,
		                                  .mode = sst->mode,
		                                  .uid = sst->uid,
		                                  .gid = sst->gid,
		                                  .mtime = sst->mtime};

		uint64_t part =
		    s3->max_copy_size < COPY_PART_SIZE ? s3->max_copy_size : COPY_PART_SIZE;

		ret =
		    s3_multipart(s3, dst, NULL, source, sst->size,
		                 part < (5u << 20) ? (5u << 20) : part, attrs ? attrs : &keep, st);
		if (ret == -ENOTSUP)
			log_info("UploadPartCopy of \"%s\" not possible on this server; copying "
			         "through the client",
			         src);
		free(source);
		return ret;
	}
	r.headers[r.n_headers++] = (struct sigv4_header){"x-amz-copy-source", source};
	if (attrs != NULL) {
		r.headers[r.n_headers++] =
		    (struct sigv4_header){"x-amz-metadata-directive", "REPLACE"};
		s3_meta_headers(&r, dst, attrs, meta);
	}
	s3_create_headers(s3, &r); /* else S3 gives the copy STANDARD and no ACL */
	ret = s3_do(s3, &r, &res, NULL);
	if (ret == -ENOENT) {
		/* The source was just there: a server that cannot copy this key
		 * (s3rver fails for '+', '=', '&', '%').  Let the caller stream it. */
		log_info("CopyObject of \"%s\" not possible on this server; copying through the "
		         "client",
		         src);
		ret = -ENOTSUP;
	}
	if (ret == 0 &&
	    s3xml_parse_result_etag(res.body, res.body_len, etag, sizeof(etag), &xerr) < 0) {
		log_warn("copying \"%s\" to \"%s\" failed: %s %s", src, dst, xerr.code,
		         xerr.message);
		ret = -EIO;
	}
	if (ret == 0 && st != NULL) {
		if (attrs != NULL) {
			s3_stat_after_save(sst->size, etag, attrs, st);
		} else {
			*st = *sst;
			snprintf(st->etag, sizeof(st->etag), "%s", etag);
			clock_gettime(CLOCK_REALTIME, &st->mtime);
			st->mtime.tv_nsec = 0; /* whole seconds, as the store reports it */
		}
	}
	http_result_clear(&res);
	free(source);
	return ret;
}

static int s3_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	struct s3 *s3 = (struct s3 *)b;
	struct backend_stat sst;
	int ret;

	if (!backend_key_valid(src) || !backend_key_valid(dst))
		return -EINVAL;
	ret = s3_stat(b, src, &sst);
	if (ret < 0)
		return ret;
	if (strcmp(src, dst) == 0) {
		/* S3 refuses a copy onto itself; the result is already there. */
		if (st != NULL)
			*st = sst;
		return 0;
	}
	return copy_object(s3, src, dst, NULL, &sst, st);
}

/* New metadata for the same bytes: a copy onto itself that replaces it. */
int s3_replace_meta(struct s3 *s3, const char *key, const struct backend_save_attrs *attrs,
                    struct backend_stat *st)
{
	struct backend_stat sst;
	int ret;

	ret = s3_stat(&s3->base, key, &sst);
	if (ret < 0)
		return ret;
	return copy_object(s3, key, key, attrs, &sst, st);
}

static int s3_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                      struct backend_stat *st)
{
	if (!backend_key_valid(key))
		return -EINVAL;
	return s3_replace_meta((struct s3 *)b, key, attrs, st);
}

static void s3_stats(struct backend *b, backend_stats_fn emit, void *ctx)
{
	struct s3_stats st;

	s3_backend_get_stats(b, &st);
	emit(ctx, "s3", "get", st.get);
	emit(ctx, "s3", "head", st.head);
	emit(ctx, "s3", "put", st.put);
	emit(ctx, "s3", "post", st.post);
	emit(ctx, "s3", "delete", st.del);
	emit(ctx, "s3", "list", st.list);
	emit(ctx, "s3", "copy", st.copy);
	emit(ctx, "s3", "retries", st.retries);
	emit(ctx, "s3", "errors", st.errors);
	emit(ctx, "s3", "bytes_down", st.bytes_down);
	emit(ctx, "s3", "bytes_up", st.bytes_up);
	/* Latency of each attempt, by type: "get_p50_us", "get_p99_us". */
	for (int i = 0; i < S3_OPS; i++) {
		char name[32];

		if (st.latency[i].count == 0)
			continue;
		snprintf(name, sizeof(name), "%s_p50_us", s3_op_names[i]);
		emit(ctx, "s3_latency", name, histogram_quantile_us(&st.latency[i], 0.5));
		snprintf(name, sizeof(name), "%s_p99_us", s3_op_names[i]);
		emit(ctx, "s3_latency", name, histogram_quantile_us(&st.latency[i], 0.99));
	}
}

static void s3_destroy(struct backend *b)
{
	struct s3 *s3 = (struct s3 *)b;

	if (s3 == NULL)
		return;
	http_pool_destroy(s3->pool);
	creds_provider_destroy(s3->creds);
	pthread_mutex_destroy(&s3->stats_lock);
	free(s3->bucket);
	free(s3->prefix);
	free(s3->region);
	free(s3->origin);
	free(s3->host);
	free(s3->endpoint);
	free(s3->storage_class);
	free(s3->acl);
	free(s3->expected_owner);
	free(s3);
}

static const struct backend_ops s3_ops = {
    .abi_version = BACKEND_ABI_VERSION,
    .name = "s3",
    .stat = s3_stat,
    .read = s3_read,
    .save = s3_save,
    .upload_begin = s3_upload_begin,
    .remove = s3_remove,
    .list = s3_list,
    .copy = s3_copy,
    .setattr = s3_setattr,
    .stats = s3_stats,
    .destroy = s3_destroy,
};

/* --- creation and the mount-time check ------------------------------------ */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Split s3://bucket/prefix; the prefix gets a trailing '/'. */
static int parse_url(const char *url, char **bucket, char **prefix, char *err, size_t err_len)
{
	const char *p = url + 5, *slash;
	size_t blen, plen;

	if (strncmp(url, "s3://", 5) != 0) {
		snprintf(err, err_len, "\"%s\" is not an s3://BUCKET[/PREFIX] URL", url);
		return -EINVAL;
	}
	slash = strchr(p, '/');
	blen = slash ? (size_t)(slash - p) : strlen(p);
	if (blen < 3 || blen > 63) {
		snprintf(err, err_len, "\"%.*s\" is not a valid bucket name (3 to 63 characters)",
		         (int)blen, p);
		return -EINVAL;
	}
	for (size_t i = 0; i < blen; i++) {
		char c = p[i];
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' ||
		      c == '-' || c == '_')) {
			snprintf(err, err_len,
			         "\"%.*s\" is not a valid bucket name (lower-case letters, digits, "
			         "'.', '-')",
			         (int)blen, p);
			return -EINVAL;
		}
	}
	*bucket = strndup(p, blen);
	p = slash ? slash + 1 : p + blen;
	while (*p == '/')
		p++;
	plen = strlen(p);
	while (plen > 0 && p[plen - 1] == '/')
		plen--;
	*prefix = malloc(plen + 2);
	if (*bucket == NULL || *prefix == NULL)
		return -ENOMEM;
	memcpy(*prefix, p, plen);
	if (plen > 0)
		(*prefix)[plen++] = '/';
	(*prefix)[plen] = '\0';
	if (plen > 0 && !backend_key_valid(*prefix)) {
		snprintf(err, err_len, "the prefix \"%s\" has an empty, \".\" or \"..\" segment",
		         *prefix);
		return -EINVAL;
	}
	if (plen >= MAX_KEY_BYTES) {
		snprintf(err, err_len,
		         "the prefix is %zu bytes long; S3 keys, prefix included, have at most %d",
		         plen, MAX_KEY_BYTES);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Work out origin, Host and addressing style from the endpoint and region. */
static int set_endpoint(struct s3 *s3, const struct s3_opts *o, char *err, size_t err_len)
{
	const char *ep = o->endpoint                  ? o->endpoint
	                 : env("AWS_ENDPOINT_URL_S3") ? env("AWS_ENDPOINT_URL_S3")
	                                              : env("AWS_ENDPOINT_URL");
	const char *hostpart;
	size_t len;

	free(s3->origin);
	free(s3->host);
	free(s3->endpoint);
	s3->origin = s3->host = s3->endpoint = NULL;
	if (ep == NULL) {
		/* AWS: virtual-hosted unless the bucket name has dots (TLS names). */
		s3->tls = 1;
		s3->path_style = o->path_style || (strchr(s3->bucket, '.') && !o->virtual_hosted);
		if (s3->path_style) {
			if (asprintf(&s3->host, "s3.%s.amazonaws.com", s3->region) < 0)
				return -ENOMEM;
		} else if (asprintf(&s3->host, "%s.s3.%s.amazonaws.com", s3->bucket, s3->region) <
		           0) {
			return -ENOMEM;
		}
		if (asprintf(&s3->origin, "https://%s", s3->host) < 0)
			return -ENOMEM;
		s3->endpoint = strdup(s3->origin);
		return s3->endpoint ? 0 : -ENOMEM;
	}
	if (strncmp(ep, "https://", 8) == 0) {
		s3->tls = 1;
		hostpart = ep + 8;
	} else if (strncmp(ep, "http://", 7) == 0) {
		s3->tls = 0;
		hostpart = ep + 7;
	} else {
		snprintf(err, err_len, "endpoint \"%s\" must start with http:// or https://", ep);
		return -EINVAL;
	}
	len = strcspn(hostpart, "/");
	if (len == 0 || (hostpart[len] == '/' && hostpart[len + 1] != '\0')) {
		snprintf(err, err_len, "endpoint \"%s\" must be scheme://host[:port] with no path",
		         ep);
		return -EINVAL;
	}
	s3->endpoint = strdup(ep);
	s3->path_style = !o->virtual_hosted;
	if (s3->path_style) {
		s3->host = strndup(hostpart, len);
		if (s3->host == NULL ||
		    asprintf(&s3->origin, "%s%s", s3->tls ? "https://" : "http://", s3->host) < 0)
			return -ENOMEM;
	} else {
		if (asprintf(&s3->host, "%s.%.*s", s3->bucket, (int)len, hostpart) < 0 ||
		    asprintf(&s3->origin, "%s%s", s3->tls ? "https://" : "http://", s3->host) < 0)
			return -ENOMEM;
	}
	return s3->endpoint ? 0 : -ENOMEM;
}

/* One sentence for a failed mount-time check. */
static void explain(struct s3 *s3, const struct s3_failure *f, char *err, size_t err_len)
{
	const char *code = f->xml.code;
	struct creds c = {0};
	const char *keyid = "";

	if (!creds_anonymous(s3->creds) && creds_get(s3->creds, &c) == 0)
		keyid = c.access_key_id;
	if (f->status == 0) {
		switch (f->curl_code) {
		case CURLE_COULDNT_RESOLVE_HOST:
			snprintf(err, err_len,
			         "cannot resolve the host of %s (DNS failure); check -o endpoint "
			         "and the network",
			         s3->endpoint);
			break;
		case CURLE_COULDNT_CONNECT:
			snprintf(err, err_len,
			         "cannot connect to %s (%s); is the endpoint right and the server "
			         "running?",
			         s3->endpoint, f->curl_error);
			break;
		case CURLE_OPERATION_TIMEDOUT:
			snprintf(err, err_len, "%s did not answer in time; check the endpoint",
			         s3->endpoint);
			break;
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
			snprintf(err, err_len,
			         "TLS failure talking to %s (%s); check the certificate, -o "
			         "ca_bundle or AWS_CA_BUNDLE",
			         s3->endpoint, f->curl_error);
			break;
		default:
			snprintf(err, err_len, "cannot reach %s: %s", s3->endpoint, f->curl_error);
		}
	} else if (strcmp(code, "NoSuchBucket") == 0 || f->status == 404) {
		snprintf(err, err_len, "bucket \"%s\" does not exist at %s", s3->bucket,
		         s3->endpoint);
	} else if (strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
	           strcmp(code, "PermanentRedirect") == 0) {
		snprintf(err, err_len,
		         "bucket \"%s\" is not in region %s (%s%s%s); give -o region=", s3->bucket,
		         s3->region, code, f->xml.region[0] ? ", it says " : "", f->xml.region);
	} else if (strcmp(code, "SignatureDoesNotMatch") == 0) {
		snprintf(err, err_len,
		         "the secret access key for key id %s (from %s) is wrong: %s answered "
		         "SignatureDoesNotMatch",
		         keyid, creds_source(s3->creds), s3->endpoint);
	} else if (strcmp(code, "InvalidAccessKeyId") == 0) {
		snprintf(err, err_len,
		         "the access key id %s (from %s) is not known to %s (InvalidAccessKeyId)",
		         keyid, creds_source(s3->creds), s3->endpoint);
	} else if ((strcmp(code, "AccessDenied") == 0 || f->status == 403) &&
	           s3->expected_owner != NULL) {
		snprintf(err, err_len,
		         "access to bucket \"%s\" denied: either account %s "
		         "(-o expected_bucket_owner) does not own it or %s%s (from %s) may not use "
		         "it; check the owner's account id, the bucket policy and the credentials",
		         s3->bucket, s3->expected_owner,
		         creds_anonymous(s3->creds) ? "anonymous requests" : "key id ", keyid,
		         creds_source(s3->creds));
	} else if (strcmp(code, "AccessDenied") == 0 || f->status == 403) {
		snprintf(err, err_len,
		         "access to bucket \"%s\" denied for %s%s (from %s); check the bucket "
		         "policy and the credentials",
		         s3->bucket, creds_anonymous(s3->creds) ? "anonymous requests" : "key id ",
		         keyid, creds_source(s3->creds));
	} else {
		snprintf(err, err_len, "bucket \"%s\" at %s answered HTTP %ld %s%s%s", s3->bucket,
		         s3->endpoint, f->status, code, f->xml.message[0] ? ": " : "",
		         f->xml.message);
	}
	creds_free(&c);
}

/*
 * HeadBucket, then (on failure) a one-key listing, whose error body names
 * the cause.  Follows a region the server points to once.
 */
static int check_bucket(struct s3 *s3, const struct s3_opts *o, char *err, size_t err_len)
{
	struct s3_req head = {.method = "HEAD", .op = "HEAD", .max_attempts = 2, .quiet = 1};
	struct sigv4_param q[] = {{"list-type", "2"}, {"max-keys", "1"}};
	struct s3_req list = {
	    .method = "GET", .op = "LIST", .query = q, .n_query = 2, .max_attempts = 2, .quiet = 1};
	struct http_result res;
	struct s3_failure f;
	char other[32];
	int ret;

	for (int round = 0; round < 2; round++) {
		other[0] = '\0';
		ret = s3_do(s3, &head, &res, &f);
		if (ret == 0)
			goto done;
		snprintf(other, sizeof(other), "%s", res.bucket_region);
		if (f.status != 0 && other[0] == '\0') {
			/* HEAD has no body: ask again with a GET to learn the code
			 * (and the region S3 names in it). */
			http_result_clear(&res);
			ret = s3_do(s3, &list, &res, &f);
			if (ret == 0)
				goto done;
			snprintf(other, sizeof(other), "%s",
			         res.bucket_region[0] ? res.bucket_region : f.xml.region);
		}
		http_result_clear(&res);
		if (round > 0 || other[0] == '\0' || strcmp(other, s3->region) == 0)
			break;
		log_info("bucket %s is in region %s, not %s; using %s", s3->bucket, other,
		         s3->region, other);
		free(s3->region);
		s3->region = strdup(other);
		if (s3->region == NULL || set_endpoint(s3, o, err, err_len) < 0)
			return -ENOMEM;
	}
	explain(s3, &f, err, err_len);
	return ret;
done:
	http_result_clear(&res);
	return 0;
}

/* -o storage_class, acl, expected_bucket_owner into s3.  0 or -ENOMEM. */
static int copy_header_opts(struct s3 *s3, const struct s3_opts *o)
{
	const char *from[] = {o->storage_class, o->acl, o->expected_owner};
	char **to[] = {&s3->storage_class, &s3->acl, &s3->expected_owner};

	for (size_t i = 0; i < 3; i++) {
		if (from[i] != NULL && (*to[i] = strdup(from[i])) == NULL)
			return -ENOMEM;
	}
	return 0;
}

struct backend *s3_backend_create(const char *url, const struct s3_opts *o, char *err,
                                  size_t err_len)
{
	struct s3 *s3 = calloc(1, sizeof(*s3));
	const char *region = o->region           ? o->region
	                     : env("AWS_REGION") ? env("AWS_REGION")
	                                         : env("AWS_DEFAULT_REGION");
	struct creds_opts copts = {
	    .profile = o->profile,
	    .credentials_file = o->credentials_file,
	    .anonymous = o->anonymous,
	    .region = region,
	    .ca_bundle = o->ca_bundle ? o->ca_bundle : env("AWS_CA_BUNDLE"),
	};
	struct http_pool_opts popts = {
	    .ca_bundle = copts.ca_bundle,
	    .connect_timeout_ms = (long)o->connect_timeout * 1000,
	    .low_speed_time_s = (long)o->read_timeout,
	    .low_speed_bytes = S3_LOW_SPEED,
	};
	int ret = -ENOMEM;

	snprintf(err, err_len, "out of memory");
	if (s3 == NULL)
		goto fail;
	s3->base.ops = &s3_ops;
	pthread_mutex_init(&s3->stats_lock, NULL);
	s3->max_attempts = o->retries + 1;
	s3->request_timeout_ms = (long)o->request_timeout * 1000;
	s3->part_size = (uint64_t)(o->part_size_mb ? o->part_size_mb : 16) << 20;
	s3->unsigned_payload = o->unsigned_payload;
	s3->requester_pays = o->requester_pays;
	if (copy_header_opts(s3, o) < 0)
		goto fail;
	s3->max_copy_size = o->max_copy_mb ? (uint64_t)o->max_copy_mb << 20 : MAX_PART_SIZE;
	if (s3->part_size < (5u << 20))
		s3->part_size = 5u << 20; /* S3's smallest part */
	s3->concurrency = o->upload_concurrency ? o->upload_concurrency : 1;
	ret = parse_url(url, &s3->bucket, &s3->prefix, err, err_len);
	if (ret < 0)
		goto fail;
	s3->prefix_len = strlen(s3->prefix);
	s3->base.key_max = MAX_KEY_BYTES - s3->prefix_len;
	s3->base.size_max = MAX_OBJECT_SIZE;
	s3->region = strdup(region ? region : "us-east-1");
	if (s3->region == NULL)
		goto fail;
	ret = set_endpoint(s3, o, err, err_len);
	if (ret < 0)
		goto fail;
	s3->pool = http_pool_create(&popts);
	if (s3->pool == NULL) {
		ret = -errno;
		goto fail;
	}
	s3->creds = creds_provider_create(&copts);
	if (s3->creds == NULL) {
		ret = -errno;
		snprintf(err, err_len,
		         "no AWS credentials found (environment, web identity, ~/.aws files, "
		         "container or instance metadata); set them, give -o profile=, or mount a "
		         "public bucket with -o anonymous");
		goto fail;
	}
	log_info("s3: bucket %s, prefix \"%s\", endpoint %s, region %s, %s style, credentials "
	         "from %s",
	         s3->bucket, s3->prefix, s3->endpoint, s3->region,
	         s3->path_style ? "path" : "virtual-hosted", creds_source(s3->creds));
	ret = check_bucket(s3, o, err, err_len);
	if (ret < 0)
		goto fail;
	return &s3->base;
fail:
	s3_destroy(s3 ? &s3->base : NULL);
	errno = -ret;
	return NULL;
}
