/* Unit tests for core/log.c: the log file of -o log=FILE (one timestamped
 * line per message, appended, level names), its failure keeping the old
 * destination, and sinks and levels over it. */
#include "testutil.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int sunk;

static void count_sink(enum log_level lvl, const char *line)
{
	(void)lvl;
	(void)line;
	sunk++;
}

/* Does every line of `text` match `re`, and are there `n` of them? */
static bool lines_match(const char *text, const char *re, int n)
{
	regex_t rx;
	char *copy = strdup(text), *save = NULL, *l;
	int count = 0;
	bool ok = copy && regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) == 0;

	if (!ok) {
		free(copy);
		return false;
	}
	for (l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		count++;
		if (regexec(&rx, l, 0, NULL, 0) != 0) {
			t_fail(__FILE__, __LINE__, "line does not match: %s", l);
			ok = false;
		}
	}
	regfree(&rx);
	free(copy);
	return ok && count == n;
}

static void test_file_lines_have_timestamp_program_pid_and_level(void)
{
	char *path = t_path("a.log"), *text, re[256];
	size_t len;
	int r;

	t_write_file(path, "old line\n", 9);
	log_set_prog("test_log");
	r = log_set_file(path);
	T_CHECK(r == 0, "log_set_file = %d", r);
	log_err("first %d", 1);
	log_warn("second");
	log_info("third");
	log_debug("dropped at the default level");
	log_set_level(LOG_LVL_DEBUG);
	log_debug("fourth");
	log_set_level(LOG_LVL_INFO);
	/* A sink takes over, and NULL returns to the file, not stderr. */
	log_set_sink(count_sink);
	log_info("to the sink");
	log_set_sink(NULL);
	log_info("fifth");
	r = log_set_file(NULL);
	T_CHECK(r == 0, "log_set_file(NULL) = %d", r);
	T_CHECK(sunk == 1, "sink saw %d lines", sunk);

	text = t_read_file(path, &len);
	T_CHECK(text && strncmp(text, "old line\n", 9) == 0, "appended, not truncated");
	snprintf(re, sizeof(re),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}"
		 "[+-][0-9]{4} test_log\\[%ld\\] (error|warning|info|debug): "
		 "(first 1|second|third|fourth|fifth)$", (long)getpid());
	T_CHECK(text && lines_match(text + 9, re, 5), "five timestamped lines:\n%s",
		text ? text + 9 : "");
	T_CHECK(text && strstr(text, "] error: first 1\n") &&
		strstr(text, "] warning: second\n") && strstr(text, "] debug: fourth\n"),
		"level names");
	free(text);
	free(path);
}

static void test_a_file_that_cannot_be_opened_keeps_the_old_destination(void)
{
	char *good = t_path("b.log"), *bad = t_path("no/such/dir/c.log"), *text;
	size_t len;
	int r;

	r = log_set_file(good);
	T_CHECK(r == 0, "log_set_file = %d", r);
	r = log_set_file(bad);
	T_CHECK(r == -ENOENT, "log_set_file(missing dir) = %d", r);
	log_info("still here");
	log_set_file(NULL);
	text = t_read_file(good, &len);
	T_CHECK(text && strstr(text, "info: still here\n"), "old file kept: %s",
		text ? text : "(none)");
	free(text);
	free(good);
	free(bad);
}

int main(void)
{
	T_RUN(test_file_lines_have_timestamp_program_pid_and_level);
	T_RUN(test_a_file_that_cannot_be_opened_keeps_the_old_destination);
	return t_done();
}
