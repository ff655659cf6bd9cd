/*
 * access.h - who may use a mount and what stat() shows: the owner and mode
 * options (uid=, gid=, umask=, file_mode=, dir_mode=), and the options of
 * mount(8), fstab and systemd that chunkfs accepts and ignores.
 *
 * The kernel checks permissions itself (default_permissions is always on)
 * against what chunkfs_fill_attr() reports, so these options decide who
 * can read and write.  Other users reach the mount only with allow_other.
 */
#ifndef CHUNKFS_ACCESS_H
#define CHUNKFS_ACCESS_H

#include <fuse_opt.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

struct access_opts {
	int set_uid, set_gid; /* uid=/gid= given: every file shows that owner */
	uid_t uid;
	gid_t gid;
	int set_file_mode, set_dir_mode; /* file_mode=/dir_mode= given */
	mode_t file_mode, dir_mode;      /* permission bits (07777) */
	mode_t umask;                    /* bits cleared from every mode (default 0) */
};

/*
 * Take the access options out of args and fill o.  uid= and gid= take a
 * number or a user/group name; the modes are octal.  Also drops the
 * options only mount(8), fstab or systemd care about (_netdev, nofail,
 * auto, noauto, user, users, nouser, owner, group, defaults, comment=,
 * x-*), so an fstab line can be passed through unchanged.  Prints one
 * sentence and returns -1 on a bad value, else 0.
 */
int access_opts_parse(struct fuse_args *args, struct access_opts *o);

/* Help text for these options. */
void access_opts_usage(FILE *out);

/*
 * Apply the options to attributes chunkfs filled in from the backend and
 * its defaults: owner, then mode (file_mode/dir_mode replace the bits,
 * then the umask clears bits).  st->st_mode's type bits are kept.
 */
void access_apply(const struct access_opts *o, struct stat *st);

#endif
