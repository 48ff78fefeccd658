/* Unit tests for core/record.c: aliases, type rules and the views. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "record.h"

static void test_iteration_basic(void)
{
	const char *l1 = "{\"iteration_num\": 7, \"x\": 1}";
	const char *l2 = "{\"x\": 1, \"iteration\": 12}\r";
	int64_t n = -1;
	bool found;

	T_CHECK(record_iteration(l1, strlen(l1), &n, &found) == 0 && found &&
		n == 7, "fast path: %lld", (long long)n);
	T_CHECK(record_iteration(l2, strlen(l2), &n, &found) == 0 && found &&
		n == 12, "member scan: %lld", (long long)n);
}

static void test_views_basic(void)
{
	const char *l = "{\"iteration\":1,\"strategy_code\":\"x=1\\n\","
			"\"metrics\":{\"s\":NaN}}";
	struct buf b = BUF_INIT;
	bool present;
	unsigned mask;

	T_CHECK(view_render(l, strlen(l), VIEW_CODE, &b, &present) == 0 &&
		present, "code");
	T_CHECK_MEM(b.data, b.len, "x=1\n", 4, "code.py");
	buf_reset(&b);
	T_CHECK(view_render(l, strlen(l), VIEW_METRICS, &b, &present) == 0 &&
		present, "metrics");
	T_CHECK_MEM(b.data, b.len, "{\n  \"s\": NaN\n}\n", 15, "metrics.json");
	T_CHECK(view_mask(l, strlen(l), &mask) == 0 &&
		mask == (1u << VIEW_CODE | 1u << VIEW_METRICS | 1u << VIEW_RECORD),
		"mask %x", mask);
	buf_free(&b);
}

int main(void)
{
	T_RUN(test_iteration_basic);
	T_RUN(test_views_basic);
	return t_done();
}
