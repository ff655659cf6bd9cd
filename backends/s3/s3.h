/*
 * s3.h - the S3 backend: keys under s3://BUCKET/PREFIX on Amazon S3 or any
 * S3-compatible store (MinIO, Ceph, R2, s3rver), signed with SigV4.
 *
 * The module owns its -o options (s3_opts_parse) and their help text.
 */
#ifndef CHUNKFS_S3_H
#define CHUNKFS_S3_H

#include <fuse_opt.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "histogram.h"

struct s3_opts {
	char *region;             /* -o region=; else AWS_REGION, AWS_DEFAULT_REGION, us-east-1 */
	char *endpoint;           /* -o endpoint=URL; else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL */
	char *ca_bundle;          /* -o ca_bundle=FILE; else AWS_CA_BUNDLE */
	char *profile;            /* -o profile=NAME (shared credentials files) */
	char *credentials_file;   /* -o credentials_file=FILE */
	int path_style;           /* -o path_style: force path-style addressing */
	int virtual_hosted;       /* -o virtual_hosted: force virtual-hosted addressing */
	int unsigned_payload;     /* -o unsigned_payload: no SHA-256 of uploads over http */
	int anonymous;            /* -o anonymous: unsigned requests (public buckets) */
	unsigned retries;         /* -o retries=N: attempts after the first (default 6) */
	unsigned connect_timeout; /* -o connect_timeout=SECS (default 5) */
	unsigned read_timeout;    /* -o read_timeout=SECS under 1 KiB/s (default 30) */
	unsigned request_timeout; /* -o request_timeout=SECS: fixed part of each request's
	                           * deadline, which adds 4 s per MiB (default 60) */
	unsigned part_size_mb;    /* -o part_size_mb=N for multipart uploads (default 16) */
	unsigned max_copy_mb;     /* -o max_copy_mb=N: larger objects are copied in parts
	                           * (UploadPartCopy); 0: 5120, S3's CopyObject limit */
	unsigned upload_concurrency; /* -o upload_concurrency=N parts in flight (default 8) */
	char *storage_class;         /* -o storage_class=CLASS of the objects written */
	char *acl;                   /* -o acl=CANNED ACL of the objects written */
	char *expected_owner;        /* -o expected_bucket_owner=ID (12-digit account id) */
	int requester_pays;          /* -o requester_pays: the requester pays the bucket's bill */
};

/* Fill in the defaults. */
void s3_opts_init(struct s3_opts *o);

/* Take the S3 options out of args (others stay).  0 or -1. */
int s3_opts_parse(struct fuse_args *args, struct s3_opts *o);

/* Print the options' help. */
void s3_opts_usage(FILE *out);

void s3_opts_free(struct s3_opts *o);

/*
 * Connect to s3://BUCKET[/PREFIX] and check that the bucket answers
 * (HeadBucket, then a listing to learn the exact error).  On failure
 * returns NULL with errno set and one sentence in err naming the cause
 * (no such bucket, access denied, wrong secret, unknown key id, endpoint
 * unreachable, DNS or TLS failure).
 */
struct backend *s3_backend_create(const char *url, const struct s3_opts *o, char *err,
                                  size_t err_len);

/* The request types counted, in the order of s3_op_names. */
enum s3_op { S3_GET, S3_HEAD, S3_PUT, S3_POST, S3_DELETE, S3_LIST, S3_COPY, S3_OPS };

/* "get", "head", "put", "post", "delete", "list", "copy". */
extern const char *const s3_op_names[S3_OPS];

/* Requests made and what happened to them, for tests and stats. */
struct s3_stats {
	uint64_t get, head, put, post, del, list, copy; /* requests sent, by type */
	uint64_t retries;                               /* attempts that were retried */
	uint64_t errors;                                /* requests that finally failed */
	uint64_t bytes_down, bytes_up;
	struct histogram latency[S3_OPS]; /* time of each attempt, by type */
};

void s3_backend_get_stats(struct backend *b, struct s3_stats *out);

#endif
