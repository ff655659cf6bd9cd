/*
 * warm.c - `chunkfs warm`; see warm.h.
 *
 * The files are cut into segments of at most 64 MiB; N threads take the
 * next segment from a shared index and read it front to back in 8 MiB
 * preads, so the mount's prefetcher sees sequential reads on every open
 * file.  The main thread prints progress until the threads are done or a
 * signal set the stop flag, which the threads check between preads.
 */
#include "warm.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "chunkfs_i.h"
#include "manifest.h"

#define WARM_PIECE   (8u << 20)
#define WARM_SEGMENT (64ull << 20)

/* The signal flag: set by SIGINT/SIGTERM, read by every thread. */
static volatile sig_atomic_t warm_stop;

/* After a signal, how long the readers may take to finish the read each
 * is in (a slow or stuck store) before warm exits without them. */
#define WARM_STOP_GRACE 1.0

struct warm_file {
	char *path;
	uint64_t size;
};

struct warm_segment {
	size_t file;
	uint64_t off, len;
};

struct warm {
	struct warm_file *files;
	size_t n_files, cap_files;
	struct warm_segment *segs;
	size_t n_segs;
	uint64_t total;
	size_t next_seg;  /* atomic */
	uint64_t done;    /* atomic: bytes read */
	unsigned failed;  /* atomic: files that could not be read */
	unsigned running; /* atomic: threads still working */
};

static void on_signal(int sig)
{
	(void)sig;
	warm_stop = 1;
}

static int add_file(struct warm *w, const char *path, uint64_t size)
{
	if (w->n_files == w->cap_files) {
		size_t cap = w->cap_files ? w->cap_files * 2 : 64;
		struct warm_file *f = realloc(w->files, cap * sizeof(*f));

		if (f == NULL)
			return -ENOMEM;
		w->files = f;
		w->cap_files = cap;
	}
	w->files[w->n_files].path = strdup(path);
	if (w->files[w->n_files].path == NULL)
		return -ENOMEM;
	w->files[w->n_files++].size = size;
	w->total += size;
	return 0;
}

/* nftw() has no context argument: the walk being filled. */
static struct warm *walk_target;
static int walk_error;

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode))
		walk_error = add_file(walk_target, path, (uint64_t)st->st_size);
	else if (type == FTW_DNR || type == FTW_NS)
		fprintf(stderr, "chunkfs warm: cannot read %s; skipped\n", path);
	return walk_error;
}

/* Add PATH (a file or a directory tree) inside the mount. */
static int add_path(struct warm *w, const char *mnt, const char *path)
{
	char full[PATH_MAX];

	if (path[0] == '/')
		snprintf(full, sizeof(full), "%s", path);
	else
		snprintf(full, sizeof(full), "%s/%s", mnt, path);
	walk_target = w;
	walk_error = 0;
	if (nftw(full, walk_one, 32, FTW_PHYS | FTW_MOUNT) != 0) {
		if (walk_error == 0)
			fprintf(stderr, "chunkfs warm: cannot read %s: %s\n", full,
			        strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether full, once its symlinks are resolved, is still below base. */
static int resolves_below(const char *full, const char *base)
{
	char rf[PATH_MAX], rb[PATH_MAX];
	size_t n;

	if (realpath(full, rf) == NULL || realpath(base, rb) == NULL)
		return 0;
	n = strlen(rb);
	return strncmp(rf, rb, n) == 0 && (rf[n] == '/' || strcmp(rb, "/") == 0);
}

/* Add the regular file base/file, named by the manifest, if it exists;
 * a missing file is an error when required.  The manifest's names are
 * relative without ".." (manifest.c); one that leads out of base through
 * a symlink is refused, anything but a regular file skipped.  0 or -1. */
static int add_listed(struct warm *w, const char *manifest, const char *base, const char *file,
                      const struct manifest_chunk *c, int required)
{
	char full[PATH_MAX * 2];
	struct stat st;

	snprintf(full, sizeof(full), "%s/%s", base, file);
	if (lstat(full, &st) < 0) {
		if (!required && errno == ENOENT)
			return 0;
		fprintf(stderr, "chunkfs warm: %s (listed in %s): %s\n", full, manifest,
		        strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "chunkfs warm: %s (listed in %s) is not a regular file; skipped\n",
		        full, manifest);
		return 0;
	}
	if (!resolves_below(full, base)) {
		fprintf(stderr, "chunkfs warm: %s (listed in %s) leads out of %s; refused\n", full,
		        manifest, base);
		return -1;
	}
	if (c != NULL && c->size_exact && c->size != (uint64_t)st.st_size)
		fprintf(stderr, "chunkfs warm: %s has %lld bytes, the manifest says %llu\n", full,
		        (long long)st.st_size, (unsigned long long)c->size);
	return add_file(w, full, (uint64_t)st.st_size) < 0 ? -1 : 0;
}

/*
 * Add the chunk files a chunk_info.json names (manifest.h: the chunk
 * library's format or chunkfs's), in its order, then the config: the
 * manifest's "config", else config.json beside the manifest if there is one.
 */
static int add_manifest(struct warm *w, const char *mnt, const char *manifest)
{
	char base[PATH_MAX], real[PATH_MAX], realmnt[PATH_MAX], err[512];
	struct manifest *m;
	int ret = -1;

	if (manifest_load_file(manifest, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "chunkfs warm: cannot use the manifest %s: %s\n", manifest, err);
		return -1;
	}
	/* Inside the mount: relative to the manifest; outside: to the mount. */
	snprintf(base, sizeof(base), "%s", mnt);
	if (realpath(manifest, real) != NULL && realpath(mnt, realmnt) != NULL &&
	    strncmp(real, realmnt, strlen(realmnt)) == 0 && real[strlen(realmnt)] == '/') {
		*strrchr(real, '/') = '\0';
		snprintf(base, sizeof(base), "%s", real);
	}
	for (size_t i = 0; i < m->n_chunks; i++)
		if (add_listed(w, manifest, base, m->chunks[i].file, &m->chunks[i], 1) < 0)
			goto out;
	if (add_listed(w, manifest, base, m->config ? m->config : "config.json", NULL,
	               m->config != NULL) < 0)
		goto out;
	ret = 0;
out:
	manifest_free(m);
	return ret;
}

static int make_segments(struct warm *w)
{
	size_t n = 0;

	for (size_t i = 0; i < w->n_files; i++)
		n += w->files[i].size
		         ? (size_t)((w->files[i].size + WARM_SEGMENT - 1) / WARM_SEGMENT)
		         : 1;
	w->segs = calloc(n ? n : 1, sizeof(*w->segs));
	if (w->segs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_files; i++) {
		uint64_t off = 0;

		do {
			uint64_t len = w->files[i].size - off;

			if (len > WARM_SEGMENT)
				len = WARM_SEGMENT;
			w->segs[w->n_segs++] = (struct warm_segment){i, off, len};
			off += len;
		} while (off < w->files[i].size);
	}
	return 0;
}

/*
 * Open path for reading without blocking on a FIFO or a device that
 * replaced a file since it was listed: the descriptor, or -1 after saying
 * why.
 */
static int open_regular(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC), flags;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "\nchunkfs warm: cannot open %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "\nchunkfs warm: %s is not a regular file\n", path);
		close(fd);
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	return fd;
}

static void *warm_worker(void *arg)
{
	struct warm *w = arg;
	char *buf = malloc(WARM_PIECE);
	size_t open_file = SIZE_MAX;
	int fd = -1;

	while (buf != NULL && !warm_stop) {
		size_t i = __atomic_fetch_add(&w->next_seg, 1, __ATOMIC_RELAXED);
		struct warm_segment *s;
		uint64_t off;

		if (i >= w->n_segs)
			break;
		s = &w->segs[i];
		if (s->file != open_file) {
			if (fd >= 0)
				close(fd);
			open_file = s->file;
			fd = open_regular(w->files[s->file].path);
			if (fd < 0) {
				__atomic_fetch_add(&w->failed, 1, __ATOMIC_RELAXED);
				continue;
			}
		}
		if (fd < 0)
			continue; /* this file failed to open already */
		for (off = s->off; off < s->off + s->len && !warm_stop;) {
			uint64_t want = s->off + s->len - off;
			ssize_t n = pread(fd, buf, want < WARM_PIECE ? (size_t)want : WARM_PIECE,
			                  (off_t)off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				fprintf(stderr, "\nchunkfs warm: cannot read %s at %llu: %s\n",
				        w->files[s->file].path, (unsigned long long)off,
				        strerror(errno));
				__atomic_fetch_add(&w->failed, 1, __ATOMIC_RELAXED);
				break;
			}
			if (n == 0)
				break; /* shorter than when listed */
			off += (uint64_t)n;
			__atomic_fetch_add(&w->done, (uint64_t)n, __ATOMIC_RELAXED);
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	__atomic_fetch_sub(&w->running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void human(char *out, size_t len, double bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static void progress(const struct warm *w, double t0, int tty, int final)
{
	uint64_t done = __atomic_load_n(&w->done, __ATOMIC_RELAXED);
	double secs = now_s() - t0, rate = secs > 0 ? (double)done / secs : 0;
	double frac = w->total ? (double)done / (double)w->total : 1;
	char d[32], t[32], r[32], eta[32] = "-";

	human(d, sizeof(d), (double)done);
	human(t, sizeof(t), (double)w->total);
	human(r, sizeof(r), rate);
	if (rate > 0 && done < w->total) {
		unsigned long s = (unsigned long)((double)(w->total - done) / rate + 0.5);
		snprintf(eta, sizeof(eta), "%lu:%02lu", s / 60, s % 60);
	}
	if (tty) {
		char bar[31];
		int fill = (int)(frac * 30);

		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r[%s] %3.0f%% %s / %s  %s/s  ETA %s   %s", bar, frac * 100, d, t,
		        r, eta, final ? "\n" : "");
	} else {
		fprintf(stderr, "warm: %s of %s (%.0f%%), %s/s, ETA %s\n", d, t, frac * 100, r,
		        eta);
	}
}

/*
 * Start the reader threads with SIGINT and SIGTERM blocked: a signal then
 * reaches the main thread, which sees it at once, rather than a reader
 * blocked in a read of a slow mount, which would see it only after that
 * read.  Returns how many started.
 */
static unsigned start_readers(struct warm *w, pthread_t *tids, unsigned threads)
{
	sigset_t stop, old;
	unsigned started = 0;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	w->running = threads;
	for (; started < threads; started++) {
		if (pthread_create(&tids[started], NULL, warm_worker, w) != 0) {
			__atomic_fetch_sub(&w->running, threads - started, __ATOMIC_RELEASE);
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

/*
 * Print progress until every reader is done: 0; or -1 when a signal came
 * and the readers did not finish within WARM_STOP_GRACE.
 */
static int wait_readers(struct warm *w, double t0, int tty, int quiet)
{
	double last = t0, stopped = 0;

	while (__atomic_load_n(&w->running, __ATOMIC_ACQUIRE) > 0) {
		struct timespec tick = {0, 50 * 1000 * 1000};

		nanosleep(&tick, NULL);
		if (warm_stop && stopped == 0)
			stopped = now_s();
		if (stopped != 0 && now_s() - stopped > WARM_STOP_GRACE)
			return -1;
		if (!quiet && now_s() - last >= (tty ? 0.25 : 5.0)) {
			progress(w, t0, tty, 0);
			last = now_s();
		}
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: chunkfs warm MOUNTPOINT [PATH...] [--manifest FILE] [-j N] [-q]\n");
}

int warm_command(int argc, char *argv[])
{
	struct warm w = {0};
	const char *mnt = NULL, *manifest = NULL;
	unsigned threads = 8;
	int quiet = 0, n_paths = 0, tty = isatty(2), ret = 1;
	struct sigaction sa = {.sa_handler = on_signal};
	pthread_t *tids = NULL;
	unsigned started = 0;
	double t0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--manifest") == 0 && i + 1 < argc) {
			manifest = argv[++i];
		} else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
			threads = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
			quiet = 1;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage();
			return 0;
		} else if (argv[i][0] == '-') {
			usage();
			return 2;
		} else if (mnt == NULL) {
			mnt = argv[i];
		} else {
			n_paths++;
		}
	}
	if (mnt == NULL || threads == 0 || threads > 256) {
		usage();
		return 2;
	}
	/* From here on Ctrl-C stops cleanly, also while listing a slow mount. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (getxattr(mnt, CHUNKFS_STATS_XATTR, NULL, 0) < 0) {
		fprintf(stderr, "chunkfs warm: %s is not a chunkfs mount (%s)\n", mnt,
		        strerror(errno));
		return warm_stop ? 130 : 1;
	}
	if (manifest != NULL && add_manifest(&w, mnt, manifest) < 0)
		goto out;
	for (int i = 1, seen_mnt = 0; i < argc; i++) {
		if (strcmp(argv[i], "--manifest") == 0 || strcmp(argv[i], "-j") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		if (!seen_mnt++)
			continue;
		if (add_path(&w, mnt, argv[i]) < 0)
			goto out;
	}
	if (manifest == NULL && n_paths == 0 && add_path(&w, mnt, ".") < 0)
		goto out;
	if (make_segments(&w) < 0)
		goto out;

	tids = calloc(threads, sizeof(*tids));
	if (tids == NULL)
		goto out;
	t0 = now_s();
	started = start_readers(&w, tids, threads);
	if (wait_readers(&w, t0, tty, quiet) < 0) {
		/* Readers stuck in a read: the process ends under them. */
		printf("chunkfs warm: stopped by a signal; reads still in progress were "
		       "abandoned\n");
		fflush(stdout);
		_exit(130);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (!quiet && tty)
		progress(&w, t0, tty, 1);
	{
		char d[32];

		human(d, sizeof(d), (double)w.done);
		if (warm_stop) {
			printf("chunkfs warm: stopped; %s of %zu files read (%llu bytes)\n", d,
			       w.n_files, (unsigned long long)w.done);
			ret = 130;
		} else {
			printf("chunkfs warm: %zu files, %s (%llu bytes) in %.1f s%s\n", w.n_files,
			       d, (unsigned long long)w.done, now_s() - t0,
			       w.failed ? "; some could not be read (see above)" : "");
			ret = w.failed ? 1 : 0;
		}
	}
out:
	if (warm_stop && ret != 130) {
		printf("chunkfs warm: stopped before reading\n");
		ret = 130;
	}
	for (size_t i = 0; i < w.n_files; i++)
		free(w.files[i].path);
	free(w.files);
	free(w.segs);
	free(tids);
	return ret;
}
