/*
 * s3xml.h - the S3 XML documents chunkfs reads and writes, through libxml2.
 *
 * Parsers take a response body (not NUL-terminated) and return 0 or
 * -EINVAL when the document is not what was expected.  Element names are
 * matched by local name, so documents with or without the S3 namespace
 * both parse.
 */
#ifndef CHUNKFS_S3XML_H
#define CHUNKFS_S3XML_H

#include <stddef.h>
#include <time.h>

#include "backend.h"

/* An S3 error document: <Error><Code>..</Code><Message>..</Message>.. */
struct s3xml_error {
	char code[64];
	char message[256];
	char request_id[64];
	char region[32]; /* <Region>, when S3 says which region to use */
};

/* Parse an error document.  0 when it has at least a Code. */
int s3xml_parse_error(const char *body, size_t len, struct s3xml_error *err);

/*
 * Parse a ListObjectsV2 result into *out.  Keys and prefixes lose their
 * first strip bytes (keys shorter and prefixes not longer are dropped;
 * the bytes are not checked here: the S3 backend parses with strip 0 and
 * keeps what starts with the prefix it asked for, backend_list_keep()).
 * out->next_token is set only when the result is truncated.  The caller
 * frees *out with backend_list_free() (also after an error).
 */
int s3xml_parse_list(const char *body, size_t len, size_t strip, struct backend_list *out);

/* The UploadId of an InitiateMultipartUploadResult; the caller frees it. */
int s3xml_parse_upload_id(const char *body, size_t len, char **upload_id);

/*
 * The ETag of a CopyObjectResult or CompleteMultipartUploadResult.
 * -EIO when the document is an <Error> (S3 can report a failed copy or
 * completion with status 200); *err then describes it.
 */
int s3xml_parse_result_etag(const char *body, size_t len, char *etag, size_t etag_len,
                            struct s3xml_error *err);

/*
 * The body of CompleteMultipartUpload for parts 1..n with these ETags.
 * The caller frees it.  NULL on failure.
 */
char *s3xml_complete_body(char *const *etags, size_t n);

/* "2009-10-12T17:50:30.000Z" to a timespec; -EINVAL if malformed. */
int s3xml_parse_time(const char *s, struct timespec *t);

#endif
