/*
 * recovery.h - nothing written is lost: the staging directory's layout,
 * the notes that name a staged file's key, and what a mount does with
 * staged files an earlier mount left behind (recovery.c).
 *
 *   STAGING/mount-XXXXXX/lock        held (flock) while that mount lives
 *   STAGING/mount-XXXXXX/stage-*     files being written, and their .note
 *   STAGING/recovery/stage-*         data that could not be saved, and .note
 *
 * A note is a few "name=value" lines (values %-escaped): the source, the
 * key, the state (dirty, clean or unlinked), whether the data is complete
 * (an overwrite fetched lazily may hold only the written blocks), and the
 * attributes to save with it.
 */
#ifndef CHUNKFS_RECOVERY_H
#define CHUNKFS_RECOVERY_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"

struct chunkfs;

enum recovery_state { NOTE_CLEAN, NOTE_DIRTY, NOTE_UNLINKED };

struct recovery_note {
	char *source; /* the mount's SOURCE, normalized */
	char *key;
	enum recovery_state state;
	int complete;
	struct backend_save_attrs attrs;
};

/* What -o recover= asks for at mount. */
enum recovery_action { RECOVER_KEEP, RECOVER_UPLOAD, RECOVER_DISCARD };

/* Parse "keep", "upload" or "discard".  0 or -EINVAL. */
int recovery_parse_action(const char *s, enum recovery_action *out);

/*
 * Write the note name in the directory dfd atomically: a new 0600 file
 * name.tmp (O_EXCL, O_NOFOLLOW), then a rename.  0 or -errno.
 */
int recovery_note_write(int dfd, const char *name, const struct recovery_note *n);

/*
 * Read the note name in the directory dfd into *n (free with
 * recovery_note_free).  0 or -errno (-EINVAL for a file that is not a
 * note, -EPERM for one that is not a regular file of this user).
 */
int recovery_note_read(int dfd, const char *name, struct recovery_note *n);

void recovery_note_free(struct recovery_note *n);

/*
 * The note's text (recovery_note.c): format writes n to f (0, or -EIO
 * when f reports an error); parse reads f into *n as recovery_note_read()
 * does (free with recovery_note_free): 0, -EINVAL for text that is not a
 * note, -ENOMEM.
 */
int recovery_note_format(FILE *f, const struct recovery_note *n);
int recovery_note_parse(FILE *f, struct recovery_note *n);

/*
 * At mount: make this mount's session directory and lock it, move the
 * unsaved files of dead mounts into the recovery directory, report what
 * waits there for this source, and upload or discard it when asked.
 * Needs fs->staging_dir and its checked descriptor fs->staging_fd.  Sets
 * fs->session_dir, session_fd, recovery_dir, recovery_fd, source_id.  0
 * or -errno (with a sentence on stderr).
 */
int recovery_start(struct chunkfs *fs, enum recovery_action action);

/*
 * At unmount: remove the session directory if nothing was left in it, and
 * close the descriptors recovery_start() opened.
 */
void recovery_stop(struct chunkfs *fs);

#endif
