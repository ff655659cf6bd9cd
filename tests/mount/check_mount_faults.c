/*
 * check_mount_faults.c - a mount over the filesystem backend with the
 * fault-injection layer (-o fault_*) under it: failures of the store reach
 * programs as clean errors, never as wrong bytes or lost writes.  (Faults
 * of the S3 backend come from the test server, in check_mount.c.)
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mount.h"
#include "suites.h"

static struct test_mount m;

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
}

static void teardown(void)
{
	tm_stop(&m);
}

static void mount_with(const char *opts)
{
	ck_assert_msg(tm_mount(&m, NULL, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

/* fault.injected from the mount's statistics, or -1. */
static long long injected(void)
{
	char buf[65536];
	ssize_t n = getxattr(m.mnt, "user.chunkfs.stats", buf, sizeof(buf) - 1);
	json_t *root;
	long long v = -1;

	if (n < 0)
		return -1;
	buf[n] = '\0';
	root = json_loads(buf, 0, NULL);
	if (root != NULL) {
		json_t *x = json_object_get(json_object_get(root, "fault"), "injected");

		v = json_is_integer(x) ? json_integer_value(x) : -1;
		json_decref(root);
	}
	return v;
}

/* Read path of a whole file: its length, or -errno of the first failure. */
static ssize_t read_all(const char *path, char *buf, size_t cap)
{
	ssize_t n, total = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -errno;
	while ((size_t)total < cap && (n = read(fd, buf + total, cap - (size_t)total)) > 0)
		total += n;
	if (n < 0)
		total = -errno;
	close(fd);
	return total;
}

/* Every read fails: EIO to the reader, the namespace still works. */
START_TEST(test_read_faults_give_eio)
{
	char buf[64];
	struct stat st;

	ck_assert_int_eq(tm_write_file(tm_path(m.src, "a.txt"), "hello", 5), 0);
	mount_with("fault_ops=read,fault_rate=1");
	ck_assert_int_eq(stat(tm_path(m.mnt, "a.txt"), &st), 0);
	ck_assert_int_eq(st.st_size, 5);
	ck_assert_int_eq(read_all(tm_path(m.mnt, "a.txt"), buf, sizeof(buf)), -EIO);
	ck_assert_int_ge(injected(), 1);
}
END_TEST

/* Half the reads fail: each open-and-read gives the right bytes or EIO,
 * never other bytes, and both happen. */
START_TEST(test_read_faults_never_wrong_bytes)
{
	const size_t size = 3 << 20;
	char *want = malloc(size), *got = malloc(size);
	int ok = 0, eio = 0;

	ck_assert(want != NULL && got != NULL);
	tm_pattern(want, 0, size, 5);
	ck_assert_int_eq(tm_write_file(tm_path(m.src, "p.bin"), want, size), 0);
	mount_with("fault_ops=read,fault_rate=0.5,fault_seed=3");
	for (int i = 0; i < 40; i++) {
		ssize_t n = read_all(tm_path(m.mnt, "p.bin"), got, size);

		if (n == -EIO) {
			eio++;
			continue;
		}
		ck_assert_int_eq(n, (ssize_t)size);
		ck_assert_msg(memcmp(got, want, size) == 0, "wrong bytes on read %d", i);
		ok++;
	}
	ck_assert_int_gt(ok, 0);
	ck_assert_int_gt(eio, 0);
	free(want);
	free(got);
}
END_TEST

/* Saves fail with ENOSPC: fsync and close say so and the store keeps no
 * partial object; once the store recovers, close stores the data whole. */
START_TEST(test_save_faults_reported)
{
	char buf[16];
	int fd;

	mount_with("fault_ops=save,fault_errno=ENOSPC,fault_count=1");
	fd = open(tm_path(m.mnt, "n.txt"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	errno = 0;
	ck_assert_int_eq(fsync(fd), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_ne(access(tm_path(m.src, "n.txt"), F_OK), 0);
	ck_assert_int_eq(close(fd), 0); /* the second save passes */
	ck_assert_int_eq(read_all(tm_path(m.src, "n.txt"), buf, sizeof(buf)), 3);
	ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
	ck_assert_int_eq(tm_unmount(&m), 0);

	mount_with("fault_ops=save,fault_errno=EACCES,fault_rate=1");
	fd = open(tm_path(m.mnt, "m.txt"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "xyz", 3), 3);
	errno = 0;
	ck_assert_int_eq(close(fd), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_ne(access(tm_path(m.src, "m.txt"), F_OK), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mount_faults");
	TCase *tc = tcase_create("fs");

	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("NOT RUN mount_faults: /dev/fuse is not usable here (%s)\n",
		       strerror(errno));
		return 0;
	}
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_read_faults_give_eio);
	tcase_add_test(tc, test_read_faults_never_wrong_bytes);
	tcase_add_test(tc, test_save_faults_reported);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
