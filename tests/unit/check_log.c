/*
 * check_log.c - unit tests for lib/log.c: what reaches a log line.
 *
 *   escape  log_escape(): controls, DEL, backslashes, C1 controls and
 *           bytes that are not well-formed UTF-8 become escapes; UTF-8
 *           stays; a small buffer cuts at a whole escape.
 *   lines   log_msg() writes one line per event whatever its arguments
 *           hold (finding 10 of issue 13: a key with "\n" forged lines).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "suites.h"

static const char *esc(const char *s)
{
	static char out[256];

	return log_escape(out, sizeof(out), s);
}

START_TEST(test_escape_controls)
{
	ck_assert_str_eq(esc("plain/key.bin"), "plain/key.bin");
	ck_assert_str_eq(esc("a\nchunkfs: error: forged"), "a\\nchunkfs: error: forged");
	ck_assert_str_eq(esc("cr\r tab\t bs\\ del\x7f esc\x1b[2J"),
	                 "cr\\r tab\\t bs\\\\ del\\x7f esc\\x1b[2J");
}
END_TEST

START_TEST(test_escape_utf8)
{
	ck_assert_str_eq(esc("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"),
	                 "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80");
	/* A lone continuation byte, a cut sequence, an overlong '/', a
	 * surrogate, past U+10FFFF, a C1 control (CSI). */
	ck_assert_str_eq(esc("\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xc2\x9b"),
	                 "\\x80|\\xc3|\\xc0\\xaf|\\xed\\xa0\\x80|\\xf4\\x90\\x80\\x80|\\xc2\\x9b");
}
END_TEST

START_TEST(test_escape_cut)
{
	char out[6];

	ck_assert_str_eq(log_escape(out, 5, "ab\ncd"), "ab\\n");
	ck_assert_str_eq(log_escape(out, 5, "abc\x01"), "abc");
	ck_assert_str_eq(log_escape(out, sizeof(out), "a\xc3\xa9\xc3\xa9"), "a\xc3\xa9\xc3\xa9");
	ck_assert_str_eq(log_escape(out, 4, "a\xe6\x97\xa5"), "a");
}
END_TEST

START_TEST(test_log_one_line)
{
	char path[] = "/tmp/check_log.XXXXXX", buf[512];
	int fd = mkstemp(path);
	FILE *f;
	int lines = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	log_warn("cannot read \"%s\": %s", "evil\nchunkfs: error: forged\r", "I/O error");
	fflush(stderr);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(buf, sizeof(buf), f) != NULL) {
		lines++;
		ck_assert_str_eq(buf,
		                 "chunkfs: warn: cannot read \"evil\\nchunkfs: error: forged\\r\": "
		                 "I/O error\n");
	}
	fclose(f);
	unlink(path);
	ck_assert_int_eq(lines, 1);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("escape");

	tcase_add_test(tc, test_escape_controls);
	tcase_add_test(tc, test_escape_utf8);
	tcase_add_test(tc, test_escape_cut);
	tcase_add_test(tc, test_log_one_line);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return suites_run(log_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
