/*
 * check_safedir.c - lib/safedir.c: which directories chunkfs accepts for
 * its own files, and what it creates.  Runs as root or as any user; the
 * cases that give a directory away need root and are skipped otherwise.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount.h"
#include "safedir.h"
#include "suites.h"

static char dir[] = "/tmp/chunkfs-safedir-test.XXXXXX";
static char err[1024];

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	ck_assert_int_eq(tm_sh("rm -rf '%s'", dir), 0);
	strcpy(dir + strlen(dir) - 6, "XXXXXX");
}

/* safedir_open() of dir/rel: the descriptor is closed, the result kept. */
static int try_open(const char *rel, int flags)
{
	int fd = safedir_open(tm_path(dir, rel), flags, err, sizeof(err));

	if (fd >= 0)
		close(fd);
	return fd < 0 ? fd : 0;
}

static mode_t mode_of(const char *rel)
{
	struct stat sb;

	ck_assert_int_eq(lstat(tm_path(dir, rel), &sb), 0);
	return sb.st_mode & 07777;
}

/* Missing directories are created 0700, parents too. */
START_TEST(test_creates_parents_0700)
{
	ck_assert_int_eq(try_open("a/b/c", 0), -ENOENT);
	ck_assert_int_eq(try_open("a/b/c", SAFEDIR_CREATE), 0);
	ck_assert_uint_eq(mode_of("a"), 0700);
	ck_assert_uint_eq(mode_of("a/b/c"), 0700);
	/* ".." is not taken in a part that does not exist yet. */
	ck_assert_int_eq(try_open("x/../y", SAFEDIR_CREATE), -EINVAL);
}
END_TEST

/* The directory must not be a symlink, nor writable by others. */
START_TEST(test_refuses_symlink_and_open_modes)
{
	ck_assert_int_eq(mkdir(tm_path(dir, "real"), 0700), 0);
	ck_assert_int_eq(symlink("real", tm_path(dir, "link")), 0);
	ck_assert_int_eq(try_open("link", SAFEDIR_CREATE), -ELOOP);
	ck_assert_ptr_nonnull(strstr(err, "symlink"));
	ck_assert_int_eq(chmod(tm_path(dir, "real"), 0777), 0);
	ck_assert_int_eq(try_open("real", 0), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "chmod 700"));
	ck_assert_int_eq(chmod(tm_path(dir, "real"), 0755), 0);
	ck_assert_int_eq(try_open("real", 0), 0);
	ck_assert_int_eq(try_open("real", SAFEDIR_PRIVATE), -EPERM);
	/* A symlink above the directory is resolved and its target checked. */
	ck_assert_int_eq(mkdir(tm_path(dir, "real/sub"), 0700), 0);
	ck_assert_int_eq(try_open("link/sub", 0), 0);
}
END_TEST

/* A parent others may write to must be sticky (as /tmp). */
START_TEST(test_parent_writable_by_others)
{
	ck_assert_int_eq(mkdir(tm_path(dir, "open"), 0777), 0);
	ck_assert_int_eq(chmod(tm_path(dir, "open"), 0777), 0);
	ck_assert_int_eq(try_open("open/staging", SAFEDIR_CREATE), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "not sticky"));
	ck_assert_int_eq(chmod(tm_path(dir, "open"), 01777), 0);
	ck_assert_int_eq(try_open("open/staging", SAFEDIR_CREATE), 0);
}
END_TEST

/* Another user's directory, or one under another user's, is refused. */
START_TEST(test_other_owner)
{
	if (geteuid() != 0) {
		printf("SKIP other_owner: giving a directory away needs root\n");
		return;
	}
	ck_assert_int_eq(mkdir(tm_path(dir, "theirs"), 0700), 0);
	ck_assert_int_eq(mkdir(tm_path(dir, "theirs/mine"), 0700), 0);
	ck_assert_int_eq(chown(tm_path(dir, "theirs"), 65534, 65534), 0);
	ck_assert_int_eq(try_open("theirs", 0), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "not by this user"));
	ck_assert_int_eq(try_open("theirs/mine", 0), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "neither root nor this user"));
}
END_TEST

/* Files: unique names 0600, and only regular files of ours are opened. */
START_TEST(test_unique_and_own_files)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	char name[] = "stage-XXXXXX";
	int fd;

	ck_assert_int_ge(dfd, 0);
	fd = safedir_create_unique(dfd, name, O_RDWR, 0);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_str_ne(name, "stage-XXXXXX");
	ck_assert_uint_eq(mode_of(name), 0600);
	fd = safedir_open_own_file(dfd, name);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(symlink(name, tm_path(dir, "sym")), 0);
	ck_assert_int_eq(safedir_open_own_file(dfd, "sym"), -EPERM);
	ck_assert_int_eq(mkfifo(tm_path(dir, "fifo"), 0600), 0);
	ck_assert_int_eq(safedir_open_own_file(dfd, "fifo"), -EPERM); /* and did not block */
	close(dfd);
}
END_TEST

/* A move never replaces a file already there. */
START_TEST(test_move_no_replace)
{
	int from, to;

	ck_assert_int_eq(mkdir(tm_path(dir, "from"), 0700), 0);
	ck_assert_int_eq(mkdir(tm_path(dir, "to"), 0700), 0);
	from = open(tm_path(dir, "from"), O_RDONLY | O_DIRECTORY);
	to = open(tm_path(dir, "to"), O_RDONLY | O_DIRECTORY);
	ck_assert_int_eq(tm_write_file(tm_path(dir, "from/a"), "new", 3), 0);
	ck_assert_int_eq(tm_write_file(tm_path(dir, "to/a"), "old", 3), 0);
	ck_assert_int_eq(safedir_move(from, to, "a"), -EEXIST);
	ck_assert_int_eq(unlink(tm_path(dir, "to/a")), 0);
	ck_assert_int_eq(safedir_move(from, to, "a"), 0);
	ck_assert_int_eq(access(tm_path(dir, "to/a"), F_OK), 0);
	ck_assert_int_eq(access(tm_path(dir, "from/a"), F_OK), -1);
	close(from);
	close(to);
}
END_TEST

static Suite *safedir_suite(void)
{
	Suite *s = suite_create("safedir");
	TCase *tc = tcase_create("safedir");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_creates_parents_0700);
	tcase_add_test(tc, test_refuses_symlink_and_open_modes);
	tcase_add_test(tc, test_parent_writable_by_others);
	tcase_add_test(tc, test_other_owner);
	tcase_add_test(tc, test_unique_and_own_files);
	tcase_add_test(tc, test_move_no_replace);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return suites_run(safedir_suite());
}
