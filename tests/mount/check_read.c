/*
 * check_read.c - the read path through a real mount over the S3 test
 * server: whole objects fetched in parts, the page-cache fill of randomly
 * read files, and what must stop it (writers, truncates, new versions).
 *
 * NOT RUN without the S3 test server (tests/check.sh starts it).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mount.h"
#include "store.h"
#include "suites.h"

static struct test_mount m;
static struct store st;

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
	ck_assert_int_eq(store_open(&st, STORE_S3, m.src), 0);
}

static void teardown(void)
{
	store_control("POST", "/latency?ms=0", NULL);
	tm_stop(&m);
	store_close(&st);
}

static void mount_with(const char *opts)
{
	ck_assert_msg(store_mount(&st, &m, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

static void put_pattern(const char *key, uint64_t size, uint32_t seed)
{
	ck_assert_int_eq(tm_write_pattern(tm_path(m.root, "pattern.tmp"), size, seed), 0);
	ck_assert_int_eq(store_put_file(&st, key, tm_path(m.root, "pattern.tmp")), 0);
	unlink(tm_path(m.root, "pattern.tmp"));
}

/* A number from the mount's statistics document (group.name), or -1. */
static long long stat_num(const char *group, const char *name)
{
	char buf[65536];
	ssize_t n = getxattr(m.mnt, "user.chunkfs.stats", buf, sizeof(buf) - 1);
	json_t *root, *v;
	long long out = -1;

	if (n < 0)
		return -1;
	buf[n] = '\0';
	root = json_loads(buf, 0, NULL);
	if (root == NULL)
		return -1;
	v = json_object_get(json_object_get(root, group), name);
	if (json_is_integer(v))
		out = json_integer_value(v);
	json_decref(root);
	return out;
}

/* pread 4 KiB at count offsets of fd alternating between the two halves
 * and check them against pattern(seed).  With the file over 17 MiB, each
 * read is more than the driver's 8 MiB of slack from the one before: a
 * seek. */
static void scattered_reads(int fd, uint64_t size, uint32_t seed, int count)
{
	char got[4096], want[4096];

	for (int i = 0; i < count; i++) {
		uint64_t off =
		    ((i % 2) ? size / 2 / 4096 * 4096 : 0) + (uint64_t)(i / 2) * 4096 * 3;

		ck_assert_int_eq(pread(fd, got, sizeof(got), (off_t)off), (ssize_t)sizeof(got));
		tm_pattern(want, off, sizeof(want), seed);
		ck_assert_msg(memcmp(got, want, sizeof(got)) == 0, "wrong bytes at %llu",
		              (unsigned long long)off);
	}
}

/* Wait until the statistics show n completed fills; 0, or -1 after 60 s. */
static int wait_fills(long long n)
{
	for (int i = 0; i < 600; i++) {
		if (stat_num("pagefill", "completed") >= n)
			return 0;
		usleep(100 * 1000);
	}
	return -1;
}

/* Read [0, size) of fd in 1 MiB preads and compare with pattern(seed). */
static void whole_file_equals(int fd, uint64_t size, uint32_t seed)
{
	size_t piece = 1 << 20;
	char *got = malloc(piece), *want = malloc(piece);

	ck_assert(got != NULL && want != NULL);
	for (uint64_t off = 0; off < size; off += piece) {
		size_t len = size - off < piece ? (size_t)(size - off) : piece;

		ck_assert_int_eq(pread(fd, got, len, (off_t)off), (ssize_t)len);
		tm_pattern(want, off, len, seed);
		ck_assert_msg(memcmp(got, want, len) == 0, "wrong bytes in [%llu, +%zu)",
		              (unsigned long long)off, len);
	}
	free(got);
	free(want);
}

/* Random reads start a fill; afterwards the whole file is read from the
 * page cache: right bytes, no read reaches the daemon, no GET the server. */
START_TEST(test_random_reads_fill_page_cache)
{
	const uint64_t size = (40 << 20) + 12345;
	long long reads, gets;
	int fd;

	put_pattern("weights.bin", size, 41);
	mount_with("ro,whole_max=0");
	fd = open(tm_path(m.mnt, "weights.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	scattered_reads(fd, size, 41, 8);
	ck_assert_msg(wait_fills(1) == 0, "no fill completed; stats started=%lld",
	              stat_num("pagefill", "started"));
	ck_assert_int_eq(stat_num("pagefill", "stored_bytes"), (long long)size);
	reads = stat_num("fuse", "reads");
	gets = store_counter("GET", NULL);
	whole_file_equals(fd, size, 41);
	ck_assert_int_eq(stat_num("fuse", "reads"), reads);
	ck_assert_int_eq(store_counter("GET", NULL), gets);
	close(fd);

	/* A new handle on the same version keeps the cache. */
	fd = open(tm_path(m.mnt, "weights.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	whole_file_equals(fd, size, 41);
	ck_assert_int_eq(stat_num("fuse", "reads"), reads);
	close(fd);
}
END_TEST

/*
 * A file within whole_max is fetched whole at open, in part-sized GETs,
 * whatever order it is read in (torch.load: the start, the end, then the
 * middle): one GET per 8 MiB part (a short tail with the last), no
 * block-sized GET, every byte right.
 */
START_TEST(test_whole_object_in_parts)
{
	const uint64_t size = (40 << 20) + 12345, part = 8 << 20;
	char got[4096], want[4096];
	long long gets;
	int fd;

	put_pattern("whole.bin", size, 43);
	mount_with("ro");
	ck_assert_int_eq(store_control("POST", "/latency?ms=20", NULL), 0);
	gets = store_counter("GET", NULL);
	fd = open(tm_path(m.mnt, "whole.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, got, 64, 0), 64);
	ck_assert_int_eq(pread(fd, got, sizeof(got), (off_t)(size - sizeof(got))),
	                 (ssize_t)sizeof(got));
	tm_pattern(want, size - sizeof(got), sizeof(got), 43);
	ck_assert(memcmp(got, want, sizeof(got)) == 0);
	whole_file_equals(fd, size, 43);
	close(fd);
	/* the 12,345-byte tail rides with the last part */
	ck_assert_int_eq(store_counter("GET", NULL) - gets, (long long)(size / part));
	ck_assert_int_eq(stat_num("pagefill", "started"), 0);
}
END_TEST

/* The safetensors layout: 8-byte little-endian header length, a JSON
 * header of tensors and their data_offsets, then the data.  Written with
 * numpy alone: 48 float32 tensors of 512 Ki values (2 MiB), tensor i
 * holding i * 1e6 + its index: 96 MiB. */
static const char safetensors_writer[] =
    "import json, struct, sys, numpy as np\n"
    "n, count = 512 * 1024, 48\n"
    "hdr = {}\n"
    "for i in range(count):\n"
    "    hdr['t%d' % i] = {'dtype': 'F32', 'shape': [n],\n"
    "                      'data_offsets': [i * n * 4, (i + 1) * n * 4]}\n"
    "h = json.dumps(hdr).encode()\n"
    "h += b' ' * (-len(h) % 8)\n"
    "with open(sys.argv[1], 'wb') as f:\n"
    "    f.write(struct.pack('<Q', len(h)) + h)\n"
    "    for i in range(count):\n"
    "        f.write((np.arange(n, dtype=np.float32) + i * 1e6).tobytes())\n";

/* Reads tensors through numpy.memmap the way safetensors readers do, in a
 * scattered order, and checks their values. */
static const char safetensors_reader[] =
    "import json, struct, sys, numpy as np\n"
    "path = sys.argv[1]\n"
    "with open(path, 'rb') as f:\n"
    "    hl = struct.unpack('<Q', f.read(8))[0]\n"
    "    hdr = json.loads(f.read(hl))\n"
    "m = np.memmap(path, dtype=np.uint8, mode='r')\n"
    "for i in [37, 3, 45, 11, 29, 0, 47, 18]:\n"
    "    a, b = hdr['t%d' % i]['data_offsets']\n"
    "    t = m[8 + hl + a:8 + hl + b].view(np.float32)\n"
    "    want = np.arange(len(t), dtype=np.float32) + i * 1e6\n"
    "    assert (t == want).all(), 'tensor %d differs' % i\n";

/* A safetensors file larger than whole_max read through numpy.memmap:
 * its header is read at open, each tensor touched is fetched whole (in
 * GETs no larger than the tensor's part-sized pieces), no other tensor
 * and no whole-file fill; every tensor read is right. */
START_TEST(test_safetensors_memmap)
{
	char py[PATH_MAX];
	long long gets, bytes;

	if (tm_sh("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
		printf("SKIP read_s3 safetensors: /usr/bin/python3 has no numpy (python3-numpy)\n");
		return;
	}
	snprintf(py, sizeof(py), "%s/st.py", m.root);
	ck_assert_int_eq(tm_write_file(py, safetensors_writer, strlen(safetensors_writer)), 0);
	ck_assert_int_eq(tm_sh("/usr/bin/python3 '%s' '%s/w.safetensors'", py, m.root), 0);
	ck_assert_int_eq(store_put_file(&st, "model.safetensors", tm_path(m.root, "w.safetensors")),
	                 0);
	mount_with("ro,whole_max=4,read_ahead_kb=128");
	ck_assert_int_eq(tm_write_file(py, safetensors_reader, strlen(safetensors_reader)), 0);
	gets = store_counter("GET", NULL);
	bytes = store_counter("bytes_out", NULL);
	ck_assert_int_eq(tm_sh("/usr/bin/python3 '%s' '%s/model.safetensors'", py, m.mnt), 0);
	gets = store_counter("GET", NULL) - gets;
	bytes = store_counter("bytes_out", NULL) - bytes;
	ck_assert_int_eq(stat_num("pagefill", "started"), 0);
	/* 8 tensors of 2 MiB (3 blocks at most, one GET each), the header's
	 * block, and what the kernel's own readahead asks past a tensor it
	 * read to the end (up to 4 MiB): well under the 96 MiB file */
	ck_assert_int_le(gets, 40);
	ck_assert_int_le(bytes, 64LL << 20);
	ck_assert_int_eq(tm_sh("/usr/bin/python3 '%s' '%s/model.safetensors'", py, m.mnt), 0);
}
END_TEST

/* fill_max=0 turns fills off; a file larger than fill_max is not filled,
 * one within it is; a sequential reader starts none. */
START_TEST(test_fill_max)
{
	const uint64_t big = (20 << 20) + 1, small = 18 << 20;
	int fd;

	put_pattern("big.bin", big, 3);
	put_pattern("small.bin", small, 4);
	mount_with("ro,fill_max=0,whole_max=0");
	fd = open(tm_path(m.mnt, "big.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	scattered_reads(fd, big, 3, 12);
	close(fd);
	ck_assert_int_eq(stat_num("pagefill", "started"), 0);
	ck_assert_int_eq(tm_unmount(&m), 0);

	mount_with("ro,fill_max=20,whole_max=0");
	fd = open(tm_path(m.mnt, "big.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	scattered_reads(fd, big, 3, 12);
	close(fd);
	ck_assert_int_eq(stat_num("pagefill", "started"), 0); /* one byte over 20 MiB */
	ck_assert_int_eq(tm_sh("cat '%s/big.bin' >/dev/null", m.mnt), 0);
	ck_assert_int_eq(stat_num("pagefill", "started"), 0); /* sequential */
	fd = open(tm_path(m.mnt, "small.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	scattered_reads(fd, small, 4, 12);
	close(fd);
	ck_assert_int_eq(stat_num("pagefill", "started"), 1);
}
END_TEST

/* A writer opening the file while a (slowed) fill runs cancels it: what
 * is read afterwards is the written bytes, never the old ones. */
START_TEST(test_writer_cancels_fill)
{
	const uint64_t size = 24 << 20;
	char *want = malloc(size), *got;
	size_t len;
	int fd, wfd;

	ck_assert_ptr_nonnull(want);
	put_pattern("w.bin", size, 7);
	mount_with("read_part_size=1,fetch_threads=1,whole_max=0");
	ck_assert_int_eq(store_control("POST", "/latency?ms=40", NULL), 0);
	fd = open(tm_path(m.mnt, "w.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	scattered_reads(fd, size, 7, 8);
	/* slower now: the fill (fetching with its worker and, when it waits
	 * for a queued part, in its own thread) is still far from done */
	ck_assert_int_eq(store_control("POST", "/latency?ms=300", NULL), 0);
	ck_assert_int_eq(stat_num("pagefill", "started"), 1);
	ck_assert_int_eq(stat_num("pagefill", "completed"), 0);

	/* rewrite the whole file with other bytes while the fill runs */
	wfd = open(tm_path(m.mnt, "w.bin"), O_WRONLY | O_TRUNC);
	ck_assert_int_ge(wfd, 0);
	tm_pattern(want, 0, size, 8);
	ck_assert_int_eq(write(wfd, want, size), (ssize_t)size);
	ck_assert_int_eq(close(wfd), 0);
	ck_assert_int_eq(store_control("POST", "/latency?ms=0", NULL), 0);
	close(fd);
	sleep(1); /* a fill still running would have had time to store */

	got = tm_read_file(tm_path(m.mnt, "w.bin"), &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(len, size);
	ck_assert_msg(memcmp(got, want, size) == 0, "old bytes read after the rewrite");
	ck_assert_int_ge(stat_num("pagefill", "cancelled"), 1);
	free(got);
	free(want);
}
END_TEST

/* The object replaced in the store behind the mount: a new open sees the
 * new version, not pages a fill stored of the old one. */
START_TEST(test_new_version_not_hidden_by_fill)
{
	const uint64_t size = 24 << 20;
	int fd;

	put_pattern("v.bin", size, 11);
	mount_with("ro,attr_timeout=0,entry_timeout=0,whole_max=0");
	fd = open(tm_path(m.mnt, "v.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	scattered_reads(fd, size, 11, 8);
	ck_assert_int_eq(wait_fills(1), 0);
	close(fd);

	put_pattern("v.bin", size, 12); /* same size, other bytes */
	fd = open(tm_path(m.mnt, "v.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	whole_file_equals(fd, size, 12);
	close(fd);
}
END_TEST

/* A server that sometimes answers with half the body in good form: reads
 * are asked again and always give the right bytes, never a short file. */
START_TEST(test_short_bodies_asked_again)
{
	const uint64_t size = (6 << 20) + 333;
	char *want = malloc(1 << 20), *got = malloc(1 << 20), json[512];
	size_t len;
	int fd;

	ck_assert(want != NULL && got != NULL);
	put_pattern("short.bin", size, 17);
	mount_with("ro,no_cache,fill_max=0");
	snprintf(json, sizeof(json),
	         "{\"rate\":0.3,\"kinds\":\"short_body\",\"methods\":\"GetObject\","
	         "\"seed\":5}");
	ck_assert_int_eq(tm_sh("curl -sf -X POST '%s/faults' -H 'Content-Type: application/json' "
	                       "-d '%s' >/dev/null",
	                       getenv("CHUNKFS_TEST_S3_CONTROL"), json),
	                 0);
	fd = open(tm_path(m.mnt, "short.bin"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	for (uint64_t off = 0; off < size; off += len) {
		len = size - off < (1 << 20) ? (size_t)(size - off) : (1 << 20);
		ck_assert_int_eq(pread(fd, got, len, (off_t)off), (ssize_t)len);
		tm_pattern(want, off, len, 17);
		ck_assert_msg(memcmp(got, want, len) == 0, "wrong bytes at %llu",
		              (unsigned long long)off);
	}
	ck_assert_int_eq(pread(fd, got, 100, (off_t)size), 0);
	close(fd);
	/* the faults really happened */
	ck_assert_int_eq(tm_sh("curl -sf '%s/faults' | grep -Eq '\"injected\": *[1-9]'",
	                       getenv("CHUNKFS_TEST_S3_CONTROL")),
	                 0);
	store_control("DELETE", "/faults", NULL);
	free(want);
	free(got);
}
END_TEST

static Suite *read_suite(void)
{
	Suite *s = suite_create("read_s3");
	TCase *tc = tcase_create("pagefill");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_random_reads_fill_page_cache);
	tcase_add_test(tc, test_fill_max);
	tcase_add_test(tc, test_whole_object_in_parts);
	tcase_add_test(tc, test_safetensors_memmap);
	tcase_add_test(tc, test_writer_cancels_fill);
	tcase_add_test(tc, test_new_version_not_hidden_by_fill);
	tcase_add_test(tc, test_short_bodies_asked_again);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("NOT RUN read_s3: /dev/fuse is not usable here (%s)\n", strerror(errno));
		return 0;
	}
	if (store_s3_unavailable() != NULL) {
		printf("NOT RUN read_s3: %s\n", store_s3_unavailable());
		return 0;
	}
	return suites_run(read_suite());
}
