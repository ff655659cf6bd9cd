/*
 * http.h - one HTTP exchange over a pool of reusable libcurl handles.
 *
 * The pool keeps idle easy handles (each with its kept-alive connections)
 * and hands one to each exchange, so requests from many threads reuse
 * connections without sharing a handle.  http_perform() does exactly one
 * attempt: no signing, no retries, no error mapping.  The S3 layer
 * (s3.c) decides what to retry and what a status means.
 *
 * TLS peers are always verified (the CA bundle can be chosen, checking
 * cannot be turned off).
 */
#ifndef CHUNKFS_HTTP_H
#define CHUNKFS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"

struct http_pool_opts {
	const char *ca_bundle;   /* NULL: libcurl's default bundle */
	long connect_timeout_ms; /* to establish a connection */
	long low_speed_time_s;   /* abort when under low_speed_bytes/s this long */
	long low_speed_bytes;
	long max_time_ms; /* whole exchange limit, 0: none */
};

struct http_pool;

/* NULL + errno on failure.  Calls curl_global_init() once per process. */
struct http_pool *http_pool_create(const struct http_pool_opts *opts);
void http_pool_destroy(struct http_pool *pool);

/* What to send. */
struct http_call {
	const char *method; /* "GET", "HEAD", "PUT", "POST", "DELETE" */
	const char *url;    /* complete, already encoded */
	char **headers;     /* "Name: value" lines, n_headers of them */
	size_t n_headers;
	/* Request body: src bytes [src_off, src_off + src_len), or body/body_len. */
	const struct backend_source *src;
	uint64_t src_off, src_len;
	const char *body;
	size_t body_len;
	int want_md5; /* compute http_result.body_md5 while sending */
	/*
	 * Response sink for a 2xx body: when dst is set, up to dst_cap bytes go
	 * there (skipping the first dst_skip bytes of a 200 answer, for a
	 * server that ignored a Range), and a body longer than that is cut
	 * off (http_result.dst_overflow); other bodies are collected in
	 * http_result.body, up to 64 MiB (longer: the exchange fails).
	 */
	void *dst;
	size_t dst_cap;
	uint64_t dst_skip;
	long timeout_ms; /* the whole exchange; 0: the pool's max_time_ms */
};

/* What came back. */
struct http_result {
	long status;          /* 0 when no response arrived */
	int curl_code;        /* CURLcode of the attempt, 0 on success */
	char curl_error[256]; /* libcurl's description (no secrets) */
	int reused;           /* the attempt ran on a kept-alive connection */
	int body_sent;        /* the whole request body was handed to curl */
	char body_md5[33];    /* hex MD5 of that body (want_md5), or "" */
	size_t dst_len;       /* bytes written to call->dst */
	int dst_overflow;     /* the body went on past dst_cap: the transfer was
	                       * stopped there (the rest is never read) */
	char *body;           /* other bodies (errors, XML); caller frees */
	size_t body_len;
	/* Headers of interest. */
	char etag[BACKEND_ETAG_MAX]; /* unquoted */
	char request_id[128];        /* x-amz-request-id (and id-2) */
	char bucket_region[32];      /* x-amz-bucket-region */
	uint64_t content_length;
	int has_content_length;
	uint64_t range_start, range_total; /* Content-Range: bytes a-b/total */
	int has_content_range;
	int has_total_only; /* Content-Range: bytes * /total (sets range_total) */
	struct timespec last_modified;
	/* x-amz-meta-{mode,uid,gid,mtime} as s3fs writes them */
	unsigned meta; /* BACKEND_META_* */
	uint32_t mode, uid, gid;
	struct timespec meta_mtime;
	int has_meta_mtime;
};

/*
 * One attempt.  Returns 0 when a response arrived (any status; see
 * res->status) and -EIO when the transport failed (res->curl_code and
 * curl_error say how), -ENOMEM when out of memory.  The caller frees
 * res->body with http_result_clear() (also after an error).
 */
int http_perform(struct http_pool *pool, const struct http_call *call, struct http_result *res);

void http_result_clear(struct http_result *res);

/* 1 when curl_code is a transport failure worth retrying. */
int http_transport_retryable(int curl_code);

#endif
