/* io.h - whole-buffer positional I/O, retried over EINTR and short counts. */
#ifndef CHUNKFS_IO_H
#define CHUNKFS_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Write all len bytes at off.  0 or -errno. */
int io_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/*
 * io_pwrite_all() that leaves every 4 KiB page of zeros unwritten, for a
 * file that reads zeros there already (a hole, as after ftruncate()), so
 * it stays sparse.  0 or -errno.
 */
int io_pwrite_sparse(int fd, const void *buf, size_t len, off_t off);

/*
 * Read up to len bytes at off, stopping early only at the end of the file.
 * Returns the number of bytes read or -errno.
 */
ssize_t io_pread_all(int fd, void *buf, size_t len, off_t off);

#endif
