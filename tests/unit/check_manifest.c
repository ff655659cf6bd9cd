/*
 * check_manifest.c - the chunk_info.json parser (fuse/manifest.c): the
 * chunk library's format, chunkfs's superset of it, malformed input,
 * files that leave the manifest's directory, the size bounds, and reading
 * a manifest file without blocking.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifest.h"
#include "suites.h"

static char err[512];

static struct manifest *parse_ok(const char *text)
{
	struct manifest *m = NULL;
	int ret = manifest_parse(text, strlen(text), &m, err, sizeof(err));

	ck_assert_msg(ret == 0, "parse failed (%d): %s", ret, err);
	ck_assert_ptr_nonnull(m);
	return m;
}

/* Parsing fails with want; err must mention needle (may be NULL). */
static void parse_bad(const char *text, int want, const char *needle)
{
	struct manifest *m = (struct manifest *)1;

	err[0] = '\0';
	ck_assert_int_eq(manifest_parse(text, strlen(text), &m, err, sizeof(err)), want);
	ck_assert_ptr_null(m);
	ck_assert_msg(err[0] != '\0', "no message for %s", text);
	if (needle != NULL)
		ck_assert_msg(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"", err,
		              needle);
}

/* The library's format: chunks in the order written (not sorted), sizes
 * from size_mb rounded up to bytes. */
START_TEST(test_library_format)
{
	struct manifest *m =
	    parse_ok("{\"model_name\": \"prajjwal1/bert-tiny\", \"model_type\": \"bert\", "
	             "\"num_layers\": 12, \"chunks\": {"
	             "\"embeddings\": {\"file\": \"embeddings.pt\", \"size_mb\": 7.58},"
	             "\"layer_0\": {\"file\": \"layer_0.pt\", \"size_mb\": 0.383},"
	             "\"layer_10\": {\"file\": \"layer_10.pt\", \"size_mb\": 1},"
	             "\"layer_2\": {\"file\": \"layer_2.pt\", \"size_mb\": 0.5},"
	             "\"pooler\": {\"file\": \"pooler.pt\", \"size_mb\": 0.0331}},"
	             "\"total_size_mb\": 8.379}");

	ck_assert_uint_eq(m->n_chunks, 5);
	ck_assert_str_eq(m->chunks[0].name, "embeddings");
	ck_assert_str_eq(m->chunks[0].file, "embeddings.pt");
	ck_assert_str_eq(m->chunks[2].file, "layer_10.pt");
	ck_assert_str_eq(m->chunks[3].file, "layer_2.pt");
	ck_assert_str_eq(m->chunks[4].name, "pooler");
	ck_assert_uint_eq(m->chunks[0].size, 7948207); /* ceil(7.58 * 2^20) */
	ck_assert_uint_eq(m->chunks[2].size, 1 << 20);
	ck_assert_uint_eq(m->chunks[3].size, 1 << 19);
	ck_assert_int_eq(m->chunks[0].size_exact, 0);
	ck_assert_ptr_null(m->config);
	ck_assert_int_eq(manifest_find(m, "layer_2.pt"), 3);
	ck_assert_int_eq(manifest_find(m, "pooler.pt"), 4);
	ck_assert_int_eq(manifest_find(m, "layer_1.pt"), -1);
	ck_assert_int_eq(manifest_find(m, "chunk_info.json"), -1);
	manifest_free(m);

	/* Reversed order stays reversed; no chunks at all is a manifest. */
	m = parse_ok("{\"chunks\": {\"b\": {\"file\": \"b.pt\", \"size_mb\": 0},"
	             "\"a\": {\"file\": \"a.pt\", \"size_mb\": 2}}}");
	ck_assert_str_eq(m->chunks[0].file, "b.pt");
	ck_assert_str_eq(m->chunks[1].file, "a.pt");
	ck_assert_uint_eq(m->chunks[0].size, 0);
	manifest_free(m);
	m = parse_ok("{\"chunks\": {}}");
	ck_assert_uint_eq(m->n_chunks, 0);
	ck_assert_int_eq(manifest_find(m, "a.pt"), -1);
	manifest_free(m);
}
END_TEST

/* chunkfs's superset: exact sizes, a list of chunks, a config file, a
 * file in a subdirectory; unknown members are ignored. */
START_TEST(test_chunkfs_format)
{
	struct manifest *m = parse_ok(
	    "{\"format\": \"chunkfs-chunk-info\", \"config\": \"config.json\", \"chunks\": ["
	    "{\"file\": \"embeddings.pt\", \"size\": 1576766, \"sha256\": \"ab\"},"
	    "{\"file\": \"sub/layer_0.pt\", \"size\": 0, \"tensors\": []}]}");

	ck_assert_uint_eq(m->n_chunks, 2);
	ck_assert_str_eq(m->chunks[0].name, "");
	ck_assert_uint_eq(m->chunks[0].size, 1576766);
	ck_assert_int_eq(m->chunks[0].size_exact, 1);
	ck_assert_str_eq(m->chunks[1].file, "sub/layer_0.pt");
	ck_assert_str_eq(m->config, "config.json");
	manifest_free(m);

	/* The library's object form with an exact size added wins over size_mb. */
	m = parse_ok("{\"chunks\": {\"x\": {\"file\": \"x.pt\", \"size_mb\": 9, \"size\": 5}}}");
	ck_assert_uint_eq(m->chunks[0].size, 5);
	ck_assert_int_eq(m->chunks[0].size_exact, 1);
	manifest_free(m);
}
END_TEST

START_TEST(test_malformed)
{
	parse_bad("", -EINVAL, "not JSON");
	parse_bad("{\"chunks\": {\"a\": {\"file\": \"a.pt\"}", -EINVAL, "not JSON");
	parse_bad("[1, 2]", -EINVAL, "chunks");
	parse_bad("{\"model_name\": \"x\"}", -EINVAL, "chunks");
	parse_bad("{\"chunks\": \"layer_0.pt\"}", -EINVAL, "chunks");
	parse_bad("{\"chunks\": {\"a\": \"a.pt\"}}", -EINVAL, "chunk \"a\" is not an object");
	parse_bad("{\"chunks\": [{\"file\": \"a.pt\"}, 3]}", -EINVAL, "chunk 1 is not");
	parse_bad("{\"chunks\": {\"a\": {\"size_mb\": 1}}}", -EINVAL, "has no \"file\"");
	parse_bad("{\"chunks\": {\"a\": {\"file\": 7}}}", -EINVAL, "not a string");
	parse_bad("{\"chunks\": {\"a\": {\"file\": \"a.pt\", \"size_mb\": \"big\"}}}", -EINVAL,
	          "size_mb");
	parse_bad("{\"chunks\": {\"a\": {\"file\": \"a.pt\", \"size_mb\": -1}}}", -EINVAL,
	          "size_mb");
	parse_bad("{\"chunks\": {\"a\": {\"file\": \"a.pt\", \"size\": 1.5}}}", -EINVAL, "size");
	parse_bad("{\"chunks\": {\"a\": {\"file\": \"a.pt\", \"size\": -3}}}", -EINVAL, "size");
	parse_bad("{\"chunks\": {\"a\": {\"file\": \"a.pt\"}, \"a\": {\"file\": \"b.pt\"}}}",
	          -EINVAL, "not JSON");
	parse_bad("{\"config\": 3, \"chunks\": []}", -EINVAL, "config");
}
END_TEST

/* A file must stay in the manifest's directory. */
START_TEST(test_path_escape)
{
	static const char *const bad[] = {
	    "../secret.pt", "/etc/passwd", "a/../../b.pt", "sub/..", "..", ".",
	    "./a.pt",       "a//b.pt",     "a/",           "",
	};
	char text[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(!manifest_file_ok(bad[i]), "%s accepted", bad[i]);
		snprintf(text, sizeof(text), "{\"chunks\": {\"c\": {\"file\": \"%s\"}}}", bad[i]);
		parse_bad(text, -EINVAL, "not a path inside the manifest's directory");
	}
	parse_bad("{\"chunks\": {\"c\": {\"file\": \"a.pt\\u0000/../../x\"}}}", -EINVAL, NULL);
	parse_bad("{\"config\": \"../config.json\", \"chunks\": {}}", -EINVAL, "config");
	ck_assert(manifest_file_ok("layer_0.pt"));
	ck_assert(manifest_file_ok("sub/dir/x..pt"));
	ck_assert(manifest_file_ok("..hidden"));
	ck_assert(!manifest_file_ok(NULL));
}
END_TEST

/* Bounds: bytes and chunk count. */
START_TEST(test_limits)
{
	size_t n = MANIFEST_MAX_CHUNKS + 1, len = 0, cap = n * 16 + 64;
	char *text = malloc(cap);
	struct manifest *m = NULL;

	ck_assert_ptr_nonnull(text);
	len += (size_t)sprintf(text + len, "{\"chunks\": [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "%s{\"file\": \"f\"}", i ? "," : "");
	len += (size_t)sprintf(text + len, "]}");
	ck_assert_uint_lt(len, MANIFEST_MAX_BYTES);
	ck_assert_int_eq(manifest_parse(text, len, &m, err, sizeof(err)), -EFBIG);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(manifest_parse(text, MANIFEST_MAX_BYTES + 1, &m, err, sizeof(err)),
	                 -EFBIG);
	free(text);
}
END_TEST

/* manifest_load_file: a regular file is read, a FIFO is refused at once
 * (no reader would ever come), a missing file gives -ENOENT. */
START_TEST(test_load_file)
{
	char dir[] = "/tmp/check_manifest.XXXXXX", path[PATH_MAX];
	struct manifest *m = NULL;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/chunk_info.json", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"chunks\": {\"layer_0\": {\"file\": \"layer_0.pt\", \"size_mb\": 0.5}}}", f);
	fclose(f);
	ck_assert_int_eq(manifest_load_file(path, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m->n_chunks, 1);
	manifest_free(m);
	unlink(path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(manifest_load_file(path, &m, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "not a regular file");
	unlink(path);
	ck_assert_int_eq(manifest_load_file(path, &m, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_null(m);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("manifest");

	tcase_add_test(tc, test_library_format);
	tcase_add_test(tc, test_chunkfs_format);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_path_escape);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_load_file);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
