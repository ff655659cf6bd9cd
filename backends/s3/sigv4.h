/*
 * sigv4.h - AWS Signature Version 4 for the S3 backend (header-based
 * authentication, "AWS4-HMAC-SHA256").
 *
 * The signer is a pure function of its inputs: no global state, no clock,
 * no I/O, safe to call from any number of threads at once.  The HTTP layer
 * describes a request (method, raw object path, query parameters, the
 * headers it wants signed, the payload hash, region, service, time),
 * calls sigv4_sign() and adds the headers listed in the result to what it
 * sends:
 *
 *	struct sigv4_header hdrs[] = {{"Host", "bucket.s3.amazonaws.com"},
 *	                              {"Range", "bytes=0-9"}};
 *	struct sigv4_request req = {
 *		.method = "GET", .path = "/my key.txt",
 *		.headers = hdrs, .n_headers = 2,
 *		.payload_hash = SIGV4_EMPTY_SHA256, .region = "us-east-1",
 *		.service = "s3", .timestamp = time(NULL),
 *		.flags = SIGV4_CONTENT_SHA256,
 *	};
 *	struct sigv4_result res;
 *	int err = sigv4_sign(&creds, &req, &res);
 *	for (size_t i = 0; err == 0 && i < res.n_add; i++) {
 *		char *line = sigv4_header_line(&res.add[i]);  // "Name: value"
 *		... curl_slist_append(list, line); free(line); ...
 *	}
 *	sigv4_result_free(&res);
 *
 * What is signed
 *   Every header in req->headers, plus the ones the signer adds itself:
 *   x-amz-date always, x-amz-security-token when the credentials carry a
 *   session token, x-amz-content-sha256 when SIGV4_CONTENT_SHA256 is set
 *   (S3 requires it on every request; the generic AWS vectors do not use
 *   it).  Headers curl adds on its own (User-Agent, Accept, Expect, ...)
 *   are simply not signed, which S3 accepts.  The caller must send the
 *   headers it passed exactly as passed (up to the whitespace folding
 *   below) and must pass Host, with the port when it is not the default
 *   one for the scheme, because that is what curl will send.
 *
 * Canonical form (as S3 computes it)
 *   - Path: the raw, unencoded object path ("/bucket/my key+%.txt"); each
 *     byte except A-Z a-z 0-9 - . _ ~ and '/' becomes %XX (upper-case hex).
 *     Encoded once, never normalized: "a/./b", "x/../y" and "//" are kept
 *     as they are, because S3 keys may contain them.  The HTTP layer must
 *     put the same encoded path in the URL (sigv4_uri_encode(path, 1)).
 *   - Query: raw names and values, encoded like the path but with '/' as
 *     %2F, sorted by encoded name and then encoded value, each written as
 *     "name=value"; a parameter without a value ("?uploads") is "name=".
 *   - Headers: names lower-cased; values trimmed of leading and trailing
 *     blanks (SP, HTAB) and every inner run of blanks replaced by one SP;
 *     sorted by name; repeated names joined with ',' in the order given.
 *
 * Secrets
 *   The secret key and the keys derived from it live only in buffers that
 *   are wiped with OPENSSL_cleanse() before they are released.  Everything
 *   in a struct sigv4_result (which contains the session token) is wiped by
 *   sigv4_result_free().  Nothing here logs.  No derived key is cached:
 *   deriving one costs four HMACs, noise next to an HTTP round trip.
 */
#ifndef CHUNKFS_SIGV4_H
#define CHUNKFS_SIGV4_H

#include <stddef.h>
#include <time.h>

/* Hex SHA-256 of the empty string: the payload hash of a request with no body. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* Payload hash that tells S3 the body is not covered by the signature. */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_KEY_LEN   32 /* bytes of a derived signing key */
#define SIGV4_ADD_MAX   4  /* most headers sigv4_sign() asks the caller to add */

struct sigv4_credentials {
	const char *access_key_id;     /* printable ASCII, no SP, '/' or ',' */
	const char *secret_access_key; /* non-empty */
	const char *session_token;     /* NULL or "" when there is none */
};

/* A query parameter: raw (unencoded) bytes.  value NULL means no value. */
struct sigv4_param {
	const char *name;
	const char *value;
};

/* A header: any case for the name; the value must not hold CR, LF or
 * other control characters except HTAB. */
struct sigv4_header {
	const char *name;
	const char *value;
};

enum {
	/* Add and sign "x-amz-content-sha256: <payload_hash>".  S3 wants it. */
	SIGV4_CONTENT_SHA256 = 1 << 0,
	/* Send x-amz-security-token but leave it out of the signature (a mode
	 * some non-S3 services use; the AWS vectors test it).  Not for S3. */
	SIGV4_UNSIGNED_TOKEN = 1 << 1,
};

struct sigv4_request {
	const char *method; /* "GET", "PUT", ... (an HTTP token) */
	const char *path;   /* raw object path, must start with '/' */
	const struct sigv4_param *query;
	size_t n_query;
	/* Headers to sign; must include Host and must not include
	 * Authorization or any header the signer adds itself (x-amz-date,
	 * x-amz-security-token when there is a token, x-amz-content-sha256
	 * with SIGV4_CONTENT_SHA256). */
	const struct sigv4_header *headers;
	size_t n_headers;
	/* 64 lower-case hex digits, or an upper-case literal such as
	 * SIGV4_UNSIGNED_PAYLOAD or "STREAMING-AWS4-HMAC-SHA256-PAYLOAD". */
	const char *payload_hash;
	const char *region;  /* "us-east-1"; letters, digits, '-', '_', '.' */
	const char *service; /* "s3"; same characters as region */
	time_t timestamp;    /* the request time, usually time(NULL) */
	unsigned flags;      /* SIGV4_* bits above */
};

/*
 * Everything sigv4_sign() produced.  Owned by the struct: release with
 * sigv4_result_free().  add[] lists the headers the caller must send on top
 * of req->headers, in this order: X-Amz-Date, then X-Amz-Security-Token
 * and X-Amz-Content-SHA256 when they apply, then Authorization last.  The
 * names are static strings, the values belong to the result.
 */
struct sigv4_result {
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers; /* "host;range;x-amz-date" */
	char signature[65];   /* lower-case hex */
	char *authorization;  /* value of the Authorization header */
	char amz_date[17];    /* "20150830T123600Z" */
	struct sigv4_header add[SIGV4_ADD_MAX];
	size_t n_add;
};

/*
 * Sign req with creds and fill *res.  Returns 0, -EINVAL for a malformed
 * request or credentials (see the field comments; nothing is half-signed)
 * or -ENOMEM.  On error *res holds nothing to free, though calling
 * sigv4_result_free() on it is harmless.
 */
int sigv4_sign(const struct sigv4_credentials *creds, const struct sigv4_request *req,
               struct sigv4_result *res);

/* Wipe and free what *res holds and zero it.  Safe on a zeroed result. */
void sigv4_result_free(struct sigv4_result *res);

/*
 * The single pieces of sigv4_sign(), each a NUL-terminated string the
 * caller frees (free(); the first two contain the session token when there
 * is one).  NULL with errno set (EINVAL, ENOMEM) on failure.
 */
char *sigv4_canonical_request(const struct sigv4_credentials *creds,
                              const struct sigv4_request *req);
char *sigv4_string_to_sign(const struct sigv4_credentials *creds, const struct sigv4_request *req);
char *sigv4_signature(const struct sigv4_credentials *creds, const struct sigv4_request *req);
char *sigv4_authorization(const struct sigv4_credentials *creds, const struct sigv4_request *req);

/* "Name: value" for curl_slist_append(); the caller frees (the line holds
 * the session token when h is that header).  NULL, errno EINVAL or ENOMEM
 * on failure. */
char *sigv4_header_line(const struct sigv4_header *h);

/*
 * Derive the signing key HMAC(HMAC(HMAC(HMAC("AWS4" secret, date8), region),
 * service), "aws4_request") into key.  date8 is "YYYYMMDD".  Returns 0 or
 * -EINVAL / -ENOMEM.  The caller wipes key (OPENSSL_cleanse) when done.
 */
int sigv4_derive_key(const char *secret, const char *date8, const char *region, const char *service,
                     unsigned char key[SIGV4_KEY_LEN]);

/* Lower-case hex SHA-256 of len bytes at data into out.  Returns 0 or -EIO. */
int sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Percent-encode s the SigV4 way: unreserved bytes (A-Z a-z 0-9 - . _ ~)
 * stay, '/' stays when keep_slash is non-zero, every other byte becomes %XX
 * with upper-case hex.  Returns a string the caller frees, or NULL with
 * errno ENOMEM.
 */
char *sigv4_uri_encode(const char *s, int keep_slash);

/* Format t as "YYYYMMDDTHHMMSSZ" (UTC) into out.  Returns 0, or -EINVAL when
 * the year does not fit in four digits. */
int sigv4_amz_date(time_t t, char out[17]);

#endif
