/*
 * recovery.c - staged data outlives a failed upload, a crash or a kill -9.
 *
 * Each mount works in its own session directory, STAGING/mount-XXXXXX,
 * and holds an flock on its "lock" file for as long as it runs.  A session
 * directory whose lock can be taken belongs to a mount that is gone: at
 * the next mount its stages whose note says "dirty" (written, not known to
 * be saved) move to STAGING/recovery; clean and unlinked ones are deleted.
 * A stage whose final save fails is moved there at once (stage.c).
 *
 * The mount then reports how many recoveries wait for its source and, with
 * -o recover=upload, saves them before serving (a recovery whose original
 * bytes were never fetched, or whose upload fails again, stays), or with
 * -o recover=discard deletes them.  Recoveries of other sources are only
 * counted.
 *
 * Other local users must not steer any of this (docs/SECURITY.md): every
 * file here is reached by a name relative to a checked directory
 * descriptor (fs->staging_fd, recovery_fd, session_fd), never through a
 * symlink.  A session directory that is a symlink or not ours is left
 * alone, a note or data file that is not a regular file of this user with
 * one link is neither read nor uploaded, and files are made 0600 with
 * O_EXCL.
 */
#include "recovery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkfs_i.h"
#include "log.h"
#include "safedir.h"

int recovery_parse_action(const char *s, enum recovery_action *out)
{
	if (s == NULL || strcmp(s, "keep") == 0)
		*out = RECOVER_KEEP;
	else if (strcmp(s, "upload") == 0)
		*out = RECOVER_UPLOAD;
	else if (strcmp(s, "discard") == 0)
		*out = RECOVER_DISCARD;
	else
		return -EINVAL;
	return 0;
}

/* --- notes ------------------------------------------------------------ */

/* Create dfd/tmp anew for writing (safedir_create_fresh). */
static FILE *note_tmp_create(int dfd, const char *tmp)
{
	int fd = safedir_create_fresh(dfd, tmp, O_WRONLY);
	FILE *f;

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	f = fdopen(fd, "w");
	if (f == NULL)
		close(fd);
	return f;
}

int recovery_note_write(int dfd, const char *name, const struct recovery_note *n)
{
	char tmp[NAME_MAX + 8];
	FILE *f;
	int ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = note_tmp_create(dfd, tmp);
	if (f == NULL)
		return -errno;
	ret = recovery_note_format(f, n);
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && renameat(dfd, tmp, dfd, name) < 0)
		ret = -errno;
	if (ret < 0)
		unlinkat(dfd, tmp, 0);
	return ret;
}

int recovery_note_read(int dfd, const char *name, struct recovery_note *n)
{
	int fd = safedir_open_own_file(dfd, name), ret;
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;

	if (f == NULL) {
		memset(n, 0, sizeof(*n));
		if (fd >= 0)
			close(fd);
		return fd < 0 ? fd : -ENOMEM;
	}
	ret = recovery_note_parse(f, n);
	fclose(f);
	return ret;
}

/* --- sweeping dead sessions ------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * Move name (and name.note when note) from the session directory sfd
 * (named dir, for messages) into the recovery directory.  Never over a
 * file already there.
 */
static void move_to_recovery(struct chunkfs *fs, int sfd, const char *dir, const char *name,
                             int note)
{
	char note_name[NAME_MAX + 8];
	int ret = safedir_move(sfd, fs->recovery_fd, name);

	if (ret < 0) {
		log_error("cannot move %s/%s to %s: %s (left where it is)", dir, name,
		          fs->recovery_dir, strerror(-ret));
		return;
	}
	snprintf(note_name, sizeof(note_name), "%s.note", name);
	ret = note ? safedir_move(sfd, fs->recovery_fd, note_name) : 0;
	if (ret < 0)
		log_error("cannot move %s/%s to %s: %s", dir, note_name, fs->recovery_dir,
		          strerror(-ret));
}

/* A directory stream over a copy of dfd (so closedir leaves dfd open). */
static DIR *dir_stream(int dfd)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (d == NULL && fd >= 0)
		close(fd);
	if (d != NULL)
		rewinddir(d);
	return d;
}

/* Sort the notes of a dead session: each decides the fate of its data. */
static void sweep_notes(struct chunkfs *fs, int sfd, const char *dir, DIR *d)
{
	struct dirent *de;

	while ((de = readdir(d)) != NULL) {
		struct recovery_note n;
		char name[NAME_MAX + 1];

		if (!ends_with(de->d_name, ".note"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(strlen(de->d_name) - 5), de->d_name);
		if (recovery_note_read(sfd, de->d_name, &n) == 0 && n.state != NOTE_DIRTY) {
			unlinkat(sfd, name, 0);
			unlinkat(sfd, de->d_name, 0);
		} else {
			move_to_recovery(fs, sfd, dir, name, 1);
		}
		recovery_note_free(&n);
	}
}

/* Empty one dead session directory, name in the staging directory. */
static void sweep_session(struct chunkfs *fs, int sfd, const char *name)
{
	char dir[PATH_MAX];
	DIR *d = dir_stream(sfd);
	struct dirent *de;

	if (d == NULL)
		return;
	snprintf(dir, sizeof(dir), "%s/%s", fs->staging_dir, name);
	sweep_notes(fs, sfd, dir, d);
	/* Whatever is left without a note is kept too: never delete data. */
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct stat sb;

		if (strncmp(de->d_name, "stage-", 6) != 0 || ends_with(de->d_name, ".tmp"))
			continue;
		if (fstatat(sfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && sb.st_size > 0)
			move_to_recovery(fs, sfd, dir, de->d_name, 0);
		else
			unlinkat(sfd, de->d_name, 0);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' || ends_with(de->d_name, ".tmp"))
			unlinkat(sfd, de->d_name, 0);
	closedir(d);
	if (unlinkat(fs->staging_fd, name, AT_REMOVEDIR) < 0)
		log_warn("cannot remove %s: %s", dir, strerror(errno));
}

/*
 * Sweep the session directory name if its mount is gone.  A symlink or a
 * directory that is not this user's own is left alone: sweeping deletes.
 */
static void sweep_if_dead(struct chunkfs *fs, const char *name)
{
	char err[PATH_MAX + 256];
	int sfd = safedir_sub(fs->staging_fd, fs->staging_dir, name, 0, err, sizeof(err));
	int lock;

	if (sfd < 0) {
		log_warn("staging: %s; left alone, not swept", err);
		return;
	}
	lock = openat(sfd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) == 0)
		sweep_session(fs, sfd, name);
	if (lock >= 0)
		close(lock); /* a live mount holds its lock: nothing was done */
	close(sfd);
}

/* Sweep every session directory whose mount is gone. */
static void sweep_dead_sessions(struct chunkfs *fs)
{
	DIR *d = dir_stream(fs->staging_fd);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "mount-", 6) == 0)
			sweep_if_dead(fs, de->d_name);
	closedir(d);
}

/* --- what waits in the recovery directory ----------------------------- */

static void remove_pair(struct chunkfs *fs, const char *data)
{
	char note[NAME_MAX + 8];

	snprintf(note, sizeof(note), "%s.note", data);
	unlinkat(fs->recovery_fd, data, 0);
	unlinkat(fs->recovery_fd, note, 0);
}

/* Save one recovery to the store.  0 or -errno. */
static int upload_one(struct chunkfs *fs, const char *data, const struct recovery_note *n)
{
	struct backend_source src;
	struct stat sb;
	int fd, ret;

	/* Only a file this user wrote: never one another user planted. */
	fd = safedir_open_own_file(fs->recovery_fd, data);
	if (fd == -EPERM)
		log_error("%s/%s is not a regular file of this user (a symlink, a link or "
		          "another owner's); not uploaded",
		          fs->recovery_dir, data);
	if (fd < 0)
		return fd;
	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	src = backend_source_fd(fd, (uint64_t)sb.st_size);
	ret = fs->be->ops->save(fs->be, n->key, &src, &n->attrs, NULL);
	close(fd);
	return ret;
}

/* Data files in the recovery directory (read through d) with no note. */
static unsigned count_orphans(DIR *d)
{
	char note[NAME_MAX + 8];
	struct dirent *de;
	unsigned n = 0;

	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || ends_with(de->d_name, ".note") ||
		    ends_with(de->d_name, ".tmp"))
			continue;
		snprintf(note, sizeof(note), "%s.note", de->d_name);
		if (faccessat(dirfd(d), note, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			n++;
	}
	return n;
}

static void handle_recoveries(struct chunkfs *fs, enum recovery_action action)
{
	DIR *d = dir_stream(fs->recovery_fd);
	struct dirent *de;
	unsigned ours = 0, others = 0, saved = 0, dropped = 0, partial = 0, orphans;
	char first[PATH_MAX] = "";

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct recovery_note n;
		char data[NAME_MAX + 1];
		int ret;

		if (!ends_with(de->d_name, ".note"))
			continue;
		snprintf(data, sizeof(data), "%.*s", (int)(strlen(de->d_name) - 5), de->d_name);
		if (recovery_note_read(fs->recovery_fd, de->d_name, &n) < 0) {
			others++;
			continue;
		}
		if (strcmp(n.source, fs->source_id) != 0) {
			others++;
		} else if (action == RECOVER_DISCARD) {
			log_warn("discarding unsaved data of \"%s\" (%s/%s), as -o recover=discard "
			         "asks",
			         n.key, fs->recovery_dir, data);
			remove_pair(fs, data);
			dropped++;
		} else if (action == RECOVER_UPLOAD && !n.complete) {
			log_error(
			    "cannot recover \"%s\" from %s/%s: it holds only the bytes written, "
			    "not the rest of the original file; kept",
			    n.key, fs->recovery_dir, data);
			partial++;
		} else if (action == RECOVER_UPLOAD) {
			ret = upload_one(fs, data, &n);
			if (ret == 0) {
				log_warn("recovered \"%s\": saved from %s/%s", n.key,
				         fs->recovery_dir, data);
				remove_pair(fs, data);
				saved++;
			} else {
				log_error("recovering \"%s\" from %s/%s failed again: %s; kept",
				          n.key, fs->recovery_dir, data, strerror(-ret));
				ours++;
			}
		} else {
			if (first[0] == '\0')
				snprintf(first, sizeof(first), "\"%s\" in %s/%s", n.key,
				         fs->recovery_dir, data);
			ours++;
		}
		recovery_note_free(&n);
	}
	/* Only now: the pass above removes pairs it saved or discarded,
	 * and a data file's name may have been read before its note's. */
	orphans = count_orphans(d);
	closedir(d);
	if (saved > 0 || dropped > 0)
		log_warn("recovery: %u saved, %u discarded", saved, dropped);
	if (ours + partial > 0 && action == RECOVER_KEEP)
		log_warn("%u unsaved file(s) of %s from an earlier mount wait in %s (first: %s); "
		         "mount with -o recover=upload to save them or -o recover=discard to drop "
		         "them",
		         ours, fs->source_id, fs->recovery_dir, first);
	else if (ours + partial > 0)
		log_warn("%u unsaved file(s) of %s remain in %s", ours + partial, fs->source_id,
		         fs->recovery_dir);
	if (orphans > 0)
		log_warn("%u file(s) in %s have no note (their key is unknown); look at them and "
		         "remove them by hand",
		         orphans, fs->recovery_dir);
	if (others > 0)
		log_info("%u recoveries of other sources are in %s", others, fs->recovery_dir);
}

/* SOURCE as recovery compares it: an absolute path for a directory. */
static char *normalize_source(const char *source)
{
	const char *path = source;
	char *real;

	if (strncmp(source, "s3://", 5) == 0)
		return strdup(source);
	if (strncmp(source, "file://", 7) == 0)
		path = source + 7;
	real = realpath(path, NULL);
	return real ? real : strdup(source);
}

/* Make this mount's session directory and take its lock.  0 or -errno. */
static int session_create(struct chunkfs *fs)
{
	char name[] = "mount-XXXXXX", err[PATH_MAX + 256];
	int ret = safedir_create_unique(fs->staging_fd, name, 0, 1);

	if (ret < 0) {
		fprintf(stderr, "chunkfs: cannot create a directory in %s: %s\n", fs->staging_dir,
		        strerror(-ret));
		return ret;
	}
	if (asprintf(&fs->session_dir, "%s/%s", fs->staging_dir, name) < 0) {
		fs->session_dir = NULL;
		return -ENOMEM;
	}
	fs->session_fd = safedir_sub(fs->staging_fd, fs->staging_dir, name, 0, err, sizeof(err));
	if (fs->session_fd < 0) {
		fprintf(stderr, "chunkfs: %s\n", err);
		return fs->session_fd;
	}
	fs->session_lock = openat(fs->session_fd, "lock",
	                          O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fs->session_lock < 0 || flock(fs->session_lock, LOCK_EX) < 0) {
		ret = -errno;
		fprintf(stderr, "chunkfs: cannot lock %s/lock: %s\n", fs->session_dir,
		        strerror(errno));
		return ret;
	}
	return 0;
}

int recovery_start(struct chunkfs *fs, enum recovery_action action)
{
	char err[PATH_MAX + 256];
	int ret;

	fs->source_id = normalize_source(fs->opts->source ? fs->opts->source : "");
	if (fs->source_id == NULL ||
	    asprintf(&fs->recovery_dir, "%s/recovery", fs->staging_dir) < 0)
		return -ENOMEM;
	fs->recovery_fd = safedir_sub(fs->staging_fd, fs->staging_dir, "recovery", SAFEDIR_CREATE,
	                              err, sizeof(err));
	if (fs->recovery_fd < 0) {
		fprintf(stderr, "chunkfs: cannot use the recovery directory: %s\n", err);
		return fs->recovery_fd;
	}
	sweep_dead_sessions(fs);
	ret = session_create(fs);
	if (ret < 0)
		return ret;
	handle_recoveries(fs, action);
	return 0;
}

void recovery_stop(struct chunkfs *fs)
{
	if (fs->session_dir != NULL && fs->session_lock >= 0) {
		unlinkat(fs->session_fd, "lock", 0);
		if (unlinkat(fs->staging_fd, strrchr(fs->session_dir, '/') + 1, AT_REMOVEDIR) < 0) {
			/* Stages of files still open: keep the lock file so a
			 * live mount is not assumed; the next mount sweeps the
			 * rest. */
			log_error("unsaved files remain in %s; the next mount moves them to %s",
			          fs->session_dir, fs->recovery_dir);
		}
	}
	if (fs->session_lock >= 0)
		close(fs->session_lock);
	if (fs->session_fd >= 0)
		close(fs->session_fd);
	if (fs->recovery_fd >= 0)
		close(fs->recovery_fd);
	fs->session_lock = fs->session_fd = fs->recovery_fd = -1;
}
