/*
 * inode.c - see inode.h for the model.
 *
 * The (parent, name) hash is a chained table whose size doubles when it
 * holds more nodes than buckets.  Invariants (checked by
 * inode_check_invariants() in debug builds): every hashed node is in the
 * bucket of hash(parent, name); a node's parent has nchildren counting it;
 * a node with nlookup == 0 and nchildren == 0 is never in the table.
 */
#include "inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct inode_table {
	pthread_mutex_t lock;
	struct node **buckets; /* [lock] */
	size_t n_buckets;      /* [lock] power of two */
	size_t n_hashed;       /* [lock] */
	uint64_t next_number;  /* [lock] */
	struct node root;
};

static size_t hash_name(const struct node *parent, const char *name)
{
	/* FNV-1a over the name, mixed with the parent address. */
	uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)parent;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 29));
}

static struct node **bucket_of(struct inode_table *t, const struct node *parent, const char *name)
{
	return &t->buckets[hash_name(parent, name) & (t->n_buckets - 1)];
}

/* Table lock held. */
static void hash_insert(struct inode_table *t, struct node *n)
{
	struct node **b;

	if (t->n_hashed >= t->n_buckets) {
		size_t new_count = t->n_buckets * 2;
		struct node **nb = calloc(new_count, sizeof(*nb));

		if (nb != NULL) {
			for (size_t i = 0; i < t->n_buckets; i++) {
				struct node *c = t->buckets[i];
				while (c != NULL) {
					struct node *next = c->next;
					size_t j = hash_name(c->parent, c->name) & (new_count - 1);
					c->next = nb[j];
					nb[j] = c;
					c = next;
				}
			}
			free(t->buckets);
			t->buckets = nb;
			t->n_buckets = new_count;
		} /* else: keep the old size; chains just get longer */
	}
	b = bucket_of(t, n->parent, n->name);
	n->next = *b;
	*b = n;
	n->hashed = 1;
	t->n_hashed++;
}

/* Table lock held. */
static void hash_remove(struct inode_table *t, struct node *n)
{
	struct node **pp;

	if (!n->hashed)
		return;
	for (pp = bucket_of(t, n->parent, n->name); *pp != NULL; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	n->next = NULL;
	n->hashed = 0;
	t->n_hashed--;
}

/* Table lock held. */
static struct node *hash_find(struct inode_table *t, const struct node *parent, const char *name)
{
	for (struct node *c = *bucket_of(t, parent, name); c != NULL; c = c->next) {
		if (c->parent == parent && strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static void node_init(struct node *n, mode_t type)
{
	n->type = type;
	pthread_mutex_init(&n->lock, NULL);
}

struct inode_table *inode_table_create(void)
{
	struct inode_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->n_buckets = 1024;
	t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
	t->root.name = strdup("");
	if (t->buckets == NULL || t->root.name == NULL) {
		free(t->buckets);
		free(t->root.name);
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	node_init(&t->root, S_IFDIR);
	t->root.number = FUSE_ROOT_ID;
	t->next_number = FUSE_ROOT_ID + 1;
	return t;
}

static void node_free(struct node *n)
{
	pthread_mutex_destroy(&n->lock);
	free(n->name);
	free(n);
}

void inode_table_destroy(struct inode_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct node *c = t->buckets[i];
		while (c != NULL) {
			struct node *next = c->next;
			node_free(c);
			c = next;
		}
	}
	/* Detached nodes still held by the kernel are lost here; the kernel
	 * is gone by the time the table is destroyed. */
	free(t->buckets);
	free(t->root.name);
	pthread_mutex_destroy(&t->root.lock);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct node *inode_from_ino(struct inode_table *t, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &t->root;
	return (struct node *)(uintptr_t)ino;
}

fuse_ino_t inode_to_ino(const struct node *n)
{
	if (n->parent == NULL)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)n;
}

/*
 * Free n if nothing holds it, then walk up: freeing a child may release
 * its parent.  Table lock held.
 */
static void release_if_unused(struct inode_table *t, struct node *n)
{
	while (n != NULL && n != &t->root && n->nlookup == 0 && n->nchildren == 0) {
		struct node *parent = n->parent;

		hash_remove(t, n);
		parent->nchildren--;
		node_free(n);
		n = parent;
	}
}

struct node *inode_link(struct inode_table *t, struct node *parent, const char *name, mode_t type)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, parent, name);
	if (n != NULL && n->type != type) {
		hash_remove(t, n);
		n = NULL;
	}
	if (n == NULL) {
		n = calloc(1, sizeof(*n));
		if (n == NULL || (n->name = strdup(name)) == NULL) {
			free(n);
			pthread_mutex_unlock(&t->lock);
			errno = ENOMEM;
			return NULL;
		}
		node_init(n, type);
		n->number = t->next_number++;
		n->generation = n->number;
		n->parent = parent;
		parent->nchildren++;
		hash_insert(t, n);
	}
	n->nlookup++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct node *inode_find(struct inode_table *t, struct node *parent, const char *name)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, parent, name);
	if (n != NULL)
		n->nlookup++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void inode_hold(struct inode_table *t, struct node *node)
{
	if (node == &t->root)
		return;
	pthread_mutex_lock(&t->lock);
	node->nlookup++;
	pthread_mutex_unlock(&t->lock);
}

void inode_forget(struct inode_table *t, struct node *node, uint64_t n)
{
	if (node == &t->root)
		return;
	pthread_mutex_lock(&t->lock);
	node->nlookup = node->nlookup > n ? node->nlookup - n : 0;
	release_if_unused(t, node);
	pthread_mutex_unlock(&t->lock);
}

void inode_detach(struct inode_table *t, struct node *node)
{
	pthread_mutex_lock(&t->lock);
	hash_remove(t, node);
	pthread_mutex_unlock(&t->lock);
}

int inode_move(struct inode_table *t, struct node *node, struct node *new_parent,
               const char *new_name)
{
	char *name = strdup(new_name);
	struct node *old_parent, *victim;

	if (name == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	victim = hash_find(t, new_parent, new_name);
	if (victim != NULL && victim != node)
		hash_remove(t, victim);
	hash_remove(t, node);
	old_parent = node->parent;
	free(node->name);
	node->name = name;
	node->parent = new_parent;
	new_parent->nchildren++;
	old_parent->nchildren--;
	hash_insert(t, node);
	release_if_unused(t, old_parent);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

char *inode_key(struct inode_table *t, struct node *node, const char *child)
{
	size_t len = child ? strlen(child) : 0;
	char *key, *p;

	pthread_mutex_lock(&t->lock);
	for (struct node *n = node; n->parent != NULL; n = n->parent)
		len += strlen(n->name) + 1;
	key = malloc(len + 1);
	if (key == NULL) {
		pthread_mutex_unlock(&t->lock);
		errno = ENOMEM;
		return NULL;
	}
	/* Fill from the end: child, then each ancestor's name. */
	p = key + len;
	*p = '\0';
	if (child != NULL) {
		size_t l = strlen(child);
		p -= l;
		memcpy(p, child, l);
		if (node->parent != NULL)
			*--p = '/';
	}
	for (struct node *n = node; n->parent != NULL; n = n->parent) {
		size_t l = strlen(n->name);
		p -= l;
		memcpy(p, n->name, l);
		if (n->parent->parent != NULL)
			*--p = '/';
	}
	pthread_mutex_unlock(&t->lock);
	/* The length counted one '/' per level; the root contributes none. */
	if (p != key)
		memmove(key, p, strlen(p) + 1);
	return key;
}

void inode_foreach(struct inode_table *t, inode_visit_fn fn, void *ctx)
{
	fn(&t->root, ctx);
	for (size_t i = 0; i < t->n_buckets; i++) {
		for (struct node *c = t->buckets[i]; c != NULL; c = c->next)
			fn(c, ctx);
	}
}

int inode_opened_version(const struct node *node, const char *etag, uint64_t size)
{
	return etag[0] != '\0' && strcmp(etag, node->open_etag) == 0 && size == node->open_size;
}
