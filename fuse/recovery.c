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

int recovery_note_write(const char *path, const struct recovery_note *n)
{
	char *tmp = NULL;
	FILE *f;
	int ret = 0;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	f = fopen(tmp, "we");
	if (f == NULL) {
		ret = -errno;
		goto out;
	}
	ret = recovery_note_format(f, n);
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0)
		unlink(tmp);
out:
	free(tmp);
	return ret;
}

int recovery_note_read(const char *path, struct recovery_note *n)
{
	FILE *f = fopen(path, "re");
	int ret;

	if (f == NULL) {
		memset(n, 0, sizeof(*n));
		return -errno;
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

/* Move dir/name (and dir/name.note when note) into the recovery directory. */
static void move_to_recovery(struct chunkfs *fs, const char *dir, const char *name, int note)
{
	char from[PATH_MAX + NAME_MAX + 8], to[PATH_MAX + NAME_MAX + 8];

	snprintf(from, sizeof(from), "%s/%s", dir, name);
	snprintf(to, sizeof(to), "%s/%s", fs->recovery_dir, name);
	if (rename(from, to) < 0) {
		log_error("cannot move %s to %s: %s (left where it is)", from, to, strerror(errno));
		return;
	}
	if (note) {
		snprintf(from, sizeof(from), "%s/%s.note", dir, name);
		snprintf(to, sizeof(to), "%s/%s.note", fs->recovery_dir, name);
		if (rename(from, to) < 0)
			log_error("cannot move %s to %s: %s", from, to, strerror(errno));
	}
}

/* Empty one dead session directory: dirty stages go to recovery. */
static void sweep_session(struct chunkfs *fs, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX + NAME_MAX + 2];

	if (d == NULL)
		return;
	/* Notes first: each decides the fate of its data file. */
	while ((de = readdir(d)) != NULL) {
		struct recovery_note n;
		char name[NAME_MAX + 1];

		if (!ends_with(de->d_name, ".note"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		snprintf(name, sizeof(name), "%.*s", (int)(strlen(de->d_name) - 5), de->d_name);
		if (recovery_note_read(path, &n) == 0 && n.state != NOTE_DIRTY) {
			unlinkat(dirfd(d), name, 0);
			unlinkat(dirfd(d), de->d_name, 0);
		} else {
			move_to_recovery(fs, dir, name, 1);
		}
		recovery_note_free(&n);
	}
	/* Whatever is left without a note is kept too: never delete data. */
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct stat sb;

		if (strncmp(de->d_name, "stage-", 6) != 0 || ends_with(de->d_name, ".tmp"))
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, 0) == 0 && S_ISREG(sb.st_mode) &&
		    sb.st_size > 0)
			move_to_recovery(fs, dir, de->d_name, 0);
		else
			unlinkat(dirfd(d), de->d_name, 0);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' || ends_with(de->d_name, ".tmp"))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	if (rmdir(dir) < 0)
		log_warn("cannot remove %s: %s", dir, strerror(errno));
}

/* Sweep every session directory whose mount is gone. */
static void sweep_dead_sessions(struct chunkfs *fs)
{
	DIR *d = opendir(fs->staging_dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char dir[PATH_MAX], lock[PATH_MAX + 16];
		int fd;

		if (strncmp(de->d_name, "mount-", 6) != 0)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", fs->staging_dir, de->d_name);
		snprintf(lock, sizeof(lock), "%s/lock", dir);
		fd = open(lock, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd); /* a live mount */
			continue;
		}
		sweep_session(fs, dir);
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
}

/* --- what waits in the recovery directory ----------------------------- */

static void remove_pair(struct chunkfs *fs, const char *data)
{
	char path[PATH_MAX + NAME_MAX + 2];

	snprintf(path, sizeof(path), "%s/%s", fs->recovery_dir, data);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s.note", fs->recovery_dir, data);
	unlink(path);
}

/* Save one recovery to the store.  0 or -errno. */
static int upload_one(struct chunkfs *fs, const char *data, const struct recovery_note *n)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct backend_source src;
	struct stat sb;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", fs->recovery_dir, data);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
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

static void handle_recoveries(struct chunkfs *fs, enum recovery_action action)
{
	DIR *d = opendir(fs->recovery_dir);
	struct dirent *de;
	unsigned ours = 0, others = 0, saved = 0, dropped = 0, partial = 0, orphans = 0;
	char first[PATH_MAX] = "";

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct recovery_note n;
		char path[PATH_MAX + NAME_MAX + 2], data[NAME_MAX + 1];
		int ret;

		if (!ends_with(de->d_name, ".note")) {
			snprintf(path, sizeof(path), "%s/%s.note", fs->recovery_dir, de->d_name);
			if (de->d_name[0] != '.' && !ends_with(de->d_name, ".tmp") &&
			    access(path, F_OK) < 0)
				orphans++;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", fs->recovery_dir, de->d_name);
		snprintf(data, sizeof(data), "%.*s", (int)(strlen(de->d_name) - 5), de->d_name);
		if (recovery_note_read(path, &n) < 0) {
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

int recovery_start(struct chunkfs *fs, enum recovery_action action)
{
	char lock[PATH_MAX];

	fs->source_id = normalize_source(fs->opts->source ? fs->opts->source : "");
	if (fs->source_id == NULL ||
	    asprintf(&fs->recovery_dir, "%s/recovery", fs->staging_dir) < 0 ||
	    asprintf(&fs->session_dir, "%s/mount-XXXXXX", fs->staging_dir) < 0)
		return -ENOMEM;
	if (mkdir(fs->recovery_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "chunkfs: cannot create the recovery directory %s: %s\n",
		        fs->recovery_dir, strerror(errno));
		return -errno;
	}
	sweep_dead_sessions(fs);
	if (mkdtemp(fs->session_dir) == NULL) {
		fprintf(stderr, "chunkfs: cannot create a directory in %s: %s\n", fs->staging_dir,
		        strerror(errno));
		return -errno;
	}
	snprintf(lock, sizeof(lock), "%s/lock", fs->session_dir);
	fs->session_lock = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fs->session_lock < 0 || flock(fs->session_lock, LOCK_EX) < 0) {
		fprintf(stderr, "chunkfs: cannot lock %s: %s\n", lock, strerror(errno));
		return -errno;
	}
	handle_recoveries(fs, action);
	return 0;
}

void recovery_stop(struct chunkfs *fs)
{
	char lock[PATH_MAX];

	if (fs->session_dir == NULL || fs->session_lock < 0)
		return;
	snprintf(lock, sizeof(lock), "%s/lock", fs->session_dir);
	unlink(lock);
	if (rmdir(fs->session_dir) < 0) {
		/* Stages of files still open: keep the lock file so a live
		 * mount is not assumed; the next mount sweeps the rest. */
		log_error("unsaved files remain in %s; the next mount moves them to %s",
		          fs->session_dir, fs->recovery_dir);
	}
	close(fs->session_lock);
	fs->session_lock = -1;
}
