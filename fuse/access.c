/*
 * access.c - owner and mode options, and mount(8)'s own options; see
 * access.h.
 */
#include "access.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* What fuse_opt_parse() fills; strings, checked and converted after. */
struct access_cmdline {
	char *uid, *gid, *umask, *file_mode, *dir_mode;
};

enum { KEY_DISCARD = 1 };

#define AOPT(t, p)                                                                                 \
	{                                                                                          \
		t, offsetof(struct access_cmdline, p), 0                                           \
	}
static const struct fuse_opt access_opt_spec[] = {
    AOPT("uid=%s", uid),
    AOPT("gid=%s", gid),
    AOPT("umask=%s", umask),
    AOPT("file_mode=%s", file_mode),
    AOPT("dir_mode=%s", dir_mode),
    /* mount(8), fstab and systemd options; mount.fuse3 drops most of
     * them, but a unit or script may call chunkfs directly. */
    FUSE_OPT_KEY("_netdev", KEY_DISCARD),
    FUSE_OPT_KEY("nofail", KEY_DISCARD),
    FUSE_OPT_KEY("auto", KEY_DISCARD),
    FUSE_OPT_KEY("noauto", KEY_DISCARD),
    FUSE_OPT_KEY("user", KEY_DISCARD),
    FUSE_OPT_KEY("users", KEY_DISCARD),
    FUSE_OPT_KEY("nouser", KEY_DISCARD),
    FUSE_OPT_KEY("owner", KEY_DISCARD),
    FUSE_OPT_KEY("group", KEY_DISCARD),
    FUSE_OPT_KEY("defaults", KEY_DISCARD),
    FUSE_OPT_KEY("comment=", KEY_DISCARD),
    FUSE_OPT_END,
};

static int access_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)data;
	(void)outargs;
	if (key == KEY_DISCARD)
		return 0;
	/* x-systemd.automount, x-systemd.mount-timeout=..., x-gvfs-show... */
	if (key == FUSE_OPT_KEY_OPT && strncmp(arg, "x-", 2) == 0)
		return 0;
	return 1;
}

/* An octal mode of at most 07777 into *out; 0 or -1. */
static int parse_mode(const char *s, mode_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || end == s || *end != '\0' || v > 07777)
		return -1;
	*out = (mode_t)v;
	return 0;
}

/* A decimal id, or a name looked up with lookup(); 0 or -1. */
static int parse_id(const char *s, int is_user, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s != '\0' && *end == '\0' && errno == 0 && v < (unsigned long)(unsigned)-1) {
		*out = (unsigned)v;
		return 0;
	}
	if (is_user) {
		struct passwd *pw = getpwnam(s);

		if (pw == NULL)
			return -1;
		*out = pw->pw_uid;
	} else {
		struct group *gr = getgrnam(s);

		if (gr == NULL)
			return -1;
		*out = gr->gr_gid;
	}
	return 0;
}

/* uid=/gid= (s may be NULL: not given); prints why and -1 when bad. */
static int parse_owner(const char *s, int is_user, int *set, unsigned *out)
{
	if (s == NULL)
		return 0;
	if (parse_id(s, is_user, out) < 0) {
		fprintf(stderr, "chunkfs: %s=%s is neither a number nor a known %s\n",
		        is_user ? "uid" : "gid", s, is_user ? "user" : "group");
		return -1;
	}
	*set = 1;
	return 0;
}

int access_opts_parse(struct fuse_args *args, struct access_opts *o)
{
	struct access_cmdline c = {0};
	int ret = -1;

	memset(o, 0, sizeof(*o));
	if (fuse_opt_parse(args, &c, access_opt_spec, access_opt_proc) < 0)
		return -1;
	if (parse_owner(c.uid, 1, &o->set_uid, &o->uid) < 0 ||
	    parse_owner(c.gid, 0, &o->set_gid, &o->gid) < 0)
		goto out;
	if (c.umask != NULL && parse_mode(c.umask, &o->umask) < 0) {
		fprintf(stderr, "chunkfs: umask=%s must be an octal mode such as 022\n", c.umask);
		goto out;
	}
	if (c.file_mode != NULL) {
		if (parse_mode(c.file_mode, &o->file_mode) < 0) {
			fprintf(stderr,
			        "chunkfs: file_mode=%s must be an octal mode such as 0644\n",
			        c.file_mode);
			goto out;
		}
		o->set_file_mode = 1;
	}
	if (c.dir_mode != NULL) {
		if (parse_mode(c.dir_mode, &o->dir_mode) < 0) {
			fprintf(stderr, "chunkfs: dir_mode=%s must be an octal mode such as 0755\n",
			        c.dir_mode);
			goto out;
		}
		o->set_dir_mode = 1;
	}
	ret = 0;
out:
	free(c.uid);
	free(c.gid);
	free(c.umask);
	free(c.file_mode);
	free(c.dir_mode);
	return ret;
}

void access_opts_usage(FILE *out)
{
	fprintf(out,
	        "Access (what stat shows; the kernel checks it, default_permissions is on):\n"
	        "    -o allow_other         let other users in (root, or user_allow_other\n"
	        "                           in /etc/fuse.conf)\n"
	        "    -o uid=USER, gid=GROUP owner of every file and directory (number or name;\n"
	        "                           default: the user who mounted, or the object's\n"
	        "                           stored owner)\n"
	        "    -o file_mode=MODE      permission bits of every file (octal; default 0644\n"
	        "                           or the object's stored mode)\n"
	        "    -o dir_mode=MODE       permission bits of every directory (default 0755)\n"
	        "    -o umask=MASK          bits cleared from every mode (octal, default 0)\n"
	        "  Ignored, for fstab and systemd: _netdev, nofail, auto, noauto, user, users,\n"
	        "  nouser, owner, group, defaults, comment=..., x-*.\n");
}

void access_apply(const struct access_opts *o, struct stat *st)
{
	mode_t perm = st->st_mode & 07777;

	if (o->set_uid)
		st->st_uid = o->uid;
	if (o->set_gid)
		st->st_gid = o->gid;
	if (S_ISDIR(st->st_mode) && o->set_dir_mode)
		perm = o->dir_mode;
	else if (!S_ISDIR(st->st_mode) && o->set_file_mode)
		perm = o->file_mode;
	perm &= ~o->umask;
	st->st_mode = (st->st_mode & (mode_t)~07777) | perm;
}
