/* test_views.c - the derived views by-metric and failed, against an
 * independent computation (tests/views_model.py, Python's json module) on
 * the real histories and on generated ones, after open and after refreshes
 * that append and replace records. */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"

static const char *model(void)
{
	static char path[4096];

	if (!path[0])
		snprintf(path, sizeof(path), "%s/views_model.py", TESTS_DIR);
	return path;
}

static void run(const char *cmd)
{
	T_CHECK(system(cmd) == 0, "%s", cmd);
}

static void put(struct buf *b, const char *s)
{
	if (buf_append(b, s, strlen(s)) < 0)
		abort();
}

static void put_iter(struct buf *b, int64_t it)
{
	char t[32];

	snprintf(t, sizeof(t), " %" PRId64, it);
	put(b, t);
}

/* The views as views_model.py prints them, read through the API in small
 * pages (so that paging is exercised too). */
static void dump(struct store *s, struct buf *out)
{
	char *names[7];
	int64_t it[100];
	size_t start = 0, n, i, j, rs, rn, total;
	bool failed;

	for (;;) {
		T_CHECK(store_metric_names(s, start, names, 7, &n) == 0,
			"store_metric_names");
		for (i = 0; i < n; i++) {
			put(out, "metric ");
			for (j = 0; names[i][j]; j++) {
				char h[3];

				snprintf(h, sizeof(h), "%02x",
					 (unsigned char)names[i][j]);
				put(out, h);
			}
			rs = 0;
			do {
				T_CHECK(store_metric_rank(s, names[i], rs, it,
							  100, &rn,
							  &total) == 0,
					"store_metric_rank %s", names[i]);
				for (j = 0; j < rn; j++)
					put_iter(out, it[j]);
				rs += rn;
			} while (rn == 100);
			T_CHECK(rs == total, "%s: %zu ranked, total %zu",
				names[i], rs, total);
			put(out, "\n");
			free(names[i]);
		}
		start += n;
		if (n < 7)
			break;
	}
	put(out, "failed");
	start = 0;
	do {
		T_CHECK(store_failed(s, start, it, 100, &n) == 0,
			"store_failed");
		for (i = 0; i < n; i++) {
			put_iter(out, it[i]);
			T_CHECK(store_is_failed(s, it[i], &failed) == 0 &&
				failed, "store_is_failed %" PRId64, it[i]);
		}
		start += n;
	} while (n == 100);
	put(out, "\n");
}

/* The views of `s` must be what the model computes from `path`. */
static void check(struct store *s, const char *path, const char *what)
{
	struct buf got = BUF_INIT, want = BUF_INIT;
	char cmd[8192], line[4096];
	FILE *py;
	size_t n;

	snprintf(cmd, sizeof(cmd), "python3 '%s' show '%s'", model(), path);
	py = popen(cmd, "r");
	T_CHECK(py != NULL, "popen");
	while (py && (n = fread(line, 1, sizeof(line), py)) > 0)
		if (buf_append(&want, line, n) < 0)
			abort();
	T_CHECK(py && pclose(py) == 0, "%s", cmd);
	dump(s, &got);
	if (!T_CHECK_MEM(got.data, got.len, want.data, want.len, what))
		fprintf(stderr, "# %s\n", what);
	buf_free(&got);
	buf_free(&want);
}

/* store_is_failed answers for every shown iteration, and a missing one is
 * -ENOENT (dump checked that the failed ones say so). */
static void check_not_failed(struct store *s)
{
	int64_t it[256], hi;
	size_t start = 0, n, i;
	bool failed, found;
	int r;

	do {
		T_CHECK(store_list(s, start, it, 256, &n) == 0, "store_list");
		for (i = 0; i < n; i++) {
			r = store_is_failed(s, it[i], &failed);
			T_CHECK(r == 0, "store_is_failed %" PRId64, it[i]);
		}
		start += n;
	} while (n == 256);
	T_CHECK(store_highest(s, &hi, &found) == 0, "store_highest");
	if (found)
		T_CHECK(store_is_failed(s, hi + 1, &failed) == -ENOENT,
			"store_is_failed of a missing iteration");
}

static void test_real_histories(void)
{
	static const char *files[] = {
		"llm_only_50.jsonl", "unified_factor_graph.jsonl",
		"json_mode_test.jsonl", "migrated_no_code.jsonl",
	};
	size_t f;

	for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		char *p = t_real_data(files[f]);
		struct store *s;

		if (!p) {
			printf("# skip %s: ITERFS_REAL_DATA not present\n",
			       files[f]);
			continue;
		}
		s = t_store_open(p, STORE_TIMES | STORE_VALIDATE);
		check(s, p, files[f]);
		check_not_failed(s);
		store_close(s);
		free(p);
	}
}

static void test_unknown_metric_is_enoent(void)
{
	char *p = t_path("unknown.jsonl");
	struct store *s;
	int64_t it[4];
	size_t n, total;

	t_write_file(p, "{\"iteration\": 1, \"metrics\": {\"a\": 1}}\n", 38);
	s = t_store_open(p, 0);
	T_CHECK(store_metric_rank(s, "b", 0, it, 4, &n, &total) == -ENOENT,
		"unknown metric");
	T_CHECK(store_metric_rank(s, "a", 0, it, 4, &n, &total) == 0 &&
		n == 1 && total == 1 && it[0] == 1, "known metric");
	store_close(s);
	free(p);
}

/* 10,000 generated records; then refreshes that append (new numbers and
 * replacements, small and large batches) and a replace by another file,
 * each checked against the model and against a fresh open. */
static void test_generated_history_and_refreshes(void)
{
	char *p = t_path("gen.jsonl"), *q = t_path("gen2.jsonl");
	char cmd[8192];
	struct store *s, *fresh;
	int round;
	struct store_stats st;

	snprintf(cmd, sizeof(cmd), "python3 '%s' gen '%s' 10000 7", model(),
		 p);
	run(cmd);
	s = t_store_open(p, STORE_TIMES);
	check(s, p, "generated, after open");
	check_not_failed(s);
	for (round = 0; round < 6; round++) {
		/* 1 and 3 records patch, 300 merge. */
		int n = round % 3 == 0 ? 1 : round % 3 == 1 ? 3 : 300;

		snprintf(cmd, sizeof(cmd), "python3 '%s' append '%s' %d %d",
			 model(), p, n, 100 + round);
		run(cmd);
		T_CHECK(store_refresh(s) == 0, "refresh");
		check(s, p, "generated, after an append");
		T_CHECK(store_stats(s, &st) == 0 && st.index_bytes > 0,
			"stats");
	}
	fresh = t_store_open(p, 0);
	check(fresh, p, "generated, a fresh open");
	store_close(fresh);
	/* Another file with some records changed and some gone. */
	snprintf(cmd, sizeof(cmd),
		 "python3 -c \"import sys; L=open(sys.argv[1]).readlines(); "
		 "open(sys.argv[2],'w').writelines(L[:5000]+L[5100:])\" "
		 "'%s' '%s' && python3 '%s' append '%s' 50 9 && mv '%s' '%s'",
		 p, q, model(), q, q, p);
	run(cmd);
	T_CHECK(store_refresh(s) == 0, "refresh after replace");
	check(s, p, "generated, after a replace");
	store_close(s);
	free(p);
	free(q);
}

/* Values that only an exact ordering gets right, in records written out
 * of number order: every sign and exponent (the ranking sorts by the bits
 * of the double), -0 tied with 0 and with what underflows to zero, the
 * infinities, huge integers, NaN, booleans, strings; duplicate keys in
 * plain and escaped spelling, names that are no metric; failed runs; lines
 * the index shows without validating that are not JSON (under numbers of
 * their own: the index and the model differ on which record such a line
 * replaces, which is not the views' business).  Then a refresh
 * that adds more of the same to the built rankings. */
static void append_edge_records(const char *path, int lo, int hi,
				unsigned seed)
{
	static const char *const special[] = {
		"0", "-0", "-0.0", "0.0", "1e-400", "-1e-400", "Infinity",
		"-Infinity", "NaN", "true", "false", "\"7\"", "null",
		"12345678901234567890", "-12345678901234567890", "1E-5",
		"5e-324", "-5e-324", "1.7976931348623157e308", "[1]", "{}",
	};
	struct buf b = BUF_INIT;
	char t[512];
	unsigned x = seed;
	int i, k;
	FILE *f;

	for (i = lo; i < hi; i++) {
		/* Numbers in a scattered order, some written twice. */
		int it = (i * 7919) % (hi - lo) + lo;

		x = x * 1103515245u + 12345u;
		k = (int)(x >> 16) % 64;
		/* A line that is not JSON replaces nothing: the model has
		 * no record for it, the index does, unranked. */
		if (k == 5)
			it += 100000;
		snprintf(t, sizeof(t),
			 "{\"iteration\": %d, \"code\": \"c%s\", \"metrics\": "
			 "{\"a\": %s, \"b\": %s%de%d, \"c\": %d, "
			 "\"\\u0061\": %s, \"d\": 1, \"d\": %s, "
			 "\"e\\u0000\": 1, \"\": %d, \"f\\u00e9\": %d}%s}\n",
			 it, k == 5 ? "\\x bad escape" : "",
			 special[(x >> 8) % 21], (x & 1) ? "-" : "",
			 (int)(x >> 20) % 1000, (int)(x >> 12) % 617 - 308,
			 (int)(x >> 24) % 5,
			 (x & 2) ? special[(x >> 4) % 21] : "3.5",
			 special[(x >> 10) % 21], k % 3, -k,
			 k == 7 ? ", \"success\": false" :
			 k == 9 ? ", \"execution_result\": {\"success\": false}" :
			 k == 11 ? ", \"success\": null" : "");
		if (buf_append(&b, t, strlen(t)) < 0)
			abort();
	}
	f = fopen(path, "a");
	T_CHECK(f && fwrite(b.data, 1, b.len, f) == b.len && fclose(f) == 0,
		"append %s", path);
	buf_free(&b);
}

static void test_edge_values_in_any_order(void)
{
	char *p = t_path("edge.jsonl");
	struct store *s;

	t_write_file(p, "", 0);
	append_edge_records(p, 0, 3000, 1);
	append_edge_records(p, 2000, 2500, 2);
	s = t_store_open(p, 0);
	check(s, p, "edge values, after open");
	append_edge_records(p, 2900, 3400, 3);
	T_CHECK(store_refresh(s) == 0, "refresh");
	check(s, p, "edge values, after a refresh");
	store_close(s);
	free(p);
}

/* The memory the views hold per record, printed for the report (not a
 * threshold): by-metric is 16 bytes per ranked (record, metric). */
static void test_views_memory_is_reported(void)
{
	char *p = t_path("mem.jsonl");
	char cmd[8192];
	struct store *s;
	struct store_stats a, b;
	size_t n;
	int64_t it[1];

	snprintf(cmd, sizeof(cmd), "python3 '%s' gen '%s' 10000 3", model(),
		 p);
	run(cmd);
	s = t_store_open(p, 0);
	T_CHECK(store_stats(s, &a) == 0, "stats");
	T_CHECK(store_failed(s, 0, it, 1, &n) == 0, "failed");
	{
		char *names[1];

		T_CHECK(store_metric_names(s, 0, names, 1, &n) == 0 && n == 1,
			"names");
		if (n == 1)
			free(names[0]);
	}
	T_CHECK(store_stats(s, &b) == 0, "stats");
	T_CHECK(b.index_bytes > a.index_bytes, "views counted");
	printf("# index %.1f bytes/record, with by-metric and failed %.1f\n",
	       (double)a.index_bytes / (double)a.iterations,
	       (double)b.index_bytes / (double)b.iterations);
	store_close(s);
	free(p);
}

int main(void)
{
	T_RUN(test_real_histories);
	T_RUN(test_unknown_metric_is_enoent);
	T_RUN(test_generated_history_and_refreshes);
	T_RUN(test_edge_values_in_any_order);
	T_RUN(test_views_memory_is_reported);
	return t_done();
}
