/*
 * sigv4.c - AWS Signature Version 4, see sigv4.h for the contract.
 *
 * Design
 *   sigv4_sign() is one straight pipeline, every step a pure function of
 *   the request:
 *
 *     validate -> canonical headers -> canonical request -> string to sign
 *              -> derive key -> signature -> Authorization + headers to add
 *
 *   1. validate()   rejects anything that would make a header unsafe to
 *      send (CR/LF, control bytes), a scope that could not be parsed back
 *      ('/' in a region), or a request the signer cannot sign correctly
 *      (no Host, a header the signer owns passed in by the caller).
 *   2. The header list is copied into struct canon_header entries (name
 *      lower-cased, value trimmed and blank runs folded), the signer's own
 *      headers appended, and the lot sorted by (name, position given) so
 *      that duplicates keep their order when joined with ','.
 *   3. Strings are built in struct buf, a growable buffer whose error is
 *      sticky (one check at the end instead of one per append) and which
 *      wipes the old block whenever it grows or is dropped, because the
 *      canonical request carries the session token.
 *
 * Invariants (checked by check_result() in debug builds)
 *   - The canonical request has exactly 5 + N newlines, N the number of
 *     distinct signed header names, i.e. no header value or name smuggled
 *     a line break in.
 *   - Its path line holds only unreserved bytes, '/' and %XX (upper hex).
 *   - signed_headers holds N names separated by N - 1 ';'.
 *
 * Secrets
 *   "AWS4" + secret and every intermediate HMAC key sit in buffers wiped
 *   with OPENSSL_cleanse() before they are freed or go out of scope.
 */
#include "sigv4.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* Longest secret or HMAC message we accept: HMAC() takes an int key length. */
#define SIGV4_SECRET_MAX 4096

/* ------------------------------------------------------------------------ */
/* Character classes                                                        */

static int is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_unreserved(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 9110 token character (header names, methods). */
static int is_tchar(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int token_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!is_tchar(*p))
			return 0;
	return 1;
}

/* Header value: HTAB, SP..~ and bytes >= 0x80 (obs-text).  No CR or LF. */
static int field_value_ok(const char *s)
{
	if (s == NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!(*p == '\t' || (*p >= 0x20 && *p != 0x7f)))
			return 0;
	return 1;
}

/* Region or service: a credential scope component. */
static int scope_part_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!(is_alnum(*p) || *p == '-' || *p == '_' || *p == '.'))
			return 0;
	return 1;
}

static int access_key_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '/' || *p == ',')
			return 0;
	return 1;
}

static int payload_hash_ok(const char *s)
{
	size_t n;

	if (s == NULL || *s == '\0')
		return 0;
	n = strlen(s);
	if (n == 64 && strspn(s, "0123456789abcdef") == 64)
		return 1;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

/* ------------------------------------------------------------------------ */
/* struct buf: growable string, sticky error, wiped on growth and release   */

struct buf {
	char *p;
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
	int err;    /* 0 or -ENOMEM, sticky */
};

static void buf_reserve(struct buf *b, size_t extra)
{
	size_t want, cap;
	char *np;

	if (b->err)
		return;
	if (extra > SIZE_MAX - b->len - 1) {
		b->err = -ENOMEM;
		return;
	}
	want = b->len + extra + 1;
	if (want <= b->cap)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	/* Not realloc(): the old block may hold the session token. */
	np = malloc(cap);
	if (np == NULL) {
		b->err = -ENOMEM;
		return;
	}
	if (b->p) {
		memcpy(np, b->p, b->len + 1);
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	} else {
		np[0] = '\0';
	}
	b->p = np;
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	if (b->err)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_putc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

static void buf_encode(struct buf *b, const char *s, int keep_slash)
{
	size_t n = strlen(s);

	if (n > (SIZE_MAX - 1) / 3)
		b->err = -ENOMEM;
	buf_reserve(b, n * 3);
	if (b->err)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_unreserved(*p) || (keep_slash && *p == '/')) {
			b->p[b->len++] = (char)*p;
		} else {
			b->p[b->len++] = '%';
			b->p[b->len++] = hex_upper[*p >> 4];
			b->p[b->len++] = hex_upper[*p & 15];
		}
	}
	b->p[b->len] = '\0';
}

static void buf_wipe(struct buf *b)
{
	if (b->p) {
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

/* Hand the string over (the caller frees) or, after an error, drop it and
 * return NULL with errno set. */
static char *buf_detach(struct buf *b)
{
	char *s;

	if (b->err == 0 && b->p == NULL)
		buf_reserve(b, 0);
	if (b->err) {
		errno = -b->err;
		buf_wipe(b);
		return NULL;
	}
	s = b->p;
	memset(b, 0, sizeof(*b));
	return s;
}

/* Free and wipe a NUL-terminated string. */
static void str_wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* ------------------------------------------------------------------------ */
/* Hashing                                                                  */

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_lower[in[i] >> 4];
		out[2 * i + 1] = hex_lower[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -EIO;
	to_hex(md, 32, out);
	return 0;
}

/* out = HMAC-SHA256(key, msg).  0 or -EIO. */
static int hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                       unsigned char out[SIGV4_KEY_LEN])
{
	unsigned int outlen = 0;

	if (keylen > INT_MAX)
		return -EINVAL;
	if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) == NULL ||
	    outlen != SIGV4_KEY_LEN)
		return -EIO;
	return 0;
}

int sigv4_derive_key(const char *secret, const char *date8, const char *region, const char *service,
                     unsigned char key[SIGV4_KEY_LEN])
{
	unsigned char k1[SIGV4_KEY_LEN], k2[SIGV4_KEY_LEN];
	unsigned char *kbuf;
	size_t slen;
	int err;

	if (secret == NULL || date8 == NULL || strlen(date8) != 8 ||
	    strspn(date8, "0123456789") != 8 || !scope_part_ok(region) || !scope_part_ok(service))
		return -EINVAL;
	slen = strlen(secret);
	if (slen == 0 || slen > SIGV4_SECRET_MAX)
		return -EINVAL;
	kbuf = malloc(4 + slen);
	if (kbuf == NULL)
		return -ENOMEM;
	memcpy(kbuf, "AWS4", 4);
	memcpy(kbuf + 4, secret, slen);

	err = hmac_sha256(kbuf, 4 + slen, date8, 8, k1);
	if (err)
		goto out;
	err = hmac_sha256(k1, sizeof(k1), region, strlen(region), k2);
	if (err)
		goto out;
	err = hmac_sha256(k2, sizeof(k2), service, strlen(service), k1);
	if (err)
		goto out;
	err = hmac_sha256(k1, sizeof(k1), "aws4_request", 12, key);
out:
	if (err)
		OPENSSL_cleanse(key, SIGV4_KEY_LEN);
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(kbuf, 4 + slen);
	free(kbuf);
	return err;
}

/* ------------------------------------------------------------------------ */
/* Small public helpers                                                     */

char *sigv4_uri_encode(const char *s, int keep_slash)
{
	struct buf b = {0};

	if (s == NULL) {
		errno = EINVAL;
		return NULL;
	}
	buf_encode(&b, s, keep_slash);
	return buf_detach(&b);
}

/* Write v (0 <= v < 10^width) as width decimal digits. */
static char *put_digits(char *out, int v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		out[i] = (char)('0' + v % 10);
	return out + width;
}

int sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;
	char *p = out;

	if (gmtime_r(&t, &tm) == NULL)
		return -EINVAL;
	if (tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -EINVAL;
	p = put_digits(p, tm.tm_year + 1900, 4);
	p = put_digits(p, tm.tm_mon + 1, 2);
	p = put_digits(p, tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, tm.tm_hour, 2);
	p = put_digits(p, tm.tm_min, 2);
	p = put_digits(p, tm.tm_sec, 2);
	*p++ = 'Z';
	*p = '\0';
	return 0;
}

char *sigv4_header_line(const struct sigv4_header *h)
{
	struct buf b = {0};

	if (h == NULL || h->name == NULL || h->value == NULL) {
		errno = EINVAL;
		return NULL;
	}
	buf_puts(&b, h->name);
	buf_add(&b, ": ", 2);
	buf_puts(&b, h->value);
	return buf_detach(&b);
}

/* ------------------------------------------------------------------------ */
/* Canonical request                                                        */

/* One header as it appears in the canonical request. */
struct canon_header {
	char *name;   /* lower-case */
	char *value;  /* trimmed, blank runs folded to one SP */
	size_t order; /* position in the caller's list; ties keep it */
};

/* An encoded query parameter. */
struct canon_param {
	char *name;
	char *value;
};

static char *lower_dup(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);

	if (d == NULL)
		return NULL;
	for (size_t i = 0; i <= n; i++)
		d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	return d;
}

/* Trim leading/trailing blanks, fold each inner run of blanks into one SP. */
static char *fold_dup(const char *s)
{
	char *d = malloc(strlen(s) + 1);
	size_t o = 0;
	int blank = 0;

	if (d == NULL)
		return NULL;
	for (const char *p = s; *p; p++) {
		if (is_blank((unsigned char)*p)) {
			blank = o > 0;
			continue;
		}
		if (blank)
			d[o++] = ' ';
		blank = 0;
		d[o++] = *p;
	}
	d[o] = '\0';
	return d;
}

static int cmp_header(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return (x->order > y->order) - (x->order < y->order);
}

static int cmp_param(const void *a, const void *b)
{
	const struct canon_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static int has_token(const struct sigv4_credentials *creds)
{
	return creds->session_token != NULL && creds->session_token[0] != '\0';
}

/* Check everything before any work is done.  0 or -EINVAL. */
static int validate(const struct sigv4_credentials *creds, const struct sigv4_request *req)
{
	int have_host = 0;

	if (creds == NULL || req == NULL)
		return -EINVAL;
	if (!access_key_ok(creds->access_key_id) || creds->secret_access_key == NULL ||
	    creds->secret_access_key[0] == '\0' ||
	    strlen(creds->secret_access_key) > SIGV4_SECRET_MAX)
		return -EINVAL;
	if (has_token(creds) && !field_value_ok(creds->session_token))
		return -EINVAL;
	if (!token_ok(req->method) || req->path == NULL || req->path[0] != '/' ||
	    !payload_hash_ok(req->payload_hash) || !scope_part_ok(req->region) ||
	    !scope_part_ok(req->service))
		return -EINVAL;
	if ((req->n_query && req->query == NULL) || (req->n_headers && req->headers == NULL))
		return -EINVAL;
	for (size_t i = 0; i < req->n_query; i++)
		if (req->query[i].name == NULL)
			return -EINVAL;
	for (size_t i = 0; i < req->n_headers; i++) {
		const char *n = req->headers[i].name;

		if (!token_ok(n) || !field_value_ok(req->headers[i].value))
			return -EINVAL;
		if (strcasecmp(n, "host") == 0)
			have_host = 1;
		if (strcasecmp(n, "authorization") == 0 || strcasecmp(n, "x-amz-date") == 0)
			return -EINVAL;
		if (has_token(creds) && strcasecmp(n, "x-amz-security-token") == 0)
			return -EINVAL;
		if ((req->flags & SIGV4_CONTENT_SHA256) &&
		    strcasecmp(n, "x-amz-content-sha256") == 0)
			return -EINVAL;
	}
	return have_host ? 0 : -EINVAL;
}

static void free_headers(struct canon_header *h, size_t n)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		str_wipe_free(h[i].value);
	}
	free(h);
}

/*
 * Build the sorted canonical header list: the caller's headers plus the
 * signer's own.  *out gets an array of *n entries the caller releases with
 * free_headers().  0 or -ENOMEM.
 */
static int build_headers(const struct sigv4_credentials *creds, const struct sigv4_request *req,
                         const char *amz_date, struct canon_header **out, size_t *n)
{
	struct canon_header *h;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	h = calloc(req->n_headers + 3, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_headers; i++, k++) {
		h[k].name = lower_dup(req->headers[i].name);
		h[k].value = fold_dup(req->headers[i].value);
		h[k].order = k;
		if (h[k].name == NULL || h[k].value == NULL)
			goto nomem;
	}
	h[k].name = strdup("x-amz-date");
	h[k].value = strdup(amz_date);
	h[k].order = k;
	if (h[k].name == NULL || h[k++].value == NULL)
		goto nomem;
	if (has_token(creds) && !(req->flags & SIGV4_UNSIGNED_TOKEN)) {
		h[k].name = strdup("x-amz-security-token");
		h[k].value = fold_dup(creds->session_token);
		h[k].order = k;
		if (h[k].name == NULL || h[k++].value == NULL)
			goto nomem;
	}
	if (req->flags & SIGV4_CONTENT_SHA256) {
		h[k].name = strdup("x-amz-content-sha256");
		h[k].value = strdup(req->payload_hash);
		h[k].order = k;
		if (h[k].name == NULL || h[k++].value == NULL)
			goto nomem;
	}
	qsort(h, k, sizeof(*h), cmp_header);
	*out = h;
	*n = k;
	return 0;
nomem:
	free_headers(h, req->n_headers + 3);
	return -ENOMEM;
}

/* Append the canonical query string (without a trailing newline). */
static int put_query(struct buf *b, const struct sigv4_request *req)
{
	struct canon_param *q;
	int err = 0;

	if (req->n_query == 0)
		return 0;
	q = calloc(req->n_query, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_query; i++) {
		const char *v = req->query[i].value;

		q[i].name = sigv4_uri_encode(req->query[i].name, 0);
		q[i].value = sigv4_uri_encode(v ? v : "", 0);
		if (q[i].name == NULL || q[i].value == NULL) {
			err = -ENOMEM;
			goto out;
		}
	}
	qsort(q, req->n_query, sizeof(*q), cmp_param);
	for (size_t i = 0; i < req->n_query; i++) {
		if (i)
			buf_putc(b, '&');
		buf_puts(b, q[i].name);
		buf_putc(b, '=');
		buf_puts(b, q[i].value);
	}
out:
	for (size_t i = 0; i < req->n_query; i++) {
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
	return err;
}

/*
 * Fill res->canonical_request and res->signed_headers.  0 or -ENOMEM; on
 * error nothing is left allocated.
 */
static int make_canonical_request(const struct sigv4_credentials *creds,
                                  const struct sigv4_request *req, struct sigv4_result *res)
{
	struct buf cr = {0}, sh = {0};
	struct canon_header *h = NULL;
	size_t n = 0;
	int err;

	err = build_headers(creds, req, res->amz_date, &h, &n);
	if (err)
		return err;

	buf_puts(&cr, req->method);
	buf_putc(&cr, '\n');
	buf_encode(&cr, req->path, 1);
	buf_putc(&cr, '\n');
	err = put_query(&cr, req);
	if (err)
		goto fail;
	buf_putc(&cr, '\n');
	for (size_t i = 0; i < n; i++) {
		int first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
		int last = i + 1 == n || strcmp(h[i].name, h[i + 1].name) != 0;

		if (first) {
			buf_puts(&cr, h[i].name);
			buf_putc(&cr, ':');
			if (sh.len)
				buf_putc(&sh, ';');
			buf_puts(&sh, h[i].name);
		} else {
			buf_putc(&cr, ',');
		}
		buf_puts(&cr, h[i].value);
		if (last)
			buf_putc(&cr, '\n');
	}
	buf_putc(&cr, '\n');
	buf_puts(&cr, sh.p ? sh.p : "");
	buf_putc(&cr, '\n');
	buf_puts(&cr, req->payload_hash);

	err = cr.err ? cr.err : sh.err;
	if (err)
		goto fail;
	free_headers(h, n);
	res->canonical_request = buf_detach(&cr);
	res->signed_headers = buf_detach(&sh);
	return 0;
fail:
	free_headers(h, n);
	buf_wipe(&cr);
	buf_wipe(&sh);
	return err;
}

/* ------------------------------------------------------------------------ */
/* Signing                                                                  */

#ifndef NDEBUG
static int check_result(const struct sigv4_result *res)
{
	size_t newlines = 0, semis = 0;
	const char *p, *e;

	for (p = res->canonical_request; *p; p++)
		newlines += *p == '\n';
	for (p = res->signed_headers; *p; p++)
		semis += *p == ';';
	if (newlines != semis + 6)
		return 0;
	p = strchr(res->canonical_request, '\n') + 1;
	e = strchr(p, '\n');
	for (; p < e; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '%') {
			if (p + 2 >= e || !strchr(hex_upper, p[1]) || !strchr(hex_upper, p[2]))
				return 0;
			p += 2;
		} else if (!is_unreserved(c) && c != '/') {
			return 0;
		}
	}
	return strlen(res->signature) == 64;
}
#endif

/* Append an entry to res->add[]; value is copied.  0 or -ENOMEM. */
static int add_header(struct sigv4_result *res, const char *name, const char *value)
{
	char *v;

	assert(res->n_add < SIGV4_ADD_MAX);
	v = strdup(value);
	if (v == NULL)
		return -ENOMEM;
	res->add[res->n_add].name = name;
	res->add[res->n_add].value = v;
	res->n_add++;
	return 0;
}

int sigv4_sign(const struct sigv4_credentials *creds, const struct sigv4_request *req,
               struct sigv4_result *res)
{
	unsigned char key[SIGV4_KEY_LEN], mac[SIGV4_KEY_LEN];
	char creq_hash[65], date8[9];
	struct buf sts = {0}, auth = {0};
	int err;

	if (res == NULL)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	err = validate(creds, req);
	if (err)
		return err;
	err = sigv4_amz_date(req->timestamp, res->amz_date);
	if (err)
		return err;
	memcpy(date8, res->amz_date, 8);
	date8[8] = '\0';

	err = make_canonical_request(creds, req, res);
	if (err)
		goto fail;
	err = sigv4_sha256_hex(res->canonical_request, strlen(res->canonical_request), creq_hash);
	if (err)
		goto fail;

	buf_puts(&sts, SIGV4_ALGORITHM "\n");
	buf_puts(&sts, res->amz_date);
	buf_putc(&sts, '\n');
	buf_puts(&sts, date8);
	buf_putc(&sts, '/');
	buf_puts(&sts, req->region);
	buf_putc(&sts, '/');
	buf_puts(&sts, req->service);
	buf_puts(&sts, "/aws4_request\n");
	buf_puts(&sts, creq_hash);
	res->string_to_sign = buf_detach(&sts);
	if (res->string_to_sign == NULL) {
		err = -ENOMEM;
		goto fail;
	}

	err = sigv4_derive_key(creds->secret_access_key, date8, req->region, req->service, key);
	if (err)
		goto fail;
	err = hmac_sha256(key, sizeof(key), res->string_to_sign, strlen(res->string_to_sign), mac);
	OPENSSL_cleanse(key, sizeof(key));
	if (err)
		goto fail;
	to_hex(mac, sizeof(mac), res->signature);
	OPENSSL_cleanse(mac, sizeof(mac));

	buf_puts(&auth, SIGV4_ALGORITHM " Credential=");
	buf_puts(&auth, creds->access_key_id);
	buf_putc(&auth, '/');
	buf_puts(&auth, date8);
	buf_putc(&auth, '/');
	buf_puts(&auth, req->region);
	buf_putc(&auth, '/');
	buf_puts(&auth, req->service);
	buf_puts(&auth, "/aws4_request, SignedHeaders=");
	buf_puts(&auth, res->signed_headers);
	buf_puts(&auth, ", Signature=");
	buf_puts(&auth, res->signature);
	res->authorization = buf_detach(&auth);
	if (res->authorization == NULL) {
		err = -ENOMEM;
		goto fail;
	}

	err = add_header(res, "X-Amz-Date", res->amz_date);
	if (!err && has_token(creds))
		err = add_header(res, "X-Amz-Security-Token", creds->session_token);
	if (!err && (req->flags & SIGV4_CONTENT_SHA256))
		err = add_header(res, "X-Amz-Content-SHA256", req->payload_hash);
	if (!err)
		err = add_header(res, "Authorization", res->authorization);
	if (err)
		goto fail;
	assert(check_result(res));
	return 0;
fail:
	sigv4_result_free(res);
	return err;
}

void sigv4_result_free(struct sigv4_result *res)
{
	if (res == NULL)
		return;
	str_wipe_free(res->canonical_request);
	str_wipe_free(res->string_to_sign);
	str_wipe_free(res->signed_headers);
	str_wipe_free(res->authorization);
	for (size_t i = 0; i < res->n_add && i < SIGV4_ADD_MAX; i++)
		str_wipe_free((char *)res->add[i].value);
	OPENSSL_cleanse(res, sizeof(*res)); /* zero-fills */
}

/* ------------------------------------------------------------------------ */
/* One piece at a time                                                      */

enum piece { PIECE_CREQ, PIECE_STS, PIECE_SIGNATURE, PIECE_AUTHORIZATION };

static char *sign_piece(const struct sigv4_credentials *creds, const struct sigv4_request *req,
                        enum piece which)
{
	struct sigv4_result res;
	char *s = NULL;
	int err;

	err = sigv4_sign(creds, req, &res);
	if (err) {
		errno = -err;
		return NULL;
	}
	switch (which) {
	case PIECE_CREQ:
		s = res.canonical_request;
		res.canonical_request = NULL;
		break;
	case PIECE_STS:
		s = res.string_to_sign;
		res.string_to_sign = NULL;
		break;
	case PIECE_SIGNATURE:
		s = strdup(res.signature);
		break;
	case PIECE_AUTHORIZATION:
		s = res.authorization;
		res.authorization = NULL;
		break;
	}
	sigv4_result_free(&res);
	if (s == NULL)
		errno = ENOMEM;
	return s;
}

char *sigv4_canonical_request(const struct sigv4_credentials *creds,
                              const struct sigv4_request *req)
{
	return sign_piece(creds, req, PIECE_CREQ);
}

char *sigv4_string_to_sign(const struct sigv4_credentials *creds, const struct sigv4_request *req)
{
	return sign_piece(creds, req, PIECE_STS);
}

char *sigv4_signature(const struct sigv4_credentials *creds, const struct sigv4_request *req)
{
	return sign_piece(creds, req, PIECE_SIGNATURE);
}

char *sigv4_authorization(const struct sigv4_credentials *creds, const struct sigv4_request *req)
{
	return sign_piece(creds, req, PIECE_AUTHORIZATION);
}
