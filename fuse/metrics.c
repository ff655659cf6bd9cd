/*
 * metrics.c - a minimal HTTP responder for GET /metrics; see metrics.h.
 *
 * One thread polls the listening socket (so metrics_stop() is seen within
 * 200 ms), answers one connection at a time with "Connection: close",
 * and gives a slow client 2 s to send its request line.  Anything but
 * GET /metrics gets 404; the numbers come from chunkfs_stats_json(), so
 * `chunkfs stats` and the endpoint never disagree.
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
#include <unistd.h>

#include "chunkfs_i.h"
#include "log.h"

struct metrics {
	struct chunkfs *fs;
	int sock;
	pthread_t thread;
	int running;
	int stop; /* atomic */
};

struct metrics *metrics_open(struct chunkfs *fs, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct metrics *m;
	int one = 1;

	if (port == 0 || port > 65535) {
		fprintf(stderr, "chunkfs: metrics_port=%u is not a TCP port (1-65535)\n", port);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->fs = fs;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m->sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->sock < 0 || setsockopt(m->sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(m->sock, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(m->sock, 16) < 0) {
		fprintf(stderr, "chunkfs: cannot serve metrics on 127.0.0.1:%u: %s\n", port,
		        strerror(errno));
		if (m->sock >= 0)
			close(m->sock);
		free(m);
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

static void send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void answer(struct metrics *m, int fd)
{
	struct timeval tv = {2, 0};
	char req[1024], head[256], *json, *text = NULL;
	size_t have = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* The request line is all we look at. */
	while (have < sizeof(req) - 1 && memchr(req, '\n', have) == NULL) {
		ssize_t n = recv(fd, req + have, sizeof(req) - 1 - have, 0);

		if (n <= 0)
			return;
		have += (size_t)n;
	}
	req[have] = '\0';
	if (strncmp(req, "GET /metrics ", 13) != 0 && strncmp(req, "GET /metrics?", 13) != 0) {
		static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
		                         "Content-Length: 23\r\nConnection: close\r\n\r\n"
		                         "only GET /metrics here\n";
		send_all(fd, nf, sizeof(nf) - 1);
		return;
	}
	json = chunkfs_stats_json(m->fs);
	if (json != NULL)
		text = metrics_text(json);
	free(json);
	if (text == NULL) {
		static const char err[] = "HTTP/1.1 500 Internal Server Error\r\n"
		                          "Content-Length: 0\r\nConnection: close\r\n\r\n";
		send_all(fd, err, sizeof(err) - 1);
		return;
	}
	snprintf(head, sizeof(head),
	         "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	         strlen(text));
	send_all(fd, head, strlen(head));
	send_all(fd, text, strlen(text));
	free(text);
}

static void *metrics_main(void *arg)
{
	struct metrics *m = arg;

	while (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = {.fd = m->sock, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 200) <= 0)
			continue;
		fd = accept4(m->sock, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		answer(m, fd);
		close(fd);
	}
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
