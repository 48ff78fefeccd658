/* test_byhash.c - the by-hash view against an oracle: every shown record's
 * code digest is sha256(view_render(VIEW_CODE)) of its line, however the
 * table was made (the fast walk of validated lines or view_render of
 * trusted ones, one thread or several, lines in or out of file order,
 * patched or rebuilt), and what it costs a record. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fault.h"
#include "hash.h"
#include "record.h"
#include "store.h"

/* --- helpers ------------------------------------------------------------- */

static char *fresh_path(const char *name)
{
	static int seq;
	char n[128];

	snprintf(n, sizeof(n), "%s-%d.jsonl", name, ++seq);
	return t_path(n);
}

static void append_bytes(const char *path, const char *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);

	if (fd < 0 || write(fd, s, len) != (ssize_t)len || close(fd) < 0)
		abort();
}

/* What the contract says iteration `it` shows: its line's code.py. */
static void oracle(struct store *s, int64_t it, bool *has,
		   unsigned char d[HASH_LEN])
{
	struct buf line = BUF_INIT, code = BUF_INIT;
	int r;

	if (store_read(s, it, &line) < 0)
		abort();
	r = view_render(line.data, line.len, VIEW_CODE, &code, has);
	if (r == -EINVAL)
		*has = false;
	else if (r < 0)
		abort();
	if (*has && hash_sha256(code.data ? code.data : "", code.len, d) < 0)
		abort();
	buf_free(&line);
	buf_free(&code);
}

/* Every answer of the by-hash view of s agrees with the oracle: each shown
 * iteration's digest, the codes strictly ascending, each code's iterations
 * ascending, its first and count right, and every record with code in
 * exactly one code.  Returns how many records have code. */
static size_t check_codes(struct store *s, const char *what)
{
	struct store_code codes[64], one;
	int64_t list[256], *its = NULL;
	size_t n, i, k, start = 0, with = 0, listed = 0, cap = 0;
	unsigned char prev[HASH_LEN] = { 0 };
	bool ok = true;

	do {
		T_CHECK(store_list(s, start, list, 256, &n) == 0, "list");
		for (i = 0; i < n; i++) {
			unsigned char want[HASH_LEN], got[HASH_LEN];
			bool has_want, has_got = false;

			oracle(s, list[i], &has_want, want);
			with += has_want;
			if (store_code_of(s, list[i], got, &has_got) != 0 ||
			    has_got != has_want ||
			    (has_want && memcmp(got, want, HASH_LEN) != 0)) {
				T_CHECK(false, "%s: code of %" PRId64 ": has "
					"%d, want %d", what, list[i], has_got,
					has_want);
				ok = false;
			}
		}
		start += n;
	} while (n && ok);
	start = 0;
	do {
		T_CHECK(store_codes(s, start, codes, 64, &n) == 0, "codes");
		for (i = 0; i < n && ok; i++) {
			if (start + i > 0 &&
			    memcmp(prev, codes[i].digest, HASH_LEN) >= 0) {
				T_CHECK(false, "%s: code %zu out of order",
					what, start + i);
				ok = false;
			}
			memcpy(prev, codes[i].digest, HASH_LEN);
			if (codes[i].count > cap) {
				cap = codes[i].count;
				its = realloc(its, cap * sizeof(*its));
				if (!its)
					abort();
			}
			T_CHECK(store_code_lookup(s, codes[i].digest, &one, its,
						  cap) == 0 &&
				one.count == codes[i].count &&
				one.first_iter == codes[i].first_iter &&
				its[0] == one.first_iter,
				"%s: lookup of code %zu", what, start + i);
			for (k = 0; k < one.count; k++) {
				unsigned char d[HASH_LEN];
				bool has = false;

				if ((k && its[k - 1] >= its[k]) ||
				    store_code_of(s, its[k], d, &has) != 0 ||
				    !has ||
				    memcmp(d, codes[i].digest, HASH_LEN) != 0) {
					T_CHECK(false, "%s: iteration %zu of "
						"code %zu", what, k,
						start + i);
					ok = false;
					break;
				}
			}
			listed += one.count;
		}
		start += n;
	} while (n && ok);
	T_CHECK(listed == with, "%s: %zu iterations under codes, %zu with code",
		what, listed, with);
	free(its);
	return with;
}

/* --- lines that test the fast walk ---------------------------------------- */

/* One record line for number `it` in shape `k` (of NSHAPES), appended to
 * out with its LF (CRLF for some).  Each shape is a case where the code
 * could be misread: escapes of every kind, alias order, duplicate and
 * escaped keys, wrong types, nested and quoted look-alikes, codes longer
 * than the decoder's stack buffer. */
#define NSHAPES 24
static void shape_line(struct buf *out, int64_t it, unsigned k)
{
	char head[64];
	int r = 0, i;

	snprintf(head, sizeof(head), "{\"iteration\": %" PRId64, it);
	r |= buf_puts(out, head);
	switch (k) {
	case 0:
		r |= buf_printf(out, ", \"code\": \"plain %u\"", (unsigned)it % 7);
		break;
	case 1:
		r |= buf_puts(out, ", \"code\": \"a\\nb\\tc\\\"d\\\\e\\/f\\bg"
				   "\\fh\\ri\"");
		break;
	case 2:
		r |= buf_puts(out, ", \"code\": \"caf\\u00e9\\n\"");
		break;
	case 3:
		r |= buf_puts(out, ", \"code\": \"smile \\ud83d\\ude00\"");
		break;
	case 4:
		r |= buf_puts(out, ", \"code\": \"lone \\ud800 x\\udc00\"");
		break;
	case 5:
		r |= buf_puts(out, ", \"code\": \"nul \\u0000 here\\n\"");
		break;
	case 6:
		r |= buf_puts(out, ", \"strategy_code\": \"s\", "
				   "\"\\u0063ode\": \"escaped key\"");
		break;
	case 7:
		r |= buf_puts(out, ", \"strategy_code\": \"first\", "
				   "\"metrics\": {\"x\": 1}, \"code\": \"later\"");
		break;
	case 8:
		r |= buf_puts(out, ", \"code\": \"one\", \"code\": \"two\"");
		break;
	case 9:
		r |= buf_puts(out, ", \"code\": null, \"strategy_code\": \"x\"");
		break;
	case 10:
		r |= buf_puts(out, ", \"code\": 5, \"strategy_code\": \"x\"");
		break;
	case 11:
		r |= buf_puts(out, ", \"feedback\": \"no code here\"");
		break;
	case 12:
		r |= buf_puts(out, ", \"metrics\": {\"code\": \"nested\"}, "
				   "\"note\": \"\\\"code\\\": \\\"quoted\\\"\"");
		break;
	case 13:
		r |= buf_puts(out, ", \"strategy\\u005fcode\": \"esc alias\"");
		break;
	case 14:
		r |= buf_puts(out, ", \"cade\": \"x\", \"codes\": \"y\", "
				   "\"strategy_code\": \"z\"");
		break;
	case 15:
		r |= buf_puts(out, " ,  \"code\"  :  \"spaced\"  ");
		break;
	case 16:
		r |= buf_puts(out, ", \"code\": \"");
		for (i = 0; i < 1500; i++)
			r |= buf_puts(out, "ab\\n");
		r |= buf_putc(out, '"');
		break;
	case 17:
		r |= buf_puts(out, ", \"code\": \"");
		for (i = 0; i < 1500; i++)
			r |= buf_puts(out, "ab\\u00e9");
		r |= buf_putc(out, '"');
		break;
	case 18:
		r |= buf_puts(out, ", \"code\": \"\"");
		break;
	case 19:
		r |= buf_puts(out, ", \"code\": \"\\\\\"");
		break;
	case 20:
		r |= buf_puts(out, ", \"code\": [\"not\", \"a string\"]");
		break;
	case 21:
		r |= buf_puts(out, ", \"strategy_code\": \"x\", \"code\": "
				   "\"\\u0063\"");
		break;
	case 22:
		r |= buf_puts(out, ", \"code\": \"crlf\"}\r\n");
		if (r)
			abort();
		return;
	default:
		r |= buf_puts(out, ", \"code\": \"r\\u00e9sum\\u00e9 "
				   "\xe2\x9c\x93\"");
		break;
	}
	r |= buf_puts(out, "}\n");
	if (r)
		abort();
}

/* A validated store reads every code through the fast walk, a trusted one
 * through view_render: both agree with the oracle for every shape, with
 * enough records that the build is split over threads and blocks. */
static void test_fast_walk_reads_every_code_as_view_render(void)
{
	char *p = fresh_path("shapes");
	struct buf text = BUF_INIT;
	struct store *v, *t;
	int64_t i;

	/* A BOM before the first record. */
	if (buf_puts(&text, "\xef\xbb\xbf") < 0)
		abort();
	for (i = 0; i < 6000; i++) {
		shape_line(&text, i, (unsigned)i % NSHAPES);
		if (i % 997 == 0 && buf_puts(&text, "garbage line\n\n") < 0)
			abort();
	}
	/* Trusted by a store that does not validate, skipped by one that
	 * does: no code either way. */
	if (buf_puts(&text, "{\"iteration\": 6000, \"code\": \"x\" oops}\n") <
	    0)
		abort();
	t_write_file(p, text.data, text.len);
	v = t_store_open(p, STORE_VALIDATE);
	t = t_store_open(p, 0);
	T_CHECK(check_codes(v, "validated") > 4000, "records with code");
	T_CHECK(check_codes(t, "trusted") > 4000, "records with code");
	store_close(v);
	store_close(t);
	buf_free(&text);
	free(p);
}

/* The quick index trusts every shape's line (each starts {"iteration": N)
 * and a build on it stops at the first code key; the validation finds the
 * lines with two code keys and hands them to the view again, so that once
 * it is done every code agrees with the oracle. */
static void test_lines_with_two_code_keys_are_read_again_after_validation(void)
{
	char *p = fresh_path("lazy-shapes");
	struct buf text = BUF_INIT;
	struct store_code c;
	struct store_stats st;
	struct store *s;
	bool changed = false;
	size_t n;
	int64_t i;

	for (i = 0; i < 6000; i++)
		shape_line(&text, i, (unsigned)i % NSHAPES);
	t_write_file(p, text.data, text.len);
	s = t_store_open(p, STORE_TIMES | STORE_VALIDATE | STORE_LAZY);
	store_stats(s, &st);
	T_CHECK(st.pending, "the open left the validation");
	T_CHECK(store_codes(s, 0, &c, 1, &n) == 0 && n == 1,
		"by-hash built on the quick index");
	T_CHECK(store_validate(s, &changed) == 0, "validation");
	T_CHECK(changed, "the lines with two code keys changed");
	T_CHECK(check_codes(s, "validated after a quick build") > 4000,
		"records with code");
	store_close(s);
	buf_free(&text);
	free(p);
}

/* Lines whose numbers are not in file order, replaced by later lines, far
 * apart, or longer than a read block: each record's code is read from its
 * own shown line. */
static void test_records_out_of_file_order_are_read_from_their_lines(void)
{
	char *p = fresh_path("order");
	struct buf text = BUF_INIT, big = BUF_INIT;
	unsigned seed = 5;
	struct store *s;
	int64_t i;
	int j;

	/* In order, then shuffled, then some numbers again (later wins). */
	for (i = 0; i < 3000; i++)
		shape_line(&text, i, (unsigned)(i % NSHAPES));
	for (i = 0; i < 3000; i++) {
		seed = seed * 1103515245u + 12345u;
		shape_line(&text, 3000 + (int64_t)((seed >> 8) % 3000),
			   (seed >> 20) % NSHAPES);
	}
	for (i = 0; i < 3000; i += 3)
		shape_line(&text, 2999 - i, (unsigned)(i % NSHAPES));
	/* A line of 3 MB between them, and one record past it. */
	if (buf_puts(&big, "{\"iteration\": 7000, \"code\": \"") < 0)
		abort();
	for (j = 0; j < 300000; j++)
		if (buf_puts(&big, "0123456\\n") < 0)
			abort();
	if (buf_puts(&big, "\"}\n") < 0 ||
	    buf_append(&text, big.data, big.len) < 0)
		abort();
	shape_line(&text, 6999, 1);
	t_write_file(p, text.data, text.len);
	s = t_store_open(p, STORE_VALIDATE | STORE_TIMES);
	check_codes(s, "out of order");
	store_close(s);
	buf_free(&big);
	buf_free(&text);
	free(p);
}

/* Small refreshes patch the tables in place (records entering below,
 * between and above the others, replaced ones leaving), large ones merge:
 * after each, the oracle agrees. */
static void test_patched_tables_agree_with_the_lines(void)
{
	char *p = fresh_path("patch");
	struct store *s;
	struct buf text = BUF_INIT;
	unsigned seed = 99;
	int round, k;

	/* No record with code yet: the first patch starts from empty. */
	t_write_file(p, "{\"iteration\": 50}\n", 18);
	s = t_store_open(p, STORE_VALIDATE);
	T_CHECK(check_codes(s, "empty") == 0, "no code");
	for (round = 0; round < 40; round++) {
		int lines = round % 10 == 9 ? 150 : 1 + round % 4;
		char when[32];

		buf_reset(&text);
		for (k = 0; k < lines; k++) {
			seed = seed * 1103515245u + 12345u;
			shape_line(&text, (seed >> 8) % 400,
				   (seed >> 20) % 8 == 0 ? 11 : (seed >> 20) % 3);
		}
		append_bytes(p, text.data, text.len);
		T_CHECK(store_refresh(s) == 0, "refresh");
		snprintf(when, sizeof(when), "round %d", round);
		check_codes(s, when);
	}
	store_close(s);
	buf_free(&text);
	free(p);
}

/* The view's memory: a digest, a number, an index into the digest order
 * and a code start, 48 bytes for a record with its own code (it was 88).
 * With more distinct codes than the 65536 buckets of the digest sort,
 * buckets hold several codes each. */
static void test_by_hash_costs_at_most_48_bytes_a_record(void)
{
	char *p = fresh_path("mem");
	struct buf text = BUF_INIT;
	struct store_stats before, after;
	struct store_code c;
	struct store *s;
	size_t n;
	int64_t i;

	for (i = 0; i < 150000; i++)
		if (buf_printf(&text, "{\"iteration\": %" PRId64 ", \"code\": "
			       "\"c%" PRId64 "\"}\n", i, i) < 0)
			abort();
	t_write_file(p, text.data, text.len);
	s = t_store_open(p, STORE_VALIDATE);
	T_CHECK(store_stats(s, &before) == 0, "stats");
	T_CHECK(store_codes(s, 0, &c, 1, &n) == 0 && n == 1, "build");
	T_CHECK(store_stats(s, &after) == 0, "stats");
	T_CHECK(after.index_bytes - before.index_bytes <= 48 * 150000 + 1024,
		"by-hash: %" PRIu64 " bytes for 150000 records",
		after.index_bytes - before.index_bytes);
	T_CHECK(check_codes(s, "distinct") == 150000, "every record has code");
	store_close(s);
	buf_free(&text);
	free(p);
}

/* What a reader of iterations/ does while by-hash/ is being built. */
struct reader {
	struct store *s;
	int calls;
	bool ok;
};

static void *read_iterations(void *arg)
{
	struct reader *rd = arg;
	struct store_rec rec;
	struct buf line = BUF_INIT;
	int64_t list[8], hi;
	size_t n;
	bool found;

	rd->ok = store_lookup(rd->s, 2500, &rec) == 0 && rec.iter == 2500 &&
		 store_list(rd->s, 0, list, 8, &n) == 0 && n == 8 &&
		 store_read(rd->s, 7, &line) == 0 && line.len > 0 &&
		 store_highest(rd->s, &hi, &found) == 0 && found && hi == 2999;
	buf_free(&line);
	return NULL;
}

/* Called by the build itself, between its start and its end: a reader in
 * another thread must get its answers now.  Were it to wait for the build,
 * this join would never return (and the test would time out). */
static void during_build(const char *step, void *arg)
{
	struct reader *rd = arg;
	pthread_t th;

	(void)step;
	rd->calls++;
	if (pthread_create(&th, NULL, read_iterations, rd) != 0)
		abort();
	pthread_join(th, NULL);
}

static void test_readers_of_iterations_do_not_wait_for_the_build(void)
{
	char *p = fresh_path("noblock");
	struct buf text = BUF_INIT;
	struct reader rd = { NULL, 0, false };
	struct store_code c;
	size_t n;
	int64_t i;

	for (i = 0; i < 3000; i++)
		shape_line(&text, i, (unsigned)i % NSHAPES);
	t_write_file(p, text.data, text.len);
	rd.s = t_store_open(p, STORE_VALIDATE | STORE_TIMES);
	setenv("ITERFS_FAULT", "byhash.prepare:call", 1);
	fault_set_call(during_build, &rd);
	T_CHECK(store_codes(rd.s, 0, &c, 1, &n) == 0 && n == 1, "build");
	unsetenv("ITERFS_FAULT");
	fault_set_call(NULL, NULL);
	T_CHECK(rd.calls == 1 && rd.ok, "a reader during the build: %d calls, "
		"answers %s", rd.calls, rd.ok ? "right" : "wrong");
	store_close(rd.s);
	buf_free(&text);
	free(p);
}

int main(void)
{
	T_RUN(test_fast_walk_reads_every_code_as_view_render);
	T_RUN(test_lines_with_two_code_keys_are_read_again_after_validation);
	T_RUN(test_records_out_of_file_order_are_read_from_their_lines);
	T_RUN(test_patched_tables_agree_with_the_lines);
	T_RUN(test_by_hash_costs_at_most_48_bytes_a_record);
	T_RUN(test_readers_of_iterations_do_not_wait_for_the_build);
	return t_done();
}
