/*
 * manifest.c - chunk_info.json; see manifest.h for the format.
 *
 * Parsing is plain jansson: "chunks" is walked in the order the chunker
 * wrote it (jansson keeps an object's insertion order), each entry checked
 * and copied into a struct manifest that owns its strings.
 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- parsing -------------------------------------------------------------- */

/* Longest "file" accepted. */
#define MANIFEST_MAX_FILE 1024

static int parse_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int parse_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int manifest_file_ok(const char *file)
{
	const char *seg = file;

	if (file == NULL || file[0] == '\0' || file[0] == '/' || strlen(file) > MANIFEST_MAX_FILE)
		return 0;
	for (;;) {
		size_t len = strcspn(seg, "/");

		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		if (seg[len] == '\0')
			return 1;
		seg += len + 1;
	}
}

/* A string member that must be a path inside the directory, or NULL when
 * absent.  -EINVAL with err set when present but not such a string. */
static int member_path(json_t *obj, const char *member, const char *what, const char **out,
                       char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, member);
	const char *s;

	*out = NULL;
	if (v == NULL)
		return 0;
	s = json_string_value(v);
	if (s == NULL)
		return parse_error(err, errlen, "%s: \"%s\" is not a string", what, member);
	if (json_string_length(v) != strlen(s) || !manifest_file_ok(s))
		return parse_error(
		    err, errlen,
		    "%s: \"%s\" is \"%s\", which is not a path inside the "
		    "manifest's directory (absolute, \"..\", \".\" or empty segment)",
		    what, member, s);
	*out = s;
	return 0;
}

/* Check one entry of "chunks" and fill *c (strings copied). */
static int parse_chunk(json_t *v, const char *name, size_t i, struct manifest_chunk *c, char *err,
                       size_t errlen)
{
	char what[128];
	const char *file;
	json_t *size, *size_mb;
	int ret;

	if (name[0] != '\0')
		snprintf(what, sizeof(what), "chunk \"%.64s\"", name);
	else
		snprintf(what, sizeof(what), "chunk %zu", i);
	if (!json_is_object(v))
		return parse_error(err, errlen, "%s is not an object", what);
	ret = member_path(v, "file", what, &file, err, errlen);
	if (ret < 0)
		return ret;
	if (file == NULL)
		return parse_error(err, errlen, "%s has no \"file\"", what);
	size = json_object_get(v, "size");
	size_mb = json_object_get(v, "size_mb");
	if (size != NULL) {
		if (!json_is_integer(size) || json_integer_value(size) < 0)
			return parse_error(err, errlen, "%s: \"size\" is not a byte count", what);
		c->size = (uint64_t)json_integer_value(size);
		c->size_exact = 1;
	} else if (size_mb != NULL) {
		double bytes = json_number_value(size_mb) * 1048576.0;

		if (!json_is_number(size_mb) || !(bytes >= 0) || bytes > 1e18)
			return parse_error(err, errlen, "%s: \"size_mb\" is not a size in MiB",
			                   what);
		c->size = (uint64_t)bytes;
		c->size += (double)c->size < bytes; /* rounded up */
	}
	c->name = strdup(name);
	c->file = strdup(file);
	if (c->name == NULL || c->file == NULL)
		return -ENOMEM;
	return 0;
}

int manifest_parse(const char *text, size_t len, struct manifest **out, char *err, size_t errlen)
{
	struct manifest *m = NULL;
	json_error_t jerr;
	json_t *root, *chunks, *v;
	const char *name, *config;
	size_t n, i = 0;
	int ret;

	*out = NULL;
	if (len > MANIFEST_MAX_BYTES) {
		parse_error(err, errlen, "the manifest has %zu bytes, more than the %u accepted",
		            len, MANIFEST_MAX_BYTES);
		return -EFBIG;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return parse_error(err, errlen, "not JSON: %s (line %d)", jerr.text, jerr.line);
	chunks = json_object_get(root, "chunks");
	if (!json_is_object(root) || !(json_is_object(chunks) || json_is_array(chunks))) {
		ret = parse_error(err, errlen, "no \"chunks\" object; not a chunk_info.json");
		goto out;
	}
	n = json_is_object(chunks) ? json_object_size(chunks) : json_array_size(chunks);
	if (n > MANIFEST_MAX_CHUNKS) {
		parse_error(err, errlen, "%zu chunks, more than the %u accepted", n,
		            MANIFEST_MAX_CHUNKS);
		ret = -EFBIG;
		goto out;
	}
	ret = -ENOMEM;
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->chunks = calloc(n ? n : 1, sizeof(*m->chunks))) == NULL)
		goto out;
	if (json_is_object(chunks)) {
		json_object_foreach(chunks, name, v)
		{
			ret = parse_chunk(v, name, i, &m->chunks[i], err, errlen);
			m->n_chunks = ++i;
			if (ret < 0)
				goto out;
		}
	} else {
		json_array_foreach(chunks, i, v)
		{
			ret = parse_chunk(v, "", i, &m->chunks[i], err, errlen);
			m->n_chunks = i + 1;
			if (ret < 0)
				goto out;
		}
	}
	ret = member_path(root, "config", "the manifest", &config, err, errlen);
	if (ret == 0 && config != NULL && (m->config = strdup(config)) == NULL)
		ret = -ENOMEM;
out:
	json_decref(root);
	if (ret < 0) {
		if (ret == -ENOMEM)
			parse_error(err, errlen, "out of memory");
		manifest_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

void manifest_free(struct manifest *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_chunks; i++) {
		free(m->chunks[i].name);
		free(m->chunks[i].file);
	}
	free(m->chunks);
	free(m->config);
	free(m);
}

ssize_t manifest_find(const struct manifest *m, const char *file)
{
	for (size_t i = 0; m != NULL && i < m->n_chunks; i++)
		if (strcmp(m->chunks[i].file, file) == 0)
			return (ssize_t)i;
	return -1;
}

int manifest_load_file(const char *path, struct manifest **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	if (fd < 0) {
		ret = -errno;
		parse_error(err, errlen, "%s", strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		parse_error(err, errlen, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = parse_error(err, errlen, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > MANIFEST_MAX_BYTES) {
		parse_error(err, errlen, "%lld bytes, more than the %u accepted",
		            (long long)st.st_size, MANIFEST_MAX_BYTES);
		ret = -EFBIG;
		goto out;
	}
	buf = malloc(MANIFEST_MAX_BYTES + 1);
	if (buf == NULL) {
		ret = parse_error(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	/* Read to the end: the size seen by fstat may already be stale. */
	for (;;) {
		ssize_t n = read(fd, buf + len, MANIFEST_MAX_BYTES + 1 - len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			ret = -errno;
			parse_error(err, errlen, "%s", strerror(errno));
			goto out;
		}
		if (n == 0 || (len += (size_t)n) > MANIFEST_MAX_BYTES)
			break;
	}
	ret = manifest_parse(buf, len, out, err, errlen);
out:
	free(buf);
	close(fd);
	return ret;
}
