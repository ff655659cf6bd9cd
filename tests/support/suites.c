/* suites.c - see suites.h. */
#include "suites.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int suites_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

int suites_run_over_stores(suite_make_fn make, enum store_kind *current, const char *label)
{
	enum store_kind kinds[] = {STORE_FS, STORE_S3};
	int failed = 0;

	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("NOT RUN %s: /dev/fuse is not usable here (%s)\n", label, strerror(errno));
		return 0;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (kinds[i] == STORE_S3 && store_s3_unavailable() != NULL) {
			printf("NOT RUN %s_s3: %s\n", label, store_s3_unavailable());
			continue;
		}
		*current = kinds[i];
		failed += suites_run(make(kinds[i]));
	}
	return failed ? 1 : 0;
}

void suites_mount_store(struct test_mount *m, const struct store *s, const char *opts)
{
	char all[2048];

	snprintf(all, sizeof(all), "%s%s%s", s->opts, s->opts[0] && opts ? "," : "",
	         opts ? opts : "");
	ck_assert_msg(tm_mount(m, s->source, all[0] ? all : NULL) == 0,
	              "mount failed; see %s/daemon.log", m->root);
}

long long suites_s3_counter(const char *name, const char *scratch)
{
	char out[PATH_MAX];
	json_t *root, *v;
	long long n;

	snprintf(out, sizeof(out), "%s/counters.json", scratch);
	if (tm_sh("curl -sf '%s/counters' > '%s'", getenv("CHUNKFS_TEST_S3_CONTROL"), out) != 0)
		return -1;
	root = json_load_file(out, 0, NULL);
	if (root == NULL)
		return -1;
	v = json_object_get(root, name);
	n = json_is_integer(v) ? json_integer_value(v) : 0;
	json_decref(root);
	return n;
}

int suites_s3_reset_counters(void)
{
	return tm_sh("curl -sf -X POST '%s/counters/reset' >/dev/null",
	             getenv("CHUNKFS_TEST_S3_CONTROL")) == 0
	           ? 0
	           : -1;
}
