/* Unit tests for core/record.c: aliases, type rules, the iteration fast
 * path, timestamps and the five views, byte for byte.  The real histories
 * (and a hand-written one in both dialects) are also checked line by line
 * against an independent Python reading of the contract, when python3 is
 * installed. */
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"

#define L(s) (s), strlen(s)
/* A literal and its length, embedded NULs included. */
#define W(s) (s), sizeof(s) - 1

static void test_view_names(void)
{
	static const char *const names[VIEW_COUNT] = {
		"code.py", "metrics.json", "feedback.txt", "error.txt",
		"record.json",
	};
	enum view_kind k;
	unsigned i;

	for (i = 0; i < VIEW_COUNT; i++) {
		T_CHECK(view_name((enum view_kind)i) &&
			strcmp(view_name((enum view_kind)i), names[i]) == 0,
			"view_name(%u)", i);
		T_CHECK(view_by_name(names[i], &k) == 0 && k == (enum view_kind)i,
			"view_by_name(%s)", names[i]);
	}
	T_CHECK(view_name(VIEW_COUNT) == NULL, "out of range");
	T_CHECK(view_name((enum view_kind)-1) == NULL, "negative");
	T_CHECK(view_by_name("code", &k) == -ENOENT, "code");
	T_CHECK(view_by_name("", &k) == -ENOENT, "empty");
	T_CHECK(view_by_name("record.json/", &k) == -ENOENT, "slash");
}

struct it_case {
	const char *line;
	int rc;
	bool found;
	int64_t n;
};

static const struct it_case it_cases[] = {
	/* fast path shapes */
	{ "{\"iteration\": 12, \"code\": \"x\"}", 0, true, 12 },
	{ "{\"iteration\":12,\"code\":\"x\"}", 0, true, 12 },
	{ "{\"iteration_num\": 7, \"strategy_code\": \"x\"}", 0, true, 7 },
	{ "{\"iteration_num\":7}", 0, true, 7 },
	{ "{\"iteration\": 0}\r", 0, true, 0 },
	{ "  {\"iteration\": 3, \"a\": 1}  \r", 0, true, 3 },
	{ "{\"iteration\": 9223372036854775807}", 0, true, INT64_MAX },
	/* a later key decides: last duplicate, or "iteration" over _num */
	{ "{\"iteration_num\": 1, \"x\": 2, \"iteration\": 5}", 0, true, 5 },
	{ "{\"iteration_num\": 1, \"iteration_num\": 2}", 0, true, 2 },
	{ "{\"iteration\": 1, \"iteration\": 2}", 0, true, 2 },
	{ "{\"iteration_num\": 1, \"iter\\u0061tion\": 6}", 0, true, 6 },
	{ "{\"iteration_num\": 1, \"iteration\": -1}", 0, false, 0 },
	{ "{\"iteration_num\": 1, \"iteration\": null}", 0, false, 0 },
	/* text that only looks like a key: same answer through the walk */
	{ "{\"iteration_num\": 4, \"c\": \"d[\\\"iteration\\\"] = 9\"}", 0, true, 4 },
	{ "{\"iteration_num\": 4, \"c\": \"\\u4e2d\"}", 0, true, 4 },
	{ "{\"iteration_num\": 4, \"iterations\": 8}", 0, true, 4 },
	/* not first: full walk */
	{ "{\"x\": {\"iteration\": 99}, \"iteration_num\": 3}", 0, true, 3 },
	{ "{\"a\": 1, \"iteration\": 12}", 0, true, 12 },
	{ "{\"iter\\u0061tion\": 8}", 0, true, 8 },
	{ "{ \"iteration\" : 5 }", 0, true, 5 },
	/* "iteration" present but wrong: iteration_num not consulted */
	{ "{\"iteration\": -1, \"iteration_num\": 3}", 0, false, 0 },
	{ "{\"iteration\": \"3\", \"iteration_num\": 3}", 0, false, 0 },
	{ "{\"iteration_num\": 3, \"iteration\": 3.0}", 0, false, 0 },
	/* wrong types and ranges */
	{ "{\"iteration\": 12.0}", 0, false, 0 },
	{ "{\"iteration\": 1e2}", 0, false, 0 },
	{ "{\"iteration\": 1E2, \"a\": 1}", 0, false, 0 },
	{ "{\"iteration\": \"12\"}", 0, false, 0 },
	{ "{\"iteration\": -1}", 0, false, 0 },
	{ "{\"iteration\": -0}", 0, true, 0 },
	{ "{\"iteration\": null}", 0, false, 0 },
	{ "{\"iteration\": true}", 0, false, 0 },
	{ "{\"iteration\": NaN}", 0, false, 0 },
	{ "{\"iteration\": [1]}", 0, false, 0 },
	{ "{\"iteration\": 9223372036854775808}", 0, false, 0 },
	{ "{\"iteration\": 99999999999999999999999}", 0, false, 0 },
	{ "{\"iteration_num\": -5}", 0, false, 0 },
	{ "{\"a\": 1}", 0, false, 0 },
	{ "{}", 0, false, 0 },
	/* not an object */
	{ "", -EINVAL, false, 0 },
	{ "   \r", -EINVAL, false, 0 },
	{ "[{\"iteration\": 1}]", -EINVAL, false, 0 },
	{ "\"iteration\"", -EINVAL, false, 0 },
	{ "{\"iteration\": 1", -EINVAL, false, 0 },
	{ "{\"iteration\": 01}", -EINVAL, false, 0 },
	{ "{\"a\": 1, \"iteration\": 2,}", -EINVAL, false, 0 },
	{ "{\"iteration_num\": 2, \"x\": \"\\u12\"}", -EINVAL, false, 0 },
	{ "garbage", -EINVAL, false, 0 },
};

static void test_iteration(void)
{
	struct jtext_span v;
	const char *key;
	bool found, ffound;
	int64_t n;
	size_t i;
	int r;

	for (i = 0; i < sizeof(it_cases) / sizeof(it_cases[0]); i++) {
		const struct it_case *c = &it_cases[i];

		n = -42;
		found = !c->found;
		r = record_iteration(L(c->line), &n, &found);
		T_CHECK(r == c->rc, "%s: rc %d", c->line, r);
		T_CHECK(found == c->found, "%s: found %d", c->line, found);
		if (c->found)
			T_CHECK(n == c->n, "%s: n %lld", c->line, (long long)n);
		/* record_field agrees wherever the line is valid */
		r = record_field(L(c->line), FIELD_ITERATION, &v, &key, &ffound);
		T_CHECK(r == c->rc && ffound == c->found,
			"%s: record_field %d/%d", c->line, r, ffound);
	}
}

static void check_field(const char *line, enum record_field f, bool want_found,
			const char *want_val, const char *want_key)
{
	struct jtext_span v = { NULL, 0 };
	const char *key = NULL;
	bool found;
	int r = record_field(L(line), f, &v, &key, &found);

	T_CHECK(r == 0, "%s: field %d rc %d", line, f, r);
	T_CHECK(found == want_found, "%s: field %d found %d", line, f, found);
	if (!found || !want_found)
		return;
	T_CHECK(v.len == strlen(want_val) && memcmp(v.p, want_val, v.len) == 0,
		"%s: field %d value %.*s", line, f, (int)v.len, v.p);
	T_CHECK(key && strcmp(key, want_key) == 0, "%s: key %s", line, key);
}

static void test_field_aliases(void)
{
	const char *a = "{\"iteration\":1,\"code\":\"c1\",\"strategy_code\":\"c2\","
			"\"metrics\":{\"s\":1},\"feedback\":\"f1\","
			"\"feedback_used\":\"f2\",\"error\":\"e1\","
			"\"execution_result\":{\"error_message\":\"e2\"},"
			"\"timestamp\":\"2025-01-01T00:00:00\","
			"\"code_hash\":\"ab\"}";
	const char *b = "{\"iteration_num\":2,\"strategy_code\":\"c2\","
			"\"feedback_used\":\"f2\","
			"\"execution_result\":{\"success\":false,"
			"\"error_message\":\"e2\"}}";

	check_field(a, FIELD_ITERATION, true, "1", "iteration");
	check_field(a, FIELD_CODE, true, "\"c1\"", "code");
	check_field(a, FIELD_METRICS, true, "{\"s\":1}", "metrics");
	check_field(a, FIELD_FEEDBACK, true, "\"f1\"", "feedback");
	check_field(a, FIELD_ERROR, true, "\"e1\"", "error");
	check_field(a, FIELD_TIMESTAMP, true, "\"2025-01-01T00:00:00\"",
		    "timestamp");
	check_field(a, FIELD_CODE_HASH, true, "\"ab\"", "code_hash");
	check_field(b, FIELD_ITERATION, true, "2", "iteration_num");
	check_field(b, FIELD_CODE, true, "\"c2\"", "strategy_code");
	check_field(b, FIELD_FEEDBACK, true, "\"f2\"", "feedback_used");
	check_field(b, FIELD_ERROR, true, "\"e2\"", "execution_result");
	check_field(b, FIELD_METRICS, false, NULL, NULL);
	check_field(b, FIELD_TIMESTAMP, false, NULL, NULL);
	check_field(b, FIELD_CODE_HASH, false, NULL, NULL);
}

static void test_field_types(void)
{
	/* first key present wins, even when its value is of the wrong type */
	check_field("{\"code\":null,\"strategy_code\":\"x\"}", FIELD_CODE, false,
		    NULL, NULL);
	check_field("{\"strategy_code\":\"x\",\"code\":1}", FIELD_CODE, false,
		    NULL, NULL);
	check_field("{\"strategy_code\":null}", FIELD_CODE, false, NULL, NULL);
	check_field("{\"strategy_code\":[\"x\"]}", FIELD_CODE, false, NULL, NULL);
	check_field("{\"code\":\"\"}", FIELD_CODE, true, "\"\"", "code");
	check_field("{\"metrics\":null}", FIELD_METRICS, false, NULL, NULL);
	check_field("{\"metrics\":0}", FIELD_METRICS, true, "0", "metrics");
	check_field("{\"metrics\":false}", FIELD_METRICS, true, "false", "metrics");
	check_field("{\"metrics\":\"s\"}", FIELD_METRICS, true, "\"s\"", "metrics");
	check_field("{\"metrics\":[]}", FIELD_METRICS, true, "[]", "metrics");
	check_field("{\"metrics\":{\"a\":1},\"metrics\":null}", FIELD_METRICS,
		    false, NULL, NULL);
	check_field("{\"metrics\":null,\"metrics\":{}}", FIELD_METRICS, true, "{}",
		    "metrics");
	check_field("{\"feedback\":null,\"feedback_used\":\"f\"}", FIELD_FEEDBACK,
		    false, NULL, NULL);
	check_field("{\"feedback_used\":true}", FIELD_FEEDBACK, false, NULL, NULL);
	check_field("{\"timestamp\":1760211995}", FIELD_TIMESTAMP, false, NULL,
		    NULL);
	check_field("{\"code_hash\":null}", FIELD_CODE_HASH, false, NULL, NULL);
	/* the nested error alias */
	check_field("{\"error\":null,\"execution_result\":{\"error_message\":\"e\"}}",
		    FIELD_ERROR, false, NULL, NULL);
	check_field("{\"execution_result\":{\"error_message\":null}}", FIELD_ERROR,
		    false, NULL, NULL);
	check_field("{\"execution_result\":{\"error_message\":\"a\","
		    "\"error_message\":\"b\"}}", FIELD_ERROR, true, "\"b\"",
		    "execution_result");
	check_field("{\"execution_result\":{\"error\":\"e\"}}", FIELD_ERROR, false,
		    NULL, NULL);
	check_field("{\"execution_result\":\"boom\"}", FIELD_ERROR, false, NULL,
		    NULL);
	check_field("{\"execution_result\":null}", FIELD_ERROR, false, NULL, NULL);
	check_field("{\"execution_result\":[{\"error_message\":\"e\"}]}",
		    FIELD_ERROR, false, NULL, NULL);
	check_field("{\"x\":{\"error\":\"e\"}}", FIELD_ERROR, false, NULL, NULL);
	check_field("{\"execution_result\":{\"r\":{\"error_message\":\"e\"}}}",
		    FIELD_ERROR, false, NULL, NULL);
	/* an escaped key is the same key */
	check_field("{\"c\\u006fde\":\"x\"}", FIELD_CODE, true, "\"x\"", "code");
}

static void test_field_rejects_non_objects(void)
{
	static const char *const bad[] = {
		"", "[]", "1", "\"x\"", "null", "{", "{\"code\":\"x\"",
		"{\"code\":\"x\"} {}", "{\"code\":\"x\",}", "{\"code\":\"\x01\"}",
	};
	struct jtext_span v;
	struct buf b = BUF_INIT;
	unsigned mask = 77;
	bool found = true, present = true;
	size_t i;
	int64_t t;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		T_CHECK(record_field(L(bad[i]), FIELD_CODE, &v, NULL, &found) ==
			-EINVAL && !found, "record_field accepted %s", bad[i]);
		T_CHECK(record_timestamp(L(bad[i]), &t, &found) == -EINVAL &&
			!found, "record_timestamp accepted %s", bad[i]);
		T_CHECK(view_mask(L(bad[i]), &mask) == -EINVAL, "view_mask %s",
			bad[i]);
		T_CHECK(view_render(L(bad[i]), VIEW_RECORD, &b, &present) ==
			-EINVAL && !present && b.len == 0, "view_render %s",
			bad[i]);
	}
	T_CHECK(record_field(L("{}"), (enum record_field)99, &v, NULL, &found) ==
		-EINVAL, "unknown field");
	T_CHECK(view_render(L("{}"), VIEW_COUNT, &b, &present) == -EINVAL,
		"unknown view");
	buf_free(&b);
}

static bool have_python(void);

/* `want` in microseconds since the epoch. */
static void check_time_us(const char *s, int rc, int64_t want)
{
	int64_t t = 12345;
	int r = record_parse_time(L(s), &t);

	T_CHECK(r == rc, "parse_time(%s) = %d", s, r);
	if (!rc && !r)
		T_CHECK(t == want, "parse_time(%s) = %lld, want %lld", s,
			(long long)t, (long long)want);
}

/* `want` in whole seconds: the text has no fraction. */
static void check_time(const char *s, int rc, time_t want)
{
	check_time_us(s, rc, (int64_t)want * 1000000);
}

/* Local times, expected values from Python's
 * datetime.fromisoformat(s).replace(microsecond=0).timestamp() under the
 * same TZ: ordinary, the skipped hour, the repeated hour (Python takes the
 * earlier instant), a 30-minute DST zone, before 1970 and after 2038. */
static const char *const local_zones[] = {
	"EST5EDT,M3.2.0,M11.1.0", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
	"UTC0", "<-03>3",
};
static const char *const local_times[] = {
	"2025-03-09T02:30:00", "2025-11-02T01:30:00", "2025-11-02T00:59:59",
	"2025-11-02T02:00:00", "2025-10-05T02:15:00", "2025-04-06T01:45:00",
	"2025-10-11T15:46:35.605350", "1969-12-31T23:59:59",
	"2038-01-19T03:14:08", "1900-01-01T00:00:00",
};
static const long long local_want[4][10] = {
	{ 1741505400, 1762061400, 1762059599, 1762066800, 1759644900,
	  1743918300, 1760211995, 17999, 2147501648, -2208970800 },
	{ 1741447800, 1762007400, 1762005599, 1762009200, 1759592700,
	  1743864300, 1760157995, -39601, 2147444048, -2209028400 },
	{ 1741487400, 1762047000, 1762045199, 1762048800, 1759630500,
	  1743903900, 1760197595, -1, 2147483648, -2208988800 },
	{ 1741498200, 1762057800, 1762055999, 1762059600, 1759641300,
	  1743914700, 1760208395, 10799, 2147494448, -2208978000 },
};

static void set_tz(const char *tz)
{
	if (tz)
		setenv("TZ", tz, 1);
	else
		unsetenv("TZ");
	tzset();
}

static void test_parse_time_local(void)
{
	size_t z, i;

	for (z = 0; z < 4; z++) {
		set_tz(local_zones[z]);
		for (i = 0; i < 10; i++)
			check_time_us(local_times[i], 0,
				      local_want[z][i] * 1000000 +
				      (i == 6 ? 605350 : 0));
	}
	set_tz(NULL);
}

/* Every 20 minutes across both DST changes of 2025, in two zones, against
 * python3 at run time. */
static void test_parse_time_local_python(void)
{
	static const char *const zones[] = {
		"EST5EDT,M3.2.0,M11.1.0", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
	};
	static const char py[] =
		"import datetime, sys\n"
		"for l in sys.stdin:\n"
		"    d = datetime.datetime.fromisoformat(l.strip())\n"
		"    print(int(d.replace(microsecond=0).timestamp()) * 10**6\n"
		"          + d.microsecond)\n";
	static const int days[][3] = { { 3, 8, 10 }, { 11, 1, 3 },
				       { 10, 4, 6 }, { 4, 5, 7 } };
	char *in = t_path("times.txt"), *script = t_path("times.py");
	char cmd[1024], ts[64];
	struct buf text = BUF_INIT;
	long long want;
	size_t z, d, n, k;
	int64_t t;
	FILE *f;

	if (!have_python()) {
		printf("# python3 not found: local times not cross-checked\n");
		goto out;
	}
	for (d = 0; d < 4; d++)
		for (n = (size_t)days[d][1]; n <= (size_t)days[d][2]; n++)
			for (k = 0; k < 72; k++)
				buf_printf(&text, "2025-%02d-%02zuT%02zu:%02zu:07.5\n",
					   days[d][0], n, k / 3, k % 3 * 20);
	t_write_file(in, text.data, text.len);
	t_write_file(script, py, strlen(py));
	for (z = 0; z < 2; z++) {
		snprintf(cmd, sizeof(cmd), "TZ='%s' python3 '%s' < '%s'", zones[z],
			 script, in);
		f = popen(cmd, "r");
		T_CHECK(f != NULL, "popen");
		if (!f)
			continue;
		set_tz(zones[z]);
		for (k = 0; k < text.len; k += strlen(ts) + 1) {
			sscanf(text.data + k, "%63s", ts);
			if (fscanf(f, "%lld", &want) != 1) {
				T_CHECK(0, "python gave no answer for %s", ts);
				break;
			}
			T_CHECK(record_parse_time(L(ts), &t) == 0 && t == want,
				"%s in %s: %lld, python %lld", ts, zones[z],
				(long long)t, want);
		}
		T_CHECK(pclose(f) == 0, "python3 failed");
	}
	set_tz(NULL);
out:
	buf_free(&text);
	free(in);
	free(script);
}

static void test_parse_time(void)
{
	static const char *const bad[] = {
		"", "2025-10-11", "2025-10-11T15:46", "2025-10-11T15:46:3",
		"2025-10-11T15:46:35.", "2025-10-11T15:46:35x",
		"2025-10-11T15:46:35+5", "2025-10-11T15:46:35+05:3",
		"2025-10-11T15:46:35Z ", " 2025-10-11T15:46:35",
		"2025-13-11T15:46:35", "2025-00-11T15:46:35", "2025-02-29T00:00:00",
		"2025-04-31T00:00:00", "2025-10-11T24:00:00", "2025-10-11T23:60:00",
		"2025-10-11T23:59:60", "2025-10-11t15:46:35", "25-10-11T15:46:35",
		"2025/10/11T15:46:35", "2025-10-11T15:46:35+24:00",
		"2025-10-11T15:46:35+05:60", "2025-10-11T15:46:35ZZ",
		"2025-1a-11T15:46:35",
	};
	size_t i;

	set_tz("EST5EDT,M3.2.0,M11.1.0");
	check_time_us("2025-10-11T15:46:35.999999999", 0, 1760211995999999);
	check_time_us("2025-10-11T15:46:35.5", 0, 1760211995500000);
	check_time_us("2025-10-11T15:46:35.000001", 0, 1760211995000001);
	check_time_us("2025-10-11T15:46:35.1234567", 0, 1760211995123456);
	check_time("2025-01-15 08:00:00", 0, 1736946000);
	check_time("2025-10-11T15:46:35Z", 0, 1760197595);
	check_time_us("2025-10-11T15:46:35.999999+05:30", 0, 1760177795999999);
	check_time_us("2025-10-11T15:46:35.25Z", 0, 1760197595250000);
	check_time("2025-10-11T15:46:35-0800", 0, 1760226395);
	check_time("2025-10-11T15:46:35-08:00", 0, 1760226395);
	check_time("2025-10-11T15:46:35+00:00", 0, 1760197595);
	check_time_us("1969-12-31T23:59:59.5Z", 0, -500000);
	check_time("1970-01-01T00:00:00Z", 0, 0);
	check_time("2024-02-29T00:00:00Z", 0, 1709164800);
	check_time("2000-02-29T12:00:00Z", 0, 951825600);
	check_time("1900-02-29T00:00:00Z", -EINVAL, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_time(bad[i], -EINVAL, 0);
	set_tz(NULL);
}

static void test_timestamp(void)
{
	int64_t t = 0;
	bool found;

	set_tz("UTC0");
	T_CHECK(record_timestamp(L("{\"timestamp\": \"2025-10-11T15:46:35Z\"}"),
				 &t, &found) == 0 && found && t == 1760197595000000,
		"plain: %lld", (long long)t);
	T_CHECK(record_timestamp(L("{\"timestamp\": \"2025-10-11T15:46:3\\u0035\"}"),
				 &t, &found) == 0 && found && t == 1760197595000000,
		"escaped digit");
	T_CHECK(record_timestamp(L("{\"timestamp\": \"2025-10-11\"}"), &t,
				 &found) == 0 && !found, "unparsable is absent");
	T_CHECK(record_timestamp(L("{\"timestamp\": null}"), &t, &found) == 0 &&
		!found, "null");
	T_CHECK(record_timestamp(L("{\"timestamp\": 1760197595}"), &t, &found) ==
		0 && !found, "number");
	T_CHECK(record_timestamp(L("{\"_migrated_at\": \"2025-10-11T15:46:35\"}"),
				 &t, &found) == 0 && !found, "other key");
	T_CHECK(record_timestamp(L("{\"timestamp\": \"2025-10-11T15:46:35\\u0000\"}"),
				 &t, &found) == 0 && !found, "embedded NUL");
	set_tz("EST5EDT,M3.2.0,M11.1.0");
	T_CHECK(record_timestamp(L("{\"timestamp\": \"2025-10-11T15:46:35.605350\"}"),
				 &t, &found) == 0 && found && t == 1760211995605350,
		"local time: %lld", (long long)t);
	/* Sub-second precision survives offsets and local time alike. */
	T_CHECK(record_timestamp(L("{\"timestamp\": \"2025-10-11T15:46:35.000002-04:00\"}"),
				 &t, &found) == 0 && found &&
		t == 1760211995000002, "offset with fraction: %lld",
		(long long)t);
	T_CHECK(record_timestamp(L("{\"timestamp\": \"2025-11-02T01:30:00.75\"}"),
				 &t, &found) == 0 && found &&
		t == 1762061400750000, "repeated hour with fraction: %lld",
		(long long)t);
	set_tz(NULL);
}

static void check_view(const char *line, enum view_kind k, const char *want,
		       size_t wlen)
{
	struct buf b = BUF_INIT;
	bool present = !want;
	int r = view_render(L(line), k, &b, &present);

	T_CHECK(r == 0, "%s: view %d rc %d", line, k, r);
	T_CHECK(present == (want != NULL), "%s: view %d present %d", line, k,
		present);
	if (want)
		T_CHECK_MEM(b.data, b.len, want, wlen, view_name(k));
	else
		T_CHECK(b.len == 0, "absent view appended %zu bytes", b.len);
	buf_free(&b);
}

static void check_mask(const char *line, unsigned want)
{
	unsigned mask = 0;

	T_CHECK(view_mask(L(line), &mask) == 0 && mask == want,
		"%s: mask %#x, want %#x", line, mask, want);
}

#define M(k) (1u << (k))

/* Expected bytes: Python's json.loads, the contract's aliases, and
 * json.dumps(v, indent=2, ensure_ascii=False) + "\n" for the JSON views. */
static void test_views_new_dialect(void)
{
	const char *l =
		"{\"iteration_num\": 3, \"strategy_code\": \"def s(d):\\n"
		"\\tc = d.get('price:\xe6\x94\xb6\xe7\x9b\xa4\xe5\x83\xb9')  "
		"# \\u4e2d\\u6587 \\ud83d\\ude00 \xf0\x9f\x98\x80\\n\\treturn c\\n\", "
		"\"execution_result\": {\"success\": false, \"error_type\": "
		"\"KeyError\", \"error_message\": \"'close'\\r\\nline2\"}, "
		"\"metrics\": {\"sharpe_ratio\": NaN, \"total_return\": -Infinity, "
		"\"n\": 12345678901234567890, \"tiny\": 1E-5, \"z\": -0.0, "
		"\"win_rate\": null, \"by_year\": {\"2024\": [1, 2], \"2025\": []}, "
		"\"e\": {}}, \"feedback_used\": \"\\\"quoted\\\" \\u2028 \\u007f\", "
		"\"timestamp\": \"2025-11-27T21:28:31.095741\"}\r";

	check_view(l, VIEW_CODE,
		   W("def s(d):\n\tc = d.get('price:\xe6\x94\xb6\xe7\x9b\xa4\xe5\x83\xb9')"
		   "  # \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xf0\x9f\x98\x80\n"
		   "\treturn c\n"));
	check_view(l, VIEW_ERROR, W("'close'\r\nline2"));
	check_view(l, VIEW_FEEDBACK, W("\"quoted\" \xe2\x80\xa8 \x7f"));
	check_view(l, VIEW_METRICS,
		   W("{\n  \"sharpe_ratio\": NaN,\n  \"total_return\": -Infinity,\n"
		   "  \"n\": 12345678901234567890,\n  \"tiny\": 1E-5,\n"
		   "  \"z\": -0.0,\n  \"win_rate\": null,\n  \"by_year\": {\n"
		   "    \"2024\": [\n      1,\n      2\n    ],\n    \"2025\": []\n"
		   "  },\n  \"e\": {}\n}\n"));
	check_view(l, VIEW_RECORD,
		   W("{\n  \"iteration_num\": 3,\n  \"strategy_code\": \"def s(d):\\n"
		   "\\tc = d.get('price:\xe6\x94\xb6\xe7\x9b\xa4\xe5\x83\xb9')  # "
		   "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xf0\x9f\x98\x80\\n"
		   "\\treturn c\\n\",\n  \"execution_result\": {\n    \"success\": "
		   "false,\n    \"error_type\": \"KeyError\",\n    \"error_message\": "
		   "\"'close'\\r\\nline2\"\n  },\n  \"metrics\": {\n    "
		   "\"sharpe_ratio\": NaN,\n    \"total_return\": -Infinity,\n    "
		   "\"n\": 12345678901234567890,\n    \"tiny\": 1E-5,\n    \"z\": "
		   "-0.0,\n    \"win_rate\": null,\n    \"by_year\": {\n      "
		   "\"2024\": [\n        1,\n        2\n      ],\n      \"2025\": "
		   "[]\n    },\n    \"e\": {}\n  },\n  \"feedback_used\": "
		   "\"\\\"quoted\\\" \xe2\x80\xa8 \x7f\",\n  \"timestamp\": "
		   "\"2025-11-27T21:28:31.095741\"\n}\n"));
	check_mask(l, M(VIEW_CODE) | M(VIEW_METRICS) | M(VIEW_FEEDBACK) |
		   M(VIEW_ERROR) | M(VIEW_RECORD));
}

static void test_views_old_dialect(void)
{
	const char *l = "{\"iteration\": 0, \"success\": true, \"metrics\": "
			"{\"sharpe_ratio\": 0.5}, \"template\": null, "
			"\"_migrated_at\": \"2025-10-11T15:46:35.605350\"}";
	const char *c = "{\"iteration\":4,\"code\":\"a\\u0000b\",\"metrics\":[],"
			"\"feedback\":\"\",\"error\":\"\\ud83d\\ude00\"}";

	check_view(l, VIEW_CODE, NULL, 0);
	check_view(l, VIEW_FEEDBACK, NULL, 0);
	check_view(l, VIEW_ERROR, NULL, 0);
	check_view(l, VIEW_METRICS, W("{\n  \"sharpe_ratio\": 0.5\n}\n"));
	check_view(l, VIEW_RECORD,
		   W("{\n  \"iteration\": 0,\n  \"success\": true,\n  \"metrics\": {\n"
		   "    \"sharpe_ratio\": 0.5\n  },\n  \"template\": null,\n"
		   "  \"_migrated_at\": \"2025-10-11T15:46:35.605350\"\n}\n"));
	check_mask(l, M(VIEW_METRICS) | M(VIEW_RECORD));
	check_view(c, VIEW_CODE, W("a\0b"));
	check_view(c, VIEW_METRICS, W("[]\n"));
	check_view(c, VIEW_FEEDBACK, W(""));
	check_view(c, VIEW_ERROR, W("\xf0\x9f\x98\x80"));
	check_mask(c, M(VIEW_CODE) | M(VIEW_METRICS) | M(VIEW_FEEDBACK) |
		   M(VIEW_ERROR) | M(VIEW_RECORD));
}

static void test_views_missing_and_wrong_types(void)
{
	const char *l = "{\"iteration_num\": 1, \"strategy_code\": null, "
			"\"metrics\": null, \"feedback_used\": 5, "
			"\"execution_result\": {\"success\": true, "
			"\"error_message\": null}}";
	const char *d = "{\"iteration\":1,\"metrics\":{\"a\":1,\"b\":2,\"a\":3},"
			"\"metrics\":{\"x\":{\"y\":1,\"y\":{}}}}";

	check_view(l, VIEW_CODE, NULL, 0);
	check_view(l, VIEW_METRICS, NULL, 0);
	check_view(l, VIEW_FEEDBACK, NULL, 0);
	check_view(l, VIEW_ERROR, NULL, 0);
	check_mask(l, M(VIEW_RECORD));
	check_mask("{}", M(VIEW_RECORD));
	check_view("{}", VIEW_RECORD, W("{}\n"));
	check_view("{}\r", VIEW_RECORD, W("{}\n"));
	/* duplicate keys: Python keeps the first place and the last value */
	check_view(d, VIEW_METRICS, W("{\n  \"x\": {\n    \"y\": {}\n  }\n}\n"));
	check_view(d, VIEW_RECORD,
		   W("{\n  \"iteration\": 1,\n  \"metrics\": {\n    \"x\": {\n"
		   "      \"y\": {}\n    }\n  }\n}\n"));
}

static void test_view_render_appends(void)
{
	struct buf b = BUF_INIT;
	bool present;

	buf_puts(&b, "head:");
	T_CHECK(view_render(L("{\"code\":\"x\"}"), VIEW_CODE, &b, &present) == 0 &&
		present, "render");
	T_CHECK_MEM(b.data, b.len, "head:x", 6, "appended");
	buf_free(&b);
}

/* An independent reading of the contract in Python: for line i of a
 * history it writes <out>/<i>.<view> for each view the record has, <i>.it
 * (the iteration number or "-") and <i>.ts (epoch seconds or "-").
 * Numbers keep their text (Raw); where every float round-trips the result
 * must also equal plain json.dumps, or the script fails. */
static const char views_py[] =
	"import json, sys, datetime\n"
	"src, out = sys.argv[1], sys.argv[2]\n"
	"class Raw(str): pass\n"
	"def pp(o, d=0):\n"
	"    ind = '  ' * (d + 1)\n"
	"    if isinstance(o, Raw): return str(o)\n"
	"    if isinstance(o, dict):\n"
	"        if not o: return '{}'\n"
	"        return '{\\n' + ',\\n'.join(ind + json.dumps(k, ensure_ascii=False)\n"
	"            + ': ' + pp(v, d + 1) for k, v in o.items()) + '\\n' + '  ' * d + '}'\n"
	"    if isinstance(o, list):\n"
	"        if not o: return '[]'\n"
	"        return '[\\n' + ',\\n'.join(ind + pp(v, d + 1) for v in o)\\\n"
	"            + '\\n' + '  ' * d + ']'\n"
	"    return json.dumps(o, ensure_ascii=False)\n"
	"def roundtrips(s):\n"
	"    ok[0] = ok[0] and repr(float(s)) == s\n"
	"    return float(s)\n"
	"def first(o, keys):\n"
	"    for k in keys:\n"
	"        if k in o: return o[k]\n"
	"    return None\n"
	"def put(name, b):\n"
	"    with open(out + '/' + name, 'wb') as f: f.write(b)\n"
	"data = open(src, 'rb').read()\n"
	"if data.startswith(b'\\xef\\xbb\\xbf'): data = data[3:]\n"
	"for i, line in enumerate(data.split(b'\\n')):\n"
	"    try:\n"
	"        t = line.decode('utf-8')\n"
	"        o = json.loads(t)\n"
	"    except ValueError:\n"
	"        continue\n"
	"    if not isinstance(o, dict): continue\n"
	"    ok = [True]\n"
	"    json.loads(t, parse_float=roundtrips)\n"
	"    raw = json.loads(t, parse_float=Raw, parse_int=Raw, parse_constant=Raw)\n"
	"    rec = pp(raw) + '\\n'\n"
	"    if ok[0] and rec != json.dumps(o, indent=2, ensure_ascii=False) + '\\n':\n"
	"        sys.exit('pp differs from json.dumps on line %d' % i)\n"
	"    put('%d.record.json' % i, rec.encode())\n"
	"    v = first(o, ['iteration', 'iteration_num'])\n"
	"    it = v if type(v) is int and v >= 0 and v < 2**63 else '-'\n"
	"    put('%d.it' % i, str(it).encode())\n"
	"    v = first(o, ['code', 'strategy_code'])\n"
	"    if isinstance(v, str): put('%d.code.py' % i, v.encode())\n"
	"    if o.get('metrics') is not None:\n"
	"        put('%d.metrics.json' % i, (pp(raw['metrics']) + '\\n').encode())\n"
	"    v = first(o, ['feedback', 'feedback_used'])\n"
	"    if isinstance(v, str): put('%d.feedback.txt' % i, v.encode())\n"
	"    if 'error' in o: v = o['error']\n"
	"    elif isinstance(o.get('execution_result'), dict):\n"
	"        v = o['execution_result'].get('error_message')\n"
	"    else: v = None\n"
	"    if isinstance(v, str): put('%d.error.txt' % i, v.encode())\n"
	"    ts = '-'\n"
	"    v = o.get('timestamp')\n"
	"    if isinstance(v, str):\n"
	"        try:\n"
	"            d = datetime.datetime.fromisoformat(v)\n"
	"            ts = str(int(d.replace(microsecond=0).timestamp()) * 10**6\n"
	"                     + d.microsecond)\n"
	"        except ValueError: pass\n"
	"    put('%d.ts' % i, ts.encode())\n";

static bool have_python(void)
{
	return system("python3 -c pass >/dev/null 2>&1") == 0;
}

static char *expect_file(const char *dir, size_t line, const char *what,
			 size_t *len)
{
	char name[512];

	snprintf(name, sizeof(name), "%s/%zu.%s", dir, line, what);
	return t_read_file(name, len);
}

/* Every line, every view, against the Python reading.  Returns the number
 * of records checked. */
static size_t check_history(const char *path, const char *tag)
{
	char *script = t_path("views.py"), *dir, cmd[2048], *data, *want;
	struct buf got = BUF_INIT, fast = BUF_INIT;
	size_t len, wlen, lineno = 0, records = 0, start = 0, end, k;
	struct jtext_span v;
	int64_t t;
	int64_t n;
	unsigned mask, fmask;
	bool found, present, fpresent;
	int r;

	data = t_read_file(path, &len);
	T_CHECK(data != NULL, "cannot read %s", path);
	dir = t_path(tag);
	t_write_file(script, views_py, strlen(views_py));
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && python3 '%s' '%s' '%s'",
		 dir, script, path, dir);
	T_CHECK(system(cmd) == 0, "python3 failed: %s", cmd);
	if (data && len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		start = 3;
	for (; data && start < len; start = end + 1, lineno++) {
		const char *l = data + start;
		size_t ll;

		end = start;
		while (end < len && data[end] != '\n')
			end++;
		ll = end - start;
		want = expect_file(dir, lineno, "it", &wlen);
		if (jtext_parse_value(l, ll, &v) < 0 || jtext_type(v) != JTEXT_OBJECT) {
			T_CHECK(!want, "%s:%zu: python read a record", tag, lineno + 1);
			free(want);
			continue;
		}
		T_CHECK(want != NULL, "%s:%zu: python skipped it", tag, lineno + 1);
		if (!want)
			continue;
		records++;
		r = record_iteration(l, ll, &n, &found);
		T_CHECK(r == 0, "%s:%zu: record_iteration %d", tag, lineno + 1, r);
		if (strcmp(want, "-") == 0)
			T_CHECK(!found, "%s:%zu: iteration found", tag, lineno + 1);
		else
			T_CHECK(found && n == strtoll(want, NULL, 10),
				"%s:%zu: iteration %lld, want %s", tag, lineno + 1,
				(long long)n, want);
		free(want);
		want = expect_file(dir, lineno, "ts", &wlen);
		r = record_timestamp(l, ll, &t, &found);
		T_CHECK(r == 0 && want, "%s:%zu: record_timestamp %d", tag,
			lineno + 1, r);
		if (want && strcmp(want, "-") == 0)
			T_CHECK(!found, "%s:%zu: timestamp found", tag, lineno + 1);
		else if (want)
			T_CHECK(found && t == strtoll(want, NULL, 10),
				"%s:%zu: timestamp %lld, want %s", tag,
				lineno + 1, (long long)t, want);
		free(want);
		T_CHECK(view_mask(l, ll, &mask) == 0, "%s:%zu: mask", tag, lineno + 1);
		T_CHECK(view_mask_trusted(l, ll, &fmask) == 0 && fmask == mask,
			"%s:%zu: trusted mask %#x, want %#x", tag, lineno + 1,
			fmask, mask);
		for (k = 0; k < VIEW_COUNT; k++) {
			want = expect_file(dir, lineno, view_name((enum view_kind)k),
					   &wlen);
			buf_reset(&got);
			r = view_render(l, ll, (enum view_kind)k, &got, &present);
			T_CHECK(r == 0, "%s:%zu: %s rc %d", tag, lineno + 1,
				view_name((enum view_kind)k), r);
			T_CHECK(present == (want != NULL) &&
				!!(mask & 1u << k) == present,
				"%s:%zu: %s present %d, python %d, mask %#x", tag,
				lineno + 1, view_name((enum view_kind)k), present,
				want != NULL, mask);
			if (want && present)
				T_CHECK_MEM(got.data, got.len, want, wlen,
					    view_name((enum view_kind)k));
			/* A validated line renders the same trusted. */
			buf_reset(&fast);
			r = view_render_trusted(l, ll, (enum view_kind)k,
						&fast, &fpresent);
			T_CHECK(r == 0 && fpresent == present,
				"%s:%zu: %s trusted rc %d", tag, lineno + 1,
				view_name((enum view_kind)k), r);
			if (r == 0 && present)
				T_CHECK_MEM(fast.data, fast.len, got.data,
					    got.len, "trusted render");
			free(want);
		}
	}
	buf_free(&fast);
	buf_free(&got);
	free(data);
	free(dir);
	free(script);
	return records;
}

/* Both dialects, CRLF, a BOM, garbage and non-object lines, unicode. */
static const char hand_history[] =
	"\xef\xbb\xbf{\"iteration\": 0, \"code\": \"print('\\u4e2d')\\n\", "
	"\"metrics\": {\"s\": NaN, \"t\": [Infinity, -Infinity]}, "
	"\"timestamp\": \"2025-10-11T15:46:35.605350\"}\r\n"
	"{\"iteration_num\": 1, \"strategy_code\": \"x = '\xf0\x9f\x98\x80'"
	"\\ud83d\\ude00\\u0001\\u001f\\u007f\", \"feedback_used\": \"ok\\t\", "
	"\"execution_result\": {\"error_message\": \"E\\\\\"}, "
	"\"timestamp\": \"2025-01-15 08:00:00Z\"}\n"
	"not json\n"
	"[1, 2]\n"
	"\n"
	"{\"iteration\": \"2\", \"code\": null, \"metrics\": null}\n"
	"{\"a\": {}, \"b\": [], \"iteration\": 3, \"error\": \"bad\\r\\n\", "
	"\"feedback\": \"\\u2028\\u2029\", \"metrics\": {\"deep\": {\"er\": "
	"[[{}], {\"x\": [null, true, false, \"\"]}]}}}\n"
	"{\"iteration\": 4, \"n\": 12345678901234567890, \"dup\": 1, "
	"\"dup\": {\"k\": 2}, \"timestamp\": \"2025-10-11T15:46:35+05:30\"}\n"
	"{\"iteration\": 5, \"torn\": \"tail";

static void test_history_against_python(void)
{
	char *p = t_path("hand.jsonl");
	size_t n;

	if (!have_python()) {
		printf("# python3 not found: histories not cross-checked\n");
		free(p);
		return;
	}
	t_write_file(p, hand_history, sizeof(hand_history) - 1);
	n = check_history(p, "hand");
	T_CHECK(n == 5, "hand history: %zu records", n);
	free(p);
}

static void test_real_histories_against_python(void)
{
	static const struct {
		const char *name;
		size_t records;
	} real[] = {
		{ "llm_only_50.jsonl", 50 },
		{ "unified_factor_graph.jsonl", 21 },
		{ "json_mode_test.jsonl", 20 },
		{ "migrated_no_code.jsonl", 20 },
	};
	size_t i, n;
	char *p;

	if (!have_python()) {
		printf("# python3 not found: real histories not cross-checked\n");
		return;
	}
	for (i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
		p = t_real_data(real[i].name);
		if (!p) {
			printf("# %s not present: skipped\n", real[i].name);
			continue;
		}
		n = check_history(p, real[i].name);
		T_CHECK(n == real[i].records, "%s: %zu records checked",
			real[i].name, n);
		printf("# %s: %zu records, every view matches python3\n",
		       real[i].name, n);
		free(p);
	}
}

/* Every prefix of a record, in a buffer of exactly its size: only the whole
 * line is an object, and nothing reads past the end. */
static void test_truncated_lines(void)
{
	static const char line[] =
		"{\"a\": 1, \"iteration_num\": 3, \"strategy_code\": \"x\\u0000\", "
		"\"metrics\": {\"s\": NaN}, \"feedback\": \"\\ud83d\\ude00\", "
		"\"execution_result\": {\"error_message\": \"e\"}, "
		"\"timestamp\": \"2025-10-11T15:46:35.605350+01:00\"}";
	struct buf b = BUF_INIT;
	struct jtext_span v;
	size_t n, k, whole = sizeof(line) - 1;
	unsigned mask;
	bool found, present;
	int64_t it;
	int64_t t;
	char *p;
	int want;

	for (n = 0; n <= whole; n++) {
		p = malloc(n ? n : 1);
		if (!p)
			abort();
		memcpy(p, line, n);
		want = n == whole ? 0 : -EINVAL;
		T_CHECK(record_field(p, n, FIELD_CODE, &v, NULL, &found) == want,
			"record_field on %zu bytes", n);
		T_CHECK(record_iteration(p, n, &it, &found) == want,
			"record_iteration on %zu bytes", n);
		T_CHECK(record_timestamp(p, n, &t, &found) == want &&
			found == (n == whole), "record_timestamp on %zu bytes", n);
		T_CHECK(view_mask(p, n, &mask) == want, "view_mask on %zu", n);
		for (k = 0; k < VIEW_COUNT; k++) {
			buf_reset(&b);
			T_CHECK(view_render(p, n, (enum view_kind)k, &b, &present) ==
				want, "view_render %zu on %zu bytes", k, n);
		}
		free(p);
	}
	buf_free(&b);
}

struct mf {
	char out[512];
	size_t o;
};

static int mf_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	struct mf *m = arg;

	m->o += (size_t)snprintf(m->out + m->o, sizeof(m->out) - m->o,
				 "%.*s=%.*s|", (int)key.len, key.p,
				 (int)val.len, val.p);
	return 0;
}

static void check_members_fast(const char *line, int rc, const char *want)
{
	struct mf m = { "", 0 };
	int r = record_members_fast(L(line), mf_cb, &m);

	T_CHECK(r == rc, "%s: rc %d", line, r);
	if (!rc && !r)
		T_CHECK(strcmp(m.out, want) == 0, "%s: %s, want %s", line,
			m.out, want);
}

/* The store's fast member walk: every member, right where it ends, and
 * a refusal for whatever does not hold together. */
static void test_members_fast(void)
{
	check_members_fast("{}", 0, "");
	check_members_fast(" { } \r", 0, "");
	check_members_fast("{\"a\":1,\"b\" : \"x\\\"}\" , \"c\":{\"d\":[1,\"]\","
			   "{}]},\"e\":[],\"f\":true,\"g\":null,\"h\":-1.5e3}",
			   0, "\"a\"=1|\"b\"=\"x\\\"}\"|\"c\"={\"d\":[1,\"]\",{}]}|"
			   "\"e\"=[]|\"f\"=true|\"g\"=null|\"h\"=-1.5e3|");
	check_members_fast("{\"s\":\"a\\\\\",\"t\":\"\\\\\\\"\"}", 0,
			   "\"s\"=\"a\\\\\"|\"t\"=\"\\\\\\\"\"|");
	/* Strings and containers longer than one 16-byte block. */
	check_members_fast("{\"m\":{\"x\":12345678901234567890123,\"y\":"
			   "\"0123456789abcdef\\\"0123456789\"},\"n\":NaN}", 0,
			   "\"m\"={\"x\":12345678901234567890123,\"y\":"
			   "\"0123456789abcdef\\\"0123456789\"}|\"n\"=NaN|");
	check_members_fast("", -EINVAL, NULL);
	check_members_fast("[1]", -EINVAL, NULL);
	check_members_fast("{\"a\":\"x}", -EINVAL, NULL);
	check_members_fast("{\"a\":\"x\\\"}", -EINVAL, NULL);
	check_members_fast("{\"a\":[1,{\"b\":2}}", -EINVAL, NULL);
	check_members_fast("{\"a\":{\"b\":[1,2,3,4,5,6,7,8,9,10,11,12,13]}", -EINVAL,
			   NULL);
	check_members_fast("{\"a\":1}x", -EINVAL, NULL);
	check_members_fast("{\"a\" 1}", -EINVAL, NULL);
	check_members_fast("{a:1}", -EINVAL, NULL);
	check_members_fast("{\"a\":1,}", -EINVAL, NULL);
	check_members_fast("{\"a\":}", -EINVAL, NULL);
}

static void check_member_ok(const char *key, const char *val, bool ok,
			    const char *bad)
{
	struct jtext_span k = { key, strlen(key) }, v = { val, strlen(val) };
	char got[64] = "";
	const char *want = NULL;
	bool r = record_member_ok(k, v, got, sizeof(got), &want);

	T_CHECK(r == ok, "%s: %s: %d", key, val, r);
	if (!ok)
		T_CHECK(strcmp(got, bad) == 0 && want, "%s: bad %s", key, got);
}

/* One table: every field is checked alike, nested aliases included. */
static void test_member_ok(void)
{
	check_member_ok("\"iteration\"", "3", true, NULL);
	check_member_ok("\"iteration\"", "-0", true, NULL);
	check_member_ok("\"iteration_num\"", "-1", false, "iteration_num");
	check_member_ok("\"iteration\"", "null", false, "iteration");
	check_member_ok("\"code\"", "null", true, NULL);
	check_member_ok("\"strategy_code\"", "5", false, "strategy_code");
	check_member_ok("\"feedback\"", "5", false, "feedback");
	check_member_ok("\"error\"", "3", false, "error");
	check_member_ok("\"error\"", "\"boom\"", true, NULL);
	check_member_ok("\"metrics\"", "7", true, NULL);
	check_member_ok("\"metrics\"", "null", true, NULL);
	check_member_ok("\"timestamp\"", "\"2025-10-11T15:46:35.605350\"", true,
			NULL);
	check_member_ok("\"timestamp\"", "\"yesterday\"", false, "timestamp");
	check_member_ok("\"timestamp\"", "null", false, "timestamp");
	check_member_ok("\"success\"", "false", true, NULL);
	check_member_ok("\"success\"", "0", false, "success");
	check_member_ok("\"execution_result\"", "{\"success\": \"y\"}", false,
			"execution_result.success");
	check_member_ok("\"execution_result\"", "{\"error_message\": 1}",
			false, "execution_result.error_message");
	check_member_ok("\"execution_result\"", "\"not an object\"", true,
			NULL);
	check_member_ok("\"c\\u006fde\"", "1", false, "code");
	check_member_ok("\"other\"", "[1]", true, NULL);
}

/* The success meaning through the alias row: true, false, or unknown (not
 * found) when the first alias present is null or none is. */
static bool success_of(const char *line, bool *ok)
{
	struct jtext_span v;
	bool found = false;

	if (record_field(line, strlen(line), FIELD_SUCCESS, &v, NULL,
			 &found) < 0 || !found)
		return false;
	*ok = v.p[0] == 't';
	return true;
}

static void test_success_and_table(void)
{
	char t[96];
	bool ok = false;

	T_CHECK(success_of("{\"success\": true}", &ok) && ok, "success true");
	T_CHECK(success_of("{\"execution_result\": {\"success\": false}}",
			   &ok) && !ok, "nested");
	T_CHECK(!success_of("{\"success\": null, \"execution_result\": "
			    "{\"success\": true}}", &ok),
		"first alias present wins");
	T_CHECK(!success_of("{\"a\": 1}", &ok), "absent: unknown");
	T_CHECK(record_field_def(FIELD_SUCCESS) &&
		strcmp(record_field_def(FIELD_SUCCESS)->key[1],
		       "execution_result") == 0 &&
		record_field_def(FIELD_COUNT) == NULL, "table rows");
	record_type_text(RECORD_T_OBJECT, t, sizeof(t));
	T_CHECK(strcmp(t, "an object") == 0, "%s", t);
	record_type_text(RECORD_T_STRING | RECORD_T_NULL, t, sizeof(t));
	T_CHECK(strcmp(t, "a string or null") == 0, "%s", t);
	record_type_text(RECORD_T_STRING | RECORD_T_NUMBER | RECORD_T_BOOL, t,
			 sizeof(t));
	T_CHECK(strcmp(t, "a string, a number or a boolean") == 0, "%s", t);
}

/* record_fields answers as record_field does for each field, from one
 * walk: the top-level metrics and not one inside a string, a nested object
 * or an escape; duplicate keys (the last wins); invalid lines refused. */
static void test_fields_at_once(void)
{
	static const char *const lines[] = {
		"{\"iteration\": 1, \"code\": \"x = {\\\"metrics\\\": {\\\"a\\\": 1}}\\n\", "
		"\"metrics\": {\"a\": 2}, \"success\": true}",
		"{\"code\": \"\\\"metrics\\\": 9\", \"nested\": {\"metrics\": {\"a\": 3}}, "
		"\"execution_result\": {\"success\": false, \"metrics\": 1}}",
		"{\"metrics\": {\"a\": 1}, \"success\": false, \"metrics\": {\"b\": 2}, "
		"\"success\": true}",
		"{\"\\u006detrics\": {\"c\": 4}, \"s\\u0075ccess\": null}",
		"{\"metrics\": null, \"success\": \"yes\", \"code\": 5}",
		"{\"success\": null, \"execution_result\": {\"success\": true}, "
		"\"strategy_code\": \"s\"}",
		"{\"metrics\": [1, {\"metrics\": 2}], \"code\": \"\\\\\\\"\"}",
		" {\"metrics\": {}} \r",
		"{}",
	};
	static const char *const bad[] = {
		"{\"code\": \"bad \\x escape\", \"metrics\": {\"a\": 1}}",
		"{\"metrics\": {\"a\": 1x}}",
		"{\"metrics\": {\"a\": 1}} x",
		"{\"code\": \"raw\ttab\", \"metrics\": {\"a\": 1}}",
		"[{\"metrics\": {\"a\": 1}}]",
		"",
	};
	static const enum record_field f[3] = { FIELD_SUCCESS, FIELD_METRICS,
						FIELD_CODE };
	enum record_field out_of_range[1] = { FIELD_COUNT };
	struct jtext_span v[3], w;
	bool found[3], fw;
	size_t i, j;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		T_CHECK(record_fields(L(lines[i]), false, f, 3, v, found) == 0,
			"line %zu", i);
		for (j = 0; j < 3; j++) {
			T_CHECK(record_field(L(lines[i]), f[j], &w, NULL,
					     &fw) == 0 && fw == found[j] &&
				(!fw || (w.p == v[j].p && w.len == v[j].len)),
				"line %zu field %zu", i, j);
		}
		/* The walk that trusts a validated line answers the same. */
		T_CHECK(record_fields(L(lines[i]), true, f, 3, v, found) == 0,
			"trusted, line %zu", i);
		for (j = 0; j < 3; j++) {
			T_CHECK(record_field(L(lines[i]), f[j], &w, NULL,
					     &fw) == 0 && fw == found[j] &&
				(!fw || (w.p == v[j].p && w.len == v[j].len)),
				"trusted, line %zu field %zu", i, j);
		}
	}
	/* What those answers are, for the lines that say most. */
	T_CHECK(record_fields(L(lines[0]), false, f, 3, v, found) == 0 &&
		found[1] && v[1].len == 8 &&
		memcmp(v[1].p, "{\"a\": 2}", 8) == 0 && found[0] &&
		v[0].p[0] == 't', "metrics past a code holding one");
	T_CHECK(record_fields(L(lines[1]), false, f, 3, v, found) == 0 &&
		!found[1] && found[0] && v[0].p[0] == 'f', "only nested ones");
	T_CHECK(record_fields(L(lines[2]), false, f, 3, v, found) == 0 &&
		found[1] && v[1].len == 8 &&
		memcmp(v[1].p, "{\"b\": 2}", 8) == 0 && found[0] &&
		v[0].p[0] == 't', "duplicates: the last");
	T_CHECK(record_fields(L(lines[3]), false, f, 3, v, found) == 0 &&
		found[1] && v[1].len == 8 &&
		memcmp(v[1].p, "{\"c\": 4}", 8) == 0 && !found[0],
		"escaped keys");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		T_CHECK(record_fields(L(bad[i]), false, f, 3, v, found) ==
				-EINVAL &&
			!found[0] && !found[1] && !found[2], "bad line %zu", i);
	T_CHECK(record_fields(L("{}"), false, out_of_range, 1, v, found) ==
			-EINVAL,
		"a field out of range");
}

int main(void)
{
	T_RUN(test_view_names);
	T_RUN(test_members_fast);
	T_RUN(test_member_ok);
	T_RUN(test_success_and_table);
	T_RUN(test_fields_at_once);
	T_RUN(test_iteration);
	T_RUN(test_field_aliases);
	T_RUN(test_field_types);
	T_RUN(test_field_rejects_non_objects);
	T_RUN(test_parse_time);
	T_RUN(test_parse_time_local);
	T_RUN(test_parse_time_local_python);
	T_RUN(test_timestamp);
	T_RUN(test_views_new_dialect);
	T_RUN(test_views_old_dialect);
	T_RUN(test_views_missing_and_wrong_types);
	T_RUN(test_view_render_appends);
	T_RUN(test_truncated_lines);
	T_RUN(test_history_against_python);
	T_RUN(test_real_histories_against_python);
	return t_done();
}
