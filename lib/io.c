/* io.c - see io.h. */
#include "io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int io_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t io_pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* 1 if the n bytes at p are all zeros. */
static int all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int io_pwrite_sparse(int fd, const void *buf, size_t len, off_t off)
{
	const size_t page = 4096;
	const char *b = buf;
	size_t run = 0; /* [run, at): pages with data, not written yet */

	for (size_t at = 0;; at += page) {
		int done = at >= len;
		size_t n = done ? 0 : len - at < page ? len - at : page;
		int ret;

		if (!done && !all_zero(b + at, n))
			continue;
		if (at > run) {
			ret = io_pwrite_all(fd, b + run, (done ? len : at) - run, off + (off_t)run);
			if (ret < 0)
				return ret;
		}
		if (done)
			return 0;
		run = at + n;
	}
}
