/*
 * log.h - the process-wide log: one line per event, to stderr in the
 * foreground and to syslog once daemonized.  The level and the sink are the
 * only global state of chunkfs besides the signal flag.
 *
 * Never pass a secret (key material, a signature, a token) to these
 * functions: log lines end up in journals and bug reports.
 *
 * Lines are escaped as log_escape() does before they are written, so a
 * string from the store or a user (a key, an ETag, a server's message)
 * can be passed to "%s" as it is: it cannot forge a line.
 */
#ifndef CHUNKFS_LOG_H
#define CHUNKFS_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Set the most verbose level that is printed (default LOG_LEVEL_WARN). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "error", "warn", "info" or "debug"; -EINVAL for anything else. */
int log_parse_level(const char *s, enum log_level *level);

/* Send further lines to syslog (ident "chunkfs") instead of stderr. */
void log_use_syslog(void);

/*
 * Copy the C string s into out[cap] with every byte that could break or
 * fake a log line written as an escape: \n \r \t, \\ for a backslash,
 * \xHH for other control characters, DEL, C1 controls and bytes that
 * are not well-formed UTF-8.  Well-formed UTF-8 stays as it is.  Cut
 * short (at a whole character or escape) when out is too small.  Returns
 * out.  LOG_ESCAPED_MAX(n) bytes always hold the escape of n - 1 bytes.
 */
char *log_escape(char *out, size_t cap, const char *s);
#define LOG_ESCAPED_MAX(n) (4 * (n) + 1)

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_LEVEL_DEBUG)                                            \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                     \
	} while (0)

#endif
