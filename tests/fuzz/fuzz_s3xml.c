/*
 * fuzz_s3xml.c - libFuzzer target for backends/s3/s3xml.c.
 *
 * fuzz-sources: backends/s3/s3xml.c backends/backend.c lib/iso8601.c lib/io.c
 * fuzz-pkgs: libxml-2.0
 *
 * (tests/fuzz/run.sh reads the two lines above: what to compile in, and
 * which pkg-config packages to link.)
 *
 * The input is a response body, handed as it is (not NUL-terminated) to
 * every parser: s3xml_parse_list() with several prefix lengths,
 * s3xml_parse_error(), s3xml_parse_upload_id() and
 * s3xml_parse_result_etag() with several buffer sizes.  The input is also
 * read as a time string for s3xml_parse_time() and, split at '\n', as the
 * part ETags for s3xml_complete_body().  Everything returned is freed, so
 * LeakSanitizer sees any leak.
 *
 * Checked on every input, aborting on a violation:
 *   - each parser returns only the codes its header allows;
 *   - list: every key, prefix and token is a C string (strlen() under
 *     ASan), every etag is terminated inside its array, nanoseconds are in
 *     range; a prefix is never ""; next_token is set only on success and
 *     only when the document has an IsTruncated element; the result for
 *     prefix length k is exactly the result for 0 with keys shorter than k
 *     (prefixes not longer than k) dropped and k bytes cut from the rest;
 *   - error: 0 exactly when a Code was found; every field terminated;
 *   - upload id: 0 exactly when a non-empty id is returned;
 *   - result etag: -EIO exactly when the document is an error document
 *     (and then with the code s3xml_parse_error() finds), etag terminated
 *     within etag_len, a smaller buffer gives a prefix of the full etag;
 *   - time: on success the fields print back to the same text (nothing
 *     out of range is normalized) and nanoseconds are in range;
 *   - complete body: NULL exactly when some ETag is longer than 96 bytes
 *     or holds anything but hex digits and '-'; otherwise a well-formed
 *     document listing parts 1..n with those ETags, quoted, in order.
 */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "s3/s3xml.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const size_t strips[] = {1, 4, 64, SIZE_MAX};
static const size_t etag_lens[] = {1, 5, 33};
#define MAX_PARTS 16

static int terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

static void check_list_shape(const struct backend_list *l, int ret, const uint8_t *data,
                             size_t size)
{
	CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
	CHECK(l->n_entries == 0 || l->entries != NULL);
	CHECK(l->n_prefixes == 0 || l->prefixes != NULL);
	for (size_t i = 0; i < l->n_entries; i++) {
		const struct backend_entry *e = &l->entries[i];

		CHECK(e->key != NULL);
		(void)strlen(e->key);
		CHECK(terminated(e->st.etag, sizeof(e->st.etag)));
		CHECK(e->st.mtime.tv_nsec >= 0 && e->st.mtime.tv_nsec < 1000000000L);
		CHECK(e->st.meta == 0);
	}
	for (size_t i = 0; i < l->n_prefixes; i++) {
		CHECK(l->prefixes[i] != NULL);
		CHECK(l->prefixes[i][0] != '\0');
	}
	if (l->next_token != NULL) {
		(void)strlen(l->next_token);
		CHECK(ret == 0);
		CHECK(memmem(data, size, "IsTruncated", 11) != NULL);
	}
}

/* l is base (strip 0) with every key and prefix cut by strip bytes. */
static void check_stripped(const struct backend_list *base, const struct backend_list *l,
                           size_t strip)
{
	size_t j = 0;

	for (size_t i = 0; i < base->n_entries; i++) {
		const struct backend_entry *b = &base->entries[i], *e;

		if (strlen(b->key) < strip)
			continue;
		CHECK(j < l->n_entries);
		e = &l->entries[j++];
		CHECK(strcmp(e->key, b->key + strip) == 0);
		CHECK(e->st.size == b->st.size);
		CHECK(e->st.mtime.tv_sec == b->st.mtime.tv_sec);
		CHECK(e->st.mtime.tv_nsec == b->st.mtime.tv_nsec);
		CHECK(strcmp(e->st.etag, b->st.etag) == 0);
	}
	CHECK(j == l->n_entries);
	j = 0;
	for (size_t i = 0; i < base->n_prefixes; i++) {
		if (strlen(base->prefixes[i]) <= strip)
			continue;
		CHECK(j < l->n_prefixes);
		CHECK(strcmp(l->prefixes[j++], base->prefixes[i] + strip) == 0);
	}
	CHECK(j == l->n_prefixes);
	CHECK((base->next_token == NULL) == (l->next_token == NULL));
	if (base->next_token != NULL)
		CHECK(strcmp(base->next_token, l->next_token) == 0);
}

static void fuzz_list(const char *body, size_t size)
{
	struct backend_list base, l;
	int ret0, ret;

	ret0 = s3xml_parse_list(body, size, 0, &base);
	check_list_shape(&base, ret0, (const uint8_t *)body, size);
	for (size_t i = 0; i < N(strips); i++) {
		ret = s3xml_parse_list(body, size, strips[i], &l);
		check_list_shape(&l, ret, (const uint8_t *)body, size);
		if (ret != -ENOMEM && ret0 != -ENOMEM)
			CHECK(ret == ret0);
		if (ret == 0 && ret0 == 0)
			check_stripped(&base, &l, strips[i]);
		backend_list_free(&l);
	}
	backend_list_free(&base);
}

static void check_error_fields(const struct s3xml_error *e)
{
	CHECK(terminated(e->code, sizeof(e->code)));
	CHECK(terminated(e->message, sizeof(e->message)));
	CHECK(terminated(e->request_id, sizeof(e->request_id)));
	CHECK(terminated(e->region, sizeof(e->region)));
}

static int error_is_zero(const struct s3xml_error *e)
{
	static const struct s3xml_error zero;

	return memcmp(e, &zero, sizeof(zero)) == 0;
}

static void fuzz_results(const char *body, size_t size)
{
	struct s3xml_error perr, err;
	char full[BACKEND_ETAG_MAX], etag[BACKEND_ETAG_MAX + 1];
	char *id = (char *)1;
	int pret, ret, full_ret;

	pret = s3xml_parse_error(body, size, &perr);
	CHECK(pret == 0 || pret == -EINVAL);
	check_error_fields(&perr);
	CHECK((pret == 0) == (perr.code[0] != '\0'));

	ret = s3xml_parse_upload_id(body, size, &id);
	CHECK(ret == 0 || ret == -EINVAL);
	CHECK((ret == 0) == (id != NULL));
	if (id != NULL)
		CHECK(id[0] != '\0');
	free(id);

	full_ret = s3xml_parse_result_etag(body, size, full, sizeof(full), &err);
	CHECK(full_ret == 0 || full_ret == -EINVAL || full_ret == -EIO);
	CHECK(terminated(full, sizeof(full)));
	check_error_fields(&err);
	if (pret == 0) {
		/* An error document with a code is always reported as one. */
		CHECK(full_ret == -EIO);
		CHECK(memcmp(&err, &perr, sizeof(err)) == 0);
	}
	if (full_ret == -EIO)
		CHECK(full[0] == '\0');
	else
		CHECK(error_is_zero(&err));

	for (size_t i = 0; i < N(etag_lens); i++) {
		size_t n = etag_lens[i];

		memset(etag, 0x7f, sizeof(etag));
		ret = s3xml_parse_result_etag(body, size, etag, n, &err);
		CHECK(ret == full_ret);
		CHECK(terminated(etag, n));
		CHECK((unsigned char)etag[n] == 0x7f); /* nothing past etag_len */
		CHECK(strncmp(etag, full, n - 1) == 0);
	}
}

static void fuzz_time(const uint8_t *data, size_t size)
{
	char s[64], back[32];
	struct timespec t = {0, 0};
	struct tm tm;

	if (size >= sizeof(s))
		size = sizeof(s) - 1;
	memcpy(s, data, size);
	s[size] = '\0';
	if (s3xml_parse_time(s, &t) != 0)
		return;
	CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
	CHECK(strlen(s) >= 20);
	CHECK(gmtime_r(&t.tv_sec, &tm) != NULL);
	CHECK(snprintf(back, sizeof(back), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
	               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec) == 19);
	if (memcmp(s + 17, "60", 2) != 0) /* a leap second moves on */
		CHECK(memcmp(back, s, 19) == 0);
}

static int etag_ok(const char *s)
{
	size_t n = strlen(s);

	return n <= 96 && strspn(s, "0123456789abcdefABCDEF-") == n;
}

/* body lists parts 1..n with these ETags, in order. */
static void check_complete(const char *body, char *const *etags, size_t n)
{
	xmlDocPtr doc = xmlReadMemory(body, (int)strlen(body), "complete.xml", NULL,
	                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlNodePtr root;
	size_t i = 0;

	CHECK(doc != NULL);
	root = xmlDocGetRootElement(doc);
	CHECK(root != NULL && strcmp((const char *)root->name, "CompleteMultipartUpload") == 0);
	for (xmlNodePtr p = root->children; p != NULL; p = p->next) {
		char want[128], *num = NULL, *tag = NULL;

		CHECK(p->type == XML_ELEMENT_NODE && strcmp((const char *)p->name, "Part") == 0);
		CHECK(i < n);
		for (xmlNodePtr c = p->children; c != NULL; c = c->next) {
			CHECK(c->type == XML_ELEMENT_NODE);
			if (strcmp((const char *)c->name, "PartNumber") == 0 && num == NULL)
				num = (char *)xmlNodeGetContent(c);
			else if (strcmp((const char *)c->name, "ETag") == 0 && tag == NULL)
				tag = (char *)xmlNodeGetContent(c);
			else
				CHECK(0);
		}
		CHECK(num != NULL && tag != NULL);
		snprintf(want, sizeof(want), "%zu", i + 1);
		CHECK(strcmp(num, want) == 0);
		snprintf(want, sizeof(want), "\"%s\"", etags[i]);
		CHECK(strcmp(tag, want) == 0);
		xmlFree(num);
		xmlFree(tag);
		i++;
	}
	CHECK(i == n);
	xmlFreeDoc(doc);
}

static void fuzz_complete(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *etags[MAX_PARTS], *body;
	size_t n = 0;
	int all_ok = 1;

	if (buf == NULL)
		return;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; n < MAX_PARTS;) {
		char *nl = strchr(p, '\n');

		etags[n++] = p;
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	for (size_t i = 0; i < n; i++)
		all_ok &= etag_ok(etags[i]);
	body = s3xml_complete_body(etags, n);
	CHECK((body != NULL) == all_ok);
	if (body != NULL)
		check_complete(body, etags, n);
	free(body);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;

	fuzz_list(body, size);
	fuzz_results(body, size);
	fuzz_time(data, size);
	fuzz_complete(data, size);
	return 0;
}
