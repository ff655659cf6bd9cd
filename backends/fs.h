/*
 * fs.h - the filesystem backend: chunks are files under a base directory.
 *
 * Key "a/b/c" is the file base/a/b/c; marker "a/b/" is the directory
 * base/a/b.  Directories are real, so every existing directory reports a
 * marker, and saving "a/b/c" creates base/a and base/a/b.
 *
 * Containment: every path is resolved relative to the base directory with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so no key, symlink or
 * concurrent rename can reach outside it.  An attempt fails with -EPERM
 * and a warning naming the key.  Symlinks that stay inside are followed.
 * Requires Linux 5.6 or later (openat2).
 *
 * Semantics where the filesystem differs from an object store:
 *   - A plain key naming a directory ("a" when base/a is a directory) is not
 *     an object: stat/read/remove give -ENOENT (the directory is the prefix
 *     "a/").  A marker key naming a regular file gives -ENOENT as well.
 *     Only regular files (and symlinks to them) are objects.
 *   - save() of "a/b" when base/a is a regular file fails with -ENOTDIR;
 *     save() of "a" when base/a is a directory fails with -EISDIR.
 *   - Saves write a temporary ".chunkfs-tmp.<12 random chars>" file (mode
 *     0600 until the data is in and the final mode is set) next to the
 *     target, fsync it and rename it over the target.  The file keeps the
 *     source's holes (backend_source.data) and leaves 4 KiB pages of zeros
 *     as holes too, so a sparse file stays sparse.  Names with a segment
 *     starting with ".chunkfs-tmp." are reserved: such keys are rejected with
 *     -EINVAL and such files never appear in list().
 *   - Missing parent directories are created (mode 0777 less the umask;
 *     files get 0666 less the umask unless save attributes say otherwise).
 *     A save that fails afterwards leaves those directories behind, empty.
 *   - remove() of a marker whose directory is not empty succeeds and leaves
 *     the directory.
 *   - rename() of markers renames the directory; it fails with -ENOTEMPTY
 *     when the destination directory exists and is not empty.
 *   - The etag is "<ino>-<size>-<mtime ns>" in hex ("<ino>-d" for a
 *     directory).  A save makes a new inode, so the etag always differs from
 *     the one it replaces.  An older etag can come back only if the
 *     filesystem reuses its inode number for a file of the same size within
 *     one timestamp tick, and a writer that modifies a file in place and
 *     restores its mtime defeats it.
 *
 * Thread safety: no locks; each op works on its own file descriptors.
 */
#ifndef CHUNKFS_FS_H
#define CHUNKFS_FS_H

#include "backend.h"

/*
 * Create a backend over the existing directory base_dir.  Returns NULL with
 * errno set on failure (ENOENT: missing, ENOTDIR: not a directory, ENOSYS:
 * the kernel has no openat2).  The caller frees it with backend_destroy().
 */
struct backend *fs_backend_create(const char *base_dir);

#endif /* CHUNKFS_FS_H */
