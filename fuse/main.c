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
#include <fcntl.h>
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
#include "fault.h"
#include "fs.h"
#include "log.h"
#include "manifest.h"
#include "metrics.h"
#include "mountinfo.h"
#include "opts.h"
#include "recovery.h"
#include "s3/s3.h"
#include "safedir.h"
#include "shutdown.h"
#include "warm.h"

#define CHUNKFS_VERSION "0.1.0"

/* root's default staging directory (its parent is made 0700 too). */
#define CHUNKFS_ROOT_STAGING "/var/lib/chunkfs/staging"

/* What the kernel is told to cache for with -o pin: a year. */
#define PIN_TIMEOUT (365.0 * 24 * 3600)

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_RO,
	KEY_MAX_READ,
	KEY_METADATA_STORE,
	KEY_METADATA_REFUSE,
	KEY_ALLOW_OTHER,
};

#define OPT(t, p)                                                                                  \
	{                                                                                          \
		t, offsetof(struct chunkfs_opts, p), 1                                             \
	}
static const struct fuse_opt option_spec[] = {
    OPT("attr_timeout=%lf", attr_timeout),
    OPT("entry_timeout=%lf", entry_timeout),
    OPT("shutdown_timeout=%lf", shutdown_timeout),
    OPT("metrics_port=%u", metrics_port),
    OPT("staging_dir=%s", staging_dir),
    OPT("max_threads=%u", max_threads),
    OPT("read_ahead_kb=%u", read_ahead_kb),
    OPT("log_level=%s", log_level),
    OPT("fill_max=%u", fill_max_mb),
    OPT("whole_max=%u", whole_max_mb),
    OPT("stream_min=%u", stream_min_mb),
    OPT("max_file=%u", max_file_mb),
    OPT("recover=%s", recover),
    OPT("no_manifest_prefetch", manifest_off),
    OPT("list_ttl=%lf", list_ttl),
    OPT("list_cache=%u", list_cache_mb),
    OPT("list_pages=%u", list_pages),
    OPT("dir_memory=%u", dir_memory_mb),
    OPT("pin", pin),
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
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("max_read=", KEY_MAX_READ),
    FUSE_OPT_END,
};

static void usage(const char *prog)
{
	printf(
	    "usage: %s SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]\n"
	    "       chunkfs stats MOUNTPOINT   (JSON statistics of a mount)\n"
	    "       chunkfs warm MOUNTPOINT [PATH...] [--manifest FILE] [-j N]\n"
	    "                                  (read files once to fill the caches)\n"
	    "\n"
	    "Mount chunk storage as a directory.  SOURCE is a directory, a file:// URL\n"
	    "or s3://BUCKET[/PREFIX].\n"
	    "\n"
	    "chunkfs options:\n"
	    "    -o ro                  read-only mount\n"
	    "    -o attr_timeout=SECS   how long the kernel caches attributes (default 1)\n"
	    "    -o entry_timeout=SECS  how long the kernel caches names (default 1)\n"
	    "    -o staging_dir=DIR     where files being written are kept until saved\n"
	    "                           (default: root's " CHUNKFS_ROOT_STAGING ", others'\n"
	    "                           $TMPDIR or /var/tmp, chunkfs-staging-UID); it must be\n"
	    "                           the user's own, not writable by others\n"
	    "                           unsaved data is kept in its recovery/ directory\n"
	    "    -o recover=ACTION      unsaved files of earlier mounts of this SOURCE:\n"
	    "                           keep (default: report them), upload, discard\n"
	    "    -o metadata=MODE       store (default): chmod, chown and utimens are kept in\n"
	    "                           the objects (x-amz-meta-mode/uid/gid/mtime, as s3fs);\n"
	    "                           refuse: chmod and chown give EPERM; lookups send no\n"
	    "                           HEAD (mode and owner from file_mode=, uid=, gid=)\n"
	    "    -o list_ttl=SECS       how long a directory listing answers lookups of its\n"
	    "                           names, found or not (default 10; 0: list every time)\n"
	    "    -o list_cache=MiB      memory for the listings kept (default 64)\n"
	    "    -o list_pages=N        pages (1000 names each) one directory listing may\n"
	    "                           take before ls gets EIO (default 10000, 0: no bound)\n"
	    "    -o dir_memory=MiB      memory for the listings of open directories; a\n"
	    "                           listing past it gives EIO (default 512, 0: no bound)\n"
	    "    -o pin                 trust what the mount has seen for its whole life:\n"
	    "                           listings, names and attributes never expire (only\n"
	    "                           this mount's own changes count); others' changes\n"
	    "                           show after a remount\n"
	    "    -o max_threads=N       FUSE worker threads (default 16)\n"
	    "    -o read_ahead_kb=N     kernel readahead for the mount (default 4096, 0: leave)\n"
	    "    -o log_level=LEVEL     error, warn (default), info or debug\n"
	    "    -o shutdown_timeout=S  at SIGTERM/SIGINT, how long files still open are\n"
	    "                           served before giving up (default 60, 0: no limit)\n"
	    "    -o metrics_port=PORT   serve Prometheus metrics on 127.0.0.1:PORT/metrics\n"
	    "    -o whole_max=MiB       a file up to this size opened for reading is fetched\n"
	    "                           whole from the first read, in parallel parts\n"
	    "                           (default 256; 0: never; S3 sources)\n"
	    "    -o fill_max=MiB        after random reads of a file up to this size, fetch it\n"
	    "                           whole into the page cache (default 4096, at most half\n"
	    "                           the available memory; 0: never)\n"
	    "    -o stream_min=MiB      a file written front to back starts uploading in\n"
	    "                           parts while still being written once it is this\n"
	    "                           large (default 32; 0: upload only at close/fsync)\n"
	    "    -o max_file=MiB        writes and truncates past this size fail with EFBIG\n"
	    "                           (default: the store's limit, 5 TiB on S3)\n"
	    "    -o no_manifest_prefetch\n"
	    "                           opening a chunk does not start fetching the next\n"
	    "                           one its directory's chunk_info.json lists\n"
	    "    -f                     stay in the foreground, log to stderr\n"
	    "    -d                     debug: -f, log_level=debug and FUSE request tracing\n"
	    "    -h, --help             this help\n"
	    "    -V, --version          print the version\n"
	    "\n"
	    "Other -o options (auto_unmount, fsname=, rw, nosuid, nodev, noatime, ...) go\n"
	    "to FUSE; see mount.fuse3(8).  Unmount with: fusermount3 -u MOUNTPOINT\n"
	    "With mount(8) and /etc/fstab: mount -t fuse.chunkfs SOURCE MOUNTPOINT -o ...\n",
	    prog);
}

/* fuse_opt_parse() fills opts by offset, so opts must come first. */
struct parse_state {
	struct chunkfs_opts opts;
	int help, version;
	int allow_other; /* -o allow_other (passed on to FUSE too) */
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
	case KEY_ALLOW_OTHER:
		ps->allow_other = 1;
		return 1; /* FUSE's option */
	case KEY_MAX_READ:
		if (opts_uint("max_read", arg + strlen("max_read="), &ps->opts.max_read) < 0)
			return -1;
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
/* The store with the fault layer over it when fo is not NULL (testing). */
static struct backend *with_faults(struct backend *be, const struct fault_opts *fo)
{
	struct backend *f;

	if (be == NULL || fo == NULL)
		return be;
	f = fault_create(be, fo);
	if (f == NULL) {
		fprintf(stderr, "chunkfs: cannot set up fault injection: %s\n", strerror(errno));
		backend_destroy(be);
	}
	return f;
}

static struct backend *stack_create(const char *source, const struct s3_opts *s3o,
                                    const struct cache_opts *co, int no_cache,
                                    const struct diskcache_opts *dco, const struct fault_opts *fo)
{
	const char *path = source;
	struct cache_opts c = *co;
	struct backend *be, *cache;
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
		be = with_faults(be, fo);
		if (be == NULL)
			return NULL;
		if (no_cache && dco->dir != NULL) {
			fprintf(stderr, "chunkfs: -o cache_dir needs the block cache; drop "
			                "-o no_cache or -o cache_dir\n");
			backend_destroy(be);
			return NULL;
		}
		if (no_cache)
			return be;
		/* cache -> s3, the cache over memory and the disk tier.  What to
		 * fetch ahead is decided per open file (readpolicy.h). */
		if (dco->dir != NULL) {
			struct diskcache_opts d = *dco;

			d.block_size = c.block_size ? c.block_size : CACHE_DEFAULT_BLOCK_SIZE;
			c.disk = diskcache_create(&d);
			if (c.disk == NULL) {
				fprintf(stderr, "chunkfs: cannot use the disk cache %s: %s\n",
				        dco->dir, strerror(errno));
				backend_destroy(be);
				return NULL;
			}
		}
		cache = cache_create(be, &c);
		if (cache == NULL) {
			fprintf(stderr, "chunkfs: cannot set up the read cache: %s\n",
			        strerror(errno));
			if (c.disk != NULL)
				c.disk->ops->destroy(c.disk);
			backend_destroy(be);
		}
		return cache;
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
	return with_faults(be, fo);
}

/* Check the mountpoint before mounting; print a sentence and fail if bad. */
static int check_mountpoint(const char *mnt, char *abs, size_t abs_len)
{
	char dev[64], type[64];
	struct stat st;

	if (stat(mnt, &st) < 0 && errno == ENOTCONN) {
		/* The daemon of an earlier mount here died (kill -9, OOM): detach
		 * its dead mount and mount over the directory again. */
		int ret = shutdown_lazy_unmount(mnt);

		if (ret < 0) {
			fprintf(stderr,
			        "chunkfs: %s is a dead FUSE mount (\"Transport endpoint is not "
			        "connected\") and unmounting it failed (%s); run: fusermount3 -uz "
			        "%s\n",
			        mnt, strerror(-ret), mnt);
			return -1;
		}
		fprintf(stderr,
		        "chunkfs: %s was a dead FUSE mount (its daemon had died); "
		        "unmounted it\n",
		        mnt);
	}
	if (stat(mnt, &st) < 0) {
		if (errno == ENOTCONN)
			fprintf(stderr,
			        "chunkfs: %s is still a dead FUSE mount (\"Transport endpoint is "
			        "not connected\"); clean it up with: fusermount3 -uz %s\n",
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
	if (mountinfo_find(abs, dev, sizeof(dev), type, sizeof(type)) &&
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
 * The default staging directory, which outlives the mount (so the next
 * mount finds unsaved data): root's in a root-only place, where no other
 * user can squat the name first; another user's in $TMPDIR or /var/tmp.
 * The caller frees.
 */
static char *staging_default(void)
{
	const char *tmp = getenv("TMPDIR");
	char *dir;

	if (geteuid() == 0)
		return strdup(CHUNKFS_ROOT_STAGING);
	if (asprintf(&dir, "%s/chunkfs-staging-%u", tmp && *tmp ? tmp : "/var/tmp",
	             (unsigned)getuid()) < 0)
		return NULL;
	return dir;
}

/*
 * Open the staging directory (the one given, else the default) as a safe
 * directory of this user (safedir.h), creating it: sets fs->staging_dir
 * and fs->staging_fd.  0, or -1 with a sentence on stderr.
 */
static int staging_dir_open(struct chunkfs *fs, const char *given)
{
	char err[PATH_MAX + 256], *real;
	char *dir = given ? strdup(given) : staging_default();

	if (dir == NULL) {
		fprintf(stderr, "chunkfs: out of memory\n");
		return -1;
	}
	fs->staging_fd =
	    safedir_open(dir, SAFEDIR_CREATE | (given ? 0 : SAFEDIR_PRIVATE), err, sizeof(err));
	if (fs->staging_fd < 0) {
		fprintf(stderr, "chunkfs: cannot use the staging directory: %s%s\n", err,
		        given ? "" : "; or give -o staging_dir=");
		free(dir);
		return -1;
	}
	real = realpath(dir, NULL);
	if (real != NULL) {
		free(dir);
		dir = real;
	}
	fs->staging_dir = dir;
	return 0;
}

/*
 * The directory a pinned mount keeps its listings in, under the disk
 * cache's directory: both checked as the disk tier checks its own
 * (safedir.h), listings made 0700.  The descriptor, or -1 (the mount then
 * keeps its listings in memory only, as without cache_dir).
 */
static int listings_dir_open(const char *cache_dir)
{
	char err[PATH_MAX + 256];
	int dfd = safedir_open(cache_dir, 0, err, sizeof(err)), fd = -1;

	if (dfd >= 0)
		fd = safedir_sub(dfd, cache_dir, "listings", SAFEDIR_CREATE, err, sizeof(err));
	if (fd < 0)
		log_warn("%s; listings are kept in memory only", err);
	if (dfd >= 0)
		close(dfd);
	return fd;
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
	if (pagefill_set_init(&fs->fills) < 0) {
		free(fs);
		return NULL;
	}
	fs->session_lock = -1;
	fs->listings_fd = -1;
	fs->staging_fd = fs->session_fd = fs->recovery_fd = -1;
	fs->inodes = inode_table_create();
	if (fs->inodes == NULL)
		goto fail;
	fs->manifests = manifest_cache_create();
	if (fs->manifests == NULL)
		goto fail;
	if (!(be->flags & BACKEND_REAL_DIRS)) {
		/* Local directories are cheap to stat; listings are for stores
		 * without real directories. */
		struct dircache_opts dco = {
		    .ttl = opts->pin ? -1.0 : opts->list_ttl,
		    .max_dirs = DIRCACHE_DEFAULT_MAX_DIRS,
		    .max_entries = DIRCACHE_DEFAULT_MAX_ENTRIES,
		    .max_bytes = (size_t)opts->list_cache_mb << 20,
		    .max_pages = opts->list_pages,
		};

		if (opts->pin && opts->cache_dir != NULL)
			fs->listings_fd = listings_dir_open(opts->cache_dir);
		dco.save_dirfd = fs->listings_fd;

		fs->dirs = dircache_create(be, &dco);
		if (fs->dirs == NULL)
			goto fail;
	}
	if (staging_dir_open(fs, opts->staging_dir) < 0)
		goto fail;
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
	if (fs->staging_fd >= 0)
		close(fs->staging_fd);
	dircache_destroy(fs->dirs);
	if (fs->listings_fd >= 0)
		close(fs->listings_fd);
	inode_table_destroy(fs->inodes);
	manifest_cache_destroy(fs->manifests);
	pagefill_set_destroy(&fs->fills);
	free(fs);
	return NULL;
}

void chunkfs_destroy(struct chunkfs *fs)
{
	if (fs == NULL)
		return;
	pagefill_shutdown(fs);
	recovery_stop(fs);
	free(fs->session_dir);
	free(fs->recovery_dir);
	free(fs->source_id);
	free(fs->staging_dir);
	if (fs->staging_fd >= 0)
		close(fs->staging_fd);
	dircache_destroy(fs->dirs);
	if (fs->listings_fd >= 0)
		close(fs->listings_fd);
	inode_table_destroy(fs->inodes);
	manifest_cache_destroy(fs->manifests);
	pagefill_set_destroy(&fs->fills);
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

/*
 * What open files fetch ahead: whole objects up to whole_max, ahead of the
 * reads by at most half the memory cache (its other half serves readers
 * of other files and the kernel's readahead).
 */
static void policy_opts_set(struct chunkfs_opts *opts, const struct cache_opts *co)
{
	struct readpolicy_opts *p = &opts->policy;

	readpolicy_opts_init(p);
	p->whole_max = (uint64_t)opts->whole_max_mb << 20;
	p->ahead_max = (co->mem_budget ? co->mem_budget : CACHE_DEFAULT_MEM_BUDGET) / 2;
	if (p->max_window > p->ahead_max)
		p->max_window = p->ahead_max;
	p->round = co->part_size ? co->part_size : CACHE_DEFAULT_PART_SIZE;
	if (opts->fill_max_mb == 0)
		p->random_seeks = 0;
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
	            .shutdown_timeout = 60,
	            .fill_max_mb = 4096,
	            .whole_max_mb = 256,
	            .stream_min_mb = 32,
	            .list_ttl = DIRCACHE_DEFAULT_TTL,
	            .list_cache_mb = DIRCACHE_DEFAULT_MAX_BYTES >> 20,
	            .list_pages = DIRCACHE_DEFAULT_MAX_PAGES,
	            .dir_memory_mb = DIRCACHE_DEFAULT_SNAP_MB,
	        },
	};
	struct chunkfs_opts *opts = &ps.opts;
	struct s3_opts s3o;
	struct cache_opts cache_o;
	struct diskcache_opts disk_o;
	struct fault_opts fault_o;
	int faults = 0;
	int no_cache = 0;
	struct fuse_loop_config *loop_cfg = NULL;
	struct fuse_session *se = NULL;
	struct shutdown *sd = NULL;
	struct metrics *metrics = NULL;
	struct chunkfs *fs = NULL;
	struct backend *be = NULL;
	char mnt[PATH_MAX], type[64];
	enum log_level level;
	int ret = 1;

	if (argc >= 2 && strcmp(argv[1], "stats") == 0)
		return stats_command(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "warm") == 0)
		return warm_command(argc - 1, argv + 1);
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
	    access_opts_parse(&args, &opts->access) < 0 ||
	    fault_opts_parse(&args, &fault_o, &faults) < 0 ||
	    opts_parse(&args, &ps, option_spec, opt_proc) < 0)
		goto out;
	if (ps.help) {
		usage(argv[0]);
		printf("\n");
		s3_opts_usage(stdout);
		printf("\n");
		cache_opts_usage(stdout);
		printf("\n");
		diskcache_opts_usage(stdout);
		printf("\n");
		access_opts_usage(stdout);
		printf("\n");
		fault_opts_usage(stdout);
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
	if (opts->pin) {
		/* The kernel keeps names and attributes as long as we do. */
		opts->attr_timeout = PIN_TIMEOUT;
		opts->entry_timeout = PIN_TIMEOUT;
	}
	if (check_mountpoint(opts->mountpoint, mnt, sizeof(mnt)) < 0)
		goto out;
	policy_opts_set(opts, &cache_o);
	opts->cache_dir = disk_o.dir;
	be =
	    stack_create(opts->source, &s3o, &cache_o, no_cache, &disk_o, faults ? &fault_o : NULL);
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

	/* The port is taken before mounting.  One that is not a port fails
	 * the mount; one another process holds costs only the metrics. */
	if (opts->metrics_port != 0) {
		metrics = metrics_open(fs, opts->metrics_port);
		if (metrics == NULL && errno == EINVAL)
			goto out; /* metrics_open() said why */
	}
	/* From here on signals are taken by the shutdown thread only. */
	if (shutdown_signals_block() < 0)
		goto out;
	se = fuse_session_new(&args, &chunkfs_ops, sizeof(chunkfs_ops), fs);
	if (se == NULL)
		goto out;
	fs->se = se;
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "chunkfs: mounting %s on %s failed (see the message above)%s\n",
		        opts->source, mnt,
		        ps.allow_other && geteuid() != 0
		            ? "; -o allow_other for a user other than root needs the line "
		              "user_allow_other in /etc/fuse.conf"
		            : "");
		goto out_session;
	}
	if (!ps.allow_other)
		log_info("only uid %u can use %s: other users, root too, get \"Permission "
		         "denied\"; to let them in, mount with -o allow_other (for a user other "
		         "than root, /etc/fuse.conf needs user_allow_other)",
		         (unsigned)geteuid(), mnt);
	mountinfo_find(mnt, fs->bdi, sizeof(fs->bdi), type, sizeof(type));
	if (fuse_daemonize(opts->foreground) != 0)
		goto out_unmount;
	if (!opts->foreground)
		log_use_syslog();
	log_info("mounted %s on %s", opts->source, mnt);
	sd = shutdown_start(se, fs, mnt, opts->shutdown_timeout);
	if (sd == NULL) {
		log_error("cannot start the shutdown thread: %s", strerror(errno));
		goto out_unmount;
	}
	if (metrics != NULL && metrics_run(metrics) < 0) {
		log_error("cannot start the metrics thread: %s", strerror(errno));
		goto out_unmount;
	}

	loop_cfg = fuse_loop_cfg_create();
	if (loop_cfg == NULL)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(loop_cfg, opts->max_threads);
	fuse_loop_cfg_set_idle_threads(loop_cfg, opts->max_threads / 2 + 1);
	ret = fuse_session_loop_mt(se, loop_cfg);
	if ((ret == ECONNABORTED || ret == -ECONNABORTED) &&
	    __atomic_load_n(&fs->draining, __ATOMIC_ACQUIRE)) {
		/* After our lazy unmount the kernel may end the connection
		 * this way rather than with ENODEV: the end we asked for.
		 * Whether anything was left unsaved is counted below. */
		log_info("the kernel closed the connection of %s after the unmount", mnt);
		ret = 0;
	} else if (ret != 0) {
		log_error("the FUSE session of %s ended with an error: %s", mnt,
		          strerror(ret < 0 ? -ret : ret));
	}
	/* Cut off open files (second signal, shutdown_timeout): not a clean end. */
	ret = ret == 0 && !__atomic_load_n(&fs->forced_exit, __ATOMIC_ACQUIRE) ? 0 : 1;
	fuse_loop_cfg_destroy(loop_cfg);

out_unmount:
	metrics_stop(metrics);
	metrics = NULL;
	shutdown_stop(sd);
	fuse_session_unmount(se);
	pagefill_shutdown(fs); /* stores fail now: nothing can block them */
out_session:
	fuse_session_destroy(se); /* runs the destroy op if the kernel did not */
	if (__atomic_load_n(&fs->kept_at_exit, __ATOMIC_RELAXED) > 0)
		ret = 1; /* data left in staging is not a clean end */
out:
	metrics_stop(metrics);
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
