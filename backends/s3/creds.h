/*
 * creds.h - where the S3 backend gets its AWS credentials: the provider
 * chain of the AWS SDKs, resolved once at mount time, with the temporary
 * credentials refreshed before they expire.
 *
 *	struct creds_opts o = {.region = "eu-west-1"};
 *	struct creds_provider *p = creds_provider_create(&o);
 *	if (p == NULL)
 *		return -errno;      // already logged, in one sentence
 *	...
 *	struct creds c;
 *	int err = creds_get(p, &c);   // for each request to sign
 *	if (err == 0 && c.access_key_id != NULL)
 *		... sign with c ...;     // NULL keys: anonymous, send unsigned
 *	creds_free(&c);
 *	...
 *	creds_provider_destroy(p);
 *
 * The chain (the first source that is configured decides)
 *   0. opts->anonymous: no credentials at all; requests go unsigned.
 *   1. Options: opts->profile or opts->credentials_file given means "the
 *      shared files, with this profile / this credentials file".  A profile
 *      that is not there, or that holds no credentials, is an error: the
 *      chain does not go on to other sources behind the user's back.
 *   2. Environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with
 *      AWS_SESSION_TOKEN when set.  One of the two without the other is an
 *      error.  These never expire as far as chunkfs knows.
 *   3. Web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (and
 *      AWS_ROLE_SESSION_NAME, default "chunkfs-<pid>"): an unsigned STS
 *      AssumeRoleWithWebIdentity call.  The token file is read again for
 *      each refresh (Kubernetes rotates it).  STS endpoint:
 *      AWS_ENDPOINT_URL_STS, else https://sts.REGION.amazonaws.com with
 *      REGION from opts->region, AWS_REGION, AWS_DEFAULT_REGION or the
 *      profile's "region", else the global https://sts.amazonaws.com.
 *   4. Shared files: the credentials file (AWS_SHARED_CREDENTIALS_FILE,
 *      else ~/.aws/credentials), section [NAME], then the config file
 *      (AWS_CONFIG_FILE, else ~/.aws/config), section [profile NAME] or
 *      [default]; NAME is AWS_PROFILE, else "default".  Keys
 *      aws_access_key_id, aws_secret_access_key, aws_session_token.  A
 *      profile whose config section has role_arn and web_identity_token_file
 *      (and optionally role_session_name) uses web identity as in 3.
 *      AWS_PROFILE naming a profile that exists in neither file is an
 *      error; a missing "default" profile just moves on.  Profiles that
 *      need what chunkfs does not implement (source_profile,
 *      credential_source, credential_process, sso_*) are an error that
 *      names the key.  A credentials file readable by group or others
 *      earns a warning.
 *   5. Container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (fetched from
 *      http://169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI (http
 *      only to a loopback address or to 169.254.170.2 / 169.254.170.23 /
 *      fd00:ec2::23, any host over https), with the Authorization header
 *      from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read again for each
 *      refresh) or AWS_CONTAINER_AUTHORIZATION_TOKEN.
 *   6. EC2 instance profile through IMDSv2 (a session token first, then
 *      the role name, then its credentials), at
 *      AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254
 *      (http://[fd00:ec2::254] with AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=
 *      IPv6).  Skipped when AWS_EC2_METADATA_DISABLED=true.  Each request
 *      gets a 1 s connect timeout, 2 s in all, and 2 attempts, so a machine
 *      that is not on EC2 gives up within a few seconds.  IMDSv1 (no
 *      token) is not used.
 *   A source that is configured but fails (STS refuses the token, the
 *   container endpoint answers 401, a malformed file) makes
 *   creds_provider_create() fail with that error rather than fall through
 *   to the next source, as the SDKs do; only IMDS failing means "nothing
 *   found".
 *
 * Refresh
 *   Credentials from 3, 5 and 6 carry an expiration.  creds_get() notices
 *   when they expire within CREDS_REFRESH_WINDOW seconds and fetches new
 *   ones in the calling thread, while every other caller keeps getting the
 *   old ones as long as they are valid (so at most one refresh is in flight
 *   and reads are not held up).  A failed refresh keeps the old credentials
 *   (with a warning) until they expire; after that creds_get() returns
 *   -EACCES.  After a failed refresh, or one that brought credentials
 *   still inside the window, the next attempt waits CREDS_RETRY_INTERVAL
 *   seconds.
 *
 * Secrets
 *   Nothing here logs a secret key, session token, web identity token,
 *   container authorization token or IMDS token; the info line names the
 *   source only.  Buffers that held one are wiped (OPENSSL_cleanse) before
 *   they are freed.
 *
 * Environment variables are read by creds_provider_create() only: later
 * changes to the environment are not seen (the files named by
 * AWS_WEB_IDENTITY_TOKEN_FILE and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 * are read again at each refresh).
 */
#ifndef CHUNKFS_CREDS_H
#define CHUNKFS_CREDS_H

#include <time.h>

/* Refresh credentials that expire within this many seconds. */
#define CREDS_REFRESH_WINDOW 300
/* Credentials with this many seconds or less left count as expired: a
 * request signed with them may not reach AWS in time. */
#define CREDS_EXPIRY_MARGIN 10
/* Wait this long after a refresh that failed (or gave credentials that are
 * still due) before the next attempt. */
#define CREDS_RETRY_INTERVAL 10

/* One snapshot of credentials.  Owned by whoever holds it: creds_free(). */
struct creds {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL if none */
	time_t expiration;   /* 0: does not expire */
};

/* Every field may be NULL / 0.  The strings are copied by
 * creds_provider_create(). */
struct creds_opts {
	const char *profile;          /* -o profile=; see chain step 1 */
	const char *credentials_file; /* -o credentials_file=; see chain step 1 */
	int anonymous;                /* -o anonymous: no credentials, unsigned requests */
	const char *region;           /* for the regional STS endpoint */
	const char *ca_bundle;        /* CA file for https calls; NULL: AWS_CA_BUNDLE or the
	                                 system default */
};

struct creds_provider;

/*
 * Resolve the chain now (see above) and log at info level which source
 * was used.  Returns the provider, or NULL with errno set, after one
 * log_error line saying why:
 *   ENOENT   nothing found (the line lists what was tried), or the profile
 *            asked for (option, AWS_PROFILE) does not exist, or a file
 *            named explicitly does not exist
 *   EINVAL   incomplete or malformed configuration (half of a key pair, a
 *            file inih cannot parse, a profile feature not implemented, a
 *            container URI to a host not allowed)
 *   EACCES   the source refused (HTTP 401/403, STS AccessDenied ...)
 *   ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH, EIO, EPROTO  a configured
 *            endpoint could not be reached or answered nonsense
 *   ENOMEM
 * Expired credentials from a source are accepted (with a warning);
 * creds_get() will try to refresh them.
 */
struct creds_provider *creds_provider_create(const struct creds_opts *opts);

/* Safe on NULL.  No creds_get() may be running. */
void creds_provider_destroy(struct creds_provider *p);

/*
 * Fill *out with a copy of the current credentials, which the caller frees
 * with creds_free() (also after an error: *out is then all NULL).  May be
 * called from any number of threads at once.  Refreshes as described
 * above, which can take a few seconds in the one thread that does it.
 * Returns 0; for an anonymous provider 0 with *out all NULL / 0; -EACCES
 * when the credentials have expired and could not be refreshed; -ENOMEM.
 */
int creds_get(struct creds_provider *p, struct creds *out);

/* Wipe the secrets, free the strings, zero *c.  Safe on a zeroed struct. */
void creds_free(struct creds *c);

/* The source in use, for messages: "options (profile X)", "environment",
 * "web identity", "web identity (profile X)", "shared files (profile X)",
 * "container", "instance profile (IMDSv2)" or "anonymous".  Owned by p. */
const char *creds_source(const struct creds_provider *p);

/* Non-zero when requests are to go unsigned. */
int creds_anonymous(const struct creds_provider *p);

/*
 * Helpers, exposed for the tests.
 *
 * creds_container_url_allowed: 1 when a container credentials URL (from
 * AWS_CONTAINER_CREDENTIALS_FULL_URI) may be used: https to any host, or
 * http to a loopback address (127.0.0.0/8, ::1, localhost) or to
 * 169.254.170.2, 169.254.170.23 or fd00:ec2::23; 0 otherwise.
 *
 * creds_parse_time: parse an ISO 8601 UTC time as AWS writes it
 * ("2024-05-01T12:00:00Z", with optional fraction of a second, 'Z' or a
 * +hh:mm / -hh:mm offset) into *t.  Returns 0 or -EINVAL.
 */
int creds_container_url_allowed(const char *url);
int creds_parse_time(const char *s, time_t *t);

#endif
