/* store.c - see store.h. */
#include "store.h"

#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "mount.h"
#include "s3/s3.h"
#include "suites.h"

const char *store_s3_unavailable(void)
{
	if (getenv("CHUNKFS_TEST_S3_ENDPOINT") == NULL || getenv("CHUNKFS_TEST_S3_BUCKET") == NULL)
		return "no S3 test server (CHUNKFS_TEST_S3_* unset; run through make check)";
	return NULL;
}

int store_open(struct store *s, enum store_kind kind, const char *dir)
{
	static unsigned serial;
	struct s3_opts o;
	char err[1024];

	memset(s, 0, sizeof(*s));
	s->kind = kind;
	if (kind == STORE_FS) {
		snprintf(s->source, sizeof(s->source), "%s", dir);
		s->be = fs_backend_create(dir);
		return s->be ? 0 : -errno;
	}
	if (store_s3_unavailable() != NULL)
		return -ENODEV;
	setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	unsetenv("AWS_PROFILE");
	snprintf(s->source, sizeof(s->source), "s3://%s/mt-%d-%u-%ld",
	         getenv("CHUNKFS_TEST_S3_BUCKET"), (int)getpid(), serial++, (long)time(NULL));
	snprintf(s->opts, sizeof(s->opts), "endpoint=%s", getenv("CHUNKFS_TEST_S3_ENDPOINT"));
	s3_opts_init(&o);
	o.endpoint = strdup(getenv("CHUNKFS_TEST_S3_ENDPOINT"));
	s->be = s3_backend_create(s->source, &o, err, sizeof(err));
	s3_opts_free(&o);
	if (s->be == NULL) {
		fprintf(stderr, "store: %s\n", err);
		return -EIO;
	}
	return 0;
}

void store_close(struct store *s)
{
	struct backend_list l;

	if (s->be == NULL)
		return;
	for (int round = 0; s->kind == STORE_S3 && round < 1000; round++) {
		if (s->be->ops->list(s->be, "", 0, NULL, NULL, 1000, &l) != 0 || l.n_entries == 0) {
			backend_list_free(&l);
			break;
		}
		for (size_t i = 0; i < l.n_entries; i++)
			s->be->ops->remove(s->be, l.entries[i].key);
		backend_list_free(&l);
	}
	backend_destroy(s->be);
	s->be = NULL;
}

int store_put(struct store *s, const char *key, const void *buf, size_t len)
{
	return backend_save_buffer(s->be, key, buf, len, NULL);
}

int store_put_file(struct store *s, const char *key, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY), ret;

	if (fd < 0)
		return -errno;
	ret = fstat(fd, &st) < 0 ? -errno
	                         : backend_save_fd(s->be, key, fd, (uint64_t)st.st_size, NULL);
	close(fd);
	return ret;
}

char *store_get(struct store *s, const char *key, size_t *len)
{
	struct backend_stat st;
	char *buf;
	ssize_t n;
	int ret = s->be->ops->stat(s->be, key, &st);

	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	buf = malloc(st.size + 1);
	if (buf == NULL)
		return NULL;
	n = backend_read_full(s->be, key, 0, buf, st.size, st.etag);
	if (n < 0 || (uint64_t)n != st.size) {
		free(buf);
		errno = n < 0 ? (int)-n : EIO;
		return NULL;
	}
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

int store_has(struct store *s, const char *key)
{
	struct backend_stat st;
	return s->be->ops->stat(s->be, key, &st) == 0;
}

int store_has_dir(struct store *s, const char *dir)
{
	struct backend_list l;
	char prefix[PATH_MAX];
	int found;

	snprintf(prefix, sizeof(prefix), "%s/", dir);
	if (s->be->ops->list(s->be, prefix, '/', NULL, NULL, 1, &l) != 0)
		return 0;
	found = l.n_entries + l.n_prefixes > 0;
	backend_list_free(&l);
	return found;
}

static int put_tree(struct store *s, const char *dir, const char *rel)
{
	char path[PATH_MAX], key[PATH_MAX];
	struct dirent *e;
	int ret = 0, n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", dir, *rel ? "/" : "", rel);
	d = opendir(path);
	if (d == NULL)
		return -errno;
	while (ret == 0 && (e = readdir(d)) != NULL) {
		char child_rel[PATH_MAX], child[PATH_MAX + 300];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(child_rel, sizeof(child_rel), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		snprintf(child, sizeof(child), "%s/%s", dir, child_rel);
		if (lstat(child, &st) < 0) {
			ret = -errno;
			break;
		}
		n++;
		if (S_ISDIR(st.st_mode))
			ret = put_tree(s, dir, child_rel);
		else if (S_ISREG(st.st_mode))
			ret = store_put_file(s, child_rel, child);
	}
	closedir(d);
	if (ret == 0 && n == 0 && *rel) {
		snprintf(key, sizeof(key), "%s/", rel);
		ret = store_put(s, key, "", 0);
	}
	return ret;
}

int store_put_tree(struct store *s, const char *dir)
{
	return put_tree(s, dir, "");
}

const char *store_s3_prefix(const struct store *s)
{
	static char prefix[PATH_MAX];

	if (s->kind != STORE_S3)
		return "";
	snprintf(prefix, sizeof(prefix), "%s/", strchr(s->source + 5, '/') + 1);
	return prefix;
}

/* Collect a response body. */
static size_t body_cb(char *p, size_t size, size_t n, void *ud)
{
	struct {
		char *buf;
		size_t len;
	} *b = ud;
	char *grown = realloc(b->buf, b->len + size * n + 1);

	if (grown == NULL)
		return 0;
	b->buf = grown;
	memcpy(b->buf + b->len, p, size * n);
	b->len += size * n;
	b->buf[b->len] = '\0';
	return size * n;
}

/*
 * One request to the control port, made in this process: a test with a
 * file open must not fork (a child's exit closes the descriptor, which
 * makes the kernel flush the file).  The caller frees *out.
 */
static int control_request(const char *method, const char *path, const char *json, char **out)
{
	struct {
		char *buf;
		size_t len;
	} b = {NULL, 0};
	struct curl_slist *h = NULL;
	char url[1024];
	long status = 0;
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (c == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s%s", getenv("CHUNKFS_TEST_S3_CONTROL"), path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (json != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || status < 200 || status >= 300) {
		free(b.buf);
		return -1;
	}
	if (out != NULL)
		*out = b.buf;
	else
		free(b.buf);
	return 0;
}

int store_control(const char *method, const char *path, const char *json)
{
	return control_request(method, path, json, NULL);
}

long long store_counter(const char *name, const char *sub)
{
	return store_control_number("/counters", name, sub);
}

long long store_control_number(const char *path, const char *name, const char *sub)
{
	json_error_t jerr;
	json_t *root, *v;
	long long n = -1;
	char *body = NULL;

	if (control_request("GET", path, NULL, &body) == 0 &&
	    (root = json_loads(body, 0, &jerr)) != NULL) {
		v = json_object_get(root, name);
		if (sub != NULL)
			v = json_object_get(v, sub);
		n = json_is_integer(v) ? json_integer_value(v) : 0;
		json_decref(root);
	}
	free(body);
	return n;
}

int store_run_suites(Suite *(*make)(enum store_kind kind), enum store_kind *kind, const char *what)
{
	enum store_kind kinds[] = {STORE_FS, STORE_S3};
	int failed = 0;

	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("NOT RUN %s: /dev/fuse is not usable here (%s)\n", what, strerror(errno));
		return 0;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (kinds[i] == STORE_S3 && store_s3_unavailable() != NULL) {
			printf("NOT RUN %s_s3: %s\n", what, store_s3_unavailable());
			continue;
		}
		*kind = kinds[i];
		failed += suites_run(make(kinds[i]));
	}
	return failed ? 1 : 0;
}

int store_mount(const struct store *s, struct test_mount *m, const char *opts)
{
	char all[2048];

	snprintf(all, sizeof(all), "%s%s%s", s->opts, s->opts[0] && opts ? "," : "",
	         opts ? opts : "");
	return tm_mount(m, s->source, all[0] ? all : NULL);
}

void store_fixture_begin(struct test_mount *m, struct store *s, enum store_kind kind)
{
	ck_assert_int_eq(tm_prepare(m), 0);
	ck_assert_int_eq(store_open(s, kind, m->src), 0);
}

void store_fixture_end(struct test_mount *m, struct store *s)
{
	tm_stop(m);
	store_close(s);
}

void store_mount_ok(const struct store *s, struct test_mount *m, const char *opts)
{
	ck_assert_msg(store_mount(s, m, opts) == 0, "mount failed; see %s/daemon.log", m->root);
}

void store_mount_refused(const struct store *s, struct test_mount *m, const char *opts,
                         const char *why)
{
	size_t len;
	char *log;

	ck_assert_int_eq(store_mount(s, m, opts), -ECHILD);
	log = tm_read_file(tm_path(m->root, "daemon.log"), &len);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, why) != NULL, "no \"%s\" in: %s", why, log);
	free(log);
}
