/*
 * upload.c - multipart uploads: a whole source or a server-side copy sent
 * in parallel parts, and streaming uploads whose parts go out while the
 * file is still being written (the upload_begin op).
 *
 * Both are one machine, struct s3_upload.  A part is a byte range of the
 * object; it is "valid" when the server holds it as the object will be:
 * sent from the bytes of its current generation, at the length the final
 * size gives it.  Workers (detached threads, at most upload_concurrency
 * per upload) take parts under u->lock and send them without it.  Workers
 * started for background parts also count against a bound shared by all
 * the backend's uploads (twice upload_concurrency), so many files written
 * at once do not start a thread and a connection per part; parts that
 * find no worker go at the save.
 *
 * Streaming: the writer says how far the bytes are final (ready) and what
 * it wrote again (changed, which bumps the generation of the parts it
 * touches).  In the background each ready part is sent once, in order;
 * the multipart upload itself is created only once more than two parts
 * are ready, so a small file never costs more than its PUT.  A part sent
 * and then written again is sent again only at the save.  Because the
 * final size is unknown, streamed parts grow with their number (1,000
 * parts of part_size, 1,000 of twice that, ...), which reaches 5 TiB
 * within S3's 10,000 parts.
 *
 * The save ("final round"): every part below the final size that is not
 * valid is sent from the save's source, then CompleteMultipartUpload makes
 * the object visible whole.  Parts sent past the final size are left out
 * of the list, and S3 drops them.  Saving under another key (the file was
 * renamed), at a size a PUT takes, or with more parts than S3 allows
 * drops the stream and saves plainly.  Metadata goes with
 * CreateMultipartUpload, so attributes that changed after the stream
 * began are put right after completing, by a copy onto itself.
 *
 * Generations make a part sent while its bytes were being rewritten stale
 * whatever the interleaving: the writer bumps the generation after the new
 * bytes are in the source, and a part is valid only if sent from a read
 * that started after the generation it records.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3_i.h"

/* Streamed parts double in size every this many parts. */
#define GROW_EVERY 1000

struct part {
	char *etag;        /* the server's, once sent; NULL before */
	uint64_t gen;      /* bumped by changed() */
	uint64_t sent_gen; /* the generation etag was sent from */
	uint64_t sent_len; /* how many bytes it was sent with */
	int busy;          /* a worker is sending it */
};

struct s3_upload {
	struct backend_upload base;
	struct s3 *s3;
	char *key;
	const struct backend_source *src; /* background parts' bytes; NULL for a copy */
	const char *copy_source;          /* "/bucket/key" for UploadPartCopy, or NULL */
	struct backend_save_attrs attrs;  /* sent with the create */
	uint64_t part_size;
	int grow; /* streamed: parts grow with their number */

	pthread_mutex_t lock;
	pthread_cond_t idle; /* running went to 0 */
	/* Everything below is under lock. */
	char *upload_id; /* NULL until created */
	int creating;
	int create_error;
	uint64_t ready; /* bytes [0, ready) final (background) */
	size_t next;    /* background: the first part never sent */
	struct part *parts;
	size_t n_alloc;
	int final;                              /* the final round is on */
	const struct backend_source *final_src; /* its bytes */
	uint64_t final_size;
	size_t n_final;    /* parts of the final size */
	size_t final_next; /* parts below it are valid or taken this round */
	int stop;          /* abort: take no more parts */
	int error;         /* first failure of the final round */
	unsigned running;
};

static const struct backend_upload_ops stream_ops;

/* --- part layout ------------------------------------------------------------ */

/* Byte range of part i (0-based), before any cut by the final size. */
static void part_span(const struct s3_upload *u, size_t i, uint64_t *off, uint64_t *len)
{
	uint64_t o = 0, sz = u->part_size;

	if (u->grow) {
		for (size_t t = 0; t < i / GROW_EVERY; t++) {
			o += GROW_EVERY * sz;
			if (sz * 2 <= MAX_PART_SIZE)
				sz *= 2;
		}
		i %= GROW_EVERY;
	}
	*off = o + i * sz;
	*len = sz;
}

/* Number of parts an object of size bytes has (MAX_PARTS + 1: too many). */
static size_t parts_for(const struct s3_upload *u, uint64_t size)
{
	uint64_t o = 0, sz = u->part_size;
	size_t n = 0;

	if (!u->grow)
		return (size_t)((size + sz - 1) / sz);
	while (n < MAX_PARTS) {
		if (size <= o + GROW_EVERY * sz)
			return n + (size_t)((size - o + sz - 1) / sz);
		o += GROW_EVERY * sz;
		n += GROW_EVERY;
		if (sz * 2 <= MAX_PART_SIZE)
			sz *= 2;
	}
	return MAX_PARTS + 1;
}

/* Parts entirely below end. */
static size_t parts_below(const struct s3_upload *u, uint64_t end)
{
	size_t n = parts_for(u, end);
	uint64_t off, len;

	if (n > MAX_PARTS)
		return MAX_PARTS;
	if (n == 0)
		return 0;
	part_span(u, n - 1, &off, &len);
	return off + len <= end ? n : n - 1;
}

/* Make room for parts [0, n).  0 or -ENOMEM. */
static int parts_reserve(struct s3_upload *u, size_t n)
{
	struct part *p;
	size_t cap = u->n_alloc ? u->n_alloc : 64;

	if (n <= u->n_alloc)
		return 0;
	while (cap < n)
		cap *= 2;
	p = realloc(u->parts, cap * sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	memset(p + u->n_alloc, 0, (cap - u->n_alloc) * sizeof(*p));
	u->parts = p;
	u->n_alloc = cap;
	return 0;
}

/* Part i's length in an object of the final size. */
static uint64_t final_len(const struct s3_upload *u, size_t i)
{
	uint64_t off, len;

	part_span(u, i, &off, &len);
	return u->final_size - off < len ? u->final_size - off : len;
}

static int part_valid(const struct s3_upload *u, size_t i)
{
	const struct part *p = &u->parts[i];

	return p->etag != NULL && p->sent_gen == p->gen && p->sent_len == final_len(u, i);
}

/* --- requests ------------------------------------------------------------- */

/* A CreateMultipartUpload answer must carry the upload's id. */
static int create_check(const struct http_result *res)
{
	char *id;
	int ret = s3xml_parse_upload_id(res->body, res->body_len, &id);

	if (ret == 0)
		free(id);
	return ret == 0 ? 0 : -1;
}

static int create_upload(struct s3 *s3, const char *key, const struct backend_save_attrs *attrs,
                         char **upload_id)
{
	struct sigv4_param q[] = {{"uploads", NULL}};
	struct s3_req r = {.method = "POST",
	                   .op = "POST",
	                   .key = key,
	                   .query = q,
	                   .n_query = 1,
	                   .check = create_check};
	struct http_result res;
	char meta[4][32];
	int ret;

	s3_meta_headers(&r, key, attrs, meta);
	s3_create_headers(s3, &r);
	ret = s3_do(s3, &r, &res, NULL);
	if (ret == 0)
		ret = s3xml_parse_upload_id(res.body, res.body_len, upload_id);
	http_result_clear(&res);
	return ret == -EINVAL ? -EIO : ret;
}

/*
 * Send part number (1-based) as [off, off + len) of src, or of the object
 * copy_source names (UploadPartCopy).  *etag gets the server's.
 */
static int put_part(struct s3 *s3, const char *key, const char *upload_id,
                    const struct backend_source *src, const char *copy_source, size_t number,
                    uint64_t off, uint64_t len, char **etag)
{
	struct http_result res;
	struct s3xml_error xerr;
	char part[24], range[64], tag[BACKEND_ETAG_MAX];
	struct sigv4_param q[] = {{"partNumber", part}, {"uploadId", upload_id}};
	struct s3_req r = {
	    .method = "PUT",
	    .op = copy_source ? "COPY" : "PUT",
	    .key = key,
	    .query = q,
	    .n_query = 2,
	    .src = copy_source ? NULL : src,
	    .src_off = off,
	    .src_len = copy_source ? 0 : len,
	};
	int ret;

	*etag = NULL;
	snprintf(part, sizeof(part), "%zu", number);
	if (copy_source != NULL) {
		snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
		         (unsigned long long)(off + len - 1));
		r.headers[r.n_headers++] = (struct sigv4_header){"x-amz-copy-source", copy_source};
		r.headers[r.n_headers++] = (struct sigv4_header){"x-amz-copy-source-range", range};
	}
	ret = s3_do(s3, &r, &res, NULL);
	if (ret == 0 && copy_source != NULL) {
		/* The etag is in a CopyPartResult document.  A server without
		 * UploadPartCopy may take the request for an empty UploadPart
		 * and answer without one: not a copy, never used. */
		if (s3xml_parse_result_etag(res.body, res.body_len, tag, sizeof(tag), &xerr) == 0)
			*etag = strdup(tag);
		else
			ret = -ENOTSUP;
	} else if (ret == 0) {
		*etag = strdup(res.etag);
	}
	if (ret == 0 && *etag == NULL)
		ret = -ENOMEM;
	http_result_clear(&res);
	return ret;
}

/*
 * The ETag S3 gives the object completed from parts with these ETags: the
 * MD5 of their binary MD5s, then "-n".  -EINVAL when a part's ETag is not
 * a hex MD5 (a store that makes them otherwise).
 */
static int multipart_etag(char *const *etags, size_t n, char out[BACKEND_ETAG_MAX])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[16];
	int ret = 0;

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		unsigned char bin[16];

		for (int j = 0; j < 16 && ret == 0; j++) {
			unsigned v;

			if (strlen(etags[i]) != 32 || sscanf(etags[i] + 2 * j, "%2x", &v) != 1)
				ret = -EINVAL;
			bin[j] = (unsigned char)v;
		}
		if (ret == 0)
			EVP_DigestUpdate(ctx, bin, sizeof(bin));
	}
	if (ret == 0) {
		EVP_DigestFinal_ex(ctx, md, NULL);
		for (int j = 0; j < 16; j++)
			sprintf(out + 2 * j, "%02x", md[j]);
		snprintf(out + 32, BACKEND_ETAG_MAX - 32, "-%zu", n);
	}
	EVP_MD_CTX_free(ctx);
	return ret;
}

/*
 * CompleteMultipartUpload of parts 1..n (size bytes in all).  When it
 * fails in a way that may hide a completion (the answer was lost, a retry
 * was told NoSuchUpload), a HEAD tells whether the object is there with
 * the multipart ETag these parts give.
 */
static int complete_upload(struct s3 *s3, const char *key, const char *upload_id, char **etags,
                           size_t n, uint64_t size, char etag[BACKEND_ETAG_MAX])
{
	struct sigv4_param q[] = {{"uploadId", upload_id}};
	char *body = s3xml_complete_body(etags, n), want[BACKEND_ETAG_MAX];
	struct s3_req r = {.method = "POST",
	                   .op = "POST",
	                   .key = key,
	                   .query = q,
	                   .n_query = 1,
	                   .check = s3_result_check};
	struct http_result res;
	struct s3xml_error xerr;
	int ret;

	if (body == NULL)
		return -ENOMEM;
	r.body = body;
	r.body_len = strlen(body);
	ret = s3_do(s3, &r, &res, NULL);
	if (ret == 0 &&
	    s3xml_parse_result_etag(res.body, res.body_len, etag, BACKEND_ETAG_MAX, &xerr) < 0)
		ret = -EIO; /* s3_result_check passed it: not reached */
	if (ret < 0 && ret != -ENOMEM && multipart_etag(etags, n, want) == 0 &&
	    s3_stored_as(s3, key, size, want, NULL)) {
		log_info("completing the upload of \"%s%s\": the answer was lost, but the object "
		         "is stored (ETag %s)",
		         s3->prefix, key, want);
		snprintf(etag, BACKEND_ETAG_MAX, "%s", want);
		ret = 0;
	}
	/* NoSuchUpload and no such object: an I/O error, not "no such
	 * file"; the data is kept. */
	if (ret == -ENOENT)
		ret = -EIO;
	http_result_clear(&res);
	free(body);
	return ret;
}

/* Best effort: a failed abort leaves parts a lifecycle rule cleans up. */
static void abort_upload(struct s3 *s3, const char *key, const char *upload_id)
{
	struct sigv4_param q[] = {{"uploadId", upload_id}};
	struct s3_req r = {.method = "DELETE",
	                   .op = "DELETE",
	                   .key = key,
	                   .query = q,
	                   .n_query = 1,
	                   .max_attempts = 2};
	struct http_result res;

	s3_do(s3, &r, &res, NULL);
	http_result_clear(&res);
}

/* --- workers ---------------------------------------------------------------- */

static void spawn_workers(struct s3_upload *u);

/* The next part for a worker, marked busy; SIZE_MAX: none.  Under lock. */
static size_t take_part(struct s3_upload *u)
{
	if (u->stop || u->error != 0 || u->upload_id == NULL)
		return SIZE_MAX;
	if (u->final) {
		/* No part is busy when the round starts, and none changes in
		 * it, so one pass in order tries each invalid part once. */
		while (u->final_next < u->n_final && part_valid(u, u->final_next))
			u->final_next++;
		if (u->final_next == u->n_final)
			return SIZE_MAX;
		u->parts[u->final_next].busy = 1;
		return u->final_next++;
	}
	if (u->next < parts_below(u, u->ready)) {
		u->parts[u->next].busy = 1;
		return u->next++;
	}
	return SIZE_MAX;
}

/* Background: create the upload once enough is ready.  Under lock. */
static int want_create(const struct s3_upload *u)
{
	return u->upload_id == NULL && !u->creating && u->create_error == 0 && !u->final &&
	       !u->stop && u->ready > 2 * u->part_size;
}

/* Send parts until there are none to take.  bg: the thread holds one of
 * the backend's background slots (bg_slot_take), given back at the end. */
static void work(struct s3_upload *u, int bg)
{
	pthread_mutex_lock(&u->lock);
	for (;;) {
		const struct backend_source *src;
		uint64_t off, len, gen;
		char *etag, *id;
		int final = u->final; /* a part taken before the round is a background one */
		size_t i;
		int ret;

		if (want_create(u)) {
			u->creating = 1;
			pthread_mutex_unlock(&u->lock);
			ret = create_upload(u->s3, u->key, &u->attrs, &id);
			pthread_mutex_lock(&u->lock);
			u->creating = 0;
			if (ret < 0) {
				u->create_error = ret;
				log_debug(
				    "starting the streamed upload of \"%s\" failed (%s); it is "
				    "sent whole at close",
				    u->key, strerror(-ret));
			} else {
				u->upload_id = id;
				spawn_workers(u);
			}
			continue;
		}
		i = take_part(u);
		if (i == SIZE_MAX)
			break;
		part_span(u, i, &off, &len);
		if (final) {
			len = final_len(u, i);
			src = u->final_src;
		} else {
			src = u->src;
		}
		gen = u->parts[i].gen;
		id = u->upload_id;
		pthread_mutex_unlock(&u->lock);
		ret = put_part(u->s3, u->key, id, src, u->copy_source, i + 1, off, len, &etag);
		pthread_mutex_lock(&u->lock);
		u->parts[i].busy = 0;
		if (ret == 0) {
			free(u->parts[i].etag);
			u->parts[i].etag = etag;
			u->parts[i].sent_gen = gen;
			u->parts[i].sent_len = len;
		} else if (final && u->error == 0) {
			u->error = ret;
		} else if (!final) {
			log_debug("part %zu of \"%s\" failed in the background (%s); it is sent "
			          "again at close",
			          i + 1, u->key, strerror(-ret));
		}
	}
	if (bg)
		__atomic_fetch_sub(&u->s3->bg_workers, 1, __ATOMIC_RELAXED);
	if (--u->running == 0)
		pthread_cond_broadcast(&u->idle);
	pthread_mutex_unlock(&u->lock);
}

static void *worker_bg(void *arg)
{
	work(arg, 1);
	return NULL;
}

static void *worker_final(void *arg)
{
	work(arg, 0);
	return NULL;
}

/* A slot for one more background worker of any upload; 0: none free. */
static int bg_slot_take(struct s3 *s3)
{
	if (__atomic_add_fetch(&s3->bg_workers, 1, __ATOMIC_RELAXED) <= 2 * s3->concurrency)
		return 1;
	__atomic_fetch_sub(&s3->bg_workers, 1, __ATOMIC_RELAXED);
	return 0;
}

/* Start workers for the work there is, up to the concurrency.  Under lock. */
static void spawn_workers(struct s3_upload *u)
{
	size_t want = 0;

	if (u->stop || u->error != 0)
		return;
	if (want_create(u)) {
		want = 1;
	} else if (u->upload_id != NULL && u->final) {
		want = u->n_final - u->final_next;
	} else if (u->upload_id != NULL) {
		size_t below = parts_below(u, u->ready);

		want = below > u->next ? below - u->next : 0;
	}
	while (u->running < want && u->running < u->s3->concurrency) {
		pthread_attr_t attr;
		pthread_t t;
		int ok, slot = !u->final;

		if (slot && !bg_slot_take(u->s3))
			break;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		u->running++;
		ok = pthread_create(&t, &attr, slot ? worker_bg : worker_final, u) == 0;
		pthread_attr_destroy(&attr);
		if (ok) /* for ps and tests: the background ones are bounded */
			pthread_setname_np(t, slot ? "upload-bg" : "upload");
		if (!ok) {
			u->running--;
			if (slot)
				__atomic_fetch_sub(&u->s3->bg_workers, 1, __ATOMIC_RELAXED);
			break;
		}
	}
}

/* Wait until no worker runs.  Under lock. */
static void wait_idle(struct s3_upload *u)
{
	while (u->running > 0)
		pthread_cond_wait(&u->idle, &u->lock);
}

/* --- one upload ------------------------------------------------------------ */

static struct s3_upload *upload_new(struct s3 *s3, const char *key,
                                    const struct backend_save_attrs *attrs)
{
	struct s3_upload *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	u->base.ops = &stream_ops;
	u->s3 = s3;
	u->key = strdup(key);
	if (attrs != NULL)
		u->attrs = *attrs;
	u->part_size = s3->part_size;
	if (u->key == NULL) {
		free(u);
		return NULL;
	}
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->idle, NULL);
	return u;
}

/* Stop the workers; drop the server's parts; free u. */
static void upload_free(struct s3_upload *u, int abort_server)
{
	pthread_mutex_lock(&u->lock);
	u->stop = 1;
	wait_idle(u);
	pthread_mutex_unlock(&u->lock);
	if (abort_server && u->upload_id != NULL)
		abort_upload(u->s3, u->key, u->upload_id);
	for (size_t i = 0; i < u->n_alloc; i++)
		free(u->parts[i].etag);
	free(u->parts);
	free(u->upload_id);
	free(u->key);
	pthread_cond_destroy(&u->idle);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/*
 * The final round: send every part of size bytes that is not valid, from
 * src, then complete.  On failure the upload is aborted on the server.
 * 0 or -errno; *etag gets the object's.
 */
static int upload_finish(struct s3_upload *u, const struct backend_source *src, uint64_t size,
                         char etag[BACKEND_ETAG_MAX])
{
	char **etags = NULL;
	size_t n = parts_for(u, size);
	int ret = 0;

	pthread_mutex_lock(&u->lock);
	u->final = 1;
	wait_idle(u); /* background parts in flight land first */
	if (u->upload_id == NULL) {
		char *id;

		pthread_mutex_unlock(&u->lock);
		ret = create_upload(u->s3, u->key, &u->attrs, &id);
		pthread_mutex_lock(&u->lock);
		if (ret == 0)
			u->upload_id = id;
	}
	if (ret == 0)
		ret = parts_reserve(u, n);
	if (ret == 0) {
		u->final_src = src;
		u->final_size = size;
		u->n_final = n;
		u->final_next = 0;
		spawn_workers(u);
		if (u->running == 0) {
			/* No thread could start: send the parts from here. */
			u->running++;
			pthread_mutex_unlock(&u->lock);
			work(u, 0);
			pthread_mutex_lock(&u->lock);
		}
		wait_idle(u);
		ret = u->error;
		for (size_t i = 0; ret == 0 && i < n; i++)
			if (!part_valid(u, i))
				ret = -EIO; /* a failed part sets u->error: not reached */
	}
	if (ret == 0) {
		etags = malloc(n * sizeof(*etags));
		for (size_t i = 0; etags != NULL && i < n; i++)
			etags[i] = u->parts[i].etag;
		if (etags == NULL)
			ret = -ENOMEM;
	}
	pthread_mutex_unlock(&u->lock);
	if (ret == 0)
		ret = complete_upload(u->s3, u->key, u->upload_id, etags, n, size, etag);
	free(etags);
	if (ret == 0) {
		free(u->upload_id); /* completed: nothing left to abort */
		u->upload_id = NULL;
	}
	return ret;
}

int s3_multipart(struct s3 *s3, const char *key, const struct backend_source *src,
                 const char *copy_source, uint64_t size, uint64_t part_size,
                 const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct s3_upload *u = upload_new(s3, key, attrs);
	char etag[BACKEND_ETAG_MAX];
	int ret;

	if (u == NULL)
		return -ENOMEM;
	u->copy_source = copy_source;
	u->part_size = part_size;
	while (parts_for(u, size) > MAX_PARTS)
		u->part_size *= 2;
	ret = upload_finish(u, src, size, etag);
	upload_free(u, ret < 0);
	if (ret == 0)
		s3_stat_after_save(size, etag, attrs, st);
	return ret;
}

/* --- streaming ------------------------------------------------------------- */

static void stream_ready(struct backend_upload *bu, uint64_t end)
{
	struct s3_upload *u = (struct s3_upload *)bu;

	pthread_mutex_lock(&u->lock);
	/* Without room to track the parts, they all go at the save. */
	if (end > u->ready && !u->final && !u->stop && parts_reserve(u, parts_below(u, end)) == 0) {
		u->ready = end;
		spawn_workers(u);
	}
	pthread_mutex_unlock(&u->lock);
}

static void stream_changed(struct backend_upload *bu, uint64_t off, uint64_t len)
{
	struct s3_upload *u = (struct s3_upload *)bu;
	uint64_t end = len > UINT64_MAX - off ? UINT64_MAX : off + len;

	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < u->n_alloc; i++) {
		uint64_t po, pl;

		part_span(u, i, &po, &pl);
		if (po >= end)
			break;
		if (po + pl > off)
			u->parts[i].gen++;
	}
	pthread_mutex_unlock(&u->lock);
}

static void stream_abort(struct backend_upload *bu)
{
	upload_free((struct s3_upload *)bu, 1);
}

static const struct backend_upload_ops stream_ops = {
    .ready = stream_ready,
    .changed = stream_changed,
    .abort = stream_abort,
};

int s3_upload_begin(struct backend *b, const char *key, const struct backend_source *src,
                    const struct backend_save_attrs *attrs, struct backend_upload **out)
{
	struct s3_upload *u;

	*out = NULL;
	if (!backend_key_valid(key) || key[strlen(key) - 1] == '/')
		return -EINVAL;
	u = upload_new((struct s3 *)b, key, attrs);
	if (u == NULL)
		return -ENOMEM;
	u->src = src;
	u->grow = 1;
	*out = &u->base;
	return 0;
}

static int same_attrs(const struct backend_save_attrs *a, const struct backend_save_attrs *b)
{
	static const struct backend_save_attrs none;

	if (a == NULL)
		a = &none;
	return a->meta == b->meta && a->mtime.tv_sec == b->mtime.tv_sec &&
	       (!(a->meta & BACKEND_META_MODE) || a->mode == b->mode) &&
	       (!(a->meta & BACKEND_META_UID) || a->uid == b->uid) &&
	       (!(a->meta & BACKEND_META_GID) || a->gid == b->gid);
}

int s3_upload_save(struct s3 *s3, const char *key, const struct backend_source *src,
                   const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	struct s3_upload *u = (struct s3_upload *)src->upload;
	struct backend_source plain = *src;
	char etag[BACKEND_ETAG_MAX];
	int ret;

	plain.upload = NULL;
	if (strcmp(key, u->key) != 0 || src->size <= 2 * s3->part_size ||
	    parts_for(u, src->size) > MAX_PARTS) {
		upload_free(u, 1);
		return s3->base.ops->save(&s3->base, key, &plain, attrs, st);
	}
	ret = upload_finish(u, src, src->size, etag);
	if (ret < 0) {
		upload_free(u, 1);
		return ret;
	}
	if (!same_attrs(attrs, &u->attrs)) {
		/* The metadata went out with the create; put it right. */
		upload_free(u, 0);
		ret = s3_replace_meta(s3, key, attrs, st);
		if (ret == -ENOTSUP)
			ret = s3->base.ops->save(&s3->base, key, &plain, attrs, st);
		return ret;
	}
	upload_free(u, 0);
	s3_stat_after_save(src->size, etag, attrs, st);
	return 0;
}
