/*
 * check_stage.c - stages (fuse/stage.c) and recovery (fuse/recovery.c)
 * over the in-memory backend: lazy fetching of original blocks, notes, and
 * what a mount does with the stages of a dead one.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkfs_i.h"
#include "mem.h"
#include "mount.h"
#include "recovery.h"
#include "suites.h"
#include "testbe.h"

static struct chunkfs fs;
static struct chunkfs_opts opts;
static char dir[] = "/tmp/chunkfs-stage-test.XXXXXX";

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(&fs, 0, sizeof(fs));
	memset(&opts, 0, sizeof(opts));
	opts.source = "s3://bucket/prefix";
	fs.opts = &opts;
	fs.be = mem_backend_create();
	fs.inodes = inode_table_create();
	fs.staging_dir = strdup(dir);
	fs.staging_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fs.staging_fd, 0);
	fs.session_lock = fs.session_fd = fs.recovery_fd = -1;
	ck_assert_int_eq(recovery_start(&fs, RECOVER_KEEP), 0);
}

static void teardown(void)
{
	char cmd[128];

	recovery_stop(&fs);
	free(fs.session_dir);
	free(fs.recovery_dir);
	free(fs.source_id);
	free(fs.staging_dir);
	close(fs.staging_fd);
	inode_table_destroy(fs.inodes);
	backend_destroy(fs.be);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(dir + strlen(dir) - 6, "XXXXXX");
}

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(seed * 131 + i * 7 + i / 4093);
}

static uint64_t reads(void)
{
	struct mem_backend_stats s;

	mem_backend_get_stats(fs.be, &s);
	return s.read;
}

/* Overwrites fetch only the blocks they touch partly; the save fetches the
 * rest; truncation forgets original bytes past the new end. */
START_TEST(test_lazy_blocks)
{
	size_t len = 5 * STAGE_BLOCK + 1234;
	char *want = malloc(len + STAGE_BLOCK), *got = malloc(len + STAGE_BLOCK);
	struct node *root = inode_from_ino(fs.inodes, FUSE_ROOT_ID);
	struct node *n = inode_link(fs.inodes, root, "f", S_IFREG);
	uint64_t r0;

	fill(want, len, 1);
	ck_assert_int_eq(backend_save_buffer(fs.be, "f", want, len, NULL), 0);
	pthread_mutex_lock(&n->lock);
	r0 = reads();
	ck_assert_int_eq(stage_open(&fs, n, 1, NULL), 0);
	ck_assert_uint_eq(reads(), r0); /* nothing fetched at open */
	ck_assert_uint_eq(n->stage->size, len);
	ck_assert(!n->stage->dirty);

	/* A whole block: no fetch. */
	fill(want + STAGE_BLOCK, STAGE_BLOCK, 2);
	ck_assert_int_eq(stage_write(&fs, n, want + STAGE_BLOCK, STAGE_BLOCK, STAGE_BLOCK),
	                 (ssize_t)STAGE_BLOCK);
	ck_assert_uint_eq(reads(), r0);
	ck_assert(n->stage->dirty);
	/* Part of block 3: that block only. */
	memcpy(want + 3 * STAGE_BLOCK + 10, "abc", 3);
	ck_assert_int_eq(stage_write(&fs, n, "abc", 3, 3 * STAGE_BLOCK + 10), 3);
	ck_assert_uint_eq(reads(), r0 + 1);
	/* Reading block 0 fetches it; reading block 3 again does not. */
	ck_assert_int_eq(stage_read(&fs, n, got, 100, 5), 100);
	ck_assert(memcmp(got, want + 5, 100) == 0);
	ck_assert_uint_eq(reads(), r0 + 2);
	ck_assert_int_eq(stage_read(&fs, n, got, 100, 3 * STAGE_BLOCK), 100);
	ck_assert_uint_eq(reads(), r0 + 2);
	ck_assert(!stage_complete(n->stage));

	/* Shrink into block 4, grow again: zeros, not the old bytes. */
	ck_assert_int_eq(stage_truncate(&fs, n, 4 * STAGE_BLOCK + 100), 0);
	ck_assert_int_eq(stage_truncate(&fs, n, len + 5), 0);
	memset(want + 4 * STAGE_BLOCK + 100, 0, len + 5 - (4 * STAGE_BLOCK + 100));
	/* A write past the old end, partly into a block that was original. */
	memcpy(want + 4 * STAGE_BLOCK + 50, "xyz", 3);
	ck_assert_int_eq(stage_write(&fs, n, "xyz", 3, 4 * STAGE_BLOCK + 50), 3);

	ck_assert_int_eq(stage_fill(&fs, n, "f"), 0);
	ck_assert(stage_complete(n->stage));
	ck_assert_int_eq(pread(n->stage->fd, got, len + 5, 0), (ssize_t)(len + 5));
	ck_assert(memcmp(got, want, len + 5) == 0);
	stage_free(n->stage, 0);
	n->stage = NULL;
	pthread_mutex_unlock(&n->lock);
	inode_forget(fs.inodes, n, 1);
	free(want);
	free(got);
}
END_TEST

/* "g" holds 4096 bytes; open it for writing, replace it in the store with
 * len bytes of newer: fetching its original bytes must fail. */
static void assert_fetch_fails_after_replace(const void *newer, size_t len)
{
	struct node *root = inode_from_ino(fs.inodes, FUSE_ROOT_ID);
	struct node *n = inode_link(fs.inodes, root, "g", S_IFREG);

	pthread_mutex_lock(&n->lock);
	ck_assert_int_eq(stage_open(&fs, n, 1, NULL), 0);
	ck_assert_int_eq(backend_save_buffer(fs.be, "g", newer, len, NULL), 0);
	ck_assert_int_eq(stage_write(&fs, n, "x", 1, 10), -EIO);
	ck_assert_int_eq(stage_fill(&fs, n, "g"), -EIO);
	stage_free(n->stage, 0);
	n->stage = NULL;
	pthread_mutex_unlock(&n->lock);
	inode_forget(fs.inodes, n, 1);
}

/* A changed object is never mixed in: the fetch fails. */
START_TEST(test_changed_object_fails_fetch)
{
	char buf[4096];

	fill(buf, sizeof(buf), 3);
	ck_assert_int_eq(backend_save_buffer(fs.be, "g", buf, sizeof(buf), NULL), 0);
	assert_fetch_fails_after_replace("other", 5);
}
END_TEST

/* On a store with constant ETags, an object replaced by a longer one
 * under the same ETag: the original bytes are not taken from the new
 * object (finding 7 of issue 13). */
START_TEST(test_replaced_same_etag_fails_fetch)
{
	struct testbe *t = testbe_create(fs.be, 0);
	struct backend_stat st;
	char buf[8192];

	ck_assert_ptr_nonnull(t);
	t->const_etag = 1;
	fs.be = &t->base; /* the fixture's teardown destroys it, and mem under it */
	fill(buf, 4096, 3);
	ck_assert_int_eq(backend_save_buffer(fs.be, "g", buf, 4096, NULL), 0);
	ck_assert_int_eq(fs.be->ops->stat(fs.be, "g", &st), 0);
	ck_assert_str_eq(st.etag, TESTBE_CONST_ETAG);
	fill(buf, sizeof(buf), 4);
	assert_fetch_fails_after_replace(buf, sizeof(buf));
}
END_TEST

/* Notes keep any key, byte for byte. */
START_TEST(test_note_roundtrip)
{
	const char *key = "dir/we ird%20\nkey\t=é/x";
	struct recovery_note n = {
	    .source = "s3://b/p q", .key = (char *)key, .state = NOTE_DIRTY, .complete = 1};
	struct recovery_note back;
	char path[256];

	n.attrs.meta = BACKEND_META_MODE;
	n.attrs.mode = 0600;
	n.attrs.mtime.tv_sec = 1600000000;
	n.attrs.mtime.tv_nsec = 5;
	snprintf(path, sizeof(path), "%s/x.note", dir);
	ck_assert_int_eq(recovery_note_write(fs.staging_fd, "x.note", &n), 0);
	ck_assert_int_eq(recovery_note_read(fs.staging_fd, "x.note", &back), 0);
	ck_assert_str_eq(back.key, key);
	ck_assert_str_eq(back.source, "s3://b/p q");
	ck_assert_int_eq(back.state, NOTE_DIRTY);
	ck_assert_int_eq(back.complete, 1);
	ck_assert_uint_eq(back.attrs.mode, 0600);
	ck_assert_int_eq(back.attrs.mtime.tv_sec, 1600000000);
	ck_assert_int_eq(back.attrs.mtime.tv_nsec, 5);
	recovery_note_free(&back);
	/* Not a note. */
	ck_assert_int_eq(tm_write_file(path, "junk\n", 5), 0);
	ck_assert_int_eq(recovery_note_read(fs.staging_fd, "x.note", &back), -EINVAL);
}
END_TEST

/* A source longer than the old 8 KiB line buffer: its tail, which says
 * "key=...", was read as a line of its own. */
START_TEST(test_note_long_source)
{
	struct recovery_note n = {.key = "real/key", .state = NOTE_DIRTY};
	struct recovery_note back;
	char *source = malloc(9001);

	ck_assert_ptr_nonnull(source);
	memset(source, 'a', 9000);
	source[9000] = '\0';
	memcpy(source + 8191 - strlen("source="), "key=forged", 10);
	n.source = source;
	ck_assert_int_eq(recovery_note_write(fs.staging_fd, "long.note", &n), 0);
	ck_assert_int_eq(recovery_note_read(fs.staging_fd, "long.note", &back), 0);
	ck_assert_str_eq(back.key, "real/key");
	ck_assert_str_eq(back.source, source);
	recovery_note_free(&back);
	free(source);
}
END_TEST

/* Only %XX with two hex digits is an escape ("%-1" and "% 41" were
 * decoded by sscanf). */
START_TEST(test_note_strict_escapes)
{
	static const char text[] = "chunkfs-stage 1\nsource=s\nkey=a%-1b% 41c%4G%41\n";
	struct recovery_note back;
	char path[256];

	snprintf(path, sizeof(path), "%s/esc.note", dir);
	ck_assert_int_eq(tm_write_file(path, text, sizeof(text) - 1), 0);
	ck_assert_int_eq(recovery_note_read(fs.staging_fd, "esc.note", &back), 0);
	ck_assert_str_eq(back.key, "a%-1b% 41c%4GA");
	recovery_note_free(&back);
}
END_TEST

/* Put a stage with a note into a dead session directory. */
static void dead_stage(const char *session, const char *name, const char *key,
                       enum recovery_state state, int complete, const char *data)
{
	struct recovery_note n = {
	    .source = fs.source_id, .key = (char *)key, .state = state, .complete = complete};
	char path[512];
	FILE *f;
	int dfd = open(session, O_RDONLY | O_DIRECTORY);

	ck_assert_int_ge(dfd, 0);
	snprintf(path, sizeof(path), "%s/%s", session, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(data, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s.note", name);
	ck_assert_int_eq(recovery_note_write(dfd, path, &n), 0);
	close(dfd);
}

/* End this test's mount (recovery_stop) and start another with action. */
static void remount(enum recovery_action action)
{
	recovery_stop(&fs);
	free(fs.session_dir);
	free(fs.recovery_dir);
	free(fs.source_id);
	fs.session_dir = fs.recovery_dir = fs.source_id = NULL;
	ck_assert_int_eq(recovery_start(&fs, action), 0);
}

/* A dead mount's dirty stages go to recovery, the rest is deleted; upload
 * saves the complete ones; a live mount's stages are left alone. */
START_TEST(test_sweep_and_upload)
{
	char dead[512], live[512], path[600];
	char buf[64];
	size_t len;
	int lock;

	snprintf(dead, sizeof(dead), "%s/mount-dead01", dir);
	ck_assert_int_eq(mkdir(dead, 0700), 0);
	dead_stage(dead, "stage-1-a", "saved/me.txt", NOTE_DIRTY, 1, "recover me");
	dead_stage(dead, "stage-2-b", "clean.txt", NOTE_CLEAN, 1, "already saved");
	dead_stage(dead, "stage-3-c", "gone.txt", NOTE_UNLINKED, 1, "unlinked");
	dead_stage(dead, "stage-4-d", "partial.txt", NOTE_DIRTY, 0, "part");
	/* Another mount's session, locked: alive, left alone. */
	snprintf(live, sizeof(live), "%s/mount-live01", dir);
	ck_assert_int_eq(mkdir(live, 0700), 0);
	dead_stage(live, "stage-9-z", "live.txt", NOTE_DIRTY, 1, "live");
	snprintf(path, sizeof(path), "%s/lock", live);
	lock = open(path, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(lock, 0);
	ck_assert_int_eq(flock(lock, LOCK_EX), 0);

	remount(RECOVER_UPLOAD);

	ck_assert_int_eq(access(dead, F_OK), -1); /* swept */
	len = (size_t)backend_read_full(fs.be, "saved/me.txt", 0, buf, sizeof(buf), NULL);
	ck_assert_uint_eq(len, 10);
	ck_assert(memcmp(buf, "recover me", 10) == 0);
	ck_assert_int_eq(fs.be->ops->stat(fs.be, "clean.txt", &(struct backend_stat){0}), -ENOENT);
	ck_assert_int_eq(fs.be->ops->stat(fs.be, "partial.txt", &(struct backend_stat){0}),
	                 -ENOENT);
	/* The partial one waits in recovery, the uploaded one is gone. */
	snprintf(path, sizeof(path), "%s/stage-4-d", fs.recovery_dir);
	ck_assert_int_eq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/stage-1-a", fs.recovery_dir);
	ck_assert_int_eq(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/stage-9-z", live);
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(fs.be->ops->stat(fs.be, "live.txt", &(struct backend_stat){0}), -ENOENT);
	close(lock);
}
END_TEST

/* A file with text in it, made by the test; its content after the run. */
static void write_text(const char *path, const char *text)
{
	ck_assert_int_eq(tm_write_file(path, text, strlen(text)), 0);
}

static int has_text(const char *path, const char *text)
{
	size_t len;
	char *got = tm_read_file(path, &len);
	int same = got != NULL && len == strlen(text) && memcmp(got, text, len) == 0;

	free(got);
	return same;
}

/* A mount-* entry that is a symlink is never swept: what it points to
 * keeps every file. */
START_TEST(test_sweep_skips_symlinked_session)
{
	char victim[512], link[512], path[600];

	snprintf(victim, sizeof(victim), "%s-victim", dir);
	ck_assert_int_eq(mkdir(victim, 0700), 0);
	snprintf(path, sizeof(path), "%s/precious", victim);
	write_text(path, "keep me");
	snprintf(path, sizeof(path), "%s/stage-1-x", victim);
	write_text(path, "stage-like");
	snprintf(link, sizeof(link), "%s/mount-evil01", dir);
	ck_assert_int_eq(symlink(victim, link), 0);

	remount(RECOVER_UPLOAD);
	snprintf(path, sizeof(path), "%s/precious", victim);
	ck_assert(has_text(path, "keep me"));
	snprintf(path, sizeof(path), "%s/stage-1-x", victim);
	ck_assert(has_text(path, "stage-like"));
	ck_assert_int_eq(tm_sh("rm -rf '%s'", victim), 0);
}
END_TEST

/* Put a note for key in the recovery directory, naming data. */
static void recovery_note_for(const char *data, const char *key)
{
	struct recovery_note n = {
	    .source = fs.source_id, .key = (char *)key, .state = NOTE_DIRTY, .complete = 1};
	char note[256];

	snprintf(note, sizeof(note), "%s.note", data);
	ck_assert_int_eq(recovery_note_write(fs.recovery_fd, note, &n), 0);
}

/* recover=upload sends only regular files of this user with one link:
 * not a planted symlink, a hard link, or another user's file. */
START_TEST(test_upload_refuses_planted_files)
{
	char secret[512], path[600];
	struct backend_stat st;

	snprintf(secret, sizeof(secret), "%s/secret", dir);
	write_text(secret, "root only");
	snprintf(path, sizeof(path), "%s/stage-7-sym", fs.recovery_dir);
	ck_assert_int_eq(symlink(secret, path), 0);
	recovery_note_for("stage-7-sym", "leak/symlink");
	snprintf(path, sizeof(path), "%s/stage-8-hard", fs.recovery_dir);
	ck_assert_int_eq(link(secret, path), 0);
	recovery_note_for("stage-8-hard", "leak/hardlink");
	snprintf(path, sizeof(path), "%s/stage-9-other", fs.recovery_dir);
	write_text(path, "someone else's");
	ck_assert_int_eq(chown(path, 65534, 65534), 0);
	recovery_note_for("stage-9-other", "leak/other");

	remount(RECOVER_UPLOAD);
	ck_assert_int_eq(fs.be->ops->stat(fs.be, "leak/symlink", &st), -ENOENT);
	ck_assert_int_eq(fs.be->ops->stat(fs.be, "leak/hardlink", &st), -ENOENT);
	ck_assert_int_eq(fs.be->ops->stat(fs.be, "leak/other", &st), -ENOENT);
	ck_assert(has_text(secret, "root only"));
}
END_TEST

/* A note that is a symlink is not read; a planted NAME.note.tmp symlink
 * does not redirect the note's write: its target keeps its bytes. */
START_TEST(test_note_write_ignores_planted_tmp)
{
	struct recovery_note n = {.source = "s3://b/p", .key = "k", .state = NOTE_DIRTY};
	struct recovery_note back;
	char victim[512], path[600];
	struct stat sb;

	snprintf(victim, sizeof(victim), "%s/victim", dir);
	write_text(victim, "do not truncate");
	snprintf(path, sizeof(path), "%s/a.note.tmp", dir);
	ck_assert_int_eq(symlink(victim, path), 0);
	ck_assert_int_eq(recovery_note_write(fs.staging_fd, "a.note", &n), 0);
	ck_assert(has_text(victim, "do not truncate"));
	ck_assert_int_eq(recovery_note_read(fs.staging_fd, "a.note", &back), 0);
	recovery_note_free(&back);
	snprintf(path, sizeof(path), "%s/a.note", dir);
	ck_assert_int_eq(lstat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0600);
	/* A note that is a symlink to a note is not read. */
	snprintf(path, sizeof(path), "%s/b.note", dir);
	ck_assert_int_eq(symlink("a.note", path), 0);
	ck_assert_int_eq(recovery_note_read(fs.staging_fd, "b.note", &back), -EPERM);
}
END_TEST

static Suite *stage_suite(void)
{
	Suite *s = suite_create("stage");
	TCase *tc = tcase_create("stage");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lazy_blocks);
	tcase_add_test(tc, test_changed_object_fails_fetch);
	tcase_add_test(tc, test_replaced_same_etag_fails_fetch);
	tcase_add_test(tc, test_note_roundtrip);
	tcase_add_test(tc, test_note_long_source);
	tcase_add_test(tc, test_note_strict_escapes);
	tcase_add_test(tc, test_sweep_and_upload);
	tcase_add_test(tc, test_sweep_skips_symlinked_session);
	tcase_add_test(tc, test_upload_refuses_planted_files);
	tcase_add_test(tc, test_note_write_ignores_planted_tmp);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return suites_run(stage_suite());
}
