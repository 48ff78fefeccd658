/* test_commit - the commit rules: validation, normalisation, numbering,
 * re-sends, all or none. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "store.h"
#include "testutil.h"

#define BIG ((size_t)1 << 20)
#define TS_LEN 26 /* 2026-11-25T09:12:01.123456 */

static struct store *open_store(const char *name, const char *content)
{
	char *path = t_path(name);
	struct store *s;
	int r;

	if (content)
		t_write_file(path, content, strlen(content));
	else
		unlink(path);
	r = store_open(path, 0, &s);
	if (r < 0) {
		fprintf(stderr, "store_open %s: %s\n", path, strerror(-r));
		abort();
	}
	free(path);
	return s;
}

struct res {
	int r;
	size_t count;
	int64_t first, last;
	char why[COMMIT_WHY_LEN];
	char *lines; /* NUL-terminated copy of the plan's lines */
	size_t len;
};

static void res_free(struct res *x)
{
	free(x->lines);
}

static char *copy_lines(struct commit_plan *p, size_t *len)
{
	const char *l = commit_plan_lines(p, len);
	char *c = malloc(*len + 1);

	if (!c)
		abort();
	memcpy(c, l, *len);
	c[*len] = '\0';
	return c;
}

/* Drops added in order to one fresh plan; the result of the last one, and
 * the plan's lines after all of them. */
static struct res plan_n(struct store *s, const char *const *drops, size_t n,
			 size_t max)
{
	struct commit_plan *p;
	struct res x = { 0 };
	size_t i;

	if (commit_plan_new(s, &p) < 0)
		abort();
	for (i = 0; i < n; i++)
		x.r = commit_plan_add(p, drops[i], strlen(drops[i]), max,
				      &x.count, &x.first, &x.last, x.why);
	x.lines = copy_lines(p, &x.len);
	commit_plan_free(p);
	return x;
}

static struct res plan1(struct store *s, const char *drop)
{
	return plan_n(s, &drop, 1, BIG);
}

static bool is_digits(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffff" exactly. */
static bool ts_format_ok(const char *t)
{
	return is_digits(t, 4) && t[4] == '-' && is_digits(t + 5, 2) &&
	       t[7] == '-' && is_digits(t + 8, 2) && t[10] == 'T' &&
	       is_digits(t + 11, 2) && t[13] == ':' && is_digits(t + 14, 2) &&
	       t[16] == ':' && is_digits(t + 17, 2) && t[19] == '.' &&
	       is_digits(t + 20, 6);
}

/* Each line of `lines` must end in an appended generated timestamp; they are
 * cut out in place so the rest can be compared byte for byte.  Returns the
 * new length, or (size_t)-1 with a failed check. */
static size_t cut_timestamps(char *lines, size_t len)
{
	static const char tail[] = ",\"timestamp\":\"";
	size_t tl = strlen(tail), in = 0, out = 0;

	while (in < len) {
		char *nl = memchr(lines + in, '\n', len - in);
		size_t ll, keep;

		if (!nl) {
			T_CHECK(false, "line without LF in the plan");
			return (size_t)-1;
		}
		ll = (size_t)(nl - (lines + in));
		if (ll < tl + TS_LEN + 2 ||
		    memcmp(lines + in + ll - tl - TS_LEN - 2, tail, tl) != 0 ||
		    !ts_format_ok(lines + in + ll - TS_LEN - 2) ||
		    memcmp(lines + in + ll - 2, "\"}", 2) != 0) {
			T_CHECK(false, "no appended timestamp: %.*s", (int)ll,
				lines + in);
			return (size_t)-1;
		}
		keep = ll - tl - TS_LEN - 2;
		memmove(lines + out, lines + in, keep);
		out += keep;
		lines[out++] = '}';
		lines[out++] = '\n';
		in += ll + 1;
	}
	lines[out] = '\0';
	return out;
}

#define CHECK_LINES_NO_TS(x, want)                                        \
	do {                                                              \
		size_t n_ = cut_timestamps((x).lines, (x).len);           \
		if (n_ != (size_t)-1)                                     \
			T_CHECK_MEM((x).lines, n_, want, strlen(want),    \
				    "lines");                             \
	} while (0)

static void expect_einval(struct store *s, const char *drop, const char *why)
{
	struct res x = plan1(s, drop);

	T_CHECK(x.r == -EINVAL, "%s: r=%d, want -EINVAL", drop, x.r);
	T_CHECK(strcmp(x.why, why) == 0, "%s: why '%s', want '%s'", drop,
		x.why, why);
	T_CHECK(x.len == 0, "%s: rejected drop left %zu bytes", drop, x.len);
	res_free(&x);
}

static void test_not_json_or_not_object(void)
{
	struct store *s = open_store("a.jsonl", NULL);

	expect_einval(s, "{\"a\": tru}", "not JSON: syntax error at byte 9");
	expect_einval(s, "hello", "not JSON: syntax error at byte 0");
	expect_einval(s, "", "no JSON object in the drop");
	expect_einval(s, " \n\t\n", "no JSON object in the drop");
	expect_einval(s, "[1, 2]", "record 1: not a JSON object (at byte 0)");
	expect_einval(s, "{\"a\":1}\n42\n",
		      "record 2: not a JSON object (at byte 8)");
	expect_einval(s, "{\"a\":1}\n\"x\"",
		      "record 2: not a JSON object (at byte 8)");
	store_close(s);
}

static void test_field_types(void)
{
	struct store *s = open_store("a.jsonl", "{\"iteration\":0}\n");

	expect_einval(s, "{\"iteration\": -1}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"iteration\": 1.5}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"iteration\": 1e2}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"iteration\": \"3\"}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"iteration\": null}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"iteration\": NaN}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"iteration\": 9223372036854775808}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"iteration_num\": true}",
		      "record 1: \"iteration_num\" must be an integer >= 0");
	/* Every alias is checked, not only the one that wins. */
	expect_einval(s, "{\"iteration\": 4, \"iteration_num\": \"4\"}",
		      "record 1: \"iteration_num\" must be an integer >= 0");
	/* A duplicate key is checked too. */
	expect_einval(s, "{\"iteration\": 4, \"iteration\": [4]}",
		      "record 1: \"iteration\" must be an integer >= 0");
	expect_einval(s, "{\"code\": 5}",
		      "record 1: \"code\" must be a string or null");
	expect_einval(s, "{\"strategy_code\": [\"x\"]}",
		      "record 1: \"strategy_code\" must be a string or null");
	expect_einval(s, "{\"feedback\": {}}",
		      "record 1: \"feedback\" must be a string or null");
	expect_einval(s, "{\"feedback_used\": false}",
		      "record 1: \"feedback_used\" must be a string or null");
	expect_einval(s, "{\"timestamp\": 1700000000}",
		      "record 1: \"timestamp\" must be an ISO 8601 date and "
		      "time, as a string");
	expect_einval(s, "{\"timestamp\": null}",
		      "record 1: \"timestamp\" must be an ISO 8601 date and "
		      "time, as a string");
	/* Every field of the table is checked alike (error was not). */
	expect_einval(s, "{\"error\": 3}",
		      "record 1: \"error\" must be a string or null");
	expect_einval(s, "{\"success\": \"yes\"}",
		      "record 1: \"success\" must be true, false or null");
	expect_einval(s, "{\"execution_result\": {\"success\": 1}}",
		      "record 1: \"execution_result.success\" must be true, "
		      "false or null");
	expect_einval(s, "{\"execution_result\": {\"error_message\": []}}",
		      "record 1: \"execution_result.error_message\" must be a "
		      "string or null");
	expect_einval(s, "{\"a\": 1}\n{\"iteration\": 9, \"code\": 1}",
		      "record 2: \"code\" must be a string or null");
	store_close(s);
}

static void test_accepted_types(void)
{
	static const char *const ok[] = {
		"{\"iteration\": 5, \"code\": null, \"feedback\": null, "
		"\"timestamp\": \"2025-01-01T00:00:02\"}",
		"{\"iteration_num\": 6, \"strategy_code\": \"s\", "
		"\"feedback_used\": \"f\", \"metrics\": NaN, "
		"\"timestamp\": \"2025-01-01T00:00:00\"}",
		"{\"iteration\": 7, \"metrics\": [1, {\"a\": null}], "
		"\"error\": \"e\", \"timestamp\": \"2025-01-01T00:00:00\"}",
		"{\"iteration\": 4398046511102, "
		"\"timestamp\": \"2025-01-01T00:00:00\"}",
		"{\"iteration\": 10, \"success\": null, \"execution_result\": "
		"{\"success\": false, \"error_message\": null}}",
	};
	struct store *s = open_store("a.jsonl", "{\"iteration\":0}\n");
	struct res x;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		x = plan1(s, ok[i]);

		T_CHECK(x.r == 0 && x.count == 1, "%s: r=%d (%s)", ok[i], x.r,
			x.why);
		res_free(&x);
	}
	/* "-0" is 0 for the reader and so for the commit: taken, not bad. */
	x = plan1(s, "{\"iteration\": -0}");
	T_CHECK(x.r == -EEXIST && strstr(x.why, "iteration 0 ") != NULL,
		"-0: r=%d (%s)", x.r, x.why);
	res_free(&x);
	store_close(s);
}

static void test_whitespace_stripped_bytes_kept(void)
{
	const char *drop =
		"{\n  \"iteration\" : 1 ,\r\n  \"m\" : { \"x\" : 1E-5 , "
		"\"y\" : NaN , \"z\" : -Infinity , \"w\" : Infinity ,\n"
		"    \"big\" : 12345678901234567890 , \"neg\" : -0.0e+10 ,"
		" \"e\" : [ ] , \"o\" : { } } ,\n"
		"  \"s\" : \"a b\\u00e9\\n\\\"\\/ \xe6\x94\xb6\\ud83d\\ude00\" ,"
		"\t\"k e y\" : [ true , false , null ] ,\n"
		"  \"timestamp\" : \"2025-10-11T15:46:35.605350\"\n}\n";
	const char *want =
		"{\"iteration\":1,\"m\":{\"x\":1E-5,\"y\":NaN,\"z\":-Infinity,"
		"\"w\":Infinity,\"big\":12345678901234567890,\"neg\":-0.0e+10,"
		"\"e\":[],\"o\":{}},\"s\":\"a b\\u00e9\\n\\\"\\/ "
		"\xe6\x94\xb6\\ud83d\\ude00\",\"k e y\":[true,false,null],"
		"\"timestamp\":\"2025-10-11T15:46:35.605350\"}\n";
	struct store *s = open_store("a.jsonl", NULL);
	struct res x = plan1(s, drop);

	T_CHECK(x.r == 0, "r=%d (%s)", x.r, x.why);
	T_CHECK(x.count == 1 && x.first == 1 && x.last == 1,
		"count %zu first %lld last %lld", x.count, (long long)x.first,
		(long long)x.last);
	T_CHECK_MEM(x.lines, x.len, want, strlen(want), "compact line");
	res_free(&x);
	store_close(s);
}

/* A file saved by an editor that writes a BOM still commits. */
static void test_bom_before_the_drop_is_ignored(void)
{
	struct store *s = open_store("a.jsonl", NULL);
	struct res x = plan1(s, "\xef\xbb\xbf{\"iteration\": 1, \"timestamp\": "
				"\"2025-01-01T00:00:00\"}\n");
	const char *want = "{\"iteration\":1,\"timestamp\":\"2025-01-01T00:00:00\"}\n";

	T_CHECK(x.r == 0 && x.count == 1, "r=%d (%s)", x.r, x.why);
	T_CHECK_MEM(x.lines, x.len, want, strlen(want), "line");
	res_free(&x);
	expect_einval(s, "\xef\xbb\xbf{\"a\": tru}",
		      "not JSON: syntax error at byte 12");
	store_close(s);
}

static void test_next_number_iteration_dialect(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration\": 0, \"a\": 1}\n"
				     "{\"iteration\": 7, \"a\": 2}\n"
				     "{\"iteration\": 3, \"a\": 3}\n");
	struct res x = plan1(s, "{\"metrics\": {\"m\": 1}, \"a\": 4}");

	T_CHECK(x.r == 0 && x.count == 1 && x.first == 8 && x.last == 8,
		"r=%d count %zu first %lld", x.r, x.count, (long long)x.first);
	CHECK_LINES_NO_TS(x, "{\"iteration\":8,\"metrics\":{\"m\":1},"
			     "\"a\":4}\n");
	res_free(&x);
	store_close(s);
}

static void test_next_number_iteration_num_dialect(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration_num\": 0, \"a\": 1}\n"
				     "{\"iteration_num\": 1, \"a\": 2}\n");
	struct res x = plan1(s, "{\"strategy_code\": null, \"a\": 3}");

	T_CHECK(x.r == 0 && x.first == 2, "r=%d first %lld (%s)", x.r,
		(long long)x.first, x.why);
	CHECK_LINES_NO_TS(x, "{\"iteration_num\":2,\"strategy_code\":null,"
			     "\"a\":3}\n");
	res_free(&x);
	store_close(s);
}

/* The key is the one of the highest record, not of the first. */
static void test_next_number_key_of_the_latest_records(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration\": 0}\n"
				     "{\"iteration_num\": 1}\n");
	struct res x = plan1(s, "{\"a\": true}");

	CHECK_LINES_NO_TS(x, "{\"iteration_num\":2,\"a\":true}\n");
	res_free(&x);
	store_close(s);
}

static void test_empty_and_missing_store_start_at_zero(void)
{
	struct store *s = open_store("missing.jsonl", NULL);
	struct store *e = open_store("empty.jsonl", "");
	struct res x = plan1(s, "{}");
	struct res y = plan1(e, "{\"b\": 2}");

	T_CHECK(x.r == 0 && x.first == 0, "missing: r=%d first %lld", x.r,
		(long long)x.first);
	CHECK_LINES_NO_TS(x, "{\"iteration\":0}\n");
	T_CHECK(y.r == 0 && y.first == 0, "empty: r=%d first %lld", y.r,
		(long long)y.first);
	CHECK_LINES_NO_TS(y, "{\"iteration\":0,\"b\":2}\n");
	res_free(&x);
	res_free(&y);
	store_close(s);
	store_close(e);
}

/* Numbers taken earlier in the same plan count, explicit ones included. */
static void test_next_number_counts_the_plan(void)
{
	static const char *const drops[] = {
		"{\"a\": 1}",
		("{\"iteration_num\": 10, \"a\": 2, "
		 "\"timestamp\": \"2000-01-01T00:00:00.000000\"}"),
		"{\"a\": 3}\n{\"a\": 4}",
	};
	struct store *s = open_store("a.jsonl", "{\"iteration_num\": 4}\n");
	struct res x = plan_n(s, drops, 3, BIG);
	/* The given timestamp of the second drop is cut like the others. */
	const char *want = "{\"iteration_num\":5,\"a\":1}\n"
			   "{\"iteration_num\":10,\"a\":2}\n"
			   "{\"iteration_num\":11,\"a\":3}\n"
			   "{\"iteration_num\":12,\"a\":4}\n";

	T_CHECK(x.r == 0 && x.count == 2 && x.first == 11 && x.last == 12,
		"r=%d count %zu first %lld last %lld", x.r, x.count,
		(long long)x.first, (long long)x.last);
	CHECK_LINES_NO_TS(x, want);
	res_free(&x);
	store_close(s);
}

static void test_empty_store_takes_the_plans_key(void)
{
	static const char *const drops[] = {
		"{\"iteration_num\": 3, \"timestamp\": \"2025-01-01T00:00:00\"}",
		"{\"timestamp\": \"2025-01-01T00:00:01\"}",
	};
	struct store *s = open_store("a.jsonl", NULL);
	struct res x = plan_n(s, drops, 2, BIG);
	const char *want = "{\"iteration_num\":3,"
			   "\"timestamp\":\"2025-01-01T00:00:00\"}\n"
			   "{\"iteration_num\":4,\"timestamp\":\"2025-01-01T00:00:01\"}\n";

	T_CHECK(x.r == 0, "r=%d (%s)", x.r, x.why);
	T_CHECK_MEM(x.lines, x.len, want, strlen(want), "lines");
	res_free(&x);
	store_close(s);
}

/* The numbering stops at the highest number the tree can show: it is
 * refused when given, never assigned, and a line above it is not a record
 * (so numbering continues from the highest one shown). */
static void test_numbers_beyond_the_limit(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration\": 4398046511102}\n");
	struct store *t = open_store("b.jsonl",
				     "{\"iteration\": 4}\n"
				     "{\"iteration\": 4398046511103}\n"
				     "{\"iteration\": 9223372036854775807}\n");
	struct store_stats st;
	struct res x = plan1(s, "{\"a\": 1}");

	T_CHECK(x.r == -EINVAL, "r=%d", x.r);
	T_CHECK(strstr(x.why, "no iteration number left after "
			      "4398046511102 (the limit)") != NULL,
		"why: %s", x.why);
	res_free(&x);
	x = plan1(t, "{\"iteration\": 4398046511103}");
	T_CHECK(x.r == -EINVAL && strcmp(x.why, "record 1: iteration "
					 "4398046511103 is above the "
					 "limit of 4398046511102") == 0,
		"explicit: r=%d (%s)", x.r, x.why);
	res_free(&x);
	x = plan1(t, "{\"a\": 1}");
	T_CHECK(x.r == 0 && x.first == 5, "after the shown ones: r=%d first "
		"%lld (%s)", x.r, (long long)x.first, x.why);
	res_free(&x);
	T_CHECK(store_stats(t, &st) == 0 && st.records == 1 &&
		st.skipped == 2 && st.beyond == 2, "records %llu skipped %llu "
		"beyond %llu", (unsigned long long)st.records,
		(unsigned long long)st.skipped, (unsigned long long)st.beyond);
	store_close(s);
	store_close(t);
}

static void test_timestamp_is_local_time_with_microseconds(void)
{
	struct store *s = open_store("a.jsonl", NULL);
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;
	struct tm tm = { 0 };
	struct timespec b, a;
	time_t before, after, t;
	const char *ts;
	struct res x;

	/* A zone far from UTC, without tzdata: UTC+8 (POSIX sign). */
	setenv("TZ", "TST-8", 1);
	tzset();
	/* The clock the commit reads: time() is the coarse clock, which can
	 * still say the last second a few milliseconds into the next. */
	clock_gettime(CLOCK_REALTIME, &b);
	x = plan1(s, "{\"iteration\": 1, \"a\": 2}");
	clock_gettime(CLOCK_REALTIME, &a);
	before = b.tv_sec;
	after = a.tv_sec;
	T_CHECK(x.r == 0, "r=%d", x.r);
	ts = strstr(x.lines, ",\"timestamp\":\"");
	T_CHECK(ts != NULL, "no timestamp: %s", x.lines);
	if (ts) {
		ts += 14;
		T_CHECK(ts_format_ok(ts) && strcmp(ts + TS_LEN, "\"}\n") == 0,
			"format: %s", ts);
		T_CHECK(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) != NULL,
			"strptime %s", ts);
		tm.tm_isdst = -1;
		t = mktime(&tm);
		T_CHECK(t >= before && t <= after,
			"timestamp %s is not local time now (%lld..%lld, got "
			"%lld)", ts, (long long)before, (long long)after,
			(long long)t);
	}
	CHECK_LINES_NO_TS(x, "{\"iteration\":1,\"a\":2}\n");
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	res_free(&x);
	store_close(s);
}

#define HASH_PRINT "cc42155088fca5730758db72b2a5bca33112a941dfaa2d43098ec422ce4ea213"
#define HASH_CJK "a0d7d7466df4e06185f28bddf963c3e0e7e677bc1b33000edceb9e2c994eed35"

static void test_code_hash_filled_when_the_store_uses_it(void)
{
	struct store *s = open_store(
		"a.jsonl",
		"{\"iteration\": 0, \"code\": \"x = 1\", \"code_hash\": "
		"\"8ff436def1451285599a1b1ad70800493b8dcafde2912e1a38345633054e4c26\"}\n"
		"{\"iteration\": 1, \"code\": null}\n");
	struct res x = plan1(s, "{\"code\": \"print(1)\\n\"}\n"
				"{\"code\": null}\n"
				"{\"strategy_code\": \"def f():\\n    return "
				"\\\"\\u6536\xe7\x9b\xa4\xe5\x83\xb9\\\"\\n\"}\n");
	const char *want =
		"{\"iteration\":2,\"code\":\"print(1)\\n\",\"code_hash\":\""
		HASH_PRINT "\"}\n"
		"{\"iteration\":3,\"code\":null}\n"
		"{\"iteration\":4,\"code\":\"def f():\\n    return "
		"\\\"\\u6536\xe7\x9b\xa4\xe5\x83\xb9\\\"\\n\",\"code_hash\":\""
		HASH_CJK "\"}\n";

	T_CHECK(x.r == 0 && x.count == 3, "r=%d (%s)", x.r, x.why);
	CHECK_LINES_NO_TS(x, want);
	res_free(&x);
	store_close(s);
}

static void test_code_hash_not_added_when_the_store_lacks_it(void)
{
	struct store *s = open_store("a.jsonl", "{\"iteration\": 0, "
				     "\"code\": \"x = 1\"}\n");
	struct res x = plan1(s, "{\"code\": \"print(1)\\n\"}");

	CHECK_LINES_NO_TS(x, "{\"iteration\":1,\"code\":\"print(1)\\n\"}\n");
	res_free(&x);
	store_close(s);
}

static void test_code_hash_given_is_verified(void)
{
	struct store *s = open_store("a.jsonl", NULL);
	struct res x = plan1(s, "{\"code\": \"print(1)\\n\", \"code_hash\": \""
				"CC42155088FCA5730758DB72B2A5BCA33112A941DFAA2D43"
				"098EC422CE4EA213\", \"timestamp\": \"2025-01-01T00:00:00\"}");
	const char *want = "{\"iteration\":0,\"code\":\"print(1)\\n\","
			   "\"code_hash\":\"CC42155088FCA5730758DB72B2A5BCA3"
			   "3112A941DFAA2D43098EC422CE4EA213\","
			   "\"timestamp\":\"2025-01-01T00:00:00\"}\n";

	/* Upper case matches and is kept as written. */
	T_CHECK(x.r == 0, "r=%d (%s)", x.r, x.why);
	T_CHECK_MEM(x.lines, x.len, want, strlen(want), "line");
	res_free(&x);
	expect_einval(s, "{\"code\": \"print(2)\\n\", \"code_hash\": \""
		      HASH_PRINT "\"}",
		      "record 1: \"code_hash\" does not match the code (sha256 "
		      "0111afd387e1ad576083c5039aa542faa2ed4a53d3e128bd03de99"
		      "0f9ea4255f)");
	expect_einval(s, "{\"code\": \"print(1)\\n\", \"code_hash\": \"cc42\"}",
		      "record 1: \"code_hash\" must be a string of 64 hex "
		      "digits");
	expect_einval(s, "{\"code\": \"x\", \"code_hash\": 5}",
		      "record 1: \"code_hash\" must be a string of 64 hex "
		      "digits");
	expect_einval(s, "{\"code_hash\": \"" HASH_PRINT "\"}",
		      "record 1: \"code_hash\" given but the record has no "
		      "code");
	store_close(s);
}

static void test_eexist_for_a_different_record(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration\": 3, \"a\": [1, 2]}\n"
				     "{\"iteration\": 5, \"a\": 0}\n");
	struct res x = plan1(s, "{\"iteration\": 3, \"a\": [1, 2, 3]}");

	T_CHECK(x.r == -EEXIST, "r=%d", x.r);
	T_CHECK(strcmp(x.why, "record 1: iteration 3 already exists with "
			      "different content") == 0, "why: %s", x.why);
	T_CHECK(x.len == 0, "lines after EEXIST");
	res_free(&x);
	/* A number below the highest that is free is fine. */
	x = plan1(s, "{\"iteration\": 4, \"a\": 1, "
		     "\"timestamp\": \"2025-01-01T00:00:00\"}");
	T_CHECK(x.r == 0 && x.count == 1 && x.first == 4, "free number: r=%d",
		x.r);
	res_free(&x);
	store_close(s);
}

static void test_identical_resend_is_a_noop(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration\": 3, \"a\": [1, 2]}\r\n"
				     "{\"iteration\": 5, \"m\": 1E-5, "
				     "\"timestamp\": \"2025-01-01T00:00:00\"}\n");
	struct res x = plan1(s, "{\n  \"iteration\": 3,\n  \"a\": [\n    1,\n"
				"    2\n  ]\n}\n");

	T_CHECK(x.r == 0 && x.count == 0, "r=%d count %zu (%s)", x.r, x.count,
		x.why);
	T_CHECK(x.len == 0, "a re-send added %zu bytes", x.len);
	T_CHECK(x.first == -1 && x.last == -1, "first/last of a re-send");
	res_free(&x);
	/* Number text must be identical: 1e-5 is not 1E-5. */
	x = plan1(s, "{\"iteration\": 5, \"m\": 1e-5, "
		     "\"timestamp\": \"2025-01-01T00:00:00\"}");
	T_CHECK(x.r == -EEXIST, "1e-5 vs 1E-5: r=%d", x.r);
	res_free(&x);
	store_close(s);
}

/* A drop the writer normalised (timestamp, code_hash added) and sends
 * again, not knowing whether the first commit made it. */
static void test_resend_of_a_normalised_drop_is_a_noop(void)
{
	struct store *s = open_store(
		"a.jsonl",
		"{\"iteration\":0,\"code\":\"x = 1\",\"code_hash\":\""
		"8ff436def1451285599a1b1ad70800493b8dcafde2912e1a38345633054e4c26"
		"\",\"timestamp\":\"2026-01-01T00:00:00.000001\"}\n");
	struct res x = plan1(s, "{\"iteration\": 0, \"code\": \"x = 1\"}");

	T_CHECK(x.r == 0 && x.count == 0 && x.len == 0, "r=%d count %zu (%s)",
		x.r, x.count, x.why);
	res_free(&x);
	x = plan1(s, "{\"iteration\": 0, \"code\": \"x = 2\"}");
	T_CHECK(x.r == -EEXIST, "different code: r=%d", x.r);
	res_free(&x);
	store_close(s);
}

static void test_same_number_twice_in_one_plan(void)
{
	static const char *const same[] = {
		"{\"iteration\": 2, \"a\": 1, \"timestamp\": \"2025-01-01T00:00:00\"}",
		"{\"iteration\":2,\"a\":1,\"timestamp\":\"2025-01-01T00:00:00\"}",
	};
	static const char *const diff[] = {
		"{\"iteration\": 2, \"a\": 1, \"timestamp\": \"2025-01-01T00:00:00\"}",
		"{\"iteration\": 2, \"a\": 2, \"timestamp\": \"2025-01-01T00:00:00\"}",
	};
	struct store *s = open_store("a.jsonl", NULL);
	struct res x = plan_n(s, same, 2, BIG);
	const char *want = "{\"iteration\":2,\"a\":1,"
			   "\"timestamp\":\"2025-01-01T00:00:00\"}\n";

	T_CHECK(x.r == 0 && x.count == 0, "second identical: r=%d count %zu",
		x.r, x.count);
	T_CHECK_MEM(x.lines, x.len, want, strlen(want), "one line only");
	res_free(&x);
	x = plan_n(s, diff, 2, BIG);
	T_CHECK(x.r == -EEXIST, "second different: r=%d", x.r);
	T_CHECK_MEM(x.lines, x.len, want, strlen(want), "first drop kept");
	res_free(&x);
	/* Within one drop too. */
	x = plan1(s, "{\"iteration\": 2, \"a\": 1, "
		     "\"timestamp\": \"2025-01-01T00:00:00\"}\n"
		     "{\"iteration\": 2, \"a\": 9, \"timestamp\": \"2025-01-01T00:00:00\"}");
	T_CHECK(x.r == -EEXIST && x.len == 0, "in one drop: r=%d len %zu",
		x.r, x.len);
	T_CHECK(strcmp(x.why, "record 2: iteration 2 already exists with "
			      "different content") == 0, "why: %s", x.why);
	res_free(&x);
	store_close(s);
}

static void test_several_objects_all_or_none(void)
{
	static const char *const drops[] = {
		"{\"a\": 1}",
		"{\"b\": 1}\n{\"b\": 2}\n{\"iteration\": \"x\"}\n",
		"{\"c\": 1}\r\n{\"c\": 2}\r\n",
	};
	struct store *s = open_store("a.jsonl", "{\"iteration\": 0}\n");
	struct commit_plan *p;
	char why[COMMIT_WHY_LEN];
	size_t count, len;
	int64_t first, last;
	char *lines;
	int r;

	if (commit_plan_new(s, &p) < 0)
		abort();
	r = commit_plan_add(p, drops[0], strlen(drops[0]), BIG, &count, &first,
			    &last, why);
	T_CHECK(r == 0 && count == 1 && first == 1, "drop 1: r=%d", r);
	r = commit_plan_add(p, drops[1], strlen(drops[1]), BIG, &count, &first,
			    &last, why);
	T_CHECK(r == -EINVAL, "drop 2: r=%d", r);
	T_CHECK(strcmp(why, "record 3: \"iteration\" must be an integer >= 0")
		== 0, "why: %s", why);
	r = commit_plan_add(p, drops[2], strlen(drops[2]), BIG, &count, &first,
			    &last, why);
	/* Numbers 2 and 3 were not used up by the rejected drop. */
	T_CHECK(r == 0 && count == 2 && first == 2 && last == 3,
		"drop 3: r=%d count %zu first %lld last %lld", r, count,
		(long long)first, (long long)last);
	lines = copy_lines(p, &len);
	len = cut_timestamps(lines, len);
	if (len != (size_t)-1) {
		const char *want = "{\"iteration\":1,\"a\":1}\n"
				   "{\"iteration\":2,\"c\":1}\n"
				   "{\"iteration\":3,\"c\":2}\n";

		T_CHECK_MEM(lines, len, want, strlen(want), "lines");
	}
	free(lines);
	commit_plan_free(p);
	store_close(s);
}

static void test_efbig(void)
{
	static const char drop[] = "{\"iteration\": 1, "
				   "\"timestamp\": \"2025-01-01T00:00:00\"}";
	size_t n = strlen(drop);
	struct store *s = open_store("a.jsonl", NULL);
	struct res x = plan_n(s, (const char *const[]){ drop }, 1, n - 1);
	char want[COMMIT_WHY_LEN];

	snprintf(want, sizeof(want), "the drop is %zu bytes, over the limit "
		 "of %zu", n, n - 1);
	T_CHECK(x.r == -EFBIG, "r=%d", x.r);
	T_CHECK(strcmp(x.why, want) == 0, "why: %s", x.why);
	T_CHECK(x.len == 0, "lines after EFBIG");
	res_free(&x);
	/* Exactly at the limit is fine. */
	x = plan_n(s, (const char *const[]){ drop }, 1, n);
	T_CHECK(x.r == 0 && x.count == 1, "at the limit: r=%d (%s)", x.r,
		x.why);
	res_free(&x);
	store_close(s);
}

/* The dialect is read from a real history, and a re-send of one of its own
 * lines (pretty, not compact) is recognised. */
/* "{" + the members of `line` after its first one (the number, first in
 * every real history), with `prefix` members put before them and the first
 * key `from` renamed to `to` (NULL: none).  malloc'd. */
static char *drop_from(const char *line, const char *prefix, const char *from,
		       const char *to)
{
	const char *rest = strstr(line, ", ") + 2, *at;
	size_t n = strlen(line) + strlen(prefix) + 64;
	char *d = malloc(n);

	if (!d)
		abort();
	snprintf(d, n, "{%s", prefix);
	at = from ? strstr(rest, from) : NULL;
	if (at) {
		strncat(d, rest, (size_t)(at - rest));
		strcat(d, to);
		strcat(d, at + strlen(from));
	} else {
		strcat(d, rest);
	}
	return d;
}

static bool shapes_equal(const struct store_shape *a,
			 const struct store_shape *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->f[i].key, b->f[i].key) != 0 ||
		    a->f[i].types != b->f[i].types)
			return false;
	return true;
}

/* Each real history: an incomplete drop is refused with its missing fields
 * named, a complete one in the other dialect lands in the store's, and the
 * store read back with it has the shape it had. */
static void test_real_histories(void)
{
	static const struct {
		const char *file, *code_key, *num_key, *missing;
	} h[] = {
		{ "llm_only_50.jsonl", "strategy_code", "iteration_num",
		  "execution_result" },
		{ "json_mode_test.jsonl", "strategy_code", "iteration_num",
		  "json_mode" },
		{ "unified_factor_graph.jsonl", "strategy_code",
		  "iteration_num", "feedback_used" },
		{ "migrated_no_code.jsonl", NULL, "iteration", "success" },
	};
	size_t k;

	for (k = 0; k < sizeof(h) / sizeof(h[0]); k++) {
		char *path = t_real_data(h[k].file), *copy, *drop, *text;
		struct store_shape before, after;
		struct buf line = BUF_INIT;
		struct store *s, *c;
		char want[64];
		struct res x;
		size_t tlen;
		int64_t hi;
		bool found;

		if (!path) {
			printf("# %s not present, skipped\n", h[k].file);
			continue;
		}
		if (store_open(path, 0, &s) < 0 || store_shape(s, &before) < 0)
			abort();
		store_highest(s, &hi, &found);
		T_CHECK(before.n > 3 && before.records > 0, "%s: shape of %zu",
			h[k].file, before.n);

		x = plan1(s, "{\"code\": \"pass\", \"metrics\": {\"sharpe\": 1}}");
		T_CHECK(x.r == -EINVAL && strstr(x.why, "missing fields: ") &&
			strstr(x.why, h[k].missing) && x.len == 0,
			"%s: incomplete: r=%d (%s)", h[k].file, x.r, x.why);
		res_free(&x);

		T_CHECK(store_read(s, hi, &line) == 0, "read %lld",
			(long long)hi);
		/* Without number and in the other dialect (code, not
		 * strategy_code): stored in the store's words. */
		drop = drop_from(line.data, "", h[k].code_key ? "\"strategy_code\":" : NULL,
				 "\"code\":");
		x = plan1(s, drop);
		T_CHECK(x.r == 0 && x.count == 1 && x.first == hi + 1,
			"%s: complete: r=%d first %lld (%s)", h[k].file, x.r,
			(long long)x.first, x.why);
		snprintf(want, sizeof(want), "{\"%s\":%lld,", h[k].num_key,
			 (long long)hi + 1);
		T_CHECK(x.len > strlen(want) &&
			strncmp(x.lines, want, strlen(want)) == 0,
			"%s: starts %.40s", h[k].file, x.lines);
		if (h[k].code_key)
			T_CHECK(strstr(x.lines, "\"strategy_code\":") &&
				!strstr(x.lines, "\"code\":"),
				"%s: code not renamed", h[k].file);
		/* Read back with the new line, the store has the same shape. */
		text = t_read_file(path, &tlen);
		copy = t_path("real-copy.jsonl");
		t_write_file(copy, text, tlen);
		{
			FILE *f = fopen(copy, "a");

			if (!f || fwrite(x.lines, 1, x.len, f) != x.len ||
			    fclose(f) != 0)
				abort();
		}
		if (store_open(copy, 0, &c) < 0 || store_shape(c, &after) < 0)
			abort();
		T_CHECK(shapes_equal(&before, &after), "%s: shape changed",
			h[k].file);
		store_shape_free(&after);
		store_close(c);
		free(copy);
		free(text);
		res_free(&x);
		free(drop);

		drop = drop_from(line.data, "\"timestamp\": \"yesterday\", ",
				 NULL, NULL);
		x = plan1(s, drop);
		T_CHECK(x.r == -EINVAL && strstr(x.why, "\"timestamp\" must be "
						 "an ISO 8601"),
			"%s: yesterday: r=%d (%s)", h[k].file, x.r, x.why);
		res_free(&x);
		free(drop);

		drop = drop_from(line.data, "\"iteration\": 71, "
				 "\"iteration_num\": 72, ", NULL, NULL);
		x = plan1(s, drop);
		T_CHECK(x.r == -EINVAL && strstr(x.why, "\"iteration\" and "
						 "\"iteration_num\""),
			"%s: 71/72: r=%d (%s)", h[k].file, x.r, x.why);
		res_free(&x);
		free(drop);

		x = plan1(s, line.data);
		T_CHECK(x.r == 0 && x.count == 0, "%s: re-send: r=%d count %zu "
			"(%s)", h[k].file, x.r, x.count, x.why);
		res_free(&x);
		buf_free(&line);
		store_shape_free(&before);
		store_close(s);
		free(path);
	}
}

/* Dialect: aliases land under the store's names; an empty store takes the
 * drop's, and its number key follows the drop's code key. */
static void test_dialect(void)
{
	struct store *e = open_store("empty.jsonl", NULL);
	struct store *s = open_store("a.jsonl",
				     "{\"iteration_num\": 1, \"strategy_code\": "
				     "\"a\", \"feedback_used\": \"f\"}\n");
	struct res x;

	x = plan1(e, "{\"strategy_code\": \"x\", \"feedback\": \"y\"}");
	T_CHECK(x.r == 0 && x.first == 0, "empty: r=%d (%s)", x.r, x.why);
	CHECK_LINES_NO_TS(x, "{\"iteration_num\":0,\"strategy_code\":\"x\","
			     "\"feedback\":\"y\"}\n");
	res_free(&x);
	x = plan1(e, "{\"code\": \"x\"}");
	CHECK_LINES_NO_TS(x, "{\"iteration\":0,\"code\":\"x\"}\n");
	res_free(&x);

	x = plan1(s, "{\"iteration\": 5, \"code\": \"b\", \"feedback\": \"g\", "
		     "\"timestamp\": \"2025-01-01T00:00:00\"}");
	T_CHECK(x.r == 0, "renamed: r=%d (%s)", x.r, x.why);
	{
		static const char want[] =
			"{\"iteration_num\":5,\"strategy_code\":\"b\","
			"\"feedback_used\":\"g\","
			"\"timestamp\":\"2025-01-01T00:00:00\"}\n";

		T_CHECK_MEM(x.lines, x.len, want, sizeof(want) - 1, "renamed");
	}
	res_free(&x);
	/* Two aliases with one value: written once. */
	x = plan1(s, "{\"code\": \"b\", \"strategy_code\": \"b\", "
		     "\"feedback_used\": \"g\"}");
	T_CHECK(x.r == 0, "same value: r=%d (%s)", x.r, x.why);
	CHECK_LINES_NO_TS(x, "{\"iteration_num\":2,\"strategy_code\":\"b\","
			     "\"feedback_used\":\"g\"}\n");
	res_free(&x);
	expect_einval(s, "{\"code\": \"b\", \"strategy_code\": \"c\", "
		      "\"feedback_used\": \"g\"}",
		      "record 1: \"code\" and \"strategy_code\" are two names "
		      "of one field with different values");
	expect_einval(s, "{\"iteration\": 71, \"iteration_num\": 72, "
		      "\"code\": \"b\", \"feedback_used\": \"g\"}",
		      "record 1: \"iteration\" and \"iteration_num\" are two "
		      "names of one field with different values");
	expect_einval(s, "{\"code\": \"b\", \"feedback_used\": \"g\", "
		      "\"timestamp\": \"yesterday\"}",
		      "record 1: \"timestamp\" must be an ISO 8601 date and "
		      "time, as a string");
	store_close(e);
	store_close(s);
}

/* A line of the store in an older dialect sent again is a re-send, though
 * a new record would be written in the newer one. */
static void test_resend_of_a_line_in_an_older_dialect(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration\": 0, \"code\": \"a\"}\n"
				     "{\"iteration_num\": 1, \"strategy_code\": "
				     "\"b\"}\n");
	struct res x = plan1(s, "{\"iteration\": 0, \"code\": \"a\"}");

	T_CHECK(x.r == 0 && x.count == 0 && x.len == 0, "r=%d count %zu (%s)",
		x.r, x.count, x.why);
	res_free(&x);
	x = plan1(s, "{\"iteration\": 0, \"code\": \"c\"}");
	T_CHECK(x.r == -EEXIST, "different: r=%d", x.r);
	res_free(&x);
	x = plan1(s, "{\"code\": \"d\"}");
	CHECK_LINES_NO_TS(x, "{\"iteration_num\":2,\"strategy_code\":\"d\"}\n");
	res_free(&x);
	store_close(s);
}

/* Completeness: every field all records carry, with a type it has had;
 * the reason names them all, as far as they fit. */
static void test_complete(void)
{
	struct store *s = open_store("a.jsonl",
				     "{\"iteration\": 0, \"m\": {}, \"n\": 1, "
				     "\"o\": \"x\", \"p\": 2}\n"
				     "{\"iteration\": 1, \"m\": {}, \"n\": null, "
				     "\"o\": \"y\", \"code_hash\": \"z\"}\n");
	struct res x;
	char big[4096];
	size_t i, w = 0;

	expect_einval(s, "{\"m\": 1}",
		      "record 1: missing fields: n, o; \"m\" must be an object");
	x = plan1(s, "{\"m\": {\"a\": 1}, \"n\": null, \"o\": \"z\"}");
	T_CHECK(x.r == 0, "complete: r=%d (%s)", x.r, x.why);
	res_free(&x);
	expect_einval(s, "{\"m\": {}, \"n\": \"1\", \"o\": 1}",
		      "record 1: \"n\" must be a number or null; \"o\" must be "
		      "a string");
	store_close(s);

	/* Many missing fields: cut with "..." inside COMMIT_WHY_LEN. */
	w += (size_t)snprintf(big + w, sizeof(big) - w, "{\"iteration\": 0");
	for (i = 0; i < 60; i++)
		w += (size_t)snprintf(big + w, sizeof(big) - w,
				      ", \"field_number_%02zu\": 1", i);
	snprintf(big + w, sizeof(big) - w, "}\n");
	s = open_store("b.jsonl", big);
	x = plan1(s, "{}");
	T_CHECK(x.r == -EINVAL && strlen(x.why) < COMMIT_WHY_LEN &&
		strstr(x.why, "field_number_00, field_number_01") &&
		strcmp(x.why + strlen(x.why) - 3, "...") == 0,
		"many: r=%d (%s)", x.r, x.why);
	res_free(&x);
	store_close(s);
}

/* A field the store has only ever held as null says nothing about its
 * type; a contract meaning takes what the loop reads there. */
static void test_complete_after_only_nulls(void)
{
	struct store *s = open_store("n.jsonl",
				     "{\"iteration\": 0, \"error\": null, "
				     "\"x\": null, \"y\": 1}\n"
				     "{\"iteration\": 1, \"error\": null, "
				     "\"x\": null, \"y\": 2}\n");
	struct res x;

	x = plan1(s, "{\"error\": \"boom\", \"x\": [1], \"y\": 3}");
	T_CHECK(x.r == 0, "an error text after nulls: r=%d (%s)", x.r, x.why);
	res_free(&x);
	expect_einval(s, "{\"error\": 5, \"x\": 1, \"y\": 3}",
		      "record 1: \"error\" must be a string or null");
	expect_einval(s, "{\"error\": null, \"x\": 1, \"y\": \"3\"}",
		      "record 1: \"y\" must be a number");
	store_close(s);
}

/* Nesting Python reads (up to about 994 deep) commits. */
static void test_deep_nesting_commits(void)
{
	struct store *s = open_store("deep.jsonl", NULL);
	size_t depth = 900, i, o;
	char *drop = malloc(depth * 2 + 64);
	struct res x;

	if (!drop)
		abort();
	o = (size_t)sprintf(drop, "{\"m\": ");
	for (i = 0; i < depth; i++)
		drop[o++] = '[';
	for (i = 0; i < depth; i++)
		drop[o++] = ']';
	strcpy(drop + o, "}");
	x = plan1(s, drop);
	T_CHECK(x.r == 0 && x.count == 1, "r=%d (%s)", x.r, x.why);
	res_free(&x);
	free(drop);
	store_close(s);
}

int main(void)
{
	T_RUN(test_not_json_or_not_object);
	T_RUN(test_field_types);
	T_RUN(test_accepted_types);
	T_RUN(test_whitespace_stripped_bytes_kept);
	T_RUN(test_bom_before_the_drop_is_ignored);
	T_RUN(test_next_number_iteration_dialect);
	T_RUN(test_next_number_iteration_num_dialect);
	T_RUN(test_next_number_key_of_the_latest_records);
	T_RUN(test_empty_and_missing_store_start_at_zero);
	T_RUN(test_next_number_counts_the_plan);
	T_RUN(test_empty_store_takes_the_plans_key);
	T_RUN(test_numbers_beyond_the_limit);
	T_RUN(test_timestamp_is_local_time_with_microseconds);
	T_RUN(test_code_hash_filled_when_the_store_uses_it);
	T_RUN(test_code_hash_not_added_when_the_store_lacks_it);
	T_RUN(test_code_hash_given_is_verified);
	T_RUN(test_eexist_for_a_different_record);
	T_RUN(test_identical_resend_is_a_noop);
	T_RUN(test_resend_of_a_normalised_drop_is_a_noop);
	T_RUN(test_same_number_twice_in_one_plan);
	T_RUN(test_several_objects_all_or_none);
	T_RUN(test_efbig);
	T_RUN(test_dialect);
	T_RUN(test_complete);
	T_RUN(test_complete_after_only_nulls);
	T_RUN(test_resend_of_a_line_in_an_older_dialect);
	T_RUN(test_real_histories);
	T_RUN(test_deep_nesting_commits);
	return t_done();
}
