/*
 * stats.c - the statistics document: what the driver counted and what
 * every backend of the stack reports, as one JSON object.
 *
 *   {"version": 1, "uptime_s": 12.5,
 *    "fuse": {"lookups": .., "opens": .., "reads": .., "read_bytes": .., ...},
 *    "s3": {"get": .., "head": .., ...}, "cache": {...}, ...}
 *
 * Programs read it as the extended attribute user.chunkfs.stats of the
 * mount root (getfattr -n user.chunkfs.stats --only-values MOUNTPOINT), or
 * with `chunkfs stats MOUNTPOINT`.
 */
#include "chunkfs_i.h"

#include <jansson.h>
#include <stdlib.h>
#include <time.h>

#include "manifest.h"

static uint64_t get(const uint64_t *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}

/* backend_stats() callback: counters go into their group's object. */
static void emit(void *ctx, const char *group, const char *name, uint64_t value)
{
	json_t *root = ctx, *obj = json_object_get(root, group);

	if (obj == NULL) {
		obj = json_object();
		json_object_set_new(root, group, obj);
	}
	json_object_set_new(obj, name, json_integer((json_int_t)value));
}

static void emit_pagefill(void *ctx, const char *name, uint64_t value)
{
	json_object_set_new(ctx, name, json_integer((json_int_t)value));
}

static double group_value(json_t *root, const char *group, const char *name)
{
	return (double)json_integer_value(json_object_get(json_object_get(root, group), name));
}

/*
 * "ratios": the cache's hit ratio (hits / (hits + misses)) and the
 * prefetcher's efficiency (prefetched blocks that were read / prefetched
 * blocks), when the stack has a cache and the ratio has a denominator.
 */
static void add_ratios(json_t *root)
{
	double hits = group_value(root, "cache", "hits"),
	       misses = group_value(root, "cache", "misses");
	double fetched = group_value(root, "cache", "prefetch_blocks");
	json_t *r = json_object();

	if (hits + misses > 0)
		json_object_set_new(r, "cache_hit_ratio", json_real(hits / (hits + misses)));
	if (fetched > 0)
		json_object_set_new(
		    r, "prefetch_efficiency",
		    json_real(group_value(root, "cache", "prefetch_hits") / fetched));
	json_object_set_new(root, "ratios", r);
}

char *chunkfs_stats_json(struct chunkfs *fs)
{
	const struct chunkfs_counters *c = &fs->counters;
	json_t *root = json_object(), *f = json_object();
	struct timespec now;
	char *text;

	clock_gettime(CLOCK_REALTIME, &now);
	json_object_set_new(root, "version", json_integer(1));
	json_object_set_new(root, "uptime_s",
	                    json_real((double)(now.tv_sec - fs->mount_time.tv_sec) +
	                              (double)(now.tv_nsec - fs->mount_time.tv_nsec) / 1e9));
	json_object_set_new(f, "lookups", json_integer((json_int_t)get(&c->lookups)));
	json_object_set_new(f, "opens", json_integer((json_int_t)get(&c->opens)));
	json_object_set_new(f, "reads", json_integer((json_int_t)get(&c->reads)));
	json_object_set_new(f, "read_bytes", json_integer((json_int_t)get(&c->read_bytes)));
	json_object_set_new(f, "writes", json_integer((json_int_t)get(&c->writes)));
	json_object_set_new(f, "write_bytes", json_integer((json_int_t)get(&c->write_bytes)));
	json_object_set_new(f, "saves", json_integer((json_int_t)get(&c->saves)));
	json_object_set_new(f, "save_errors", json_integer((json_int_t)get(&c->save_errors)));
	json_object_set_new(f, "save_bytes", json_integer((json_int_t)get(&c->save_bytes)));
	json_object_set_new(root, "fuse", f);
	json_object_set_new(root, "pagefill", json_object());
	pagefill_stats(fs, emit_pagefill, json_object_get(root, "pagefill"));
	json_object_set_new(root, "manifest", json_object());
	manifest_stats(fs, emit_pagefill, json_object_get(root, "manifest"));
	backend_stats(fs->be, emit, root);
	add_ratios(root);
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}
