/* iso8601.c - see iso8601.h. */
#include "iso8601.h"

#include <errno.h>
#include <string.h>

/* Read exactly n digits at *p into *v and advance *p. */
static int fixed_digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return -EINVAL;
		*v = *v * 10 + (c - '0');
	}
	*p += n;
	return 0;
}

static int expect_char(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

static int days_in_month(int year, int mon)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return mon == 2 && leap ? 29 : days[mon - 1];
}

/* The zone at p as seconds east of UTC, or -EINVAL (through *ok). */
static long zone_offset(const char *p, unsigned flags, int *ok)
{
	int sign, oh, om;

	*ok = 0;
	if (strcmp(p, "Z") == 0 || strcmp(p, "+00:00") == 0) {
		*ok = 1;
		return 0;
	}
	if ((flags & ISO8601_UTC_ONLY) || (*p != '+' && *p != '-'))
		return 0;
	sign = *p++ == '-' ? -1 : 1;
	if (fixed_digits(&p, 2, &oh) < 0)
		return 0;
	if (*p == ':')
		p++;
	if (fixed_digits(&p, 2, &om) < 0 || *p != '\0' || oh > 23 || om > 59)
		return 0;
	*ok = 1;
	return sign * (oh * 3600L + om * 60L);
}

int iso8601_parse(const char *s, unsigned flags, struct timespec *t)
{
	int year, mon, day, hour, min, sec, ok;
	const char *p = s;
	long nsec = 0, offset;
	struct tm tm;
	time_t v;

	if (s == NULL)
		return -EINVAL;
	if (fixed_digits(&p, 4, &year) || expect_char(&p, '-') || fixed_digits(&p, 2, &mon) ||
	    expect_char(&p, '-') || fixed_digits(&p, 2, &day) || expect_char(&p, 'T') ||
	    fixed_digits(&p, 2, &hour) || expect_char(&p, ':') || fixed_digits(&p, 2, &min) ||
	    expect_char(&p, ':') || fixed_digits(&p, 2, &sec))
		return -EINVAL;
	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 ||
	    min > 59 || sec > 60)
		return -EINVAL;
	if (*p == '.') {
		int digits = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits < 9)
				nsec = nsec * 10 + (*p - '0');
		}
		if (digits == 0)
			return -EINVAL;
		for (; digits < 9; digits++)
			nsec *= 10;
	}
	offset = zone_offset(p, flags, &ok);
	if (!ok)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	v = timegm(&tm);
	/* timegm's error value is also 1969-12-31T23:59:59Z. */
	if (v == (time_t)-1 &&
	    !(year == 1969 && mon == 12 && day == 31 && hour == 23 && min == 59 && sec == 59))
		return -EINVAL;
	t->tv_sec = v - offset;
	t->tv_nsec = nsec;
	return 0;
}
