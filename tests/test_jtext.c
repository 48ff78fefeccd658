/* Unit tests for core/jtext.c: the scanner, the string codec and the
 * compact and pretty forms, byte for byte.  Expected pretty forms were
 * produced by Python's json.dumps(json.loads(x), indent=2,
 * ensure_ascii=False) + "\n"; a generated corpus is also checked against
 * python3 at run time when it is installed. */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"

static struct jtext_span S(const char *s)
{
	return (struct jtext_span){ s, strlen(s) };
}

static struct jtext_span SN(const char *s, size_t n)
{
	return (struct jtext_span){ s, n };
}

static void test_parse_accepts(void)
{
	static const char *const ok[] = {
		"{}", "[]", "0", "-0", "-0.0", "1E-5", "1e+5", "1.5E5", "12345678901234567890",
		"NaN", "Infinity", "-Infinity", "true", "false", "null", "\"\"",
		" \t\r\n{\"a\" : [ 1 , { } , [ ] ] }\r\n", "[NaN,-Infinity]",
		"\"\\u00e9\\uD83D\\uDE00\\ud800\\udc00\"", "\"\xff\xfe raw\"",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "{\"a\":1,\"a\":2}",
	};
	struct jtext_span v;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v.p = NULL;
		T_CHECK(jtext_parse_value(ok[i], strlen(ok[i]), &v) == 0,
			"rejected: %s", ok[i]);
		T_CHECK(v.p && v.len && !strchr(" \t\r\n", v.p[0]) &&
			!strchr(" \t\r\n", v.p[v.len - 1]),
			"span of %s keeps whitespace", ok[i]);
	}
	T_CHECK(jtext_parse_value(" [1] ", 5, NULL) == 0, "NULL val allowed");
}

static void test_parse_rejects(void)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1:2}",
		"{'a':1}", "01", "1.", ".5", "-", "+1", "1e", "1e+", "--1",
		"nul", "tru", "True", "nan", "NaNx", "-NaN", "infinity", "Infinit",
		"\"abc", "\"\\x\"", "\"\\u12G4\"", "\"\\u12\"", "\"\\", "[1 2]",
		"1 2", "{} {}", "{\"a\":1}x", "[1]]", "\"a\"\"b\"", "\x01",
		"[-Infinity1]", "0x10", "1.0.0",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		T_CHECK(jtext_parse_value(bad[i], strlen(bad[i]), NULL) == -EINVAL,
			"accepted: %s", bad[i]);
}

static void test_raw_control_chars_rejected(void)
{
	char s[8];
	int c;

	for (c = 0; c < 0x20; c++) {
		memcpy(s, "\"a?b\"", 5);
		s[2] = (char)c;
		T_CHECK(jtext_parse_value(s, 5, NULL) == -EINVAL,
			"raw 0x%02x accepted in a string", c);
	}
	memcpy(s, "\"a\x7f" "b\"", 5);
	T_CHECK(jtext_parse_value(s, 5, NULL) == 0, "raw DEL rejected");
}

static char *nest(int depth, char open, char close)
{
	char *s = malloc((size_t)depth * 2 + 1);
	int i;

	if (!s)
		abort();
	for (i = 0; i < depth; i++) {
		s[i] = open;
		s[2 * depth - 1 - i] = close;
	}
	s[2 * depth] = '\0';
	return s;
}

static void test_depth_limit(void)
{
	char *a = nest(JTEXT_MAX_DEPTH, '[', ']');
	char *b = nest(JTEXT_MAX_DEPTH + 1, '[', ']');
	struct buf out = BUF_INIT;

	char *py = nest(990, '[', ']');

	/* Python's json module reads nesting up to about 994 deep. */
	T_CHECK(JTEXT_MAX_DEPTH >= 995, "limit %d below Python's",
		JTEXT_MAX_DEPTH);
	T_CHECK(jtext_parse_value(py, strlen(py), NULL) == 0, "depth 990");
	T_CHECK(jtext_parse_value(a, strlen(a), NULL) == 0, "depth %d rejected",
		JTEXT_MAX_DEPTH);
	T_CHECK(jtext_parse_value(b, strlen(b), NULL) == -EINVAL,
		"depth %d accepted", JTEXT_MAX_DEPTH + 1);
	T_CHECK(jtext_pretty(S(a), &out) == 0, "pretty at the limit");
	T_CHECK(out.len == (size_t)JTEXT_MAX_DEPTH * JTEXT_MAX_DEPTH * 2 + 1,
		"pretty of %d nested [] is %zu bytes", JTEXT_MAX_DEPTH,
		out.len);
	buf_reset(&out);
	T_CHECK(jtext_pretty(S(b), &out) == -EINVAL, "pretty past the limit");
	T_CHECK(jtext_compact(S(b), &out) == -EINVAL, "compact past the limit");
	free(py);
	buf_free(&out);
	free(a);
	free(b);
}

/* The string scanner skips eight bytes at a time: put every kind of stop
 * byte at every offset around those word boundaries. */
static void test_string_scan_all_offsets(void)
{
	static const struct {
		const char *ins;
		const char *dec;
		size_t declen;
		int want;
	} k[] = {
		{ "\\n", "\n", 1, 0 }, { "\\\"", "\"", 1, 0 },
		{ "\\\\", "\\", 1, 0 }, { "\\u0000", "", 1, 0 },
		{ "\xe4\xb8\xad", "\xe4\xb8\xad", 3, 0 }, { "\x7f", "\x7f", 1, 0 },
		{ "\xff", "\xff", 1, 0 }, { "\x1f", NULL, 0, -EINVAL },
		{ "\t", NULL, 0, -EINVAL }, { "\\q", NULL, 0, -EINVAL },
	};
	char s[64], want[64];
	struct buf out = BUF_INIT;
	size_t i, pre, post, n, wn;
	int r;

	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		for (pre = 0; pre < 20; pre++) {
			for (post = 0; post < 12; post++) {
				n = 0;
				s[n++] = '"';
				memset(s + n, 'a', pre);
				n += pre;
				memcpy(s + n, k[i].ins, strlen(k[i].ins));
				n += strlen(k[i].ins);
				memset(s + n, 'b', post);
				n += post;
				s[n++] = '"';
				r = jtext_parse_value(s, n, NULL);
				T_CHECK(r == k[i].want, "case %zu pre %zu post %zu: %d",
					i, pre, post, r);
				buf_reset(&out);
				r = jtext_string_decode(SN(s, n), &out);
				T_CHECK(r == k[i].want, "decode case %zu: %d", i, r);
				if (r)
					continue;
				memset(want, 'a', pre);
				memcpy(want + pre, k[i].dec, k[i].declen);
				memset(want + pre + k[i].declen, 'b', post);
				wn = pre + k[i].declen + post;
				T_CHECK_MEM(out.data, out.len, want, wn, "decoded");
			}
		}
	}
	/* An unterminated string whose end falls on each word offset. */
	for (n = 1; n < 40; n++) {
		memset(s, 'x', n);
		s[0] = '"';
		T_CHECK(jtext_parse_value(s, n, NULL) == -EINVAL,
			"unterminated %zu accepted", n);
	}
	buf_free(&out);
}

static int count_cb(struct jtext_span v, void *arg)
{
	(void)v;
	(*(size_t *)arg)++;
	return 0;
}

/* Runs of two-byte escapes are stepped over within a 16-byte block, the
 * escaped byte (a quote, a backslash) included: every run length at every
 * offset, then what ends it -- the closing quote, a \u escape, a bad
 * escape, a control byte, a backslash cut by the end -- where the error
 * position must be the byte at fault, as scan_string reports it. */
static void test_escape_runs_all_offsets(void)
{
	static const char *const esc[] = { "\\n", "\\\\", "\\\"", "\\/",
					   "\\t" };
	static const char dec[] = { '\n', '\\', '"', '/', '\t' };
	static const struct {
		const char *tail;
		const char *dec; /* NULL: an error at byte `at` of the tail */
		size_t at;
	} k[] = {
		{ "\"", "", 0 },	   { "x\"", "x", 0 },
		{ "\\u0041\"", "A", 0 },   { "\\b\\f\\r\"", "\b\f\r", 0 },
		{ "\\q\"", NULL, 1 },	   { "\\u12\"", NULL, 1 },
		{ "\x01\"", NULL, 0 },	   { "\\", NULL, 1 },
		{ "", NULL, 0 },
	};
	char s[128], want[128];
	struct buf out = BUF_INIT;
	size_t i, pre, run, n, wn, pos, cnt, tl;
	int r;

	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		for (pre = 0; pre < 18; pre++) {
			for (run = 0; run < 20; run++) {
				n = wn = 0;
				s[n++] = '"';
				memset(s + n, 'a', pre);
				memset(want, 'a', pre);
				n += wn = pre;
				for (size_t j = 0; j < run; j++) {
					memcpy(s + n, esc[(pre + j) % 5], 2);
					n += 2;
					want[wn++] = dec[(pre + j) % 5];
				}
				tl = strlen(k[i].tail);
				memcpy(s + n, k[i].tail, tl);
				cnt = pos = 0;
				r = jtext_split_values(s, n + tl, count_cb, &cnt,
						       &pos);
				if (!k[i].dec) {
					T_CHECK(r == -EINVAL &&
						pos == n + k[i].at,
						"case %zu pre %zu run %zu: %d at %zu, want %zu",
						i, pre, run, r, pos,
						n + k[i].at);
					continue;
				}
				T_CHECK(r == 0 && cnt == 1,
					"case %zu pre %zu run %zu: %d", i, pre,
					run, r);
				memcpy(want + wn, k[i].dec, strlen(k[i].dec));
				wn += strlen(k[i].dec);
				buf_reset(&out);
				T_CHECK(jtext_string_decode(SN(s, n + tl), &out) == 0,
					"decode case %zu pre %zu run %zu", i,
					pre, run);
				T_CHECK_MEM(out.data, out.len, want, wn,
					    "decoded");
			}
		}
	}
	buf_free(&out);
}

static void test_type(void)
{
	T_CHECK(jtext_type(S("{}")) == JTEXT_OBJECT, "object");
	T_CHECK(jtext_type(S("[]")) == JTEXT_ARRAY, "array");
	T_CHECK(jtext_type(S("\"\"")) == JTEXT_STRING, "string");
	T_CHECK(jtext_type(S("true")) == JTEXT_TRUE, "true");
	T_CHECK(jtext_type(S("false")) == JTEXT_FALSE, "false");
	T_CHECK(jtext_type(S("null")) == JTEXT_NULL, "null");
	T_CHECK(jtext_type(S("-1")) == JTEXT_NUMBER, "-1");
	T_CHECK(jtext_type(S("NaN")) == JTEXT_NUMBER, "NaN");
	T_CHECK(jtext_type(S("Infinity")) == JTEXT_NUMBER, "Infinity");
	T_CHECK(jtext_type(S("-Infinity")) == JTEXT_NUMBER, "-Infinity");
}

struct collect {
	char seen[8][64];
	int n;
	int stop_at;
};

static int collect_cb(struct jtext_span v, void *arg)
{
	struct collect *c = arg;

	if (c->n == c->stop_at)
		return 42;
	if (c->n < 8 && v.len < 64) {
		memcpy(c->seen[c->n], v.p, v.len);
		c->seen[c->n][v.len] = '\0';
	}
	c->n++;
	return 0;
}

static void test_split_values(void)
{
	const char *t = "{\n  \"a\": 1\n}\n{\"b\":[2]}\r\n\n 7 \"s\"\n";
	struct collect c = { .stop_at = -1 };
	size_t pos = 999;

	T_CHECK(jtext_split_values(t, strlen(t), collect_cb, &c, &pos) == 0,
		"split");
	T_CHECK(c.n == 4, "got %d values", c.n);
	T_CHECK(strcmp(c.seen[0], "{\n  \"a\": 1\n}") == 0, "[0] %s", c.seen[0]);
	T_CHECK(strcmp(c.seen[1], "{\"b\":[2]}") == 0, "[1] %s", c.seen[1]);
	T_CHECK(strcmp(c.seen[2], "7") == 0, "[2] %s", c.seen[2]);
	T_CHECK(strcmp(c.seen[3], "\"s\"") == 0, "[3] %s", c.seen[3]);

	c = (struct collect){ .stop_at = 1 };
	T_CHECK(jtext_split_values(t, strlen(t), collect_cb, &c, NULL) == 42,
		"callback's value returned");
	T_CHECK(c.n == 1, "stopped after %d", c.n);

	c = (struct collect){ .stop_at = -1 };
	T_CHECK(jtext_split_values(" \n\t\r\n", 5, collect_cb, &c, &pos) == 0 &&
		c.n == 0, "blank text");
	T_CHECK(jtext_split_values("", 0, collect_cb, &c, &pos) == 0 && c.n == 0,
		"empty text");

	t = "{\"a\":1}\n{\"b\":}\n";
	c = (struct collect){ .stop_at = -1 };
	T_CHECK(jtext_split_values(t, strlen(t), collect_cb, &c, &pos) == -EINVAL,
		"syntax error");
	T_CHECK(c.n == 1, "the good value before the error was delivered");
	T_CHECK(pos == 13, "errpos %zu", pos);

	t = "{}{}";
	T_CHECK(jtext_split_values(t, 4, collect_cb, &c, &pos) == -EINVAL &&
		pos == 2, "touching values: errpos %zu", pos);
	t = "[1,2";
	T_CHECK(jtext_split_values(t, 4, collect_cb, &c, &pos) == -EINVAL &&
		pos == 4, "torn tail: errpos %zu", pos);
}

struct members {
	char keys[8][32];
	char vals[8][32];
	int n;
};

static int members_cb(struct jtext_span k, struct jtext_span v, void *arg)
{
	struct members *m = arg;

	if (m->n < 8 && k.len < 32 && v.len < 32) {
		memcpy(m->keys[m->n], k.p, k.len);
		m->keys[m->n][k.len] = '\0';
		memcpy(m->vals[m->n], v.p, v.len);
		m->vals[m->n][v.len] = '\0';
	}
	m->n++;
	return 0;
}

static int stop_cb(struct jtext_span k, struct jtext_span v, void *arg)
{
	(void)k;
	(void)v;
	(void)arg;
	return -ENOSPC;
}

static void test_members(void)
{
	const char *o = "{ \"a\" : 1E-5 , \"b\\n\":{\"c\":[1, 2]},\"a\":\"x y\" }";
	struct members m = { 0 };

	T_CHECK(jtext_members(S(o), members_cb, &m) == 0, "members");
	T_CHECK(m.n == 3, "%d members", m.n);
	T_CHECK(strcmp(m.keys[0], "\"a\"") == 0 && strcmp(m.vals[0], "1E-5") == 0,
		"first %s=%s", m.keys[0], m.vals[0]);
	T_CHECK(strcmp(m.keys[1], "\"b\\n\"") == 0 &&
		strcmp(m.vals[1], "{\"c\":[1, 2]}") == 0, "second %s=%s",
		m.keys[1], m.vals[1]);
	T_CHECK(strcmp(m.vals[2], "\"x y\"") == 0, "third %s", m.vals[2]);
	m.n = 0;
	T_CHECK(jtext_members(S("{}"), members_cb, &m) == 0 && m.n == 0, "empty");
	T_CHECK(jtext_members(S("[1]"), members_cb, &m) == -EINVAL, "array");
	T_CHECK(jtext_members(S("\"{}\""), members_cb, &m) == -EINVAL, "string");
	T_CHECK(jtext_members(S("{\"a\":}"), members_cb, &m) == -EINVAL, "syntax");
	T_CHECK(jtext_members(S("{\"a\":1} x"), members_cb, &m) == -EINVAL,
		"trailing garbage");
	T_CHECK(jtext_members(S("{\"a\":1"), members_cb, &m) == -EINVAL, "torn");
	T_CHECK(jtext_members(S("{\"a\":1}"), stop_cb, NULL) == -ENOSPC,
		"callback's value returned");
}

static void test_get_and_key_is(void)
{
	const char *o = "{\"a\":1,\"b\":{\"a\":5},\"\\u0061\":2,\"c\\\"\":3,\"\":4}";
	struct jtext_span v;
	bool found;

	T_CHECK(jtext_get(S(o), "a", &v, &found) == 0 && found &&
		v.len == 1 && v.p[0] == '2', "last duplicate wins, escaped key");
	T_CHECK(jtext_get(S(o), "c\"", &v, &found) == 0 && found && v.p[0] == '3',
		"key with an escaped quote");
	T_CHECK(jtext_get(S(o), "", &v, &found) == 0 && found && v.p[0] == '4',
		"empty key");
	T_CHECK(jtext_get(S(o), "zz", &v, &found) == 0 && !found, "absent");
	T_CHECK(jtext_get(S(o), "b", &v, &found) == 0 && found &&
		jtext_type(v) == JTEXT_OBJECT, "nested object value");
	T_CHECK(jtext_get(S("[1]"), "a", &v, &found) == -EINVAL && !found,
		"not an object");
	T_CHECK(jtext_key_is(S("\"iteration\""), "iteration"), "plain");
	T_CHECK(!jtext_key_is(S("\"iteration\""), "iteration_num"), "prefix");
	T_CHECK(!jtext_key_is(S("\"iteration_num\""), "iteration"), "longer");
	T_CHECK(jtext_key_is(S("\"iter\\u0061tion\""), "iteration"), "escaped");
	T_CHECK(jtext_key_is(S("\"\\u4e2d\""), "\xe4\xb8\xad"), "CJK escape");
	T_CHECK(!jtext_key_is(S("\"a\\u0000\""), "a"), "embedded NUL differs");
}

static void check_decode(const char *in, const char *want, size_t wlen)
{
	struct buf b = BUF_INIT;
	int r = jtext_string_decode(S(in), &b);

	T_CHECK(r == 0, "decode(%s) = %d", in, r);
	T_CHECK_MEM(b.data, b.len, want, wlen, in);
	buf_free(&b);
}

static void test_string_decode(void)
{
	static const char ctl[] =
		"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
		"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f";
	struct buf b = BUF_INIT;
	char in[256];
	int c;

	check_decode("\"\"", "", 0);
	check_decode("\"plain \xe4\xb8\xad\"", "plain \xe4\xb8\xad", 9);
	check_decode("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
	strcpy(in, "\"");
	for (c = 0; c < 0x20; c++)
		sprintf(in + strlen(in), "\\u%04x", c);
	strcat(in, "\"");
	check_decode(in, ctl, 32);
	check_decode("\"\\u007f\\u0080\\u07ff\\u0800\\u2028\\uffff\"",
		     "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xe2\x80\xa8\xef\xbf\xbf", 14);
	check_decode("\"\\ud83d\\ude00|\\uD83D\\uDE00|\xf0\x9f\x98\x80\"",
		     "\xf0\x9f\x98\x80|\xf0\x9f\x98\x80|\xf0\x9f\x98\x80", 14);
	check_decode("\"\\ud800\\udc00\\udbff\\udfff\"",
		     "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8);
	/* cJSON stops at NUL; the bytes after it must still come back. */
	check_decode("\"a\\u0000b\\u0000\"", "a\0b\0", 4);
	check_decode("\"\\u0000\"", "", 1);
	check_decode("\"\\n\\u0000\\n\\ud83d\\ude00\\u0000x\"",
		     "\n\0\n\xf0\x9f\x98\x80\0x", 9);
	/* Lone surrogates have no UTF-8 form: U+FFFD. */
	check_decode("\"a\\ud800b\"", "a\xef\xbf\xbd" "b", 5);
	check_decode("\"a\\udc00b\"", "a\xef\xbf\xbd" "b", 5);
	check_decode("\"\\ud800\"", "\xef\xbf\xbd", 3);
	check_decode("\"\\ud800\\u0041\"", "\xef\xbf\xbd" "A", 4);
	check_decode("\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80", 7);
	check_decode("\"\\udc00\\ud800\"", "\xef\xbf\xbd\xef\xbf\xbd", 6);
	check_decode("\"\\\\u0000\"", "\\u0000", 6);
	check_decode("\"\\\\\\u0000\\\\\"", "\\\0\\", 3);

	T_CHECK(jtext_string_decode(S("\"abc"), &b) == -EINVAL, "unterminated");
	T_CHECK(jtext_string_decode(S("abc"), &b) == -EINVAL, "no quotes");
	T_CHECK(jtext_string_decode(S("\"a\"b\""), &b) == -EINVAL, "two strings");
	T_CHECK(jtext_string_decode(S("\"\\x\""), &b) == -EINVAL, "bad escape");
	T_CHECK(jtext_string_decode(S("\"\\u00g0\""), &b) == -EINVAL, "bad hex");
	T_CHECK(jtext_string_decode(S(""), &b) == -EINVAL, "empty span");
	T_CHECK(jtext_string_decode(S("12"), &b) == -EINVAL, "number");
	T_CHECK(b.len == 0, "nothing appended on errors");
	buf_append(&b, "keep", 4);
	check_decode("\"x\"", "x", 1);
	T_CHECK(jtext_string_decode(S("\"\\n\""), &b) == 0 && b.len == 5 &&
		memcmp(b.data, "keep\n", 5) == 0, "decode appends");
	buf_free(&b);
}

static void test_string_encode(void)
{
	struct buf b = BUF_INIT, want = BUF_INIT;
	char all[128];
	int c;

	for (c = 0; c < 128; c++)
		all[c] = (char)c;
	T_CHECK(jtext_string_encode(all, sizeof(all), &b) == 0, "encode");
	buf_puts(&want, "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006"
		 "\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012"
		 "\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b"
		 "\\u001c\\u001d\\u001e\\u001f !\\\"#$%&'()*+,-./0123456789:;<=>?@"
		 "ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
		 "\x7f\"");
	T_CHECK_MEM(b.data, b.len, want.data, want.len, "ASCII");
	buf_reset(&b);
	T_CHECK(jtext_string_encode("\xe4\xb8\xad\xf0\x9f\x98\x80\xe2\x80\xa8\xff",
				    11, &b) == 0, "encode utf8");
	T_CHECK_MEM(b.data, b.len,
		    "\"\xe4\xb8\xad\xf0\x9f\x98\x80\xe2\x80\xa8\xff\"", 13,
		    "non-ASCII raw");
	buf_reset(&b);
	T_CHECK(jtext_string_encode("", 0, &b) == 0, "encode empty");
	T_CHECK_MEM(b.data, b.len, "\"\"", 2, "empty string");
	buf_free(&b);
	buf_free(&want);
}

static void check_compact(const char *in, const char *want)
{
	struct buf b = BUF_INIT;
	int r = jtext_compact(S(in), &b);

	T_CHECK(r == 0, "compact(%s) = %d", in, r);
	T_CHECK_MEM(b.data, b.len, want, strlen(want), in);
	buf_free(&b);
}

static void test_compact(void)
{
	struct buf b = BUF_INIT;

	check_compact(" {\n  \"a b\" : [ 1E-5 ,\tNaN , -Infinity ] ,\r\n"
		      "  \"s\": \" x \\\" \\u0041 \\n \" , \"e\" : { } }\n",
		      "{\"a b\":[1E-5,NaN,-Infinity],\"s\":\" x \\\" \\u0041 \\n \","
		      "\"e\":{}}");
	check_compact("{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}");
	check_compact("  12345678901234567890  ", "12345678901234567890");
	check_compact("\"\"", "\"\"");
	check_compact("[ true , false , null ]", "[true,false,null]");
	T_CHECK(jtext_compact(S("{\"a\":}"), &b) == -EINVAL && b.len == 0,
		"invalid");
	buf_free(&b);
}

static const struct {
	const char *in;
	const char *want;
} pretty_cases[] = {
	{ "{\"code\":\"def f():\\n\\treturn \\\"\\u4e2d\\u6587\\\"\\n\",\"s\":\"\\ud83d\\ude00 and \xf0\x9f\x98\x80 and \xe6\x94\xb6\xe7\x9b\xa4\xe5\x83\xb9\"}",
	  "{\n  \"code\": \"def f():\\n\\treturn \\\"\xe4\xb8\xad\xe6\x96\x87\\\"\\n\",\n  \"s\": \"\xf0\x9f\x98\x80 and \xf0\x9f\x98\x80 and \xe6\x94\xb6\xe7\x9b\xa4\xe5\x83\xb9\"\n}\n" },
	{ "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	  "\"\\\"\\\\/\\b\\f\\n\\r\\t\"\n" },
	{ "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\u0008\\u0009\\u000a\\u000b\\u000c\\u000d\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\u0020\"",
	  "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f \"\n" },
	{ "\"\\u007f\\u0080\\u00e9\\u2028\\u2029\\ufeff\\uFFFF\\uD800\\uDC00\\uDBFF\\uDFFF\"",
	  "\"\x7f\xc2\x80\xc3\xa9\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"\n" },
	{ "[NaN,Infinity,-Infinity,12345678901234567890,-12345678901234567890,0.5,-0.0,0,1.5e+300]",
	  "[\n  NaN,\n  Infinity,\n  -Infinity,\n  12345678901234567890,\n  -12345678901234567890,\n  0.5,\n  -0.0,\n  0,\n  1.5e+300\n]\n" },
	{ "{\"metrics\":{\"a\":{\"b\":[1,[2,[]],{}]},\"c\":null,\"d\":[{}],\"e\":[[]]}}",
	  "{\n  \"metrics\": {\n    \"a\": {\n      \"b\": [\n        1,\n        [\n          2,\n          []\n        ],\n        {}\n      ]\n    },\n    \"c\": null,\n    \"d\": [\n      {}\n    ],\n    \"e\": [\n      []\n    ]\n  }\n}\n" },
	{ "{\"a\":{\"x\":1,\"x\":2},\"b\":true,\"a\":[1]}",
	  "{\n  \"a\": [\n    1\n  ],\n  \"b\": true\n}\n" },
	{ "{\"a\":1,\"\\u0061\":2,\"b\\n\":3,\"\\u00e9\":4,\"\xc3\xa9\":5}",
	  "{\n  \"a\": 2,\n  \"b\\n\": 3,\n  \"\xc3\xa9\": 5\n}\n" },
	{ "\"top\"", "\"top\"\n" },
	{ "42", "42\n" },
	{ "true", "true\n" },
	{ "null", "null\n" },
	{ "{}", "{}\n" },
	{ "[]", "[]\n" },
	{ " { \"a\" : [ 1 , 2 ] , \"b\" : { } } ",
	  "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}\n" },
	{ "{\"k\\\"ey\":\"v\\\\al\",\"\":\"\"}",
	  "{\n  \"k\\\"ey\": \"v\\\\al\",\n  \"\": \"\"\n}\n" },
};

static void check_pretty(const char *in, size_t inlen, const char *want,
			 size_t wlen)
{
	struct buf b = BUF_INIT;
	int r = jtext_pretty(SN(in, inlen), &b);

	T_CHECK(r == 0, "pretty(%.*s) = %d", (int)inlen, in, r);
	T_CHECK_MEM(b.data, b.len, want, wlen, in);
	buf_free(&b);
}

static void test_pretty_like_python(void)
{
	size_t i;

	for (i = 0; i < sizeof(pretty_cases) / sizeof(pretty_cases[0]); i++)
		check_pretty(pretty_cases[i].in, strlen(pretty_cases[i].in),
			     pretty_cases[i].want, strlen(pretty_cases[i].want));
}

/* Where Python would reformat a number, the text is kept instead. */
static void test_pretty_keeps_number_text(void)
{
	const char *in = "{\"a\":1E-5,\"b\":[1.0E+2,-0,0.10,1e5,"
			 "123456789012345678901234567890.5e-3],\"c\":-0.0}";
	const char *want = "{\n  \"a\": 1E-5,\n  \"b\": [\n    1.0E+2,\n    -0,\n"
			   "    0.10,\n    1e5,\n"
			   "    123456789012345678901234567890.5e-3\n  ],\n"
			   "  \"c\": -0.0\n}\n";
	struct buf b = BUF_INIT;

	check_pretty(in, strlen(in), want, strlen(want));
	T_CHECK(jtext_pretty(S("[1,]"), &b) == -EINVAL && b.len == 0, "invalid");
	buf_free(&b);
}

static void test_pretty_embedded_nul_and_lone_surrogate(void)
{
	const char *in = "{\"a\\u0000b\":\"x\\u0000y\\ud800\"}";
	const char *want = "{\n  \"a\\u0000b\": \"x\\u0000y\xef\xbf\xbd\"\n}\n";

	check_pretty(in, strlen(in), want, strlen(want));
}

/* A generated corpus: random values, each written twice, with random
 * whitespace between tokens and without.  compact(spaced) must give the
 * tight text, and pretty must match python3. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

static void emit(struct buf *sp, struct buf *tight, const char *tok)
{
	static const char *const ws[] = { "", "", " ", "\t", "\r", "  \t " };

	buf_puts(sp, ws[rnd(6)]);
	buf_puts(sp, tok);
	buf_puts(sp, ws[rnd(6)]);
	buf_puts(tight, tok);
}

static void gen_string(struct buf *sp, struct buf *tight, bool key)
{
	static const char *const piece[] = {
		"a", "Z", " ", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80",
		"\\n", "\\t", "\\r", "\\b", "\\f", "\\/", "\\\"", "\\\\",
		"\\u0000", "\\u001f", "\\u0007", "\\u007f", "\\u2028", "\\u00e9",
		"\\ud83d\\ude00", "\\uD834\\uDD1E", "\x7f", "\xe2\x80\xa8", "'",
	};
	struct buf s = BUF_INIT;
	unsigned n = key ? rnd(3) : rnd(12), i;

	buf_putc(&s, '"');
	for (i = 0; i < n; i++)
		buf_puts(&s, piece[rnd(key ? 8 : sizeof(piece) / sizeof(piece[0]))]);
	buf_putc(&s, '"');
	emit(sp, tight, s.data);
	buf_free(&s);
}

static void gen_value(struct buf *sp, struct buf *tight, int depth)
{
	static const char *const num[] = {
		"0", "-1", "42", "12345678901234567890", "-98765432109876543210",
		"0.5", "-0.0", "3.14", "1e+300", "2.5e-10", "NaN", "Infinity",
		"-Infinity", "true", "false", "null",
	};
	unsigned kind = rnd(depth > 4 ? 3 : 5), n, i;

	switch (kind) {
	case 0:
	case 1:
		emit(sp, tight, num[rnd(sizeof(num) / sizeof(num[0]))]);
		break;
	case 2:
		gen_string(sp, tight, false);
		break;
	case 3:
		emit(sp, tight, "[");
		n = rnd(5);
		for (i = 0; i < n; i++) {
			if (i)
				emit(sp, tight, ",");
			gen_value(sp, tight, depth + 1);
		}
		emit(sp, tight, "]");
		break;
	default:
		emit(sp, tight, "{");
		n = rnd(6);
		for (i = 0; i < n; i++) {
			if (i)
				emit(sp, tight, ",");
			gen_string(sp, tight, true);
			emit(sp, tight, ":");
			gen_value(sp, tight, depth + 1);
		}
		emit(sp, tight, "}");
	}
}

static const char pretty_py[] =
	"import json, sys\n"
	"src, out = sys.argv[1], sys.argv[2]\n"
	"with open(src, 'rb') as f:\n"
	"    lines = f.read().split(b'\\n')[:-1]\n"
	"for i, l in enumerate(lines):\n"
	"    v = json.loads(l.decode('utf-8'))\n"
	"    s = json.dumps(v, indent=2, ensure_ascii=False) + '\\n'\n"
	"    with open('%s/%d' % (out, i), 'wb') as f:\n"
	"        f.write(s.encode('utf-8'))\n";

static bool have_python(void)
{
	return system("python3 -c pass >/dev/null 2>&1") == 0;
}

static void test_corpus_compact_and_python(void)
{
	enum { N = 600 };
	struct buf sp = BUF_INIT, tight = BUF_INIT, file = BUF_INIT;
	struct buf got = BUF_INIT;
	size_t *off = malloc(sizeof(size_t) * (N + 1)), i, wlen;
	char *script = t_path("pretty.py"), *src = t_path("corpus.jsonl");
	char *outdir = t_path("pretty-out"), cmd[1024], name[32], *p, *want;
	int r;

	for (i = 0; i < N; i++) {
		buf_reset(&sp);
		buf_reset(&tight);
		gen_value(&sp, &tight, 0);
		buf_reset(&got);
		r = jtext_compact(SN(sp.data, sp.len), &got);
		T_CHECK(r == 0, "compact %zu: %d", i, r);
		T_CHECK_MEM(got.data, got.len, tight.data, tight.len, sp.data);
		off[i] = file.len;
		buf_append(&file, tight.data, tight.len);
		buf_putc(&file, '\n');
	}
	off[N] = file.len;
	if (!have_python()) {
		printf("# python3 not found: pretty corpus not cross-checked\n");
		goto out;
	}
	t_write_file(script, pretty_py, strlen(pretty_py));
	t_write_file(src, file.data, file.len);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && python3 '%s' '%s' '%s'",
		 outdir, script, src, outdir);
	T_CHECK(system(cmd) == 0, "python3 failed: %s", cmd);
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "pretty-out/%zu", i);
		p = t_path(name);
		want = t_read_file(p, &wlen);
		T_CHECK(want != NULL, "python gave no %s", p);
		buf_reset(&got);
		r = jtext_pretty(SN(file.data + off[i], off[i + 1] - off[i] - 1), &got);
		T_CHECK(r == 0, "pretty %zu: %d", i, r);
		if (want)
			T_CHECK_MEM(got.data, got.len, want, wlen,
				    "pretty vs python");
		free(want);
		free(p);
	}
out:
	free(off);
	free(script);
	free(src);
	free(outdir);
	buf_free(&sp);
	buf_free(&tight);
	buf_free(&file);
	buf_free(&got);
}

/* Every prefix and many one-byte corruptions of valid documents, each in a
 * buffer of exactly its size (so the sanitizer build sees any over-read):
 * nothing crashes, and whatever is accepted is consistent. */
static void check_consistent(const char *src, size_t n)
{
	char *p = malloc(n ? n : 1);
	struct buf a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	struct jtext_span v;
	int r;

	if (!p)
		abort();
	memcpy(p, src, n);
	r = jtext_parse_value(p, n, &v);
	T_CHECK(jtext_pretty(SN(p, n), &a) == r, "pretty disagrees with parse");
	T_CHECK(jtext_compact(SN(p, n), &b) == r, "compact disagrees with parse");
	if (r == 0) {
		buf_reset(&a);
		T_CHECK(jtext_pretty(SN(b.data, b.len), &c) == 0 &&
			jtext_pretty(v, &a) == 0, "pretty of compact");
		T_CHECK_MEM(a.data, a.len, c.data, c.len, "pretty(compact(x))");
		if (jtext_type(v) == JTEXT_STRING) {
			buf_reset(&a);
			T_CHECK(jtext_string_decode(v, &a) == 0, "decode");
		}
	} else if (n && p[0] == '"') {
		T_CHECK(jtext_string_decode(SN(p, n), &a) == -EINVAL,
			"decode accepted a bad string");
	}
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
	free(p);
}

static void test_truncated_and_corrupted(void)
{
	static const char *const docs[] = {
		"{\"iteration_num\": 3, \"strategy_code\": \"def f():\\n\\treturn "
		"'\xe4\xb8\xad\\u4e2d\\ud83d\\ude00'\\n\", \"metrics\": {\"s\": "
		"NaN, \"t\": -Infinity, \"u\": 1E-5, \"v\": [true, false, null, "
		"-0.0, 12345678901234567890]}, \"e\": {}, \"f\": []}",
		"\"\\u0000\\ud800\\udc00\\\\\\\"\\/\\b\\f\\n\\r\\t\"",
		"[[[], {}], {\"a\": [1, 2.5e+3]}, \"x\"]",
	};
	static const char subst[] = "\"\\{}[],: 0-eE.uNI\x01\x7f\xff";
	size_t d, i, j, n;
	char buf[512];

	for (d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		n = strlen(docs[d]);
		for (i = 0; i <= n; i++)
			check_consistent(docs[d], i);
		for (i = 0; i < n; i++) {
			for (j = 0; j < sizeof(subst) - 1; j++) {
				memcpy(buf, docs[d], n);
				buf[i] = subst[j];
				check_consistent(buf, n);
			}
		}
	}
}

/* jtext_number against strtod, bit for bit. */
static void check_number(const char *text)
{
	double want = strtod(text, NULL), got = -1;
	int r = jtext_number(S(text), &got);

	T_CHECK(r == 0 && memcmp(&want, &got, sizeof(want)) == 0,
		"%s: %d, %.17g, want %.17g", text, r, got, want);
}

static void test_numbers_as_strtod_reads_them(void)
{
	static const char *const fixed[] = {
		"0", "-0", "-0.0", "0e5", "1", "-1", "0.1", "1.5e-05", "1E+2",
		"1.2244596326101669", "0.11975869848998905",
		"-0.2672621973963788", "4809", "1e27", "1e-27", "1e28",
		"1e-28", "123456789012345678e-5", "9999999999999999999",
		"18446744073709551615", "12345678901234567890",
		/* Exactly halfway between two doubles: ties to even. */
		"9007199254740993", "9007199254740995", "9007199254740993e0",
		"900719925474099.3e1", "4503599627370497.5",
		"1e400", "-1e400", "5e-324", "2.2250738585072014e-308",
		"1.7976931348623157e308", "NaN", "Infinity", "-Infinity",
		"0.000000000000000000000000000000000000000000000000000000000000"
		"000000000000001",
	};
	char text[64];
	size_t i;
	double d;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (strcmp(fixed[i], "NaN") == 0) {
			T_CHECK(jtext_number(S(fixed[i]), &d) == 0 &&
				d != d, "NaN");
			continue;
		}
		check_number(fixed[i]);
	}
	T_CHECK(jtext_number(S("\"1\""), &d) == -EINVAL, "a string");
	srand(7);
	for (i = 0; i < 300000; i++) {
		uint64_t m = (uint64_t)rand() << 33 ^ (uint64_t)rand() << 2 ^
			     (uint64_t)rand();
		int e = rand() % 70 - 35;

		switch (i % 5) {
		case 0: /* Python's repr of a double */
			snprintf(text, sizeof(text), "%.17g",
				 (double)m / 1e19 * (rand() % 2 ? 1 : -1));
			break;
		case 1: /* digits and an exponent */
			snprintf(text, sizeof(text), "%" PRIu64 "e%d",
				 (uint64_t)(m % 10000000000000000000ULL), e);
			break;
		case 2: /* a short decimal */
			snprintf(text, sizeof(text), "%.*f", rand() % 12,
				 (double)(m % 100000000) / 1000.0);
			break;
		case 3: /* a 2^53..2^64 integer, many of them halfway */
			snprintf(text, sizeof(text), "%" PRIu64,
				 (uint64_t)((m | 1ULL << 53) >> (rand() % 11)));
			break;
		default: /* a double's halfway point, when it is short */
			snprintf(text, sizeof(text), "%.17ge%d",
				 (double)(m >> 11) + 0.5, e % 20);
			break;
		}
		check_number(text);
	}
}

int main(void)
{
	T_RUN(test_parse_accepts);
	T_RUN(test_parse_rejects);
	T_RUN(test_raw_control_chars_rejected);
	T_RUN(test_depth_limit);
	T_RUN(test_string_scan_all_offsets);
	T_RUN(test_escape_runs_all_offsets);
	T_RUN(test_type);
	T_RUN(test_split_values);
	T_RUN(test_members);
	T_RUN(test_get_and_key_is);
	T_RUN(test_string_decode);
	T_RUN(test_string_encode);
	T_RUN(test_compact);
	T_RUN(test_pretty_like_python);
	T_RUN(test_pretty_keeps_number_text);
	T_RUN(test_pretty_embedded_nul_and_lone_surrogate);
	T_RUN(test_corpus_compact_and_python);
	T_RUN(test_truncated_and_corrupted);
	T_RUN(test_numbers_as_strtod_reads_them);
	return t_done();
}
