/*
 * check_untrusted.c - a mount facing what it cannot trust, mounted for
 * real (issue 13):
 *
 *   logs     a key holding "\n", a tab and DEL shows in the
 *            daemon's log as escapes, on the one line of its event: it
 *            cannot forge a line (finding 10).
 *   metrics  clients that connect and send nothing do not hold up another
 *            client, and are dropped after the deadline; a metrics port
 *            another process holds does not fail the mount, it warns
 *            (finding 11).
 *
 * Suites: untrusted_fs (a scratch directory) and untrusted_s3 (the S3
 * test server).
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mount.h"
#include "store.h"

static struct test_mount m;
static struct store st;
static enum store_kind g_kind;

static void setup(void)
{
	ck_assert_int_eq(tm_prepare(&m), 0);
	ck_assert_int_eq(store_open(&st, g_kind, m.src), 0);
}

static void teardown(void)
{
	tm_stop(&m);
	store_close(&st);
}

static void mount_with(const char *opts)
{
	ck_assert_msg(store_mount(&st, &m, opts) == 0, "mount failed; see %s/daemon.log", m.root);
}

/* Lines of the daemon's log that hold s (0 when none or unreadable). */
/* Lines of the daemon's log holding s, and (when not NULL) not holding
 * without. */
static int log_lines_with_but(const char *s, const char *without)
{
	char path[PATH_MAX + 16], line[4096];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/daemon.log", m.root);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, s) != NULL && (without == NULL || strstr(line, without) == NULL);
	fclose(f);
	return n;
}

static int log_lines_with(const char *s)
{
	return log_lines_with_but(s, NULL);
}

/*
 * A key whose name holds a newline, a forged log line and DEL: the listing
 * skips it (no directory can show it) with a warning that names it, and
 * that warning stays one line: the forged text never starts a line of its
 * own and no control character reaches the log.
 */
START_TEST(test_s3_key_escaped_in_log)
{
	static const char name[] = "d/evil\nchunkfs: error: forged line\t\x7f";
	struct dirent *de;
	int seen_ok = 0;
	DIR *dir;

	ck_assert_int_eq(store_put(&st, name, "object", 6), 0);
	ck_assert_int_eq(store_put(&st, "d/ok", "c", 1), 0);
	mount_with(NULL);
	dir = opendir(tm_path(m.mnt, "d"));
	ck_assert_ptr_nonnull(dir);
	while ((de = readdir(dir)) != NULL) {
		ck_assert_ptr_null(strchr(de->d_name, '\n'));
		seen_ok += strcmp(de->d_name, "ok") == 0;
	}
	closedir(dir);
	ck_assert_int_eq(seen_ok, 1);
	ck_assert_int_ge(log_lines_with("forged line"), 1);
	ck_assert_int_eq(log_lines_with_but("forged line", "evil"), 0);
	ck_assert_int_eq(log_lines_with("\x7f"), 0);
	ck_assert_int_eq(log_lines_with("\t"), 0);
}
END_TEST

/* A socket on 127.0.0.1: listening on a port of its own (*port set) when
 * port_out is not NULL, else connected to port. */
static int loopback_socket(unsigned port, unsigned *port_out)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	if (port_out == NULL) {
		a.sin_port = htons((uint16_t)port);
		ck_assert_int_eq(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
		return s;
	}
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s, 4), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
	*port_out = ntohs(a.sin_port);
	return s;
}

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Clients that connect and say nothing: another client is answered at
 * once (it waited 2 s per silent client before), and the silent ones are
 * closed by the server after its deadline. */
START_TEST(test_metrics_silent_clients_block_nobody)
{
	int silent[3], held;
	unsigned port;
	char opts[64];
	struct timespec t0;

	held = loopback_socket(0, &port);
	close(held); /* a port that was free a moment ago */
	snprintf(opts, sizeof(opts), "metrics_port=%u", port);
	mount_with(opts);
	for (int i = 0; i < 3; i++)
		silent[i] = loopback_socket(port, NULL);
	usleep(300 * 1000); /* the server has taken them */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(tm_sh("curl -sf --max-time 1 http://127.0.0.1:%u/metrics "
	                       "| grep -q '^chunkfs_'",
	                       port),
	                 0);
	ck_assert_msg(since(&t0) < 1.0, "the answer took %.2f s", since(&t0));
	for (int i = 0; i < 3; i++) {
		struct pollfd p = {.fd = silent[i], .events = POLLIN};
		char c;

		ck_assert_int_eq(poll(&p, 1, 4000), 1); /* closed within the deadline */
		ck_assert_int_le(recv(silent[i], &c, 1, 0), 0);
		close(silent[i]);
	}
}
END_TEST

/* A metrics port another process listens on: the mount comes up and
 * serves files, with a warning that names the port. */
START_TEST(test_metrics_port_taken_mount_goes_on)
{
	unsigned port;
	int held = loopback_socket(0, &port);
	char opts[64], want[128];
	struct stat sb;

	snprintf(opts, sizeof(opts), "metrics_port=%u", port);
	ck_assert_int_eq(store_put(&st, "f", "data", 4), 0);
	mount_with(opts);
	ck_assert_int_eq(stat(tm_path(m.mnt, "f"), &sb), 0);
	ck_assert_int_eq(sb.st_size, 4);
	snprintf(want, sizeof(want), "cannot serve metrics on 127.0.0.1:%u: Address already in use",
	         port);
	ck_assert_int_eq(log_lines_with(want), 1);
	ck_assert_int_eq(log_lines_with("the mount goes on without metrics"), 1);
	close(held);
}
END_TEST

static Suite *untrusted_suite(enum store_kind kind)
{
	Suite *s = suite_create(kind == STORE_FS ? "untrusted_fs" : "untrusted_s3");
	TCase *tc = tcase_create(kind == STORE_FS ? "fs" : "s3");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	if (kind == STORE_FS) {
		tcase_add_test(tc, test_metrics_silent_clients_block_nobody);
		tcase_add_test(tc, test_metrics_port_taken_mount_goes_on);
	}
	if (kind == STORE_S3) {
		tcase_add_test(tc, test_s3_key_escaped_in_log);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return store_run_suites(untrusted_suite, &g_kind, "untrusted");
}
