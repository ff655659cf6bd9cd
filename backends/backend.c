/*
 * backend.c - helpers shared by every user of the backend interface:
 * key validation, the two standard save sources, whole-object copies in
 * bounded pieces, and the copy fallback.
 */
#include "backend.h"

#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Size of the pieces used to move whole objects without holding them. */
#define PIECE_SIZE (4u << 20)

int backend_key_valid(const char *key)
{
	const char *seg = key;

	if (key == NULL || *key == '\0' || *key == '/')
		return 0;
	for (;;) {
		const char *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);

		if (end == NULL && len == 0)
			return 1; /* trailing '/': a directory marker */
		if (len == 0)
			return 0; /* "a//b" */
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		if (end == NULL)
			return 1;
		seg = end + 1;
	}
}

static int buffer_read(const struct backend_source *src, uint64_t off, void *dst, size_t len)
{
	if (off > src->size || len > src->size - off)
		return -EINVAL;
	memcpy(dst, (const char *)src->buf + off, len);
	return 0;
}

struct backend_source backend_source_buffer(const void *buf, size_t len)
{
	struct backend_source s = {.size = len, .read = buffer_read, .buf = buf, .fd = -1};
	return s;
}

static uint64_t fd_data(const struct backend_source *src, uint64_t off, uint64_t end)
{
	off_t d = lseek(src->fd, (off_t)off, SEEK_DATA);
	struct stat sb;

	if (d >= 0)
		return (uint64_t)d < end ? (uint64_t)d : end;
	/* ENXIO: a hole from off to the end of the file, which must still
	 * reach end (a file that shrank is read, and the read fails). */
	if (errno == ENXIO && fstat(src->fd, &sb) == 0 && (uint64_t)sb.st_size >= end)
		return end;
	return off;
}

static int fd_read(const struct backend_source *src, uint64_t off, void *dst, size_t len)
{
	uint64_t hole;
	ssize_t n;

	if (off > src->size || len > src->size - off)
		return -EINVAL;
	hole = fd_data(src, off, off + len) - off;
	memset(dst, 0, (size_t)hole);
	if (hole == len)
		return 0;
	n = io_pread_all(src->fd, (char *)dst + hole, len - hole, (off_t)(off + hole));
	if (n < 0)
		return (int)n;
	return (size_t)n == len - hole ? 0 : -EIO; /* the file shrank under us */
}

struct backend_source backend_source_fd(int fd, uint64_t size)
{
	struct backend_source s = {.size = size, .read = fd_read, .data = fd_data, .fd = fd};
	return s;
}

uint64_t backend_source_data(const struct backend_source *src, uint64_t off, uint64_t end)
{
	return src->data != NULL ? src->data(src, off, end) : off;
}

int backend_save_buffer(struct backend *b, const char *key, const void *buf, size_t len,
                        struct backend_stat *st)
{
	struct backend_source src = backend_source_buffer(buf, len);
	return b->ops->save(b, key, &src, NULL, st);
}

int backend_save_fd(struct backend *b, const char *key, int fd, uint64_t size,
                    struct backend_stat *st)
{
	struct backend_source src = backend_source_fd(fd, size);
	return b->ops->save(b, key, &src, NULL, st);
}

ssize_t backend_read_full(struct backend *b, const char *key, uint64_t off, void *dst, size_t len,
                          const char *etag)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n =
		    b->ops->read(b, key, off + done, (char *)dst + done, len - done, etag, NULL);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int backend_read_to_fd(struct backend *b, const char *key, int fd, struct backend_stat *st)
{
	struct backend_stat first;
	uint64_t off = 0;
	char *buf;
	int ret;

	ret = b->ops->stat(b, key, &first);
	if (ret < 0)
		return ret;
	buf = malloc(PIECE_SIZE);
	if (buf == NULL)
		return -ENOMEM;
	/* Pin every piece to the etag seen first, so a concurrent overwrite
	 * gives -ESTALE instead of a file made of two versions. */
	for (;;) {
		ssize_t n = b->ops->read(b, key, off, buf, PIECE_SIZE, first.etag, NULL);
		if (n < 0) {
			ret = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		ret = io_pwrite_all(fd, buf, (size_t)n, (off_t)off);
		if (ret < 0)
			goto out;
		off += (uint64_t)n;
	}
	if (ftruncate(fd, (off_t)off) < 0) {
		ret = -errno;
		goto out;
	}
	first.size = off;
	if (st != NULL)
		*st = first;
	ret = 0;
out:
	free(buf);
	return ret;
}

/*
 * Copy src to dst through an unlinked temporary file, saving with attrs
 * (NULL: src's own mode and owner).
 */
static int copy_through_file(struct backend *b, const char *src, const char *dst,
                             const struct backend_save_attrs *attrs, struct backend_stat *st)
{
	const char *tmp = getenv("TMPDIR");
	struct backend_save_attrs keep;
	struct backend_source source;
	struct backend_stat sst;
	char *path;
	int fd, ret;

	/* Large objects pass through here: not /tmp, often a small tmpfs. */
	if (asprintf(&path, "%s/chunkfs-copy.XXXXXX", tmp && *tmp ? tmp : "/var/tmp") < 0)
		return -ENOMEM;
	fd = mkstemp(path);
	ret = fd < 0 ? -errno : 0;
	if (fd >= 0)
		unlink(path);
	free(path);
	if (ret < 0)
		return ret;
	ret = backend_read_to_fd(b, src, fd, &sst);
	if (ret == 0) {
		if (attrs == NULL) {
			keep = (struct backend_save_attrs){
			    .meta = sst.meta, .mode = sst.mode, .uid = sst.uid, .gid = sst.gid};
			attrs = &keep;
		}
		source = backend_source_fd(fd, sst.size);
		ret = b->ops->save(b, dst, &source, attrs, st);
	}
	close(fd);
	return ret;
}

int backend_copy(struct backend *b, const char *src, const char *dst, struct backend_stat *st)
{
	int ret;

	if (b->ops->copy != NULL) {
		ret = b->ops->copy(b, src, dst, st);
		if (ret != -ENOTSUP)
			return ret;
	}
	return copy_through_file(b, src, dst, NULL, st);
}

int backend_setattr(struct backend *b, const char *key, const struct backend_save_attrs *attrs,
                    struct backend_stat *st)
{
	int ret;

	if (b->ops->setattr != NULL) {
		ret = b->ops->setattr(b, key, attrs, st);
		if (ret != -ENOTSUP)
			return ret;
	}
	return copy_through_file(b, key, key, attrs, st);
}

void backend_list_free(struct backend_list *l)
{
	for (size_t i = 0; i < l->n_entries; i++)
		free(l->entries[i].key);
	free(l->entries);
	for (size_t i = 0; i < l->n_prefixes; i++)
		free(l->prefixes[i]);
	free(l->prefixes);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

/* Whether s belongs in a listing of prefix (plen bytes); when so, cut
 * strip bytes from its front. */
static int keep_cut(char *s, const char *prefix, size_t plen, size_t strip, int longer)
{
	size_t len = strlen(s);

	if (len < plen + (size_t)longer || memcmp(s, prefix, plen) != 0)
		return 0;
	memmove(s, s + strip, len - strip + 1);
	return 1;
}

size_t backend_list_keep(struct backend_list *l, const char *prefix, size_t strip)
{
	size_t plen = strlen(prefix), n = l->n_entries + l->n_prefixes, w = 0;

	for (size_t r = 0; r < l->n_entries; r++) {
		if (keep_cut(l->entries[r].key, prefix, plen, strip, 0))
			l->entries[w++] = l->entries[r];
		else
			free(l->entries[r].key);
	}
	l->n_entries = w;
	w = 0;
	for (size_t r = 0; r < l->n_prefixes; r++) {
		if (keep_cut(l->prefixes[r], prefix, plen, strip, 1))
			l->prefixes[w++] = l->prefixes[r];
		else
			free(l->prefixes[r]);
	}
	l->n_prefixes = w;
	return n - l->n_entries - l->n_prefixes;
}

void backend_stats(struct backend *b, backend_stats_fn emit, void *ctx)
{
	if (b != NULL && b->ops->stats != NULL)
		b->ops->stats(b, emit, ctx);
}

void backend_destroy(struct backend *b)
{
	if (b != NULL)
		b->ops->destroy(b);
}

void backend_release_ref(struct backend_ref *ref)
{
	if (ref->owner != NULL && ref->owner->ops->release_ref != NULL)
		ref->owner->ops->release_ref(ref->owner, ref);
	ref->n = 0;
}

ssize_t backend_ref_copy(const struct backend_ref *ref, void *dst)
{
	size_t done = 0;

	for (unsigned i = 0; i < ref->n; i++) {
		const struct backend_ref_seg *sg = &ref->seg[i];

		if (sg->data != NULL) {
			memcpy((char *)dst + done, sg->data, sg->len);
		} else {
			ssize_t n =
			    io_pread_all(sg->fd, (char *)dst + done, sg->len, (off_t)sg->pos);

			if (n < 0)
				return n;
			if ((size_t)n != sg->len)
				return -EIO;
		}
		done += sg->len;
	}
	return (ssize_t)done;
}

void backend_ops_trim(struct backend_ops *ops, const struct backend *inner)
{
	const struct backend_ops *in = inner->ops;

	if (in->read_fd == NULL)
		ops->read_fd = NULL;
	if (in->read_ref == NULL)
		ops->read_ref = NULL;
	if (in->copy == NULL)
		ops->copy = NULL;
	if (in->rename == NULL)
		ops->rename = NULL;
	if (in->space == NULL)
		ops->space = NULL;
	if (in->prefetch == NULL)
		ops->prefetch = NULL;
	if (in->upload_begin == NULL)
		ops->upload_begin = NULL;
}

void backend_upload_abort(const struct backend_source *src)
{
	if (src->upload != NULL)
		src->upload->ops->abort(src->upload);
}

ssize_t backend_read_current(struct backend *inner, const char *key, uint64_t off, void *dst,
                             size_t len, struct backend_stat *st, int retries,
                             backend_pinned_read_fn pinned, void *ctx)
{
	struct backend_stat cur;
	ssize_t n;
	int ret;

	for (int attempt = 0; attempt <= retries; attempt++) {
		ret = inner->ops->stat(inner, key, &cur);
		if (ret < 0)
			return ret;
		if (cur.etag[0] == '\0')
			break; /* no versions to key by */
		if (off >= cur.size) {
			if (st != NULL)
				*st = cur;
			return 0;
		}
		n = pinned(ctx, key, off, dst,
		           cur.size - off < len ? (size_t)(cur.size - off) : len, cur.etag, NULL);
		if (n != -ESTALE) {
			if (n >= 0 && st != NULL)
				*st = cur;
			return n;
		}
	}
	return inner->ops->read(inner, key, off, dst, len, NULL, st);
}
