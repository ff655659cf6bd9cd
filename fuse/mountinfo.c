/* mountinfo.c - see mountinfo.h. */
#include "mountinfo.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

int mountinfo_find(const char *path, char *dev, size_t dev_len, char *type, size_t type_len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	int found = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char mdev[64], mpoint[PATH_MAX], *sep;

		if (sscanf(line, "%*s %*s %63s %*s %4095s", mdev, mpoint) != 2)
			continue;
		/* mountinfo escapes spaces as \040; compare the unescaped path. */
		for (char *r = mpoint, *w = mpoint;; r++, w++) {
			if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3') {
				*w = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
				r += 3;
			} else {
				*w = *r;
			}
			if (*r == '\0')
				break;
		}
		if (strcmp(mpoint, path) != 0)
			continue;
		snprintf(dev, dev_len, "%s", mdev);
		sep = strstr(line, " - ");
		if (sep == NULL || sscanf(sep + 3, "%63s", type) != 1)
			snprintf(type, type_len, "?");
		found = 1; /* keep going: the last entry is the top mount */
	}
	fclose(f);
	return found;
}
