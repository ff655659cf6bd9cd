/*
 * check_fault_matrix.c - every request kind chunkfs sends to S3 under every
 * fault kind the test server injects, once and past the retries, through
 * the mounted filesystem.
 *
 * Each cell puts what its operation needs on the server (behind the
 * mount's back, under a fresh directory), arms one fault kind for one
 * request kind (the server's methods filter, and its prefix filter for
 * requests that name a key), runs the operation through the mount, and
 * prints one line.  Once: the operation must succeed and the bytes must be
 * right.  Past the retries (the fault on every such request): it must
 * either fail with EIO -- and then a write's data is still in staging,
 * the store does not hold what was reported lost, and a rename or unlink
 * left the source in place -- or succeed with the right bytes (a fault
 * that cannot hurt that request, e.g. a short body on an answer that has
 * none, or an abort that is best effort).  Wrong bytes, other errors and
 * a cell whose fault was never injected fail.
 *
 * Short timeouts keep it quick: retries=2, read_timeout=1, stalls of
 * 2.5 s, 5 MiB parts, copies over 5 MiB in parts (UploadPartCopy).
 *
 * Also here: the single-reset cases of issue 18 that failed before
 * request bodies were rewindable.
 */
#include <check.h>
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

#include "mount.h"
#include "store.h"
#include "suites.h"

/* list_ttl=0: each cell puts its objects behind the mount's back. */
#define MATRIX_OPTS                                                                                \
	"retries=2,read_timeout=1,connect_timeout=2,part_size_mb=5,max_copy_mb=5,list_ttl=0"
#define STALL_MS   2500
#define SMALL      (300u * 1000)       /* a PUT */
#define LARGE      (11u << 20)         /* a multipart upload of 3 parts */
#define COPY_LARGE ((5u << 20) + 4096) /* copied with UploadPartCopy */

static struct test_mount m;
static struct store st;

enum op {
	OP_HEAD,
	OP_GET,
	OP_LIST,
	OP_PUT,
	OP_CREATE,
	OP_PART,
	OP_PARTCOPY,
	OP_COMPLETE,
	OP_ABORT,
	OP_COPY,
	OP_DELETE,
	OP_N
};

/* What chunkfs does through the mount to make the server see the request. */
enum action {
	A_STAT,
	A_READ,
	A_READDIR,
	A_WRITE_SMALL,
	A_WRITE_LARGE,
	A_RENAME_LARGE,
	A_WRITE_SHRINK,
	A_RENAME_SMALL,
	A_UNLINK
};

static const struct {
	const char *name;   /* in the output */
	const char *server; /* the test server's operation name */
	enum action action;
	int by_key;       /* the request names the key (prefix filter applies) */
	const char *opts; /* more mount options for this row */
} ops[OP_N] = {
    [OP_HEAD] = {"HEAD", "HeadObject", A_STAT, 1},
    [OP_GET] = {"GET", "GetObject", A_READ, 1},
    [OP_LIST] = {"LIST", "ListObjectsV2", A_READDIR, 0},
    [OP_PUT] = {"PUT", "PutObject", A_WRITE_SMALL, 1},
    [OP_CREATE] = {"CreateMultipart", "CreateMultipartUpload", A_WRITE_LARGE, 1},
    [OP_PART] = {"UploadPart", "UploadPart", A_WRITE_LARGE, 1},
    [OP_PARTCOPY] = {"UploadPartCopy", "UploadPartCopy", A_RENAME_LARGE, 1},
    [OP_COMPLETE] = {"Complete", "CompleteMultipartUpload", A_WRITE_LARGE, 1},
    /* A streamed upload (begun while writing) dropped by a truncation. */
    [OP_ABORT] = {"Abort", "AbortMultipartUpload", A_WRITE_SHRINK, 1, "stream_min=1"},
    [OP_COPY] = {"Copy", "CopyObject", A_RENAME_SMALL, 1},
    [OP_DELETE] = {"DELETE", "DeleteObject", A_UNLINK, 1},
};

static const char *const kinds[] = {"reset_before", "reset_body", "stall",
                                    "500",          "503",        "short_body"};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
	ck_assert_int_eq(store_open(&st, STORE_S3, m.src), 0);
}

static void teardown(void)
{
	store_control("DELETE", "/faults", NULL);
	tm_stop(&m);
	store_close(&st);
}

static void mount_with(const char *opts)
{
	ck_assert_msg(store_mount(&st, &m, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

/* Faults injected since the last POST /faults, or -1. */
static long long injected(void)
{
	char path[PATH_MAX + 64], cmd[2 * PATH_MAX];
	json_t *root;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/faults.json", m.root);
	snprintf(cmd, sizeof(cmd), "curl -sf '%s/faults' > '%s'", getenv("CHUNKFS_TEST_S3_CONTROL"),
	         path);
	if (tm_sh("%s", cmd) != 0)
		return -1;
	root = json_load_file(path, 0, NULL);
	if (root != NULL) {
		json_t *x = json_object_get(root, "injected");

		v = json_is_integer(x) ? json_integer_value(x) : -1;
		json_decref(root);
	}
	return v;
}

/* Arm kind for the server operation op; key_prefix NULL: any key. */
static void arm(const char *kind, const char *op, const char *key_prefix, int count)
{
	char json[1024];

	snprintf(json, sizeof(json),
	         "{\"count\":%d,\"kinds\":\"%s\",\"methods\":\"%s\",\"stall_ms\":%d%s%s%s}", count,
	         kind, op, STALL_MS, key_prefix ? ",\"prefix\":\"" : "",
	         key_prefix ? key_prefix : "", key_prefix ? "\"" : "");
	ck_assert_int_eq(store_control("POST", "/faults", json), 0);
}

static void put_pattern(const char *key, uint64_t size, uint32_t seed)
{
	ck_assert_int_eq(tm_write_pattern(tm_path(m.root, "pattern.tmp"), size, seed), 0);
	ck_assert_int_eq(store_put_file(&st, key, tm_path(m.root, "pattern.tmp")), 0);
	unlink(tm_path(m.root, "pattern.tmp"));
}

/* 1 when path holds exactly size bytes of pattern(seed). */
static int file_is_pattern(const char *path, uint64_t size, uint32_t seed)
{
	size_t len;
	char *got = tm_read_file(path, &len);
	int ok = got != NULL && len == size && tm_pattern_check(got, 0, len, seed) == len;

	free(got);
	return ok;
}

/* 1 when the store holds key as size bytes of pattern(seed). */
static int stored_is_pattern(const char *key, uint64_t size, uint32_t seed)
{
	size_t len;
	char *got = store_get(&st, key, &len);
	int ok = got != NULL && len == size && tm_pattern_check(got, 0, len, seed) == len;

	free(got);
	return ok;
}

/* 1 when some file under the staging directory holds size bytes of
 * pattern(seed): a failed save's data, kept for recovery. */
static int staged_has_pattern(uint64_t size, uint32_t seed)
{
	char want[PATH_MAX];

	snprintf(want, sizeof(want), "%s/want.tmp", m.root);
	if (tm_write_pattern(want, size, seed) != 0)
		return 0;
	return tm_sh("find '%s' -type f -size %lluc -exec cmp -s '%s' {} \\; -print | grep -q .",
	             m.staging, (unsigned long long)size, want) == 0;
}

/* Write size bytes of pattern(seed) to path through the mount; shrink:
 * cut to SMALL bytes before closing.  0 or -errno of the first failure. */
static int write_file(const char *path, uint64_t size, uint32_t seed, int shrink)
{
	size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), ret = 0;

	if (fd < 0 || buf == NULL) {
		free(buf);
		return fd < 0 ? -errno : -ENOMEM;
	}
	for (uint64_t off = 0; off < size && ret == 0; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;

		tm_pattern(buf, off, n, seed);
		if (write(fd, buf, n) != (ssize_t)n)
			ret = -errno;
	}
	if (ret == 0 && shrink && ftruncate(fd, SMALL) != 0)
		ret = -errno;
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
	free(buf);
	return ret;
}

/* One cell: its outcome as text in out; 0 when it holds, -1 when not. */
static int run_cell(enum op op, const char *kind, int past, char *out, size_t out_len)
{
	const enum action a = ops[op].action;
	const uint32_t seed = (uint32_t)(op * 100 + past * 10) + 1;
	char dir[128], key[256], key2[256], full[512], mdir[PATH_MAX], f[PATH_MAX], g[PATH_MAX];
	uint64_t size = SMALL;
	struct stat sb;
	long long inj;
	int ret = 0, ok = 0, kept = 1, lost = 0;

	snprintf(dir, sizeof(dir), "m%d-%s-%s", op, kind, past ? "past" : "once");
	snprintf(key, sizeof(key), "%s/f", dir);
	snprintf(key2, sizeof(key2), "%s/g", dir);
	snprintf(full, sizeof(full), "%s%s/", store_s3_prefix(&st), dir);
	snprintf(mdir, sizeof(mdir), "%s/%s", m.mnt, dir);
	snprintf(f, sizeof(f), "%s/%s", m.mnt, key);
	snprintf(g, sizeof(g), "%s/%s", m.mnt, key2);
	if (a == A_WRITE_LARGE)
		size = LARGE;
	else if (a == A_WRITE_SHRINK)
		size = 16u << 20;
	else if (a == A_RENAME_LARGE)
		size = COPY_LARGE;
	/* What the operation starts from. */
	if (a == A_STAT || a == A_READ || a == A_READDIR || a == A_RENAME_LARGE ||
	    a == A_RENAME_SMALL || a == A_UNLINK)
		put_pattern(key, size, seed);
	if (a == A_READDIR)
		put_pattern(key2, 10, seed);

	if (a == A_WRITE_SMALL || a == A_WRITE_LARGE || a == A_WRITE_SHRINK)
		ck_assert_int_eq(mkdir(mdir, 0755), 0);

	arm(kind, ops[op].server, ops[op].by_key ? full : NULL, past ? 1000 : 1);
	switch (a) {
	case A_STAT:
		ret = stat(f, &sb) == 0 ? 0 : -errno;
		ok = ret == 0 && (uint64_t)sb.st_size == size;
		break;
	case A_READ:
		ret = file_is_pattern(f, size, seed) ? 0 : -EIO;
		ok = ret == 0;
		break;
	case A_READDIR: {
		DIR *d = opendir(mdir);
		struct dirent *e;
		int seen = 0;

		ret = d == NULL ? -errno : 0;
		while (d != NULL && (errno = 0, e = readdir(d)) != NULL)
			seen += strcmp(e->d_name, "f") == 0 || strcmp(e->d_name, "g") == 0;
		if (d != NULL && errno != 0)
			ret = -errno;
		if (d != NULL)
			closedir(d);
		ok = ret == 0 && seen == 2;
		break;
	}
	case A_WRITE_SMALL:
	case A_WRITE_LARGE:
	case A_WRITE_SHRINK:
		ret = write_file(f, size, seed, a == A_WRITE_SHRINK);
		if (a == A_WRITE_SHRINK)
			size = SMALL;
		/* Checked with the fault still armed: the daemon's own retry at
		 * release must not blur what close() reported. */
		ok = ret == 0 && stored_is_pattern(key, size, seed);
		if (ret < 0) {
			kept = staged_has_pattern(size, seed);
			lost = stored_is_pattern(key, size, seed);
		}
		break;
	case A_RENAME_LARGE:
	case A_RENAME_SMALL:
		ret = rename(f, g) == 0 ? 0 : -errno;
		ok = ret == 0 && stored_is_pattern(key2, size, seed) && !store_has(&st, key);
		if (ret < 0)
			kept = stored_is_pattern(key, size, seed);
		break;
	case A_UNLINK:
		ret = unlink(f) == 0 ? 0 : -errno;
		ok = ret == 0 && !store_has(&st, key);
		if (ret < 0)
			kept = stored_is_pattern(key, size, seed);
		break;
	}
	inj = injected();
	store_control("DELETE", "/faults", NULL);
	if (ret == 0 && ok && a != A_WRITE_SMALL && a != A_WRITE_LARGE && a != A_WRITE_SHRINK &&
	    a != A_RENAME_LARGE && a != A_RENAME_SMALL && a != A_UNLINK)
		ok = 1;
	/* Through the mount as well: what the writer sees. */
	if (ret == 0 && ok && (a == A_WRITE_SMALL || a == A_WRITE_LARGE || a == A_WRITE_SHRINK))
		ok = file_is_pattern(f, size, seed);
	if (ret == 0 && ok && (a == A_RENAME_LARGE || a == A_RENAME_SMALL))
		ok = file_is_pattern(g, size, seed);

	if (inj < 1) {
		snprintf(out, out_len, "FAIL: the fault was never injected (%s)",
		         ret == 0 ? "the operation succeeded" : strerror(-ret));
		return -1;
	}
	if (ret == 0 && ok) {
		snprintf(out, out_len, "ok, right bytes (%lld fault%s)", inj, inj == 1 ? "" : "s");
		return 0;
	}
	if (ret == 0) {
		snprintf(out, out_len, "FAIL: succeeded with wrong bytes or state");
		return -1;
	}
	if (!past) {
		snprintf(out, out_len, "FAIL: %s after one fault", strerror(-ret));
		return -1;
	}
	if (ret != -EIO) {
		snprintf(out, out_len, "FAIL: %s, not EIO", strerror(-ret));
		return -1;
	}
	if (!kept || lost) {
		snprintf(out, out_len, "FAIL: EIO, but %s",
		         !kept ? "the data is neither in staging nor at its source"
		               : "the object was stored");
		return -1;
	}
	snprintf(out, out_len, "EIO, data kept (%lld faults)", inj);
	return 0;
}

START_TEST(test_matrix)
{
	enum op op = (enum op)_i;
	const char *only = getenv("CHUNKFS_MATRIX_OPS"), *extra = getenv("CHUNKFS_MATRIX_OPTS");
	char opts[512];
	int failed = 0;

	/* CHUNKFS_MATRIX_OPS=LIST,Abort runs those rows only; CHUNKFS_MATRIX_OPTS
	 * adds mount options (log_level=debug). */
	if (only != NULL && !strstr(only, ops[op].name))
		return;
	snprintf(opts, sizeof(opts), "%s%s%s%s%s", MATRIX_OPTS, ops[op].opts ? "," : "",
	         ops[op].opts ? ops[op].opts : "", extra ? "," : "", extra ? extra : "");
	mount_with(opts);
	for (size_t k = 0; k < N_KINDS; k++) {
		for (int past = 0; past < 2; past++) {
			char out[256];
			struct timespec t0, t1;
			int r;

			clock_gettime(CLOCK_MONOTONIC, &t0);
			r = run_cell(op, kinds[k], past, out, sizeof(out));
			clock_gettime(CLOCK_MONOTONIC, &t1);
			printf("cell %-15s x %-12s x %-4s: %s (%.1f s)\n", ops[op].name, kinds[k],
			       past ? "past" : "once", out,
			       (double)(t1.tv_sec - t0.tv_sec) +
			           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
			fflush(stdout);
			failed += r < 0;
		}
	}
	if (failed)
		tm_sh("echo '--- the daemon log:'; tail -n 60 '%s/daemon.log'", m.root);
	ck_assert_msg(failed == 0, "%d cell(s) of %s failed", failed, ops[op].name);
}
END_TEST

/* --- the single-reset cases of issue 18 ---------------------------------- */

/* One fault on one server operation under the mount's prefix. */
static void arm_once(const char *kind, const char *op)
{
	arm(kind, op, store_s3_prefix(&st), 1);
}

/* A 300 KB PUT whose connection is reset while its body is sent. */
START_TEST(test_put_reset_mid_body)
{
	mount_with(NULL);
	arm_once("reset_body", "PutObject");
	ck_assert_int_eq(write_file(tm_path(m.mnt, "put.bin"), SMALL, 7, 0), 0);
	ck_assert_int_eq(injected(), 1);
	ck_assert(stored_is_pattern("put.bin", SMALL, 7));
}
END_TEST

/* A 40 MiB file written out of order (second half first): a multipart
 * upload with one UploadPart reset mid-body. */
START_TEST(test_multipart_out_of_order_reset)
{
	const size_t size = 40u << 20, half = size / 2, chunk = 1 << 20;
	char *buf = malloc(chunk);
	int fd;

	ck_assert_ptr_nonnull(buf);
	mount_with("part_size_mb=5");
	arm_once("reset_body", "UploadPart");
	fd = open(tm_path(m.mnt, "ooo.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	for (int pass = 0; pass < 2; pass++) {
		size_t from = pass == 0 ? half : 0;

		for (size_t off = from; off < from + half; off += chunk) {
			tm_pattern(buf, off, chunk, 8);
			ck_assert_int_eq(pwrite(fd, buf, chunk, (off_t)off), (ssize_t)chunk);
		}
	}
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(injected(), 1);
	ck_assert(stored_is_pattern("ooo.bin", size, 8));
	free(buf);
}
END_TEST

/* CompleteMultipartUpload reset: before its answer (not done), and after
 * it was done (the retry is told NoSuchUpload). */
START_TEST(test_complete_reset)
{
	mount_with("part_size_mb=5");
	arm_once("reset_before", "CompleteMultipartUpload");
	ck_assert_int_eq(write_file(tm_path(m.mnt, "c1.bin"), LARGE, 9, 0), 0);
	ck_assert_int_eq(injected(), 1);
	ck_assert(stored_is_pattern("c1.bin", LARGE, 9));
	arm_once("reset_after", "CompleteMultipartUpload");
	ck_assert_int_eq(write_file(tm_path(m.mnt, "c2.bin"), LARGE, 10, 0), 0);
	ck_assert_int_eq(injected(), 1);
	ck_assert(stored_is_pattern("c2.bin", LARGE, 10));
}
END_TEST

/* A PUT stored by an attempt whose answer was lost, all later attempts
 * refused: the writer is told it is stored, as it is. */
START_TEST(test_put_stored_answer_lost)
{
	mount_with("retries=2");
	ck_assert_int_eq(store_control("POST", "/faults",
	                               "{\"count\":50,\"pick\":\"cycle\",\"methods\":\"PutObject\","
	                               "\"kinds\":\"reset_after,503,503,503,503,503,503\"}"),
	                 0);
	ck_assert_int_eq(write_file(tm_path(m.mnt, "lost.bin"), SMALL, 11, 0), 0);
	store_control("DELETE", "/faults", NULL);
	ck_assert(stored_is_pattern("lost.bin", SMALL, 11));
}
END_TEST

static Suite *matrix_suite(enum store_kind kind)
{
	Suite *s = suite_create("fault_matrix");
	TCase *reg = tcase_create("single_reset"), *tc = tcase_create("matrix");

	(void)kind;
	tcase_add_checked_fixture(reg, setup, teardown);
	tcase_set_timeout(reg, 120);
	tcase_add_test(reg, test_put_reset_mid_body);
	tcase_add_test(reg, test_multipart_out_of_order_reset);
	tcase_add_test(reg, test_complete_reset);
	tcase_add_test(reg, test_put_stored_answer_lost);
	suite_add_tcase(s, reg);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_matrix, 0, OP_N);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	enum store_kind kind;

	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("NOT RUN fault_matrix: /dev/fuse is not usable here (%s)\n",
		       strerror(errno));
		return 0;
	}
	if (store_s3_unavailable() != NULL) {
		printf("NOT RUN fault_matrix: %s\n", store_s3_unavailable());
		return 0;
	}
	kind = STORE_S3;
	return suites_run(matrix_suite(kind));
}
