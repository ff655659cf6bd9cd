/*
 * mountinfo.h - what /proc/self/mountinfo says is mounted on a path.
 */
#ifndef CHUNKFS_MOUNTINFO_H
#define CHUNKFS_MOUNTINFO_H

#include <stddef.h>

/*
 * The mount entry for path (absolute, no symlinks) in /proc/self/mountinfo,
 * the last one (the top mount): copies its device ("0:53") into dev and its
 * filesystem type into type.  1 found, 0 not.
 */
int mountinfo_find(const char *path, char *dev, size_t dev_len, char *type, size_t type_len);

#endif
