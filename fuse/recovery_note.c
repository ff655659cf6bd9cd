/*
 * recovery_note.c - the text of a recovery note (see recovery.h):
 * recovery_note_format() writes it, recovery_note_parse() reads it back.
 * Opening, renaming and deleting note files is recovery.c's business;
 * this file touches no file system, so the fuzz target
 * (tests/fuzz/fuzz_note.c) can run it on any bytes.
 *
 *   chunkfs-stage 1
 *   source=<escaped>
 *   key=<escaped>
 *   state=clean|dirty|unlinked
 *   complete=0|1
 *   meta=N mode=N uid=N gid=N (one per line)
 *   mtime=SEC.NSEC
 *
 * Escaping: every byte <= ' ', '%' and DEL is written as %XX (upper-case
 * hex), so each value is one line of printable bytes.  Reading decodes
 * exactly %XX with two hex digits other than %00; anything else is taken
 * as it is.  A note is refused (-EINVAL) without its first line, without
 * a source or a valid key, or with a line longer than NOTE_LINE_MAX.
 */
#include "recovery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer than any note line chunkfs writes: a key is at most 1024 bytes
 * in S3 and a source a path, each escaped to at most 3 bytes a byte. */
#define NOTE_LINE_MAX (3 * 4096 + 64)

static const char *const state_names[] = {"clean", "dirty", "unlinked"};

static void put_escaped(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= ' ' || *p == '%' || *p == 0x7f)
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Undo put_escaped() in place. */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		int hi = *r == '%' ? hex_digit(r[1]) : -1;
		int lo = hi >= 0 ? hex_digit(r[2]) : -1;

		if (lo >= 0 && (hi | lo) != 0) {
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

int recovery_note_format(FILE *f, const struct recovery_note *n)
{
	fprintf(f, "chunkfs-stage 1\nsource=");
	put_escaped(f, n->source);
	fprintf(f, "\nkey=");
	put_escaped(f, n->key);
	fprintf(f, "\nstate=%s\ncomplete=%d\nmeta=%u\nmode=%u\nuid=%u\ngid=%u\nmtime=%lld.%09ld\n",
	        state_names[n->state], n->complete, n->attrs.meta, (unsigned)n->attrs.mode,
	        (unsigned)n->attrs.uid, (unsigned)n->attrs.gid, (long long)n->attrs.mtime.tv_sec,
	        n->attrs.mtime.tv_nsec);
	return ferror(f) ? -EIO : 0;
}

void recovery_note_free(struct recovery_note *n)
{
	free(n->source);
	free(n->key);
	memset(n, 0, sizeof(*n));
}

/* One "name=value" line into n.  0 or -ENOMEM. */
static int note_field(struct recovery_note *n, const char *name, char *val)
{
	long long sec;
	long nsec;

	if (strcmp(name, "source") == 0 || strcmp(name, "key") == 0) {
		char **dst = name[0] == 's' ? &n->source : &n->key;

		unescape(val);
		free(*dst);
		*dst = strdup(val);
		return *dst != NULL ? 0 : -ENOMEM;
	}
	if (strcmp(name, "state") == 0) {
		for (int i = 0; i < 3; i++)
			if (strcmp(val, state_names[i]) == 0)
				n->state = (enum recovery_state)i;
	} else if (strcmp(name, "complete") == 0) {
		n->complete = strcmp(val, "1") == 0;
	} else if (strcmp(name, "meta") == 0) {
		n->attrs.meta = (unsigned)strtoul(val, NULL, 10);
	} else if (strcmp(name, "mode") == 0) {
		n->attrs.mode = (uint32_t)strtoul(val, NULL, 10);
	} else if (strcmp(name, "uid") == 0) {
		n->attrs.uid = (uint32_t)strtoul(val, NULL, 10);
	} else if (strcmp(name, "gid") == 0) {
		n->attrs.gid = (uint32_t)strtoul(val, NULL, 10);
	} else if (strcmp(name, "mtime") == 0 && sscanf(val, "%lld.%ld", &sec, &nsec) == 2 &&
	           nsec >= 0 && nsec < 1000000000L) {
		n->attrs.mtime.tv_sec = (time_t)sec;
		n->attrs.mtime.tv_nsec = nsec;
	}
	return 0;
}

int recovery_note_parse(FILE *f, struct recovery_note *n)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int ok = 0, ret = 0;

	memset(n, 0, sizeof(*n));
	n->state = NOTE_DIRTY;
	while (ret == 0 && (len = getline(&line, &cap, f)) >= 0) {
		char *eq;

		if (len > NOTE_LINE_MAX || strlen(line) != (size_t)len) {
			ret = -EINVAL; /* not written by chunkfs: too long, or a NUL */
			break;
		}
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "chunkfs-stage 1") == 0) {
			ok = 1;
			continue;
		}
		eq = strchr(line, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		ret = note_field(n, line, eq + 1);
	}
	free(line);
	if (ret == 0 && (!ok || n->source == NULL || n->key == NULL || !backend_key_valid(n->key)))
		ret = -EINVAL;
	if (ret < 0)
		recovery_note_free(n);
	return ret;
}
