/*
 * safedir.h - directories chunkfs keeps its own files in (staging,
 * recovery, cache_dir), held by a checked descriptor so that another local
 * user can neither read them nor redirect what is written there.
 *
 * A directory is safe when it is owned by the effective user and not
 * writable by group or others, and every directory above it is owned by
 * root or the effective user and is not writable by group or others
 * unless it is sticky (as /tmp).  Each component is opened with
 * O_NOFOLLOW from "/" and checked on its descriptor, so a component swapped
 * for a symlink fails instead of being followed.  Files inside are made
 * with openat() relative to the descriptor, O_NOFOLLOW and O_EXCL.
 */
#ifndef CHUNKFS_SAFEDIR_H
#define CHUNKFS_SAFEDIR_H

#include <stddef.h>
#include <sys/types.h>

/* safedir_open() flags. */
#define SAFEDIR_CREATE  1 /* create missing directories, 0700 */
#define SAFEDIR_PRIVATE 2 /* the directory must give group and others no access */

/*
 * Open path as a safe directory (see the top of the file); the path itself
 * must not be a symlink (symlinks above it are resolved and the place they
 * lead to is checked).  Returns an O_RDONLY | O_DIRECTORY descriptor, or
 * -errno with one sentence in err saying what is wrong and what to do.
 */
int safedir_open(const char *path, int flags, char *err, size_t errlen);

/*
 * Open the subdirectory name of the safe directory dfd (whose path, for
 * messages, is dir_path), with SAFEDIR_CREATE in flags creating it 0700
 * when missing: it must be a real directory (not a symlink) owned by the
 * effective user with no access for group or others.  fd or -errno (with
 * a sentence in err).
 */
int safedir_sub(int dfd, const char *dir_path, const char *name, int flags, char *err,
                size_t errlen);

/*
 * Replace the trailing "XXXXXX" of name with random characters and create
 * that file in dfd (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, plus flags),
 * or with is_dir that directory (0700; the return is then 0).  fd, 0 or
 * -errno.
 */
int safedir_create_unique(int dfd, char *name, int flags, int is_dir);

/*
 * Create the file name in dfd anew (O_CREAT | O_EXCL | O_NOFOLLOW, 0600,
 * plus flags): one already there (left by a crash, or planted) is removed
 * first, a symlink itself and never what it points to.  fd or -errno.
 */
int safedir_create_fresh(int dfd, const char *name, int flags);

/*
 * Move from_dfd/name to to_dfd/name without replacing a file there
 * (renameat2 RENAME_NOREPLACE; where the filesystem lacks it, a rename
 * after checking the name is free).  0 or -errno (-EEXIST when taken).
 */
int safedir_move(int from_dfd, int to_dfd, const char *name);

/*
 * Open name in dfd for reading without following a symlink or blocking on
 * a FIFO: it must be a regular file owned by the effective user with one
 * link.  fd or -errno (-EPERM for anything else).
 */
int safedir_open_own_file(int dfd, const char *name);

#endif
