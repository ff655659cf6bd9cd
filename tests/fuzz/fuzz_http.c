/*
 * fuzz_http.c - libFuzzer target for what backends/s3/http.c reads from a
 * server: response header lines and response bodies.
 *
 * fuzz-sources: backends/s3/http.c
 * fuzz-pkgs: libcurl openssl
 *
 * (tests/fuzz/run.sh reads the two lines above: what to compile in, and
 * which pkg-config packages to link.)
 *
 * Input layout: byte 0 picks the status (200, 206, 404, 500) and whether
 * the body goes to a caller's buffer; bytes 1-2 are that buffer's size
 * (little-endian, at most 65535), byte 3 the bytes to skip of a 200
 * answer, byte 4 the size of the pieces the body is handed over in (as
 * libcurl hands it over in pieces).  The rest is the response: header
 * lines up to the first empty line, each handed to http_header_line()
 * with its line end, then the body.
 *
 * Checked on every input, aborting on a violation:
 *   - etag, request_id and bucket_region are terminated inside their
 *     arrays and hold no control character, DEL or '"' (they go into
 *     request headers and log lines);
 *   - a meta mtime has tv_sec >= 0 and tv_nsec in [0, 1e9);
 *   - a body collected in res->body is exactly the bytes handed over,
 *     NUL-terminated;
 *   - a body for the caller's buffer: dst_len <= dst_cap, the buffer
 *     holds exactly the body's bytes after the skipped ones, nothing is
 *     written past dst_cap (a canary), and dst_overflow is set exactly
 *     when the body had more bytes than fit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "s3/http_i.h"

#define CANARY 16

static const long statuses[] = {200, 206, 404, 500};

static void check_header_value(const char *s, size_t cap)
{
	CHECK(memchr(s, '\0', cap) != NULL);
	for (; *s != '\0'; s++)
		CHECK((unsigned char)*s >= ' ' && (unsigned char)*s != 0x7f && *s != '"');
}

static void check_headers(const struct http_result *r)
{
	check_header_value(r->etag, sizeof(r->etag));
	check_header_value(r->request_id, sizeof(r->request_id));
	check_header_value(r->bucket_region, sizeof(r->bucket_region));
	if (r->has_meta_mtime) {
		CHECK(r->meta_mtime.tv_sec >= 0);
		CHECK(r->meta_mtime.tv_nsec >= 0 && r->meta_mtime.tv_nsec < 1000000000L);
	}
}

/* Hand the header lines of msg (up to an empty line) over; returns where
 * the body starts. */
static size_t feed_headers(struct http_result *r, const uint8_t *msg, size_t size)
{
	size_t pos = 0;

	while (pos < size) {
		const uint8_t *nl = memchr(msg + pos, '\n', size - pos);
		size_t end = nl != NULL ? (size_t)(nl - msg) + 1 : size;
		size_t n = end - pos;

		http_header_line(r, (const char *)msg + pos, n);
		check_headers(r);
		pos = end;
		if (n == 1 || (n == 2 && msg[end - 2] == '\r'))
			break; /* the empty line */
	}
	return pos;
}

static void check_dst(const struct http_call *c, const struct http_result *r,
                      const unsigned char *dst, const uint8_t *body, size_t len, long status)
{
	size_t skip = status == 200 ? (size_t)c->dst_skip : 0;
	size_t avail = len > skip ? len - skip : 0;
	size_t want = avail < c->dst_cap ? avail : c->dst_cap;

	CHECK(r->dst_len <= c->dst_cap);
	CHECK(r->dst_len == want);
	CHECK(memcmp(dst, body + skip, want) == 0);
	CHECK(r->dst_overflow == (avail > c->dst_cap));
	for (size_t i = 0; i < CANARY; i++)
		CHECK(dst[c->dst_cap + i] == 0xa5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_body_state s = {0};
	struct http_result r;
	struct http_call c = {.method = "GET"};
	unsigned char *dst = NULL;
	size_t body, piece;
	long status;

	if (size < 5)
		return 0;
	memset(&r, 0, sizeof(r));
	status = statuses[data[0] & 3];
	if (data[0] & 4) {
		c.dst_cap = (size_t)data[1] | (size_t)data[2] << 8;
		c.dst_skip = data[3];
		dst = malloc(c.dst_cap + CANARY);
		if (dst == NULL)
			return 0;
		memset(dst, 0xa5, c.dst_cap + CANARY);
		c.dst = dst;
	}
	piece = data[4] ? data[4] : 1;
	data += 5;
	size -= 5;

	body = feed_headers(&r, data, size);
	for (size_t pos = body; pos < size;) {
		size_t n = size - pos < piece ? size - pos : piece;

		size_t took = http_body_bytes(&c, &r, &s, status, (const char *)data + pos, n);

		if (took == 0 && r.dst_overflow)
			break; /* more than the buffer: curl stops the transfer */
		CHECK(took == n);
		pos += n;
	}
	if (dst != NULL && status >= 200 && status <= 299) {
		check_dst(&c, &r, dst, data + body, size - body, status);
		CHECK(r.body == NULL);
	} else if (size > body) {
		CHECK(r.body != NULL && r.body_len == size - body);
		CHECK(memcmp(r.body, data + body, r.body_len) == 0 && r.body[r.body_len] == '\0');
	}
	http_result_clear(&r);
	free(dst);
	return 0;
}
