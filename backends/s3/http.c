/*
 * http.c - see http.h.
 *
 * Pool: a stack of idle CURL easy handles under one mutex.  A handle is
 * taken for one exchange and given back afterwards with its connections
 * still open, so the next exchange reuses them (keep-alive).  Handles are
 * created on demand; at most MAX_IDLE are kept idle.
 *
 * Request bodies are rewindable: curl resends a body on a fresh connection
 * when a kept-alive one turns out to be closed, and asks seek_cb to start
 * it again.  The read position lives in the exchange's struct xfer, so
 * every exchange (every attempt of the S3 layer) starts at offset 0 too.
 * When asked, the body's MD5 is computed as it is handed over, so a caller
 * can later recognise the object a lost answer had stored.
 */
#include "http_i.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_IDLE 64

struct http_pool {
	struct http_pool_opts opts;
	char *ca_bundle;
	pthread_mutex_t lock;
	CURL *idle[MAX_IDLE]; /* [lock] */
	size_t n_idle;        /* [lock] */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct http_pool *http_pool_create(const struct http_pool_opts *opts)
{
	struct http_pool *p;

	pthread_once(&global_once, global_init);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->opts = *opts;
	if (opts->ca_bundle != NULL && (p->ca_bundle = strdup(opts->ca_bundle)) == NULL) {
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	p->opts.ca_bundle = p->ca_bundle;
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void http_pool_destroy(struct http_pool *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_idle; i++)
		curl_easy_cleanup(p->idle[i]);
	pthread_mutex_destroy(&p->lock);
	free(p->ca_bundle);
	free(p);
}

static CURL *take(struct http_pool *p)
{
	CURL *h = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->n_idle > 0)
		h = p->idle[--p->n_idle];
	pthread_mutex_unlock(&p->lock);
	return h ? h : curl_easy_init();
}

static void give_back(struct http_pool *p, CURL *h, int keep)
{
	if (keep) {
		pthread_mutex_lock(&p->lock);
		if (p->n_idle < MAX_IDLE) {
			p->idle[p->n_idle++] = h;
			h = NULL;
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (h != NULL)
		curl_easy_cleanup(h);
}

/* State of one exchange, shared by the curl callbacks. */
struct xfer {
	const struct http_call *call;
	struct http_result *res;
	CURL *h;
	uint64_t sent; /* request body bytes handed to curl (its read position) */
	struct http_body_state body;
	int read_error;
	EVP_MD_CTX *md5;  /* call->want_md5: MD5 of the body as it is handed over */
	uint64_t md5_len; /* bytes [0, md5_len) are in md5 */
};

/* Hand the body's MD5 to the result once all of it went into md5. */
static void md5_update(struct xfer *x, const char *buf, size_t len, uint64_t body_len)
{
	unsigned char md[16];

	if (x->md5 == NULL || x->res->body_md5[0] != '\0' || x->sent != x->md5_len)
		return; /* none asked, done, or not contiguous from 0 */
	EVP_DigestUpdate(x->md5, buf, len);
	x->md5_len += len;
	if (x->md5_len < body_len)
		return;
	EVP_DigestFinal_ex(x->md5, md, NULL);
	for (int i = 0; i < 16; i++)
		sprintf(x->res->body_md5 + 2 * i, "%02x", md[i]);
}

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *opaque)
{
	struct xfer *x = opaque;
	const struct http_call *c = x->call;
	size_t want = size * nmemb;
	uint64_t body_len = c->src != NULL ? c->src_len : c->body_len;

	if (c->src != NULL) {
		uint64_t left = c->src_len - x->sent;

		if (want > left)
			want = (size_t)left;
		if (want > 0 && c->src->read(c->src, c->src_off + x->sent, buf, want) < 0) {
			x->read_error = 1;
			return CURL_READFUNC_ABORT;
		}
	} else {
		size_t left = c->body_len - (size_t)x->sent;

		if (want > left)
			want = left;
		memcpy(buf, c->body + x->sent, want);
	}
	md5_update(x, buf, want, body_len);
	x->sent += want;
	if (x->sent == body_len)
		x->res->body_sent = 1;
	return want;
}

/*
 * curl rewinds the body to send it again (a kept-alive connection the
 * server had closed, a redirect): the next read starts at offset.
 */
static int seek_cb(void *opaque, curl_off_t offset, int origin)
{
	struct xfer *x = opaque;
	const struct http_call *c = x->call;
	uint64_t body_len = c->src != NULL ? c->src_len : c->body_len;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->sent = (uint64_t)offset;
	if (offset == 0 && x->md5 != NULL && x->res->body_md5[0] == '\0') {
		EVP_DigestInit_ex(x->md5, EVP_md5(), NULL);
		x->md5_len = 0;
	}
	return CURL_SEEKFUNC_OK;
}

static int append_body(struct http_result *r, struct http_body_state *s, const char *data,
                       size_t len)
{
	if (r->body_len + len + 1 > s->body_cap) {
		size_t cap = s->body_cap ? s->body_cap : 4096;
		char *b;

		while (cap < r->body_len + len + 1)
			cap *= 2;
		if (cap > (64u << 20))
			return -1; /* no XML or error document is that large */
		b = realloc(r->body, cap);
		if (b == NULL)
			return -1;
		r->body = b;
		s->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

size_t http_body_bytes(const struct http_call *c, struct http_result *res,
                       struct http_body_state *s, long status, const char *data, size_t len)
{
	if (c->dst == NULL || status < 200 || status > 299)
		return append_body(res, s, data, len) == 0 ? len : 0;
	/* Data response into the caller's buffer. */
	/* dst_skip applies to a whole-object answer (200), not to a 206. */
	uint64_t skip_total = status == 200 ? c->dst_skip : 0;
	for (size_t i = 0; i < len;) {
		uint64_t pos = s->received;
		size_t n = len - i;

		if (pos < skip_total) {
			uint64_t skip = skip_total - pos;
			if (skip > n)
				skip = n;
			s->received += skip;
			i += (size_t)skip;
			continue;
		}
		pos -= skip_total;
		if (pos >= c->dst_cap) {
			/* More than asked for: stop reading (an endless body
			 * would hold the request for ever). */
			res->dst_overflow = 1;
			return 0;
		}
		if (n > c->dst_cap - pos)
			n = (size_t)(c->dst_cap - pos);
		memcpy((char *)c->dst + pos, data + i, n);
		res->dst_len = (size_t)(pos + n);
		s->received += n;
		i += n;
	}
	return len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct xfer *x = opaque;
	long status = 0;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	return http_body_bytes(x->call, x->res, &x->body, status, data, size * nmemb);
}

/* Trim a header value in place; returns it. */
static char *trim(char *s, size_t len)
{
	while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	s[len] = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/*
 * Copy a header value that goes into request headers or log lines (an
 * ETag, a request id, a region) into out[cap]; "" when it holds a control
 * character, DEL or a quote, which no honest server sends there.
 */
static void copy_plain(char *out, size_t cap, const char *value)
{
	out[0] = '\0';
	for (const char *p = value; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || (unsigned char)*p == 0x7f || *p == '"')
			return;
	snprintf(out, cap, "%s", value);
}

/* The latest mtime taken from metadata: 9999-12-31T23:59:59Z. */
#define MTIME_MAX 253402300799.0

/*
 * x-amz-meta-mtime as s3fs writes it: seconds, possibly with a fraction.
 * Anything else (negative, NaN, past year 9999, trailing junk) is ignored:
 * -1, and the object's Last-Modified stands.
 */
static int parse_meta_mtime(const char *s, struct timespec *t)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0 && v <= MTIME_MAX))
		return -1;
	t->tv_sec = (time_t)v;
	t->tv_nsec = (long)((v - (double)t->tv_sec) * 1e9);
	if (t->tv_nsec > 999999999)
		t->tv_nsec = 999999999;
	return 0;
}

static int parse_uint32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *end != '\0' || v > 0xffffffffUL)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

void http_header_line(struct http_result *r, const char *data, size_t len)
{
	char line[1024], *colon, *name, *value;

	if (len >= sizeof(line))
		return; /* not one we care about */
	memcpy(line, data, len);
	line[len] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after 100-continue or a redirect): reset. */
		r->has_content_length = r->has_content_range = r->has_total_only = 0;
		r->etag[0] = '\0';
		r->meta = 0;
		r->has_meta_mtime = 0;
		return;
	}
	colon = strchr(line, ':');
	if (colon == NULL)
		return;
	*colon = '\0';
	name = line;
	value = trim(colon + 1, strlen(colon + 1));
	if (strcasecmp(name, "ETag") == 0) {
		size_t n = strlen(value);
		if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
			value[n - 1] = '\0';
			value++;
		}
		copy_plain(r->etag, sizeof(r->etag), value);
	} else if (strcasecmp(name, "Content-Length") == 0) {
		r->content_length = strtoull(value, NULL, 10);
		r->has_content_length = 1;
	} else if (strcasecmp(name, "Content-Range") == 0) {
		unsigned long long a, b, total;
		if (sscanf(value, "bytes %llu-%llu/%llu", &a, &b, &total) == 3) {
			r->range_start = a;
			r->range_total = total;
			r->has_content_range = 1;
		} else if (sscanf(value, "bytes */%llu", &total) == 1) {
			r->range_total = total; /* a 416's "nothing there" */
			r->has_total_only = 1;
		}
	} else if (strcasecmp(name, "Last-Modified") == 0) {
		time_t t = curl_getdate(value, NULL);
		if (t != (time_t)-1) {
			r->last_modified.tv_sec = t;
			r->last_modified.tv_nsec = 0;
		}
	} else if (strcasecmp(name, "x-amz-request-id") == 0) {
		copy_plain(r->request_id, sizeof(r->request_id), value);
	} else if (strcasecmp(name, "x-amz-bucket-region") == 0) {
		copy_plain(r->bucket_region, sizeof(r->bucket_region), value);
	} else if (strcasecmp(name, "x-amz-meta-mode") == 0) {
		if (parse_uint32(value, &r->mode) == 0)
			r->meta |= BACKEND_META_MODE;
	} else if (strcasecmp(name, "x-amz-meta-uid") == 0) {
		if (parse_uint32(value, &r->uid) == 0)
			r->meta |= BACKEND_META_UID;
	} else if (strcasecmp(name, "x-amz-meta-gid") == 0) {
		if (parse_uint32(value, &r->gid) == 0)
			r->meta |= BACKEND_META_GID;
	} else if (strcasecmp(name, "x-amz-meta-mtime") == 0) {
		r->has_meta_mtime = parse_meta_mtime(value, &r->meta_mtime) == 0;
	}
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct xfer *x = opaque;

	http_header_line(x->res, data, size * nmemb);
	return size * nmemb;
}

int http_perform(struct http_pool *pool, const struct http_call *call, struct http_result *res)
{
	struct curl_slist *hdrs = NULL;
	struct xfer x = {.call = call, .res = res};
	int has_body = call->src != NULL || call->body != NULL;
	uint64_t body_len = call->src != NULL ? call->src_len : call->body_len;
	long reused = 0;
	CURLcode rc;
	CURL *h;

	memset(res, 0, sizeof(*res));
	if (has_body && call->want_md5) {
		x.md5 = EVP_MD_CTX_new();
		if (x.md5 == NULL || !EVP_DigestInit_ex(x.md5, EVP_md5(), NULL)) {
			EVP_MD_CTX_free(x.md5);
			return -ENOMEM;
		}
	}
	h = take(pool);
	if (h == NULL) {
		EVP_MD_CTX_free(x.md5);
		return -ENOMEM;
	}
	x.h = h;
	for (size_t i = 0; i < call->n_headers; i++) {
		struct curl_slist *n = curl_slist_append(hdrs, call->headers[i]);
		if (n == NULL) {
			curl_slist_free_all(hdrs);
			give_back(pool, h, 1);
			EVP_MD_CTX_free(x.md5);
			return -ENOMEM;
		}
		hdrs = n;
	}
	/* No "Expect: 100-continue" round trip, no default Content-Type. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (has_body)
		hdrs = curl_slist_append(hdrs, "Content-Type:");

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, call->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (pool->opts.ca_bundle != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, pool->opts.ca_bundle);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, pool->opts.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, pool->opts.low_speed_time_s);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, pool->opts.low_speed_bytes);
	if (call->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, call->timeout_ms);
	else if (pool->opts.max_time_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, pool->opts.max_time_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	if (strcmp(call->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(call->method, "PUT") == 0 ||
	           (strcmp(call->method, "POST") == 0 && has_body)) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
		if (strcmp(call->method, "POST") == 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
	} else if (strcmp(call->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call->method);
	}

	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &reused);
	res->reused = reused == 0; /* no new connection was opened */
	res->curl_code = (int)rc;
	curl_slist_free_all(hdrs);
	EVP_MD_CTX_free(x.md5);
	if (has_body && body_len == 0) {
		res->body_sent = 1; /* nothing to hand over */
		if (call->want_md5)
			strcpy(res->body_md5, "d41d8cd98f00b204e9800998ecf8427e");
	}
	if (rc == CURLE_WRITE_ERROR && res->dst_overflow)
		rc = CURLE_OK; /* an answer, cut where the caller's buffer ends */
	if (rc != CURLE_OK) {
		snprintf(res->curl_error, sizeof(res->curl_error), "%s", curl_easy_strerror(rc));
		res->status = 0;
		/* A handle whose connection broke is still reusable. */
		give_back(pool, h, 1);
		return -EIO;
	}
	give_back(pool, h, 1);
	return 0;
}

void http_result_clear(struct http_result *res)
{
	free(res->body);
	res->body = NULL;
	res->body_len = 0;
}

int http_transport_retryable(int curl_code)
{
	switch (curl_code) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_SEND_FAIL_REWIND:
	case CURLE_RECV_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}
