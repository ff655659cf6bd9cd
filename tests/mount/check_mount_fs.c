/*
 * check_mount_fs.c - chunkfs mounted for real over the filesystem backend.
 *
 * Every test mounts a fresh scratch source directory, works through the
 * mountpoint with ordinary system calls and tools, and compares with what
 * the backend (the source directory) holds.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount.h"

static struct test_mount m;

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
}

static void teardown(void)
{
	tm_stop(&m);
}

static void mount_rw(void)
{
	ck_assert_msg(tm_mount(&m, NULL, NULL) == 0, "mount failed; see %s/daemon.log", m.root);
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

START_TEST(test_tree_reads_back_identical)
{
	make_tree(m.src);
	mount_rw();
	/* sha256sum over the source, checked through the mount. */
	ck_assert_int_eq(tm_sh("cd '%s' && find . -type f -print0 | xargs -0 sha256sum > '%s/sums'",
	                       m.src, m.root),
	                 0);
	ck_assert_int_eq(tm_sh("cd '%s' && sha256sum --quiet -c '%s/sums'", m.mnt, m.root), 0);
	/* cp -r out of the mount equals the source, empty directory included. */
	ck_assert_int_eq(
	    tm_sh("cp -r '%s' '%s/copy' && diff -r '%s' '%s/copy'", m.mnt, m.root, m.src, m.root),
	    0);
	files_equal(tm_path(m.src, "ünïcødé/日本/データ.bin"),
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
	char *a, *b;
	struct stat sa, sb;

	make_tree(m.src);
	mount_rw();
	a = sorted_listing(m.src);
	b = sorted_listing(m.mnt);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	ck_assert_int_eq(stat(tm_path(m.mnt, "models/bert/layer_0.pt"), &sa), 0);
	ck_assert_int_eq(stat(tm_path(m.src, "models/bert/layer_0.pt"), &sb), 0);
	ck_assert(S_ISREG(sa.st_mode));
	ck_assert_int_eq(sa.st_size, sb.st_size);
	ck_assert_int_eq(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	ck_assert_int_eq(stat(tm_path(m.mnt, "empty-dir"), &sa), 0);
	ck_assert(S_ISDIR(sa.st_mode));
}
END_TEST

START_TEST(test_write_reaches_backend)
{
	size_t len = (5 << 20) + 123;
	char *buf = malloc(len);
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
	files_equal(tm_path(m.mnt, "new/dir/out.bin"), tm_path(m.src, "new/dir/out.bin"));
	{
		size_t got;
		char *back = tm_read_file(tm_path(m.src, "new/dir/out.bin"), &got);
		ck_assert_uint_eq(got, len);
		ck_assert(memcmp(back, buf, len) == 0);
		free(back);
	}
	/* Overwrite in the middle of an existing file, then append. */
	fd = open(tm_path(m.mnt, "new/dir/out.bin"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "XYZ", 3, 1000000), 3);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(close(fd), 0);
	memcpy(buf + 1000000, "XYZ", 3);
	fd = open(tm_path(m.mnt, "new/dir/out.bin"), O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "tail", 4), 4);
	ck_assert_int_eq(close(fd), 0);
	{
		size_t got;
		char *back = tm_read_file(tm_path(m.src, "new/dir/out.bin"), &got);
		ck_assert_uint_eq(got, len + 4);
		ck_assert(memcmp(back, buf, len) == 0);
		ck_assert(memcmp(back + len, "tail", 4) == 0);
		free(back);
	}
	/* Truncate through the mount, shrink and grow. */
	ck_assert_int_eq(truncate(tm_path(m.mnt, "new/dir/out.bin"), 10), 0);
	ck_assert_int_eq(truncate(tm_path(m.mnt, "new/dir/out.bin"), 20), 0);
	{
		size_t got;
		char *back = tm_read_file(tm_path(m.src, "new/dir/out.bin"), &got);
		static const char zeros[10];
		ck_assert_uint_eq(got, 20);
		ck_assert(memcmp(back, buf, 10) == 0);
		ck_assert(memcmp(back + 10, zeros, 10) == 0);
		free(back);
	}
	/* An empty new file exists after close. */
	fd = open(tm_path(m.mnt, "empty"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(access(tm_path(m.src, "empty"), F_OK), 0);
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
	{
		size_t len;
		char *back = tm_read_file(tm_path(m.src, "shared"), &len);
		ck_assert_uint_eq(len, 5);
		ck_assert(memcmp(back, "Jello", 5) == 0);
		free(back);
	}
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

	ck_assert_int_eq(tm_write_pattern(tm_path(m.src, "big.bin"), BIG_SIZE, 42), 0);
	mount_rw();
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

	ck_assert_int_eq(tm_write_pattern(tm_path(m.src, "par.bin"), size, 9), 0);
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

START_TEST(test_namespace_ops)
{
	struct stat st;

	make_tree(m.src);
	mount_rw();
	/* rename a file, within and across directories */
	ck_assert_int_eq(
	    rename(tm_path(m.mnt, "models/config.json"), tm_path(m.mnt, "models/bert/config.json")),
	    0);
	ck_assert_int_eq(access(tm_path(m.src, "models/config.json"), F_OK), -1);
	ck_assert_int_eq(access(tm_path(m.src, "models/bert/config.json"), F_OK), 0);
	ck_assert_int_eq(stat(tm_path(m.mnt, "models/bert/config.json"), &st), 0);
	ck_assert_int_eq(st.st_size, 9);
	/* rename over an existing file replaces it */
	ck_assert_int_eq(
	    rename(tm_path(m.mnt, "empty.txt"), tm_path(m.mnt, "models/bert/config.json")), 0);
	ck_assert_int_eq(stat(tm_path(m.src, "models/bert/config.json"), &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	/* rename a directory; its files follow */
	ck_assert_int_eq(rename(tm_path(m.mnt, "models/bert"), tm_path(m.mnt, "bert2")), 0);
	files_equal(tm_path(m.mnt, "bert2/layer_0.pt"), tm_path(m.src, "bert2/layer_0.pt"));
	ck_assert_int_eq(access(tm_path(m.mnt, "models/bert"), F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
	/* mkdir, rmdir */
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d1"), 0755), 0);
	ck_assert_int_eq(stat(tm_path(m.src, "d1"), &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d1"), 0755), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "d1")), 0);
	ck_assert_int_eq(access(tm_path(m.src, "d1"), F_OK), -1);
	/* unlink */
	ck_assert_int_eq(unlink(tm_path(m.mnt, "bert2/layer_0.pt")), 0);
	ck_assert_int_eq(access(tm_path(m.src, "bert2/layer_0.pt"), F_OK), -1);
	ck_assert_int_eq(access(tm_path(m.mnt, "bert2/layer_0.pt"), F_OK), -1);
	/* a file created, renamed while open and closed lands under the new name */
	{
		int fd = open(tm_path(m.mnt, "tmp.part"), O_WRONLY | O_CREAT, 0644);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "abc", 3), 3);
		ck_assert_int_eq(rename(tm_path(m.mnt, "tmp.part"), tm_path(m.mnt, "final")), 0);
		ck_assert_int_eq(write(fd, "def", 3), 3);
		ck_assert_int_eq(close(fd), 0);
		size_t len;
		char *back = tm_read_file(tm_path(m.src, "final"), &len);
		ck_assert_ptr_nonnull(back);
		ck_assert_uint_eq(len, 6);
		ck_assert(memcmp(back, "abcdef", 6) == 0);
		free(back);
		ck_assert_int_eq(access(tm_path(m.src, "tmp.part"), F_OK), -1);
	}
}
END_TEST

START_TEST(test_errors_like_local_fs)
{
	int fd;

	make_tree(m.src);
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
	make_tree(m.src);
	ck_assert_int_eq(tm_mount(&m, NULL, "ro"), 0);
	files_equal(tm_path(m.src, "models/config.json"), tm_path(m.mnt, "models/config.json"));
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
	ck_assert_int_eq(access(tm_path(m.src, "empty.txt"), F_OK), 0);
}
END_TEST

/* A save that fails (the backing disk is full) is returned by fsync() and
 * close(), and the data stays in the staging directory. */
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
	/* ...and the bytes are in the staging directory, whole. */
	ck_assert_int_eq(tm_sh("[ $(ls '%s' | wc -l) = 1 ]", m.staging), 0);
	{
		char cmd[PATH_MAX + 64];
		FILE *p;
		char name[PATH_MAX] = "";
		size_t got;
		char *back;

		snprintf(cmd, sizeof(cmd), "ls '%s'", m.staging);
		p = popen(cmd, "r");
		ck_assert_ptr_nonnull(p);
		ck_assert_ptr_nonnull(fgets(name, sizeof(name), p));
		pclose(p);
		name[strcspn(name, "\n")] = '\0';
		back = tm_read_file(tm_path(m.staging, name), &got);
		ck_assert_ptr_nonnull(back);
		ck_assert_uint_eq(got, len);
		ck_assert(memcmp(back, buf, len) == 0);
		free(back);
	}
	free(buf);
}
END_TEST

static int run_chunkfs(const char *args, char *out, size_t out_len)
{
	const char *bin = getenv("CHUNKFS_BIN");
	char cmd[8192];
	FILE *p;
	size_t n;
	int status;

	snprintf(cmd, sizeof(cmd), "timeout 10 %s %s 2>&1", bin ? bin : "./chunkfs", args);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	n = fread(out, 1, out_len - 1, p);
	out[n] = '\0';
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

	make_tree(m.src);
	snprintf(args, sizeof(args), "%s %s -o staging_dir=%s", m.src, m.mnt, m.staging);
	ck_assert_int_eq(run_chunkfs(args, out, sizeof(out)), 0);
	files_equal(tm_path(m.src, "models/config.json"), tm_path(m.mnt, "models/config.json"));
	ck_assert_int_eq(tm_sh("fusermount3 -u '%s'", m.mnt), 0);
	ck_assert_int_eq(access(tm_path(m.mnt, "models"), F_OK), -1);
}
END_TEST

static Suite *mount_suite(void)
{
	Suite *s = suite_create("mount_fs");
	TCase *tc = tcase_create("fs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_tree_reads_back_identical);
	tcase_add_test(tc, test_listing_matches_source);
	tcase_add_test(tc, test_write_reaches_backend);
	tcase_add_test(tc, test_two_handles_share_writes);
	tcase_add_test(tc, test_1gib_streams_with_bounded_rss);
	tcase_add_test(tc, test_parallel_readers);
	tcase_add_test(tc, test_namespace_ops);
	tcase_add_test(tc, test_errors_like_local_fs);
	tcase_add_test(tc, test_read_only_mount);
	tcase_add_test(tc, test_failed_save_reported_and_kept);
	tcase_add_test(tc, test_cli_errors);
	tcase_add_test(tc, test_daemon_mode);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mount_suite());
	int failed;

	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("NOT RUN mount_fs: /dev/fuse is not usable here (%s)\n", strerror(errno));
		return 0;
	}
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
