/*
 * main.c - the chunkfs command: parse options, build the backend stack,
 * check the mountpoint, mount, serve, unmount.
 *
 *   chunkfs SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]
 *
 * The backend stack is composed in exactly one place, stack_create(); a
 * failure there is reported as one sentence before anything is mounted.
 */
#include "chunkfs_i.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cache.h"
#include "diskcache.h"
#include "fs.h"
#include "log.h"
#include "prefetch.h"
#include "recovery.h"
#include "s3/s3.h"

#define CHUNKFS_VERSION "0.1.0"

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_RO,
	KEY_MAX_READ,
	KEY_METADATA_STORE,
	KEY_METADATA_REFUSE,
};

#define OPT(t, p)                                                                                  \
	{                                                                                          \
		t, offsetof(struct chunkfs_opts, p), 1                                             \
	}
static const struct fuse_opt option_spec[] = {
    OPT("attr_timeout=%lf", attr_timeout),
    OPT("entry_timeout=%lf", entry_timeout),
    OPT("staging_dir=%s", staging_dir),
    OPT("max_threads=%u", max_threads),
    OPT("read_ahead_kb=%u", read_ahead_kb),
    OPT("log_level=%s", log_level),
    OPT("recover=%s", recover),
    FUSE_OPT_KEY("metadata=store", KEY_METADATA_STORE),
    FUSE_OPT_KEY("metadata=refuse", KEY_METADATA_REFUSE),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("max_read=", KEY_MAX_READ),
    FUSE_OPT_END,
};

static void usage(const char *prog)
{
	printf(
	    "usage: %s SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]\n"
	    "       chunkfs stats MOUNTPOINT   (JSON statistics of a mount)\n"
	    "\n"
	    "Mount chunk storage as a directory.  SOURCE is a directory, a file:// URL\n"
	    "or s3://BUCKET[/PREFIX].\n"
	    "\n"
	    "chunkfs options:\n"
	    "    -o ro                  read-only mount\n"
	    "    -o attr_timeout=SECS   how long the kernel caches attributes (default 1)\n"
	    "    -o entry_timeout=SECS  how long the kernel caches names (default 1)\n"
	    "    -o staging_dir=DIR     where files being written are kept until saved\n"
	    "                           (default: $TMPDIR or /var/tmp, chunkfs-staging-UID);\n"
	    "                           unsaved data is kept in its recovery/ directory\n"
	    "    -o recover=ACTION      unsaved files of earlier mounts of this SOURCE:\n"
	    "                           keep (default: report them), upload, discard\n"
	    "    -o metadata=MODE       store (default): chmod, chown and utimens are kept in\n"
	    "                           the objects (x-amz-meta-mode/uid/gid/mtime, as s3fs);\n"
	    "                           refuse: chmod and chown give EPERM\n"
	    "    -o max_threads=N       FUSE worker threads (default 16)\n"
	    "    -o read_ahead_kb=N     kernel readahead for the mount (default 4096, 0: leave)\n"
	    "    -o log_level=LEVEL     error, warn (default), info or debug\n"
	    "    -f                     stay in the foreground, log to stderr\n"
	    "    -d                     debug: -f, log_level=debug and FUSE request tracing\n"
	    "    -h, --help             this help\n"
	    "    -V, --version          print the version\n"
	    "\n"
	    "Other -o options (allow_other, default_permissions, ...) go to FUSE;\n"
	    "see mount.fuse3(8).  Unmount with: fusermount3 -u MOUNTPOINT\n",
	    prog);
}

/* fuse_opt_parse() fills opts by offset, so opts must come first. */
struct parse_state {
	struct chunkfs_opts opts;
	int help, version;
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_state *ps = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		ps->help = 1;
		return 0;
	case KEY_VERSION:
		ps->version = 1;
		return 0;
	case KEY_FOREGROUND:
		ps->opts.foreground = 1;
		return 0;
	case KEY_DEBUG:
		ps->opts.debug = 1;
		ps->opts.foreground = 1;
		return 1; /* libfuse traces requests with -d */
	case KEY_METADATA_STORE:
	case KEY_METADATA_REFUSE:
		ps->opts.metadata_refuse = key == KEY_METADATA_REFUSE;
		return 0;
	case KEY_RO:
		ps->opts.ro = 1;
		return 1; /* also a mount flag for the kernel */
	case KEY_MAX_READ:
		if (sscanf(arg, "max_read=%u", &ps->opts.max_read) != 1) {
			fprintf(stderr, "chunkfs: bad option \"%s\"\n", arg);
			return -1;
		}
		return 1; /* the kernel needs it too */
	case FUSE_OPT_KEY_NONOPT:
		if (ps->opts.source == NULL) {
			ps->opts.source = strdup(arg);
			return 0;
		}
		if (ps->opts.mountpoint == NULL) {
			ps->opts.mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "chunkfs: unexpected argument \"%s\"\n", arg);
		return -1;
	default:
		return 1;
	}
}

/*
 * Build the backend stack for SOURCE: the one place that composes it.  On
 * failure, prints one sentence naming the cause and returns NULL.
 */
static struct backend *stack_create(const char *source, const struct s3_opts *s3o,
                                    const struct cache_opts *co, int no_cache,
                                    const struct diskcache_opts *dco)
{
	const char *path = source;
	struct backend *be, *cache, *top;
	char err[1024];

	if (strncmp(source, "s3://", 5) == 0) {
		/* Credentials live in this process: keep them out of core dumps
		 * (and away from ptrace by other users). */
		prctl(PR_SET_DUMPABLE, 0);
		be = s3_backend_create(source, s3o, err, sizeof(err));
		if (be == NULL) {
			fprintf(stderr, "chunkfs: cannot mount %s: %s\n", source, err);
			return NULL;
		}
		if (dco->dir != NULL) {
			/* diskcache -> s3: blocks survive remounts.  Same blocks as
			 * the memory cache above it. */
			struct diskcache_opts d = *dco;
			struct backend *disk;

			d.block_size = co->block_size ? co->block_size : CACHE_DEFAULT_BLOCK_SIZE;
			disk = diskcache_create(be, &d);

			if (disk == NULL) {
				fprintf(stderr, "chunkfs: cannot use the disk cache %s: %s\n",
				        dco->dir, strerror(errno));
				backend_destroy(be);
				return NULL;
			}
			be = disk;
		}
		if (no_cache)
			return be;
		/* prefetch -> cache -> [diskcache ->] s3; each layer owns the one
		 * below. */
		cache = cache_create(be, co);
		if (cache == NULL) {
			fprintf(stderr, "chunkfs: cannot set up the read cache: %s\n",
			        strerror(errno));
			backend_destroy(be);
			return NULL;
		}
		top = prefetch_create(cache, NULL);
		if (top == NULL) {
			fprintf(stderr, "chunkfs: cannot set up prefetching: %s\n",
			        strerror(errno));
			backend_destroy(cache);
		}
		return top;
	}
	/* Local files are read by splicing from their descriptors (read_fd);
	 * the kernel's page cache is their cache. */
	if (strncmp(source, "file://", 7) == 0)
		path = source + 7;
	else if (strstr(source, "://") != NULL) {
		fprintf(
		    stderr,
		    "chunkfs: unsupported source \"%s\": give a directory, file:// or s3:// URL\n",
		    source);
		return NULL;
	}
	be = fs_backend_create(path);
	if (be == NULL)
		fprintf(stderr, "chunkfs: cannot use source directory \"%s\": %s\n", path,
		        strerror(errno));
	return be;
}

/*
 * The mount entry for path in /proc/self/mountinfo: copies its device
 * ("0:53") into dev and its filesystem type into type.  1 found, 0 not.
 */
static int find_mount(const char *path, char *dev, size_t dev_len, char *type, size_t type_len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	int found = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char mdev[64], mpoint[PATH_MAX], *sep;

		if (sscanf(line, "%*s %*s %63s %*s %4095s", mdev, mpoint) != 2)
			continue;
		/* mountinfo escapes spaces as \040; compare the unescaped path. */
		for (char *r = mpoint, *w = mpoint;; r++, w++) {
			if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3') {
				*w = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
				r += 3;
			} else {
				*w = *r;
			}
			if (*r == '\0')
				break;
		}
		if (strcmp(mpoint, path) != 0)
			continue;
		snprintf(dev, dev_len, "%s", mdev);
		sep = strstr(line, " - ");
		if (sep == NULL || sscanf(sep + 3, "%63s", type) != 1)
			snprintf(type, type_len, "?");
		found = 1; /* keep going: the last entry is the top mount */
	}
	fclose(f);
	return found;
}

/* Check the mountpoint before mounting; print a sentence and fail if bad. */
static int check_mountpoint(const char *mnt, char *abs, size_t abs_len)
{
	char dev[64], type[64];
	struct stat st;

	if (stat(mnt, &st) < 0) {
		if (errno == ENOTCONN)
			fprintf(stderr,
			        "chunkfs: %s is a dead FUSE mount (\"Transport endpoint is not "
			        "connected\"); clean it up with: fusermount3 -uz %s\n",
			        mnt, mnt);
		else if (errno == ENOENT)
			fprintf(stderr,
			        "chunkfs: mountpoint %s does not exist; create it with: "
			        "mkdir -p %s\n",
			        mnt, mnt);
		else
			fprintf(stderr, "chunkfs: cannot use mountpoint %s: %s\n", mnt,
			        strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "chunkfs: mountpoint %s is not a directory\n", mnt);
		return -1;
	}
	if (realpath(mnt, abs) == NULL || strlen(abs) >= abs_len) {
		fprintf(stderr, "chunkfs: cannot resolve mountpoint %s: %s\n", mnt,
		        strerror(errno));
		return -1;
	}
	if (find_mount(abs, dev, sizeof(dev), type, sizeof(type)) &&
	    strncmp(type, "fuse", 4) == 0) {
		fprintf(stderr,
		        "chunkfs: %s is already mounted (%s); unmount it first with: "
		        "fusermount3 -u %s\n",
		        abs, type, abs);
		return -1;
	}
	return 0;
}

/*
 * The staging directory: the one given, else a per-user directory that
 * outlives the mount (so the next mount finds unsaved data), which must be
 * ours and private.
 */
static char *staging_dir_create(const char *given)
{
	const char *tmp = getenv("TMPDIR");
	struct stat sb;
	char *dir;

	if (given != NULL) {
		if (mkdir(given, 0700) < 0 && errno != EEXIST)
			return NULL;
		return realpath(given, NULL);
	}
	if (asprintf(&dir, "%s/chunkfs-staging-%u", tmp && *tmp ? tmp : "/var/tmp",
	             (unsigned)getuid()) < 0)
		return NULL;
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || lstat(dir, &sb) < 0) {
		free(dir);
		return NULL;
	}
	if (!S_ISDIR(sb.st_mode) || sb.st_uid != getuid() || (sb.st_mode & 077) != 0) {
		fprintf(stderr,
		        "chunkfs: %s is not a private directory of this user; remove it or give "
		        "-o staging_dir=\n",
		        dir);
		free(dir);
		errno = EPERM;
		return NULL;
	}
	return dir;
}

struct chunkfs *chunkfs_create(struct backend *be, const struct chunkfs_opts *opts)
{
	struct chunkfs *fs = calloc(1, sizeof(*fs));
	enum recovery_action action;

	if (fs == NULL)
		return NULL;
	fs->be = be;
	fs->opts = opts;
	fs->uid = getuid();
	fs->gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs->mount_time);
	fs->tune_once = (pthread_once_t)PTHREAD_ONCE_INIT;
	fs->session_lock = -1;
	fs->inodes = inode_table_create();
	if (fs->inodes == NULL)
		goto fail;
	fs->staging_dir = staging_dir_create(opts->staging_dir);
	if (fs->staging_dir == NULL) {
		fprintf(stderr, "chunkfs: cannot create the staging directory %s: %s\n",
		        opts->staging_dir ? opts->staging_dir : "(default)", strerror(errno));
		goto fail;
	}
	if (recovery_parse_action(opts->recover, &action) < 0) {
		fprintf(stderr, "chunkfs: recover must be keep, upload or discard\n");
		goto fail;
	}
	if (recovery_start(fs, action) < 0)
		goto fail;
	return fs;
fail:
	recovery_stop(fs);
	free(fs->session_dir);
	free(fs->recovery_dir);
	free(fs->source_id);
	free(fs->staging_dir);
	inode_table_destroy(fs->inodes);
	free(fs);
	return NULL;
}

void chunkfs_destroy(struct chunkfs *fs)
{
	if (fs == NULL)
		return;
	recovery_stop(fs);
	free(fs->session_dir);
	free(fs->recovery_dir);
	free(fs->source_id);
	free(fs->staging_dir);
	inode_table_destroy(fs->inodes);
	backend_destroy(fs->be);
	free(fs);
}

/* fsname=SOURCE for mount(8) and df, with ',' and '\' escaped for -o. */
static int add_fsname(struct fuse_args *args, const char *source)
{
	size_t len = strlen(source);
	char *opt = malloc(len * 2 + 32), *w;
	int ret;

	if (opt == NULL)
		return -1;
	w = opt + sprintf(opt, "-ofsname=");
	for (const char *r = source; *r; r++) {
		if (*r == ',' || *r == '\\')
			*w++ = '\\';
		*w++ = *r;
	}
	strcpy(w, ",subtype=chunkfs");
	ret = fuse_opt_add_arg(args, opt);
	free(opt);
	return ret;
}

/* `chunkfs stats MOUNTPOINT`: print the statistics document of a mount. */
static int stats_command(int argc, char *argv[])
{
	ssize_t len;
	char *buf;

	if (argc != 3) {
		fprintf(stderr, "usage: chunkfs stats MOUNTPOINT\n");
		return 2;
	}
	len = getxattr(argv[2], CHUNKFS_STATS_XATTR, NULL, 0);
	if (len < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			fprintf(stderr, "chunkfs: %s is not a chunkfs mount\n", argv[2]);
		else
			fprintf(stderr, "chunkfs: cannot read the stats of %s: %s\n", argv[2],
			        strerror(errno));
		return 1;
	}
	buf = malloc((size_t)len + 4096); /* the document may grow meanwhile */
	if (buf == NULL)
		return 1;
	len = getxattr(argv[2], CHUNKFS_STATS_XATTR, buf, (size_t)len + 4096);
	if (len < 0) {
		fprintf(stderr, "chunkfs: cannot read the stats of %s: %s\n", argv[2],
		        strerror(errno));
		free(buf);
		return 1;
	}
	printf("%.*s\n", (int)len, buf);
	free(buf);
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct parse_state ps = {
	    .opts =
	        {
	            .attr_timeout = 1.0,
	            .entry_timeout = 1.0,
	            .max_threads = 16,
	            .read_ahead_kb = 4096,
	        },
	};
	struct chunkfs_opts *opts = &ps.opts;
	struct s3_opts s3o;
	struct cache_opts cache_o;
	struct diskcache_opts disk_o;
	int no_cache = 0;
	struct fuse_loop_config *loop_cfg = NULL;
	struct fuse_session *se = NULL;
	struct chunkfs *fs = NULL;
	struct backend *be = NULL;
	char mnt[PATH_MAX], type[64];
	enum log_level level;
	int ret = 1;

	if (argc >= 2 && strcmp(argv[1], "stats") == 0)
		return stats_command(argc, argv);
	/* Large buffers (cache parts, reads) come and go at a high rate from
	 * many threads; with glibc's adaptive threshold they would pile up in
	 * per-thread arenas and the daemon's memory would outgrow the cache
	 * budget.  A fixed threshold maps them and gives them back on free. */
	mallopt(M_MMAP_THRESHOLD, 2 << 20);
	s3_opts_init(&s3o);
	cache_opts_init(&cache_o);
	diskcache_opts_init(&disk_o);
	if (s3_opts_parse(&args, &s3o) < 0 || cache_opts_parse(&args, &cache_o, &no_cache) < 0 ||
	    diskcache_opts_parse(&args, &disk_o) < 0 ||
	    fuse_opt_parse(&args, &ps, option_spec, opt_proc) < 0)
		goto out;
	if (ps.help) {
		usage(argv[0]);
		printf("\n");
		s3_opts_usage(stdout);
		printf("\n");
		cache_opts_usage(stdout);
		printf("\n");
		diskcache_opts_usage(stdout);
		ret = 0;
		goto out;
	}
	if (ps.version) {
		printf("chunkfs %s (libfuse %s)\n", CHUNKFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (opts->source == NULL || opts->mountpoint == NULL) {
		fprintf(stderr, "chunkfs: need SOURCE and MOUNTPOINT; see chunkfs --help\n");
		goto out;
	}
	if (opts->log_level != NULL && log_parse_level(opts->log_level, &level) < 0) {
		fprintf(stderr, "chunkfs: log_level must be error, warn, info or debug\n");
		goto out;
	}
	log_set_level(opts->debug ? LOG_LEVEL_DEBUG : opts->log_level ? level : LOG_LEVEL_WARN);
	if (opts->max_threads == 0)
		opts->max_threads = 1;
	if (check_mountpoint(opts->mountpoint, mnt, sizeof(mnt)) < 0)
		goto out;
	be = stack_create(opts->source, &s3o, &cache_o, no_cache, &disk_o);
	if (be == NULL)
		goto out;
	fs = chunkfs_create(be, opts);
	if (fs == NULL)
		goto out;
	be = NULL; /* fs owns it now */
	/* Replies to reads are spliced through a pipe, which holds 1 MiB at
	 * most (fs.pipe-max-size).  libfuse sizes the pipe as the reply plus a
	 * page per buffer plus one: 252 pages of data is the most that fits,
	 * beyond that every reply falls back to a copy. */
	if (opts->max_read == 0) {
		opts->max_read = 252 * 4096;
		if (fuse_opt_add_arg(&args, "-omax_read=1032192") < 0)
			goto out;
	}
	if (add_fsname(&args, opts->source) < 0 ||
	    fuse_opt_add_arg(&args, "-odefault_permissions") < 0)
		goto out;

	se = fuse_session_new(&args, &chunkfs_ops, sizeof(chunkfs_ops), fs);
	if (se == NULL)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "chunkfs: mounting %s on %s failed (see the message above)\n",
		        opts->source, mnt);
		goto out_signals;
	}
	find_mount(mnt, fs->bdi, sizeof(fs->bdi), type, sizeof(type));
	if (fuse_daemonize(opts->foreground) != 0)
		goto out_unmount;
	if (!opts->foreground)
		log_use_syslog();
	log_info("mounted %s on %s", opts->source, mnt);

	loop_cfg = fuse_loop_cfg_create();
	if (loop_cfg == NULL)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(loop_cfg, opts->max_threads);
	fuse_loop_cfg_set_idle_threads(loop_cfg, opts->max_threads / 2 + 1);
	ret = fuse_session_loop_mt(se, loop_cfg) == 0 ? 0 : 1;
	fuse_loop_cfg_destroy(loop_cfg);

out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	chunkfs_destroy(fs);
	backend_destroy(be);
	fuse_opt_free_args(&args);
	free(opts->source);
	free(opts->mountpoint);
	free(opts->staging_dir);
	free(opts->log_level);
	free(opts->recover);
	s3_opts_free(&s3o);
	free((char *)disk_o.dir);
	return ret;
}
