/* mount.c - see mount.h. */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIVE 8
static struct test_mount *live[MAX_LIVE];
static int atexit_done;

static void cleanup_at_exit(void)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (live[i] != NULL)
			tm_unmount(live[i]);
	}
}

static void track(struct test_mount *m, int on)
{
	if (!atexit_done) {
		atexit(cleanup_at_exit);
		atexit_done = 1;
	}
	for (int i = 0; i < MAX_LIVE; i++) {
		if (on && live[i] == NULL) {
			live[i] = m;
			return;
		}
		if (!on && live[i] == m)
			live[i] = NULL;
	}
}

int tm_prepare(struct test_mount *m)
{
	const char *base = getenv("CHUNKFS_TEST_TMP");
	char tmpl[PATH_MAX - 64];

	memset(m, 0, sizeof(*m));
	if (base == NULL || *base == '\0')
		base = "/tmp/chunkfs-tests";
	mkdir(base, 0755);
	snprintf(tmpl, sizeof(tmpl), "%s/t-XXXXXX", base);
	if (mkdtemp(tmpl) == NULL)
		return -errno;
	snprintf(m->root, sizeof(m->root), "%s", tmpl);
	snprintf(m->src, sizeof(m->src), "%s/src", tmpl);
	snprintf(m->mnt, sizeof(m->mnt), "%s/mnt", tmpl);
	snprintf(m->staging, sizeof(m->staging), "%s/staging", tmpl);
	if (mkdir(m->src, 0755) < 0 || mkdir(m->mnt, 0755) < 0 || mkdir(m->staging, 0700) < 0)
		return -errno;
	return 0;
}

static int is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char line[8192], dev[4096], mp[4096], type[256];
	int found = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%4095s %4095s %255s", dev, mp, type) == 3 &&
		    strcmp(mp, path) == 0 && strncmp(type, "fuse", 4) == 0)
			found = 1;
	}
	fclose(f);
	return found;
}

int tm_mount(struct test_mount *m, const char *source, const char *opts)
{
	const char *bin = getenv("CHUNKFS_BIN");
	char optbuf[2 * PATH_MAX], logpath[PATH_MAX + 16];
	struct timespec delay = {0, 20 * 1000 * 1000};
	pid_t pid;

	if (bin == NULL || *bin == '\0')
		bin = "./chunkfs";
	snprintf(optbuf, sizeof(optbuf), "staging_dir=%s%s%s", m->staging, opts ? "," : "",
	         opts ? opts : "");
	snprintf(logpath, sizeof(logpath), "%s/daemon.log", m->root);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);

		/* Check kills the test's process group after each test; the
		 * daemon leaves it and is stopped by the parent-death signal
		 * instead, which lets it unmount cleanly. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, "chunkfs", source ? source : m->src, m->mnt, "-f", "-o", optbuf,
		      (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	m->pid = pid;
	track(m, 1);
	for (int i = 0; i < 500; i++) {
		int status;

		if (is_mounted(m->mnt))
			return 0;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			m->pid = 0;
			track(m, 0);
			return -ECHILD;
		}
		nanosleep(&delay, NULL);
	}
	tm_unmount(m);
	return -ETIMEDOUT;
}

static int run_quiet(const char *prog, const char *a1, const char *a2)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp(prog, prog, a1, a2, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tm_unmount(struct test_mount *m)
{
	struct timespec delay = {0, 50 * 1000 * 1000};
	int status = -1;

	if (m->pid == 0)
		return -1;
	for (int i = 0; i < 40 && is_mounted(m->mnt); i++) {
		if (run_quiet("fusermount3", "-u", m->mnt) == 0)
			break;
		nanosleep(&delay, NULL); /* busy: a file may still be closing */
	}
	if (is_mounted(m->mnt))
		run_quiet("fusermount3", "-uz", m->mnt);
	for (int i = 0; i < 200; i++) {
		if (waitpid(m->pid, &status, WNOHANG) == m->pid)
			break;
		if (i == 100)
			kill(m->pid, SIGTERM);
		nanosleep(&delay, NULL);
		if (i == 199) {
			kill(m->pid, SIGKILL);
			waitpid(m->pid, &status, 0);
		}
	}
	m->pid = 0;
	track(m, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tm_start(struct test_mount *m, const char *opts)
{
	int ret = tm_prepare(m);

	return ret < 0 ? ret : tm_mount(m, NULL, opts);
}

void tm_stop(struct test_mount *m)
{
	tm_unmount(m);
	if (m->src[0] != '\0')
		umount2(m->src, MNT_DETACH); /* a test may mount a tmpfs there */
	if (m->root[0] != '\0' && getenv("CHUNKFS_TEST_KEEP") == NULL)
		tm_sh("rm -rf --one-file-system '%s'", m->root);
}

const char *tm_path(const char *dir, const char *rel)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, PATH_MAX, "%s/%s", dir, rel);
	return b;
}

long tm_daemon_peak_rss_kb(const struct test_mount *m)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)m->pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

int tm_sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	status = system(cmd);
	if (status < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void tm_pattern(void *buf, uint64_t off, size_t len, uint32_t seed)
{
	unsigned char *p = buf;
	uint64_t salt = (uint64_t)seed << 40;

	while (len > 0) {
		uint64_t word = mix(salt ^ (off / 8));
		size_t in = off % 8, n = 8 - in < len ? 8 - in : len;

		memcpy(p, (unsigned char *)&word + in, n);
		p += n;
		off += n;
		len -= n;
	}
}

size_t tm_pattern_check(const void *buf, uint64_t off, size_t len, uint32_t seed)
{
	const unsigned char *p = buf;
	unsigned char want[4096];

	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(want) ? len - done : sizeof(want);

		tm_pattern(want, off + done, n, seed);
		if (memcmp(p + done, want, n) != 0) {
			size_t i = 0;

			while (p[done + i] == want[i])
				i++;
			return done + i;
		}
		done += n;
	}
	return len;
}

int tm_write_pattern(const char *path, uint64_t len, uint32_t seed)
{
	size_t chunk = 4 << 20;
	char *buf = malloc(chunk);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), ret = 0;

	if (fd < 0 || buf == NULL) {
		ret = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (uint64_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? (size_t)(len - off) : chunk;
		tm_pattern(buf, off, n, seed);
		if (write(fd, buf, n) != (ssize_t)n) {
			ret = -EIO;
			break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

char *tm_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	size_t cap = 1 << 16, n = 0;
	char *buf = NULL;

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	while (buf != NULL) {
		ssize_t r;

		if (n == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			free(buf);
			buf = NULL;
		} else if (r == 0) {
			break;
		} else {
			n += (size_t)r;
		}
	}
	close(fd);
	if (buf != NULL) {
		char *nb = realloc(buf, n + 1); /* NUL-terminated for text files */
		if (nb == NULL) {
			free(buf);
			return NULL;
		}
		buf = nb;
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

int tm_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, buf, len) != (ssize_t)len)
		ret = -EIO;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	return ret;
}
