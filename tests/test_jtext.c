/* Unit tests for core/jtext.c: the scanner, the string codec and the
 * compact and pretty forms, byte for byte. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "jtext.h"

static struct jtext_span S(const char *s)
{
	return (struct jtext_span){ s, strlen(s) };
}

static void check_pretty(const char *in, const char *want)
{
	struct buf b = BUF_INIT;
	int r = jtext_pretty(S(in), &b);

	T_CHECK(r == 0, "pretty(%s) = %d", in, r);
	T_CHECK_MEM(b.data, b.len, want, strlen(want), in);
	buf_free(&b);
}

static void test_pretty_basic(void)
{
	check_pretty("{\"a\":1,\"b\":[true,false,null],\"c\":{},\"d\":[]}",
		     "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    false,\n"
		     "    null\n  ],\n  \"c\": {},\n  \"d\": []\n}\n");
	check_pretty(" 1E-5 ", "1E-5\n");
	check_pretty("{\"a\":1,\"b\":2,\"a\":3}", "{\n  \"a\": 3,\n  \"b\": 2\n}\n");
}

static void test_decode_basic(void)
{
	struct buf b = BUF_INIT;

	T_CHECK(jtext_string_decode(S("\"a\\u0000b\\n\\ud83d\\ude00\""), &b) == 0,
		"decode");
	T_CHECK_MEM(b.data, b.len, "a\0b\n\xf0\x9f\x98\x80", 8, "decoded");
	buf_free(&b);
}

int main(void)
{
	T_RUN(test_pretty_basic);
	T_RUN(test_decode_basic);
	return t_done();
}
