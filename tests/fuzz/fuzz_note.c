/*
 * fuzz_note.c - libFuzzer target for recovery notes (fuse/recovery_note.c),
 * the files a mount reads back from its staging directory after a crash.
 *
 * fuzz-sources: fuse/recovery_note.c backends/backend.c lib/io.c
 * fuzz-pkgs:
 *
 * (tests/fuzz/run.sh reads the two lines above: what to compile in, and
 * which pkg-config packages to link.)
 *
 * Each input is used twice:
 *   1. as a note's text, for recovery_note_parse();
 *   2. as a note: byte 0 the state and complete flag, bytes 1-16 meta,
 *      mode, uid, gid, then the source and the key, split at the first
 *      NUL (the mtime is fixed), formatted with recovery_note_format()
 *      and parsed back.
 *
 * Checked on every input, aborting on a violation:
 *   - parse returns 0, -EINVAL or -ENOMEM; on success the key is valid
 *     (backend_key_valid), the source is set, the state is one of the
 *     three and the mtime's nanoseconds are in [0, 1e9);
 *   - a note that parsed formats and parses back to the same note;
 *   - a note with a valid key round-trips exactly through format and
 *     parse: same source, key (any bytes but NUL), state, flags and
 *     attributes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/recovery.h"
#include "fuzz.h"

static int parse_bytes(const void *text, size_t size, struct recovery_note *n)
{
	FILE *f = fmemopen((void *)text, size, "r");
	int ret;

	if (f == NULL) {
		memset(n, 0, sizeof(*n));
		return -ENOMEM;
	}
	ret = recovery_note_parse(f, n);
	fclose(f);
	return ret;
}

static int same_note(const struct recovery_note *a, const struct recovery_note *b)
{
	return strcmp(a->source, b->source) == 0 && strcmp(a->key, b->key) == 0 &&
	       a->state == b->state && a->complete == b->complete &&
	       a->attrs.meta == b->attrs.meta && a->attrs.mode == b->attrs.mode &&
	       a->attrs.uid == b->attrs.uid && a->attrs.gid == b->attrs.gid &&
	       a->attrs.mtime.tv_sec == b->attrs.mtime.tv_sec &&
	       a->attrs.mtime.tv_nsec == b->attrs.mtime.tv_nsec;
}

/* Format n and parse it back into *back; the parse's result. */
static int round_trip(const struct recovery_note *n, struct recovery_note *back)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int ret;

	if (f == NULL)
		return -ENOMEM;
	CHECK(recovery_note_format(f, n) == 0);
	fclose(f);
	ret = parse_bytes(text, len, back);
	free(text);
	return ret;
}

static void check_parsed(const struct recovery_note *n)
{
	CHECK(n->source != NULL && n->key != NULL && backend_key_valid(n->key));
	CHECK(n->state == NOTE_CLEAN || n->state == NOTE_DIRTY || n->state == NOTE_UNLINKED);
	CHECK(n->attrs.mtime.tv_nsec >= 0 && n->attrs.mtime.tv_nsec < 1000000000L);
}

static void fuzz_text(const uint8_t *data, size_t size)
{
	struct recovery_note n, back;
	int ret;

	if (size == 0)
		return; /* fmemopen refuses an empty buffer */
	ret = parse_bytes(data, size, &n);
	CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
	if (ret != 0)
		return;
	check_parsed(&n);
	ret = round_trip(&n, &back);
	if (ret != -ENOMEM) {
		CHECK(ret == 0);
		CHECK(same_note(&n, &back));
		recovery_note_free(&back);
	}
	recovery_note_free(&n);
}

static uint32_t u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fuzz_note(const uint8_t *data, size_t size)
{
	struct recovery_note n = {0}, back;
	char *buf, *nul;
	int ret;

	if (size < 17)
		return;
	buf = malloc(size - 17 + 2);
	if (buf == NULL)
		return;
	memcpy(buf, data + 17, size - 17);
	buf[size - 17] = '\0';
	buf[size - 17 + 1] = '\0';
	nul = buf + strlen(buf); /* the source ends here, the key follows */
	n.source = buf;
	n.key = nul + 1;
	n.state = (enum recovery_state)(data[0] % 3);
	n.complete = (data[0] >> 2) & 1;
	n.attrs.meta = u32(data + 1);
	n.attrs.mode = u32(data + 5);
	n.attrs.uid = u32(data + 9);
	n.attrs.gid = u32(data + 13);
	n.attrs.mtime.tv_sec = 1700000000;
	n.attrs.mtime.tv_nsec = 5;
	if (backend_key_valid(n.key)) {
		ret = round_trip(&n, &back);
		if (ret != -ENOMEM) {
			CHECK(ret == 0);
			CHECK(same_note(&n, &back));
			recovery_note_free(&back);
		}
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_text(data, size);
	fuzz_note(data, size);
	return 0;
}
