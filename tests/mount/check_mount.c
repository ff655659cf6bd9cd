/*
 * check_mount.c - chunkfs mounted for real, over every backend.
 *
 * The same cases run over the filesystem backend (a scratch directory) and
 * the S3 backend (a fresh prefix on the test server tests/check.sh starts;
 * NOT RUN without it).  Each test mounts, works through the mountpoint with
 * ordinary system calls and tools, and checks what the store holds through
 * its own view of it (tests/support/store.h).  Trees are built in a local
 * directory first and uploaded, so the mount can be compared with them.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mount.h"
#include "store.h"

static struct test_mount m;
static struct store st;
static enum store_kind g_kind; /* set by main() for each runner */
static char local[PATH_MAX];   /* a local tree to compare the mount with */

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
	ck_assert_int_eq(store_open(&st, g_kind, m.src), 0);
	snprintf(local, sizeof(local), "%s/local", m.root);
	ck_assert_int_eq(mkdir(local, 0755), 0);
}

static void teardown(void)
{
	tm_stop(&m);
	store_close(&st);
}

/* Mount the store with extra options (may be NULL). */
static void mount_with(const char *opts)
{
	ck_assert_msg(store_mount(&st, &m, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

static void mount_rw(void)
{
	mount_with(NULL);
}

/* The stored object must hold exactly len bytes equal to want. */
static void stored_equals(const char *key, const void *want, size_t len)
{
	size_t got;
	char *back = store_get(&st, key, &got);

	ck_assert_msg(back != NULL, "object %s is missing: %s", key, strerror(errno));
	ck_assert_msg(got == len, "object %s has %zu bytes, want %zu", key, got, len);
	ck_assert_msg(memcmp(back, want, len) == 0, "object %s has other bytes", key);
	free(back);
}

/* Store pattern(seed) as key without holding it in memory. */
static void put_pattern(const char *key, uint64_t size, uint32_t seed)
{
	if (st.kind == STORE_FS) {
		ck_assert_int_eq(tm_write_pattern(tm_path(m.src, key), size, seed), 0);
		return;
	}
	ck_assert_int_eq(tm_write_pattern(tm_path(m.root, "pattern.tmp"), size, seed), 0);
	ck_assert_int_eq(store_put_file(&st, key, tm_path(m.root, "pattern.tmp")), 0);
	unlink(tm_path(m.root, "pattern.tmp"));
}

static void files_equal(const char *a, const char *b)
{
	size_t la, lb;
	char *x = tm_read_file(a, &la), *y = tm_read_file(b, &lb);

	ck_assert_msg(x != NULL, "cannot read %s", a);
	ck_assert_msg(y != NULL, "cannot read %s", b);
	ck_assert_msg(la == lb, "%s has %zu bytes, %s has %zu", a, la, b, lb);
	ck_assert_msg(memcmp(x, y, la) == 0, "%s and %s differ", a, b);
	free(x);
	free(y);
}

static void files_equal_mem(const char *path, const void *want, size_t len)
{
	size_t got;
	char *back = tm_read_file(path, &got);

	ck_assert_msg(back != NULL, "cannot read %s", path);
	ck_assert_msg(got == len, "%s has %zu bytes, want %zu", path, got, len);
	ck_assert_msg(memcmp(back, want, len) == 0, "%s has other bytes", path);
	free(back);
}

static void files_equal_str(const char *path, const char *want)
{
	size_t len;
	char *got = tm_read_file(path, &len);

	ck_assert_msg(got != NULL, "cannot read %s", path);
	ck_assert_str_eq(got, want);
	free(got);
}

/* A tree with nested directories, unicode and spaces, empty files. */
static void make_tree(const char *dir)
{
	ck_assert_int_eq(tm_sh("mkdir -p '%s/models/bert/sub dir' '%s/ünïcødé/日本' '%s/empty-dir'",
	                       dir, dir, dir),
	                 0);
	ck_assert_int_eq(tm_write_pattern(tm_path(dir, "models/bert/layer_0.pt"), 3 << 20, 1), 0);
	ck_assert_int_eq(tm_write_pattern(tm_path(dir, "models/bert/sub dir/a b.bin"), 12345, 2),
	                 0);
	ck_assert_int_eq(tm_write_pattern(tm_path(dir, "ünïcødé/日本/データ.bin"), 70000, 3), 0);
	ck_assert_int_eq(tm_write_file(tm_path(dir, "empty.txt"), "", 0), 0);
	ck_assert_int_eq(tm_write_file(tm_path(dir, "models/config.json"), "{\"a\": 1}\n", 9), 0);
}

/* Build the test tree locally and put it in the store. */
static void stock_tree(void)
{
	make_tree(local);
	ck_assert_int_eq(store_put_tree(&st, local), 0);
}

START_TEST(test_tree_reads_back_identical)
{
	stock_tree();
	mount_rw();
	/* sha256sum over the local tree, checked through the mount. */
	ck_assert_int_eq(tm_sh("cd '%s' && find . -type f -print0 | xargs -0 sha256sum > '%s/sums'",
	                       local, m.root),
	                 0);
	ck_assert_int_eq(tm_sh("cd '%s' && sha256sum --quiet -c '%s/sums'", m.mnt, m.root), 0);
	/* cp -r out of the mount equals the tree, empty directory included. */
	ck_assert_int_eq(
	    tm_sh("cp -r '%s' '%s/copy' && diff -r '%s' '%s/copy'", m.mnt, m.root, local, m.root),
	    0);
	files_equal(tm_path(local, "ünïcødé/日本/データ.bin"),
	            tm_path(m.mnt, "ünïcødé/日本/データ.bin"));
}
END_TEST

static char *sorted_listing(const char *dir)
{
	char cmd[8192];
	size_t len;
	char out[PATH_MAX + 32];

	snprintf(out, sizeof(out), "%s.ls", dir);
	snprintf(cmd, sizeof(cmd), "cd '%s' && find . | LC_ALL=C sort > '%s'", dir, out);
	if (system(cmd) != 0)
		return NULL;
	return tm_read_file(out, &len);
}

START_TEST(test_listing_matches_source)
{
	struct stat sa, sb;
	char *a, *b;

	stock_tree();
	mount_rw();
	a = sorted_listing(local);
	b = sorted_listing(m.mnt);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	ck_assert_int_eq(stat(tm_path(m.mnt, "models/bert/layer_0.pt"), &sa), 0);
	ck_assert_int_eq(stat(tm_path(local, "models/bert/layer_0.pt"), &sb), 0);
	ck_assert(S_ISREG(sa.st_mode));
	ck_assert_int_eq(sa.st_size, sb.st_size);
	if (st.kind == STORE_FS) /* a copy keeps the mtime only on a filesystem */
		ck_assert_int_eq(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	ck_assert_int_eq(stat(tm_path(m.mnt, "empty-dir"), &sa), 0);
	ck_assert(S_ISDIR(sa.st_mode));
}
END_TEST

START_TEST(test_write_reaches_backend)
{
	size_t len = (5 << 20) + 123;
	char *buf = malloc(len);
	static const char zeros[10];
	int fd;

	mount_rw();
	tm_pattern(buf, 0, len, 7);
	/* New file, written in uneven pieces and one write at an earlier offset. */
	fd = open(tm_path(m.mnt, "new/dir/out.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_eq(fd, -1); /* parent does not exist yet */
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "new"), 0755), 0);
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "new/dir"), 0755), 0);
	fd = open(tm_path(m.mnt, "new/dir/out.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	for (size_t off = 0; off < len;) {
		size_t n = len - off < 77777 ? len - off : 77777;
		ck_assert_int_eq(write(fd, buf + off, n), (ssize_t)n);
		off += n;
	}
	ck_assert_int_eq(pwrite(fd, buf, 4096, 0), 4096);
	ck_assert_int_eq(close(fd), 0);
	stored_equals("new/dir/out.bin", buf, len);
	/* Overwrite in the middle of an existing file, then append. */
	fd = open(tm_path(m.mnt, "new/dir/out.bin"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "XYZ", 3, 1000000), 3);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(close(fd), 0);
	memcpy(buf + 1000000, "XYZ", 3);
	stored_equals("new/dir/out.bin", buf, len);
	fd = open(tm_path(m.mnt, "new/dir/out.bin"), O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "tail", 4), 4);
	ck_assert_int_eq(close(fd), 0);
	{
		size_t got;
		char *back = store_get(&st, "new/dir/out.bin", &got);
		ck_assert_ptr_nonnull(back);
		ck_assert_uint_eq(got, len + 4);
		ck_assert(memcmp(back, buf, len) == 0);
		ck_assert(memcmp(back + len, "tail", 4) == 0);
		free(back);
	}
	/* Truncate through the mount, shrink and grow. */
	ck_assert_int_eq(truncate(tm_path(m.mnt, "new/dir/out.bin"), 10), 0);
	ck_assert_int_eq(truncate(tm_path(m.mnt, "new/dir/out.bin"), 20), 0);
	memcpy(buf + 10, zeros, 10);
	stored_equals("new/dir/out.bin", buf, 20);
	/* An empty new file exists after close. */
	fd = open(tm_path(m.mnt, "empty"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(fd), 0);
	stored_equals("empty", "", 0);
	free(buf);
}
END_TEST

START_TEST(test_two_handles_share_writes)
{
	char got[8] = {0};
	int a, b;

	mount_rw();
	a = open(tm_path(m.mnt, "shared"), O_RDWR | O_CREAT, 0644);
	b = open(tm_path(m.mnt, "shared"), O_RDWR);
	ck_assert_int_ge(a, 0);
	ck_assert_int_ge(b, 0);
	ck_assert_int_eq(pwrite(a, "hello", 5, 0), 5);
	ck_assert_int_eq(pread(b, got, 5, 0), 5);
	ck_assert_str_eq(got, "hello");
	ck_assert_int_eq(pwrite(b, "J", 1, 0), 1);
	ck_assert_int_eq(close(a), 0);
	ck_assert_int_eq(close(b), 0);
	stored_equals("shared", "Jello", 5);
}
END_TEST

#define BIG_SIZE (1ull << 30)
#define PIECE    (1 << 20)

START_TEST(test_1gib_streams_with_bounded_rss)
{
	char *buf = malloc(PIECE), *want = malloc(PIECE);
	uint64_t off = 0;
	long peak;
	int fd;

	put_pattern("big.bin", BIG_SIZE, 42);
	/* The read cache's budget is a hard bound; keep it small here. */
	mount_with(st.kind == STORE_S3 ? "cache_size=32" : NULL);
	fd = open(tm_path(m.mnt, "big.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	for (;;) {
		ssize_t n = read(fd, buf, PIECE);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		tm_pattern(want, off, (size_t)n, 42);
		ck_assert_msg(memcmp(buf, want, (size_t)n) == 0, "wrong bytes near offset %llu",
		              (unsigned long long)off);
		off += (uint64_t)n;
	}
	close(fd);
	ck_assert_uint_eq(off, BIG_SIZE);
	peak = tm_daemon_peak_rss_kb(&m);
	ck_assert_int_gt(peak, 0);
	ck_assert_msg(peak < 100 * 1024, "daemon peak RSS %ld KiB is over 100 MiB", peak);
	printf("note: 1 GiB read, daemon peak RSS %ld KiB\n", peak);
	free(buf);
	free(want);
}
END_TEST

struct reader_arg {
	const char *path;
	uint32_t seed;
	uint64_t size;
	int id;
	int errors;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	size_t len = 300000;
	char *buf = malloc(len), *want = malloc(len);
	int fd = open(a->path, O_RDONLY);
	uint64_t state = 0x1234567ull * (uint64_t)(a->id + 1);

	if (fd < 0 || buf == NULL || want == NULL) {
		a->errors++;
		goto out;
	}
	for (int i = 0; i < 40; i++) {
		uint64_t off;
		ssize_t n;

		state = state * 6364136223846793005ull + 1442695040888963407ull;
		off = (state >> 16) % (a->size - len);
		n = pread(fd, buf, len, (off_t)off);
		tm_pattern(want, off, len, a->seed);
		if (n != (ssize_t)len || memcmp(buf, want, len) != 0)
			a->errors++;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(want);
	return NULL;
}

START_TEST(test_parallel_readers)
{
	struct reader_arg args[8];
	pthread_t th[8];
	uint64_t size = 64 << 20;

	put_pattern("par.bin", size, 9);
	mount_rw();
	for (int i = 0; i < 8; i++) {
		args[i] = (struct reader_arg){tm_path(m.mnt, "par.bin"), 9, size, i, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(args[i].errors == 0, "reader %d saw %d wrong reads", i,
		              args[i].errors);
	}
}
END_TEST

/* mmap reads the same bytes as read(), and a shared writable mapping's
 * stores reach the store. */
START_TEST(test_mmap)
{
	size_t size = (3 << 20) + 4321;
	char *want = malloc(size), *map;
	int fd;

	put_pattern("mapped.bin", size, 21);
	mount_rw();
	fd = open(tm_path(m.mnt, "mapped.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert(map != MAP_FAILED);
	tm_pattern(want, 0, size, 21);
	ck_assert(memcmp(map, want, size) == 0);
	munmap(map, size);
	close(fd);

	fd = open(tm_path(m.mnt, "mapped.bin"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(map != MAP_FAILED);
	memcpy(map + 5000, "mapped write", 12);
	ck_assert_int_eq(msync(map, size, MS_SYNC), 0);
	munmap(map, size);
	ck_assert_int_eq(close(fd), 0);
	memcpy(want + 5000, "mapped write", 12);
	stored_equals("mapped.bin", want, size);
	free(want);
}
END_TEST

static long long server_counter(const char *name);

/* The statistics document counts what happened: the driver's reads, and on
 * S3 exactly the requests the server saw. */
START_TEST(test_stats)
{
	const char *bin = getenv("CHUNKFS_BIN") ? getenv("CHUNKFS_BIN") : "./chunkfs";
	size_t size = (3 << 20) + 17;
	char cmd[PATH_MAX * 2], *text;
	json_error_t jerr;
	json_t *root, *f, *s3;
	size_t len;

	put_pattern("counted.bin", size, 22);
	if (st.kind == STORE_S3)
		ck_assert_int_eq(tm_sh("curl -sf -X POST '%s/counters/reset' >/dev/null",
		                       getenv("CHUNKFS_TEST_S3_CONTROL")),
		                 0);
	mount_rw();
	ck_assert_int_eq(tm_sh("cat '%s/counted.bin' > /dev/null", m.mnt), 0);
	snprintf(cmd, sizeof(cmd), "%s stats '%s' > '%s/stats.json'", bin, m.mnt, m.root);
	ck_assert_int_eq(system(cmd), 0);
	text = tm_read_file(tm_path(m.root, "stats.json"), &len);
	ck_assert_ptr_nonnull(text);
	root = json_loads(text, 0, &jerr);
	ck_assert_msg(root != NULL, "not JSON: %s", text);
	f = json_object_get(root, "fuse");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(json_integer_value(json_object_get(f, "opens")), 1);
	ck_assert_int_ge(json_integer_value(json_object_get(f, "reads")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(f, "read_bytes")), (long long)size);
	if (st.kind == STORE_S3) {
		s3 = json_object_get(root, "s3");
		ck_assert_ptr_nonnull(s3);
		ck_assert_int_eq(json_integer_value(json_object_get(s3, "get")),
		                 server_counter("GET"));
		ck_assert_int_eq(json_integer_value(json_object_get(s3, "head")),
		                 server_counter("HEAD"));
		ck_assert_int_eq(json_integer_value(json_object_get(s3, "list")),
		                 server_counter("ListObjectsV2"));
		ck_assert_int_ge(json_integer_value(json_object_get(s3, "bytes_down")),
		                 (long long)size);
	}
	json_decref(root);
	free(text);
	/* Not a chunkfs mount: a clear error. */
	snprintf(cmd, sizeof(cmd), "%s stats '%s' 2>&1 | grep -q 'not a chunkfs mount'", bin,
	         m.root);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_namespace_ops)
{
	struct stat sb;
	size_t len;
	char *back;

	stock_tree();
	mount_rw();
	/* rename a file, within and across directories */
	ck_assert_int_eq(
	    rename(tm_path(m.mnt, "models/config.json"), tm_path(m.mnt, "models/bert/config.json")),
	    0);
	ck_assert(!store_has(&st, "models/config.json"));
	stored_equals("models/bert/config.json", "{\"a\": 1}\n", 9);
	ck_assert_int_eq(stat(tm_path(m.mnt, "models/bert/config.json"), &sb), 0);
	ck_assert_int_eq(sb.st_size, 9);
	/* rename over an existing file replaces it */
	ck_assert_int_eq(
	    rename(tm_path(m.mnt, "empty.txt"), tm_path(m.mnt, "models/bert/config.json")), 0);
	stored_equals("models/bert/config.json", "", 0);
	/* rename a directory; its files follow */
	ck_assert_int_eq(rename(tm_path(m.mnt, "models/bert"), tm_path(m.mnt, "bert2")), 0);
	files_equal(tm_path(m.mnt, "bert2/layer_0.pt"), tm_path(local, "models/bert/layer_0.pt"));
	ck_assert(store_has(&st, "bert2/layer_0.pt"));
	ck_assert(!store_has(&st, "models/bert/layer_0.pt"));
	ck_assert_int_eq(access(tm_path(m.mnt, "models/bert"), F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
	/* mkdir, rmdir */
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d1"), 0755), 0);
	ck_assert(store_has_dir(&st, "d1"));
	ck_assert_int_eq(stat(tm_path(m.mnt, "d1"), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d1"), 0755), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "d1")), 0);
	ck_assert(!store_has_dir(&st, "d1"));
	/* rm -r of a tree (implicit directories on S3) leaves nothing behind */
	ck_assert_int_eq(tm_sh("rm -r '%s/ünïcødé'", m.mnt), 0);
	ck_assert(!store_has_dir(&st, "ünïcødé"));
	ck_assert_int_eq(access(tm_path(m.mnt, "ünïcødé"), F_OK), -1);
	/* unlink */
	ck_assert_int_eq(unlink(tm_path(m.mnt, "bert2/layer_0.pt")), 0);
	ck_assert(!store_has(&st, "bert2/layer_0.pt"));
	ck_assert_int_eq(access(tm_path(m.mnt, "bert2/layer_0.pt"), F_OK), -1);
	/* a file created, renamed while open and closed lands under the new name */
	int fd = open(tm_path(m.mnt, "tmp.part"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	ck_assert_int_eq(rename(tm_path(m.mnt, "tmp.part"), tm_path(m.mnt, "final")), 0);
	ck_assert_int_eq(write(fd, "def", 3), 3);
	ck_assert_int_eq(close(fd), 0);
	back = store_get(&st, "final", &len);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(len, 6);
	ck_assert(memcmp(back, "abcdef", 6) == 0);
	free(back);
	ck_assert(!store_has(&st, "tmp.part"));
}
END_TEST

START_TEST(test_errors_like_local_fs)
{
	int fd;

	stock_tree();
	mount_rw();
	ck_assert_int_eq(open(tm_path(m.mnt, "missing"), O_RDONLY), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "models")), -1);
	ck_assert_int_eq(errno, ENOTEMPTY);
	ck_assert_int_eq(open(tm_path(m.mnt, "models"), O_WRONLY), -1);
	ck_assert_int_eq(errno, EISDIR);
	ck_assert_int_eq(open(tm_path(m.mnt, "empty.txt/x"), O_RDONLY), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "empty.txt/x"), 0755), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "empty.txt")), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	ck_assert_int_eq(unlink(tm_path(m.mnt, "models")), -1);
	ck_assert_int_eq(errno, EISDIR);
	ck_assert_int_eq(rename(tm_path(m.mnt, "models"), tm_path(m.mnt, "empty.txt")), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	ck_assert_int_eq(rename(tm_path(m.mnt, "empty.txt"), tm_path(m.mnt, "models")), -1);
	ck_assert_int_eq(errno, EISDIR);
	fd = open(tm_path(m.mnt, "models/config.json"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, EEXIST);
}
END_TEST

START_TEST(test_read_only_mount)
{
	stock_tree();
	mount_with("ro");
	files_equal(tm_path(local, "models/config.json"), tm_path(m.mnt, "models/config.json"));
	ck_assert_int_eq(open(tm_path(m.mnt, "new"), O_WRONLY | O_CREAT, 0644), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(open(tm_path(m.mnt, "models/config.json"), O_WRONLY), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d"), 0755), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(unlink(tm_path(m.mnt, "empty.txt")), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(rename(tm_path(m.mnt, "empty.txt"), tm_path(m.mnt, "e2")), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert(store_has(&st, "empty.txt"));
}
END_TEST

/* The one data file in the recovery directory must hold exactly want. */
static void staged_copy_equals(const void *want, size_t len)
{
	char cmd[PATH_MAX + 64], name[PATH_MAX] = "", dir[PATH_MAX];
	size_t got;
	char *back;
	FILE *p;

	snprintf(dir, sizeof(dir), "%s/recovery", m.staging);
	ck_assert_int_eq(tm_sh("[ $(ls '%s' | grep -vc '\\.note$') = 1 ]", dir), 0);
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -v '\\.note$'", dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(name, sizeof(name), p));
	pclose(p);
	name[strcspn(name, "\n")] = '\0';
	back = tm_read_file(tm_path(dir, name), &got);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(got, len);
	ck_assert(memcmp(back, want, len) == 0);
	free(back);
}

/* A save that fails (the backing disk is full) is returned by fsync() and
 * close(), and the data is kept in the recovery directory. */
START_TEST(test_failed_save_reported_and_kept)
{
	size_t len = 3 << 20;
	char *buf = malloc(len);
	int fd;

	if (mount("tmpfs", m.src, "tmpfs", 0, "size=1m") != 0) {
		printf("SKIP failed_save: cannot mount a small tmpfs (%s); needs root\n",
		       strerror(errno));
		return;
	}
	mount_rw();
	tm_pattern(buf, 0, len, 5);
	fd = open(tm_path(m.mnt, "toolarge.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(fsync(fd), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(close(fd), -1);
	ck_assert_int_eq(errno, ENOSPC);
	/* No partial object in the store... */
	ck_assert_int_eq(access(tm_path(m.src, "toolarge.bin"), F_OK), -1);
	tm_unmount(&m);
	umount2(m.src, MNT_DETACH);
	/* ...and the bytes are in the recovery directory, whole. */
	staged_copy_equals(buf, len);
	free(buf);
}
END_TEST

static int run_chunkfs(const char *args, char *out, size_t out_len)
{
	const char *bin = getenv("CHUNKFS_BIN");
	char cmd[8192], rest[4096];
	FILE *p;
	size_t n;
	int status;

	snprintf(cmd, sizeof(cmd), "timeout 20 %s %s 2>&1", bin ? bin : "./chunkfs", args);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	n = fread(out, 1, out_len - 1, p);
	out[n] = '\0';
	/* Read the rest too: a long --help must not die of SIGPIPE. */
	while (fread(rest, 1, sizeof(rest), p) > 0)
		;
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_cli_errors)
{
	char out[4096], args[4 * PATH_MAX];

	ck_assert_int_eq(run_chunkfs("--help", out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage:"));
	ck_assert_int_eq(run_chunkfs("--version", out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "chunkfs "));

	snprintf(args, sizeof(args), "%s/nope %s", m.root, m.mnt);
	ck_assert_int_ne(run_chunkfs(args, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "source directory") && strstr(out, "No such file"),
	              "unclear message: %s", out);

	snprintf(args, sizeof(args), "%s %s/nope", m.src, m.root);
	ck_assert_int_ne(run_chunkfs(args, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "does not exist"), "unclear message: %s", out);

	mount_rw();
	snprintf(args, sizeof(args), "%s %s", m.src, m.mnt);
	ck_assert_int_ne(run_chunkfs(args, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "already mounted"), "unclear message: %s", out);

	ck_assert_int_ne(run_chunkfs("s3x://bucket /tmp", out, sizeof(out)), 0);
	ck_assert_int_ne(run_chunkfs("", out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "SOURCE and MOUNTPOINT"), "unclear message: %s", out);
}
END_TEST

/* A daemonized mount (no -f) comes up, serves, and goes away on unmount. */
START_TEST(test_daemon_mode)
{
	char out[4096], args[4 * PATH_MAX];

	stock_tree();
	snprintf(args, sizeof(args), "%s %s -o staging_dir=%s", m.src, m.mnt, m.staging);
	ck_assert_int_eq(run_chunkfs(args, out, sizeof(out)), 0);
	files_equal(tm_path(local, "models/config.json"), tm_path(m.mnt, "models/config.json"));
	ck_assert_int_eq(tm_sh("fusermount3 -u '%s'", m.mnt), 0);
	ck_assert_int_eq(access(tm_path(m.mnt, "models"), F_OK), -1);
}
END_TEST

/* --- S3-only cases ------------------------------------------------------ */

/* The store's key prefix on the server ("mt-.../"), for faults and
 * phantom keys. */
static const char *s3_prefix(void)
{
	return store_s3_prefix(&st);
}

/* A request to the test server's control port; 0 on success. */
static int control(const char *method, const char *path, const char *json)
{
	return store_control(method, path, json);
}

/* A top-level number from the server's counters (0 when absent). */
static long long counter(const char *name)
{
	return store_counter(name, NULL);
}

static double seconds_since(struct timespec t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static long long server_counter(const char *name)
{
	return counter(name);
}

/* Mounting fails fast, with one sentence that names the cause. */
START_TEST(test_s3_mount_errors)
{
	const char *ep = getenv("CHUNKFS_TEST_S3_ENDPOINT");
	struct {
		const char *env, *source, *endpoint, *expect;
	} cases[] = {
	    {"AWS_SECRET_ACCESS_KEY=n0tTh3S3cr3t", st.source, ep, "SignatureDoesNotMatch"},
	    {"AWS_ACCESS_KEY_ID=NOSUCHKEY", st.source, ep, "is not known"},
	    {"X=1", "s3://no-such-bucket-here", ep, "does not exist"},
	    {"X=1", st.source, "http://127.0.0.1:1", "cannot connect"},
	    {"X=1", st.source, "http://no-such-host.invalid", "cannot resolve"},
	};
	char args[8192], out[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct timespec t0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		snprintf(args, sizeof(args), "%s %s -o endpoint=%s", cases[i].source, m.mnt,
		         cases[i].endpoint);
		{
			char cmd[8400];
			FILE *p;
			size_t n;
			int status;

			snprintf(cmd, sizeof(cmd), "env %s timeout 20 %s %s 2>&1", cases[i].env,
			         getenv("CHUNKFS_BIN") ? getenv("CHUNKFS_BIN") : "./chunkfs", args);
			p = popen(cmd, "r");
			ck_assert_ptr_nonnull(p);
			n = fread(out, 1, sizeof(out) - 1, p);
			out[n] = '\0';
			status = pclose(p);
			ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
			                  WEXITSTATUS(status) != 124,
			              "case %zu: chunkfs did not fail cleanly: %s", i, out);
		}
		ck_assert_msg(strstr(out, cases[i].expect) != NULL, "case %zu: unclear message: %s",
		              i, out);
		ck_assert_msg(strstr(out, "n0tTh3S3cr3t") == NULL,
		              "the secret is in the output: %s", out);
		ck_assert_msg(seconds_since(t0) < 10, "case %zu took %.1f s", i, seconds_since(t0));
		ck_assert_msg(strchr(out, '\n') == strrchr(out, '\n'),
		              "case %zu: more than one line: %s", i, out);
	}
}
END_TEST

static int have_aws_cli(void)
{
	if (access("/usr/bin/aws", X_OK) == 0)
		return 1;
	printf("SKIP s3 interop: /usr/bin/aws (Debian package awscli) is not installed\n");
	return 0;
}

/* Objects written by the aws CLI read back through the mount, and files
 * written through the mount download intact with the aws CLI. */
START_TEST(test_s3_interop_aws_cli)
{
	const char *ep = getenv("CHUNKFS_TEST_S3_ENDPOINT");
	const char *url = st.source;
	uint64_t sizes[] = {3 << 20, (20 << 20) + 7};

	if (!have_aws_cli())
		return;
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(tm_write_pattern(tm_path(local, i ? "big.bin" : "small.bin"),
		                                  sizes[i], 30 + (uint32_t)i),
		                 0);
	ck_assert_int_eq(
	    tm_sh("cd '%s' && /usr/bin/aws --endpoint-url %s s3 cp --quiet small.bin "
	          "'%s/from aws/small +=&.bin' && /usr/bin/aws --endpoint-url %s s3 cp "
	          "--quiet big.bin '%s/from aws/big.bin'",
	          local, ep, url, ep, url),
	    0);
	mount_rw();
	files_equal(tm_path(local, "small.bin"), tm_path(m.mnt, "from aws/small +=&.bin"));
	files_equal(tm_path(local, "big.bin"), tm_path(m.mnt, "from aws/big.bin"));
	ck_assert_int_eq(tm_sh("cp '%s/big.bin' '%s/to aws é.bin'", local, m.mnt), 0);
	ck_assert_int_eq(tm_sh("/usr/bin/aws --endpoint-url %s s3 cp --quiet '%s/to aws é.bin' "
	                       "'%s/back.bin' && cmp -s '%s/back.bin' '%s/big.bin'",
	                       ep, url, m.root, m.root, local),
	                 0);
}
END_TEST

/* With 10% of GETs failing (500, 503, resets mid-body), every read still
 * returns the right bytes. */
START_TEST(test_s3_faults_reads_right_bytes)
{
	uint64_t size = 64 << 20;
	size_t len = 65536;
	char *buf = malloc(len), *want = malloc(len), json[512];
	uint64_t state = 12345;
	int fd;

	put_pattern("faulty.bin", size, 11);
	/* No cache, prefetch or page-cache fill: every read goes to the server. */
	mount_with("no_cache,fill_max=0");
	snprintf(json, sizeof(json),
	         "{\"rate\":0.1,\"kinds\":\"500,503,reset\",\"methods\":\"GetObject\","
	         "\"prefix\":\"%s\",\"seed\":7}",
	         s3_prefix());
	ck_assert_int_eq(control("POST", "/faults", json), 0);
	fd = open(tm_path(m.mnt, "faulty.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 200; i++) {
		uint64_t off;

		state = state * 6364136223846793005ull + 1442695040888963407ull;
		off = (state >> 16) % (size - len);
		/* Drop the page cache so every read goes to the server. */
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
		tm_pattern(want, off, len, 11);
		ck_assert_msg(memcmp(buf, want, len) == 0, "read %d at %llu: wrong bytes", i,
		              (unsigned long long)off);
	}
	close(fd);
	{
		char cmd[1024], out[PATH_MAX + 16];
		json_error_t jerr;
		json_t *root;
		long long injected;

		snprintf(out, sizeof(out), "%s/faults.json", m.root);
		snprintf(cmd, sizeof(cmd), "curl -sf '%s/faults' > '%s'",
		         getenv("CHUNKFS_TEST_S3_CONTROL"), out);
		ck_assert_int_eq(system(cmd), 0);
		root = json_load_file(out, 0, &jerr);
		ck_assert_ptr_nonnull(root);
		injected = json_integer_value(json_object_get(root, "injected"));
		json_decref(root);
		ck_assert_msg(injected >= 5, "only %lld faults were injected", injected);
	}
	/* The default stack (prefetch, cache, lent blocks) under three times
	 * the faults: a sequential read of the whole file is byte-exact. */
	ck_assert_int_eq(tm_unmount(&m), 0);
	mount_rw();
	snprintf(json, sizeof(json),
	         "{\"rate\":0.3,\"kinds\":\"500,503,reset\",\"methods\":\"GetObject\","
	         "\"prefix\":\"%s\",\"seed\":8}",
	         s3_prefix());
	ck_assert_int_eq(control("POST", "/faults", json), 0);
	fd = open(tm_path(m.mnt, "faulty.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	for (uint64_t off = 0; off < size; off += len) {
		ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
		tm_pattern(want, off, len, 11);
		ck_assert_msg(memcmp(buf, want, len) == 0, "sequential read at %llu: wrong bytes",
		              (unsigned long long)off);
	}
	close(fd);
	control("DELETE", "/faults", NULL);
	free(buf);
	free(want);
}
END_TEST

/* When every attempt fails, read() gives EIO promptly instead of hanging. */
START_TEST(test_s3_retries_exhausted_eio)
{
	char buf[4096], json[512];
	struct timespec t0;
	int fd;

	put_pattern("down.bin", 1 << 20, 12);
	mount_with("retries=3,whole_max=0"); /* no fetch at open: the read asks */
	fd = open(tm_path(m.mnt, "down.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	snprintf(json, sizeof(json),
	         "{\"rate\":1,\"kinds\":\"503\",\"methods\":\"GetObject\",\"prefix\":\"%s\"}",
	         s3_prefix());
	ck_assert_int_eq(control("POST", "/faults", json), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EIO);
	ck_assert_msg(seconds_since(t0) < 15, "EIO took %.1f s", seconds_since(t0));
	control("DELETE", "/faults", NULL);
	/* The server is back: a new read succeeds with the right bytes. */
	{
		char want[4096];
		tm_pattern(want, 0, sizeof(want), 12);
		ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
		ck_assert(memcmp(buf, want, sizeof(buf)) == 0);
	}
	close(fd);
}
END_TEST

/* An upload that keeps failing makes close() fail, and nothing is lost. */
START_TEST(test_s3_failed_upload_reported_and_kept)
{
	size_t len = 1 << 20;
	char *buf = malloc(len), json[512];
	int fd;

	mount_with("retries=2");
	snprintf(json, sizeof(json),
	         "{\"rate\":1,\"kinds\":\"503\",\"methods\":\"PutObject,UploadPart,"
	         "CreateMultipartUpload\",\"prefix\":\"%s\"}",
	         s3_prefix());
	ck_assert_int_eq(control("POST", "/faults", json), 0);
	tm_pattern(buf, 0, len, 13);
	fd = open(tm_path(m.mnt, "lost?.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), -1);
	ck_assert_int_eq(errno, EIO);
	/* The release after close() tries once more; keep the server failing
	 * until the daemon is gone. */
	tm_unmount(&m);
	control("DELETE", "/faults", NULL);
	ck_assert(!store_has(&st, "lost?.bin"));
	staged_copy_equals(buf, len);
	free(buf);
}
END_TEST

/* ls -l of a large directory: one ListObjectsV2 per 1,000 entries, no HEAD
 * per entry. */
START_TEST(test_s3_listing_cost)
{
	enum { N = 2500 };
	long long lists, heads;
	char key[64], cmd[PATH_MAX + 64];
	FILE *p;
	int lines = 0;

	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "many/file-%05d.bin", i);
		ck_assert_int_eq(store_put(&st, key, "x", 1), 0);
	}
	mount_with("attr_timeout=60,entry_timeout=60");
	ck_assert_int_eq(control("POST", "/counters/reset", NULL), 0);
	snprintf(cmd, sizeof(cmd), "ls -l '%s/many'", m.mnt);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(cmd, sizeof(cmd), p) != NULL)
		lines += strncmp(cmd, "-rw", 3) == 0;
	ck_assert_int_eq(pclose(p), 0);
	ck_assert_int_eq(lines, N);
	lists = counter("ListObjectsV2");
	heads = counter("HEAD");
	/* The lookup of "many" costs one listing; the directory itself
	 * ceil(N / 1000) listings; no HEAD at all. */
	ck_assert_msg(lists <= (N + 999) / 1000 + 1, "%lld listings for %d entries", lists, N);
	ck_assert_msg(heads == 0, "%lld HEAD requests for ls -l", heads);
}
END_TEST

/* Marker objects and implicit directories both show; a name that is both
 * an object and a prefix shows as the directory; keys that cannot be file
 * names are skipped. */
START_TEST(test_s3_directories_and_odd_keys)
{
	char json[2048], longseg[301];
	struct stat sb;
	DIR *d;
	struct dirent *e;
	int seen_both = 0, n_long = 0;

	ck_assert_int_eq(store_put(&st, "impl/deep/er/file", "f", 1), 0);
	ck_assert_int_eq(store_put(&st, "marker/", "", 0), 0);
	ck_assert_int_eq(store_put(&st, "both", "object", 6), 0);
	ck_assert_int_eq(store_put(&st, "both/child", "c", 1), 0);
	ck_assert_int_eq(store_put(&st, "long/ok", "k", 1), 0);
	/* Keys no file name can hold; the server cannot store them on its
	 * disk, so it shows them in listings only ("phantom" keys). */
	memset(longseg, 'a', 300);
	longseg[300] = '\0';
	snprintf(json, sizeof(json),
	         "{\"bucket\":\"%s\",\"keys\":[\"%slong/%s\",\"%slong//x\",\"%slong/./y\","
	         "\"%slong/../z\"]}",
	         getenv("CHUNKFS_TEST_S3_BUCKET"), s3_prefix(), longseg, s3_prefix(), s3_prefix(),
	         s3_prefix());
	ck_assert_int_eq(control("POST", "/phantom", json), 0);
	mount_rw();
	ck_assert_int_eq(stat(tm_path(m.mnt, "impl/deep/er"), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(stat(tm_path(m.mnt, "impl/deep/er/file"), &sb), 0);
	ck_assert_int_eq(sb.st_size, 1);
	ck_assert_int_eq(stat(tm_path(m.mnt, "marker"), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	d = opendir(m.mnt);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, "both") == 0) {
			seen_both++;
			ck_assert_int_eq(e->d_type, DT_DIR);
		}
	}
	closedir(d);
	ck_assert_int_eq(seen_both, 1);
	/* A fresh lookup agrees with readdir. */
	sleep(2); /* past the entry timeout: the kernel looks the name up again */
	ck_assert_int_eq(stat(tm_path(m.mnt, "both"), &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	files_equal_str(tm_path(m.mnt, "both/child"), "c");
	d = opendir(tm_path(m.mnt, "long"));
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		n_long += e->d_name[0] != '.';
		ck_assert_msg(e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 ||
		                  strcmp(e->d_name, "..") == 0,
		              "odd name listed: %s", e->d_name);
	}
	closedir(d);
	control("DELETE", "/phantom", NULL);
	ck_assert_int_eq(n_long, 1); /* only "ok" */
	/* One warning per listing, not one per name. */
	ck_assert_int_eq(
	    tm_sh("grep -q 'names skipped that cannot be file names' '%s/daemon.log'", m.root), 0);
	/* The daemon is still serving. */
	files_equal_str(tm_path(m.mnt, "long/ok"), "k");
}
END_TEST

/* Unmodified readers: numpy.load(mmap_mode='r') and torch.load through the
 * mount read what was stored. */
START_TEST(test_s3_numpy_and_torch)
{
	static const char *pts[] = {"embeddings.pt", "layer_0.pt", "layer_1.pt", "pooler.pt"};
	char path[PATH_MAX];
	int has_torch;

	if (tm_sh("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
		printf("SKIP s3 numpy/torch: /usr/bin/python3 has no numpy (python3-numpy)\n");
		return;
	}
	has_torch = tm_sh("/usr/bin/python3 -c 'import torch' 2>/dev/null") == 0;
	ck_assert_int_eq(
	    tm_sh("/usr/bin/python3 -c \"import numpy as np; "
	          "np.save('%s/w.npy', np.arange(3000000, dtype=np.float32).reshape(1000, "
	          "3000))\"",
	          local),
	    0);
	ck_assert_int_eq(store_put_file(&st, "np/w.npy", tm_path(local, "w.npy")), 0);
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
		snprintf(path, sizeof(path), "examples/bert-tiny/%s", pts[i]);
		ck_assert_int_eq(store_put_file(&st, tm_path("pt", pts[i]), path), 0);
	}
	mount_rw();
	ck_assert_int_eq(
	    tm_sh("/usr/bin/python3 -c \"import numpy as np; "
	          "a = np.load('%s/np/w.npy', mmap_mode='r'); "
	          "b = np.load('%s/w.npy'); "
	          "assert isinstance(a, np.memmap) and (a == b).all() and a[999, 2999] == "
	          "2999999\"",
	          m.mnt, local),
	    0);
	if (!has_torch) {
		printf("SKIP s3 torch.load: /usr/bin/python3 has no torch (python3-torch)\n");
		return;
	}
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++)
		ck_assert_msg(
		    tm_sh("/usr/bin/python3 -c \"import torch; "
		          "a = torch.load('%s/pt/%s'); "
		          "b = torch.load('examples/bert-tiny/%s'); "
		          "assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k "
		          "in a)\"",
		          m.mnt, pts[i], pts[i]) == 0,
		    "torch.load of %s through the mount differs", pts[i]);
}
END_TEST

/* https: the certificate is verified; -o ca_bundle and AWS_CA_BUNDLE
 * choose what to trust. */
START_TEST(test_s3_tls_verified)
{
	char url[64], opts[PATH_MAX + 128], args[3 * PATH_MAX], out[4096];
	const char *bin = getenv("CHUNKFS_BIN") ? getenv("CHUNKFS_BIN") : "./chunkfs";
	size_t len;
	char *ready;
	int port = 0;

	ck_assert_int_eq(store_put(&st, "tls.txt", "over tls", 8), 0);
	ck_assert_int_eq(
	    tm_sh("cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem "
	          "-out cert.pem -days 1 -subj /CN=127.0.0.1 "
	          "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
	          m.root),
	    0);
	/* The proxy ends by itself if this test dies before stopping it. */
	ck_assert_int_eq(
	    tm_sh("cd '%s' && (timeout 120 node tests/s3/tls-proxy.js --cert '%s/cert.pem' "
	          "--key '%s/key.pem' --target %s --ready-file '%s/tls.json' "
	          ">/dev/null 2>&1 & echo $! > '%s/tls.pid')",
	          getenv("PWD") ? getenv("PWD") : ".", m.root, m.root,
	          getenv("CHUNKFS_TEST_S3_ENDPOINT"), m.root, m.root),
	    0);
	for (int i = 0; i < 100 && access(tm_path(m.root, "tls.json"), F_OK) != 0; i++)
		usleep(100000);
	ready = tm_read_file(tm_path(m.root, "tls.json"), &len);
	ck_assert_ptr_nonnull(ready);
	ck_assert_int_eq(sscanf(ready, "{\"port\":%d}", &port), 1);
	free(ready);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);

	/* Not trusted: a clear TLS failure. */
	snprintf(args, sizeof(args), "env AWS_CA_BUNDLE= timeout 20 %s %s %s -o endpoint=%s 2>&1",
	         bin, st.source, m.mnt, url);
	{
		FILE *p = popen(args, "r");
		size_t n = fread(out, 1, sizeof(out) - 1, p);
		out[n] = '\0';
		ck_assert_int_ne(pclose(p), 0);
	}
	ck_assert_msg(strstr(out, "TLS failure") != NULL, "unclear message: %s", out);
	/* Trusted through -o ca_bundle. */
	snprintf(opts, sizeof(opts), "endpoint=%s,ca_bundle=%s/cert.pem", url, m.root);
	ck_assert_int_eq(tm_mount(&m, st.source, opts), 0);
	files_equal_str(tm_path(m.mnt, "tls.txt"), "over tls");
	tm_unmount(&m);
	/* Trusted through AWS_CA_BUNDLE, endpoint from AWS_ENDPOINT_URL_S3. */
	snprintf(args, sizeof(args), "AWS_CA_BUNDLE='%s/cert.pem' AWS_ENDPOINT_URL_S3=%s %s %s %s",
	         m.root, url, bin, st.source, m.mnt);
	ck_assert_int_eq(tm_sh("%s", args), 0);
	files_equal_str(tm_path(m.mnt, "tls.txt"), "over tls");
	ck_assert_int_eq(tm_sh("fusermount3 -u '%s'", m.mnt), 0);
	tm_sh("kill $(cat '%s/tls.pid') 2>/dev/null", m.root);
}
END_TEST

/* The server closes idle kept-alive connections after 5 s; the next read
 * still succeeds (a request that fails on such a connection is retried). */
START_TEST(test_s3_idle_connections_closed)
{
	char buf[65536], want[65536];
	int fd;

	put_pattern("idle.bin", 4 << 20, 14);
	mount_rw();
	fd = open(tm_path(m.mnt, "idle.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	sleep(6);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	for (int i = 0; i < 8; i++) {
		off_t off = (off_t)i * (512 << 10);
		ck_assert_int_eq(pread(fd, buf, sizeof(buf), off), (ssize_t)sizeof(buf));
		tm_pattern(want, (uint64_t)off, sizeof(want), 14);
		ck_assert(memcmp(buf, want, sizeof(buf)) == 0);
	}
	close(fd);
}
END_TEST

/* -o cache_dir: blocks read once are served from disk after a remount,
 * with no GET. */
START_TEST(test_s3_disk_cache_survives_remount)
{
	size_t size = (5 << 20) + 99;
	char opts[PATH_MAX + 64], *want = malloc(size);

	put_pattern("cached.bin", size, 23);
	tm_pattern(want, 0, size, 23);
	snprintf(opts, sizeof(opts), "cache_dir=%s/dcache", m.root);
	mount_with(opts);
	files_equal_mem(tm_path(m.mnt, "cached.bin"), want, size);
	tm_unmount(&m);
	ck_assert_int_eq(tm_sh("[ $(stat -c %%a '%s/dcache') = 700 ]", m.root), 0);
	ck_assert_int_eq(control("POST", "/counters/reset", NULL), 0);
	mount_with(opts);
	files_equal_mem(tm_path(m.mnt, "cached.bin"), want, size);
	ck_assert_int_eq(counter("GET"), 0);
	free(want);
}
END_TEST

/* A bucket in another region than the one configured: the region the
 * server names is used (as the AWS SDKs do), and the mount works. */
START_TEST(test_s3_region_corrected)
{
	const char *bin = getenv("CHUNKFS_BIN") ? getenv("CHUNKFS_BIN") : "./chunkfs";
	char state[PATH_MAX], *text, *ep;
	size_t len;

	snprintf(state, sizeof(state), "%s/regional.state", m.root);
	ck_assert_int_eq(tm_sh("S3_STATE_FILE='%s' tests/s3/start.sh --bucket regional --region "
	                       "eu-west-2 --quiet >/dev/null",
	                       state),
	                 0);
	text = tm_read_file(state, &len);
	ck_assert_ptr_nonnull(text);
	ep = strstr(text, "S3_ENDPOINT=");
	ck_assert_ptr_nonnull(ep);
	ep += strlen("S3_ENDPOINT=");
	ep[strcspn(ep, "\n")] = '\0';
	ck_assert_int_eq(tm_sh("env AWS_REGION=us-west-1 %s s3://regional '%s' -o endpoint=%s "
	                       "-o log_level=info 2>'%s/regional.log'",
	                       bin, m.mnt, ep, m.root),
	                 0);
	ck_assert_int_eq(tm_sh("echo over > '%s/f' && [ \"$(cat '%s/f')\" = over ]", m.mnt, m.mnt),
	                 0);
	ck_assert_int_eq(tm_sh("fusermount3 -u '%s'", m.mnt), 0);
	tm_sh("tests/s3/stop.sh '%s' >/dev/null 2>&1", state);
	free(text);
}
END_TEST

static void add_s3_tests(TCase *tc)
{
	tcase_add_test(tc, test_s3_mount_errors);
	tcase_add_test(tc, test_s3_interop_aws_cli);
	tcase_add_test(tc, test_s3_faults_reads_right_bytes);
	tcase_add_test(tc, test_s3_retries_exhausted_eio);
	tcase_add_test(tc, test_s3_failed_upload_reported_and_kept);
	tcase_add_test(tc, test_s3_listing_cost);
	tcase_add_test(tc, test_s3_directories_and_odd_keys);
	tcase_add_test(tc, test_s3_numpy_and_torch);
	tcase_add_test(tc, test_s3_tls_verified);
	tcase_add_test(tc, test_s3_idle_connections_closed);
	tcase_add_test(tc, test_s3_disk_cache_survives_remount);
	tcase_add_test(tc, test_s3_region_corrected);
}

static Suite *mount_suite(enum store_kind kind)
{
	Suite *s = suite_create(kind == STORE_FS ? "mount_fs" : "mount_s3");
	TCase *tc = tcase_create(kind == STORE_FS ? "fs" : "s3");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_tree_reads_back_identical);
	tcase_add_test(tc, test_listing_matches_source);
	tcase_add_test(tc, test_write_reaches_backend);
	tcase_add_test(tc, test_two_handles_share_writes);
	tcase_add_test(tc, test_1gib_streams_with_bounded_rss);
	tcase_add_test(tc, test_parallel_readers);
	tcase_add_test(tc, test_mmap);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_namespace_ops);
	tcase_add_test(tc, test_errors_like_local_fs);
	tcase_add_test(tc, test_read_only_mount);
	if (kind == STORE_FS) {
		tcase_add_test(tc, test_failed_save_reported_and_kept);
		tcase_add_test(tc, test_cli_errors);
		tcase_add_test(tc, test_daemon_mode);
	} else {
		add_s3_tests(tc);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return store_run_suites(mount_suite, &g_kind, "mount");
}
