/*
 * creds.c - the AWS credentials provider chain, see creds.h for the
 * contract.
 *
 * Design
 *   creds_provider_create() walks the chain once.  Each source is a
 *   from_*() function that returns 0 with credentials (and, for the
 *   temporary sources, stores in the provider what it needs to fetch them
 *   again), NOT_CONFIGURED when it is not configured (appending the reason
 *   to the "tried" list of the final error message), or -errno when it is
 *   configured but failed, which ends the walk.  Only IMDS failing counts
 *   as "not configured": every machine that is not on EC2 gets there.
 *
 *   After that the provider is one of
 *
 *     ANONYMOUS      no credentials, creds_get() hands out NULLs
 *     STATIC         options, environment, shared files: never refreshed
 *     WEB_IDENTITY   temporary: fetch() gets new ones when creds_get()
 *     CONTAINER      finds them about to expire
 *     IMDS
 *
 *   and everything it was configured with is read-only, so fetch() runs
 *   without a lock.
 *
 * Refresh state machine (all under p->lock)
 *
 *     current, not due --(expires within CREDS_REFRESH_WINDOW)--> due
 *     due --(a caller, now >= next_attempt)--> refreshing
 *     refreshing --(fetch ok)--> current (or due again, with next_attempt
 *                                          = now + CREDS_RETRY_INTERVAL)
 *     refreshing --(fetch failed)--> due, next_attempt = now + RETRY
 *
 *   While refreshing, callers get the old credentials if they are still
 *   valid (more than CREDS_EXPIRY_MARGIN seconds left) or wait on
 *   p->refreshed for that one refresh to end and take its outcome; they
 *   never start a second fetch.  When the old credentials have expired and
 *   the last attempt failed less than CREDS_RETRY_INTERVAL ago, callers get
 *   -EACCES at once instead of each waiting for another timeout.
 *
 * Invariants (check_invariants(), debug builds, with p->lock held)
 *   - ANONYMOUS: p->cur is all NULL; otherwise it has a key id and a secret.
 *   - Only the temporary kinds have an expiration.
 *   - refreshing is 0 or 1.
 *
 * HTTP
 *   One helper, http_call(), with the curl and HTTP status to errno tables
 *   and the retry loop next to each other.  IMDS and container endpoints
 *   are link-local or loopback, so they bypass any proxy; STS honours the
 *   usual proxy variables.
 *
 * Secrets
 *   Every buffer that held a secret (response bodies, token files, POST
 *   bodies, header lines, profile values) goes through sbuf or wipe_free()
 *   and is wiped before it is freed.  Copies inside libcurl, libxml2,
 *   jansson, stdio and inih are out of reach; the values we can reach in
 *   the parsed XML and JSON are wiped in place before the trees are freed.
 *   Log messages carry sources, paths, URLs, HTTP statuses and AWS error
 *   codes, never a value from a response or a file.
 *
 * Long lines
 *   inih reads a line into a buffer of ini_max_line bytes (200 by default)
 *   and silently cuts what is longer, which would truncate every session
 *   token.  Debian's libinih exports that setting and the heap-buffer ones
 *   as variables; inih_configure() raises the limit when they are there.
 *   Where they are not (an inih built with fixed limits), a line that does
 *   not fit makes ini_parse() report an error on the next line, which
 *   reaches the user as a parse error instead of a wrong token.
 */
#include "creds_i.h"

#include "iso8601.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ini.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>

#include "log.h"

#define DEFAULT_IMDS_ENDPOINT      "http://169.254.169.254"
#define DEFAULT_IMDS_ENDPOINT_IPV6 "http://[fd00:ec2::254]"
#define CONTAINER_HOST             "http://169.254.170.2"
#define IMDS_TOKEN_TTL             "21600"
#define STS_VERSION                "2011-06-15"

/* Largest response body, token file or profile value we accept. */
#define BODY_MAX (64 * 1024)
/* inih line buffer limit when it can be raised (see "Long lines"). */
#define INI_LINE_MAX (64 * 1024)

#define TRIED_MAX 900

/* What a from_*() source returns when it is not configured (> 0, so it
 * cannot be mistaken for an -errno such as -ENOENT for a missing file). */
#define NOT_CONFIGURED 1

enum creds_kind {
	KIND_ANONYMOUS,
	KIND_STATIC,
	KIND_WEB_IDENTITY,
	KIND_CONTAINER,
	KIND_IMDS,
};

struct creds_provider {
	/* Set by creds_provider_create(), read-only afterwards. */
	enum creds_kind kind;
	char *source;    /* creds_source() */
	char *ca_bundle; /* NULL: curl's default */
	/* KIND_WEB_IDENTITY */
	char *sts_url; /* "https://sts.eu-west-1.amazonaws.com" (no query) */
	char *role_arn;
	char *token_file;
	char *session_name;
	/* KIND_CONTAINER */
	char *container_url;
	char *container_token;      /* secret; NULL when none or from a file */
	char *container_token_file; /* read again for each fetch */
	/* KIND_IMDS */
	char *imds_endpoint; /* no trailing '/' */

	/*
	 * lock protects the fields below.  It is never held across a fetch,
	 * a log call or another lock.
	 */
	pthread_mutex_t lock;
	pthread_cond_t refreshed; /* broadcast (lock held) when a refresh ends */
	struct creds cur;         /* lock */
	int refreshing;           /* lock: one thread is in fetch() */
	unsigned long generation; /* lock: refreshes ended so far */
	time_t next_attempt;      /* lock: no refresh before, see the design */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static void wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* Replace *dst by a copy of src (NULL allowed); the old value is wiped. */
static int set_str(char **dst, const char *src)
{
	char *copy = NULL;

	if (src != NULL) {
		copy = strdup(src);
		if (copy == NULL)
			return -ENOMEM;
	}
	wipe_free(*dst);
	*dst = copy;
	return 0;
}

static void why_set(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void why_set(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, WHY_MAX, fmt, ap);
	va_end(ap);
}

/* Append "; what" to the tried list (a plain, secret-free string). */
static void tried_add(char *tried, const char *what)
{
	size_t len = strlen(tried);

	snprintf(tried + len, TRIED_MAX - len, "%s%s", len ? ", " : "", what);
}

/* The variable's value, or NULL when it is unset or empty (as the SDKs). */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static int env_true(const char *name)
{
	const char *v = env(name);

	return v != NULL && strcasecmp(v, "true") == 0;
}

/* path with a leading "~/" replaced by the home directory; the caller
 * frees.  NULL with errno ENOMEM, or ENOENT when there is no home. */
static char *expand_home(const char *path)
{
	struct passwd pw, *res = NULL;
	char pwbuf[1024];
	const char *home;
	char *out;

	if (path[0] != '~' || (path[1] != '/' && path[1] != '\0'))
		return strdup(path);
	home = env("HOME");
	if (home == NULL) {
		if (getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) != 0 || res == NULL) {
			errno = ENOENT;
			return NULL;
		}
		home = pw.pw_dir;
	}
	if (asprintf(&out, "%s%s", home, path + 1) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	return out;
}

/* No control characters (a header value cannot hold CR or LF). */
static int no_controls(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < ' ' || (unsigned char)*s == 0x7f)
			return 0;
	}
	return 1;
}

/* Printable ASCII without SP, as in a header value or a key id. */
static int printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	}
	return 1;
}

/* 0 when c can sign requests (see sigv4.h), -EINVAL with why otherwise. */
static int creds_validate(const struct creds *c, char *why)
{
	if (c->access_key_id == NULL || c->access_key_id[0] == '\0') {
		why_set(why, "no access key id");
		return -EINVAL;
	}
	if (!printable(c->access_key_id) || strpbrk(c->access_key_id, "/,") != NULL) {
		why_set(why, "the access key id holds characters a key id cannot have");
		return -EINVAL;
	}
	if (c->secret_access_key == NULL || c->secret_access_key[0] == '\0') {
		why_set(why, "no secret access key");
		return -EINVAL;
	}
	if (!printable(c->secret_access_key)) {
		why_set(why, "the secret access key holds blanks or control characters");
		return -EINVAL;
	}
	if (c->session_token != NULL && !printable(c->session_token)) {
		why_set(why, "the session token holds blanks or control characters");
		return -EINVAL;
	}
	return 0;
}

/* Copy the three strings into *out (a zeroed struct). */
static int creds_set(struct creds *out, const char *id, const char *secret, const char *token,
                     time_t expiration)
{
	if (set_str(&out->access_key_id, id) != 0 ||
	    set_str(&out->secret_access_key, secret) != 0 ||
	    set_str(&out->session_token, token != NULL && *token != '\0' ? token : NULL) != 0) {
		creds_free(out);
		return -ENOMEM;
	}
	out->expiration = expiration;
	return 0;
}

void creds_free(struct creds *c)
{
	if (c == NULL)
		return;
	wipe_free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------------ */
/* Time                                                                     */

int creds_parse_time(const char *s, time_t *t)
{
	struct timespec ts;
	int ret = iso8601_parse(s, 0, &ts);

	if (ret == 0)
		*t = ts.tv_sec;
	return ret;
}

/*
 * The common end of every temporary-credentials answer (container, IMDS,
 * STS): parse the expiration, copy the strings into *out and check them.
 * what names the source in why.  0 or -errno (with why set).
 */
static int creds_from_answer(struct creds *out, const char *what, const char *id,
                             const char *secret, const char *token, const char *exp, char *why)
{
	time_t expiration = 0;
	int err;

	if (exp != NULL && creds_parse_time(exp, &expiration) != 0) {
		why_set(why, "%s answered with an Expiration that is not an ISO 8601 time", what);
		return -EPROTO;
	}
	err = creds_set(out, id, secret, token, expiration);
	if (err) {
		why_set(why, "out of memory");
		return err;
	}
	err = creds_validate(out, why);
	if (err)
		creds_free(out);
	return err;
}

/* ------------------------------------------------------------------------ */
/* Secret buffer                                                            */

/* A growable byte buffer, NUL-terminated, wiped whenever memory is let go. */
struct sbuf {
	char *data;
	size_t len, cap;
	int overflow; /* more than BODY_MAX was offered */
};

static int sbuf_add(struct sbuf *b, const void *src, size_t n)
{
	char *grown;
	size_t cap;

	if (b->len + n > BODY_MAX) {
		b->overflow = 1;
		return -E2BIG;
	}
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		grown = malloc(cap);
		if (grown == NULL)
			return -ENOMEM;
		if (b->data != NULL) {
			memcpy(grown, b->data, b->len);
			OPENSSL_cleanse(b->data, b->cap);
			free(b->data);
		}
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, src, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int sbuf_str(struct sbuf *b, const char *s)
{
	return sbuf_add(b, s, strlen(s));
}

static void sbuf_reset(struct sbuf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	b->len = 0;
	b->overflow = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

static void sbuf_free(struct sbuf *b)
{
	if (b->data != NULL) {
		OPENSSL_cleanse(b->data, b->cap);
		free(b->data);
	}
	memset(b, 0, sizeof(*b));
}

/* Strip trailing blanks and line ends. */
static void sbuf_rtrim(struct sbuf *b)
{
	while (b->len > 0 && isspace((unsigned char)b->data[b->len - 1]))
		b->data[--b->len] = '\0';
}

/*
 * Read a file that holds a token (web identity, container authorization)
 * into *out, without its trailing blanks.  0, or -errno with why set
 * (which names the file, never its content).
 */
static int read_token_file(const char *path, struct sbuf *out, char *why)
{
	char chunk[4096];
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		why_set(why, "cannot open %s: %s", path, strerror(-err));
		return err;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			why_set(why, "cannot read %s: %s", path, strerror(-err));
			goto out;
		}
		err = sbuf_add(out, chunk, (size_t)n);
		if (err) {
			why_set(why, "%s: %s", path, err == -E2BIG ? "too large" : strerror(-err));
			goto out;
		}
	}
	sbuf_rtrim(out);
	if (out->len == 0) {
		why_set(why, "%s is empty", path);
		err = -EINVAL;
	} else if (!no_controls(out->data)) {
		why_set(why, "%s holds control characters", path);
		err = -EINVAL;
	}
out:
	OPENSSL_cleanse(chunk, sizeof(chunk));
	close(fd);
	if (err)
		sbuf_free(out);
	return err;
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */

struct http_req {
	const char *method; /* "GET", "PUT" or "POST" */
	const char *url;
	const char *const *headers; /* "Name: value" lines, NULL-terminated; may
	                               hold secrets */
	const char *body;           /* POST body or NULL; may hold secrets */
	long connect_ms, total_ms;
	int attempts;
	int no_proxy;
	const char *ca_bundle;
};

/* curl result -> -errno */
static int curl_to_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_WRITE_ERROR: /* body over BODY_MAX */
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* HTTP status (not 2xx) -> -errno */
static int status_to_errno(long status)
{
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 405:
		return -EOPNOTSUPP;
	case 408:
		return -ETIMEDOUT;
	case 429:
	case 503:
		return -EAGAIN;
	default:
		return status >= 500 ? -EIO : -EPROTO;
	}
}

/* Worth another attempt: the network or the server may do better. */
static int retryable(int err, long status)
{
	if (err)
		return err != -EINVAL && err != -ENOMEM && err != -EPROTO;
	return status == 408 || status == 429 || status >= 500;
}

static size_t http_write(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct sbuf *b = user;

	if (sbuf_add(b, ptr, size * nmemb) != 0)
		return 0; /* curl fails with CURLE_WRITE_ERROR */
	return size * nmemb;
}

/* Wipe and free a header list that may hold secrets. */
static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i != NULL; i = i->next)
		OPENSSL_cleanse(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

/*
 * Send req, retrying transport errors and 408/429/5xx up to req->attempts
 * times.  Returns 0 when an answer came (its status in *status and its body
 * in *body, both also on 4xx/5xx), or -errno with why set when none did.
 * *body is reset first; the caller frees it with sbuf_free().
 */
static int http_call(const struct http_req *req, long *status, struct sbuf *body, char *why)
{
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hdrs = NULL, *l;
	CURL *curl;
	CURLcode rc = CURLE_OK;
	int err = 0;

	*status = 0;
	curl = curl_easy_init();
	if (curl == NULL) {
		why_set(why, "cannot start an HTTP client");
		return -ENOMEM;
	}
	/* No "Expect: 100-continue" round trip for a token-sized POST. */
	hdrs = curl_slist_append(NULL, "Expect:");
	for (size_t i = 0; hdrs != NULL && req->headers != NULL && req->headers[i] != NULL; i++) {
		l = curl_slist_append(hdrs, req->headers[i]);
		if (l == NULL) {
			slist_wipe_free(hdrs);
			hdrs = NULL;
			break;
		}
	}
	if (hdrs == NULL) {
		why_set(why, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_URL, req->url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, req->connect_ms);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->total_ms);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "chunkfs");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	if (req->ca_bundle != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, req->ca_bundle);
	if (req->no_proxy)
		curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
		                 (long)(req->body ? strlen(req->body) : 0));
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
	}

	for (int attempt = 1; attempt <= req->attempts; attempt++) {
		sbuf_reset(body);
		errbuf[0] = '\0';
		*status = 0;
		rc = curl_easy_perform(curl);
		err = curl_to_errno(rc);
		if (rc == CURLE_OK)
			curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
		if (err == 0 && (*status < 200 || *status > 299))
			log_debug("%s %s: HTTP %ld (attempt %d of %d)", req->method, req->url,
			          *status, attempt, req->attempts);
		else if (err)
			log_debug("%s %s: %s (attempt %d of %d)", req->method, req->url,
			          errbuf[0] ? errbuf : curl_easy_strerror(rc), attempt,
			          req->attempts);
		if (!retryable(err, *status) || attempt == req->attempts)
			break;
		if (err != -ETIMEDOUT) /* a timeout has waited long enough */
			usleep(100 * 1000);
	}
	if (err) {
		if (body->overflow)
			why_set(why, "%s answered with more than %d bytes", req->url, BODY_MAX);
		else
			why_set(why, "%s: %s", req->url,
			        errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
out:
	curl_easy_cleanup(curl);
	slist_wipe_free(hdrs);
	OPENSSL_cleanse(errbuf, sizeof(errbuf));
	return err;
}

/* ------------------------------------------------------------------------ */
/* JSON credentials (container, IMDS)                                       */

static const char *json_str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* Wipe the string values of obj in place (they may be secrets). */
static void json_wipe(json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		if (json_is_string(v))
			OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
	}
}

/*
 * Parse {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} (and,
 * for IMDS, "Code": "Success") into *out.  what names the source.
 */
int creds_parse_json(const char *body, size_t len, const char *what, struct creds *out, char *why)
{
	const char *id, *secret, *token, *exp, *code;
	json_error_t jerr;
	json_t *root;
	int err;

	root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL || !json_is_object(root)) {
		why_set(why, "%s answered with something that is not a JSON object", what);
		err = -EPROTO;
		goto out;
	}
	code = json_str(root, "Code");
	if (code != NULL && strcmp(code, "Success") != 0) {
		why_set(why, "%s answered with Code \"%.64s\"", what, code);
		err = -EACCES;
		goto out;
	}
	id = json_str(root, "AccessKeyId");
	secret = json_str(root, "SecretAccessKey");
	token = json_str(root, "Token");
	exp = json_str(root, "Expiration");
	if (id == NULL || secret == NULL) {
		why_set(why, "%s answered without AccessKeyId and SecretAccessKey", what);
		err = -EPROTO;
		goto out;
	}
	err = creds_from_answer(out, what, id, secret, token, exp, why);
out:
	if (root != NULL) {
		if (json_is_object(root))
			json_wipe(root);
		json_decref(root);
	}
	return err;
}

/* ------------------------------------------------------------------------ */
/* Container                                                                */

static int host_is_loopback(const char *host)
{
	unsigned char a[16];

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char v6lo[16] = {[15] = 1};

		return memcmp(a, v6lo, 16) == 0;
	}
	return 0;
}

int creds_container_url_allowed(const char *url)
{
	char *scheme = NULL, *host = NULL;
	unsigned char a[16], b[16];
	int ok = 0;
	CURLU *u;

	u = curl_url();
	if (u == NULL || url == NULL)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "https") == 0) {
		ok = 1;
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0)
		goto out;
	/* curl writes an IPv6 host with its brackets. */
	if (host[0] == '[') {
		size_t n = strlen(host);

		if (n < 2 || host[n - 1] != ']')
			goto out;
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if (host_is_loopback(host) || strcmp(host, "169.254.170.2") == 0 ||
	    strcmp(host, "169.254.170.23") == 0)
		ok = 1;
	else if (inet_pton(AF_INET6, host, a) == 1 && inet_pton(AF_INET6, "fd00:ec2::23", b) == 1)
		ok = memcmp(a, b, 16) == 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

static int fetch_container(const struct creds_provider *p, struct creds *out, char *why)
{
	struct sbuf token = {0}, line = {0}, body = {0};
	const char *headers[3] = {"Accept: application/json", NULL, NULL};
	struct http_req req = {
	    .method = "GET",
	    .url = p->container_url,
	    .headers = headers,
	    .connect_ms = 2000,
	    .total_ms = 5000,
	    .attempts = 2,
	    .no_proxy = 1,
	    .ca_bundle = p->ca_bundle,
	};
	const char *auth = p->container_token;
	long status;
	int err;

	if (p->container_token_file != NULL) {
		err = read_token_file(p->container_token_file, &token, why);
		if (err)
			goto out;
		auth = token.data;
	}
	if (auth != NULL) {
		if (sbuf_str(&line, "Authorization: ") || sbuf_str(&line, auth)) {
			why_set(why, "out of memory");
			err = -ENOMEM;
			goto out;
		}
		headers[1] = line.data;
	}
	err = http_call(&req, &status, &body, why);
	if (err)
		goto out;
	if (status != 200) {
		why_set(why, "%s answered HTTP %ld", p->container_url, status);
		err = status_to_errno(status);
		goto out;
	}
	err = creds_parse_json(body.data, body.len, "the container endpoint", out, why);
out:
	sbuf_free(&body);
	sbuf_free(&line);
	sbuf_free(&token);
	return err;
}

static int from_container(struct creds_provider *p, struct creds *out, char *why, char *tried)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *token_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	int err;

	if (rel == NULL && full == NULL) {
		tried_add(tried, "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI "
		                 "not set)");
		return NOT_CONFIGURED;
	}
	if (rel != NULL) {
		/* The SDKs give the relative URI precedence. */
		if (rel[0] != '/') {
			why_set(why,
			        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI does not start with '/'");
			return -EINVAL;
		}
		if (asprintf(&p->container_url, "%s%s", CONTAINER_HOST, rel) < 0) {
			p->container_url = NULL;
			return -ENOMEM;
		}
	} else {
		if (!creds_container_url_allowed(full)) {
			why_set(
			    why,
			    "AWS_CONTAINER_CREDENTIALS_FULL_URI %s is neither https nor http to a "
			    "loopback address or the ECS/EKS endpoints (169.254.170.2, "
			    "169.254.170.23, fd00:ec2::23)",
			    full);
			return -EINVAL;
		}
		p->container_url = strdup(full);
		if (p->container_url == NULL)
			return -ENOMEM;
	}
	if (token_file != NULL) {
		p->container_token_file = expand_home(token_file);
		if (p->container_token_file == NULL)
			return -errno;
	} else if (token != NULL) {
		if (!no_controls(token)) {
			why_set(why, "AWS_CONTAINER_AUTHORIZATION_TOKEN holds control characters");
			return -EINVAL;
		}
		p->container_token = strdup(token);
		if (p->container_token == NULL)
			return -ENOMEM;
	}
	err = fetch_container(p, out, why);
	if (err)
		return err;
	p->kind = KIND_CONTAINER;
	p->source = strdup("container");
	return p->source ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* EC2 instance metadata (IMDSv2)                                           */

/* IAM role names: letters, digits and +=,.@_- */
static int role_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr("+=,.@_-", *s) == NULL)
			return 0;
	}
	return 1;
}

static int fetch_imds(const struct creds_provider *p, struct creds *out, char *why)
{
	struct sbuf token = {0}, line = {0}, body = {0};
	const char *headers[2] = {NULL, NULL};
	char *url = NULL, *role = NULL, *nl;
	struct http_req req = {
	    .headers = headers,
	    .connect_ms = 1000,
	    .total_ms = 2000,
	    .attempts = 2,
	    .no_proxy = 1,
	};
	long status;
	int err;

	/* 1. A session token. */
	if (asprintf(&url, "%s/latest/api/token", p->imds_endpoint) < 0)
		goto nomem;
	headers[0] = "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL;
	req.method = "PUT";
	req.url = url;
	err = http_call(&req, &status, &token, why);
	if (err)
		goto out;
	if (status != 200) {
		why_set(why, "%s answered HTTP %ld to the IMDSv2 token request", p->imds_endpoint,
		        status);
		err = status_to_errno(status);
		goto out;
	}
	sbuf_rtrim(&token);
	if (token.len == 0 || !printable(token.data)) {
		why_set(why, "%s answered the token request with an unusable token",
		        p->imds_endpoint);
		err = -EPROTO;
		goto out;
	}
	if (sbuf_str(&line, "X-aws-ec2-metadata-token: ") || sbuf_str(&line, token.data)) {
		why_set(why, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	headers[0] = line.data;

	/* 2. The role of the instance profile. */
	free(url);
	if (asprintf(&url, "%s/latest/meta-data/iam/security-credentials/", p->imds_endpoint) < 0)
		goto nomem;
	req.method = "GET";
	req.url = url;
	err = http_call(&req, &status, &body, why);
	if (err)
		goto out;
	if (status != 200) {
		if (status == 404)
			why_set(why, "%s: no instance profile attached to this instance",
			        p->imds_endpoint);
		else
			why_set(why, "%s answered HTTP %ld to the role name request",
			        p->imds_endpoint, status);
		err = status_to_errno(status);
		goto out;
	}
	nl = body.data ? strchr(body.data, '\n') : NULL;
	if (nl != NULL)
		*nl = '\0';
	role = body.data ? strdup(body.data) : NULL;
	if (role == NULL || !role_name_ok(role)) {
		why_set(why, "%s answered the role name request with no valid role name",
		        p->imds_endpoint);
		err = role == NULL && body.data != NULL ? -ENOMEM : -EPROTO;
		goto out;
	}

	/* 3. Its credentials. */
	free(url);
	if (asprintf(&url, "%s/latest/meta-data/iam/security-credentials/%s", p->imds_endpoint,
	             role) < 0)
		goto nomem;
	req.url = url;
	err = http_call(&req, &status, &body, why);
	if (err)
		goto out;
	if (status != 200) {
		why_set(why, "%s answered HTTP %ld to the credentials request for role %s",
		        p->imds_endpoint, status, role);
		err = status_to_errno(status);
		goto out;
	}
	err = creds_parse_json(body.data, body.len, "IMDS", out, why);
	goto out;
nomem:
	url = NULL; /* asprintf leaves it undefined on failure */
	why_set(why, "out of memory");
	err = -ENOMEM;
out:
	free(url);
	free(role);
	sbuf_free(&body);
	sbuf_free(&line);
	sbuf_free(&token);
	return err;
}

static int from_imds(struct creds_provider *p, struct creds *out, char *why, char *tried)
{
	const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	char what[WHY_MAX + 64];
	size_t n;
	int err;

	if (env_true("AWS_EC2_METADATA_DISABLED")) {
		tried_add(tried, "instance profile (AWS_EC2_METADATA_DISABLED=true)");
		return NOT_CONFIGURED;
	}
	if (ep == NULL)
		ep = mode != NULL && strcasecmp(mode, "IPv6") == 0 ? DEFAULT_IMDS_ENDPOINT_IPV6
		                                                   : DEFAULT_IMDS_ENDPOINT;
	p->imds_endpoint = strdup(ep);
	if (p->imds_endpoint == NULL)
		return -ENOMEM;
	n = strlen(p->imds_endpoint);
	while (n > 0 && p->imds_endpoint[n - 1] == '/')
		p->imds_endpoint[--n] = '\0';
	err = fetch_imds(p, out, why);
	if (err == -ENOMEM)
		return err;
	if (err) {
		/* Not on EC2, or no role: the chain found nothing. */
		snprintf(what, sizeof(what), "instance profile (%s)", why);
		tried_add(tried, what);
		return NOT_CONFIGURED;
	}
	p->kind = KIND_IMDS;
	p->source = strdup("instance profile (IMDSv2)");
	return p->source ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Web identity (STS AssumeRoleWithWebIdentity)                             */

/* The first element child of n called name (any namespace), or NULL. */
static xmlNode *xml_child(xmlNode *n, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c != NULL; c = c->next) {
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	}
	return NULL;
}

/* The root element of doc if it is called name, or NULL. */
static xmlNode *xml_root(xmlDoc *doc, const char *name)
{
	xmlNode *r = doc ? xmlDocGetRootElement(doc) : NULL;

	return r != NULL && strcmp((const char *)r->name, name) == 0 ? r : NULL;
}

/* The text of n, or NULL; the caller frees with wipe_xml(). */
static char *xml_text(xmlNode *n)
{
	return n ? (char *)xmlNodeGetContent(n) : NULL;
}

static void wipe_xml(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		xmlFree(s);
	}
}

/* Wipe every text in the tree under n (it holds the secrets). */
static void xml_wipe_tree(xmlNode *n)
{
	for (; n != NULL; n = n->next) {
		if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) &&
		    n->content != NULL)
			OPENSSL_cleanse(n->content, strlen((char *)n->content));
		xml_wipe_tree(n->children);
	}
}

/* An STS error answer: "HTTP 403 AccessDenied: message" in why.  The
 * code and the message are each left out when they quote the token. */
int creds_sts_error(long status, const char *body, size_t len, const char *token, char *why)
{
	xmlDoc *doc = NULL;
	char *code = NULL, *msg = NULL;
	int err = status_to_errno(status);

	if (len > 0)
		doc = xmlReadMemory(body, (int)len, "sts-error.xml", NULL,
		                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
		                        XML_PARSE_NODICT);
	if (doc != NULL) {
		xmlNode *e = xml_child(xml_root(doc, "ErrorResponse"), "Error");

		code = xml_text(xml_child(e, "Code"));
		msg = xml_text(xml_child(e, "Message"));
	}
	if (msg != NULL && token != NULL && strstr(msg, token) != NULL) {
		wipe_xml(msg);
		msg = NULL;
	}
	if (code != NULL && token != NULL && strstr(code, token) != NULL) {
		wipe_xml(code);
		code = NULL;
	}
	why_set(why, "STS answered HTTP %ld%s%.64s%s%.200s", status, code ? " " : "",
	        code ? code : "", msg ? ": " : "", msg ? msg : "");
	if (code != NULL &&
	    (strcmp(code, "AccessDenied") == 0 || strcmp(code, "InvalidIdentityToken") == 0 ||
	     strcmp(code, "ExpiredTokenException") == 0 || strcmp(code, "IDPRejectedClaim") == 0))
		err = -EACCES;
	wipe_xml(code);
	wipe_xml(msg);
	if (doc != NULL) {
		xml_wipe_tree(doc->children);
		xmlFreeDoc(doc);
	}
	return err;
}

int creds_parse_sts(const char *body, size_t len, struct creds *out, char *why)
{
	char *id = NULL, *secret = NULL, *token = NULL, *exp = NULL;
	xmlNode *c;
	xmlDoc *doc;
	int err;

	doc = xmlReadMemory(body ? body : "", (int)len, "sts.xml", NULL,
	                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	                        XML_PARSE_NODICT);
	c = xml_child(xml_child(xml_root(doc, "AssumeRoleWithWebIdentityResponse"),
	                        "AssumeRoleWithWebIdentityResult"),
	              "Credentials");
	if (c == NULL) {
		why_set(why, "STS answered without AssumeRoleWithWebIdentityResult/Credentials");
		err = -EPROTO;
		goto out;
	}
	id = xml_text(xml_child(c, "AccessKeyId"));
	secret = xml_text(xml_child(c, "SecretAccessKey"));
	token = xml_text(xml_child(c, "SessionToken"));
	exp = xml_text(xml_child(c, "Expiration"));
	if (id == NULL || secret == NULL || token == NULL) {
		why_set(why, "STS answered without AccessKeyId, SecretAccessKey and SessionToken");
		err = -EPROTO;
		goto out;
	}
	err = creds_from_answer(out, "STS", id, secret, token, exp, why);
out:
	wipe_xml(id);
	wipe_xml(secret);
	wipe_xml(token);
	wipe_xml(exp);
	if (doc != NULL) {
		xml_wipe_tree(doc->children);
		xmlFreeDoc(doc);
	}
	return err;
}

/* Append "&name=<escaped value>" (no '&' when the body is empty). */
static int form_add(struct sbuf *b, const char *name, const char *value)
{
	char *esc = curl_easy_escape(NULL, value, 0);
	int err;

	if (esc == NULL)
		return -ENOMEM;
	err = sbuf_str(b, b->len ? "&" : "");
	if (!err)
		err = sbuf_str(b, name);
	if (!err)
		err = sbuf_str(b, "=");
	if (!err)
		err = sbuf_str(b, esc);
	OPENSSL_cleanse(esc, strlen(esc));
	curl_free(esc);
	return err;
}

static int fetch_web_identity(const struct creds_provider *p, struct creds *out, char *why)
{
	struct sbuf token = {0}, form = {0}, body = {0};
	const char *headers[] = {"Accept: application/xml", NULL};
	struct http_req req = {
	    .method = "POST",
	    .url = p->sts_url,
	    .headers = headers,
	    .connect_ms = 3000,
	    .total_ms = 10000,
	    .attempts = 2,
	    .ca_bundle = p->ca_bundle,
	};
	long status;
	int err;

	/* Read for each call: Kubernetes replaces the file before the token expires. */
	err = read_token_file(p->token_file, &token, why);
	if (err)
		goto out;
	if (form_add(&form, "Action", "AssumeRoleWithWebIdentity") ||
	    form_add(&form, "Version", STS_VERSION) || form_add(&form, "RoleArn", p->role_arn) ||
	    form_add(&form, "RoleSessionName", p->session_name) ||
	    form_add(&form, "WebIdentityToken", token.data)) {
		why_set(why, "out of memory or web identity token too large");
		err = -ENOMEM;
		goto out;
	}
	req.body = form.data;
	err = http_call(&req, &status, &body, why);
	if (err)
		goto out;
	if (status != 200) {
		err = creds_sts_error(status, body.data, body.len, token.data, why);
		goto out;
	}
	err = creds_parse_sts(body.data, body.len, out, why);
out:
	sbuf_free(&body);
	sbuf_free(&form);
	sbuf_free(&token);
	return err;
}

/* A region usable in a host name. */
static int region_ok(const char *r)
{
	if (*r == '\0')
		return 0;
	for (; *r != '\0'; r++) {
		if (!isalnum((unsigned char)*r) && *r != '-')
			return 0;
	}
	return 1;
}

/*
 * Set up p for web identity and fetch once.  region may be NULL (global
 * endpoint); source is what creds_source() will say.
 */
static int web_identity_setup(struct creds_provider *p, const char *role_arn,
                              const char *token_file, const char *session_name, const char *region,
                              const char *source, struct creds *out, char *why)
{
	const char *ep = env("AWS_ENDPOINT_URL_STS");
	int err;

	if (ep != NULL) {
		p->sts_url = strdup(ep);
	} else if (region != NULL) {
		if (!region_ok(region)) {
			why_set(why, "region \"%.64s\" cannot be part of an STS host name", region);
			return -EINVAL;
		}
		if (asprintf(&p->sts_url, "https://sts.%s.amazonaws.com%s", region,
		             strncmp(region, "cn-", 3) == 0 ? ".cn" : "") < 0)
			p->sts_url = NULL;
	} else {
		p->sts_url = strdup("https://sts.amazonaws.com");
	}
	if (p->sts_url == NULL)
		return -ENOMEM;
	p->role_arn = strdup(role_arn);
	p->token_file = expand_home(token_file);
	if (session_name != NULL)
		p->session_name = strdup(session_name);
	else if (asprintf(&p->session_name, "chunkfs-%ld", (long)getpid()) < 0)
		p->session_name = NULL;
	if (p->role_arn == NULL || p->token_file == NULL || p->session_name == NULL)
		return -ENOMEM;
	err = fetch_web_identity(p, out, why);
	if (err)
		return err;
	p->kind = KIND_WEB_IDENTITY;
	p->source = strdup(source);
	return p->source ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Shared files (inih)                                                      */

/*
 * Debian's libinih exports its line-buffer settings as variables; other
 * builds may not, hence weak references (NULL when absent) declared here
 * rather than taken from a header that may lack them.
 */
extern int ini_max_line;
extern bool ini_use_stack;
extern bool ini_allow_realloc;
#pragma weak ini_max_line
#pragma weak ini_use_stack
#pragma weak ini_allow_realloc

static pthread_once_t inih_once = PTHREAD_ONCE_INIT;

static void inih_configure(void)
{
	if (&ini_max_line != NULL && &ini_use_stack != NULL && &ini_allow_realloc != NULL) {
		ini_use_stack = 0;
		ini_allow_realloc = 1;
		ini_max_line = INI_LINE_MAX;
	}
}

static const char *const profile_key_names[PK_COUNT] = {
    [PK_ACCESS_KEY] = "aws_access_key_id",
    [PK_SECRET] = "aws_secret_access_key",
    [PK_SESSION_TOKEN] = "aws_session_token",
    [PK_SECURITY_TOKEN] = "aws_security_token",
    [PK_ROLE_ARN] = "role_arn",
    [PK_WEB_IDENTITY_TOKEN_FILE] = "web_identity_token_file",
    [PK_ROLE_SESSION_NAME] = "role_session_name",
    [PK_REGION] = "region",
    [PK_SOURCE_PROFILE] = "source_profile",
    [PK_CREDENTIAL_SOURCE] = "credential_source",
    [PK_CREDENTIAL_PROCESS] = "credential_process",
    [PK_SSO_START_URL] = "sso_start_url",
    [PK_SSO_SESSION] = "sso_session",
};

void creds_profile_free(struct profile *pr)
{
	for (int i = 0; i < PK_COUNT; i++)
		wipe_free(pr->val[i]);
	memset(pr->val, 0, sizeof(pr->val));
}

static int section_matches(const struct profile *pr, const char *section)
{
	if (!pr->config)
		return strcmp(section, pr->name) == 0;
	if (strcmp(pr->name, "default") == 0 && strcmp(section, "default") == 0)
		return 1;
	if (strncmp(section, "profile", 7) != 0 || !isblank((unsigned char)section[7]))
		return 0;
	section += 7;
	while (isblank((unsigned char)*section))
		section++;
	return strcmp(section, pr->name) == 0;
}

static int profile_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct profile *pr = user;

	if (!section_matches(pr, section))
		return 1;
	pr->found = 1;
	if (name == NULL) /* a section header, when inih reports those */
		return 1;
	for (int i = 0; i < PK_COUNT; i++) {
		if (strcasecmp(name, profile_key_names[i]) == 0) {
			if (set_str(&pr->val[i], value) != 0) {
				pr->err = -ENOMEM;
				return 0;
			}
			break;
		}
	}
	return 1;
}

int creds_profile_parse(FILE *f, struct profile *pr)
{
	pthread_once(&inih_once, inih_configure);
	return ini_parse_file(f, profile_ini_handler, pr);
}

/*
 * Parse path for profile pr.  0 when parsed, -ENOENT when the file does
 * not exist, other -errno with why set.  *mode gets the file's mode.
 */
static int profile_read(const char *path, struct profile *pr, mode_t *mode, char *why)
{
	struct stat st;
	FILE *f;
	int rc, err = 0;

	f = fopen(path, "re");
	if (f == NULL) {
		err = -errno;
		if (err != -ENOENT)
			why_set(why, "cannot open %s: %s", path, strerror(-err));
		return err;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		why_set(why, "%s is not a regular file", path);
		err = -EINVAL;
		goto out;
	}
	*mode = st.st_mode;
	rc = creds_profile_parse(f, pr);
	if (pr->err) {
		err = pr->err;
		why_set(why, "out of memory");
	} else if (rc > 0) {
		why_set(why, "%s: line %d cannot be parsed (or the line before it is too long)",
		        path, rc);
		err = -EINVAL;
	} else if (rc < 0) {
		why_set(why, "%s: inih failed (%d)", path, rc);
		err = -ENOMEM;
	}
out:
	fclose(f);
	return err;
}

/* Everything the shared files are looked up with. */
struct shared_ctx {
	const char *profile;      /* the profile name */
	const char *profile_from; /* "option", "AWS_PROFILE" or NULL (the default) */
	char *credentials_file;
	int credentials_file_explicit; /* named by an option: must exist */
	char *config_file;
	const char *region; /* from options or the environment, or NULL */
};

/*
 * Look the profile up in the credentials file, then the config file.
 * Returns 0 with credentials (static or through web identity),
 * NOT_CONFIGURED with why set when the profile has no credentials (*found
 * says whether it exists at all), or -errno with why set.  from_options
 * only changes the source name.
 */
static int from_shared(struct creds_provider *p, const struct shared_ctx *c, int from_options,
                       struct creds *out, int *found, char *why)
{
	struct profile cred = {.name = c->profile}, conf = {.name = c->profile, .config = 1};
	mode_t cred_mode = 0, conf_mode = 0;
	const struct profile *src = NULL;
	const char *src_path = NULL, *token;
	mode_t src_mode = 0;
	char source[256];
	int err;

	*found = 0;
	err = profile_read(c->credentials_file, &cred, &cred_mode, why);
	if (err == -ENOENT && c->credentials_file_explicit) {
		why_set(why, "credentials file %s does not exist", c->credentials_file);
		goto out;
	}
	if (err && err != -ENOENT)
		goto out;
	err = profile_read(c->config_file, &conf, &conf_mode, why);
	if (err && err != -ENOENT)
		goto out;
	*found = cred.found || conf.found;
	if (!*found) {
		why_set(why, "profile %s is in neither %s nor %s", c->profile, c->credentials_file,
		        c->config_file);
		err = NOT_CONFIGURED;
		goto out;
	}
	snprintf(source, sizeof(source), "%s (profile %s)",
	         from_options ? "options" : "shared files", c->profile);

	/* Web identity in the config file goes first, as in the SDKs. */
	if (conf.val[PK_ROLE_ARN] != NULL && conf.val[PK_WEB_IDENTITY_TOKEN_FILE] != NULL) {
		snprintf(source, sizeof(source), "web identity (profile %s)", c->profile);
		err = web_identity_setup(
		    p, conf.val[PK_ROLE_ARN], conf.val[PK_WEB_IDENTITY_TOKEN_FILE],
		    conf.val[PK_ROLE_SESSION_NAME], c->region ? c->region : conf.val[PK_REGION],
		    source, out, why);
		goto out;
	}
	if (cred.val[PK_ACCESS_KEY] != NULL || cred.val[PK_SECRET] != NULL) {
		src = &cred;
		src_path = c->credentials_file;
		src_mode = cred_mode;
	} else if (conf.val[PK_ACCESS_KEY] != NULL || conf.val[PK_SECRET] != NULL) {
		src = &conf;
		src_path = c->config_file;
		src_mode = conf_mode;
	}
	if (src == NULL) {
		for (int i = PK_UNSUPPORTED_FIRST; i < PK_COUNT; i++) {
			if (conf.val[i] != NULL || cred.val[i] != NULL) {
				why_set(why, "profile %s uses %s, which chunkfs does not support",
				        c->profile, profile_key_names[i]);
				err = -EINVAL;
				goto out;
			}
		}
		if (conf.val[PK_ROLE_ARN] != NULL)
			why_set(why, "profile %s has role_arn without web_identity_token_file",
			        c->profile);
		else
			why_set(why, "profile %s holds no credentials", c->profile);
		err = NOT_CONFIGURED;
		goto out;
	}
	if (src->val[PK_ACCESS_KEY] == NULL || src->val[PK_SECRET] == NULL) {
		why_set(why, "profile %s in %s has %s but not %s", c->profile, src_path,
		        profile_key_names[src->val[PK_ACCESS_KEY] ? PK_ACCESS_KEY : PK_SECRET],
		        profile_key_names[src->val[PK_ACCESS_KEY] ? PK_SECRET : PK_ACCESS_KEY]);
		err = -EINVAL;
		goto out;
	}
	token =
	    src->val[PK_SESSION_TOKEN] ? src->val[PK_SESSION_TOKEN] : src->val[PK_SECURITY_TOKEN];
	err = creds_set(out, src->val[PK_ACCESS_KEY], src->val[PK_SECRET], token, 0);
	if (err)
		goto out;
	err = creds_validate(out, why);
	if (err) {
		char what[WHY_MAX];

		snprintf(what, sizeof(what), "%s", why);
		why_set(why, "profile %s in %s: %s", c->profile, src_path, what);
		creds_free(out);
		goto out;
	}
	if (src_mode & (S_IRGRP | S_IROTH))
		log_warn("%s holds AWS secrets and can be read by %s (mode %04o); chmod 600 it",
		         src_path, (src_mode & S_IROTH) ? "everyone" : "its group",
		         (unsigned)(src_mode & 07777));
	p->kind = KIND_STATIC;
	p->source = strdup(source);
	if (p->source == NULL) {
		creds_free(out);
		err = -ENOMEM;
	}
out:
	creds_profile_free(&cred);
	creds_profile_free(&conf);
	return err;
}

/* ------------------------------------------------------------------------ */
/* Environment                                                              */

static int from_env(struct creds_provider *p, struct creds *out, char *why, char *tried)
{
	const char *id = env("AWS_ACCESS_KEY_ID");
	const char *secret = env("AWS_SECRET_ACCESS_KEY");
	int err;

	if (id == NULL && secret == NULL) {
		tried_add(tried, "environment (AWS_ACCESS_KEY_ID not set)");
		return NOT_CONFIGURED;
	}
	if (id == NULL || secret == NULL) {
		why_set(why, "%s is set but %s is not",
		        id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
		        id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		return -EINVAL;
	}
	err = creds_set(out, id, secret, env("AWS_SESSION_TOKEN"), 0);
	if (err)
		return err;
	err = creds_validate(out, why);
	if (err) {
		creds_free(out);
		return err;
	}
	p->kind = KIND_STATIC;
	p->source = strdup("environment");
	return p->source ? 0 : -ENOMEM;
}

static int from_web_identity_env(struct creds_provider *p, const struct shared_ctx *c,
                                 struct creds *out, char *why, char *tried)
{
	const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *arn = env("AWS_ROLE_ARN");

	if (file == NULL || arn == NULL) {
		tried_add(tried, file ? "web identity (AWS_ROLE_ARN not set)"
		                      : "web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set)");
		return NOT_CONFIGURED;
	}
	return web_identity_setup(p, arn, file, env("AWS_ROLE_SESSION_NAME"), c->region,
	                          "web identity", out, why);
}

/* ------------------------------------------------------------------------ */
/* The chain                                                                */

static int shared_ctx_init(struct shared_ctx *c, const struct creds_opts *opts)
{
	const char *cred = opts->credentials_file;

	memset(c, 0, sizeof(*c));
	if (opts->profile != NULL) {
		c->profile = opts->profile;
		c->profile_from = "option";
	} else if (env("AWS_PROFILE") != NULL) {
		c->profile = env("AWS_PROFILE");
		c->profile_from = "AWS_PROFILE";
	} else {
		c->profile = "default";
	}
	c->credentials_file_explicit = cred != NULL;
	if (cred == NULL)
		cred = env("AWS_SHARED_CREDENTIALS_FILE");
	c->credentials_file = expand_home(cred ? cred : "~/.aws/credentials");
	c->config_file =
	    expand_home(env("AWS_CONFIG_FILE") ? env("AWS_CONFIG_FILE") : "~/.aws/config");
	c->region = opts->region;
	if (c->region == NULL)
		c->region = env("AWS_REGION");
	if (c->region == NULL)
		c->region = env("AWS_DEFAULT_REGION");
	if (c->credentials_file == NULL || c->config_file == NULL)
		return -errno;
	return 0;
}

static void shared_ctx_free(struct shared_ctx *c)
{
	free(c->credentials_file);
	free(c->config_file);
}

/* Walk the chain; 0 with *out and p configured, or -errno after one
 * log_error line. */
static int chain_resolve(struct creds_provider *p, const struct creds_opts *opts, struct creds *out)
{
	char why[WHY_MAX] = "", tried[TRIED_MAX] = "", what[WHY_MAX + 64];
	struct shared_ctx c;
	const char *failed;
	int err, found;

	err = shared_ctx_init(&c, opts);
	if (err) {
		log_error("cannot locate the AWS shared files: %s", strerror(-err));
		goto out;
	}

	/* 1. Options: the shared files, and nothing else. */
	if (opts->profile != NULL || opts->credentials_file != NULL) {
		err = from_shared(p, &c, 1, out, &found, why);
		if (err == NOT_CONFIGURED)
			err = -ENOENT;
		if (err)
			log_error("cannot use the AWS profile %s given in the options: %s",
			          c.profile, why[0] ? why : strerror(-err));
		goto out;
	}

	/* 2. Environment. */
	failed = "the environment";
	err = from_env(p, out, why, tried);
	if (err != NOT_CONFIGURED)
		goto done;

	/* 3. Web identity. */
	failed = "web identity";
	err = from_web_identity_env(p, &c, out, why, tried);
	if (err != NOT_CONFIGURED)
		goto done;

	/* 4. Shared files.  A profile named by AWS_PROFILE must exist; if it
	 * holds no keys (only a region, say) the chain goes on, as in the
	 * SDKs. */
	failed = "the shared files";
	err = from_shared(p, &c, 0, out, &found, why);
	if (err == NOT_CONFIGURED && !found && c.profile_from != NULL) {
		log_error("AWS profile %s (from %s) not found: %s", c.profile, c.profile_from, why);
		err = -ENOENT;
		goto out;
	}
	if (err != NOT_CONFIGURED)
		goto done;
	snprintf(what, sizeof(what), "shared files (%s)", why);
	tried_add(tried, what);

	/* 5. Container. */
	failed = "the container endpoint";
	err = from_container(p, out, why, tried);
	if (err != NOT_CONFIGURED)
		goto done;

	/* 6. Instance profile: failing here means "not on EC2". */
	failed = "the instance profile";
	err = from_imds(p, out, why, tried);
	if (err != NOT_CONFIGURED)
		goto done;
	log_error("no AWS credentials found; tried %s (use -o anonymous for a public bucket)",
	          tried);
	err = -ENOENT;
	goto out;
done:
	if (err)
		log_error("cannot get AWS credentials from %s: %s", failed,
		          why[0] ? why : strerror(-err));
out:
	shared_ctx_free(&c);
	return err;
}

static void free_config(struct creds_provider *p)
{
	free(p->source);
	free(p->ca_bundle);
	free(p->sts_url);
	free(p->role_arn);
	free(p->token_file);
	free(p->session_name);
	free(p->container_url);
	wipe_free(p->container_token);
	free(p->container_token_file);
	free(p->imds_endpoint);
}

struct creds_provider *creds_provider_create(const struct creds_opts *opts)
{
	static const struct creds_opts no_opts;
	struct creds first = {0};
	struct creds_provider *p;
	const char *ca;
	time_t now;
	int err;

	if (opts == NULL)
		opts = &no_opts;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	err = -pthread_mutex_init(&p->lock, NULL);
	if (err)
		goto fail_free;
	err = -pthread_cond_init(&p->refreshed, NULL);
	if (err)
		goto fail_mutex;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		err = -ENOMEM;
		goto fail_cond;
	}
	xmlInitParser();

	ca = opts->ca_bundle ? opts->ca_bundle : env("AWS_CA_BUNDLE");
	if (ca != NULL && (p->ca_bundle = strdup(ca)) == NULL) {
		err = -ENOMEM;
		goto fail_curl;
	}
	if (opts->anonymous) {
		p->kind = KIND_ANONYMOUS;
		p->source = strdup("anonymous");
		if (p->source == NULL) {
			err = -ENOMEM;
			goto fail_curl;
		}
		log_info("no AWS credentials (anonymous): requests go unsigned");
		return p;
	}
	err = chain_resolve(p, opts, &first);
	if (err)
		goto fail_curl;
	p->cur = first;
	now = time(NULL);
	if (first.expiration == 0)
		log_info("AWS credentials from %s", p->source);
	else if (first.expiration - now > CREDS_EXPIRY_MARGIN)
		log_info("AWS credentials from %s, valid for %ld s", p->source,
		         (long)(first.expiration - now));
	else
		log_warn("AWS credentials from %s have already expired; will refresh them",
		         p->source);
	return p;

fail_curl:
	free_config(p);
	curl_global_cleanup();
fail_cond:
	pthread_cond_destroy(&p->refreshed);
fail_mutex:
	pthread_mutex_destroy(&p->lock);
fail_free:
	free(p);
	errno = -err;
	return NULL;
}

void creds_provider_destroy(struct creds_provider *p)
{
	if (p == NULL)
		return;
	creds_free(&p->cur);
	free_config(p);
	pthread_cond_destroy(&p->refreshed);
	pthread_mutex_destroy(&p->lock);
	free(p);
	curl_global_cleanup();
}

const char *creds_source(const struct creds_provider *p)
{
	return p->source;
}

int creds_anonymous(const struct creds_provider *p)
{
	return p->kind == KIND_ANONYMOUS;
}

/* ------------------------------------------------------------------------ */
/* Refresh                                                                  */

static int fetch(const struct creds_provider *p, struct creds *out, char *why)
{
	switch (p->kind) {
	case KIND_WEB_IDENTITY:
		return fetch_web_identity(p, out, why);
	case KIND_CONTAINER:
		return fetch_container(p, out, why);
	case KIND_IMDS:
		return fetch_imds(p, out, why);
	default:
		why_set(why, "these credentials cannot be refreshed");
		return -EINVAL;
	}
}

/* Caller holds p->lock. */
static void check_invariants(const struct creds_provider *p)
{
#ifndef NDEBUG
	if (p->kind == KIND_ANONYMOUS) {
		assert(p->cur.access_key_id == NULL && p->cur.secret_access_key == NULL);
		assert(p->cur.session_token == NULL && p->cur.expiration == 0);
	} else {
		assert(p->cur.access_key_id != NULL && p->cur.secret_access_key != NULL);
	}
	if (p->kind == KIND_STATIC)
		assert(p->cur.expiration == 0);
	assert(p->refreshing == 0 || p->refreshing == 1);
#else
	(void)p;
#endif
}

/* Caller holds p->lock. */
static int usable(const struct creds_provider *p, time_t now)
{
	return p->cur.expiration == 0 || p->cur.expiration - now > CREDS_EXPIRY_MARGIN;
}

/* Copy p->cur into *out.  Caller holds p->lock. */
static int copy_current(const struct creds_provider *p, struct creds *out)
{
	return creds_set(out, p->cur.access_key_id, p->cur.secret_access_key, p->cur.session_token,
	                 p->cur.expiration);
}

/*
 * Fetch new credentials and install them.  Called with p->lock held and
 * p->refreshing set by the caller; drops and retakes the lock.
 */
static void refresh_locked(struct creds_provider *p)
{
	char why[WHY_MAX] = "";
	struct creds fresh = {0};
	time_t now, left = 0;
	int err;

	pthread_mutex_unlock(&p->lock);
	err = fetch(p, &fresh, why);
	now = time(NULL);
	if (err == 0)
		left = fresh.expiration ? fresh.expiration - now : 0;
	if (err == 0 && fresh.expiration != 0 && left <= CREDS_REFRESH_WINDOW)
		log_info("AWS credentials refreshed from %s are valid for %ld s only", p->source,
		         (long)left);
	else if (err == 0)
		log_info("AWS credentials refreshed from %s, valid for %ld s", p->source,
		         (long)left);

	pthread_mutex_lock(&p->lock);
	if (err == 0) {
		struct creds old = p->cur;

		p->cur = fresh;
		fresh = old; /* the old ones, freed below */
		p->next_attempt = p->cur.expiration != 0 && left <= CREDS_REFRESH_WINDOW
		                      ? now + CREDS_RETRY_INTERVAL
		                      : 0;
	} else {
		p->next_attempt = now + CREDS_RETRY_INTERVAL;
	}
	p->refreshing = 0;
	p->generation++;
	pthread_cond_broadcast(&p->refreshed);
	if (err) {
		int valid = usable(p, now);
		long remaining = (long)(p->cur.expiration - now);

		pthread_mutex_unlock(&p->lock);
		if (valid)
			log_warn("refreshing AWS credentials from %s failed (%s); the current ones "
			         "are valid for %ld s more",
			         p->source, why, remaining);
		else
			log_error("refreshing AWS credentials from %s failed (%s) and the current "
			          "ones have expired",
			          p->source, why);
		pthread_mutex_lock(&p->lock);
	}
	creds_free(&fresh);
}

int creds_get(struct creds_provider *p, struct creds *out)
{
	unsigned long gen;
	time_t now;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (p->kind == KIND_ANONYMOUS)
		return 0;
	pthread_mutex_lock(&p->lock);
	now = time(NULL);
	if (p->cur.expiration != 0 && p->cur.expiration - now <= CREDS_REFRESH_WINDOW) {
		if (p->refreshing) {
			/* Another thread is at it: use the old ones while they
			 * last, or wait for its outcome. */
			if (!usable(p, now)) {
				gen = p->generation;
				while (p->refreshing && gen == p->generation)
					pthread_cond_wait(&p->refreshed, &p->lock);
			}
		} else if (now >= p->next_attempt) {
			p->refreshing = 1;
			refresh_locked(p);
		}
		now = time(NULL);
	}
	if (usable(p, now))
		err = copy_current(p, out);
	else
		err = -EACCES;
	check_invariants(p);
	pthread_mutex_unlock(&p->lock);
	return err;
}
