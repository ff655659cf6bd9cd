/*
 * check_write.c - the write path, mounted for real, over every backend.
 *
 * The same cases run over the filesystem backend and the S3 backend (a
 * fresh prefix on the test server; NOT RUN without it).  Every case keeps
 * a shadow of what the file must hold and compares it with the bytes the
 * store has (its own view, tests/support/store.h) and, on S3, with what
 * the aws CLI downloads.  The S3-only cases inject faults on the server's
 * control port and count its requests.  The "limits" case checks what the
 * store can hold: sparse files stay sparse in staging and on the
 * directory source, sizes past the store's limit or -o max_file give
 * EFBIG, and key lengths follow the store (S3: 1,024 bytes less the
 * mount's prefix; a directory: PATH_MAX - 1 for the path under it), with
 * ENAMETOOLONG beyond for every op that names a file.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
	ck_assert_int_eq(store_open(&st, g_kind, m.src), 0);
}

static void teardown(void)
{
	tm_unmount(&m);
	umount2(m.staging, MNT_DETACH); /* the full-disk case mounts a tmpfs there */
	if (g_kind == STORE_S3) {
		store_control("DELETE", "/faults", NULL);
		store_control("POST", "/latency?ms=0", NULL);
	}
	tm_stop(&m);
	store_close(&st);
}

/* The S3 tests that count parts pin their size (the default may change). */
#define PARTS_8M "part_size_mb=8"

/* Mount the store with extra options (may be NULL). */
static void mount_with(const char *opts)
{
	ck_assert_msg(store_mount(&st, &m, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

static int have_aws(void)
{
	return access("/usr/bin/aws", X_OK) == 0;
}

/*
 * The object must hold exactly want: through the store's view, and on S3
 * also as the aws CLI downloads it.
 */
static void stored_is(const char *key, const void *want, size_t len)
{
	size_t got;
	char *back = store_get(&st, key, &got), dl[PATH_MAX];

	ck_assert_msg(back != NULL, "object %s is missing: %s", key, strerror(errno));
	ck_assert_msg(got == len, "object %s has %zu bytes, want %zu", key, got, len);
	ck_assert_msg(memcmp(back, want, len) == 0, "object %s has other bytes", key);
	free(back);
	if (st.kind != STORE_S3 || !have_aws())
		return;
	snprintf(dl, sizeof(dl), "%s/aws-download", m.root);
	ck_assert_int_eq(tm_sh("/usr/bin/aws --endpoint-url %s s3 cp --quiet '%s/%s' '%s'",
	                       getenv("CHUNKFS_TEST_S3_ENDPOINT"), st.source, key, dl),
	                 0);
	back = tm_read_file(dl, &got);
	ck_assert_ptr_nonnull(back);
	ck_assert_msg(got == len && memcmp(back, want, len) == 0,
	              "aws s3 cp of %s differs from what was written", key);
	free(back);
	unlink(dl);
}

/* The file read through the mount must hold exactly want. */
static void mounted_is(const char *rel, const void *want, size_t len)
{
	size_t got;
	char *back = tm_read_file(tm_path(m.mnt, rel), &got);

	ck_assert_msg(back != NULL, "cannot read %s", rel);
	ck_assert_msg(got == len, "%s has %zu bytes, want %zu", rel, got, len);
	ck_assert_msg(memcmp(back, want, len) == 0, "%s has other bytes", rel);
	free(back);
}

/*
 * After a save failed for good: the recovery directory gets (within 5 s)
 * the data of key, exactly want, with a note saying it still needs saving.
 */
static void recovered_is(const char *key, const void *want, size_t len)
{
	size_t got;
	char *kept;

	for (int t = 0; t < 100; t++) {
		if (tm_sh("grep -lq 'key=%s' '%s'/recovery/*.note 2>/dev/null", key, m.staging) ==
		    0)
			break;
		usleep(50000);
	}
	ck_assert_int_eq(tm_sh("f=$(grep -l 'key=%s' '%s'/recovery/*.note) && "
	                       "grep -q '^state=dirty' \"$f\" && grep -q '^complete=1' \"$f\" && "
	                       "cp \"${f%%.note}\" '%s/kept.bin'",
	                       key, m.staging, m.root),
	                 0);
	kept = tm_read_file(tm_path(m.root, "kept.bin"), &got);
	ck_assert_ptr_nonnull(kept);
	ck_assert_uint_eq(got, len);
	ck_assert(memcmp(kept, want, len) == 0);
	free(kept);
	unlink(tm_path(m.root, "kept.bin"));
}

/* pwrite all of it or fail the test. */
static void put_at(int fd, const void *buf, size_t len, off_t off)
{
	ck_assert_int_eq(pwrite(fd, buf, len, off), (ssize_t)len);
}

/* Create, write anywhere, append, overwrite, truncate: store matches. */
START_TEST(test_write_semantics)
{
	size_t cap = 6 << 20, len;
	char *shadow = calloc(1, cap), *orig = malloc(3 << 20);
	int fd;

	/* Put by the store itself before mounting: a mount sees objects
	 * others add only after list_ttl. */
	tm_pattern(orig, 0, 3 << 20, 4);
	ck_assert_int_eq(store_put(&st, "old.bin", orig, 3 << 20), 0);

	/* A new file written out of order, with a hole. */
	mount_with(NULL);
	fd = open(tm_path(m.mnt, "new.bin"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	tm_pattern(shadow + 100000, 0, 5000, 1);
	put_at(fd, shadow + 100000, 5000, 100000);
	tm_pattern(shadow, 0, 4096, 2);
	put_at(fd, shadow, 4096, 0);
	ck_assert_int_eq(fsync(fd), 0);
	stored_is("new.bin", shadow, 105000);
	ck_assert_int_eq(close(fd), 0);

	/* O_EXCL on an existing file. */
	ck_assert_int_eq(open(tm_path(m.mnt, "new.bin"), O_WRONLY | O_CREAT | O_EXCL, 0644), -1);
	ck_assert_int_eq(errno, EEXIST);

	/* O_APPEND adds at the end, twice, from two opens. */
	for (int i = 0; i < 2; i++) {
		fd = open(tm_path(m.mnt, "new.bin"), O_WRONLY | O_APPEND);
		ck_assert_int_ge(fd, 0);
		tm_pattern(shadow + 105000 + i * 777, 0, 777, 3 + (uint32_t)i);
		ck_assert_int_eq(write(fd, shadow + 105000 + i * 777, 777), 777);
		ck_assert_int_eq(close(fd), 0);
	}
	len = 105000 + 2 * 777;
	stored_is("new.bin", shadow, len);
	mounted_is("new.bin", shadow, len);

	/* Overwrite inside an existing object put there by the store itself. */
	fd = open(tm_path(m.mnt, "old.bin"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	tm_pattern(orig + 1500000, 0, 10, 5);
	put_at(fd, orig + 1500000, 10, 1500000);
	ck_assert_int_eq(close(fd), 0);
	stored_is("old.bin", orig, 3 << 20);

	/* truncate shrinks, then grows with zeros (not the old bytes). */
	ck_assert_int_eq(truncate(tm_path(m.mnt, "old.bin"), 1000), 0);
	stored_is("old.bin", orig, 1000);
	ck_assert_int_eq(truncate(tm_path(m.mnt, "old.bin"), 5000), 0);
	memset(orig + 1000, 0, 4000);
	stored_is("old.bin", orig, 5000);

	/* ftruncate on an open file, shrink below and write past the end. */
	fd = open(tm_path(m.mnt, "old.bin"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 10), 0);
	put_at(fd, "tail", 4, 20);
	ck_assert_int_eq(close(fd), 0);
	memset(orig + 10, 0, 10);
	memcpy(orig + 20, "tail", 4);
	stored_is("old.bin", orig, 24);

	/* O_TRUNC replaces everything. */
	fd = open(tm_path(m.mnt, "old.bin"), O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "short", 5), 5);
	ck_assert_int_eq(close(fd), 0);
	stored_is("old.bin", "short", 5);

	/* unlink removes the object. */
	ck_assert_int_eq(unlink(tm_path(m.mnt, "old.bin")), 0);
	ck_assert(!store_has(&st, "old.bin"));
	ck_assert_int_eq(access(tm_path(m.mnt, "old.bin"), F_OK), -1);
	free(shadow);
	free(orig);
}
END_TEST

/* 1,000 writes of random sizes at random offsets into an existing 6 MiB
 * object (some past its end, some truncates), checked against a shadow
 * buffer through the mount while open and in the store after close. */
START_TEST(test_random_writes_match_shadow)
{
	size_t cap = 9 << 20, size = 6 << 20;
	char *shadow = calloc(1, cap), *chunk = malloc(256 << 10), *back = malloc(cap);
	unsigned seed = 12345;
	int fd;

	tm_pattern(shadow, 0, size, 7);
	ck_assert_int_eq(store_put(&st, "rand.bin", shadow, size), 0);
	mount_with(NULL);
	fd = open(tm_path(m.mnt, "rand.bin"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 1000; i++) {
		size_t off = (size_t)rand_r(&seed) % (8 << 20);
		size_t len = 1 + (size_t)rand_r(&seed) % (i % 10 == 0 ? 256 << 10 : 4096);

		if (i % 97 == 96) {
			size_t to = (size_t)rand_r(&seed) % (7 << 20);

			ck_assert_int_eq(ftruncate(fd, (off_t)to), 0);
			if (to > size)
				memset(shadow + size, 0, to - size);
			size = to;
			continue;
		}
		for (size_t k = 0; k < len; k++)
			chunk[k] = (char)rand_r(&seed);
		put_at(fd, chunk, len, (off_t)off);
		if (off > size)
			memset(shadow + size, 0, off - size);
		memcpy(shadow + off, chunk, len);
		if (off + len > size)
			size = off + len;
		if (i % 250 == 0) {
			ck_assert_int_eq(pread(fd, back, cap, 0), (ssize_t)size);
			ck_assert_msg(memcmp(back, shadow, size) == 0,
			              "read-back differs after write %d", i);
		}
	}
	ck_assert_int_eq(close(fd), 0);
	stored_is("rand.bin", shadow, size);
	free(shadow);
	free(chunk);
	free(back);
}
END_TEST

/* mkdir leaves a marker; rmdir refuses a non-empty directory; files and
 * directories rename with their bytes. */
START_TEST(test_rename_and_directories)
{
	char a[70000], b[3000];

	tm_pattern(a, 0, sizeof(a), 8);
	tm_pattern(b, 0, sizeof(b), 9);
	mount_with(NULL);
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d"), 0755), 0);
	ck_assert(store_has_dir(&st, "d"));
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d"), 0755), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(tm_write_file(tm_path(m.mnt, "d/a.bin"), a, sizeof(a)), 0);
	ck_assert_int_eq(mkdir(tm_path(m.mnt, "d/sub"), 0755), 0);
	ck_assert_int_eq(tm_write_file(tm_path(m.mnt, "d/sub/b.bin"), b, sizeof(b)), 0);
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "d")), -1);
	ck_assert_int_eq(errno, ENOTEMPTY);

	/* A file: the old key goes, the new one has the bytes. */
	ck_assert_int_eq(rename(tm_path(m.mnt, "d/a.bin"), tm_path(m.mnt, "d/a2.bin")), 0);
	ck_assert(!store_has(&st, "d/a.bin"));
	stored_is("d/a2.bin", a, sizeof(a));
	/* Over an existing file. */
	ck_assert_int_eq(rename(tm_path(m.mnt, "d/sub/b.bin"), tm_path(m.mnt, "d/a2.bin")), 0);
	stored_is("d/a2.bin", b, sizeof(b));
	ck_assert(!store_has(&st, "d/sub/b.bin"));
	/* A file still open for writing is saved, then moved. */
	{
		int fd = open(tm_path(m.mnt, "d/open.bin"), O_WRONLY | O_CREAT, 0644);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, a, 1000), 1000);
		ck_assert_int_eq(rename(tm_path(m.mnt, "d/open.bin"), tm_path(m.mnt, "moved.bin")),
		                 0);
		ck_assert_int_eq(write(fd, a + 1000, 1000), 1000);
		ck_assert_int_eq(close(fd), 0);
		stored_is("moved.bin", a, 2000);
		ck_assert(!store_has(&st, "d/open.bin"));
	}
	/* A directory with its contents. */
	ck_assert_int_eq(rename(tm_path(m.mnt, "d"), tm_path(m.mnt, "e")), 0);
	stored_is("e/a2.bin", b, sizeof(b));
	ck_assert(store_has_dir(&st, "e/sub"));
	ck_assert(!store_has_dir(&st, "d"));
	mounted_is("e/a2.bin", b, sizeof(b));
	ck_assert_int_eq(access(tm_path(m.mnt, "d"), F_OK), -1);
	/* Emptied, rmdir works and the marker goes. */
	ck_assert_int_eq(unlink(tm_path(m.mnt, "e/a2.bin")), 0);
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "e/sub")), 0);
	ck_assert_int_eq(rmdir(tm_path(m.mnt, "e")), 0);
	ck_assert(!store_has_dir(&st, "e"));
}
END_TEST

/* chmod, chown and utimens are stored with the object and survive a
 * remount; on S3 in s3fs's headers. */
START_TEST(test_metadata_stored)
{
	struct timespec ts[2] = {{0, UTIME_OMIT}, {1577934245, 0}};
	struct backend_stat bs;
	struct stat sb;

	mount_with(NULL);
	ck_assert_int_eq(tm_write_file(tm_path(m.mnt, "meta.bin"), "meta", 4), 0);
	ck_assert_int_eq(chmod(tm_path(m.mnt, "meta.bin"), 0600), 0);
	ck_assert_int_eq(chown(tm_path(m.mnt, "meta.bin"), 1234, 5678), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, tm_path(m.mnt, "meta.bin"), ts, 0), 0);
	/* Set while open for writing: stored with the save at close. */
	{
		int fd = open(tm_path(m.mnt, "open.bin"), O_WRONLY | O_CREAT, 0644);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "x", 1), 1);
		ck_assert_int_eq(fchmod(fd, 0640), 0);
		ck_assert_int_eq(close(fd), 0);
	}
	tm_unmount(&m);
	ck_assert_int_eq(st.be->ops->stat(st.be, "meta.bin", &bs), 0);
	ck_assert_uint_eq(bs.meta & BACKEND_META_MODE, BACKEND_META_MODE);
	ck_assert_uint_eq(bs.mode, 0600);
	ck_assert_uint_eq(bs.uid, 1234);
	ck_assert_uint_eq(bs.gid, 5678);
	ck_assert_int_eq(bs.mtime.tv_sec, 1577934245);
	if (st.kind == STORE_S3 && have_aws())
		ck_assert_int_eq(
		    tm_sh("/usr/bin/aws --endpoint-url %s s3api head-object --bucket %s --key "
		          "'%smeta.bin' | tr -d ' \\n' | grep -q "
		          "'\"Metadata\":{\"mtime\":\"1577934245\",\"mode\":\"33152\",\"uid\":"
		          "\"1234\",\"gid\":\"5678\"}'",
		          getenv("CHUNKFS_TEST_S3_ENDPOINT"), getenv("CHUNKFS_TEST_S3_BUCKET"),
		          store_s3_prefix(&st)),
		    0);
	mount_with(NULL);
	ck_assert_int_eq(stat(tm_path(m.mnt, "meta.bin"), &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0600);
	ck_assert_uint_eq(sb.st_uid, 1234);
	ck_assert_uint_eq(sb.st_gid, 5678);
	ck_assert_int_eq(sb.st_mtime, 1577934245);
	ck_assert_int_eq(stat(tm_path(m.mnt, "open.bin"), &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0640);
	/* The bytes did not change. */
	mounted_is("meta.bin", "meta", 4);
	/* -o metadata=refuse: chmod is refused cleanly. */
	tm_unmount(&m);
	mount_with("metadata=refuse");
	ck_assert_int_eq(chmod(tm_path(m.mnt, "meta.bin"), 0700), -1);
	ck_assert_int_eq(errno, EPERM);
}
END_TEST

struct writer {
	int index;
	int ret;
};

static void *write_one(void *p)
{
	struct writer *w = p;
	char name[32];

	snprintf(name, sizeof(name), "par-%d.bin", w->index);
	w->ret = tm_write_pattern(tm_path(m.mnt, name), (6 << 20) + (uint64_t)w->index * 1001,
	                          100 + (uint32_t)w->index);
	return NULL;
}

/* Writers of different files run at once, and every file lands whole. */
START_TEST(test_parallel_writers)
{
	struct writer w[4];
	pthread_t t[4];

	mount_with(NULL);
	for (int i = 0; i < 4; i++) {
		w[i].index = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, write_one, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		size_t len = (6 << 20) + (size_t)i * 1001;
		char *want = malloc(len), name[32];

		pthread_join(t[i], NULL);
		ck_assert_int_eq(w[i].ret, 0);
		tm_pattern(want, 0, len, 100 + (uint32_t)i);
		snprintf(name, sizeof(name), "par-%d.bin", i);
		stored_is(name, want, len);
		free(want);
	}
}
END_TEST

/*
 * kill -9 of the daemon with a file written and fsynced, then written
 * again: the next mount reports the unsaved file, and -o recover=upload
 * saves its latest bytes.
 */
START_TEST(test_crash_recovery)
{
	size_t len = 2 << 20;
	char *v1 = malloc(len), *v2 = malloc(len), out[8192];
	int fd, status;

	tm_pattern(v1, 0, len, 21);
	tm_pattern(v2, 0, len, 22);
	mount_with(NULL);
	fd = open(tm_path(m.mnt, "crash.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	put_at(fd, v1, len, 0);
	ck_assert_int_eq(fsync(fd), 0);
	stored_is("crash.bin", v1, len); /* what fsync acknowledged is stored */
	put_at(fd, v2, len, 0);
	kill(m.pid, SIGKILL);
	waitpid(m.pid, &status, 0);
	close(fd); /* ENOTCONN: the daemon is gone */
	tm_unmount(&m);
	stored_is("crash.bin", v1, len); /* nothing acknowledged was lost */

	/* The next mount reports it... */
	mount_with(NULL);
	tm_unmount(&m);
	snprintf(out, sizeof(out), "%s/daemon.log", m.root);
	ck_assert_int_eq(tm_sh("grep -q 'unsaved file(s).*recover=upload' '%s'", out), 0);
	ck_assert_int_eq(tm_sh("grep -rq 'key=crash.bin' '%s/recovery'", m.staging), 0);
	/* ...and recover=upload saves the bytes written last. */
	mount_with("recover=upload");
	stored_is("crash.bin", v2, len);
	mounted_is("crash.bin", v2, len);
	ck_assert_int_eq(tm_sh("[ -z \"$(ls -A '%s/recovery')\" ]", m.staging), 0);
	free(v1);
	free(v2);
}
END_TEST

/*
 * kill -9 with several files unsaved, then a remount with recover=upload
 * straight away: every file is saved and the recovery directory is left
 * empty, with no warning about files without a note (each note used to be
 * uploaded and removed with its data file while the directory was still
 * being read, and the data file's name, already read, was then counted as
 * an orphan).
 */
START_TEST(test_crash_recover_upload_quiet)
{
	enum { FILES = 8 };
	size_t len = 100000;
	char *buf = malloc(len), name[32], *log;
	int fd[FILES], status;
	size_t log_len;

	mount_with(NULL);
	for (int i = 0; i < FILES; i++) {
		snprintf(name, sizeof(name), "lost-%d.bin", i);
		fd[i] = open(tm_path(m.mnt, name), O_WRONLY | O_CREAT, 0644);
		ck_assert_int_ge(fd[i], 0);
		tm_pattern(buf, 0, len, 60 + (uint32_t)i);
		put_at(fd[i], buf, len, 0);
	}
	kill(m.pid, SIGKILL);
	waitpid(m.pid, &status, 0);
	for (int i = 0; i < FILES; i++)
		close(fd[i]); /* ENOTCONN: the daemon is gone */
	tm_unmount(&m);
	ck_assert_int_eq(truncate(tm_path(m.root, "daemon.log"), 0), 0);
	mount_with("recover=upload");
	for (int i = 0; i < FILES; i++) {
		snprintf(name, sizeof(name), "lost-%d.bin", i);
		tm_pattern(buf, 0, len, 60 + (uint32_t)i);
		stored_is(name, buf, len);
	}
	ck_assert_int_eq(tm_sh("[ -z \"$(ls -A '%s/recovery')\" ]", m.staging), 0);
	log = tm_read_file(tm_path(m.root, "daemon.log"), &log_len);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "have no note") == NULL, "spurious warning: %s", log);
	ck_assert_msg(strstr(log, "8 saved") != NULL, "log: %s", log);
	free(log);
	free(buf);
}
END_TEST

/* A full staging disk gives the writer ENOSPC; stored files are intact
 * and writing works again once space is back. */
START_TEST(test_staging_full_enospc)
{
	size_t len = 16 << 20, done = 0;
	char *buf = malloc(len), keep[5000];
	ssize_t n = 0;
	int fd;

	if (mount("tmpfs", m.staging, "tmpfs", 0, "size=8m,mode=0700") != 0) {
		printf("SKIP staging_full: cannot mount a small tmpfs (%s); needs root\n",
		       strerror(errno));
		return;
	}
	tm_pattern(keep, 0, sizeof(keep), 31);
	ck_assert_int_eq(store_put(&st, "keep.bin", keep, sizeof(keep)), 0);
	mount_with(NULL);
	tm_pattern(buf, 0, len, 32);
	fd = open(tm_path(m.mnt, "big.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	while (done < len && (n = write(fd, buf + done, 1 << 20)) > 0)
		done += (size_t)n;
	ck_assert_int_eq(n, -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_uint_lt(done, len);
	/* What write() accepted is what close() saves. */
	ck_assert_int_eq(close(fd), 0);
	stored_is("big.bin", buf, done);
	/* An overwrite of another file gets ENOSPC too, or succeeds whole;
	 * either way keep.bin is never half-written. */
	stored_is("keep.bin", keep, sizeof(keep));
	ck_assert_int_eq(unlink(tm_path(m.mnt, "big.bin")), 0);
	ck_assert_int_eq(tm_write_file(tm_path(m.mnt, "after.bin"), keep, sizeof(keep)), 0);
	stored_is("after.bin", keep, sizeof(keep));
	free(buf);
}
END_TEST

/* --- S3-only cases --------------------------------------------------- */

/* Failing uploads (503s, resets, 403) make fsync and close fail with the
 * error, and the data is kept byte-exact in the recovery directory, named
 * by its note; a later recover=upload saves it. */
START_TEST(test_s3_failed_uploads_kept)
{
	const char *kinds[] = {"503", "reset", "403"};
	const int want_errno[] = {EIO, EIO, EACCES};
	size_t len = (1 << 20) + 3;
	char *buf = malloc(len), json[512], name[64];
	int fd;

	mount_with("retries=2");
	for (int i = 0; i < 3; i++) {
		snprintf(json, sizeof(json),
		         "{\"rate\":1,\"kinds\":\"%s\",\"methods\":\"PutObject,UploadPart,"
		         "CreateMultipartUpload\",\"prefix\":\"%s\"}",
		         kinds[i], store_s3_prefix(&st));
		ck_assert_int_eq(store_control("POST", "/faults", json), 0);
		tm_pattern(buf, 0, len, 40 + (uint32_t)i);
		snprintf(name, sizeof(name), "fail-%s.bin", kinds[i]);
		fd = open(tm_path(m.mnt, name), O_WRONLY | O_CREAT, 0644);
		ck_assert_int_ge(fd, 0);
		put_at(fd, buf, len, 0);
		ck_assert_int_eq(fsync(fd), -1);
		ck_assert_int_eq(errno, want_errno[i]);
		ck_assert_int_eq(close(fd), -1);
		ck_assert_int_eq(errno, want_errno[i]);
		ck_assert(!store_has(&st, name));
		/* The final save at release fails too: the data moves to the
		 * recovery directory, whole, with a note naming the key. */
		recovered_is(name, buf, len);
	}
	ck_assert_int_eq(tm_sh("grep -q 'fail-503.bin.*recover=upload' '%s/daemon.log'", m.root),
	                 0);
	store_control("DELETE", "/faults", NULL);
	tm_unmount(&m);
	mount_with("recover=upload");
	for (int i = 0; i < 3; i++) {
		tm_pattern(buf, 0, len, 40 + (uint32_t)i);
		snprintf(name, sizeof(name), "fail-%s.bin", kinds[i]);
		stored_is(name, buf, len);
	}
	free(buf);
}
END_TEST

/* A multipart upload whose one part fails is retried for that part only. */
START_TEST(test_s3_multipart_retries_one_part)
{
	size_t len = (40 << 20) + 5; /* 6 parts of 8 MiB */
	char *buf = malloc(len), json[512];
	int fd;

	tm_pattern(buf, 0, len, 50);
	/* stream_min=0: all parts go at close (streaming: see below). */
	mount_with("stream_min=0," PARTS_8M);
	fd = open(tm_path(m.mnt, "multi.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	put_at(fd, buf, len, 0);
	/* The third part fails once. */
	snprintf(json, sizeof(json),
	         "{\"count\":1,\"after\":2,\"kinds\":\"503\",\"methods\":\"UploadPart\","
	         "\"prefix\":\"%s\"}",
	         store_s3_prefix(&st));
	ck_assert_int_eq(store_control("POST", "/faults", json), 0);
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(store_counter("ops", "CreateMultipartUpload"), 1);
	ck_assert_int_eq(store_counter("ops", "UploadPart"), 6 + 1);
	ck_assert_int_eq(store_counter("ops", "CompleteMultipartUpload"), 1);
	ck_assert_int_eq(store_counter("faults", "503"), 1);
	stored_is("multi.bin", buf, len);
	free(buf);
}
END_TEST

/* --- streaming: parts of a file written in order go out while it is
 * written (-o stream_min, default 32 MiB) ------------------------------ */

/* Write [0, len) of buf to fd in 1 MiB write()s, in order. */
static void write_in_order(int fd, const char *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		size_t n = len - done < (1 << 20) ? len - done : (1 << 20);

		ck_assert_int_eq(write(fd, buf + done, n), (ssize_t)n);
		done += n;
	}
}

/* Wait (up to 30 s) until the server's counter name/sub reaches n. */
static void wait_counter(const char *name, const char *sub, long long n)
{
	for (int i = 0; i < 600 && store_counter(name, sub) < n; i++)
		usleep(50000);
	ck_assert_int_ge(store_counter(name, sub), n);
}

static void wait_parts(long long n)
{
	wait_counter("ops", "UploadPart", n);
}

/*
 * Create name (counters reset first), write buf[0, len) to it in order,
 * wait until the server has taken `parts` UploadParts; the file stays
 * open (returned) so that they were sent while it was being written.
 */
static int open_streamed(const char *name, const char *buf, size_t len, long long parts)
{
	int fd;

	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	fd = open(tm_path(m.mnt, name), O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	write_in_order(fd, buf, len);
	if (parts > 0)
		wait_parts(parts);
	return fd;
}

/*
 * 48 MiB + 5 written in order: the six 8 MiB parts are sent while the file
 * is still open, nothing is visible until close, and close sends only the
 * last 5 bytes and completes.
 */
START_TEST(test_s3_stream_sends_while_writing)
{
	size_t len = (48 << 20) + 5;
	char *buf = malloc(len);
	int fd;

	tm_pattern(buf, 0, len, 90);
	mount_with(PARTS_8M);
	fd = open_streamed("stream.bin", buf, len, 6);
	ck_assert_int_eq(store_counter("ops", "CreateMultipartUpload"), 1);
	ck_assert(!store_has(&st, "stream.bin"));
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(store_counter("ops", "CreateMultipartUpload"), 0);
	ck_assert_int_eq(store_counter("ops", "UploadPart"), 1);
	ck_assert_int_eq(store_counter("ops", "CompleteMultipartUpload"), 1);
	ck_assert_int_eq(store_counter("ops", "PutObject"), 0);
	stored_is("stream.bin", buf, len);
	mounted_is("stream.bin", buf, len);
	free(buf);
}
END_TEST

/*
 * Bytes written again after their part went out make that part stale: it
 * is sent again at close (only it), and the object has the new bytes.
 * Metadata set while streaming (cp -p does it before close) is stored too.
 */
START_TEST(test_s3_stream_rewrite_and_attrs)
{
	size_t len = 40 << 20; /* five whole parts */
	struct timespec ts[2] = {{0, UTIME_OMIT}, {1600000000, 0}};
	struct backend_stat bs;
	char *buf = malloc(len);
	int fd;

	tm_pattern(buf, 0, len, 91);
	mount_with(PARTS_8M);
	fd = open_streamed("rw.bin", buf, len, 5);
	/* Parts 1, 2 and 3 (1-based) are written again, in two byte ranges. */
	tm_pattern(buf + (3 << 20), 0, 100, 92);
	put_at(fd, buf + (3 << 20), 100, 3 << 20);
	tm_pattern(buf + (16 << 20) - 50, 0, 100, 93);
	put_at(fd, buf + (16 << 20) - 50, 100, (16 << 20) - 50);
	ck_assert_int_eq(fchmod(fd, 0600), 0);
	ck_assert_int_eq(futimens(fd, ts), 0);
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	ck_assert_int_eq(close(fd), 0);
	/* Offset 3 MiB is in part 1; 16 MiB - 50 .. + 50 spans parts 2 and 3. */
	ck_assert_int_eq(store_counter("ops", "UploadPart"), 3);
	stored_is("rw.bin", buf, len);
	ck_assert_int_eq(st.be->ops->stat(st.be, "rw.bin", &bs), 0);
	ck_assert_uint_eq(bs.mode, 0600);
	ck_assert_int_eq(bs.mtime.tv_sec, 1600000000);
	mounted_is("rw.bin", buf, len);
	free(buf);
}
END_TEST

/*
 * A truncate below what was sent drops the stream and the file is still
 * stored right: cut to 20 MiB and written on (multipart), cut to 10 MiB
 * (one PUT), and renamed while streaming (saved under the new name only).
 */
START_TEST(test_s3_stream_truncate_rename)
{
	size_t len = 40 << 20;
	char *buf = malloc(len), *want = malloc(len);
	int fd;

	mount_with(PARTS_8M);
	tm_pattern(buf, 0, len, 94);
	/* Cut to 20 MiB + 1, then 10 MiB more from there. */
	memcpy(want, buf, len);
	fd = open_streamed("cut.bin", buf, len, 4);
	ck_assert_int_eq(ftruncate(fd, (20 << 20) + 1), 0);
	tm_pattern(want + (20 << 20) + 1, 0, 10 << 20, 95);
	put_at(fd, want + (20 << 20) + 1, 10 << 20, (20 << 20) + 1);
	ck_assert_int_eq(close(fd), 0);
	stored_is("cut.bin", want, (30 << 20) + 1);

	/* Cut to 10 MiB: small enough for one PUT. */
	fd = open_streamed("small.bin", buf, len, 4);
	ck_assert_int_eq(ftruncate(fd, 10 << 20), 0);
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(store_counter("ops", "PutObject"), 1);
	ck_assert_int_eq(store_counter("ops", "CompleteMultipartUpload"), 0);
	stored_is("small.bin", buf, 10 << 20);

	/* Renamed while streaming. */
	fd = open_streamed("old.bin", buf, 36 << 20, 2);
	ck_assert_int_eq(rename(tm_path(m.mnt, "old.bin"), tm_path(m.mnt, "new.bin")), 0);
	write_in_order(fd, buf + (36 << 20), len - (36 << 20));
	ck_assert_int_eq(close(fd), 0);
	ck_assert(!store_has(&st, "old.bin"));
	stored_is("new.bin", buf, len);
	mounted_is("new.bin", buf, len);
	free(buf);
	free(want);
}
END_TEST

/*
 * A part that fails in the background (one attempt: retries=0) is sent
 * again at close, alone, and close succeeds; when every part keeps
 * failing, close fails and the data is kept for recovery.
 */
START_TEST(test_s3_stream_part_fails)
{
	size_t len = (32 << 20) + 7;
	char *buf = malloc(len), json[512];
	int fd;

	tm_pattern(buf, 0, len, 96);
	mount_with("retries=0," PARTS_8M);
	snprintf(json, sizeof(json),
	         "{\"count\":1,\"after\":1,\"kinds\":\"503\",\"methods\":\"UploadPart\","
	         "\"prefix\":\"%s\"}",
	         store_s3_prefix(&st));
	ck_assert_int_eq(store_control("POST", "/faults", json), 0);
	fd = open_streamed("flaky.bin", buf, len, 4);
	wait_counter("faults", "503", 1);
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	ck_assert_int_eq(close(fd), 0);
	/* The failed part and the 7-byte tail. */
	ck_assert_int_eq(store_counter("ops", "UploadPart"), 2);
	stored_is("flaky.bin", buf, len);

	snprintf(json, sizeof(json),
	         "{\"rate\":1,\"kinds\":\"503\",\"methods\":\"UploadPart\",\"prefix\":\"%s\"}",
	         store_s3_prefix(&st));
	ck_assert_int_eq(store_control("POST", "/faults", json), 0);
	fd = open_streamed("lost.bin", buf, len, 0);
	ck_assert_int_eq(close(fd), -1);
	ck_assert_int_eq(errno, EIO);
	ck_assert(!store_has(&st, "lost.bin"));
	recovered_is("lost.bin", buf, len);
	free(buf);
}
END_TEST

/* Threads of the daemon named "upload-bg" (background part workers) now. */
static int upload_threads(void)
{
	char path[64];
	int n = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)m.pid);
	d = opendir(path);
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char comm[32] = "", p2[PATH_MAX];
		FILE *f;

		snprintf(p2, sizeof(p2), "%s/%s/comm", path, e->d_name);
		f = fopen(p2, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, "upload-bg\n") == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

struct writer_arg {
	int index;
	const char *buf;
	size_t len;
	int ret;
};

static void *writer_thread(void *p)
{
	struct writer_arg *a = p;
	char name[32];

	int fd;

	/* Written at once, then held open: its parts go in the background. */
	snprintf(name, sizeof(name), "many-%d.bin", a->index);
	fd = open(tm_path(m.mnt, name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	a->ret = fd < 0 ? -1 : 0;
	for (size_t done = 0; a->ret == 0 && done < a->len;) {
		ssize_t n = write(fd, a->buf + done, a->len - done);

		if (n <= 0)
			a->ret = -1;
		else
			done += (size_t)n;
	}
	sleep(3);
	if (fd >= 0 && close(fd) < 0)
		a->ret = -1;
	return NULL;
}

/*
 * Six files streamed at once: the background part workers of all of them
 * together stay within twice upload_concurrency (here 2: at most 4, where
 * each file alone may start 2), and every file lands whole.
 */
START_TEST(test_s3_stream_many_files_bounded)
{
	enum { N = 6 };
	size_t len = 64 << 20;
	char *buf = malloc(len), name[32];
	struct writer_arg args[N];
	pthread_t t[N];
	int most = 0, running = N, joined[N] = {0};

	tm_pattern(buf, 0, len, 97);
	mount_with("upload_concurrency=2," PARTS_8M);
	store_control("POST", "/latency?ms=300", NULL); /* parts stay in flight a while */
	for (int i = 0; i < N; i++) {
		args[i] = (struct writer_arg){.index = i, .buf = buf, .len = len};
		ck_assert_int_eq(pthread_create(&t[i], NULL, writer_thread, &args[i]), 0);
	}
	while (running > 0) {
		int n = upload_threads();

		if (n > most)
			most = n;
		usleep(5000);
		running = 0;
		for (int i = 0; i < N; i++) {
			if (!joined[i])
				joined[i] = pthread_tryjoin_np(t[i], NULL) == 0;
			running += !joined[i];
		}
	}
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(args[i].ret, 0);
	fprintf(stderr, "note: at most %d background part workers at once\n", most);
	ck_assert_msg(most >= 1, "no streaming worker was ever seen");
	ck_assert_msg(most <= 4, "%d streaming workers at once, want at most 4", most);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "many-%d.bin", i);
		stored_is(name, buf, len);
	}
	free(buf);
}
END_TEST

/* Overwriting a few bytes of a large object fetches the blocks touched,
 * not the object, until the save needs the rest. */
struct fsync_arg {
	int fd;
	int ret, err;
};

static void *fsync_thread(void *p)
{
	struct fsync_arg *a = p;

	a->ret = fsync(a->fd);
	a->err = errno;
	return NULL;
}

/* kill -9 while an upload is on the wire: the store keeps the version fsync
 * acknowledged, whole; the unfinished one is recovered on the next mount. */
START_TEST(test_s3_kill_during_upload)
{
	size_t len = (24 << 20) + 77; /* a multipart upload: 4 parts */
	char *v1 = malloc(len), *v2 = malloc(len);
	struct fsync_arg a;
	pthread_t th;
	int status;

	ck_assert(v1 != NULL && v2 != NULL);
	tm_pattern(v1, 0, len, 71);
	tm_pattern(v2, 0, len, 72);
	mount_with(PARTS_8M);
	a.fd = open(tm_path(m.mnt, "inflight.bin"), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(a.fd, 0);
	put_at(a.fd, v1, len, 0);
	ck_assert_int_eq(fsync(a.fd), 0);
	stored_is("inflight.bin", v1, len);

	put_at(a.fd, v2, len, 0);
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	ck_assert_int_eq(store_control("POST", "/latency?ms=400", NULL), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, fsync_thread, &a), 0);
	for (int i = 0; i < 200 && store_counter("ops", "CreateMultipartUpload") < 1; i++)
		usleep(20 * 1000);
	usleep(300 * 1000); /* parts are on the wire */
	ck_assert_int_eq(store_counter("ops", "CompleteMultipartUpload"), 0);
	kill(m.pid, SIGKILL);
	waitpid(m.pid, &status, 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_ne(a.ret, 0); /* never acknowledged */
	close(a.fd);
	tm_unmount(&m);
	ck_assert_int_eq(store_control("POST", "/latency?ms=0", NULL), 0);
	stored_is("inflight.bin", v1, len); /* the acknowledged version, whole */

	mount_with("recover=upload");
	stored_is("inflight.bin", v2, len); /* what was written last is not lost */
	mounted_is("inflight.bin", v2, len);
	free(v1);
	free(v2);
}
END_TEST

START_TEST(test_s3_overwrite_fetches_lazily)
{
	size_t len = 64 << 20;
	char *buf = malloc(len), back[4096];
	long long before, fetched;
	int fd;

	tm_pattern(buf, 0, len, 60);
	ck_assert_int_eq(store_put(&st, "lazy.bin", buf, len), 0);
	mount_with(NULL);
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	before = store_counter("bytes_out", NULL);
	fd = open(tm_path(m.mnt, "lazy.bin"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	memcpy(buf + (40 << 20) + 100, "patched", 7);
	put_at(fd, "patched", 7, (40 << 20) + 100);
	/* A whole aligned block written needs no fetch. */
	memset(buf + (10 << 20), 'z', 1 << 20);
	put_at(fd, buf + (10 << 20), 1 << 20, 10 << 20);
	ck_assert_int_eq(pread(fd, back, sizeof(back), (40 << 20) + 96), (ssize_t)sizeof(back));
	ck_assert(memcmp(back, buf + (40 << 20) + 96, sizeof(back)) == 0);
	fetched = store_counter("bytes_out", NULL) - before;
	ck_assert_msg(fetched < (16 << 20), "%lld bytes fetched for a 7-byte overwrite", fetched);
	ck_assert_int_eq(close(fd), 0);
	stored_is("lazy.bin", buf, len);
	free(buf);
}
END_TEST

/* Renaming an object above the CopyObject limit copies it server-side in
 * parts (UploadPartCopy); the limit is lowered to 5 MiB to test it. */
START_TEST(test_s3_rename_large_in_parts)
{
	size_t len = (12 << 20) + 9; /* three 5 MiB parts */
	char *buf = malloc(len);

	tm_pattern(buf, 0, len, 70);
	ck_assert_int_eq(store_put(&st, "large/src.bin", buf, len), 0);
	mount_with("max_copy_mb=5");
	ck_assert_int_eq(store_control("POST", "/counters/reset", NULL), 0);
	ck_assert_int_eq(rename(tm_path(m.mnt, "large/src.bin"), tm_path(m.mnt, "large/dst.bin")),
	                 0);
	ck_assert_int_eq(store_counter("ops", "UploadPartCopy"), 3);
	ck_assert_int_eq(store_counter("ops", "CopyObject"), 0);
	ck_assert_int_eq(store_counter("ops", "GetObject"), 0); /* no bytes through us */
	ck_assert(!store_has(&st, "large/src.bin"));
	stored_is("large/dst.bin", buf, len);
	mounted_is("large/dst.bin", buf, len);
	free(buf);
}
END_TEST

/* -o unsigned_payload: uploads (PUT and parts) are not hashed, and land
 * intact all the same. */
START_TEST(test_s3_unsigned_payload)
{
	size_t small = (3 << 20) + 1, large = (20 << 20) + 3;
	char *buf = malloc(large);

	mount_with("unsigned_payload," PARTS_8M);
	ck_assert_int_eq(tm_write_pattern(tm_path(m.mnt, "u-small.bin"), small, 80), 0);
	ck_assert_int_eq(tm_write_pattern(tm_path(m.mnt, "u-large.bin"), large, 81), 0);
	tm_pattern(buf, 0, small, 80);
	stored_is("u-small.bin", buf, small);
	tm_pattern(buf, 0, large, 81);
	stored_is("u-large.bin", buf, large);
	free(buf);
}
END_TEST

/* --- limits of the store -------------------------------------------- */

#define MIB ((uint64_t)1 << 20)

/* 512-byte blocks allocated to the one stage file of the mount. */
static long long stage_blocks(void)
{
	char pat[PATH_MAX + 32];
	struct stat sb;
	glob_t g;
	long long blocks = -1;

	snprintf(pat, sizeof(pat), "%s/mount-*/stage-*", m.staging);
	if (glob(pat, 0, NULL, &g) == 0)
		for (size_t i = 0; i < g.gl_pathc; i++)
			if (strstr(g.gl_pathv[i], ".note") == NULL && stat(g.gl_pathv[i], &sb) == 0)
				blocks = (long long)sb.st_blocks;
	globfree(&g);
	return blocks;
}

/* Bytes [off, off + len) of the file at path are zeros but for want at
 * want_off (want may be NULL). */
static void bytes_are(const char *path, uint64_t off, size_t len, const char *want,
                      uint64_t want_off, size_t want_len)
{
	char *buf = malloc(len), *exp = calloc(1, len);
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	for (uint64_t i = 0; want != NULL && i < want_len; i++)
		if (want_off + i >= off && want_off + i < off + len)
			exp[want_off + i - off] = want[i];
	ck_assert_msg(memcmp(buf, exp, len) == 0, "%s: other bytes at %llu", path,
	              (unsigned long long)off);
	close(fd);
	free(buf);
	free(exp);
}

/*
 * A truncate to a large size allocates (almost) nothing in staging, nor on
 * the directory source once saved; bytes written in the middle land where
 * they belong, and appending to the stored sparse file keeps it sparse.
 * On S3 (a smaller size the test server takes quickly) the object holds
 * every byte, zeros and data.
 */
START_TEST(test_truncate_stays_sparse)
{
	const uint64_t size = g_kind == STORE_FS ? 2048 * MIB : 64 * MIB;
	const uint64_t at = size / 2 + 12345;
	const char data[] = "data in the middle of a hole";
	const char *path;
	struct stat sb;
	int fd;

	mount_with(NULL);
	path = tm_path(m.mnt, "sparse.bin");
	fd = open(path, O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	ck_assert_int_le(stage_blocks(), 64);
	ck_assert_int_eq(pwrite(fd, data, sizeof(data), (off_t)at), (ssize_t)sizeof(data));
	store_control("POST", "/counters/reset", NULL);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_le(stage_blocks(), 64);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq((uint64_t)sb.st_size, size);
	bytes_are(path, at - 5000, 10000, data, at, sizeof(data));
	bytes_are(path, size - 4096, 4096, NULL, 0, 0);
	if (g_kind == STORE_FS) {
		ck_assert_int_eq(stat(tm_path(m.src, "sparse.bin"), &sb), 0);
		ck_assert_msg(sb.st_blocks <= 64, "%lld blocks on the source",
		              (long long)sb.st_blocks);
	} else {
		size_t got;
		char *obj = store_get(&st, "sparse.bin", &got);

		ck_assert_ptr_nonnull(obj);
		ck_assert_uint_eq(got, size);
		ck_assert(memcmp(obj + at, data, sizeof(data)) == 0);
		ck_assert_int_ge(store_counter("bytes_in", NULL), (long long)size);
		free(obj);
	}

	/* Appending fetches the stored zeros into staging, as holes. */
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_le(stage_blocks(), 64);
	ck_assert_int_eq(close(fd), 0);
	bytes_are(path, size - 4096, 4096 + sizeof(data), data, size, sizeof(data));
	bytes_are(path, at - 5000, 10000, data, at, sizeof(data));
	if (g_kind == STORE_FS) {
		ck_assert_int_eq(stat(tm_path(m.src, "sparse.bin"), &sb), 0);
		ck_assert_msg(sb.st_blocks <= 64, "%lld blocks on the source after an append",
		              (long long)sb.st_blocks);
	}
}
END_TEST

/* The daemon's log holds needle. */
static int log_has(const char *needle)
{
	size_t len;
	char *log = tm_read_file(tm_path(m.root, "daemon.log"), &len);
	int found = log != NULL && strstr(log, needle) != NULL;

	free(log);
	return found;
}

/*
 * Sizes past -o max_file, or past S3's 5 TiB, give EFBIG for truncate,
 * ftruncate and write, before anything is sent; the file is unchanged.
 */
START_TEST(test_size_limit_efbig)
{
	const char *path;
	int fd;

	mount_with("max_file=64");
	path = tm_path(m.mnt, "limited.bin");
	ck_assert_int_eq(tm_write_file(path, "x", 1), 0);
	ck_assert_int_eq(truncate(path, (off_t)(65 * MIB)), -1);
	ck_assert_int_eq(errno, EFBIG);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(64 * MIB + 1)), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(pwrite(fd, "y", 1, (off_t)(64 * MIB)), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(ftruncate(fd, (off_t)(64 * MIB)), 0); /* the limit itself is fine */
	ck_assert_int_eq(ftruncate(fd, 1), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert(log_has("at most 67108864"));
	tm_unmount(&m);
	if (g_kind != STORE_S3)
		return;

	/* S3 holds objects up to 5 TiB, whatever the options. */
	mount_with(NULL);
	ck_assert_int_eq(truncate(path, (off_t)(5ull << 40) + 1), -1);
	ck_assert_int_eq(errno, EFBIG);
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "y", 1, (off_t)(5ull << 40)), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(close(fd), 0);
	ck_assert(log_has("at most 5497558138880"));
	bytes_are(path, 0, 1, "x", 0, 1);
}
END_TEST

/*
 * Directories with names of 200 bytes under dfd, as deep as a file name
 * of 1 to 201 bytes then makes a key of exactly limit bytes (the S3 test
 * server stores a name with a suffix of 22 bytes); returns the deepest
 * directory's descriptor and sets *name_len to that length.
 */
static int deep_dirs(int dfd, size_t limit, size_t *name_len)
{
	size_t depth = (limit - 1) / 201;
	char comp[201];

	memset(comp, 'd', 200);
	comp[200] = '\0';
	for (size_t i = 0; i < depth; i++) {
		int next;

		comp[0] = (char)('a' + i % 26);
		ck_assert_msg(mkdirat(dfd, comp, 0755) == 0, "mkdir at depth %zu: %s", i,
		              strerror(errno));
		next = openat(dfd, comp, O_RDONLY | O_DIRECTORY);
		ck_assert_int_ge(next, 0);
		close(dfd);
		dfd = next;
	}
	*name_len = limit - depth * 201;
	ck_assert_uint_ge(*name_len, 1);
	ck_assert_uint_le(*name_len, 201);
	return dfd;
}

/*
 * A key of exactly the store's limit is created, written and read back;
 * one byte more is refused with ENAMETOOLONG by create, mkdir, rename and
 * lookup alike, and the log names the limit.  On the directory source the
 * limit is PATH_MAX - 1 (a path of 4,095 bytes, well past 1,024); on S3 it
 * is 1,024 less the mount's prefix.
 */
START_TEST(test_key_length_limit)
{
	size_t limit = g_kind == STORE_FS ? PATH_MAX - 1 : 1024 - strlen(store_s3_prefix(&st));
	char name[260], longer[260], key[PATH_MAX + 300], expect[64];
	size_t len, got;
	struct stat sb;
	char *back;
	int dfd, fd;

	mount_with(NULL);
	dfd = open(m.mnt, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
	dfd = deep_dirs(dfd, limit, &len);
	memset(name, 'f', len);
	name[len] = '\0';
	memset(longer, 'g', len + 1);
	longer[len + 1] = '\0';

	fd = openat(dfd, name, O_WRONLY | O_CREAT, 0644);
	ck_assert_msg(fd >= 0, "create of a %zu-byte key: %s", limit, strerror(errno));
	ck_assert_int_eq(write(fd, "at the limit", 12), 12);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(fstatat(dfd, name, &sb, 0), 0);
	ck_assert_int_eq(sb.st_size, 12);

	ck_assert_int_eq(openat(dfd, longer, O_WRONLY | O_CREAT, 0644), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_int_eq(fstatat(dfd, longer, &sb, 0), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_int_eq(mkdirat(dfd, longer, 0755), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	memset(longer, 'h', len); /* a directory's marker "name/" is one byte more */
	longer[len] = '\0';
	ck_assert_int_eq(mkdirat(dfd, longer, 0755), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	longer[len] = 'h';
	ck_assert_int_eq(renameat(dfd, name, dfd, longer), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	close(dfd);
	snprintf(expect, sizeof(expect), "longer than the %zu bytes", limit);
	ck_assert_msg(log_has(expect), "no \"%s\" in %s/daemon.log", expect, m.root);

	/* The store holds the long key, whole. */
	key[0] = '\0';
	for (size_t i = 0; i < (limit - len) / 201; i++) {
		size_t k = strlen(key);

		key[k] = (char)('a' + i % 26);
		memset(key + k + 1, 'd', 199);
		key[k + 200] = '/';
		key[k + 201] = '\0';
	}
	strcat(key, name);
	ck_assert_uint_eq(strlen(key), limit);
	back = store_get(&st, key, &got);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(got, 12);
	free(back);
}
END_TEST

static Suite *write_suite(enum store_kind kind)
{
	Suite *s = suite_create(kind == STORE_FS ? "write_fs" : "write_s3");
	TCase *tc = tcase_create(kind == STORE_FS ? "fs" : "s3");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_write_semantics);
	tcase_add_test(tc, test_random_writes_match_shadow);
	tcase_add_test(tc, test_rename_and_directories);
	tcase_add_test(tc, test_metadata_stored);
	tcase_add_test(tc, test_parallel_writers);
	tcase_add_test(tc, test_crash_recovery);
	tcase_add_test(tc, test_staging_full_enospc);
	if (kind == STORE_S3) {
		tcase_add_test(tc, test_s3_failed_uploads_kept);
		tcase_add_test(tc, test_s3_multipart_retries_one_part);
		tcase_add_test(tc, test_s3_overwrite_fetches_lazily);
		tcase_add_test(tc, test_s3_kill_during_upload);
		tcase_add_test(tc, test_s3_rename_large_in_parts);
		tcase_add_test(tc, test_s3_unsigned_payload);
		tcase_add_test(tc, test_s3_stream_sends_while_writing);
		tcase_add_test(tc, test_s3_stream_rewrite_and_attrs);
		tcase_add_test(tc, test_s3_stream_truncate_rename);
		tcase_add_test(tc, test_s3_stream_part_fails);
		tcase_add_test(tc, test_s3_stream_many_files_bounded);
	}
	suite_add_tcase(s, tc);
	/* Its own case, so it can be run alone (CK_RUN_CASE=crash). */
	tc = tcase_create("crash");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_crash_recover_upload_quiet);
	suite_add_tcase(s, tc);
	/* What the store can hold (CK_RUN_CASE=limits). */
	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_truncate_stays_sparse);
	tcase_add_test(tc, test_size_limit_efbig);
	tcase_add_test(tc, test_key_length_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return store_run_suites(write_suite, &g_kind, "write");
}
