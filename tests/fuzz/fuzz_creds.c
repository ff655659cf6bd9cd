/*
 * fuzz_creds.c - libFuzzer target for what backends/s3/creds.c parses
 * from credential sources: container and IMDS JSON answers, STS XML
 * answers and errors, and the shared ini files (creds_i.h).
 *
 * fuzz-sources: backends/s3/creds.c lib/iso8601.c lib/log.c
 * fuzz-pkgs: libcurl jansson libxml-2.0 openssl inih
 *
 * (tests/fuzz/run.sh reads the two lines above: what to compile in, and
 * which pkg-config packages to link.)
 *
 * The whole input is handed, as it is (not NUL-terminated), to each
 * parser: creds_parse_json(), creds_parse_sts(), creds_sts_error() with
 * two statuses, and creds_profile_parse() (through fmemopen) for the
 * profiles "default" and "x" in both the credentials and the config
 * syntax.
 *
 * Checked on every input, aborting on a violation:
 *   - each parser returns only the codes creds_i.h allows;
 *   - why is a terminated string of fewer than WHY_MAX bytes, set on
 *     every error;
 *   - credentials returned have a key id and a secret, printable without
 *     blanks, and a session token (if any) likewise;
 *   - the STS error sentence never holds the web identity token passed
 *     in (TOKEN below; tests/fuzz/corpus/fuzz_creds holds documents that
 *     quote it);
 *   - a profile's values are C strings; pr.err is 0 or -ENOMEM.
 */
#include <errno.h>
#include <libxml/parser.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "s3/creds_i.h"

#define TOKEN "eyJhbGciOiJSUzI1NiJ9.secret-token"

static void check_why(const char *why, int ret)
{
	CHECK(memchr(why, '\0', WHY_MAX) != NULL);
	if (ret != 0)
		CHECK(why[0] != '\0');
}

static void check_printable(const char *s)
{
	CHECK(s[0] != '\0');
	for (; *s != '\0'; s++)
		CHECK((unsigned char)*s > ' ' && (unsigned char)*s < 0x7f);
}

static void check_creds(const struct creds *c, int ret)
{
	if (ret != 0) {
		CHECK(c->access_key_id == NULL && c->secret_access_key == NULL &&
		      c->session_token == NULL);
		return;
	}
	check_printable(c->access_key_id);
	CHECK(strpbrk(c->access_key_id, "/,") == NULL);
	check_printable(c->secret_access_key);
	if (c->session_token != NULL)
		check_printable(c->session_token);
}

static void fuzz_answers(const char *body, size_t size)
{
	struct creds c = {0};
	char why[WHY_MAX];
	int ret;

	why[0] = '\0';
	ret = creds_parse_json(body, size, "IMDS", &c, why);
	CHECK(ret == 0 || ret == -EPROTO || ret == -EACCES || ret == -EINVAL || ret == -ENOMEM);
	check_why(why, ret);
	check_creds(&c, ret);
	creds_free(&c);

	why[0] = '\0';
	ret = creds_parse_sts(body, size, &c, why);
	CHECK(ret == 0 || ret == -EPROTO || ret == -EINVAL || ret == -ENOMEM);
	check_why(why, ret);
	check_creds(&c, ret);
	creds_free(&c);

	for (long status = 400; status <= 403; status += 3) {
		why[0] = '\0';
		ret = creds_sts_error(status, body, size, TOKEN, why);
		CHECK(ret < 0);
		check_why(why, ret);
		CHECK(strstr(why, TOKEN) == NULL);
	}
}

static void fuzz_profile(const uint8_t *data, size_t size, const char *name, int config)
{
	struct profile pr = {.name = name, .config = config};
	FILE *f;

	if (size == 0)
		return; /* fmemopen refuses an empty buffer */
	f = fmemopen((void *)data, size, "r");
	if (f == NULL)
		return;
	(void)creds_profile_parse(f, &pr);
	fclose(f);
	CHECK(pr.err == 0 || pr.err == -ENOMEM);
	for (int i = 0; i < PK_COUNT; i++)
		if (pr.val[i] != NULL)
			(void)strlen(pr.val[i]);
	creds_profile_free(&pr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;

	if (!init) {
		xmlInitParser();
		init = 1;
	}
	fuzz_answers((const char *)data, size);
	fuzz_profile(data, size, "default", 0);
	fuzz_profile(data, size, "default", 1);
	fuzz_profile(data, size, "x", 0);
	fuzz_profile(data, size, "x", 1);
	return 0;
}
