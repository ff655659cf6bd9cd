/*
 * check_diskcache.c - the disk tier of the block cache
 * (backends/diskcache.c), through the cache that owns it.
 *
 * The stack under test is cache (a memory budget of one block, and the
 * disk tier) -> borrow -> mem.  "borrow" is the test layer of
 * tests/support/testbe.h over a mem backend it does not own (so the mem
 * store outlives a destroy of the cache: a "remount" is destroy + create
 * on the same directory); on request it sleeps after each read so
 * concurrent readers overlap.  The mem backend's counters
 * (mem_backend_get_stats) prove how many reads reached the store.  Each
 * test has its own scratch directory; the cache directory is made by the
 * tier.  Every case ends with the tier's and the cache's invariant checks.
 */
#include "backend.h"
#include "cache.h"
#include "diskcache.h"
#include "mem.h"
#include "mount.h"
#include "suites.h"
#include "testbe.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024u
#define BS  (64 * KIB)

/* --- fixture ------------------------------------------------------------ */

static struct backend *g_mem;   /* the store; outlives the layer */
static struct testbe *g_borrow; /* the layer's inner backend */
static struct backend *g_dc;    /* the cache over the tier under test */
static struct tier *g_tier;     /* the tier, owned by g_dc */
static char g_tmp[512];         /* scratch directory of the test */
static char g_dir[600];         /* the cache directory */
static char g_mnt[600];         /* a tmpfs mounted by the test, or "" */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Create the tier in dir with block size BS, limit max_bytes and min_free
 * percent, and a cache over g_mem that owns it, with memory for mem_blocks
 * blocks.  NULL with errno on failure. */
static struct backend *open_dc_mem(const char *dir, uint64_t max_bytes, int min_free,
                                   unsigned mem_blocks)
{
	struct diskcache_opts o;
	struct cache_opts co;
	struct testbe *w = testbe_create(g_mem, TESTBE_BORROW | TESTBE_COPY);
	struct backend *b;

	ck_assert_ptr_nonnull(w);
	diskcache_opts_init(&o);
	o.dir = dir;
	o.block_size = BS;
	o.max_bytes = max_bytes;
	o.min_free_percent = min_free;
	cache_opts_init(&co);
	co.block_size = BS;
	co.mem_budget = (uint64_t)mem_blocks * BS;
	co.disk = diskcache_create(&o);
	if (co.disk == NULL) {
		int e = errno;

		backend_destroy(&w->base);
		errno = e;
		return NULL;
	}
	b = cache_create(&w->base, &co);
	ck_assert_ptr_nonnull(b);
	g_borrow = w;
	g_tier = co.disk;
	return b;
}

static struct backend *open_dc(const char *dir, uint64_t max_bytes, int min_free)
{
	return open_dc_mem(dir, max_bytes, min_free, 1);
}

static void close_dc(void)
{
	diskcache_debug_check(g_tier);
	cache_debug_check(g_dc);
	backend_destroy(g_dc);
	g_dc = NULL;
	g_tier = NULL;
}

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(g_tmp, sizeof(g_tmp), "%s/check_diskcache.XXXXXX", t != NULL && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(g_tmp));
	snprintf(g_dir, sizeof(g_dir), "%s/cache", g_tmp);
	g_mnt[0] = '\0';
	g_mem = mem_backend_create();
	ck_assert_ptr_nonnull(g_mem);
	g_dc = NULL;
}

static void teardown(void)
{
	if (g_dc != NULL)
		close_dc();
	backend_destroy(g_mem);
	if (g_mnt[0] != '\0')
		umount2(g_mnt, MNT_DETACH);
	rm_rf(g_tmp);
}

/* Destroy and create the layer again on the same directory. */
static void remount(uint64_t max_bytes)
{
	close_dc();
	g_dc = open_dc(g_dir, max_bytes, -1);
	ck_assert_msg(g_dc != NULL, "reopen: %s", strerror(errno));
}

/* --- helpers ------------------------------------------------------------ */

/* Save size pattern bytes under key, straight into the store (bypassing the
 * layer) when direct, else through it. */
static void put_pat(const char *key, size_t size, unsigned seed, int direct,
                    struct backend_stat *st)
{
	ck_assert_int_eq(testbe_put_pattern(direct ? g_mem : g_dc, key, size, seed, st), 0);
}

/* Read [off, off + len) through the layer and check it against the
 * pattern of an object of size bytes.  Returns what read returned. */
static ssize_t read_check(const char *key, uint64_t off, size_t len, uint64_t size, unsigned seed,
                          const char *etag)
{
	unsigned char *buf = malloc(len ? len : 1);
	ssize_t n;
	size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len), good;

	ck_assert_ptr_nonnull(buf);
	n = backend_read_full(g_dc, key, off, buf, len, etag);
	ck_assert_msg(n == (ssize_t)want, "read %s at %" PRIu64 "+%zu: %zd, want %zu", key, off,
	              len, n, want);
	good = tm_pattern_check(buf, off, want, seed);
	ck_assert_msg(good == want, "byte %" PRIu64 " of %s differs", off + good, key);
	free(buf);
	return n;
}

static uint64_t mem_reads(void)
{
	struct mem_backend_stats s;

	mem_backend_get_stats(g_mem, &s);
	return s.read;
}

static uint64_t mem_bytes(void)
{
	struct mem_backend_stats s;

	mem_backend_get_stats(g_mem, &s);
	return s.bytes_read;
}

static struct diskcache_stats dstats(void)
{
	struct diskcache_stats s;

	diskcache_get_stats(g_tier, &s);
	return s;
}

/* The path of block index of (key, etag) in dir. */
static void block_path(char *out, size_t size, const char *dir, const char *key, const char *etag,
                       uint64_t index)
{
	unsigned char h[32];
	unsigned int hl = 32;
	char hex[65];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	ck_assert_ptr_nonnull(ctx);
	ck_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
	ck_assert(EVP_DigestUpdate(ctx, key, strlen(key) + 1) == 1);
	ck_assert(EVP_DigestUpdate(ctx, etag, strlen(etag)) == 1);
	ck_assert(EVP_DigestFinal_ex(ctx, h, &hl) == 1);
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	snprintf(out, size, "%s/%.2s/%s-%" PRIu64, dir, hex, hex, index);
}

/* Flip one byte at off of the file at path. */
static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* Number and total size of block files under dir; fails on a file that is
 * not 0600 or a directory that is not 0700. */
static size_t count_files(const char *dir, uint64_t *bytes)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	*bytes = 0;
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char sub[1200];
		DIR *sd;
		struct dirent *fe;
		struct stat sb;

		if (de->d_name[0] == '.' || strcmp(de->d_name, "lock") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		ck_assert_int_eq(lstat(sub, &sb), 0);
		ck_assert_msg(S_ISDIR(sb.st_mode) && (sb.st_mode & 07777) == 0700,
		              "%s: mode %o, want a 0700 directory", sub, sb.st_mode);
		sd = opendir(sub);
		ck_assert_ptr_nonnull(sd);
		while ((fe = readdir(sd)) != NULL) {
			char path[2400];

			if (fe->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub, fe->d_name);
			ck_assert_int_eq(lstat(path, &sb), 0);
			ck_assert_msg(S_ISREG(sb.st_mode) && (sb.st_mode & 07777) == 0600,
			              "%s: mode %o, want a 0600 file", path, sb.st_mode);
			*bytes += (uint64_t)sb.st_size;
			n++;
		}
		closedir(sd);
	}
	closedir(d);
	return n;
}

/* --- cases ---------------------------------------------------------------- */

START_TEST(test_create_options)
{
	struct diskcache_opts o;
	struct cache_opts co;
	struct backend *second;
	struct tier *t;

	diskcache_opts_init(&o);
	ck_assert_uint_eq(o.block_size, 1u << 20);
	ck_assert_int_eq(o.min_free_percent, 5);
	/* no dir */
	errno = 0;
	ck_assert_ptr_null(diskcache_create(&o));
	ck_assert_int_eq(errno, EINVAL);
	/* bad block size, limit below one block */
	o.dir = g_dir;
	o.block_size = 5000;
	ck_assert_ptr_null(diskcache_create(&o));
	ck_assert_int_eq(errno, EINVAL);
	o.block_size = BS;
	o.max_bytes = BS / 2;
	ck_assert_ptr_null(diskcache_create(&o));
	ck_assert_int_eq(errno, EINVAL);
	/* a cache refuses a tier of another block size (and leaves it to us) */
	o.max_bytes = 0;
	t = diskcache_create(&o);
	ck_assert_ptr_nonnull(t);
	cache_opts_init(&co);
	co.disk = t;
	errno = 0;
	ck_assert_ptr_null(cache_create(g_mem, &co));
	ck_assert_int_eq(errno, EINVAL);
	t->ops->destroy(t);
	/* one process per directory */
	g_dc = open_dc(g_dir, 0, 0);
	ck_assert_ptr_nonnull(g_dc);
	ck_assert_str_eq(g_tier->ops->name, "diskcache");
	ck_assert_ptr_null(g_dc->ops->read_fd);
	ck_assert_ptr_nonnull(g_dc->ops->read_ref);
	second = open_dc(g_dir, 0, 0);
	ck_assert_ptr_null(second);
	ck_assert_int_eq(errno, EBUSY);
}
END_TEST

/* Blocks read from the store are stored; after a remount (memory empty)
 * they are read from disk, not the store. */
START_TEST(test_reread_no_inner_reads)
{
	const size_t size = 5 * BS + 1234;
	struct backend_stat st;
	struct diskcache_stats s;

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("a/b", size, 1, 0, &st);
	mem_backend_reset_stats(g_mem);
	read_check("a/b", 0, size, size, 1, NULL);
	ck_assert_uint_eq(mem_bytes(), size);
	s = dstats();
	ck_assert_uint_eq(s.stored, 6);
	ck_assert_uint_eq(s.files, 6);
	mem_backend_reset_stats(g_mem);
	read_check("a/b", 0, size, size, 1, NULL);
	read_check("a/b", 0, size, size, 1, st.etag);
	ck_assert_uint_eq(mem_reads(), 0);
	remount(0);
	read_check("a/b", 0, size, size, 1, st.etag);
	ck_assert_uint_eq(mem_reads(), 0);
	s = dstats();
	ck_assert_uint_ge(s.hits, 6);
	ck_assert_uint_eq(s.verified, 6); /* each checked once, at first use */
	read_check("a/b", 0, size, size, 1, st.etag);
	ck_assert_uint_eq(dstats().verified, 6);
	ck_assert_uint_eq(s.corrupt_blocks, 0);
	ck_assert_uint_eq(s.write_errors, 0);
}
END_TEST

START_TEST(test_remount_reuses)
{
	const size_t size = 7 * BS + 99;
	struct backend_stat st, rst;
	struct diskcache_stats s;
	unsigned char b[10];

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("m", size, 2, 0, &st);
	put_pat("other", 3 * BS, 3, 0, NULL);
	read_check("m", 0, size, size, 2, NULL);
	read_check("other", 0, 3 * BS, 3 * BS, 3, NULL);
	remount(0);
	s = dstats();
	ck_assert_uint_eq(s.files, 11);
	ck_assert_uint_eq(s.corrupt_blocks, 0);
	mem_backend_reset_stats(g_mem);
	read_check("m", 0, size, size, 2, st.etag);
	read_check("other", 0, 3 * BS, 3 * BS, 3, NULL);
	ck_assert_uint_eq(mem_reads(), 0);
	ck_assert_uint_eq(dstats().hits, 11);
	/* st of a read served from disk */
	remount(0);
	ck_assert_int_eq(g_dc->ops->read(g_dc, "m", 10, b, sizeof(b), st.etag, &rst), 10);
	ck_assert_str_eq(rst.etag, st.etag);
	ck_assert_uint_eq(rst.size, size);
	ck_assert_uint_eq(mem_reads(), 0);
}
END_TEST

START_TEST(test_overwrite_refetches)
{
	const size_t size = 3 * BS + 10;
	struct backend_stat v1, v2, v3;
	unsigned char b[16];

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("o", size, 4, 0, &v1);
	read_check("o", 0, size, size, 4, NULL);
	/* through the layer: old blocks dropped */
	put_pat("o", size, 5, 0, &v2);
	ck_assert_str_ne(v1.etag, v2.etag);
	ck_assert_uint_eq(dstats().files, 0);
	mem_backend_reset_stats(g_mem);
	read_check("o", 0, size, size, 5, NULL);
	ck_assert_uint_eq(mem_bytes(), size);
	ck_assert_int_eq(g_dc->ops->read(g_dc, "o", 0, b, sizeof(b), v1.etag, NULL), -ESTALE);
	/* behind the layer's back: a new etag, so new blocks */
	put_pat("o", size + BS, 6, 1, &v3);
	mem_backend_reset_stats(g_mem);
	read_check("o", 0, size + BS, size + BS, 6, NULL);
	ck_assert_uint_eq(mem_bytes(), size + BS);
	/* after a remount too */
	remount(0);
	mem_backend_reset_stats(g_mem);
	read_check("o", 0, size + BS, size + BS, 6, NULL);
	ck_assert_uint_eq(mem_reads(), 0);
	/* remove and copy invalidate */
	ck_assert_int_eq(backend_copy(g_dc, "o", "p", NULL), 0);
	read_check("p", 0, size + BS, size + BS, 6, NULL);
	ck_assert_int_eq(g_dc->ops->remove(g_dc, "o"), 0);
	ck_assert_int_eq(g_dc->ops->read(g_dc, "o", 0, b, sizeof(b), v3.etag, NULL), -ENOENT);
	ck_assert_uint_eq(dstats().files, 5); /* p's */
	put_pat("p", 10, 7, 0, NULL);
	ck_assert_uint_eq(dstats().files, 0);
	read_check("p", 0, 100, 10, 7, NULL);
}
END_TEST

/* A truncated block file and a flipped byte are caught when the block is
 * read into memory and fetched again, never served.  Corruption while
 * unmounted: the scan or the first use catches each. */
START_TEST(test_corrupt_blocks_refetched)
{
	const size_t size = 6 * BS;
	struct backend_stat st;
	struct diskcache_stats s;
	char path[1200];

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("c/x", size, 8, 0, &st);
	read_check("c/x", 0, size, size, 8, NULL);

	/* in place: a flipped data byte and a truncated file */
	block_path(path, sizeof(path), g_dir, "c/x", st.etag, 1);
	flip_byte(path, 192 + 3 + 1000);
	block_path(path, sizeof(path), g_dir, "c/x", st.etag, 2);
	ck_assert_int_eq(truncate(path, 192 + 3 + BS / 2), 0);
	mem_backend_reset_stats(g_mem);
	read_check("c/x", 0, size, size, 8, st.etag);
	ck_assert_uint_eq(mem_bytes(), 2 * BS); /* a copy out of the file checks the sum */
	s = dstats();
	ck_assert_uint_eq(s.corrupt_blocks, 2);
	ck_assert_uint_eq(s.files, 6);
	mem_backend_reset_stats(g_mem);
	remount(0);
	read_check("c/x", 0, size, size, 8, st.etag);
	ck_assert_uint_eq(mem_reads(), 0);

	/* while unmounted: a flipped header byte, a flipped last byte, a file
	 * cut short; the scan or the read catches each */
	close_dc();
	block_path(path, sizeof(path), g_dir, "c/x", st.etag, 0);
	flip_byte(path, 20); /* the index field */
	block_path(path, sizeof(path), g_dir, "c/x", st.etag, 4);
	flip_byte(path, 192 + 3 + BS - 1);
	block_path(path, sizeof(path), g_dir, "c/x", st.etag, 5);
	ck_assert_int_eq(truncate(path, 100), 0);
	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	mem_backend_reset_stats(g_mem);
	read_check("c/x", 0, size, size, 8, st.etag);
	ck_assert_uint_eq(mem_bytes(), 3 * BS); /* blocks 0, 4 and 5 */
	s = dstats();
	ck_assert_uint_eq(s.corrupt_blocks, 3);
	ck_assert_uint_eq(s.files, 6);
}
END_TEST

/* read_ref lends a block held on disk as a piece of its file; the bytes
 * are right, and a remount's first use checks it. */
START_TEST(test_read_ref_lends_files)
{
	const size_t size = 3 * BS + 500;
	unsigned char *buf = malloc(size);
	struct backend_stat st;
	struct backend_ref ref;
	unsigned files = 0;
	char path[1200];
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("r", size, 18, 0, &st);
	read_check("r", 0, size, size, 18, NULL);
	close_dc();
	block_path(path, sizeof(path), g_dir, "r", st.etag, 2);
	flip_byte(path, 192 + 1 + 77); /* a data byte: the header is fine */
	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	mem_backend_reset_stats(g_mem);
	n = g_dc->ops->read_ref(g_dc, "r", 100, size, st.etag, &ref, NULL);
	ck_assert_int_eq(n, (ssize_t)(size - 100));
	for (unsigned i = 0; i < ref.n; i++)
		files += ref.seg[i].data == NULL && ref.seg[i].fd >= 0;
	ck_assert_uint_eq(files, 3); /* block 2 failed its check: fetched into memory */
	ck_assert_int_eq(backend_ref_copy(&ref, buf), n);
	ck_assert_uint_eq(tm_pattern_check(buf, 100, (size_t)n, 18), (size_t)n);
	backend_release_ref(&ref);
	ck_assert_uint_eq(mem_bytes(), BS);
	ck_assert_uint_eq(dstats().verified, 3);
	ck_assert_uint_eq(dstats().corrupt_blocks, 1);
	/* once checked, a block is lent without reading it again */
	n = g_dc->ops->read_ref(g_dc, "r", 0, BS, st.etag, &ref, NULL);
	ck_assert_int_eq(n, (ssize_t)BS);
	ck_assert_ptr_null(ref.seg[0].data);
	backend_release_ref(&ref);
	ck_assert_uint_eq(dstats().verified, 3);
	free(buf);
}
END_TEST

static mode_t mode_of(const char *path)
{
	struct stat sb;

	ck_assert_int_eq(lstat(path, &sb), 0);
	return sb.st_mode & 07777;
}

START_TEST(test_permissions)
{
	struct stat sb;
	uint64_t bytes;
	struct backend *b;

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	ck_assert_int_eq(stat(g_dir, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0700);
	put_pat("k", 3 * BS, 9, 0, NULL);
	read_check("k", 0, 3 * BS, 3 * BS, 9, NULL);
	ck_assert_uint_eq(count_files(g_dir, &bytes), 3); /* checks the modes */
	ck_assert_uint_eq(bytes, dstats().bytes_on_disk);
	close_dc();

	/* refused: group- or world-writable, or someone else's */
	ck_assert_int_eq(chmod(g_dir, 0777), 0);
	errno = 0;
	ck_assert_ptr_null(open_dc(g_dir, 0, -1));
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(chmod(g_dir, 0720), 0);
	ck_assert_ptr_null(open_dc(g_dir, 0, -1));
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(chmod(g_dir, 0755), 0);
	b = open_dc(g_dir, 0, -1); /* readable by others is allowed */
	ck_assert_ptr_nonnull(b);
	g_dc = b;
	close_dc();
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(g_dir, 12345, 12345), 0);
		ck_assert_ptr_null(open_dc(g_dir, 0, -1));
		ck_assert_int_eq(errno, EPERM);
		ck_assert_int_eq(chown(g_dir, 0, 0), 0);
	} else {
		printf("SKIP test_permissions (other owner): not root, cannot chown\n");
	}
	/* missing parents are created 0700; a symlink, or a parent anyone
	 * may write to, is refused */
	snprintf(g_dir, sizeof(g_dir), "%s/new/parents/cache", g_tmp);
	b = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(b);
	g_dc = b;
	close_dc();
	ck_assert_uint_eq(mode_of(tm_path(g_tmp, "new")), 0700);
	ck_assert_int_eq(symlink(g_dir, tm_path(g_tmp, "link")), 0);
	snprintf(g_dir, sizeof(g_dir), "%s/link", g_tmp);
	ck_assert_ptr_null(open_dc(g_dir, 0, -1));
	ck_assert_int_eq(errno, ELOOP);
	ck_assert_int_eq(chmod(tm_path(g_tmp, "new"), 0777), 0);
	snprintf(g_dir, sizeof(g_dir), "%s/new/parents/cache", g_tmp);
	ck_assert_ptr_null(open_dc(g_dir, 0, -1));
	ck_assert_int_eq(errno, EPERM);
	/* symlinks planted among the block files (named as a block and as an
	 * unfinished write) are removed at the rebuild, never followed */
	snprintf(g_dir, sizeof(g_dir), "%s/new/parents/cache", g_tmp);
	ck_assert_int_eq(chmod(tm_path(g_tmp, "new"), 0700), 0);
	ck_assert_int_eq(tm_write_file(tm_path(g_tmp, "victim"), "keep", 4), 0);
	ck_assert_int_eq(mkdir(tm_path(g_dir, "ab"), 0700), 0);
	ck_assert_int_eq(symlink(tm_path(g_tmp, "victim"), tm_path(g_dir, "ab/.tmp.evil")), 0);
	ck_assert_int_eq(symlink(tm_path(g_tmp, "victim"),
	                         tm_path(g_dir, "ab/ab00000000000000000000000000000000000000000000"
	                                        "00000000000000000000-0")),
	                 0);
	b = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(b);
	g_dc = b;
	close_dc();
	ck_assert_int_eq(tm_sh("[ \"$(cat '%s/victim')\" = keep ]", g_tmp), 0);
	ck_assert_int_eq(tm_sh("[ -z \"$(find '%s/ab' -type l)\" ]", g_dir), 0);
	/* not a directory */
	snprintf(g_dir, sizeof(g_dir), "%s/file", g_tmp);
	ck_assert_int_eq(close(open(g_dir, O_CREAT | O_WRONLY, 0600)), 0);
	ck_assert_ptr_null(open_dc(g_dir, 0, -1));
	ck_assert_int_eq(errno, ENOTDIR);
}
END_TEST

START_TEST(test_size_limit)
{
	const size_t size = 20 * BS;
	const uint64_t limit = 4 * BS;
	struct diskcache_stats s;
	uint64_t bytes;

	g_dc = open_dc(g_dir, limit, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("big", size, 10, 0, NULL);
	for (int i = 0; i < 20; i++) {
		read_check("big", (uint64_t)i * BS, BS, size, 10, NULL);
		ck_assert_uint_le(dstats().bytes_on_disk, limit);
		diskcache_debug_check(g_tier);
	}
	s = dstats();
	ck_assert_uint_le(s.bytes_on_disk, limit);
	ck_assert_uint_gt(s.evictions, 0);
	ck_assert_uint_eq(s.files, 3); /* a file is a block plus its header */
	count_files(g_dir, &bytes);
	ck_assert_uint_le(bytes, limit);
	/* the most recent ones are kept */
	remount(limit);
	mem_backend_reset_stats(g_mem);
	read_check("big", 17 * BS, 3 * BS, size, 10, NULL);
	ck_assert_uint_eq(mem_reads(), 0);
	/* a smaller limit at remount evicts down to it */
	remount(2 * BS);
	s = dstats();
	ck_assert_uint_le(s.bytes_on_disk, 2 * BS);
	ck_assert_uint_eq(s.files, 1);
	mem_backend_reset_stats(g_mem);
	read_check("big", 19 * BS, BS, size, 10, NULL); /* the newest survived */
	ck_assert_uint_eq(mem_reads(), 0);
}
END_TEST

START_TEST(test_full_disk)
{
	const size_t size = 20 * BS;
	struct diskcache_stats s;

	snprintf(g_mnt, sizeof(g_mnt), "%s/tiny", g_tmp);
	ck_assert_int_eq(mkdir(g_mnt, 0700), 0);
	if (mount("tmpfs", g_mnt, "tmpfs", 0, "size=256k,mode=0700") != 0) {
		printf("SKIP test_full_disk: cannot mount a tmpfs (%s)\n", strerror(errno));
		g_mnt[0] = '\0';
		return;
	}
	snprintf(g_dir, sizeof(g_dir), "%s/cache", g_mnt);
	g_dc = open_dc(g_dir, 0, -1); /* no reserve: run into ENOSPC */
	ck_assert_ptr_nonnull(g_dc);
	put_pat("f", size, 11, 0, NULL);
	read_check("f", 0, size, size, 11, NULL);
	s = dstats();
	ck_assert_uint_gt(s.write_errors, 0);
	ck_assert_uint_gt(s.files, 0);
	ck_assert_uint_lt(s.files, 20);
	ck_assert_uint_eq(s.bytes_on_disk, s.files * (192 + 1 + BS));
	/* again: what is on disk from disk, the rest from the store */
	mem_backend_reset_stats(g_mem);
	read_check("f", 0, size, size, 11, NULL);
	ck_assert_uint_le(mem_bytes(), (20 - s.files) * BS);
	ck_assert_uint_ge(mem_bytes(), (20 - s.files - 1) * BS); /* one block in memory */
	close_dc();

	/* with the default reserve the layer stops before the disk is full */
	g_dc = open_dc(g_dir, 0, 50);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("g", size, 12, 0, NULL);
	read_check("g", 0, size, size, 12, NULL);
	s = dstats();
	ck_assert_uint_gt(s.full_skips + s.write_errors, 0);
	close_dc();
	ck_assert_int_eq(umount2(g_mnt, 0), 0);
	g_mnt[0] = '\0';
}
END_TEST

#define SF_THREADS 8

struct sf_arg {
	const char *etag;
	int ok;
};

static void *sf_reader(void *p)
{
	struct sf_arg *a = p;
	unsigned char *buf = malloc(BS);
	ssize_t n = backend_read_full(g_dc, "s", 100, buf, 1000, a->etag);

	a->ok = n == 1000 && tm_pattern_check(buf, 100, 1000, 13) == 1000;
	free(buf);
	return NULL;
}

START_TEST(test_single_flight)
{
	struct sf_arg a[SF_THREADS];
	pthread_t th[SF_THREADS];
	struct backend_stat st;
	struct diskcache_stats s;

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("s", 2 * BS, 13, 0, &st);
	__atomic_store_n(&g_borrow->delay_ms, 200, __ATOMIC_RELAXED);
	mem_backend_reset_stats(g_mem);
	for (int i = 0; i < SF_THREADS; i++) {
		a[i] = (struct sf_arg){.etag = st.etag};
		ck_assert_int_eq(pthread_create(&th[i], NULL, sf_reader, &a[i]), 0);
	}
	for (int i = 0; i < SF_THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert(a[i].ok);
	}
	ck_assert_uint_eq(mem_reads(), 1);
	s = dstats();
	ck_assert_uint_eq(s.stored, 1);
	ck_assert_uint_eq(s.files, 1);
}
END_TEST

#define CR_THREADS 8
#define CR_BLOCKS  32

struct cr_arg {
	const char *etag; /* or NULL */
	unsigned seed;
	int errors;
};

static void *cr_reader(void *p)
{
	struct cr_arg *a = p;
	const uint64_t size = (uint64_t)CR_BLOCKS * BS - 77;
	unsigned char *buf = malloc(6 * BS);

	for (int i = 0; i < 40 && buf != NULL; i++) {
		uint64_t off = (uint64_t)(rand_r(&a->seed) % (CR_BLOCKS * BS));
		size_t len = 1 + (size_t)rand_r(&a->seed) % (5 * BS);
		size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
		ssize_t n = backend_read_full(g_dc, "cr", off, buf, len, a->etag);

		if (n != (ssize_t)want) {
			a->errors++;
			continue;
		}
		if (tm_pattern_check(buf, off, want, 16) != want)
			a->errors++;
	}
	free(buf);
	return NULL;
}

/* Many readers of overlapping multi-block ranges through a cache with room
 * for 8 blocks in memory: right bytes, and every block is stored once. */
START_TEST(test_concurrent_runs)
{
	const uint64_t size = (uint64_t)CR_BLOCKS * BS - 77;
	struct cr_arg a[CR_THREADS];
	pthread_t th[CR_THREADS];
	struct backend_stat st;

	g_dc = open_dc_mem(g_dir, 0, -1, 8);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("cr", size, 16, 0, &st);
	__atomic_store_n(&g_borrow->delay_ms, 5, __ATOMIC_RELAXED);
	mem_backend_reset_stats(g_mem);
	for (int i = 0; i < CR_THREADS; i++) {
		a[i] = (struct cr_arg){.etag = i % 2 ? st.etag : NULL, .seed = 77u + (unsigned)i};
		ck_assert_int_eq(pthread_create(&th[i], NULL, cr_reader, &a[i]), 0);
	}
	for (int i = 0; i < CR_THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(a[i].errors, 0);
	}
	read_check("cr", 0, size, size, 16, NULL);
	ck_assert_uint_ge(mem_bytes(), size);
	ck_assert_uint_eq(dstats().files, CR_BLOCKS);
	ck_assert_uint_eq(dstats().stored, CR_BLOCKS);
	remount(0);
	mem_backend_reset_stats(g_mem);
	read_check("cr", 0, size, size, 16, st.etag);
	ck_assert_uint_eq(mem_reads(), 0);
}
END_TEST

START_TEST(test_boundaries)
{
	const uint64_t size = 3 * BS + 123;
	static const struct {
		uint64_t off;
		size_t len;
	} r[] = {
	    {0, 1},
	    {BS - 1, 2},
	    {BS - 7, BS + 14},
	    {BS, BS},
	    {2 * BS + 5, BS},
	    {3 * BS, 123},
	    {3 * BS + 100, 1000},
	    {3 * BS + 122, 1},
	    {3 * BS + 123, 10},
	    {4 * BS, 10},
	    {10 * BS, BS},
	    {1, 4 * BS},
	};
	struct backend_stat st;

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("e", size, 14, 0, &st);
	for (int pass = 0; pass < 3; pass++) {
		if (pass == 2)
			mem_backend_reset_stats(g_mem);
		for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
			read_check("e", r[i].off, r[i].len, size, 14, NULL);
			read_check("e", r[i].off, r[i].len, size, 14, st.etag);
		}
		if (pass == 1)
			remount(0);
		/* after the remount only the two reads that start in a block past
		 * the end with an etag (4 * BS, 10 * BS) ask the store: an empty
		 * block is not stored */
		if (pass == 2)
			ck_assert_uint_eq(mem_reads(), 2);
	}
	ck_assert_uint_eq(dstats().files, 4);
	/* an empty object and a directory marker */
	put_pat("z", 0, 0, 0, NULL);
	read_check("z", 0, 100, 0, 0, NULL);
	read_check("z", 0, 100, 0, 0, NULL);
	put_pat("d/", 0, 0, 0, NULL);
	read_check("d/", 0, 10, 0, 0, NULL);
}
END_TEST

struct collect {
	uint64_t hits, stored, corrupt, write_errors, bytes;
	int n;
};

static void collect_emit(void *ctx, const char *group, const char *name, uint64_t value)
{
	struct collect *c = ctx;

	if (strcmp(group, "diskcache") != 0)
		return;
	c->n++;
	if (strcmp(name, "hits") == 0)
		c->hits = value;
	else if (strcmp(name, "stored") == 0)
		c->stored = value;
	else if (strcmp(name, "corrupt_blocks") == 0)
		c->corrupt = value;
	else if (strcmp(name, "write_errors") == 0)
		c->write_errors = value;
	else if (strcmp(name, "bytes_on_disk") == 0)
		c->bytes = value;
}

START_TEST(test_stats_op)
{
	struct collect c = {0};

	g_dc = open_dc(g_dir, 0, -1);
	ck_assert_ptr_nonnull(g_dc);
	put_pat("q", BS, 15, 0, NULL);
	read_check("q", 0, BS, BS, 15, NULL);
	remount(0);
	read_check("q", 0, BS, BS, 15, NULL);
	backend_stats(g_dc, collect_emit, &c);
	ck_assert_int_ge(c.n, 7);
	ck_assert_uint_eq(c.hits, 1);
	ck_assert_uint_eq(c.stored, 0); /* since the remount */
	ck_assert_uint_eq(c.corrupt, 0);
	ck_assert_uint_eq(c.write_errors, 0);
	ck_assert_uint_eq(c.bytes, 192 + 1 + BS);
}
END_TEST

/*
 * A block kept for one object is not served after a remount for another
 * object of the same key and ETag but another size (a store with constant
 * ETags), once the store has reported that size (finding 7 of issue 13).
 */
START_TEST(test_constant_etag_other_size)
{
	const size_t s1 = 3 * BS + 100, s2 = 2 * BS + 7;
	struct backend_stat st;

	g_dc = open_dc(g_dir, 64 * BS, -1);
	ck_assert_ptr_nonnull(g_dc);
	__atomic_store_n(&g_borrow->const_etag, 1, __ATOMIC_RELAXED);
	put_pat("k", s1, 1, 1, NULL);
	ck_assert_int_eq(g_dc->ops->stat(g_dc, "k", &st), 0);
	read_check("k", 0, s1, s1, 1, TESTBE_CONST_ETAG);
	ck_assert_uint_eq(dstats().files, 4);

	remount(64 * BS);
	__atomic_store_n(&g_borrow->const_etag, 1, __ATOMIC_RELAXED);
	put_pat("k", s2, 2, 1, NULL);
	ck_assert_int_eq(g_dc->ops->stat(g_dc, "k", &st), 0);
	ck_assert_str_eq(st.etag, TESTBE_CONST_ETAG);
	read_check("k", 0, s1, s2, 2, TESTBE_CONST_ETAG);
	/* The new object's blocks are what the tier keeps now. */
	remount(64 * BS);
	__atomic_store_n(&g_borrow->const_etag, 1, __ATOMIC_RELAXED);
	ck_assert_int_eq(g_dc->ops->stat(g_dc, "k", &st), 0);
	read_check("k", 0, s1, s2, 2, TESTBE_CONST_ETAG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("diskcache");
	TCase *tc = tcase_create("diskcache");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_options);
	tcase_add_test(tc, test_reread_no_inner_reads);
	tcase_add_test(tc, test_remount_reuses);
	tcase_add_test(tc, test_overwrite_refetches);
	tcase_add_test(tc, test_corrupt_blocks_refetched);
	tcase_add_test(tc, test_read_ref_lends_files);
	tcase_add_test(tc, test_permissions);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_full_disk);
	tcase_add_test(tc, test_single_flight);
	tcase_add_test(tc, test_concurrent_runs);
	tcase_add_test(tc, test_boundaries);
	tcase_add_test(tc, test_stats_op);
	tcase_add_test(tc, test_constant_etag_other_size);
	suite_add_tcase(s, tc);
	return suites_run(s);
}
