/*
 * iso8601.h - the one parser for the ISO 8601 times AWS writes
 * ("2009-10-12T17:50:30.000Z"), shared by the S3 listing and the
 * credential sources.
 */
#ifndef CHUNKFS_ISO8601_H
#define CHUNKFS_ISO8601_H

#include <time.h>

enum {
	/* Accept only "Z" or "+00:00" as the zone (S3 listings); without it
	 * any "+HH:MM", "-HH:MM" or "+HHMM" offset is applied. */
	ISO8601_UTC_ONLY = 1 << 0,
};

/*
 * Exactly "YYYY-MM-DDTHH:MM:SS", an optional fraction of one or more
 * digits (kept to the nanosecond), then the zone and nothing after.
 * Fields out of range (month 13, February 30, hour 24) are rejected, not
 * normalized; second 60 (a leap second) is allowed.  Returns 0 or -EINVAL;
 * *t is written only on success.
 */
int iso8601_parse(const char *s, unsigned flags, struct timespec *t);

#endif
