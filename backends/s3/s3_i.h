/*
 * s3_i.h - what the S3 backend's files share: the backend's state, one
 * request with retries (s3.c), and multipart uploads (upload.c).
 */
#ifndef CHUNKFS_S3_I_H
#define CHUNKFS_S3_I_H

#include <pthread.h>
#include <stdint.h>

#include "backend.h"
#include "http.h"
#include "s3.h"
#include "s3xml.h"
#include "sigv4.h"

#define MAX_EXTRA_HEADERS  10 /* a request's own: CopyObject uses 8 */
#define MAX_BUCKET_HEADERS 2  /* what every request carries (s3_do adds them) */
#define MAX_PARTS          10000
#define MAX_PART_SIZE      (5ull << 30) /* UploadPart's and CopyObject's limit */
#define MIN_PART_SIZE      (5ull << 20) /* every part but the last */
#define COPY_PART_SIZE     (512ull << 20)
#define MAX_KEY_BYTES      1024         /* S3's longest key, prefix included */
#define MAX_OBJECT_SIZE    (5ull << 40) /* S3's largest object */

struct s3 {
	struct backend base;
	char *bucket;
	char *prefix; /* "" or ends with '/' */
	size_t prefix_len;
	char *region;
	char *origin;   /* scheme://host[:port] the requests go to */
	char *host;     /* Host header */
	char *endpoint; /* for messages */
	int path_style;
	int tls;
	int unsigned_payload; /* uploads over http skip the payload hash */
	char *storage_class;  /* x-amz-storage-class of new objects, or NULL */
	char *acl;            /* x-amz-acl of new objects, or NULL */
	char *expected_owner; /* x-amz-expected-bucket-owner on every request, or NULL */
	int requester_pays;   /* x-amz-request-payer: requester on every request */
	unsigned max_attempts;
	long request_timeout_ms; /* fixed part of a request's deadline */
	uint64_t part_size;
	uint64_t max_copy_size; /* larger objects are copied in parts */
	unsigned concurrency;
	unsigned bg_workers; /* atomic: streaming workers of all uploads (upload.c) */
	struct http_pool *pool;
	struct creds_provider *creds;
	pthread_mutex_t stats_lock;
	struct s3_stats stats; /* [stats_lock] */
};

struct s3_req {
	const char *method;
	const char *op;  /* for counting and logs: "GET", "LIST", "COPY", ... */
	const char *key; /* backend key (prefix added here); NULL: the bucket */
	const struct sigv4_param *query;
	size_t n_query;
	struct sigv4_header headers[MAX_EXTRA_HEADERS];
	size_t n_headers;
	const struct backend_source *src; /* body */
	uint64_t src_off, src_len;
	const char *body;
	size_t body_len;
	void *dst; /* GET data */
	size_t dst_cap;
	uint64_t dst_skip;
	int quiet_status;      /* a status that is an answer, not a failure (404 for stat) */
	int quiet;             /* the caller explains failures itself: no warning */
	unsigned max_attempts; /* 0: the backend's */
	int want_md5;          /* s3_failure.body_md5: the body's MD5 (PUT) */
	/* A 2xx answer's body is the result expected (0) or not (-1: it is
	 * retried like a 500).  NULL: any 2xx answer will do. */
	int (*check)(const struct http_result *res);
};

/* Why the last request failed, for the mount-time message. */
struct s3_failure {
	long status;
	int curl_code;
	char curl_error[256];
	struct s3xml_error xml;
	unsigned attempts; /* made, the last included */
	int body_sent;     /* some attempt handed the whole request body over */
	char body_md5[33]; /* want_md5: hex MD5 of that body, or "" */
};

/*
 * Make the request r, retrying what the table in s3.c says to retry.
 * Returns 0 for a 2xx answer (in *res, which the caller clears) or
 * -errno.  When fail is not NULL it describes the last failure.
 */
int s3_do(struct s3 *s3, const struct s3_req *r, struct http_result *res, struct s3_failure *fail);

/* Metadata headers (x-amz-meta-*) as s3fs writes them, from save attrs. */
void s3_meta_headers(struct s3_req *r, const char *key, const struct backend_save_attrs *a,
                     char buf[4][32]);

/* Headers of a request that creates an object (PUT, CopyObject,
 * CreateMultipartUpload): -o storage_class and -o acl. */
void s3_create_headers(const struct s3 *s3, struct s3_req *r);

/* *st for an object just stored (st may be NULL). */
void s3_stat_after_save(uint64_t size, const char *etag, const struct backend_save_attrs *a,
                        struct backend_stat *st);

/*
 * 1 when a HEAD of key shows an object of size bytes with this ETag and
 * the metadata a sets (NULL: not compared): what a save whose answer was
 * lost would have stored.  0 when not, or when the HEAD fails.
 */
int s3_stored_as(struct s3 *s3, const char *key, uint64_t size, const char *etag,
                 const struct backend_save_attrs *a);

/* s3_req.check for CopyObject and CompleteMultipartUpload answers. */
int s3_result_check(const struct http_result *res);

/*
 * A PUT of the whole of src (at most 5 GiB).  0 or -errno.  When it fails
 * after an attempt that sent the whole body, a HEAD tells whether that
 * attempt had stored it (ETag = the body's MD5, computed while sending).
 */
int s3_put_object(struct s3 *s3, const char *key, const struct backend_source *src,
                  const struct backend_save_attrs *attrs, struct backend_stat *st);

/* --- upload.c --------------------------------------------------------------- */

/*
 * Store size bytes under key with a multipart upload: from src, or copied
 * server-side from copy_source ("/bucket/key", URI-encoded).  part_size
 * grows until the parts fit in MAX_PARTS.  0 or -errno (-ENOTSUP: the
 * server cannot copy parts).
 */
int s3_multipart(struct s3 *s3, const char *key, const struct backend_source *src,
                 const char *copy_source, uint64_t size, uint64_t part_size,
                 const struct backend_save_attrs *attrs, struct backend_stat *st);

/* The upload_begin op. */
int s3_upload_begin(struct backend *b, const char *key, const struct backend_source *src,
                    const struct backend_save_attrs *attrs, struct backend_upload **out);

/*
 * save() of a source that carries a streaming upload begun by
 * s3_upload_begin(): finish it (or fall back to a plain save).
 */
int s3_upload_save(struct s3 *s3, const char *key, const struct backend_source *src,
                   const struct backend_save_attrs *attrs, struct backend_stat *st);

/* A copy of key onto itself with new metadata (the setattr op). */
int s3_replace_meta(struct s3 *s3, const char *key, const struct backend_save_attrs *attrs,
                    struct backend_stat *st);

#endif /* CHUNKFS_S3_I_H */
