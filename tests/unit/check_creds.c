/*
 * check_creds.c - unit tests for backends/s3/creds.c, the AWS credentials
 * provider chain.
 *
 * Every test runs in its own process (fork mode) with its own scratch
 * directory as HOME, no AWS_* variable but those it sets, and IMDS
 * disabled unless the test turns it on.  The log (at debug level) goes to
 * a file in the scratch directory; teardown fails the test if a secret
 * marker ("s3cr3t", "t0k3n": every secret and token used here holds one)
 * shows up in it.  CHUNKFS_TEST_VERBOSE=1 copies the log to stderr.
 *
 * The remote sources are tested against tests/creds/standin.js, a Node.js
 * stand-in for IMDS, the container endpoint and STS on 127.0.0.1 with a
 * free port.  Each test starts the stand-ins it needs and stops them in
 * teardown; they also die with the test process (PR_SET_PDEATHSIG) and
 * exit on their own after two minutes.  Without node those tests print
 * "SKIP" (counted as skipped by tests/run-tests.sh).
 *
 * Two tests enter a private network namespace (as root) to check the real
 * default endpoints: 169.254.170.2 and 169.254.169.254 are added to its
 * loopback device, and a blackhole route to 169.254.169.254 shows that a
 * silent IMDS gives up within a few seconds.
 *
 * Groups: time/url helpers, static sources (environment, shared files,
 * options), order of the chain, web identity, container, IMDS, refresh,
 * nothing found, default endpoints.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "s3/creds_i.h"
#include "suites.h"

extern char **environ;

/* ------------------------------------------------------------------------ */
/* Fixture: scratch HOME, clean environment, captured log                   */

static char tmpdir[PATH_MAX];
static char logpath[PATH_MAX + 16];
static int saved_stderr = -1;

#define MAX_STANDINS 4
struct standin {
	pid_t pid;
	int port;
	char url[128];
};
static struct standin standins[MAX_STANDINS];
static int n_standins;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void clear_aws_env(void)
{
	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e != NULL; e++) {
			if (strncmp(*e, "AWS_", 4) == 0) {
				char name[256];
				size_t n = strcspn(*e, "=");

				ck_assert_uint_lt(n, sizeof(name));
				memcpy(name, *e, n);
				name[n] = '\0';
				unsetenv(name);
				again = 1;
				break;
			}
		}
	}
}

static char *path_in(const char *name)
{
	static char buf[4][PATH_MAX + 64];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, PATH_MAX + 64, "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	char tmp[PATH_MAX + 80];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(content, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, mode), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

static char *read_all(const char *path)
{
	struct stat st;
	char *buf;
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return strdup("");
	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, (size_t)st.st_size, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int log_contains(const char *needle)
{
	char *log = read_all(logpath);
	int found = strstr(log, needle) != NULL;

	free(log);
	return found;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void setup(void)
{
	const char *base = getenv("CHUNKFS_TEST_TMP");
	int fd;

	snprintf(tmpdir, sizeof(tmpdir), "%s/creds.XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	clear_aws_env();
	setenv("HOME", tmpdir, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	ck_assert_int_eq(mkdir(path_in(".aws"), 0700), 0);

	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	fflush(stderr);
	saved_stderr = dup(2);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, 2);
	close(fd);
	log_set_level(LOG_LEVEL_DEBUG);
	n_standins = 0;
}

static void standins_stop(void)
{
	for (int i = 0; i < n_standins; i++) {
		if (standins[i].pid > 0) {
			kill(standins[i].pid, SIGTERM);
			waitpid(standins[i].pid, NULL, 0);
			standins[i].pid = 0;
		}
	}
	n_standins = 0;
}

static void teardown(void)
{
	char *log;
	const char *verbose = getenv("CHUNKFS_TEST_VERBOSE");

	standins_stop();
	fflush(stderr);
	log = read_all(logpath);
	if (verbose != NULL && *verbose != '\0' && *verbose != '0')
		dprintf(saved_stderr, "----- log\n%s-----\n", log);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	/* Every secret and token in these tests holds one of these. */
	ck_assert_msg(strstr(log, "s3cr3t") == NULL, "a secret key reached the log");
	ck_assert_msg(strstr(log, "t0k3n") == NULL, "a token reached the log");
	free(log);
}

/* ------------------------------------------------------------------------ */
/* The stand-in servers                                                     */

static int have_node(void)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	while (path != NULL && *path != '\0') {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/node", (int)n, path);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

#define NEED_NODE()                                                                                \
	do {                                                                                       \
		if (!have_node()) {                                                                \
			printf("SKIP creds/%s: node (Node.js) is not installed\n", __func__);      \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Start standin.js in mode on host:port (0: a free one) with the extra
 * arguments given (NULL-terminated); wait until it listens. */
static struct standin *standin_start(const char *mode, const char *host, int port, ...)
{
	const char *script = getenv("CHUNKFS_CREDS_STANDIN");
	char ready[PATH_MAX + 32], out[PATH_MAX + 32], portstr[16];
	const char *argv[40];
	struct standin *s;
	double deadline;
	va_list ap;
	int n = 0, status;
	pid_t pid;

	ck_assert_int_lt(n_standins, MAX_STANDINS);
	s = &standins[n_standins];
	snprintf(ready, sizeof(ready), "%s/ready.%d", tmpdir, n_standins);
	snprintf(out, sizeof(out), "%s/standin.%d.out", tmpdir, n_standins);
	snprintf(portstr, sizeof(portstr), "%d", port);
	argv[n++] = "node";
	argv[n++] = script && *script ? script : "tests/creds/standin.js";
	argv[n++] = "--mode";
	argv[n++] = mode;
	argv[n++] = "--host";
	argv[n++] = host;
	argv[n++] = "--port";
	argv[n++] = portstr;
	argv[n++] = "--ready";
	argv[n++] = ready;
	argv[n++] = "--lifetime";
	argv[n++] = "120";
	va_start(ap, port);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
		ck_assert_int_lt(n, 38);
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp("node", (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	n_standins++;
	deadline = now_s() + 10;
	while (access(ready, R_OK) != 0) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			char *o = read_all(out);

			s->pid = 0;
			ck_abort_msg("standin.js %s exited: %s", mode, o);
		}
		ck_assert_msg(now_s() < deadline, "standin.js %s did not start in 10 s", mode);
		usleep(20 * 1000);
	}
	{
		char *p = read_all(ready);

		s->port = atoi(p);
		free(p);
	}
	ck_assert_int_gt(s->port, 0);
	snprintf(s->url, sizeof(s->url), "http://%s:%d", host, s->port);
	return s;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *user)
{
	char **buf = user;
	size_t old = *buf ? strlen(*buf) : 0, n = size * nmemb;
	char *grown = realloc(*buf, old + n + 1);

	if (grown == NULL)
		return 0;
	memcpy(grown + old, ptr, n);
	grown[old + n] = '\0';
	*buf = grown;
	return n;
}

/* GET url (with an optional header line); the caller frees the body. */
static char *http_get(const char *url, const char *header, long *status)
{
	struct curl_slist *hdrs = header ? curl_slist_append(NULL, header) : NULL;
	char *body = NULL;
	CURL *c = curl_easy_init();
	CURLcode rc;

	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	rc = curl_easy_perform(c);
	ck_assert_msg(rc == CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return body ? body : strdup("");
}

static void standin_control(const struct standin *s, const char *query)
{
	char url[512];
	long status;

	snprintf(url, sizeof(url), "%s/__control?%s", s->url, query);
	free(http_get(url, NULL, &status));
	ck_assert_int_eq(status, 200);
}

static json_t *standin_stats(const struct standin *s)
{
	char url[256];
	json_error_t err;
	json_t *j;
	long status;
	char *body;

	snprintf(url, sizeof(url), "%s/__stats", s->url);
	body = http_get(url, NULL, &status);
	ck_assert_int_eq(status, 200);
	j = json_loads(body, 0, &err);
	ck_assert_ptr_nonnull(j);
	free(body);
	return j;
}

static long stat_int(const struct standin *s, const char *key)
{
	json_t *j = standin_stats(s);
	long v = (long)json_integer_value(json_object_get(j, key));

	json_decref(j);
	return v;
}

/* The caller frees; "" for null. */
static char *stat_str(const struct standin *s, const char *key)
{
	json_t *j = standin_stats(s);
	const char *v = json_string_value(json_object_get(j, key));
	char *copy = strdup(v ? v : "");

	json_decref(j);
	return copy;
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* ------------------------------------------------------------------------ */
/* Assertions                                                               */

#define ENV_KEY    "AKIAENVEXAMPLE000001"
#define ENV_SECRET "env-s3cr3t-wJalrXUtnFEMI/K7MDENG/bPxRfiCY"
#define ENV_TOKEN  "env-t0k3n-FwoGZXIvYXdzEBYaDHhBTEXAMPLE"

static struct creds_provider *create(const struct creds_opts *o)
{
	struct creds_opts none = {0};

	return creds_provider_create(o ? o : &none);
}

/* Create, expect failure with errno want. */
static void create_fails(const struct creds_opts *o, int want)
{
	struct creds_provider *p;

	errno = 0;
	p = create(o);
	ck_assert_msg(p == NULL, "provider created from %s", p ? creds_source(p) : "");
	ck_assert_msg(errno == want, "errno %d (%s), want %d (%s)", errno, strerror(errno), want,
	              strerror(want));
}

static void expect_creds(struct creds_provider *p, const char *key, const char *secret,
                         const char *token)
{
	struct creds c;

	ck_assert_int_eq(creds_get(p, &c), 0);
	ck_assert_str_eq(c.access_key_id, key);
	ck_assert_str_eq(c.secret_access_key, secret);
	if (token == NULL)
		ck_assert_ptr_null(c.session_token);
	else
		ck_assert_str_eq(c.session_token, token);
	creds_free(&c);
}

/* The stand-in's N-th credentials, e.g. key "ASIAIMDS0002". */
static void expect_standin_creds(struct creds_provider *p, const char *mode, int n, long expires_in)
{
	char key[64], secret_prefix[64], token_prefix[64], upper[16];
	struct creds c;
	time_t now = time(NULL);

	for (size_t i = 0; i <= strlen(mode); i++)
		upper[i] = (char)(mode[i] >= 'a' && mode[i] <= 'z' ? mode[i] - 32 : mode[i]);
	snprintf(key, sizeof(key), "ASIA%s%04d", upper, n);
	snprintf(secret_prefix, sizeof(secret_prefix), "s3cr3t-%s-%d-", mode, n);
	snprintf(token_prefix, sizeof(token_prefix), "t0k3n-%s-%d-", mode, n);
	ck_assert_int_eq(creds_get(p, &c), 0);
	ck_assert_str_eq(c.access_key_id, key);
	ck_assert_ptr_nonnull(c.secret_access_key);
	ck_assert_int_eq(strncmp(c.secret_access_key, secret_prefix, strlen(secret_prefix)), 0);
	ck_assert_ptr_nonnull(c.session_token);
	ck_assert_int_eq(strncmp(c.session_token, token_prefix, strlen(token_prefix)), 0);
	ck_assert_uint_gt(strlen(c.session_token), 600);
	ck_assert_msg(labs((long)(c.expiration - now) - expires_in) <= 5,
	              "expires in %ld s, want about %ld", (long)(c.expiration - now), expires_in);
	creds_free(&c);
}

static void set_env_creds(int with_token)
{
	setenv("AWS_ACCESS_KEY_ID", ENV_KEY, 1);
	setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET, 1);
	if (with_token)
		setenv("AWS_SESSION_TOKEN", ENV_TOKEN, 1);
}

static const char credentials_file[] = "# test credentials\n"
                                       "[default]\n"
                                       "aws_access_key_id = AKIAFILEDEFAULT00001\n"
                                       "aws_secret_access_key = file-default-s3cr3t\n"
                                       "\n"
                                       "[dev]\n"
                                       "aws_access_key_id=AKIAFILEDEV000000001\n"
                                       "aws_secret_access_key=file-dev-s3cr3t\n"
                                       "aws_session_token=file-dev-t0k3n\n"
                                       "; a comment\n"
                                       "[regiononly]\n"
                                       "region = eu-west-1\n";

static void write_credentials(mode_t mode)
{
	write_file(path_in(".aws/credentials"), credentials_file, mode);
}

/* ------------------------------------------------------------------------ */
/* Helpers: time and container URLs                                         */

START_TEST(test_parse_time)
{
	time_t t = 0;

	ck_assert_int_eq(creds_parse_time("2024-05-01T12:00:00Z", &t), 0);
	ck_assert_int_eq((long)t, 1714564800L);
	ck_assert_int_eq(creds_parse_time("2024-05-01T12:00:00.123Z", &t), 0);
	ck_assert_int_eq((long)t, 1714564800L);
	ck_assert_int_eq(creds_parse_time("2024-05-01T14:30:00+02:30", &t), 0);
	ck_assert_int_eq((long)t, 1714564800L);
	ck_assert_int_eq(creds_parse_time("2024-05-01T10:00:00-0200", &t), 0);
	ck_assert_int_eq((long)t, 1714564800L);
	ck_assert_int_eq(creds_parse_time("1970-01-01T00:00:00Z", &t), 0);
	ck_assert_int_eq((long)t, 0L);
	ck_assert_int_eq(creds_parse_time("2024-05-01T12:00:00", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2024-13-01T12:00:00Z", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2024-05-01 12:00:00Z", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2024-05-01T12:00:00Zjunk", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2024-05-01T12:00:00.Z", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time(" 2024-05-01T12:00:00Z", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time(NULL, &t), -EINVAL);
}
END_TEST

START_TEST(test_container_url_allowed)
{
	static const char *const ok[] = {
	    "http://127.0.0.1:8080/creds", "http://127.5.6.7/x",
	    "http://localhost/x",          "http://[::1]:80/x",
	    "http://169.254.170.2/v2/x",   "http://169.254.170.23/v1/x",
	    "http://[fd00:ec2::23]/x",     "https://example.com/creds",
	};
	static const char *const refused[] = {
	    "http://example.com/x",
	    "http://192.0.2.1/x",
	    "http://169.254.169.254/x",
	    "http://127.0.0.1.example.com/",
	    "ftp://127.0.0.1/x",
	    "file:///etc/passwd",
	    "not a url",
	    "http://169.254.170.3/",
	    "http://[fd00:ec2::24]/x",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(creds_container_url_allowed(ok[i]) == 1, "%s refused", ok[i]);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		ck_assert_msg(creds_container_url_allowed(refused[i]) == 0, "%s allowed",
		              refused[i]);
	ck_assert_int_eq(creds_container_url_allowed(NULL), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Static sources                                                           */

START_TEST(test_anonymous)
{
	struct creds_opts o = {.anonymous = 1};
	struct creds_provider *p;
	struct creds c;

	set_env_creds(1);
	p = create(&o);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(creds_anonymous(p), 1);
	ck_assert_str_eq(creds_source(p), "anonymous");
	ck_assert_int_eq(creds_get(p, &c), 0);
	ck_assert_ptr_null(c.access_key_id);
	ck_assert_ptr_null(c.secret_access_key);
	ck_assert_ptr_null(c.session_token);
	ck_assert_int_eq((long)c.expiration, 0L);
	creds_free(&c);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_env)
{
	struct creds_provider *p;

	set_env_creds(1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "environment");
	ck_assert_int_eq(creds_anonymous(p), 0);
	expect_creds(p, ENV_KEY, ENV_SECRET, ENV_TOKEN);
	ck_assert(log_contains("AWS credentials from environment"));
	creds_provider_destroy(p);

	unsetenv("AWS_SESSION_TOKEN");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	expect_creds(p, ENV_KEY, ENV_SECRET, NULL);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_env_partial)
{
	setenv("AWS_ACCESS_KEY_ID", ENV_KEY, 1);
	write_credentials(0600); /* no falling through to the files */
	create_fails(NULL, EINVAL);
	ck_assert(log_contains("AWS_SECRET_ACCESS_KEY is not"));
}
END_TEST

START_TEST(test_env_empty_is_unset)
{
	struct creds_provider *p;

	setenv("AWS_ACCESS_KEY_ID", "", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "", 1);
	write_credentials(0600);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "shared files (profile default)");
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_shared_default)
{
	struct creds_provider *p;

	write_credentials(0600);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "shared files (profile default)");
	expect_creds(p, "AKIAFILEDEFAULT00001", "file-default-s3cr3t", NULL);
	ck_assert(!log_contains("can be read by"));
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_shared_readable_warns)
{
	struct creds_provider *p;

	write_credentials(0644);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert(log_contains("can be read by everyone (mode 0644)"));
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_shared_aws_profile)
{
	struct creds_provider *p;

	write_credentials(0600);
	setenv("AWS_PROFILE", "dev", 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "shared files (profile dev)");
	expect_creds(p, "AKIAFILEDEV000000001", "file-dev-s3cr3t", "file-dev-t0k3n");
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_shared_config_file)
{
	struct creds_provider *p;

	write_file(path_in(".aws/config"),
	           "[default]\n"
	           "region = us-east-1\n"
	           "[prod]\n" /* not a profile in the config file */
	           "aws_access_key_id = AKIAWRONGSECTION0001\n"
	           "aws_secret_access_key = wrong-s3cr3t\n"
	           "[profile  prod]\n"
	           "region = eu-central-1\n"
	           "aws_access_key_id = AKIACONFIGPROD000001\n"
	           "aws_secret_access_key = config-prod-s3cr3t\n"
	           "aws_security_token = config-prod-old-t0k3n\n"
	           "s3 =\n"
	           "    max_concurrent_requests = 20\n",
	           0600);
	setenv("AWS_PROFILE", "prod", 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "shared files (profile prod)");
	expect_creds(p, "AKIACONFIGPROD000001", "config-prod-s3cr3t", "config-prod-old-t0k3n");
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_shared_credentials_beat_config)
{
	struct creds_provider *p;

	write_credentials(0600);
	write_file(path_in(".aws/config"),
	           "[default]\n"
	           "aws_access_key_id = AKIACONFIGDEFAULT001\n"
	           "aws_secret_access_key = config-default-s3cr3t\n",
	           0600);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	expect_creds(p, "AKIAFILEDEFAULT00001", "file-default-s3cr3t", NULL);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_shared_env_paths)
{
	struct creds_provider *p;

	/* Files elsewhere; the ones in ~/.aws must be ignored. */
	write_credentials(0600);
	write_file(path_in("creds.ini"),
	           "[default]\naws_access_key_id = AKIAELSEWHERE0000001\n"
	           "aws_secret_access_key = elsewhere-s3cr3t\n",
	           0600);
	write_file(path_in("conf.ini"),
	           "[profile other]\naws_access_key_id = AKIACONFELSEWHERE001\n"
	           "aws_secret_access_key = conf-elsewhere-s3cr3t\n",
	           0600);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path_in("creds.ini"), 1);
	setenv("AWS_CONFIG_FILE", path_in("conf.ini"), 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	expect_creds(p, "AKIAELSEWHERE0000001", "elsewhere-s3cr3t", NULL);
	creds_provider_destroy(p);

	setenv("AWS_PROFILE", "other", 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	expect_creds(p, "AKIACONFELSEWHERE001", "conf-elsewhere-s3cr3t", NULL);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_shared_long_token)
{
	char *file, *token;
	struct creds_provider *p;
	size_t n = 3000;

	/* Real session tokens are far longer than inih's default line. */
	token = malloc(n + 1);
	ck_assert_ptr_nonnull(token);
	memcpy(token, "long-t0k3n-", 11);
	for (size_t i = 11; i < n; i++)
		token[i] = (char)('A' + i % 26);
	token[n] = '\0';
	ck_assert_int_gt(asprintf(&file,
	                          "[default]\naws_access_key_id = AKIALONGTOKEN0000001\n"
	                          "aws_session_token = %s\n"
	                          "aws_secret_access_key = long-s3cr3t\n",
	                          token),
	                 0);
	write_file(path_in(".aws/credentials"), file, 0600);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	expect_creds(p, "AKIALONGTOKEN0000001", "long-s3cr3t", token);
	creds_provider_destroy(p);
	free(file);
	free(token);
}
END_TEST

START_TEST(test_shared_parse_error)
{
	write_file(path_in(".aws/credentials"),
	           "[default]\naws_access_key_id = AKIAPARSEERROR000001\n"
	           "this line has no equals sign\n"
	           "aws_secret_access_key = parse-s3cr3t\n",
	           0600);
	create_fails(NULL, EINVAL);
	ck_assert(log_contains("line 3 cannot be parsed"));
}
END_TEST

START_TEST(test_shared_half_pair)
{
	write_file(path_in(".aws/credentials"),
	           "[default]\naws_access_key_id = AKIAHALF000000000001\n", 0600);
	create_fails(NULL, EINVAL);
	ck_assert(log_contains("has aws_access_key_id but not aws_secret_access_key"));
}
END_TEST

START_TEST(test_shared_unsupported)
{
	write_file(path_in(".aws/config"),
	           "[profile assume]\nrole_arn = arn:aws:iam::123456789012:role/x\n"
	           "source_profile = default\n",
	           0600);
	setenv("AWS_PROFILE", "assume", 1);
	create_fails(NULL, EINVAL);
	ck_assert(log_contains("uses source_profile, which chunkfs does not support"));
}
END_TEST

START_TEST(test_aws_profile_missing)
{
	write_credentials(0600);
	setenv("AWS_PROFILE", "nope", 1);
	create_fails(NULL, ENOENT);
	ck_assert(log_contains("AWS profile nope (from AWS_PROFILE) not found"));
}
END_TEST

START_TEST(test_aws_profile_without_keys_goes_on)
{
	/* A profile with only a region: the chain goes on (to nothing here). */
	write_credentials(0600);
	setenv("AWS_PROFILE", "regiononly", 1);
	create_fails(NULL, ENOENT);
	ck_assert(log_contains("no AWS credentials found; tried environment"));
	ck_assert(log_contains("profile regiononly holds no credentials"));
}
END_TEST

START_TEST(test_options_profile)
{
	struct creds_opts o = {.profile = "dev"};
	struct creds_provider *p;

	write_credentials(0600);
	set_env_creds(1); /* options beat the environment */
	p = create(&o);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "options (profile dev)");
	expect_creds(p, "AKIAFILEDEV000000001", "file-dev-s3cr3t", "file-dev-t0k3n");
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_options_credentials_file)
{
	struct creds_opts o = {.credentials_file = NULL};
	struct creds_provider *p;

	write_credentials(0600);
	write_file(path_in("custom"),
	           "[default]\naws_access_key_id = AKIACUSTOMFILE000001\n"
	           "aws_secret_access_key = custom-s3cr3t\n",
	           0600);
	set_env_creds(0);
	o.credentials_file = path_in("custom");
	p = create(&o);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "options (profile default)");
	expect_creds(p, "AKIACUSTOMFILE000001", "custom-s3cr3t", NULL);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_options_missing_profile)
{
	struct creds_opts o = {.profile = "nope"};

	write_credentials(0600);
	set_env_creds(1); /* must not be used instead */
	create_fails(&o, ENOENT);
	ck_assert(log_contains("cannot use the AWS profile nope given in the options"));
	ck_assert(!log_contains("AWS credentials from"));
}
END_TEST

START_TEST(test_options_profile_without_keys)
{
	struct creds_opts o = {.profile = "regiononly"};

	write_credentials(0600);
	set_env_creds(1);
	create_fails(&o, ENOENT);
	ck_assert(log_contains("profile regiononly holds no credentials"));
}
END_TEST

START_TEST(test_options_missing_file)
{
	struct creds_opts o = {.credentials_file = NULL};

	write_credentials(0600);
	o.credentials_file = path_in("does-not-exist");
	create_fails(&o, ENOENT);
	ck_assert(log_contains("does-not-exist does not exist"));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Web identity                                                             */

#define ROLE_ARN "arn:aws:iam::123456789012:role/chunkfs-test"

static void web_identity_env(const struct standin *sts, const char *token)
{
	write_file(path_in("web-identity"), token, 0600);
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path_in("web-identity"), 1);
	setenv("AWS_ROLE_ARN", ROLE_ARN, 1);
	setenv("AWS_ENDPOINT_URL_STS", sts->url, 1);
}

START_TEST(test_web_identity)
{
	struct creds_provider *p;
	char session[64], *s;
	struct standin *sts;

	NEED_NODE();
	sts = standin_start("sts", "127.0.0.1", 0, NULL);
	web_identity_env(sts, "jwt-t0k3n-one\n");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "web identity");
	expect_standin_creds(p, "sts", 1, 3600);
	ck_assert_int_eq(stat_int(sts, "creds"), 1);
	s = stat_str(sts, "last_token");
	ck_assert_str_eq(s, "jwt-t0k3n-one"); /* without the newline */
	free(s);
	s = stat_str(sts, "last_role_arn");
	ck_assert_str_eq(s, ROLE_ARN);
	free(s);
	snprintf(session, sizeof(session), "chunkfs-%ld", (long)getpid());
	s = stat_str(sts, "last_session");
	ck_assert_str_eq(s, session);
	free(s);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_web_identity_rotation)
{
	struct creds_provider *p;
	struct standin *sts;
	char *s;

	/* The token file is read again at each refresh. */
	NEED_NODE();
	sts = standin_start("sts", "127.0.0.1", 0, "--expires", "120", NULL);
	web_identity_env(sts, "jwt-t0k3n-one");
	setenv("AWS_ROLE_SESSION_NAME", "my-session", 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	write_file(path_in("web-identity"), "jwt-t0k3n-two", 0600);
	standin_control(sts, "expires=3600");
	expect_standin_creds(p, "sts", 2, 3600);
	s = stat_str(sts, "last_token");
	ck_assert_str_eq(s, "jwt-t0k3n-two");
	free(s);
	s = stat_str(sts, "last_session");
	ck_assert_str_eq(s, "my-session");
	free(s);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_web_identity_profile)
{
	struct creds_provider *p;
	struct standin *sts;
	char *conf, *s;

	NEED_NODE();
	sts = standin_start("sts", "127.0.0.1", 0, NULL);
	write_file(path_in("web-identity"), "jwt-t0k3n-profile", 0600);
	ck_assert_int_gt(asprintf(&conf,
	                          "[profile k8s]\nrole_arn = %s\nweb_identity_token_file = %s\n"
	                          "role_session_name = from-profile\n",
	                          ROLE_ARN, path_in("web-identity")),
	                 0);
	write_file(path_in(".aws/config"), conf, 0600);
	free(conf);
	setenv("AWS_ENDPOINT_URL_STS", sts->url, 1);
	setenv("AWS_PROFILE", "k8s", 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "web identity (profile k8s)");
	expect_standin_creds(p, "sts", 1, 3600);
	s = stat_str(sts, "last_session");
	ck_assert_str_eq(s, "from-profile");
	free(s);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_web_identity_denied)
{
	struct standin *sts;

	NEED_NODE();
	sts = standin_start("sts", "127.0.0.1", 0, "--fail", "403", NULL);
	web_identity_env(sts, "jwt-t0k3n-denied");
	write_credentials(0600); /* a failing configured source does not fall through */
	create_fails(NULL, EACCES);
	ck_assert(log_contains("cannot get AWS credentials from web identity"));
	ck_assert(log_contains("AccessDenied: Not authorized"));
	ck_assert_int_eq(stat_int(sts, "failed"), 1); /* 4xx: no retry */
}
END_TEST

START_TEST(test_web_identity_error_quoting_token)
{
	struct standin *sts;

	/* STS error messages are logged, unless they quote the token. */
	NEED_NODE();
	sts = standin_start("sts", "127.0.0.1", 0, "--fail", "400", "--echo-token", NULL);
	web_identity_env(sts, "jwt-t0k3n-echoed");
	create_fails(NULL, EACCES);
	ck_assert(log_contains("STS answered HTTP 400 InvalidIdentityToken"));
	ck_assert(!log_contains("Not authorized"));
}
END_TEST

/* Found by tests/fuzz/fuzz_creds.c: the Code was printed even when it
 * quoted the token. */
START_TEST(test_sts_error_code_quoting_token)
{
	static const char body[] = "<ErrorResponse><Error><Code>Bad jwt-t0k3n</Code>"
	                           "<Message>no</Message></Error></ErrorResponse>";
	char why[WHY_MAX] = "";

	ck_assert_int_eq(creds_sts_error(400, body, sizeof(body) - 1, "jwt-t0k3n", why), -EINVAL);
	ck_assert_ptr_null(strstr(why, "jwt-t0k3n"));
	ck_assert_str_eq(why, "STS answered HTTP 400: no");
}
END_TEST

START_TEST(test_web_identity_missing_token_file)
{
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path_in("missing-token"), 1);
	setenv("AWS_ROLE_ARN", ROLE_ARN, 1);
	setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1", 1);
	write_credentials(0600);
	create_fails(NULL, ENOENT);
	ck_assert(log_contains("cannot get AWS credentials from web identity: cannot open"));
}
END_TEST

START_TEST(test_web_identity_half_configured)
{
	struct creds_provider *p;

	/* Only one of the two variables: not configured, the chain goes on. */
	setenv("AWS_ROLE_ARN", ROLE_ARN, 1);
	write_credentials(0600);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "shared files (profile default)");
	creds_provider_destroy(p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Container                                                                */

START_TEST(test_container_full_uri)
{
	struct creds_provider *p;
	struct standin *c;
	char url[256], *s;

	NEED_NODE();
	c = standin_start("container", "127.0.0.1", 0, "--auth", "auth-t0k3n-1", NULL);
	snprintf(url, sizeof(url), "%s/v2/credentials/abc", c->url);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "auth-t0k3n-1", 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "container");
	expect_standin_creds(p, "container", 1, 3600);
	ck_assert_int_eq(stat_int(c, "rejected"), 0);
	s = stat_str(c, "last_path");
	ck_assert_str_eq(s, "/v2/credentials/abc");
	free(s);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_container_auth_required)
{
	struct standin *c;
	char url[256];

	NEED_NODE();
	c = standin_start("container", "127.0.0.1", 0, "--auth", "auth-t0k3n-1", NULL);
	snprintf(url, sizeof(url), "%s/creds", c->url);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	create_fails(NULL, EACCES);
	ck_assert_int_eq(stat_int(c, "rejected"), 1);
	ck_assert(log_contains("cannot get AWS credentials from the container endpoint"));
	ck_assert(log_contains("answered HTTP 401"));
}
END_TEST

START_TEST(test_container_token_file)
{
	struct creds_provider *p;
	struct standin *c;
	char url[256];

	/* The token file beats the variable and is read again at each refresh. */
	NEED_NODE();
	c = standin_start("container", "127.0.0.1", 0, "--auth", "auth-t0k3n-file-1", "--expires",
	                  "120", NULL);
	snprintf(url, sizeof(url), "%s/creds", c->url);
	write_file(path_in("pod-identity-token"), "auth-t0k3n-file-1\n", 0600);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "auth-t0k3n-wrong", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path_in("pod-identity-token"), 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(stat_int(c, "creds"), 1);

	/* Due for a refresh (120 s left), with a new token. */
	write_file(path_in("pod-identity-token"), "auth-t0k3n-file-2", 0600);
	standin_control(c, "auth=auth-t0k3n-file-2&expires=3600");
	expect_standin_creds(p, "container", 2, 3600);
	ck_assert_int_eq(stat_int(c, "rejected"), 0);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_container_host_refused)
{
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds", 1);
	create_fails(NULL, EINVAL);
	ck_assert(log_contains("is neither https nor http to a loopback address"));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* IMDS                                                                     */

static struct standin *imds_start(const char *expires)
{
	struct standin *s;

	s = standin_start("imds", "127.0.0.1", 0, "--require-token", "--expires", expires, NULL);
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", s->url, 1);
	return s;
}

START_TEST(test_imds)
{
	struct creds_provider *p;
	struct standin *s;
	char *ttl;

	NEED_NODE();
	s = imds_start("3600");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "instance profile (IMDSv2)");
	expect_standin_creds(p, "imds", 1, 3600);
	ck_assert_int_eq(stat_int(s, "token"), 1);
	ck_assert_int_eq(stat_int(s, "role"), 1);
	ck_assert_int_eq(stat_int(s, "creds"), 1);
	ck_assert_int_eq(stat_int(s, "rejected"), 0); /* the token was sent */
	ttl = stat_str(s, "last_ttl");
	ck_assert_str_eq(ttl, "21600");
	free(ttl);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_imds_requires_token)
{
	struct standin *s;
	char url[256];
	long status;

	/* The stand-in refuses what IMDSv2 refuses, so test_imds means
	 * something. */
	NEED_NODE();
	s = imds_start("3600");
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", s->url);
	free(http_get(url, NULL, &status));
	ck_assert_int_eq(status, 401);
	free(http_get(url, "X-aws-ec2-metadata-token: made-up", &status));
	ck_assert_int_eq(status, 401);
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/chunkfs-test-role",
	         s->url);
	free(http_get(url, NULL, &status));
	ck_assert_int_eq(status, 401);
	ck_assert_int_eq(stat_int(s, "rejected"), 3);
	ck_assert_int_eq(stat_int(s, "creds"), 0);
}
END_TEST

START_TEST(test_imds_disabled)
{
	struct standin *s;

	NEED_NODE();
	s = imds_start("3600");
	setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
	create_fails(NULL, ENOENT);
	ck_assert_int_eq(stat_int(s, "total"), 0);
	ck_assert(log_contains("instance profile (AWS_EC2_METADATA_DISABLED=true)"));
}
END_TEST

START_TEST(test_imds_no_role)
{
	struct standin *s;

	NEED_NODE();
	s = imds_start("3600");
	standin_control(s, "role=");
	create_fails(NULL, ENOENT);
	ck_assert(log_contains("no instance profile attached"));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The order of the chain                                                   */

START_TEST(test_chain_order)
{
	struct creds_opts o = {.profile = "default"};
	struct standin *sts, *cont, *imds;
	struct creds_provider *p;
	char url[256];

	NEED_NODE();
	sts = standin_start("sts", "127.0.0.1", 0, NULL);
	cont = standin_start("container", "127.0.0.1", 0, NULL);
	imds = imds_start("3600");
	set_env_creds(1);
	web_identity_env(sts, "jwt-t0k3n-order");
	write_credentials(0600);
	snprintf(url, sizeof(url), "%s/creds", cont->url);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);

	static const struct {
		const char *source;
		const char *remove; /* what to take away for the next round */
	} rounds[] = {
	    {"environment", "AWS_ACCESS_KEY_ID"},
	    {"web identity", "AWS_WEB_IDENTITY_TOKEN_FILE"},
	    {"shared files (profile default)", "credentials"},
	    {"container", "AWS_CONTAINER_CREDENTIALS_FULL_URI"},
	    {"instance profile (IMDSv2)", NULL},
	};
	for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
		p = create(NULL);
		ck_assert_ptr_nonnull(p);
		ck_assert_str_eq(creds_source(p), rounds[i].source);
		creds_provider_destroy(p);
		if (rounds[i].remove == NULL)
			break;
		if (strcmp(rounds[i].remove, "credentials") == 0)
			ck_assert_int_eq(unlink(path_in(".aws/credentials")), 0);
		else
			unsetenv(rounds[i].remove);
		if (strcmp(rounds[i].remove, "AWS_ACCESS_KEY_ID") == 0)
			unsetenv("AWS_SECRET_ACCESS_KEY");
	}
	ck_assert_int_eq(stat_int(sts, "creds"), 1);
	ck_assert_int_eq(stat_int(cont, "creds"), 1);
	ck_assert_int_eq(stat_int(imds, "creds"), 1);

	/* Options beat everything, down to the shared files they name. */
	write_credentials(0600);
	set_env_creds(1);
	p = create(&o);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "options (profile default)");
	creds_provider_destroy(p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Refresh                                                                  */

START_TEST(test_refresh)
{
	struct creds_provider *p;
	struct standin *s;

	NEED_NODE();
	s = imds_start("120");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	standin_control(s, "expires=3600");
	/* 120 s left is inside the refresh window: creds_get refreshes. */
	expect_standin_creds(p, "imds", 2, 3600);
	expect_standin_creds(p, "imds", 2, 3600);
	ck_assert_int_eq(stat_int(s, "creds"), 2);
	ck_assert(log_contains("refreshed from instance profile (IMDSv2), valid for"));
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_no_refresh_when_fresh)
{
	struct creds_provider *p;
	struct standin *s;

	NEED_NODE();
	s = imds_start("3600");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 5; i++)
		expect_standin_creds(p, "imds", 1, 3600);
	ck_assert_int_eq(stat_int(s, "total"), 3); /* token, role, creds, once */
	creds_provider_destroy(p);
}
END_TEST

struct worker {
	struct creds_provider *p;
	pthread_barrier_t *barrier;
	int rc;
	int number;    /* the stand-in's answer number, from the key */
	int secret_ok; /* the secret belongs to the same answer */
	time_t expiration;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct creds c;
	char prefix[64];

	pthread_barrier_wait(w->barrier);
	w->rc = creds_get(w->p, &c);
	if (w->rc == 0) {
		w->number = atoi(c.access_key_id + strlen("ASIAIMDS"));
		snprintf(prefix, sizeof(prefix), "s3cr3t-imds-%d-", w->number);
		w->secret_ok = c.secret_access_key != NULL &&
		               strncmp(c.secret_access_key, prefix, strlen(prefix)) == 0 &&
		               c.session_token != NULL;
		w->expiration = c.expiration;
	}
	creds_free(&c);
	return NULL;
}

/* Run creds_get in 8 threads at once; count[n] = threads that got answer n. */
static void run_workers(struct creds_provider *p, int count[4])
{
	enum { N = 8 };
	pthread_barrier_t barrier;
	struct worker w[N];
	pthread_t t[N];
	time_t now;

	memset(count, 0, 4 * sizeof(int));
	pthread_barrier_init(&barrier, NULL, N);
	for (int i = 0; i < N; i++) {
		w[i] = (struct worker){.p = p, .barrier = &barrier};
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	now = time(NULL);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(w[i].rc, 0);
		ck_assert_msg(w[i].secret_ok, "thread %d got a mixed-up snapshot", i);
		ck_assert_int_gt((long)(w[i].expiration - now), CREDS_EXPIRY_MARGIN);
		ck_assert_int_ge(w[i].number, 1);
		ck_assert_int_le(w[i].number, 3);
		count[w[i].number]++;
	}
}

START_TEST(test_refresh_concurrent)
{
	struct creds_provider *p;
	struct standin *s;
	int count[4];

	/* Old credentials still valid: one thread refreshes (slowly), the
	 * others carry on with the old ones meanwhile. */
	NEED_NODE();
	s = imds_start("120");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	standin_control(s, "expires=3600&delay=1000");
	run_workers(p, count);
	ck_assert_int_eq(stat_int(s, "creds"), 2); /* one refresh */
	ck_assert_int_eq(count[3], 0);
	ck_assert_int_ge(count[1], 1); /* not held up by the refresh */
	ck_assert_int_ge(count[2], 1); /* the refreshing thread */
	standin_control(s, "delay=0");
	expect_standin_creds(p, "imds", 2, 3600);
	ck_assert_int_eq(stat_int(s, "creds"), 2);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_refresh_expired_concurrent)
{
	struct creds_provider *p;
	struct standin *s;
	int count[4];

	/* Old credentials expired: everyone waits for the one refresh. */
	NEED_NODE();
	s = imds_start("-60");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert(log_contains("have already expired"));
	standin_control(s, "expires=3600&delay=500");
	run_workers(p, count);
	ck_assert_int_eq(count[2], 8);
	ck_assert_int_eq(stat_int(s, "creds"), 2);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_refresh_failure_keeps_old)
{
	struct creds_provider *p;
	struct standin *s;
	long failed;

	NEED_NODE();
	s = imds_start("120");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	standin_control(s, "fail=500");
	expect_standin_creds(p, "imds", 1, 120);
	ck_assert(log_contains("refreshing AWS credentials from instance profile (IMDSv2) failed"));
	ck_assert(log_contains("the current ones are valid for"));
	failed = stat_int(s, "failed");
	ck_assert_int_ge(failed, 1);
	/* No new attempt before CREDS_RETRY_INTERVAL. */
	expect_standin_creds(p, "imds", 1, 120);
	ck_assert_int_eq(stat_int(s, "failed"), failed);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_refresh_retry_after_interval)
{
	struct creds_provider *p;
	struct standin *s;

	NEED_NODE();
	s = imds_start("120");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	standin_control(s, "fail=503");
	expect_standin_creds(p, "imds", 1, 120);
	standin_control(s, "fail=0&expires=3600");
	expect_standin_creds(p, "imds", 1, 120);
	sleep(CREDS_RETRY_INTERVAL + 1);
	expect_standin_creds(p, "imds", 2, 3600);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_refresh_expired_fails)
{
	struct creds_provider *p;
	struct standin *s;
	struct creds c;

	NEED_NODE();
	s = imds_start("-60");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	standin_control(s, "fail=500");
	ck_assert_int_eq(creds_get(p, &c), -EACCES);
	ck_assert_ptr_null(c.access_key_id);
	ck_assert_ptr_null(c.secret_access_key);
	ck_assert_ptr_null(c.session_token);
	creds_free(&c);
	ck_assert(log_contains("the current ones have expired"));
	/* And at once, without waiting for another timeout. */
	ck_assert_int_eq(creds_get(p, &c), -EACCES);
	creds_free(&c);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_static_never_refreshed)
{
	struct creds_provider *p;
	struct creds c;

	set_env_creds(1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(creds_get(p, &c), 0);
		ck_assert_int_eq((long)c.expiration, 0L);
		creds_free(&c);
	}
	creds_provider_destroy(p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Nothing found                                                            */

START_TEST(test_nothing_configured)
{
	char url[64];
	double t0;

	unsetenv("AWS_EC2_METADATA_DISABLED");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", closed_port());
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
	t0 = now_s();
	create_fails(NULL, ENOENT);
	ck_assert_msg(now_s() - t0 < 3.0, "took %.1f s", now_s() - t0);
	ck_assert(log_contains("no AWS credentials found; tried environment (AWS_ACCESS_KEY_ID not "
	                       "set), web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set), shared "
	                       "files (profile default is in neither"));
	ck_assert(
	    log_contains("container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not "
	                 "set), instance profile ("));
	ck_assert(log_contains("use -o anonymous"));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Default endpoints, in a network namespace of our own                     */

static int netns_sock = -1;

/* Enter a new network namespace with lo up; 0, or -errno (not root ...). */
static int netns_enter(void)
{
	struct ifreq ifr = {0};

	if (unshare(CLONE_NEWNET) != 0)
		return -errno;
	netns_sock = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(netns_sock, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	ck_assert_int_eq(ioctl(netns_sock, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	ck_assert_int_eq(ioctl(netns_sock, SIOCSIFFLAGS, &ifr), 0);
	return 0;
}

static void netns_add_addr(const char *label, const char *ip)
{
	struct ifreq ifr = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", label);
	sin->sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	ck_assert_int_eq(ioctl(netns_sock, SIOCSIFADDR, &ifr), 0);
	sin = (struct sockaddr_in *)&ifr.ifr_netmask;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = 0xffffffffu;
	ck_assert_int_eq(ioctl(netns_sock, SIOCSIFNETMASK, &ifr), 0);
}

/* A route into lo for an address nobody has: packets vanish, connects time out. */
static void netns_blackhole(const char *ip)
{
	struct rtentry rt = {0};
	struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
	struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
	char dev[] = "lo";

	dst->sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, ip, &dst->sin_addr), 1);
	mask->sin_family = AF_INET;
	mask->sin_addr.s_addr = 0xffffffffu;
	rt.rt_flags = RTF_UP | RTF_HOST;
	rt.rt_dev = dev;
	ck_assert_int_eq(ioctl(netns_sock, SIOCADDRT, &rt), 0);
}

#define NEED_NETNS()                                                                               \
	do {                                                                                       \
		int e_ = netns_enter();                                                            \
		if (e_ != 0) {                                                                     \
			printf("SKIP creds/%s: cannot make a network namespace: %s\n", __func__,   \
			       strerror(-e_));                                                     \
			return;                                                                    \
		}                                                                                  \
	} while (0)

START_TEST(test_default_endpoints)
{
	struct standin *cont, *imds;
	struct creds_provider *p;
	char *path;

	NEED_NODE();
	NEED_NETNS();
	netns_add_addr("lo:1", "169.254.170.2");
	netns_add_addr("lo:2", "169.254.169.254");
	cont = standin_start("container", "169.254.170.2", 80, NULL);
	imds = standin_start("imds", "169.254.169.254", 80, "--require-token", NULL);

	/* AWS_CONTAINER_CREDENTIALS_RELATIVE_URI goes to 169.254.170.2. */
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/7e1b", 1);
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "container");
	expect_standin_creds(p, "container", 1, 3600);
	path = stat_str(cont, "last_path");
	ck_assert_str_eq(path, "/v2/credentials/7e1b");
	free(path);
	creds_provider_destroy(p);

	/* IMDS at 169.254.169.254 by default. */
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	unsetenv("AWS_EC2_METADATA_DISABLED");
	p = create(NULL);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(creds_source(p), "instance profile (IMDSv2)");
	expect_standin_creds(p, "imds", 1, 3600);
	ck_assert_int_eq(stat_int(imds, "rejected"), 0);
	creds_provider_destroy(p);
}
END_TEST

START_TEST(test_imds_silent_fails_fast)
{
	double t0, took;

	/* Nothing configured, IMDS swallows packets: a mount must not hang. */
	NEED_NETNS();
	netns_blackhole("169.254.169.254");
	unsetenv("AWS_EC2_METADATA_DISABLED");
	t0 = now_s();
	create_fails(NULL, ENOENT);
	took = now_s() - t0;
	/* Two attempts with a 1 s connect timeout each. */
	ck_assert_msg(took >= 1.5 && took < 4.5, "took %.1f s", took);
	ck_assert(log_contains("http://169.254.169.254/latest/api/token"));
	ck_assert(log_contains("(attempt 2 of 2)"));
}
END_TEST

START_TEST(test_imds_unreachable_fails_fast)
{
	double t0;

	/* No route at all: an immediate failure. */
	NEED_NETNS();
	unsetenv("AWS_EC2_METADATA_DISABLED");
	t0 = now_s();
	create_fails(NULL, ENOENT);
	ck_assert_msg(now_s() - t0 < 1.5, "took %.1f s", now_s() - t0);
}
END_TEST

/* ------------------------------------------------------------------------ */

static TCase *tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	return tc;
}

static Suite *creds_suite(void)
{
	Suite *s = suite_create("creds");
	TCase *tc;

	tc = tcase("helpers");
	tcase_add_test(tc, test_parse_time);
	tcase_add_test(tc, test_container_url_allowed);
	suite_add_tcase(s, tc);

	tc = tcase("static");
	tcase_add_test(tc, test_anonymous);
	tcase_add_test(tc, test_env);
	tcase_add_test(tc, test_env_partial);
	tcase_add_test(tc, test_env_empty_is_unset);
	tcase_add_test(tc, test_shared_default);
	tcase_add_test(tc, test_shared_readable_warns);
	tcase_add_test(tc, test_shared_aws_profile);
	tcase_add_test(tc, test_shared_config_file);
	tcase_add_test(tc, test_shared_credentials_beat_config);
	tcase_add_test(tc, test_shared_env_paths);
	tcase_add_test(tc, test_shared_long_token);
	tcase_add_test(tc, test_shared_parse_error);
	tcase_add_test(tc, test_shared_half_pair);
	tcase_add_test(tc, test_shared_unsupported);
	tcase_add_test(tc, test_aws_profile_missing);
	tcase_add_test(tc, test_aws_profile_without_keys_goes_on);
	tcase_add_test(tc, test_options_profile);
	tcase_add_test(tc, test_options_credentials_file);
	tcase_add_test(tc, test_options_missing_profile);
	tcase_add_test(tc, test_options_profile_without_keys);
	tcase_add_test(tc, test_options_missing_file);
	tcase_add_test(tc, test_static_never_refreshed);
	suite_add_tcase(s, tc);

	tc = tcase("web_identity");
	tcase_add_test(tc, test_web_identity);
	tcase_add_test(tc, test_web_identity_rotation);
	tcase_add_test(tc, test_web_identity_profile);
	tcase_add_test(tc, test_web_identity_denied);
	tcase_add_test(tc, test_web_identity_error_quoting_token);
	tcase_add_test(tc, test_sts_error_code_quoting_token);
	tcase_add_test(tc, test_web_identity_missing_token_file);
	tcase_add_test(tc, test_web_identity_half_configured);
	suite_add_tcase(s, tc);

	tc = tcase("container");
	tcase_add_test(tc, test_container_full_uri);
	tcase_add_test(tc, test_container_auth_required);
	tcase_add_test(tc, test_container_token_file);
	tcase_add_test(tc, test_container_host_refused);
	suite_add_tcase(s, tc);

	tc = tcase("imds");
	tcase_add_test(tc, test_imds);
	tcase_add_test(tc, test_imds_requires_token);
	tcase_add_test(tc, test_imds_disabled);
	tcase_add_test(tc, test_imds_no_role);
	suite_add_tcase(s, tc);

	tc = tcase("order");
	tcase_add_test(tc, test_chain_order);
	suite_add_tcase(s, tc);

	tc = tcase("refresh");
	tcase_add_test(tc, test_refresh);
	tcase_add_test(tc, test_no_refresh_when_fresh);
	tcase_add_test(tc, test_refresh_concurrent);
	tcase_add_test(tc, test_refresh_expired_concurrent);
	tcase_add_test(tc, test_refresh_failure_keeps_old);
	tcase_add_test(tc, test_refresh_retry_after_interval);
	tcase_add_test(tc, test_refresh_expired_fails);
	suite_add_tcase(s, tc);

	tc = tcase("not_found");
	tcase_add_test(tc, test_nothing_configured);
	tcase_add_test(tc, test_default_endpoints);
	tcase_add_test(tc, test_imds_silent_fails_fast);
	tcase_add_test(tc, test_imds_unreachable_fails_fast);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	failed = suites_run(creds_suite());
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
