/*
 * log.c - see log.h.
 *
 * Every line is escaped on its way out (log_escape), so that what a line
 * quotes from the store or a user (a key, an ETag, an error message a
 * server sent) can neither end the line nor pass for another one, nor
 * drive a terminal: a key "a\nchunkfs: error: ..." shows as
 * "a\\nchunkfs: error: ...", on the one line of the event that printed it.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static enum log_level current_level = LOG_LEVEL_WARN;
static int to_syslog;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

int log_parse_level(const char *s, enum log_level *level)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_use_syslog(void)
{
	openlog("chunkfs", LOG_PID, LOG_DAEMON);
	to_syslog = 1;
}

/*
 * The length of the UTF-8 sequence that starts at p (1 to 4 bytes) when it
 * is well formed (shortest form, no surrogate, at most U+10FFFF) and is
 * not a C1 control (U+0080 to U+009F); 0 otherwise.
 */
static size_t utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return n;
}

/* The escape of byte c (a control, DEL, a backslash or a byte that is
 * not part of a well-formed UTF-8 sequence) into e[5]. */
static void escape_byte(char e[5], unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	e[0] = '\\';
	e[2] = e[3] = e[4] = '\0';
	switch (c) {
	case '\n':
		e[1] = 'n';
		return;
	case '\r':
		e[1] = 'r';
		return;
	case '\t':
		e[1] = 't';
		return;
	case '\\':
		e[1] = '\\';
		return;
	}
	e[1] = 'x';
	e[2] = hex[c >> 4];
	e[3] = hex[c & 15];
}

char *log_escape(char *out, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 0;

	if (cap == 0)
		return out;
	while (*p != '\0') {
		size_t n = *p >= ' ' && *p != 0x7f && *p != '\\' ? utf8_len(p) : 0;
		const char *piece = (const char *)p;
		size_t len = n;
		char e[5];

		if (n == 0) {
			escape_byte(e, *p);
			piece = e;
			len = strlen(e);
			n = 1;
		}
		if (w + len >= cap)
			break; /* cut at a whole character or escape */
		memcpy(out + w, piece, len);
		w += len;
		p += n;
	}
	out[w] = '\0';
	return out;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[1024], shown[LOG_ESCAPED_MAX(sizeof(line))];
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_escape(shown, sizeof(shown), line);
	if (to_syslog)
		syslog(syslog_prio[level], "%s", shown);
	else
		fprintf(stderr, "chunkfs: %s: %s\n", level_names[level], shown);
}
