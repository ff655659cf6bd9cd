/*
 * metrics.c - a minimal HTTP responder for GET /metrics; see metrics.h.
 *
 * One thread polls the listening socket and every open client together
 * (all non-blocking), so no client holds up another: each client gets
 * METRICS_DEADLINE_MS from its accept to send its request line and take
 * the whole answer, then it is closed.  At most METRICS_MAX_CLIENTS are
 * open; one more closes the oldest.  The poll wakes at least every
 * 200 ms, so metrics_stop() is seen within that.  Anything but
 * GET /metrics gets 404; the numbers come from chunkfs_stats_json(), so
 * `chunkfs stats` and the endpoint never disagree.  Every answer says
 * "Connection: close".
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chunkfs_i.h"
#include "log.h"

#define METRICS_MAX_CLIENTS 16
#define METRICS_DEADLINE_MS 2000
#define METRICS_REQ_MAX     1024

/* One open connection (fd -1: a free slot).  Only the thread touches it. */
struct metrics_client {
	int fd;
	long long deadline_ms; /* monotonic */
	char req[METRICS_REQ_MAX];
	size_t have;
	char *out; /* the whole answer once the request line is in */
	size_t out_len, sent;
};

struct metrics {
	struct chunkfs *fs;
	int sock;
	pthread_t thread;
	int running;
	int stop; /* atomic */
	struct metrics_client clients[METRICS_MAX_CLIENTS];
};

struct metrics *metrics_open(struct chunkfs *fs, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct metrics *m;
	int one = 1;

	if (port == 0 || port > 65535) {
		fprintf(stderr, "chunkfs: metrics_port=%u is not a TCP port (1-65535)\n", port);
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->fs = fs;
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
		m->clients[i].fd = -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m->sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->sock < 0 || setsockopt(m->sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(m->sock, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(m->sock, 16) < 0) {
		int err = errno;

		fprintf(
		    stderr,
		    "chunkfs: warning: cannot serve metrics on 127.0.0.1:%u: %s; the mount goes "
		    "on without metrics (choose a free metrics_port to have them)\n",
		    port, strerror(err));
		if (m->sock >= 0)
			close(m->sock);
		free(m);
		errno = err == EINVAL ? EIO : err; /* EINVAL means a bad port */
		return NULL;
	}
	return m;
}

/* "chunkfs_<prefix>_<name>" with anything but [A-Za-z0-9_] made '_'. */
static void metric_name(char *out, size_t len, const char *prefix, const char *name)
{
	snprintf(out, len, "chunkfs_%s%s%s", prefix, *prefix ? "_" : "", name);
	for (char *p = out; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			*p = '_';
	}
}

/* Append the numbers of obj (recursively, names joined by '_'). */
static void add_numbers(FILE *out, const char *prefix, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		char name[256];

		metric_name(name, sizeof(name), prefix, key);
		if (json_is_integer(v))
			fprintf(out, "%s %lld\n", name, (long long)json_integer_value(v));
		else if (json_is_real(v))
			fprintf(out, "%s %.6g\n", name, json_real_value(v));
		else if (json_is_object(v))
			add_numbers(out, name + strlen("chunkfs_"), v);
	}
}

char *metrics_text(const char *json)
{
	json_t *root = json_loads(json, 0, NULL);
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	if (root == NULL)
		return NULL;
	out = open_memstream(&text, &len);
	if (out != NULL) {
		add_numbers(out, "", root);
		if (fclose(out) != 0) {
			free(text);
			text = NULL;
		}
	}
	json_decref(root);
	return text;
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The numbers as an HTTP answer, or NULL when out of memory. */
static char *answer_metrics(struct metrics *m)
{
	char *json = chunkfs_stats_json(m->fs), *text = NULL, *out = NULL;

	if (json != NULL)
		text = metrics_text(json);
	free(json);
	if (text != NULL &&
	    asprintf(&out,
	             "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
	             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	             strlen(text), text) < 0)
		out = NULL;
	free(text);
	if (out == NULL)
		out = strdup("HTTP/1.1 500 Internal Server Error\r\n"
		             "Content-Length: 0\r\nConnection: close\r\n\r\n");
	return out;
}

/* The whole answer to request line req, or NULL when out of memory. */
static char *answer_text(struct metrics *m, const char *req, size_t *len)
{
	char *out;

	if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0)
		out = answer_metrics(m);
	else
		out = strdup("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
		             "Content-Length: 23\r\nConnection: close\r\n\r\n"
		             "only GET /metrics here\n");
	*len = out != NULL ? strlen(out) : 0;
	return out;
}

static void client_close(struct metrics_client *c)
{
	close(c->fd);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Take a new connection into a free slot, closing the oldest if none is. */
static void client_accept(struct metrics *m)
{
	struct metrics_client *slot = NULL;
	int fd = accept4(m->sock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
		struct metrics_client *c = &m->clients[i];

		if (c->fd < 0) {
			slot = c;
			break;
		}
		if (slot == NULL || c->deadline_ms < slot->deadline_ms)
			slot = c;
	}
	if (slot->fd >= 0)
		client_close(slot);
	slot->fd = fd;
	slot->deadline_ms = now_ms() + METRICS_DEADLINE_MS;
}

/* Read what the client sent; once the request line is in, prepare the
 * answer.  0 to go on, -1 to close. */
static int client_read(struct metrics *m, struct metrics_client *c)
{
	ssize_t n = recv(c->fd, c->req + c->have, sizeof(c->req) - 1 - c->have, 0);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->have += (size_t)n;
	c->req[c->have] = '\0';
	if (memchr(c->req, '\n', c->have) == NULL && c->have < sizeof(c->req) - 1)
		return 0;
	c->out = answer_text(m, c->req, &c->out_len);
	return c->out != NULL ? 0 : -1;
}

/* Send what the client can take now.  0 to go on, -1 to close (done too). */
static int client_write(struct metrics_client *c)
{
	ssize_t n = send(c->fd, c->out + c->sent, c->out_len - c->sent, MSG_NOSIGNAL);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	c->sent += (size_t)n;
	return c->sent < c->out_len ? 0 : -1;
}

/* Poll the listening socket and the clients once, for at most 200 ms. */
static void serve_once(struct metrics *m)
{
	struct pollfd p[METRICS_MAX_CLIENTS + 1];
	struct metrics_client *who[METRICS_MAX_CLIENTS + 1];
	long long now = now_ms(), wait = 200;
	nfds_t n = 1;

	p[0] = (struct pollfd){.fd = m->sock, .events = POLLIN};
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
		struct metrics_client *c = &m->clients[i];

		if (c->fd < 0)
			continue;
		if (c->deadline_ms <= now) {
			client_close(c); /* too slow, whatever it was doing */
			continue;
		}
		if (c->deadline_ms - now < wait)
			wait = c->deadline_ms - now;
		who[n] = c;
		p[n++] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
	}
	if (poll(p, n, (int)wait) <= 0)
		return;
	for (nfds_t i = 1; i < n; i++) {
		struct metrics_client *c = who[i];
		int ret = 0;

		if (p[i].revents & (POLLERR | POLLNVAL))
			ret = -1;
		else if (c->out == NULL && (p[i].revents & (POLLIN | POLLHUP)))
			ret = client_read(m, c);
		else if (c->out != NULL && (p[i].revents & POLLOUT))
			ret = client_write(c);
		else if (p[i].revents & POLLHUP)
			ret = -1;
		if (ret < 0)
			client_close(c);
	}
	if (p[0].revents & POLLIN)
		client_accept(m);
}

static void *metrics_main(void *arg)
{
	struct metrics *m = arg;

	while (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE))
		serve_once(m);
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
		if (m->clients[i].fd >= 0)
			client_close(&m->clients[i]);
	return NULL;
}

int metrics_run(struct metrics *m)
{
	int err = pthread_create(&m->thread, NULL, metrics_main, m);

	if (err != 0) {
		errno = err;
		return -1;
	}
	m->running = 1;
	return 0;
}

void metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	__atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
	if (m->running)
		pthread_join(m->thread, NULL);
	close(m->sock);
	free(m);
}
