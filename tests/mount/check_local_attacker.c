/*
 * check_local_attacker.c - another local user against a mount of a
 * directory source (docs/SECURITY.md): a staging directory anyone may
 * write to or that is not the user's own, symlinks planted in the staging
 * and recovery directories, directories a second user must not enter, and
 * `chunkfs warm` given a FIFO, a name out of the mount or a slow store.
 *
 * The second user is a throwaway system account the test creates with
 * useradd (tests that need it are skipped, with the reason, when it cannot
 * be made); the test acts as it with setpriv.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount.h"
#include "suites.h"

#define OTHER_USER "chunkfs-attacker"

static struct test_mount m;

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
}

static void teardown(void)
{
	tm_stop(&m);
}

static const char *bin(void)
{
	const char *b = getenv("CHUNKFS_BIN");

	return b != NULL && *b != '\0' ? b : "./chunkfs";
}

/* Whether the daemon's log holds text (a fixed string). */
static int log_has(const char *text)
{
	return tm_sh("grep -qF -- '%s' '%s/daemon.log'", text, m.root) == 0;
}

/*
 * The second user, made on first use: its uid and gid, or -1 when it
 * cannot be made (the caller skips, saying why).
 */
static int other_user(uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(OTHER_USER);

	if (pw == NULL && geteuid() == 0 &&
	    tm_sh("useradd --system --no-create-home --shell /usr/sbin/nologin " OTHER_USER
	          " >/dev/null 2>&1") == 0)
		pw = getpwnam(OTHER_USER);
	if (pw == NULL || tm_sh("command -v setpriv >/dev/null") != 0)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

/*
 * Let other users pass through every directory above and at dir (o+x, no
 * more): make check's scratch directory is 0700, so without this the
 * other user would be stopped before it reaches the mount at all.
 */
static void let_others_reach(const char *dir)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s", dir);
	while (path[0] != '\0' && strcmp(path, "/") != 0) {
		char *slash;

		ck_assert_int_eq(stat(path, &sb), 0);
		if (!(sb.st_mode & S_IXOTH) && sb.st_uid == geteuid())
			ck_assert_int_eq(chmod(path, (sb.st_mode & 07777) | S_IXOTH), 0);
		slash = strrchr(path, '/');
		if (slash == NULL)
			break;
		*slash = '\0';
	}
}

/* Run the shell command cmd (no single quotes in it) as uid:gid. */
static int as_user(uid_t uid, gid_t gid, const char *cmd)
{
	return tm_sh("setpriv --reuid=%u --regid=%u --clear-groups sh -c '%s' 2>/dev/null",
	             (unsigned)uid, (unsigned)gid, cmd);
}

/* Write a recovery note for data in dir, naming key of this mount's source. */
static void plant_note(const char *dir, const char *data, const char *key)
{
	char path[PATH_MAX], text[PATH_MAX * 2], src[PATH_MAX];

	ck_assert_ptr_nonnull(realpath(m.src, src));
	snprintf(path, sizeof(path), "%s/%s.note", dir, data);
	snprintf(text, sizeof(text),
	         "chunkfs-stage 1\nsource=%s\nkey=%s\nstate=dirty\ncomplete=1\nmeta=0\n"
	         "mode=420\nuid=0\ngid=0\nmtime=0.0\n",
	         src, key);
	ck_assert_int_eq(tm_write_file(path, text, strlen(text)), 0);
}

/* A staging directory under a parent anyone may write to (not sticky) is
 * refused: the other user could swap it for their own. */
START_TEST(test_staging_parent_writable_refused)
{
	char open_dir[PATH_MAX], opts[PATH_MAX + 32];

	snprintf(open_dir, sizeof(open_dir), "%s/open", m.root);
	ck_assert_int_eq(mkdir(open_dir, 0777), 0);
	ck_assert_int_eq(chmod(open_dir, 0777), 0);
	snprintf(opts, sizeof(opts), "staging_dir=%s/staging", open_dir);
	ck_assert_int_ne(tm_mount(&m, NULL, opts), 0);
	ck_assert_msg(log_has("not sticky"), "no sentence about the parent; see %s/daemon.log",
	              m.root);
	/* The same directory, sticky as /tmp: accepted. */
	ck_assert_int_eq(chmod(open_dir, 01777), 0);
	ck_assert_int_eq(tm_mount(&m, NULL, opts), 0);
}
END_TEST

/* A staging directory that is a symlink, writable by others, or another
 * user's is refused with a sentence. */
START_TEST(test_staging_dir_checked)
{
	char link[PATH_MAX], opts[PATH_MAX + 32];

	snprintf(link, sizeof(link), "%s/staging-link", m.root);
	ck_assert_int_eq(symlink(m.staging, link), 0);
	snprintf(opts, sizeof(opts), "staging_dir=%s", link);
	ck_assert_int_ne(tm_mount(&m, NULL, opts), 0);
	ck_assert(log_has("is a symlink"));

	ck_assert_int_eq(chmod(m.staging, 0777), 0);
	ck_assert_int_ne(tm_mount(&m, NULL, NULL), 0);
	ck_assert(log_has("chmod 700"));

	ck_assert_int_eq(chmod(m.staging, 0700), 0);
	ck_assert_int_eq(chown(m.staging, 65534, 65534), 0);
	ck_assert_int_ne(tm_mount(&m, NULL, NULL), 0);
	ck_assert(log_has("not by this user"));
}
END_TEST

/* A mount-* entry planted as a symlink is never swept: nothing in the
 * directory it points to is deleted. */
START_TEST(test_sweep_ignores_session_symlink)
{
	char victim[PATH_MAX], link[PATH_MAX], path[PATH_MAX];

	snprintf(victim, sizeof(victim), "%s/victim", m.root);
	ck_assert_int_eq(mkdir(victim, 0700), 0);
	ck_assert_int_eq(tm_write_file(tm_path(victim, "precious"), "keep", 4), 0);
	ck_assert_int_eq(tm_write_file(tm_path(victim, "stage-1-x"), "data", 4), 0);
	snprintf(path, sizeof(path), "chunkfs-stage 1\nsource=x\nkey=k\nstate=clean\n");
	ck_assert_int_eq(tm_write_file(tm_path(victim, "stage-1-x.note"), path, strlen(path)), 0);
	snprintf(link, sizeof(link), "%s/mount-evil01", m.staging);
	ck_assert_int_eq(symlink(victim, link), 0);

	ck_assert_int_eq(tm_mount(&m, NULL, NULL), 0);
	ck_assert_int_eq(tm_unmount(&m), 0);
	ck_assert_int_eq(access(tm_path(victim, "precious"), F_OK), 0);
	ck_assert_int_eq(access(tm_path(victim, "stage-1-x"), F_OK), 0);
	ck_assert_int_eq(access(tm_path(victim, "stage-1-x.note"), F_OK), 0);
}
END_TEST

/* recover=upload never sends a planted recovery/stage-* symlink (to a
 * root-only file) or a file another user owns. */
START_TEST(test_recover_upload_skips_planted)
{
	char rec[PATH_MAX], secret[PATH_MAX];

	snprintf(secret, sizeof(secret), "%s/secret", m.root);
	ck_assert_int_eq(tm_write_file(secret, "root only", 9), 0);
	ck_assert_int_eq(chmod(secret, 0600), 0);
	snprintf(rec, sizeof(rec), "%s/recovery", m.staging);
	ck_assert_int_eq(mkdir(rec, 0700), 0);
	ck_assert_int_eq(symlink(secret, tm_path(rec, "stage-1-evil")), 0);
	plant_note(rec, "stage-1-evil", "leaked.txt");
	ck_assert_int_eq(tm_write_file(tm_path(rec, "stage-2-other"), "theirs", 6), 0);
	ck_assert_int_eq(chown(tm_path(rec, "stage-2-other"), 65534, 65534), 0);
	plant_note(rec, "stage-2-other", "other.txt");
	/* A real recovery of ours is still saved. */
	ck_assert_int_eq(tm_write_file(tm_path(rec, "stage-3-ours"), "mine", 4), 0);
	plant_note(rec, "stage-3-ours", "ours.txt");

	ck_assert_int_eq(tm_mount(&m, NULL, "recover=upload"), 0);
	ck_assert_int_eq(access(tm_path(m.src, "leaked.txt"), F_OK), -1);
	ck_assert_int_eq(access(tm_path(m.src, "other.txt"), F_OK), -1);
	ck_assert_int_eq(access(tm_path(m.src, "ours.txt"), F_OK), 0);
	ck_assert(log_has("not a regular file of this user"));
}
END_TEST

/* With allow_other, a 0700 directory of the source stops the other user
 * as it would on the source itself; a 0755 one lets them read. */
START_TEST(test_dir_modes_stop_other_user)
{
	struct stat sb;
	uid_t uid;
	gid_t gid;
	char cmd[PATH_MAX * 2];

	if (other_user(&uid, &gid) < 0) {
		printf("SKIP dir_modes_stop_other_user: cannot create the user " OTHER_USER
		       " (useradd needs root) or no setpriv\n");
		return;
	}
	ck_assert_int_eq(chmod(m.root, 0755), 0); /* the other user reaches mnt/ */
	let_others_reach(m.root);
	ck_assert_int_eq(mkdir(tm_path(m.src, "private"), 0700), 0);
	ck_assert_int_eq(mkdir(tm_path(m.src, "public"), 0755), 0);
	ck_assert_int_eq(tm_write_file(tm_path(m.src, "private/f"), "hidden", 6), 0);
	ck_assert_int_eq(tm_write_file(tm_path(m.src, "public/f"), "shown", 5), 0);
	ck_assert_int_eq(chmod(tm_path(m.src, "private/f"), 0644), 0);
	ck_assert_int_eq(chmod(tm_path(m.src, "public/f"), 0644), 0);
	ck_assert_int_eq(tm_mount(&m, NULL, "allow_other"), 0);

	ck_assert_int_eq(tm_sh("ls -l '%s' >/dev/null", m.mnt), 0); /* readdirplus */
	ck_assert_int_eq(stat(tm_path(m.mnt, "private"), &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0700);
	snprintf(cmd, sizeof(cmd), "cat %s/public/f >/dev/null", m.mnt);
	ck_assert_int_eq(as_user(uid, gid, cmd), 0);
	snprintf(cmd, sizeof(cmd), "cat %s/private/f >/dev/null", m.mnt);
	ck_assert_int_ne(as_user(uid, gid, cmd), 0);
	snprintf(cmd, sizeof(cmd), "ls %s/private >/dev/null", m.mnt);
	ck_assert_int_ne(as_user(uid, gid, cmd), 0);
}
END_TEST

/* Without allow_other the other user gets EACCES, and the mount said what
 * to do about it. */
START_TEST(test_without_allow_other_says_what_to_do)
{
	uid_t uid;
	gid_t gid;
	char cmd[PATH_MAX * 2];

	if (other_user(&uid, &gid) < 0) {
		printf("SKIP without_allow_other: cannot create the user " OTHER_USER "\n");
		return;
	}
	ck_assert_int_eq(chmod(m.root, 0755), 0);
	let_others_reach(m.root);
	ck_assert_int_eq(tm_mount(&m, NULL, "log_level=info"), 0);
	snprintf(cmd, sizeof(cmd), "stat %s >/dev/null", m.mnt);
	ck_assert_int_ne(as_user(uid, gid, cmd), 0);
	ck_assert(log_has("mount with -o allow_other"));
}
END_TEST

/* warm: a manifest name out of the mount is refused without telling
 * anything about the file there; a FIFO manifest is refused at once. */
START_TEST(test_warm_refuses_escape_and_fifo)
{
	char secret[PATH_MAX], manifest[PATH_MAX], out[PATH_MAX], fifo[PATH_MAX];
	const char *text = "{\"chunks\": [{\"file\": \"../secret\", \"size\": 1}]}";
	size_t len;
	char *got;

	snprintf(secret, sizeof(secret), "%s/secret", m.root);
	ck_assert_int_eq(tm_write_file(secret, "1234567", 7), 0);
	snprintf(manifest, sizeof(manifest), "%s/chunk_info.json", m.src);
	ck_assert_int_eq(tm_write_file(manifest, text, strlen(text)), 0);
	snprintf(out, sizeof(out), "%s/warm.out", m.root);
	ck_assert_int_eq(tm_mount(&m, NULL, NULL), 0);
	ck_assert_int_ne(tm_sh("%s warm '%s' --manifest '%s/chunk_info.json' -q >'%s' 2>&1", bin(),
	                       m.mnt, m.mnt, out),
	                 0);
	got = tm_read_file(out, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_ptr_null(strstr(got, "7 bytes"));
	free(got);

	snprintf(fifo, sizeof(fifo), "%s/fifo.json", m.root);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(tm_sh("timeout 10 %s warm '%s' --manifest '%s' -q >/dev/null 2>&1; "
	                       "[ $? -eq 1 ]",
	                       bin(), m.mnt, fifo),
	                 0);
}
END_TEST

/*
 * SIGTERM stops warm within a moment, with a line saying so and status
 * 130, even while a reader waits on a store that answers in 8 s.  (The
 * process itself ends when the kernel gets the mount's answer to the
 * request in progress: a request the daemon has taken cannot be cut off.)
 */
START_TEST(test_warm_stops_at_sigterm)
{
	char res[PATH_MAX], out[PATH_MAX];
	int rc = -1, ms = -1;
	size_t len;
	char *got;

	ck_assert_int_eq(tm_write_pattern(tm_path(m.src, "big.bin"), 4 << 20, 1), 0);
	ck_assert_int_eq(tm_mount(&m, NULL, "fault_delay_ms=8000"), 0);
	snprintf(res, sizeof(res), "%s/warm.res", m.root);
	snprintf(out, sizeof(out), "%s/warm.out", m.root);
	/* The lookup takes 8 s, then the open waits on the store: the
	 * signal comes while a reader is stuck in it. */
	ck_assert_int_eq(tm_sh("%s warm '%s' '%s/big.bin' -q >'%s' 2>&1 & p=$!; sleep 11; "
	                       "s=$(date +%%s%%N); kill -TERM $p; i=0; "
	                       "while ! grep -q stopped '%s' && [ $i -lt 200 ]; do "
	                       "sleep 0.05; i=$((i + 1)); done; e=$(date +%%s%%N); "
	                       "wait $p; echo $? $(( (e - s) / 1000000 )) >'%s'",
	                       bin(), m.mnt, m.mnt, out, out, res),
	                 0);
	got = tm_read_file(res, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(sscanf(got, "%d %d", &rc, &ms), 2);
	free(got);
	ck_assert_int_eq(rc, 130);
	ck_assert_msg(ms < 3000, "warm took %d ms to say it stopped after SIGTERM", ms);
	got = tm_read_file(out, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_ptr_nonnull(strstr(got, "stopped"));
	free(got);
}
END_TEST

/*
 * root's default staging is under /var/lib/chunkfs, made 0700, not under
 * TMPDIR: the name another user squatted in a world-writable TMPDIR does
 * not stop root's mount (finding 12 of issue 13).
 */
START_TEST(test_root_default_staging_private)
{
	char tmp[PATH_MAX], squat[PATH_MAX + 32];
	struct stat sb;

	if (geteuid() != 0) {
		printf("SKIP root default staging: the test needs root\n");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s/tmp", m.root);
	snprintf(squat, sizeof(squat), "%s/chunkfs-staging-0", tmp);
	ck_assert_int_eq(mkdir(tmp, 0700), 0);
	ck_assert_int_eq(chmod(tmp, 01777), 0);
	ck_assert_int_eq(mkdir(squat, 0700), 0);
	ck_assert_int_eq(chown(squat, 12345, 12345), 0);
	ck_assert_msg(tm_sh("TMPDIR='%s' '%s' '%s' '%s' >'%s/daemon.log' 2>&1", tmp, bin(), m.src,
	                    m.mnt, m.root) == 0,
	              "the mount failed; see %s/daemon.log", m.root);
	ck_assert_int_eq(stat("/var/lib/chunkfs", &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0700);
	ck_assert_uint_eq(sb.st_uid, 0);
	ck_assert_int_eq(stat("/var/lib/chunkfs/staging", &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 077, 0);
	/* the mount's session directory is there, none in the squatted one */
	ck_assert_int_eq(tm_sh("ls -d /var/lib/chunkfs/staging/mount-* >/dev/null 2>&1"), 0);
	ck_assert_int_ne(tm_sh("ls -d '%s'/mount-* >/dev/null 2>&1", squat), 0);
	ck_assert_int_eq(tm_sh("fusermount3 -u '%s'", m.mnt), 0);
}
END_TEST

static Suite *local_attacker_suite(void)
{
	Suite *s = suite_create("local_attacker");
	TCase *tc = tcase_create("local_attacker");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_staging_parent_writable_refused);
	tcase_add_test(tc, test_staging_dir_checked);
	tcase_add_test(tc, test_root_default_staging_private);
	tcase_add_test(tc, test_sweep_ignores_session_symlink);
	tcase_add_test(tc, test_recover_upload_skips_planted);
	tcase_add_test(tc, test_dir_modes_stop_other_user);
	tcase_add_test(tc, test_without_allow_other_says_what_to_do);
	tcase_add_test(tc, test_warm_refuses_escape_and_fifo);
	tcase_add_test(tc, test_warm_stops_at_sigterm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return suites_run(local_attacker_suite());
}
