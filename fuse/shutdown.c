/*
 * shutdown.c - signals, lazy unmount and the destroy op; see shutdown.h.
 *
 * One thread takes the signals with sigtimedwait() (they are blocked in
 * every other thread), so nothing runs in signal context.  Its states:
 *
 *   waiting --signal--> draining: mount detached, open files still served
 *   draining --kernel lets go (last file closed)--> the session loop ends
 *   draining --second signal or timeout--> forced: fs->forced_exit set,
 *            the connection aborted (or the process exits at once)
 *
 * The kernel ends the session when a lazily unmounted mount loses its last
 * user.  It may drop that last file's RELEASE, so the destroy op walks
 * every node and finishes the stages left behind: a dirty one is saved,
 * unless the exit was forced (its writer was cut off mid-file), then it is
 * kept on disk and named in the log.
 */
#include "shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chunkfs_i.h"
#include "log.h"
#include "mountinfo.h"

struct shutdown {
	struct fuse_session *se;
	struct chunkfs *fs;
	char *mnt;
	double grace;
	pthread_t thread;
	int stop; /* atomic: the loop ended, the thread should return */
};

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

int shutdown_signals_block(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	/* A shell starts background jobs with SIGINT ignored, and an ignored
	 * signal is dropped even while blocked: take it back.  An ignored
	 * SIGHUP (nohup) stays ignored. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal_set(&set);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int shutdown_lazy_unmount(const char *mnt)
{
	pid_t pid;
	int status;

	if (umount2(mnt, MNT_DETACH) == 0)
		return 0;
	if (errno != EPERM)
		return -errno;
	pid = fork(); /* not root: the setuid helper may */
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("fusermount3", "fusermount3", "-uz", mnt, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

/* Abort the FUSE connection of the mount (device "0:N" in fs->bdi) through
 * the fusectl filesystem; 0 or -errno. */
static int abort_connection(const struct chunkfs *fs)
{
	unsigned major, minor;
	char path[64];
	int fd, ret = 0;

	if (sscanf(fs->bdi, "%u:%u", &major, &minor) != 2)
		return -ENOENT;
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", (major << 20) | minor);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, "1", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

static double elapsed(struct timespec t0)
{
	struct timespec t = chunkfs_now();

	return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

/* The next signal, or 0 when stop was asked for or after 200 ms. */
static int next_signal(struct shutdown *s)
{
	static const struct timespec tick = {0, 200 * 1000 * 1000};
	sigset_t set;
	int sig;

	signal_set(&set);
	sig = sigtimedwait(&set, NULL, &tick);
	if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE))
		return -1;
	return sig > 0 ? sig : 0;
}

static void *shutdown_main(void *arg)
{
	struct shutdown *s = arg;
	char dev[64], type[64];
	struct timespec t0;
	int sig, ret;

	while ((sig = next_signal(s)) == 0)
		;
	if (sig < 0)
		return NULL;
	log_warn("%s: unmounting %s; files still open are served until closed (at most %s%.0f "
	         "s; a second signal stops at once)",
	         strsignal(sig), s->mnt, s->grace > 0 ? "" : "no limit, ", s->grace);
	/* Only our own mount: after an unmount by hand, another mount may
	 * sit on the same directory now. */
	if (mountinfo_find(s->mnt, dev, sizeof(dev), type, sizeof(type)) &&
	    strcmp(dev, s->fs->bdi) == 0)
		ret = shutdown_lazy_unmount(s->mnt);
	else
		ret = 0; /* already unmounted: wait for the open files */
	if (ret < 0)
		log_error("cannot unmount %s: %s; stopping at once", s->mnt, strerror(-ret));
	else
		__atomic_store_n(&s->fs->draining, 1, __ATOMIC_RELEASE);
	t0 = chunkfs_now();
	while (ret == 0) {
		sig = next_signal(s);
		if (sig < 0)
			return NULL; /* the kernel let go: the loop ended */
		if (sig > 0 || (s->grace > 0 && elapsed(t0) >= s->grace))
			break;
	}
	if (ret == 0)
		log_error("%s: files on %s still open after %.0f s; unsaved data stays in %s",
		          sig > 0 ? "second signal" : "timeout", s->mnt, elapsed(t0),
		          s->fs->staging_dir);
	else
		log_error("stopping without unmounting %s; unsaved data stays in %s", s->mnt,
		          s->fs->staging_dir);
	__atomic_store_n(&s->fs->forced_exit, 1, __ATOMIC_RELEASE);
	fuse_session_exit(s->se);
	if (abort_connection(s->fs) < 0)
		_exit(1); /* no fusectl: the kernel aborts when the device closes */
	return NULL;
}

struct shutdown *shutdown_start(struct fuse_session *se, struct chunkfs *fs, const char *mnt,
                                double grace)
{
	struct shutdown *s = calloc(1, sizeof(*s));
	int err;

	if (s == NULL)
		return NULL;
	s->se = se;
	s->fs = fs;
	s->grace = grace;
	s->mnt = strdup(mnt);
	if (s->mnt == NULL)
		goto fail;
	err = pthread_create(&s->thread, NULL, shutdown_main, s);
	if (err != 0) {
		errno = err;
		goto fail;
	}
	return s;
fail:
	free(s->mnt);
	free(s);
	return NULL;
}

void shutdown_stop(struct shutdown *s)
{
	if (s == NULL)
		return;
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(s->thread, NULL);
	free(s->mnt);
	free(s);
}

struct destroy_walk {
	struct chunkfs *fs;
	int save;
};

static void finish_stage(struct node *node, void *ctx)
{
	struct destroy_walk *w = ctx;

	if (node->type == S_IFREG)
		file_stage_shutdown(w->fs, node, w->save);
}

void shutdown_destroy_op(void *userdata)
{
	struct chunkfs *fs = userdata;
	struct destroy_walk w = {fs, !__atomic_load_n(&fs->forced_exit, __ATOMIC_ACQUIRE)};

	inode_foreach(fs->inodes, finish_stage, &w);
	log_info("unmounted %s", fs->opts->mountpoint);
}
