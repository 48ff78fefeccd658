/* test_store.c - the index: dialects, bad lines, duplicates, refresh,
 * adopt, by-hash, the real histories, and readers racing a refresher. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
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

static void write_str(const char *path, const char *s)
{
	t_write_file(path, s, strlen(s));
}

static void append_str(const char *path, const char *s)
{
	size_t len = strlen(s);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);

	if (fd < 0 || write(fd, s, len) != (ssize_t)len || close(fd) < 0)
		abort();
}

/* Replace `path` by a new file holding `s`, the way the Python loop saves. */
static void replace_str(const char *path, const char *s)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	write_str(tmp, s);
	if (rename(tmp, path) < 0)
		abort();
}

static struct store_stats stats(struct store *s)
{
	struct store_stats st;

	T_CHECK(store_stats(s, &st) == 0, "store_stats");
	return st;
}

/* The iterations listed, as "0,1,5". */
static void listed(struct store *s, char *out, size_t max)
{
	int64_t it[4096];
	size_t n, i, o = 0;

	T_CHECK(store_list(s, 0, it, 4096, &n) == 0, "store_list");
	out[0] = '\0';
	for (i = 0; i < n && o + 24 < max; i++)
		o += (size_t)snprintf(out + o, max - o, "%s%" PRId64,
				      i ? "," : "", it[i]);
}

#define CHECK_LIST(s, want)                                              \
	do {                                                             \
		char got_[8192];                                         \
		listed((s), got_, sizeof(got_));                         \
		T_CHECK(strcmp(got_, (want)) == 0, "listed %s, want %s", \
			got_, (want));                                   \
	} while (0)

/* What one refresh (or adopt) changed: the change log drained before it
 * and taken after it. */
static int refresh_take(struct store *s, struct store_change *c)
{
	int r;

	store_changes_take(s, c);
	store_change_free(c);
	r = store_refresh(s);
	store_changes_take(s, c);
	return r;
}

/* The same for store_adopt of the file now at `path`, as the writer
 * adopts the file it renamed. */
static int adopt_take(struct store *s, const char *path,
		      struct store_change *c)
{
	int r, fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		abort();
	store_changes_take(s, c);
	store_change_free(c);
	r = store_adopt(s, fd);
	store_changes_take(s, c);
	close(fd);
	return r;
}

static void changes(const struct store_change *c, char *out, size_t max)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < c->n && o + 24 < max; i++)
		o += (size_t)snprintf(out + o, max - o, "%s%" PRId64,
				      i ? "," : "", c->iters[i]);
}

#define CHECK_CHG(c, want_reset, want)                                    \
	do {                                                              \
		char got_[8192];                                          \
		changes((c), got_, sizeof(got_));                         \
		T_CHECK((c)->reset == (want_reset), "reset is %d",        \
			(int)(c)->reset);                                 \
		T_CHECK(strcmp(got_, (want)) == 0,                        \
			"changed iters %s, want %s", got_, (want));       \
	} while (0)

#define CHECK_SKIPPED(s, want)                                           \
	do {                                                             \
		uint64_t l_[256];                                        \
		size_t n_, i_, o_ = 0;                                   \
		char g_[2048] = "";                                      \
		T_CHECK(store_skipped((s), l_, 256, &n_) == 0, "skipped"); \
		for (i_ = 0; i_ < n_ && i_ < 256; i_++)                  \
			o_ += (size_t)snprintf(g_ + o_, sizeof(g_) - o_, \
					       "%s%" PRIu64, i_ ? "," : "", \
					       l_[i_]);                  \
		T_CHECK(strcmp(g_, (want)) == 0, "skipped lines %s, want %s", \
			g_, (want));                                     \
	} while (0)

/* The line of `iter` must be exactly `want`. */
static void check_line(struct store *s, int64_t iter, const char *want)
{
	struct buf b = BUF_INIT;
	int r = store_read(s, iter, &b);

	T_CHECK(r == 0, "store_read %" PRId64 ": %d", iter, r);
	if (r == 0) {
		char what[64];

		snprintf(what, sizeof(what), "line of %" PRId64, iter);
		T_CHECK_MEM(b.data, b.len, want, strlen(want), what);
	}
	buf_free(&b);
}

/* --- a generator with a model of what it wrote --------------------------- */

struct genrec {
	int64_t iter;
	uint64_t off, lineno;
	uint32_t len;
};

struct gen {
	struct buf text;
	struct genrec *rec;   /* in file order */
	size_t n;
	uint64_t lineno;
	unsigned seed;
};

static unsigned gen_rand(struct gen *g)
{
	g->seed = g->seed * 1103515245u + 12345u;
	return (g->seed >> 8) & 0xffffff;
}

/* One record of the given dialect; the number first or after two members;
 * every kind of content the loop writes. */
static void gen_record(struct gen *g, int64_t iter, bool num_dialect,
		       bool key_first, bool crlf)
{
	const char *key = num_dialect ? "iteration_num" : "iteration";
	struct buf *t = &g->text;
	size_t start = t->len, i, codelen = 200 + gen_rand(g) % 9000;

	if (buf_putc(t, '{') < 0)
		abort();
	if (key_first && buf_printf(t, "\"%s\": %" PRId64 ", ", key, iter) < 0)
		abort();
	if (buf_printf(t, "\"%s\": \"def f():\\n    return '動能 %u'\\n#",
		       num_dialect ? "strategy_code" : "code", gen_rand(g)) < 0)
		abort();
	for (i = 0; i < codelen; i++)
		if (buf_putc(t, (char)('a' + i % 26)) < 0)
			abort();
	if (buf_printf(t, "\", \"metrics\": {\"sharpe\": %u.%u, \"x\": NaN, "
		       "\"y\": null}", gen_rand(g) % 10, gen_rand(g)) < 0)
		abort();
	if (!key_first && buf_printf(t, ", \"%s\": %" PRId64, key, iter) < 0)
		abort();
	if (buf_puts(t, ", \"timestamp\": \"2025-11-17T14:57:03.138907\"}") < 0)
		abort();
	g->rec = realloc(g->rec, (g->n + 1) * sizeof(*g->rec));
	if (!g->rec)
		abort();
	g->rec[g->n++] = (struct genrec){ iter, start, ++g->lineno,
					  (uint32_t)(t->len - start) };
	if (buf_puts(t, crlf ? "\r\n" : "\n") < 0)
		abort();
}

static void gen_free(struct gen *g)
{
	buf_free(&g->text);
	free(g->rec);
}

static void check_against_gen(struct store *s, const struct gen *g)
{
	size_t i;

	for (i = 0; i < g->n; i++) {
		const struct genrec *e = &g->rec[i];
		struct store_rec r;
		bool later = false;
		size_t j;

		for (j = i + 1; j < g->n; j++)
			later |= g->rec[j].iter == e->iter;
		if (later)
			continue;
		T_CHECK(store_lookup(s, e->iter, &r) == 0, "lookup %" PRId64,
			e->iter);
		T_CHECK(r.offset == e->off && r.len == e->len &&
			r.lineno == e->lineno,
			"iteration %" PRId64 ": off %" PRIu64 " len %u line %"
			PRIu64 ", want %" PRIu64 " %u %" PRIu64, e->iter,
			r.offset, r.len, r.lineno, e->off, e->len, e->lineno);
	}
}

/* --- tests --------------------------------------------------------------- */

static void test_both_dialects_key_first_and_late(void)
{
	int d;

	for (d = 0; d < 2; d++) {
		struct gen g = { .seed = 7u + (unsigned)d };
		char *p = fresh_path("gen");
		struct store *s;
		struct store_stats st;
		int64_t i;

		for (i = 0; i < 1500; i++)
			gen_record(&g, i, d == 1, i % 3 != 1, i % 5 == 4);
		t_write_file(p, g.text.data, g.text.len);
		s = t_store_open(p, 0);
		st = stats(s);
		T_CHECK(st.records == 1500 && st.iterations == 1500 &&
			st.lines == 1500 && st.skipped == 0 &&
			st.duplicates == 0, "dialect %d: %" PRIu64 " records %"
			PRIu64 " iterations %" PRIu64 " skipped", d, st.records,
			st.iterations, st.skipped);
		T_CHECK(st.file_size == g.text.len, "file_size %" PRIu64,
			st.file_size);
		check_against_gen(s, &g);
		store_close(s);

		/* Full validation finds exactly the same records. */
		s = t_store_open(p, STORE_VALIDATE);
		st = stats(s);
		T_CHECK(st.records == 1500 && st.skipped == 0,
			"validated: %" PRIu64 " records", st.records);
		check_against_gen(s, &g);
		store_close(s);
		gen_free(&g);
		free(p);
	}
}

static void test_lines_read_back_exactly(void)
{
	char *p = fresh_path("read");
	struct store *s;
	struct store_rec r;

	write_str(p, "{\"iteration\": 0, \"code\": \"x\"}\r\n"
		     "{\"iteration_num\": 1, \"v\": \"\\u00e9\"}\n"
		     "  {\"a\": 1, \"iteration\": 2}  \n");
	s = t_store_open(p, 0);
	CHECK_LIST(s, "0,1,2");
	check_line(s, 0, "{\"iteration\": 0, \"code\": \"x\"}");
	check_line(s, 1, "{\"iteration_num\": 1, \"v\": \"\\u00e9\"}");
	check_line(s, 2, "  {\"a\": 1, \"iteration\": 2}  ");
	T_CHECK(store_lookup(s, 0, &r) == 0 && r.len == 29 && r.offset == 0 &&
		r.lineno == 1 && r.mtime == 0, "rec 0: len %u", r.len);
	T_CHECK(store_lookup(s, 3, &r) == -ENOENT, "3 is not there");
	{
		struct buf b = BUF_INIT;

		T_CHECK(store_read(s, 3, &b) == -ENOENT, "read of 3");
		/* store_read appends. */
		buf_puts(&b, ">");
		T_CHECK(store_read(s, 1, &b) == 0 && b.len == 36 &&
			b.data[0] == '>' && b.data[b.len] == '\0',
			"appended read: %zu bytes", b.len);
		buf_free(&b);
	}
	store_close(s);
	free(p);
}

static void test_bom_crlf_and_empty_lines(void)
{
	char *p = fresh_path("bom");
	struct store *s;
	struct store_rec r;
	struct store_stats st;

	write_str(p, "\xef\xbb\xbf{\"iteration\": 4}\r\n"
		     "\n"
		     "\r\n"
		     "   \t \n"
		     "{\"iteration\": 5}\r\n"
		     "\n");
	s = t_store_open(p, 0);
	st = stats(s);
	T_CHECK(st.records == 2 && st.lines == 2 && st.skipped == 0,
		"%" PRIu64 " records %" PRIu64 " lines %" PRIu64 " skipped",
		st.records, st.lines, st.skipped);
	CHECK_LIST(s, "4,5");
	T_CHECK(store_lookup(s, 4, &r) == 0 && r.offset == 3 && r.len == 16 &&
		r.lineno == 1, "after BOM: off %" PRIu64 " len %u", r.offset,
		r.len);
	T_CHECK(store_lookup(s, 5, &r) == 0 && r.lineno == 5 && r.len == 16,
		"line %" PRIu64, r.lineno);
	check_line(s, 4, "{\"iteration\": 4}");
	check_line(s, 5, "{\"iteration\": 5}");
	store_close(s);
	free(p);
}

static void test_bad_lines_are_skipped_with_their_numbers(void)
{
	char *p = fresh_path("bad");
	unsigned fl;

	write_str(p, "{\"iteration\": 0}\n"              /* 1 */
		     "garbage here\n"                    /* 2 */
		     "[1,2]\n"                           /* 3 */
		     "\"str\"\n"                         /* 4 */
		     "42\n"                              /* 5 */
		     "{\"no_number\": true}\n"           /* 6 */
		     "{\"iteration\": -1}\n"             /* 7 */
		     "{\"iteration\": 1.5}\n"            /* 8 */
		     "{\"iteration\": \"3\"}\n"          /* 9 */
		     "{\"iteration\": null, \"iteration_num\": 9}\n" /* 10 */
		     "{\"iteration\": 1, \"x\": [1, 2\n" /* 11 */
		     "\n"                                /* 12 */
		     "{\"iteration_num\": 2}\n"          /* 13 */
		     "{\"iteration\": 3, \"t\": {\"a\": [");  /* 14 torn */
	/* Every combination of flags, the driver's STORE_TIMES|STORE_VALIDATE
	 * (one validating walk) among them. */
	for (fl = 0; fl <= (STORE_TIMES | STORE_VALIDATE); fl++) {
		struct store *s = t_store_open(p, fl);
		struct store_stats st = stats(s);

		T_CHECK(st.lines == 13 && st.records == 2 && st.skipped == 11,
			"flags %u: %" PRIu64 " lines %" PRIu64 " records %"
			PRIu64 " skipped", fl, st.lines, st.records,
			st.skipped);
		CHECK_LIST(s, "0,2");
		CHECK_SKIPPED(s, "2,3,4,5,6,7,8,9,10,11,14");
		store_close(s);
	}
	free(p);
}

static void test_only_full_validation_catches_a_broken_middle(void)
{
	char *p = fresh_path("validate");
	struct store *s;

	/* Starts like a record and ends with '}', broken inside. */
	write_str(p, "{\"iteration\": 0}\n"
		     "{\"iteration\": 1, \"x\": [1,, 2]}\n"
		     "{\"iteration\": 2}\n");
	s = t_store_open(p, STORE_VALIDATE);
	CHECK_LIST(s, "0,2");
	CHECK_SKIPPED(s, "2");
	store_close(s);
	/* The timestamp walk stands in for the validation: still skipped. */
	s = t_store_open(p, STORE_VALIDATE | STORE_TIMES);
	CHECK_LIST(s, "0,2");
	CHECK_SKIPPED(s, "2");
	store_close(s);
	/* The documented price of the fast scan: such a line is trusted. */
	s = t_store_open(p, 0);
	CHECK_LIST(s, "0,1,2");
	store_close(s);
	/* Not at the start, the number is found by a validating walk. */
	write_str(p, "{\"iteration\": 0}\n"
		     "{\"x\": [1,, 2], \"iteration\": 1}\n");
	s = t_store_open(p, 0);
	CHECK_LIST(s, "0");
	CHECK_SKIPPED(s, "2");
	store_close(s);
	free(p);
}

static void test_torn_tail_and_valid_last_line(void)
{
	char *p = fresh_path("tail");
	struct store *s;
	struct store_stats st;

	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1, \"code\": \"de");
	s = t_store_open(p, 0);
	st = stats(s);
	T_CHECK(st.records == 1 && st.skipped == 1 && st.lines == 2,
		"torn: %" PRIu64 " records %" PRIu64 " skipped", st.records,
		st.skipped);
	CHECK_SKIPPED(s, "2");
	store_close(s);

	/* A last line that ends in '}' but is not complete JSON. */
	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1, \"x\": [}");
	s = t_store_open(p, 0);
	CHECK_LIST(s, "0");
	CHECK_SKIPPED(s, "2");
	store_close(s);

	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1, \"x\": [2]}\r");
	s = t_store_open(p, 0);
	CHECK_LIST(s, "0,1");
	CHECK_SKIPPED(s, "");
	check_line(s, 1, "{\"iteration\": 1, \"x\": [2]}");
	store_close(s);
	free(p);
}

static void test_duplicates_later_line_wins(void)
{
	char *p = fresh_path("dup");
	struct store *s;
	struct store_stats st;
	struct store_rec r;

	write_str(p, "{\"iteration\": 0, \"v\": \"a\"}\n"
		     "{\"iteration\": 1, \"v\": \"b\"}\n"
		     "{\"iteration\": 0, \"v\": \"c\"}\n"
		     "{\"iteration\": 2, \"v\": \"d\"}\n"
		     "{\"iteration_num\": 0, \"v\": \"e\"}\n");
	s = t_store_open(p, 0);
	st = stats(s);
	T_CHECK(st.records == 5 && st.iterations == 3 && st.duplicates == 2,
		"%" PRIu64 " records %" PRIu64 " iterations %" PRIu64 " dups",
		st.records, st.iterations, st.duplicates);
	CHECK_LIST(s, "0,1,2");
	check_line(s, 0, "{\"iteration_num\": 0, \"v\": \"e\"}");
	T_CHECK(store_lookup(s, 0, &r) == 0 && r.lineno == 5, "line %" PRIu64,
		r.lineno);
	store_close(s);
	free(p);
}

static void test_out_of_order_numbers(void)
{
	char *p = fresh_path("order");
	struct gen g = { .seed = 99 };
	static const int64_t order[] = { 10, 3, 7, 3, 1000000000000, 0, 8, 7,
					 2, 9, 1 };
	struct store *s;
	struct store_stats st;
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		gen_record(&g, order[i], i % 2, i % 3 != 0, false);
	t_write_file(p, g.text.data, g.text.len);
	s = t_store_open(p, 0);
	st = stats(s);
	T_CHECK(st.records == 11 && st.iterations == 9 && st.duplicates == 2,
		"%" PRIu64 " iterations %" PRIu64 " dups", st.iterations,
		st.duplicates);
	CHECK_LIST(s, "0,1,2,3,7,8,9,10,1000000000000");
	check_against_gen(s, &g);
	{
		int64_t hi;
		bool found;

		T_CHECK(store_highest(s, &hi, &found) == 0 && found &&
			hi == 1000000000000, "highest %" PRId64, hi);
	}
	store_close(s);
	gen_free(&g);
	free(p);
}

static void test_list_pages(void)
{
	char *p = fresh_path("page");
	struct gen g = { .seed = 5 };
	struct store *s;
	int64_t it[64], i;
	size_t n, got = 0;
	bool ok = true;

	for (i = 0; i < 250; i++)
		gen_record(&g, i * 2, false, true, false);
	t_write_file(p, g.text.data, g.text.len);
	s = t_store_open(p, 0);
	for (;;) {
		size_t k;

		T_CHECK(store_list(s, got, it, 64, &n) == 0, "list");
		if (!n)
			break;
		for (k = 0; k < n; k++)
			ok &= it[k] == (int64_t)(got + k) * 2;
		got += n;
		T_CHECK(n == 64 || got == 250, "page of %zu at %zu", n, got);
	}
	T_CHECK(ok && got == 250, "paged %zu, in order %d", got, ok);
	T_CHECK(store_list(s, 1000, it, 64, &n) == 0 && n == 0, "past end");
	T_CHECK(store_list(s, 3, it, 0, &n) == 0 && n == 0, "max 0");
	store_close(s);
	gen_free(&g);
	free(p);
}

static void test_times_only_when_asked(void)
{
	char *p = fresh_path("times");
	struct store *s;
	struct store_rec r;

	write_str(p, "{\"iteration\": 0, \"timestamp\": \"2025-01-02T03:04:05Z\"}\n"
		     "{\"iteration\": 1}\n"
		     "{\"iteration\": 2, \"timestamp\": \"not a time\"}\n"
		     "{\"iteration\": 3, \"timestamp\": \"2025-01-02T05:04:05+02:00\"}\n");
	s = t_store_open(p, STORE_TIMES);
	T_CHECK(store_lookup(s, 0, &r) == 0 && r.mtime == 1735787045000000,
		"mtime %lld", (long long)r.mtime);
	T_CHECK(store_lookup(s, 1, &r) == 0 && r.mtime == 0, "no timestamp");
	T_CHECK(store_lookup(s, 2, &r) == 0 && r.mtime == 0, "bad timestamp");
	T_CHECK(store_lookup(s, 3, &r) == 0 && r.mtime == 1735787045000000,
		"offset: %lld", (long long)r.mtime);
	/* Times of records added by refresh, out of order too. */
	append_str(p, "{\"iteration\": 9, "
		      "\"timestamp\": \"2025-01-02T03:04:06.123456Z\"}\n"
		      "{\"iteration\": 1, \"timestamp\": \"2025-01-02T03:04:07Z\"}\n");
	T_CHECK(store_refresh(s) == 0, "refresh");
	T_CHECK(store_lookup(s, 9, &r) == 0 && r.mtime == 1735787046123456,
		"appended: %lld", (long long)r.mtime);
	T_CHECK(store_lookup(s, 1, &r) == 0 && r.mtime == 1735787047000000,
		"replaced: %lld", (long long)r.mtime);
	T_CHECK(store_lookup(s, 3, &r) == 0 && r.mtime == 1735787045000000,
		"kept: %lld", (long long)r.mtime);
	store_close(s);

	s = t_store_open(p, 0);
	T_CHECK(store_lookup(s, 0, &r) == 0 && r.mtime == 0,
		"without STORE_TIMES: %lld", (long long)r.mtime);
	store_close(s);

	/* An empty store that grows keeps times too. */
	write_str(p, "");
	s = t_store_open(p, STORE_TIMES);
	append_str(p, "{\"iteration\": 0, \"timestamp\": \"2025-01-02T03:04:05Z\"}\n");
	T_CHECK(store_refresh(s) == 0, "refresh");
	T_CHECK(store_lookup(s, 0, &r) == 0 && r.mtime == 1735787045000000,
		"grown from empty: %lld", (long long)r.mtime);
	store_close(s);
	free(p);
}

static void test_refresh_after_append_in_place(void)
{
	char *p = fresh_path("append");
	struct store *s;
	struct store_change c;
	struct store_stats st0, st;

	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1}\n");
	s = t_store_open(p, 0);
	st0 = stats(s);
	T_CHECK(refresh_take(s, &c) == 0, "refresh unchanged");
	T_CHECK(!c.changed && !c.reset && c.n == 0, "nothing changed");
	T_CHECK(stats(s).generation == st0.generation, "same generation");
	store_change_free(&c);

	append_str(p, "{\"iteration\": 2}\nbad\n{\"iteration\": 1, \"v\": 2}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	T_CHECK(c.changed, "changed");
	CHECK_CHG(&c, false, "1,2");
	store_change_free(&c);
	st = stats(s);
	T_CHECK(st.generation > st0.generation, "generation bumped");
	T_CHECK(st.records == 4 && st.duplicates == 1 && st.skipped == 1 &&
		st.lines == 5, "%" PRIu64 " records %" PRIu64 " dups",
		st.records, st.duplicates);
	CHECK_LIST(s, "0,1,2");
	CHECK_SKIPPED(s, "4");
	check_line(s, 1, "{\"iteration\": 1, \"v\": 2}");
	store_close(s);
	free(p);
}

static void test_refresh_completes_a_torn_tail(void)
{
	char *p = fresh_path("torn");
	struct store *s;
	struct store_change c;
	struct store_stats st;
	struct store_rec r;

	write_str(p, "{\"iteration\": 0}\n\n{\"iteration\": 1, \"co");
	s = t_store_open(p, 0);
	CHECK_SKIPPED(s, "3");
	append_str(p, "de\": \"x\"}\n{\"iteration\": 2}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	CHECK_CHG(&c, false, "1,2");
	store_change_free(&c);
	st = stats(s);
	T_CHECK(st.records == 3 && st.skipped == 0 && st.lines == 3,
		"%" PRIu64 " records %" PRIu64 " skipped %" PRIu64 " lines",
		st.records, st.skipped, st.lines);
	CHECK_SKIPPED(s, "");
	T_CHECK(store_lookup(s, 2, &r) == 0 && r.lineno == 4, "line %" PRIu64,
		r.lineno);
	check_line(s, 1, "{\"iteration\": 1, \"code\": \"x\"}");

	/* Torn again, grown but still torn. */
	append_str(p, "{\"iteration\": 3, ");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	CHECK_CHG(&c, false, "");
	T_CHECK(c.changed, "bytes were added");
	store_change_free(&c);
	CHECK_SKIPPED(s, "5");
	append_str(p, "\"x\": 1");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	store_change_free(&c);
	CHECK_SKIPPED(s, "5");
	T_CHECK(stats(s).skipped == 1 && stats(s).lines == 4, "counted once");
	append_str(p, "}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	CHECK_CHG(&c, false, "3");
	store_change_free(&c);
	CHECK_SKIPPED(s, "");
	CHECK_LIST(s, "0,1,2,3");
	store_close(s);
	free(p);
}

static void test_refresh_after_a_valid_unterminated_line(void)
{
	char *p = fresh_path("noeol");
	struct store *s;
	struct store_change c;
	struct store_stats st;

	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1}");
	s = t_store_open(p, 0);
	CHECK_LIST(s, "0,1");
	append_str(p, "\n{\"iteration\": 2}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	CHECK_CHG(&c, false, "2");
	store_change_free(&c);
	st = stats(s);
	T_CHECK(st.records == 3 && st.lines == 3 && st.duplicates == 0,
		"%" PRIu64 " records %" PRIu64 " lines", st.records, st.lines);

	/* The unterminated record turns into something else: re-index. */
	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1}");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	store_change_free(&c);
	append_str(p, " junk\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	T_CHECK(c.reset, "re-indexed");
	store_change_free(&c);
	CHECK_LIST(s, "0");
	CHECK_SKIPPED(s, "2");
	store_close(s);
	free(p);
}

static void test_refresh_after_rename_with_the_same_prefix(void)
{
	char *p = fresh_path("rename");
	struct store *s;
	struct store_change c;
	struct store_stats st;
	const char *old = "{\"iteration\": 0}\n{\"iteration\": 1}\nbad\n";
	char next[512];

	write_str(p, old);
	s = t_store_open(p, 0);
	snprintf(next, sizeof(next), "%s{\"iteration\": 5}\n"
		 "{\"iteration\": 0, \"again\": true}\n{\"iteration\": 3}\n",
		 old);
	replace_str(p, next);
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	CHECK_CHG(&c, false, "0,3,5");
	store_change_free(&c);
	st = stats(s);
	T_CHECK(st.records == 5 && st.iterations == 4 && st.duplicates == 1 &&
		st.skipped == 1, "%" PRIu64 " records %" PRIu64 " dups",
		st.records, st.duplicates);
	check_line(s, 0, "{\"iteration\": 0, \"again\": true}");
	check_line(s, 5, "{\"iteration\": 5}");

	/* The same content again under a new inode: nothing changed. */
	replace_str(p, next);
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	T_CHECK(!c.changed && !c.reset && c.n == 0, "identical replacement");
	store_change_free(&c);
	T_CHECK(stats(s).generation == st.generation, "same generation");
	check_line(s, 3, "{\"iteration\": 3}");
	store_close(s);
	free(p);
}

static void test_refresh_after_rename_with_other_content(void)
{
	char *p = fresh_path("other");
	struct store *s;
	struct store_change c;

	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1}\n");
	s = t_store_open(p, 0);
	/* Longer, but the first bytes differ. */
	replace_str(p, "{\"iteration\": 7}\n{\"iteration\": 1}\n{\"iteration\": 2}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	T_CHECK(c.reset && c.changed, "reset");
	store_change_free(&c);
	CHECK_LIST(s, "1,2,7");
	check_line(s, 7, "{\"iteration\": 7}");
	/* Shorter. */
	replace_str(p, "{\"iteration\": 9}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	T_CHECK(c.reset, "reset");
	store_change_free(&c);
	CHECK_LIST(s, "9");
	store_close(s);
	free(p);
}

static void test_refresh_after_truncation(void)
{
	char *p = fresh_path("trunc");
	struct store *s;
	struct store_change c;
	struct buf b = BUF_INIT;

	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1}\n{\"iteration\": 2}\n");
	s = t_store_open(p, 0);
	if (truncate(p, 17) < 0)
		abort();
	/* Not refreshed yet: the record is past the end of the file. */
	T_CHECK(store_read(s, 2, &b) == -EIO, "short read is -EIO");
	buf_free(&b);
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	T_CHECK(c.reset, "reset");
	store_change_free(&c);
	CHECK_LIST(s, "0");
	T_CHECK(stats(s).file_size == 17, "size");
	store_close(s);
	free(p);
}

static void test_adopt_indexes_only_the_tail(void)
{
	char *p = fresh_path("adopt");
	struct store *s;
	struct store_change c;
	struct store_stats st;

	write_str(p, "{\"iteration\": 0, \"v\": \"aa\"}\n{\"iteration\": 1}");
	s = t_store_open(p, 0);
	/* What the writer renames over the store: old content, the LF it
	 * lacked, new lines.  The old bytes are changed (same length) to show
	 * that adopt trusts them instead of reading them. */
	replace_str(p, "{\"iteration\": 0, \"v\": \"zz\"}\n{\"iteration\": 1}\n"
		       "{\"iteration\": 2}\n{\"iteration\": 0, \"v\": \"new\"}\n");
	T_CHECK(adopt_take(s, p, &c) == 0, "adopt");
	CHECK_CHG(&c, false, "0,2");
	store_change_free(&c);
	st = stats(s);
	T_CHECK(st.records == 4 && st.iterations == 3 && st.duplicates == 1,
		"%" PRIu64 " records", st.records);
	check_line(s, 0, "{\"iteration\": 0, \"v\": \"new\"}");
	check_line(s, 2, "{\"iteration\": 2}");

	/* A refresh now sees the same file: nothing to do. */
	T_CHECK(refresh_take(s, &c) == 0 && !c.changed, "refresh after adopt");
	store_change_free(&c);

	/* A file shorter than what was indexed cannot be an extension: it is
	 * indexed whole, and the lines of the numbers it lacks are kept. */
	replace_str(p, "{\"iteration\": 0}\n");
	T_CHECK(adopt_take(s, p, &c) == 0 && c.reset && c.lost,
		"adopt of a shorter file re-indexes");
	store_change_free(&c);
	CHECK_LIST(s, "0");
	check_line(s, 0, "{\"iteration\": 0}");
	store_close(s);
	free(p);
}

static void test_missing_file_is_an_empty_store(void)
{
	char *p = fresh_path("missing");
	struct store *s;
	struct store_change c;
	struct store_stats st;
	int64_t hi = -1;
	bool found = true;
	unsigned char d[HASH_LEN];
	struct store_code code;
	size_t n = 9;

	unlink(p);
	s = t_store_open(p, STORE_TIMES);
	st = stats(s);
	T_CHECK(st.records == 0 && st.lines == 0 && st.file_size == 0,
		"empty");
	T_CHECK(store_highest(s, &hi, &found) == 0 && !found, "no highest");
	T_CHECK(strcmp(store_path(s), p) == 0, "path");
	T_CHECK(store_codes(s, 0, &code, 1, &n) == 0 && n == 0, "no codes");
	memset(d, 0, sizeof(d));
	T_CHECK(store_code_lookup(s, d, &code, NULL, 0) == -ENOENT, "no code");
	T_CHECK(refresh_take(s, &c) == 0 && !c.changed, "still missing");
	store_change_free(&c);

	write_str(p, "{\"iteration\": 3, \"code\": \"c\"}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	CHECK_CHG(&c, false, "3");
	store_change_free(&c);
	T_CHECK(store_highest(s, &hi, &found) == 0 && found && hi == 3,
		"highest %" PRId64, hi);
	T_CHECK(store_codes(s, 0, &code, 1, &n) == 0 && n == 1 &&
		code.first_iter == 3, "one code");

	unlink(p);
	T_CHECK(refresh_take(s, &c) == 0 && c.reset && c.changed,
		"removed: reset");
	store_change_free(&c);
	CHECK_LIST(s, "");
	T_CHECK(store_codes(s, 0, &code, 1, &n) == 0 && n == 0,
		"no codes after removal");
	store_close(s);
	free(p);
}

static void digest_of(const char *code, unsigned char d[HASH_LEN])
{
	if (hash_sha256(code, strlen(code), d) < 0)
		abort();
}

static void test_by_hash_groups(void)
{
	char *p = fresh_path("hash");
	struct store *s;
	struct store_change c;
	struct store_code codes[8], one;
	unsigned char da[HASH_LEN], db[HASH_LEN], dc[HASH_LEN], got[HASH_LEN];
	int64_t its[8];
	size_t n, i;
	bool has;

	write_str(p, "{\"iteration\": 5, \"code\": \"a\\u00e9\\n\"}\n"
		     "{\"iteration\": 1, \"code\": null, \"strategy_code\": \"x\"}\n"
		     "{\"iteration\": 2}\n"
		     "{\"iteration_num\": 3, \"strategy_code\": \"a\u00e9\\n\"}\n"
		     "{\"iteration\": 4, \"code\": \"b\"}\n"
		     "{\"iteration\": 0, \"code\": \"b\"}\n");
	digest_of("a\xc3\xa9\n", da);
	digest_of("b", db);
	digest_of("c", dc);
	s = t_store_open(p, 0);
	T_CHECK(store_code_of(s, 5, got, &has) == 0 && has &&
		memcmp(got, da, HASH_LEN) == 0, "code of 5");
	T_CHECK(store_code_of(s, 1, got, &has) == 0 && !has, "null code");
	T_CHECK(store_code_of(s, 2, got, &has) == 0 && !has, "no code");
	T_CHECK(store_code_of(s, 6, got, &has) == -ENOENT, "no iteration 6");
	T_CHECK(store_codes(s, 0, codes, 8, &n) == 0 && n == 2, "%zu codes", n);
	for (i = 1; i < n; i++)
		T_CHECK(memcmp(codes[i - 1].digest, codes[i].digest,
			       HASH_LEN) < 0, "ordered by digest");
	T_CHECK(store_code_lookup(s, da, &one, its, 8) == 0 &&
		one.count == 2 && one.first_iter == 3 && its[0] == 3 &&
		its[1] == 5, "code a: %zu, first %" PRId64, one.count,
		one.first_iter);
	T_CHECK(store_code_lookup(s, db, &one, NULL, 0) == 0 &&
		one.count == 2 && one.first_iter == 0, "code b");
	T_CHECK(store_code_lookup(s, dc, &one, NULL, 0) == -ENOENT, "no c");
	T_CHECK(store_codes(s, 1, codes, 8, &n) == 0 && n == 1, "from rank 1");

	/* Kept up to date: 0 changes code (b -> c), 7 joins a, 2 gets c. */
	append_str(p, "{\"iteration\": 7, \"code\": \"a\u00e9\\n\"}\n"
		      "{\"iteration\": 0, \"code\": \"c\"}\n"
		      "{\"iteration\": 2, \"code\": \"c\"}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	CHECK_CHG(&c, false, "0,2,7");
	store_change_free(&c);
	T_CHECK(store_code_lookup(s, da, &one, its, 8) == 0 &&
		one.count == 3 && its[2] == 7, "a has 7");
	T_CHECK(store_code_lookup(s, db, &one, its, 8) == 0 &&
		one.count == 1 && one.first_iter == 4, "b lost 0");
	T_CHECK(store_code_lookup(s, dc, &one, its, 8) == 0 &&
		one.count == 2 && one.first_iter == 0 && its[1] == 2,
		"c: %zu", one.count);
	T_CHECK(store_code_of(s, 0, got, &has) == 0 && has &&
		memcmp(got, dc, HASH_LEN) == 0, "0 now has c");

	/* Appended in order (the fast path) keeps them up to date too. */
	append_str(p, "{\"iteration\": 8, \"code\": \"b\"}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	store_change_free(&c);
	T_CHECK(store_code_lookup(s, db, &one, its, 8) == 0 &&
		one.count == 2 && its[1] == 8, "b has 8");
	T_CHECK(store_code_of(s, 8, got, &has) == 0 && has &&
		memcmp(got, db, HASH_LEN) == 0, "code of 8");

	/* After a reset the tables are rebuilt from the new file. */
	replace_str(p, "{\"iteration\": 1, \"code\": \"c\"}\n");
	T_CHECK(refresh_take(s, &c) == 0 && c.reset, "reset");
	store_change_free(&c);
	T_CHECK(store_codes(s, 0, codes, 8, &n) == 0 && n == 1 &&
		memcmp(codes[0].digest, dc, HASH_LEN) == 0 &&
		codes[0].count == 1 && codes[0].first_iter == 1,
		"one code after reset");
	store_close(s);
	free(p);
}

/* Large enough that the by-hash build is split over threads: every
 * record's digest must still land on its own iteration. */
static void test_by_hash_of_a_large_history(void)
{
	char *p = fresh_path("bighash");
	struct gen g = { .seed = 21 };
	struct store *s;
	struct buf code = BUF_INIT;
	size_t i, n, total = 0, ncodes = 0;
	struct store_code codes[64];
	int64_t prev;
	bool ok = true;

	for (i = 0; i < 5000; i++)
		gen_record(&g, (int64_t)i, i % 2, true, false);
	t_write_file(p, g.text.data, g.text.len);
	s = t_store_open(p, 0);
	for (i = 0; i < g.n; i += 7) {
		unsigned char want[HASH_LEN], got[HASH_LEN];
		bool present, has;
		const struct genrec *e = &g.rec[i];

		buf_reset(&code);
		if (view_render(g.text.data + e->off, e->len, VIEW_CODE, &code,
				&present) < 0 || !present ||
		    hash_sha256(code.data, code.len, want) < 0)
			abort();
		ok &= store_code_of(s, e->iter, got, &has) == 0 && has &&
		      memcmp(got, want, HASH_LEN) == 0;
	}
	T_CHECK(ok, "digests of a large history");
	for (;;) {
		size_t k;

		T_CHECK(store_codes(s, ncodes, codes, 64, &n) == 0, "codes");
		if (!n)
			break;
		for (k = 0; k < n; k++) {
			T_CHECK(store_code_lookup(s, codes[k].digest, &codes[k],
						  &prev, 1) == 0 &&
				prev == codes[k].first_iter, "first iter");
			total += codes[k].count;
		}
		ncodes += n;
	}
	T_CHECK(total == 5000, "%zu iterations with code in %zu codes", total,
		ncodes);
	store_close(s);
	buf_free(&code);
	gen_free(&g);
	free(p);
}

/* Every by-hash answer of `a` equals that of `b`. */
static void same_codes(struct store *a, struct store *b, const char *when)
{
	struct store_code ca[128], cb[128];
	int64_t ia[512], ib[512], it[512];
	size_t na = 0, nb = 0, i, n;

	T_CHECK(store_codes(a, 0, ca, 128, &na) == 0 &&
		store_codes(b, 0, cb, 128, &nb) == 0, "codes");
	T_CHECK(na == nb, "%s: %zu codes, rebuilt %zu", when, na, nb);
	for (i = 0; i < na && i < nb; i++) {
		struct store_code x, y;

		T_CHECK(memcmp(ca[i].digest, cb[i].digest, HASH_LEN) == 0 &&
			ca[i].count == cb[i].count &&
			ca[i].first_iter == cb[i].first_iter,
			"%s: code %zu: %zu/%" PRId64 " vs %zu/%" PRId64, when,
			i, ca[i].count, ca[i].first_iter, cb[i].count,
			cb[i].first_iter);
		T_CHECK(store_code_lookup(a, ca[i].digest, &x, ia, 512) == 0 &&
			store_code_lookup(b, ca[i].digest, &y, ib, 512) == 0 &&
			x.count == y.count && x.count <= 512 &&
			memcmp(ia, ib, x.count * sizeof(*ia)) == 0,
			"%s: iterations of code %zu", when, i);
	}
	T_CHECK(store_list(b, 0, it, 512, &n) == 0, "list");
	for (i = 0; i < n; i++) {
		unsigned char da[HASH_LEN], db[HASH_LEN];
		bool ha = false, hb = false;

		T_CHECK(store_code_of(a, it[i], da, &ha) == 0 &&
			store_code_of(b, it[i], db, &hb) == 0 && ha == hb &&
			(!ha || memcmp(da, db, HASH_LEN) == 0),
			"%s: code of %" PRId64, when, it[i]);
	}
}

/* Tables kept up to date through many refreshes, small (patched in place)
 * and large (merged), equal the tables built from scratch. */
static void test_by_hash_updates_match_a_rebuild(void)
{
	char *p = fresh_path("hashupd");
	struct store *s, *fresh;
	struct store_change c;
	unsigned seed = 77;
	int round, k;

	write_str(p, "{\"iteration\": 0, \"code\": \"c0\"}\n");
	s = t_store_open(p, 0);
	T_CHECK(store_codes(s, 0, NULL, 0, &(size_t){ 0 }) == 0, "build");
	for (round = 0; round < 60; round++) {
		int lines = round % 10 == 9 ? 100 : 1 + round % 3;
		char when[32];

		for (k = 0; k < lines; k++) {
			char l[128];
			unsigned it, code;

			seed = seed * 1103515245u + 12345u;
			it = (seed >> 8) % 300;
			code = (seed >> 20) % 12;
			if (code == 11)
				snprintf(l, sizeof(l), "{\"iteration\": %u}\n",
					 it);
			else
				snprintf(l, sizeof(l), "{\"iteration\": %u, "
					 "\"code\": \"c%u\"}\n", it, code);
			append_str(p, l);
		}
		T_CHECK(refresh_take(s, &c) == 0 && !c.reset, "refresh");
		store_change_free(&c);
		if (round % 5 != 4)
			continue;
		snprintf(when, sizeof(when), "round %d", round);
		fresh = t_store_open(p, 0);
		same_codes(s, fresh, when);
		store_close(fresh);
	}
	store_close(s);
	free(p);
}

static void test_long_lines_cross_read_chunks(void)
{
	char *p = fresh_path("long");
	struct buf t = BUF_INIT;
	struct store *s;
	struct store_rec r;
	size_t i, big = (size_t)3 << 20;

	buf_puts(&t, "{\"iteration\": 0}\n{\"iteration\": 1, \"code\": \"");
	for (i = 0; i < big; i++)
		buf_putc(&t, (char)('a' + i % 26));
	buf_puts(&t, "\"}\n{\"iteration\": 2}\n");
	t_write_file(p, t.data, t.len);
	s = t_store_open(p, STORE_VALIDATE);
	CHECK_LIST(s, "0,1,2");
	T_CHECK(store_lookup(s, 1, &r) == 0 && r.len == big + 28,
		"long line: %u", r.len);
	T_CHECK(store_lookup(s, 2, &r) == 0 && r.lineno == 3 &&
		r.offset == t.len - 17, "after it: %" PRIu64, r.offset);
	store_close(s);
	buf_free(&t);
	free(p);
}

static void test_index_memory_per_record(void)
{
	char *p = fresh_path("mem");
	struct buf t = BUF_INIT;
	struct store *s;
	struct store_stats st;
	int64_t i;

	for (i = 0; i < 100000; i++)
		if (buf_printf(&t, "{\"iteration\": %" PRId64 ", \"v\": 1}\n",
			       i) < 0)
			abort();
	t_write_file(p, t.data, t.len);
	s = t_store_open(p, 0);
	st = stats(s);
	T_CHECK(st.iterations == 100000, "%" PRIu64, st.iterations);
	T_CHECK(st.index_bytes / st.records < 64,
		"%" PRIu64 " index bytes a record", st.index_bytes / st.records);
	store_close(s);
	s = t_store_open(p, STORE_TIMES);
	st = stats(s);
	/* Packed (pack.h): 8 bytes of offset and length, 6 of timestamp, a
	 * bit, and no number where numbers follow each other. */
	T_CHECK(st.index_bytes / st.records < 16,
		"with times: %" PRIu64 " a record", st.index_bytes / st.records);
	store_close(s);
	buf_free(&t);
	free(p);
}

/* Every shown record of s against the file's bytes `f`: its line is at
 * its offset, its line number counts the LFs before it, its timestamp is
 * the line's. */
static void check_against_bytes(struct store *s, const struct buf *f,
				const char *what)
{
	int64_t it[64];
	size_t n, i, k;
	struct buf b = BUF_INIT;

	T_CHECK(store_list(s, 0, it, 64, &n) == 0, "list");
	for (i = 0; i < n; i++) {
		struct store_rec r;
		uint64_t lines = 1;
		int64_t want = 0;
		bool found;

		buf_reset(&b);
		T_CHECK(store_lookup(s, it[i], &r) == 0 &&
			store_read(s, it[i], &b) == 0, "%s: %" PRId64, what,
			it[i]);
		T_CHECK(r.len == b.len && r.offset + r.len <= f->len &&
			memcmp(f->data + r.offset, b.data, b.len) == 0,
			"%s: %" PRId64 " at %" PRIu64 ", %u bytes", what, it[i],
			r.offset, r.len);
		for (k = 0; k < r.offset && k < f->len; k++)
			lines += f->data[k] == '\n';
		T_CHECK(r.lineno == lines, "%s: %" PRId64 " on line %" PRIu64
			", want %" PRIu64, what, it[i], r.lineno, lines);
		T_CHECK(record_timestamp(b.data, b.len, &want, &found) == 0,
			"timestamp");
		T_CHECK(r.mtime == (found ? want : 0), "%s: %" PRId64
			" mtime %" PRId64 ", want %" PRId64, what, it[i],
			r.mtime, want);
	}
	buf_free(&b);
}

/* What the packed index keeps aside: a line of 16 MiB or more, timestamps
 * more than 4 years from the first, records without one, gaps in the
 * numbers and the line numbers; built whole, appended to, and merged. */
static void test_packed_index_side_tables(void)
{
	char *p = fresh_path("pack");
	struct buf t = BUF_INIT, big = BUF_INIT;
	struct store *s;
	size_t i;

	for (i = 0; i < ((size_t)16 << 20) + 5; i++)
		buf_putc(&big, (char)('a' + i % 26));
	buf_printf(&t, "{\"iteration\": 0}\n"
		   "{\"iteration\": 1, \"timestamp\": \"1990-01-01T00:00:00Z\"}\n"
		   "{\"iteration\": 2, \"timestamp\": \"2025-06-01T12:00:00.123456Z\"}\n"
		   "{\"iteration\": 5, \"timestamp\": \"1990-01-01T00:00:01Z\"}\n"
		   "\n"
		   "{\"iteration\": 6, \"code\": \"%s\", "
		   "\"timestamp\": \"1800-01-01T00:00:00Z\"}\n"
		   "{\"iteration\": 7, \"timestamp\": \"1990-02-01T00:00:00\"}\n",
		   big.data);
	t_write_file(p, t.data, t.len);
	s = t_store_open(p, STORE_TIMES | STORE_VALIDATE);
	CHECK_LIST(s, "0,1,2,5,6,7");
	check_against_bytes(s, &t, "built");
	/* Appended: another long line, a far timestamp, the next number. */
	buf_printf(&t, "{\"iteration\": 8, \"code\": \"%s\"}\n"
		   "{\"iteration\": 9, \"timestamp\": \"2100-01-01T00:00:00Z\"}\n"
		   "{\"iteration\": 10, \"timestamp\": \"1990-01-01T00:00:02Z\"}\n",
		   big.data);
	t_write_file(p, t.data, t.len);
	T_CHECK(store_refresh(s) == 0, "refresh");
	CHECK_LIST(s, "0,1,2,5,6,7,8,9,10");
	check_against_bytes(s, &t, "appended");
	/* Merged: numbers below the highest. */
	buf_puts(&t, "{\"iteration\": 3, \"timestamp\": \"2200-01-01T00:00:00Z\"}\n"
		 "{\"iteration\": 6}\n");
	t_write_file(p, t.data, t.len);
	T_CHECK(store_refresh(s) == 0, "refresh");
	CHECK_LIST(s, "0,1,2,3,5,6,7,8,9,10");
	check_against_bytes(s, &t, "merged");
	store_close(s);
	/* And the same file indexed whole. */
	s = t_store_open(p, STORE_TIMES | STORE_VALIDATE);
	check_against_bytes(s, &t, "whole");
	store_close(s);
	buf_free(&t);
	buf_free(&big);
	free(p);
}

/* What Python's json module finds: "iteration lineno" per shown record. */
static const char py_model[] =
	"import json, sys\n"
	"seen = {}\n"
	"with open(sys.argv[1], 'rb') as f:\n"
	"    for no, raw in enumerate(f, 1):\n"
	"        if no == 1 and raw.startswith(b'\\xef\\xbb\\xbf'):\n"
	"            raw = raw[3:]\n"
	"        if not raw.strip():\n"
	"            continue\n"
	"        try:\n"
	"            r = json.loads(raw)\n"
	"        except ValueError:\n"
	"            continue\n"
	"        if not isinstance(r, dict):\n"
	"            continue\n"
	"        for k in ('iteration', 'iteration_num'):\n"
	"            if k in r:\n"
	"                v = r[k]\n"
	"                if isinstance(v, int) and not isinstance(v, bool) and v >= 0:\n"
	"                    seen[v] = no\n"
	"                break\n"
	"for k in sorted(seen):\n"
	"    print(k, seen[k])\n";

static void test_real_histories(void)
{
	static const struct {
		const char *name;
		uint64_t records;
	} files[] = {
		{ "llm_only_50.jsonl", 50 },
		{ "unified_factor_graph.jsonl", 21 },
		{ "json_mode_test.jsonl", 20 },
		{ "migrated_no_code.jsonl", 20 },
	};
	char *script = t_path("model.py");
	size_t f;

	t_write_file(script, py_model, sizeof(py_model) - 1);
	for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		char *p = t_real_data(files[f].name), cmd[8192], line[128];
		struct store *s;
		struct store_stats st;
		FILE *py;
		size_t rank = 0, n;
		int64_t it;

		if (!p) {
			printf("# skip %s: ITERFS_REAL_DATA not present\n",
			       files[f].name);
			continue;
		}
		s = t_store_open(p, STORE_TIMES);
		st = stats(s);
		T_CHECK(st.records == files[f].records &&
			st.iterations == files[f].records && st.skipped == 0,
			"%s: %" PRIu64 " records %" PRIu64 " iterations",
			files[f].name, st.records, st.iterations);
		snprintf(cmd, sizeof(cmd), "python3 '%s' '%s'", script, p);
		py = popen(cmd, "r");
		T_CHECK(py != NULL, "python3");
		while (py && fgets(line, sizeof(line), py)) {
			long long want, wline;
			struct store_rec r;

			if (sscanf(line, "%lld %lld", &want, &wline) != 2)
				continue;
			T_CHECK(store_list(s, rank, &it, 1, &n) == 0 && n == 1 &&
				it == want, "%s rank %zu: %" PRId64 ", python %lld",
				files[f].name, rank, it, want);
			T_CHECK(store_lookup(s, want, &r) == 0 &&
				r.lineno == (uint64_t)wline, "%s %lld line",
				files[f].name, want);
			rank++;
		}
		T_CHECK(py && pclose(py) == 0, "python3 ran");
		T_CHECK(rank == st.iterations, "%s: python found %zu",
			files[f].name, rank);
		/* The same with full validation. */
		store_close(s);
		s = t_store_open(p, STORE_VALIDATE);
		T_CHECK(stats(s).iterations == files[f].records, "validated");
		store_close(s);
		free(p);
	}
	free(script);
}

/* --- readers against a refresher ----------------------------------------- */

struct race {
	struct store *s;
	atomic_int stop;
	atomic_int bad;
};

static void *reader(void *arg)
{
	struct race *rc = arg;
	struct buf b = BUF_INIT;
	unsigned seed = (unsigned)(uintptr_t)&b;

	while (!atomic_load(&rc->stop)) {
		int64_t it[16], hi, n64;
		size_t n, k;
		bool found, has;
		struct store_code codes[4];
		unsigned char d[HASH_LEN];

		if (store_highest(rc->s, &hi, &found) < 0 || !found)
			continue;
		seed = seed * 1103515245u + 12345u;
		if (store_list(rc->s, (seed >> 8) % ((size_t)hi + 1), it, 16,
			       &n) < 0)
			atomic_fetch_add(&rc->bad, 1);
		for (k = 0; k < n; k++) {
			int r;

			buf_reset(&b);
			r = store_read(rc->s, it[k], &b);
			/* A reset may remove it in between; never wrong bytes. */
			if (r == -ENOENT)
				continue;
			if (r < 0 ||
			    record_iteration(b.data, b.len, &n64, &found) < 0 ||
			    !found || n64 != it[k])
				atomic_fetch_add(&rc->bad, 1);
			r = store_code_of(rc->s, it[k], d, &has);
			if (r < 0 && r != -ENOENT)
				atomic_fetch_add(&rc->bad, 1);
		}
		if (store_codes(rc->s, 0, codes, 4, &n) < 0)
			atomic_fetch_add(&rc->bad, 1);
	}
	buf_free(&b);
	return NULL;
}

/* Replace `path` atomically by `len` bytes. */
static void replace_bytes(const char *path, const char *p, size_t len)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	t_write_file(tmp, p, len);
	if (rename(tmp, path) < 0)
		abort();
}

static void test_readers_race_refresh(void)
{
	char *p = fresh_path("race");
	struct gen g = { .seed = 3 };
	struct race rc;
	pthread_t th[4];
	struct store_change c;
	int64_t i;
	int k;

	atomic_init(&rc.stop, 0);
	atomic_init(&rc.bad, 0);
	for (i = 0; i < 50; i++)
		gen_record(&g, i, false, true, false);
	t_write_file(p, g.text.data, g.text.len);
	rc.s = t_store_open(p, STORE_TIMES);
	for (k = 0; k < 4; k++)
		if (pthread_create(&th[k], NULL, reader, &rc) != 0)
			abort();
	for (i = 50; i < 400; i++) {
		size_t had = g.text.len;

		gen_record(&g, i % 7 == 0 ? i / 2 : i, false, i % 2, false);
		if (i % 50 == 1) {
			/* Other content, then this: two resets. */
			replace_bytes(p, g.text.data + 1, g.text.len - 1);
			T_CHECK(refresh_take(rc.s, &c) == 0 && c.reset,
				"reset");
			store_change_free(&c);
			replace_bytes(p, g.text.data, g.text.len);
		} else if (i % 3 == 0) {
			replace_bytes(p, g.text.data, g.text.len);
		} else {
			append_str(p, g.text.data + had);
		}
		T_CHECK(refresh_take(rc.s, &c) == 0, "refresh %" PRId64, i);
		store_change_free(&c);
	}
	atomic_store(&rc.stop, 1);
	for (k = 0; k < 4; k++)
		pthread_join(th[k], NULL);
	T_CHECK(atomic_load(&rc.bad) == 0, "%d bad reads",
		atomic_load(&rc.bad));
	check_against_gen(rc.s, &g);
	store_close(rc.s);
	gen_free(&g);
	free(p);
}

/* The shape as "key:types,key:types" (types as RECORD_T_* bits in hex),
 * then "|" and the dialect keys in use. */
static void shape_text(struct store *s, char *out, size_t max)
{
	struct store_shape sh;
	size_t i, o = 0;
	unsigned f;

	out[0] = '\0';
	T_CHECK(store_shape(s, &sh) == 0, "store_shape");
	for (i = 0; i < sh.n && o + 64 < max; i++)
		o += (size_t)snprintf(out + o, max - o, "%s%s:%x",
				      i ? "," : "", sh.f[i].key,
				      sh.f[i].types);
	o += (size_t)snprintf(out + o, max - o, "|");
	for (f = 0; f < FIELD_COUNT && o + 32 < max; f++)
		if (sh.dialect[f])
			o += (size_t)snprintf(out + o, max - o, "%s ",
					      sh.dialect[f]);
	store_shape_free(&sh);
}

#define CHECK_SHAPE(s, want)                                             \
	do {                                                             \
		char got_[4096];                                         \
		shape_text((s), got_, sizeof(got_));                     \
		T_CHECK(strcmp(got_, (want)) == 0, "shape %s, want %s",  \
			got_, (want));                                   \
	} while (0)

/* What every record carries, kept up to date line by line, with every
 * flag combination alike. */
static void test_shape(void)
{
	static const unsigned flags[] = { 0, STORE_VALIDATE, STORE_TIMES,
					  STORE_VALIDATE | STORE_TIMES };
	char *p = fresh_path("shape");
	struct store *s;
	size_t k;

	for (k = 0; k < 4; k++) {
		write_str(p, "{\"iteration\": 0, \"code\": \"a\", \"m\": {\"x\": "
			     "[1, \"}\"]}, \"f\": null, \"q\\u0031\": 1}\n"
			     "not json\n"
			     "{\"iteration\": 1, \"strategy_code\": null, "
			     "\"m\": [], \"f\": \"s\", \"q1\": true, \"z\": 1}\n");
		s = t_store_open(p, flags[k]);
		/* code and strategy_code are one field; q\u0031 is q1. */
		CHECK_SHAPE(s, "iteration:2,strategy_code:21,m:c,f:21,q1:12|"
			       "iteration strategy_code ");
		T_CHECK(stats(s).records == 2 && stats(s).skipped == 1,
			"flags %u: records", flags[k]);
		/* A record without m shrinks it; one laid out alike adds
		 * nothing, the code alias of the latest record is the name. */
		append_str(p, "{\"iteration\": 2, \"code\": \"x\", \"f\": \"t\", "
			      "\"q1\": 2}\n"
			      "{\"iteration\": 3, \"code\": \"y\", \"f\": \"u\", "
			      "\"q1\": 3}\n");
		T_CHECK(store_refresh(s) == 0, "refresh");
		CHECK_SHAPE(s, "iteration:2,code:21,f:21,q1:12|iteration code ");
		/* A full re-index recomputes: replaced by other content. */
		replace_str(p, "{\"iteration_num\": 5, \"b\": 1}\n");
		T_CHECK(store_refresh(s) == 0, "refresh after replace");
		CHECK_SHAPE(s, "iteration_num:2,b:2|iteration_num ");
		store_close(s);
	}
	/* An empty store has no shape. */
	write_str(p, "");
	s = t_store_open(p, 0);
	CHECK_SHAPE(s, "|");
	store_close(s);
	free(p);
}

/* A torn record completed by a later write is read once for the shape;
 * a torn tail that is no record does not shrink it. */
static void test_shape_across_a_torn_tail(void)
{
	char *p = fresh_path("shape-tail");
	struct store *s;

	write_str(p, "{\"iteration\": 0, \"a\": 1, \"b\": 2}\n"
		     "{\"iteration\": 1, \"a\": 1, \"b\": 2}");
	s = t_store_open(p, 0);
	CHECK_SHAPE(s, "iteration:2,a:2,b:2|iteration ");
	append_str(p, "\n{\"iteration\": 2, \"a\"");
	T_CHECK(store_refresh(s) == 0, "refresh");
	CHECK_SHAPE(s, "iteration:2,a:2,b:2|iteration ");
	append_str(p, ": \"x\"}\n");
	T_CHECK(store_refresh(s) == 0, "refresh");
	CHECK_SHAPE(s, "iteration:2,a:3|iteration ");
	T_CHECK(stats(s).records == 3, "records %llu",
		(unsigned long long)stats(s).records);
	store_close(s);
	free(p);
}

/* Real histories: the same shape with and without validation. */
static void test_shape_of_real_histories(void)
{
	static const char *const names[] = {
		"llm_only_50.jsonl", "json_mode_test.jsonl",
		"unified_factor_graph.jsonl", "migrated_no_code.jsonl",
	};
	size_t k;

	for (k = 0; k < 4; k++) {
		char *path = t_real_data(names[k]);
		char a[4096], b[4096];
		struct store *s;

		if (!path)
			continue;
		s = t_store_open(path, 0);
		shape_text(s, a, sizeof(a));
		store_close(s);
		s = t_store_open(path, STORE_VALIDATE | STORE_TIMES);
		shape_text(s, b, sizeof(b));
		store_close(s);
		T_CHECK(strcmp(a, b) == 0 && strstr(a, "metrics:4"),
			"%s: %s vs %s", names[k], a, b);
		free(path);
	}
}

/* A trusted line whose strings or brackets do not close is no record. */
static void test_fast_path_rejects_unbalanced_lines(void)
{
	char *p = fresh_path("unbalanced");
	struct store *s;

	write_str(p, "{\"iteration\": 0}\n"
		     "{\"iteration\": 1, \"x\": \"abc}\n"
		     "{\"iteration\": 2, \"x\": [1, {\"y\": 2}}\n"
		     "{\"iteration\": 3, \"x\": \"a\\\"}\n"
		     "{\"iteration\": 4, \"x\": \"a\\\\\"}\n");
	s = t_store_open(p, 0);
	CHECK_LIST(s, "0,4");
	CHECK_SKIPPED(s, "2,3,4");
	store_close(s);
	free(p);
}

/* Numbers the tree cannot show are not records: counted, reported with
 * the skipped lines, and the highest stays the highest shown. */
static void test_numbers_beyond_the_limit(void)
{
	char *p = fresh_path("beyond");
	struct store_stats st;
	struct store *s;
	int64_t hi;
	bool found;

	write_str(p, "{\"iteration\": 4398046511102}\n"
		     "{\"iteration\": 4398046511103}\n"
		     "{\"iteration\": 7}\n"
		     "{\"iteration\": 99999999999999999999}\n"
		     "{\"iteration\": 9223372036854775807}");
	s = t_store_open(p, STORE_VALIDATE);
	CHECK_LIST(s, "7,4398046511102");
	CHECK_SKIPPED(s, "2,4,5");
	st = stats(s);
	T_CHECK(st.beyond == 3 && st.skipped == 3, "beyond %llu",
		(unsigned long long)st.beyond);
	T_CHECK(store_highest(s, &hi, &found) == 0 && found &&
		hi == STORE_ITER_MAX, "highest %lld", (long long)hi);
	/* The unterminated last line is read again when it grows. */
	append_str(p, "\n{\"iteration\": 8}\n");
	T_CHECK(store_refresh(s) == 0, "refresh");
	st = stats(s);
	T_CHECK(st.beyond == 3 && st.skipped == 3 && st.records == 3,
		"after growing: beyond %llu skipped %llu records %llu",
		(unsigned long long)st.beyond, (unsigned long long)st.skipped,
		(unsigned long long)st.records);
	store_close(s);
	free(p);
}

/* Python reads nesting up to about 994 deep: such a line is a record. */
static void test_deep_nesting_is_a_record(void)
{
	char *p = fresh_path("deep"), *line;
	size_t depth = 900, i, o = 0;
	struct store *s;

	line = malloc(depth * 2 + 64);
	if (!line)
		abort();
	o += (size_t)sprintf(line, "{\"iteration\": 0, \"m\": ");
	for (i = 0; i < depth; i++)
		line[o++] = '[';
	for (i = 0; i < depth; i++)
		line[o++] = ']';
	strcpy(line + o, "}\n");
	write_str(p, line);
	s = t_store_open(p, STORE_VALIDATE | STORE_TIMES);
	CHECK_LIST(s, "0");
	store_close(s);
	free(line);
	free(p);
}

/* The fast scan reads the number where it is first and trusted; a
 * validated line, or the number further in, must read the same, for many
 * shapes of number. */
static void test_fast_scan_reads_numbers_like_the_walk(void)
{
	static const char *const nums[] = {
		"0", "1", "10", "123456789", "4398046511102",
		"4398046511103", "9223372036854775808", "-1", "-0", "1.0",
		"1e3", "00", "07", "\"3\"", "null",
	};
	static const char *const fmt[] = {
		"{\"iteration\": %s, \"z\": 1}\n", "{\"iteration\":%s}\n",
		"{\"iteration_num\": %s, \"z\": [1]}\n",
		"{\"iteration_num\":%s }\n",
	};
	char *p = fresh_path("numbers");
	char a[160], b[176], la[64], lv[64], lb[64];
	struct store *s;
	size_t i, j;

	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		for (j = 0; j < sizeof(fmt) / sizeof(fmt[0]); j++) {
			snprintf(a, sizeof(a), fmt[j], nums[i]);
			snprintf(b, sizeof(b), "{\"y\": 0, %s", a + 1);
			write_str(p, a);
			s = t_store_open(p, 0);
			listed(s, la, sizeof(la));
			store_close(s);
			s = t_store_open(p, STORE_VALIDATE);
			listed(s, lv, sizeof(lv));
			store_close(s);
			write_str(p, b);
			s = t_store_open(p, 0);
			listed(s, lb, sizeof(lb));
			store_close(s);
			T_CHECK(strcmp(la, lv) == 0 && strcmp(la, lb) == 0,
				"%s: fast '%s', validated '%s', later '%s'", a,
				la, lv, lb);
		}
	}
	free(p);
}

/* by-hash of an empty store: nothing, and no pointer arithmetic on the
 * absent entry array (UBSan). */
static void test_by_hash_of_an_empty_store(void)
{
	char *p = fresh_path("empty-hash");
	struct store_code c[1];
	struct store *s;
	size_t n = 9;

	write_str(p, "");
	s = t_store_open(p, 0);
	T_CHECK(store_codes(s, 0, c, 1, &n) == 0 && n == 0, "codes %zu", n);
	store_close(s);
	free(p);
}

/* --- STORE_LAZY: the quick index, then the full validation ---------------- */

#define LAZY (STORE_TIMES | STORE_VALIDATE | STORE_LAZY)

/* Every shown iteration of `full` (opened with the full scan) looks up and
 * reads the same in `lazy`, pending or not. */
static void check_lookups_match(struct store *full, struct store *lazy,
				const char *what)
{
	int64_t it[512];
	size_t start = 0, n, i;
	struct buf a = BUF_INIT, b = BUF_INIT;

	do {
		T_CHECK(store_list(full, start, it, 512, &n) == 0, "list");
		for (i = 0; i < n; i++) {
			struct store_rec x, y;
			int r;

			T_CHECK(store_lookup(full, it[i], &x) == 0, "lookup");
			r = store_lookup(lazy, it[i], &y);
			T_CHECK(r == 0 && x.offset == y.offset &&
				x.len == y.len && x.lineno == y.lineno &&
				x.mtime == y.mtime && x.replaced == y.replaced &&
				x.tag == y.tag,
				"%s: iteration %" PRId64 ": %d, offset %" PRIu64
				" / %" PRIu64 ", mtime %" PRId64 " / %" PRId64,
				what, it[i], r, x.offset, y.offset, x.mtime,
				y.mtime);
			buf_reset(&a);
			buf_reset(&b);
			T_CHECK(store_read(full, it[i], &a) == 0 &&
				store_read(lazy, it[i], &b) == 0 &&
				a.len == b.len &&
				memcmp(a.data, b.data, a.len) == 0,
				"%s: line of %" PRId64, what, it[i]);
		}
		start += n;
	} while (n);
	buf_free(&a);
	buf_free(&b);
}

/* After its validation `lazy` is `full`: counts, skipped lines, numbers,
 * shape. */
static void check_validated_match(struct store *full, struct store *lazy,
				  const char *what)
{
	struct store_stats x = stats(full), y;
	struct store_shape sx, sy;
	uint64_t *lx, *ly;
	int64_t a[512], b[512];
	size_t tx, ty, start = 0, na, nb, i;

	T_CHECK(store_validate(lazy, NULL) == 0, "%s: validate", what);
	y = stats(lazy);
	T_CHECK(!y.pending && !x.pending, "%s: pending", what);
	T_CHECK(x.lines == y.lines && x.records == y.records &&
		x.iterations == y.iterations && x.skipped == y.skipped &&
		x.beyond == y.beyond && x.duplicates == y.duplicates &&
		x.file_size == y.file_size,
		"%s: lines %" PRIu64 "/%" PRIu64 " records %" PRIu64 "/%" PRIu64
		" iterations %" PRIu64 "/%" PRIu64 " skipped %" PRIu64 "/%"
		PRIu64 " beyond %" PRIu64 "/%" PRIu64 " dups %" PRIu64 "/%"
		PRIu64, what, x.lines, y.lines, x.records, y.records,
		x.iterations, y.iterations, x.skipped, y.skipped, x.beyond,
		y.beyond, x.duplicates, y.duplicates);
	lx = calloc(x.skipped + 1, sizeof(*lx));
	ly = calloc(x.skipped + 1, sizeof(*ly));
	if (!lx || !ly)
		abort();
	store_skipped(full, lx, x.skipped, &tx);
	store_skipped(lazy, ly, x.skipped, &ty);
	T_CHECK(tx == ty && memcmp(lx, ly, tx * sizeof(*lx)) == 0,
		"%s: skipped line numbers", what);
	free(lx);
	free(ly);
	do {
		store_list(full, start, a, 512, &na);
		store_list(lazy, start, b, 512, &nb);
		T_CHECK(na == nb && memcmp(a, b, na * sizeof(*a)) == 0,
			"%s: listed from %zu", what, start);
		start += na;
	} while (na && na == nb);
	T_CHECK(store_shape(full, &sx) == 0 && store_shape(lazy, &sy) == 0,
		"%s: shape", what);
	T_CHECK(sx.records == sy.records && sx.n == sy.n, "%s: shape size",
		what);
	for (i = 0; i < sx.n && i < sy.n; i++)
		T_CHECK(strcmp(sx.f[i].key, sy.f[i].key) == 0 &&
			sx.f[i].types == sy.f[i].types, "%s: shape field %zu",
			what, i);
	for (i = 0; i < FIELD_COUNT; i++)
		T_CHECK(sx.dialect[i] == sy.dialect[i], "%s: dialect %zu",
			what, i);
	store_shape_free(&sx);
	store_shape_free(&sy);
	check_lookups_match(full, lazy, what);
}

static void check_lazy_is_full(const char *path, const char *what)
{
	struct store *full = t_store_open(path, STORE_TIMES | STORE_VALIDATE);
	struct store *lazy = t_store_open(path, LAZY);

	/* Pending, every answer about one iteration is already exact. */
	check_lookups_match(full, lazy, what);
	check_validated_match(full, lazy, what);
	store_close(lazy);
	/* And the validation alone, without lookups first. */
	lazy = t_store_open(path, LAZY);
	check_validated_match(full, lazy, what);
	store_close(lazy);
	store_close(full);
}

static const char lazy_bad[] =
	"{\"iteration\": 0, \"code\": \"a\"}\n"
	"{\"iteration\": 1, \"code\": \"old\"}\n"
	"{\"iteration\": 1, \"code\": \"new\" \"oops\"}\n"
	"{\"iteration\": 2, \"code\": \"b\"}\n"
	"{\"iteration\": 3, \"x\": tru}\n";

static void test_lazy_hides_a_fast_line_that_is_no_record(void)
{
	char *p = fresh_path("lazy-bad");
	struct store_change c = { 0 };
	struct store_rec r;
	struct store *s;

	write_str(p, lazy_bad);
	s = t_store_open(p, LAZY);
	/* The quick index takes lines 3 and 5 at their word. */
	T_CHECK(stats(s).pending && stats(s).skipped == 0, "quick counts");
	CHECK_LIST(s, "0,1,2,3");
	store_changes_take(s, &c);
	T_CHECK(!c.changed, "nothing changed yet");
	store_change_free(&c);
	/* Looking up 1 finds line 3 is no record: the earlier line shows. */
	T_CHECK(store_lookup(s, 1, &r) == 0 && r.lineno == 2 && !r.replaced,
		"iteration 1 shows line %" PRIu64, r.lineno);
	check_line(s, 1, "{\"iteration\": 1, \"code\": \"old\"}");
	T_CHECK(!stats(s).pending && stats(s).skipped == 2, "exact counts");
	CHECK_SKIPPED(s, "3,5");
	CHECK_LIST(s, "0,1,2");
	T_CHECK(store_lookup(s, 3, &r) == -ENOENT, "3 is gone");
	store_changes_take(s, &c);
	CHECK_CHG(&c, false, "1,3");
	store_change_free(&c);
	store_close(s);

	/* A lookup of the number whose only line is no record. */
	s = t_store_open(p, LAZY);
	T_CHECK(store_lookup(s, 3, &r) == -ENOENT, "3 never shows");
	CHECK_LIST(s, "0,1,2");
	store_close(s);
	/* A read, and the shape, wait for the validation too. */
	s = t_store_open(p, LAZY);
	check_line(s, 1, "{\"iteration\": 1, \"code\": \"old\"}");
	T_CHECK(!stats(s).pending, "read validated");
	store_close(s);
	check_lazy_is_full(p, "lazy-bad");
	free(p);
}

/* {"iteration": 1, ..., "iteration": 5} is 5's line (the last duplicate
 * counts); the fast path reads 1. */
static void test_lazy_finds_a_number_the_fast_path_misread(void)
{
	char *p = fresh_path("lazy-dup");
	struct store_change c = { 0 };
	struct store_rec r;
	struct store *s;

	write_str(p, "{\"iteration\": 0}\n"
		     "{\"iteration\": 1, \"a\": 1, \"iteration\": 5}\n");
	s = t_store_open(p, LAZY);
	CHECK_LIST(s, "0,1");
	T_CHECK(store_lookup(s, 5, &r) == 0 && r.lineno == 2,
		"5 found on line 2");
	T_CHECK(!stats(s).pending, "validated");
	CHECK_LIST(s, "0,5");
	T_CHECK(store_lookup(s, 1, &r) == -ENOENT, "1 is none");
	store_changes_take(s, &c);
	CHECK_CHG(&c, false, "1,5");
	store_change_free(&c);
	store_close(s);
	/* The same through a read, and through a lookup of the misread
	 * number. */
	s = t_store_open(p, LAZY);
	check_line(s, 5, "{\"iteration\": 1, \"a\": 1, \"iteration\": 5}");
	store_close(s);
	s = t_store_open(p, LAZY);
	T_CHECK(store_lookup(s, 1, &r) == -ENOENT, "1 never shows");
	store_close(s);
	check_lazy_is_full(p, "lazy-dup");
	free(p);
}

struct vwait {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int calls;
};

static void on_validated(void *arg)
{
	struct vwait *w = arg;

	pthread_mutex_lock(&w->mu);
	w->calls++;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

/* The iterations of `n` as "0,1,5" into out. */
static void iters_text(const int64_t *it, size_t n, char *out, size_t max)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < n && o + 24 < max; i++)
		o += (size_t)snprintf(out + o, max - o, "%s%" PRId64,
				      i ? "," : "", it[i]);
}

/* The views of s as one line: ranking m, failed, and each code's first
 * iteration and count in digest order. */
static void views_text(struct store *s, char *out, size_t max)
{
	int64_t it[64];
	struct store_code c[64];
	char a[512], b[512];
	size_t n, total, i, o;

	T_CHECK(store_metric_rank(s, "m", 0, it, 64, &n, &total) == 0,
		"rank m");
	iters_text(it, n, a, sizeof(a));
	T_CHECK(store_failed(s, 0, it, 64, &n) == 0, "failed");
	iters_text(it, n, b, sizeof(b));
	o = (size_t)snprintf(out, max, "m %s; failed %s; codes", a, b);
	T_CHECK(store_codes(s, 0, c, 64, &n) == 0, "codes");
	for (i = 0; i < n && o + 48 < max; i++)
		o += (size_t)snprintf(out + o, max - o, " %" PRId64 "x%zu",
				      c[i].first_iter, c[i].count);
}

/* A pending store's views are built on the quick index, without waiting
 * for the validation, and its swap hands them what it found: afterwards
 * they are those of the same file opened whole. */
static void test_lazy_views_follow_the_validation(void)
{
	static const char text[] =
		"{\"iteration\": 0, \"code\": \"a\", \"metrics\": {\"m\": 1}}\n"
		"{\"iteration\": 1, \"code\": \"old\", \"metrics\": {\"m\": 2}}\n"
		"{\"iteration\": 1, \"code\": \"new\", \"metrics\": {\"m\": 9},"
		" \"x\": tru}\n"
		"{\"iteration\": 2, \"code\": \"a\", \"metrics\": {\"m\": 3},"
		" \"error\": \"boom\"}\n"
		"{\"iteration\": 3, \"code\": \"c\", \"metrics\": {\"m\": 4},"
		" \"error\": \"x\", \"x\": tru}\n";
	char *p = fresh_path("lazy-views");
	char quick[1024], exact[1024], whole[1024];
	struct vwait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0 };
	struct store_change c = { 0 };
	struct store *s, *full;
	bool changed = false;

	write_str(p, text);
	full = t_store_open(p, STORE_TIMES | STORE_VALIDATE);
	views_text(full, whole, sizeof(whole));
	T_CHECK(strncmp(whole, "m 2,1,0; failed 2;", 18) == 0, "whole: %s",
		whole);
	s = t_store_open(p, LAZY);
	views_text(s, quick, sizeof(quick));
	/* Built on the lines the quick index took at their word. */
	T_CHECK(stats(s).pending, "the views did not validate");
	T_CHECK(strncmp(quick, "m 1,3,2,0; failed 2,3;", 22) == 0,
		"quick views: %s", quick);
	T_CHECK(store_validate(s, &changed) == 0 && changed, "validate");
	views_text(s, exact, sizeof(exact));
	T_CHECK(strcmp(exact, whole) == 0, "after validation: %s, want %s",
		exact, whole);
	store_changes_take(s, &c);
	CHECK_CHG(&c, false, "1,3");
	store_change_free(&c);
	store_close(s);

	/* The same through the validation thread, the views built while it
	 * runs (the race ThreadSanitizer looks at). */
	s = t_store_open(p, LAZY);
	T_CHECK(store_validate_start(s, on_validated, &w) == 0, "start");
	views_text(s, quick, sizeof(quick));
	pthread_mutex_lock(&w.mu);
	while (!w.calls)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	store_validate_stop(s);
	views_text(s, exact, sizeof(exact));
	T_CHECK(strcmp(exact, whole) == 0, "thread: %s, want %s", exact,
		whole);
	store_close(s);
	store_close(full);
	free(p);
}

static void test_lazy_validation_thread_reports_the_change(void)
{
	char *p = fresh_path("lazy-thread");
	struct vwait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0 };
	struct store_change c = { 0 };
	struct store *s;

	write_str(p, lazy_bad);
	s = t_store_open(p, LAZY);
	T_CHECK(store_validate_start(s, on_validated, &w) == 0, "start");
	T_CHECK(store_validate_start(s, on_validated, &w) == -EBUSY,
		"one thread");
	pthread_mutex_lock(&w.mu);
	while (!w.calls)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	store_validate_stop(s);
	T_CHECK(w.calls == 1, "called %d times", w.calls);
	T_CHECK(!stats(s).pending, "validated");
	store_changes_take(s, &c);
	CHECK_CHG(&c, false, "1,3");
	store_change_free(&c);
	CHECK_LIST(s, "0,1,2");
	store_close(s);

	/* Nothing differs: no call, no change. */
	write_str(p, "{\"iteration\": 0}\n{\"iteration\": 1}\n");
	s = t_store_open(p, LAZY);
	T_CHECK(store_validate_start(s, on_validated, &w) == 0, "start");
	store_validate_stop(s);
	T_CHECK(store_validate(s, NULL) == 0 && !stats(s).pending, "valid");
	store_changes_take(s, &c);
	T_CHECK(!c.changed, "no change");
	store_change_free(&c);
	T_CHECK(w.calls == 1, "not called");
	store_close(s);
	/* A store opened whole has nothing to validate. */
	s = t_store_open(p, STORE_TIMES | STORE_VALIDATE);
	T_CHECK(store_validate_start(s, on_validated, &w) == 0 &&
		!stats(s).pending, "not pending");
	store_close(s);
	free(p);
}

static void test_lazy_refresh_and_adopt_build_on_the_exact_index(void)
{
	char *p = fresh_path("lazy-refresh");
	struct store_change c = { 0 };
	struct store *s;

	write_str(p, lazy_bad);
	s = t_store_open(p, LAZY);
	append_str(p, "{\"iteration\": 4}\n");
	T_CHECK(refresh_take(s, &c) == 0, "refresh");
	T_CHECK(!stats(s).pending && stats(s).skipped == 2, "validated");
	CHECK_LIST(s, "0,1,2,4");
	store_change_free(&c);
	store_changes_take(s, &c);
	store_change_free(&c);
	/* The writer's adopt of a file that extends this one. */
	store_close(s);
	s = t_store_open(p, LAZY);
	append_str(p, "{\"iteration\": 5}\n");
	T_CHECK(adopt_take(s, p, &c) == 0, "adopt");
	CHECK_LIST(s, "0,1,2,4,5");
	T_CHECK(stats(s).skipped == 2, "skipped");
	store_change_free(&c);
	store_close(s);
	free(p);
}

/* A generated history with every kind of line the quick scan must get
 * right: both dialects, the number first or late, CRLF, a BOM, blank
 * lines, garbage, torn lines, lines that look fast but are no record or
 * carry another number, numbers past the limit, duplicates. */
static void gen_mixed(struct gen *g, size_t records, bool bom)
{
	static const char *odd[] = {
		"{\"iteration\": 7, \"code\": \"x\" \"y\"}",
		"{\"iteration\": 8, \"a\": 1, \"iteration\": 9}",
		"{\"iteration_num\": 10, \"iteration\": 11}",
		"{\"iteration_num\": 12, \"iteration\": \"x\"}",
		"{\"iteration\": 999999999999999999999, \"a\": 1}",
		"{\"iteration\": 288230376151711743}",
		"{\"iteration\": 288230376151711742}",
		"{\"iteration\": 05, \"a\": 1}",
		"{\"iteration\": -0, \"a\": 1}",
		"{\"iteration\": 13.0, \"a\": 1}",
		"{\"iteration\":14,\"a\":[1,{\"b\":\"}\"}]}",
		"{\"iteration\": 15, \"a\": {\"b\": 1}",
		"{\"iteration\": 16, \"a\": \"\\u12\"}",
		"{\"iteration\": 17, \"a\": NaN, \"b\": -Infinity}",
		"{\"iteration\": 18 , \"a\": 1}  ",
		"{\"iteration\": 19}",
		"{\"iteration\": 20, \"timestamp\": \"2025-01-02T03:04:05Z\"}",
		"{\"iteration\": 21, \"timestamp\": \"bad\"}",
		"[1, 2]",
		"garbage",
		"{\"iteration\": 22, \"a\": 1} x}",
		"{\"iteration\": 23, \"a\": \"unterminated}",
		"   ",
	};
	size_t i;

	if (bom && buf_puts(&g->text, "\xef\xbb\xbf") < 0)
		abort();
	for (i = 0; i < records; i++) {
		unsigned k = gen_rand(g);

		gen_record(g, (int64_t)(k % 5 == 0 ? i / 2 : i), k & 1,
			   (k & 6) != 0, (k & 8) && (k & 16));
		if (gen_rand(g) % 4 == 0) {
			const char *o = odd[gen_rand(g) % (sizeof(odd) /
							     sizeof(odd[0]))];

			if (buf_puts(&g->text, o) < 0 ||
			    buf_putc(&g->text, '\n') < 0)
				abort();
			g->lineno++;
		}
	}
}

static void test_lazy_counts_match_the_full_scan(void)
{
	static const char *real[] = { "llm_only_50.jsonl",
				      "unified_factor_graph.jsonl",
				      "json_mode_test.jsonl",
				      "migrated_no_code.jsonl" };
	static const char *tails[] = { "", "{\"iteration\": 90, \"a\": 1",
				       "{\"iteration\": 91}", "{\"iteration\": 92} ",
				       "garbage" };
	size_t i;

	for (i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
		char *p = t_real_data(real[i]);

		if (!p) {
			printf("# skip %s: ITERFS_REAL_DATA not present\n",
			       real[i]);
			continue;
		}
		check_lazy_is_full(p, real[i]);
		free(p);
	}
	for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		struct gen g = { BUF_INIT, NULL, 0, 0, (unsigned)i + 7 };
		char *p = fresh_path("lazy-gen"), what[64];

		gen_mixed(&g, 300, i % 2);
		if (buf_puts(&g.text, tails[i]) < 0)
			abort();
		t_write_file(p, g.text.data, g.text.len);
		snprintf(what, sizeof(what), "generated %zu", i);
		check_lazy_is_full(p, what);
		gen_free(&g);
		free(p);
	}
}

/* Large enough to be split over the CPUs (scan_quick's parts start at a
 * LF somewhere in the middle). */
static void test_lazy_large_history_split_in_parts(void)
{
	struct gen g = { BUF_INIT, NULL, 0, 0, 99 };
	char *p = fresh_path("lazy-large");

	gen_mixed(&g, 7000, false);
	T_CHECK(g.text.len > ((size_t)32 << 20), "%zu bytes", g.text.len);
	t_write_file(p, g.text.data, g.text.len);
	check_lazy_is_full(p, "large");
	gen_free(&g);
	free(p);
}

int main(void)
{
	T_RUN(test_both_dialects_key_first_and_late);
	T_RUN(test_lines_read_back_exactly);
	T_RUN(test_bom_crlf_and_empty_lines);
	T_RUN(test_bad_lines_are_skipped_with_their_numbers);
	T_RUN(test_only_full_validation_catches_a_broken_middle);
	T_RUN(test_torn_tail_and_valid_last_line);
	T_RUN(test_duplicates_later_line_wins);
	T_RUN(test_out_of_order_numbers);
	T_RUN(test_list_pages);
	T_RUN(test_times_only_when_asked);
	T_RUN(test_refresh_after_append_in_place);
	T_RUN(test_refresh_completes_a_torn_tail);
	T_RUN(test_refresh_after_a_valid_unterminated_line);
	T_RUN(test_refresh_after_rename_with_the_same_prefix);
	T_RUN(test_refresh_after_rename_with_other_content);
	T_RUN(test_refresh_after_truncation);
	T_RUN(test_adopt_indexes_only_the_tail);
	T_RUN(test_missing_file_is_an_empty_store);
	T_RUN(test_by_hash_groups);
	T_RUN(test_by_hash_of_a_large_history);
	T_RUN(test_by_hash_updates_match_a_rebuild);
	T_RUN(test_long_lines_cross_read_chunks);
	T_RUN(test_index_memory_per_record);
	T_RUN(test_packed_index_side_tables);
	T_RUN(test_real_histories);
	T_RUN(test_readers_race_refresh);
	T_RUN(test_shape);
	T_RUN(test_shape_across_a_torn_tail);
	T_RUN(test_shape_of_real_histories);
	T_RUN(test_fast_path_rejects_unbalanced_lines);
	T_RUN(test_numbers_beyond_the_limit);
	T_RUN(test_deep_nesting_is_a_record);
	T_RUN(test_by_hash_of_an_empty_store);
	T_RUN(test_fast_scan_reads_numbers_like_the_walk);
	T_RUN(test_lazy_hides_a_fast_line_that_is_no_record);
	T_RUN(test_lazy_finds_a_number_the_fast_path_misread);
	T_RUN(test_lazy_views_follow_the_validation);
	T_RUN(test_lazy_validation_thread_reports_the_change);
	T_RUN(test_lazy_refresh_and_adopt_build_on_the_exact_index);
	T_RUN(test_lazy_counts_match_the_full_scan);
	T_RUN(test_lazy_large_history_split_in_parts);
	return t_done();
}
