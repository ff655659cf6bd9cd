/*
 * creds_i.h - the parsers of creds.c for what credential sources send and
 * hold (container and IMDS JSON, STS XML, the shared ini files), exposed
 * for the unit tests and the fuzz target (tests/fuzz/fuzz_creds.c).  Only
 * creds.c and tests include this.
 *
 * why is a buffer of WHY_MAX bytes that receives one sentence on error;
 * it never holds a secret.  Credentials returned are checked as
 * creds_provider_create() checks them (a key id, a secret, no blanks or
 * control characters) and freed with creds_free().
 */
#ifndef CHUNKFS_CREDS_I_H
#define CHUNKFS_CREDS_I_H

#include <stddef.h>
#include <stdio.h>

#include "creds.h"

#define WHY_MAX 512

/*
 * A container or IMDS answer, {"AccessKeyId", "SecretAccessKey", "Token",
 * "Expiration"} (and for IMDS "Code": "Success"), of len bytes (not
 * NUL-terminated).  what names the source in why.  0, -EPROTO (not such
 * an answer), -EACCES (a Code other than Success), -EINVAL (credentials
 * that cannot sign) or -ENOMEM.
 */
int creds_parse_json(const char *body, size_t len, const char *what, struct creds *out, char *why);

/* An STS AssumeRoleWithWebIdentityResponse: as creds_parse_json(). */
int creds_parse_sts(const char *body, size_t len, struct creds *out, char *why);

/*
 * An STS error answer with this HTTP status: the -errno it means, with
 * "STS answered HTTP ... Code: message" in why (the message left out when
 * it quotes token, which may be NULL).
 */
int creds_sts_error(long status, const char *body, size_t len, const char *token, char *why);

enum profile_key {
	PK_ACCESS_KEY,
	PK_SECRET,
	PK_SESSION_TOKEN,
	PK_SECURITY_TOKEN, /* the old name of aws_session_token */
	PK_ROLE_ARN,
	PK_WEB_IDENTITY_TOKEN_FILE,
	PK_ROLE_SESSION_NAME,
	PK_REGION,
	/* Ways to get credentials chunkfs does not implement. */
	PK_SOURCE_PROFILE,
	PK_CREDENTIAL_SOURCE,
	PK_CREDENTIAL_PROCESS,
	PK_SSO_START_URL,
	PK_SSO_SESSION,
	PK_COUNT,
	PK_UNSUPPORTED_FIRST = PK_SOURCE_PROFILE,
};

/* What one file says about one profile. */
struct profile {
	const char *name; /* the profile wanted */
	int config;       /* config file syntax: [profile NAME], [default] */
	int found;        /* a section of that name was seen */
	int err;          /* -ENOMEM from the handler */
	char *val[PK_COUNT];
};

/*
 * Read the ini file f into pr (name and config set by the caller, the
 * rest zeroed): the values of pr->name's section.  inih's result: 0, the
 * first line that cannot be parsed, or < 0 when inih failed; pr->err is
 * -ENOMEM when a value could not be kept.  Free with creds_profile_free().
 */
int creds_profile_parse(FILE *f, struct profile *pr);
void creds_profile_free(struct profile *pr);

#endif
