/*
 * http_i.h - the parts of http.c that read what a server sends, exposed
 * for the unit tests and the fuzz target (tests/fuzz/fuzz_http.c).  Only
 * http.c and tests include this.
 */
#ifndef CHUNKFS_HTTP_I_H
#define CHUNKFS_HTTP_I_H

#include "http.h"

/* Where one exchange's response body has got to. */
struct http_body_state {
	uint64_t received; /* 2xx body bytes seen for call->dst (before skipping) */
	size_t body_cap;   /* bytes allocated for res->body */
};

/*
 * One header line as libcurl hands it over (status line or "Name: value",
 * with its line end, not NUL-terminated): updates the headers of interest
 * in *res.  Values that cannot be used safely (an ETag, request id or
 * region holding control characters or quotes) are ignored.
 */
void http_header_line(struct http_result *res, const char *line, size_t len);

/*
 * len bytes of the response body, for an answer with this status: into
 * call->dst as http_call describes, or appended to res->body.  Returns
 * len, or 0 to abort the exchange (res->body would grow past its limit,
 * or out of memory).
 */
size_t http_body_bytes(const struct http_call *call, struct http_result *res,
                       struct http_body_state *s, long status, const char *data, size_t len);

#endif
