/* test_outside.c - writers that ignore the lock, made deterministic with
 * the fault hook: the store must never trust a prefix it did not check, and
 * lines that vanish in a replace are kept in "<store>.lost/", never lost
 * silently. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fault.h"
#include "hash.h"
#include "record.h"
#include "store.h"
#include "writer.h"

static void replace_file(const char *path, const char *data, size_t len)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s.outside-tmp", path);
	t_write_file(tmp, data, len);
	if (rename(tmp, path) < 0)
		abort();
}

/* Every line of the file at `path` that carries a number must be what the
 * store reads for that number (the last such line), and the store shows no
 * other numbers. */
static void check_serves_the_file(struct store *s, const char *path)
{
	size_t len, n = 0, shown = 0;
	char *data = t_read_file(path, &len), *p, *lf;
	struct store_stats st;

	T_CHECK(data != NULL, "read %s", path);
	for (p = data; data && p < data + len; p = lf + 1) {
		struct buf line = BUF_INIT;
		int64_t it, later;
		bool found;
		char *q;

		lf = memchr(p, '\n', (size_t)(data + len - p));
		if (!lf)
			lf = data + len;
		if (record_iteration(p, (size_t)(lf - p), &it, &found) < 0 ||
		    !found)
			continue;
		n++;
		/* A later line with the same number is the one shown. */
		for (q = lf + 1; q < data + len;) {
			char *e = memchr(q, '\n', (size_t)(data + len - q));

			if (!e)
				e = data + len;
			if (record_iteration(q, (size_t)(e - q), &later,
					     &found) == 0 && found &&
			    later == it)
				break;
			q = e + 1;
		}
		if (q < data + len)
			continue;
		shown++;
		T_CHECK(store_read(s, it, &line) == 0 &&
			line.len == (size_t)(lf - p) &&
			memcmp(line.data, p, line.len) == 0,
			"iteration %" PRId64 " reads other bytes than the file",
			it);
		buf_free(&line);
	}
	T_CHECK(store_stats(s, &st) == 0 && st.iterations == shown,
		"the store shows %" PRIu64 " iterations, the file %zu",
		st.iterations, shown);
	free(data);
}

/* All lines kept under "<store>.lost/", concatenated. */
static char *lost_lines(const char *store, size_t *files)
{
	char dir[4096], f[8192];
	struct buf all = BUF_INIT;
	struct dirent **de;
	int n, i;

	snprintf(dir, sizeof(dir), "%s.lost", store);
	*files = 0;
	n = scandir(dir, &de, NULL, alphasort);
	for (i = 0; i < n; i++) {
		size_t len;
		char *d;

		if (de[i]->d_name[0] != '.') {
			snprintf(f, sizeof(f), "%s/%s", dir, de[i]->d_name);
			d = t_read_file(f, &len);
			if (d && buf_append(&all, d, len) < 0)
				abort();
			free(d);
			(*files)++;
		}
		free(de[i]);
	}
	if (n >= 0)
		free(de);
	if (!all.data && buf_putc(&all, '\0') < 0)
		abort();
	return all.data;
}

struct racer {
	const char *path;
	const char *content;  /* what the outside writer saves */
	int calls;
};

static void outside_save(const char *step, void *arg)
{
	struct racer *r = arg;

	(void)step;
	r->calls++;
	replace_file(r->path, r->content, strlen(r->content));
}

/* The Python loop saved (its read of the store came before our commit, so
 * its file lacks our record, and json.dumps spaces every line differently)
 * between our rename and store_adopt.  Before the fix the index pointed
 * into the loop's file at our file's offsets until a remount. */
static void test_replace_between_rename_and_adopt(void)
{
	char *p = t_path("adopt-race.jsonl");
	const char *old = "{\"iteration\":0,\"code\":\"a\"}\n"
			  "{\"iteration\":1,\"code\":\"b\"}\n";
	const char *drop = "{\"iteration\":2,\"code\":\"ours\"}";
	struct racer rc = { p, "{\"iteration\": 0, \"code\": \"a\"}\n"
			       "{\"iteration\": 1, \"code\": \"b\"}\n"
			       "{\"iteration\": 3, \"code\": \"loop\"}\n", 0 };
	struct store_change chg;
	struct writer_req q = { 0 };
	struct store *s;
	size_t files;
	char *lost;

	t_write_file(p, old, strlen(old));
	s = t_store_open(p, STORE_TIMES | STORE_VALIDATE);
	setenv("ITERFS_FAULT", "before_adopt:call", 1);
	fault_set_call(outside_save, &rc);
	q.data = drop;
	q.len = strlen(drop);
	T_CHECK(writer_commit(s, &q, 1, WRITER_MAX_RECORD_DEFAULT) == 0 &&
		q.result == 0, "commit: %d %s", q.result, q.reason);
	unsetenv("ITERFS_FAULT");
	fault_set_call(NULL, NULL);
	T_CHECK(rc.calls == 1, "the outside writer ran %d times", rc.calls);
	T_CHECK(store_refresh(s) == 0, "refresh");
	check_serves_the_file(s, p);
	/* Our acknowledged record is not in the loop's file: kept. */
	lost = lost_lines(p, &files);
	/* (the commit filled in the timestamp) */
	T_CHECK(files == 1 &&
		strncmp(lost, "{\"iteration\":2,\"code\":\"ours\",", 29) == 0 &&
		strchr(lost, '\n') == lost + strlen(lost) - 1,
		"%zu lost files: %s", files, lost);
	T_CHECK(store_changes_take(s, &chg) == 0 && chg.lost,
		"the change log says lines were lost");
	store_change_free(&chg);
	free(lost);
	store_close(s);
	free(p);
}

/* Rewritten in place (same inode), grown, with the last indexed line
 * changed: not an extension, whatever the size says. */
static void test_grown_in_place_with_another_last_line(void)
{
	char *p = t_path("inplace.jsonl");
	const char *a = "{\"iteration\": 0, \"v\": 1}\n{\"iteration\": 1, \"v\": 2}\n";
	const char *b = "{\"iteration\": 0, \"v\": 1}\n{\"iteration\": 1, \"v\": 22}\n"
			"{\"iteration\": 2, \"v\": 3}\n";
	struct store_rec rec;
	struct store *s;
	int fd;

	t_write_file(p, a, strlen(a));
	s = t_store_open(p, 0);
	fd = open(p, O_WRONLY | O_TRUNC);
	if (fd < 0 || write(fd, b, strlen(b)) != (ssize_t)strlen(b) ||
	    close(fd) < 0)
		abort();
	T_CHECK(store_refresh(s) == 0, "refresh");
	check_serves_the_file(s, p);
	/* In place the old bytes are gone: a line that moved or changed
	 * length counts as replaced. */
	T_CHECK(store_lookup(s, 0, &rec) == 0 && !rec.replaced && !rec.tag,
		"iteration 0 is the same line");
	store_close(s);
	free(p);
}

/* A replace that drops numbers and reformats others: the dropped lines are
 * kept, byte for byte, in one file; the reformatted ones are marked
 * replaced, with the tag of their new line. */
static void test_replace_keeps_vanished_lines_and_marks_changed_ones(void)
{
	char *p = t_path("replace.jsonl");
	const char *a = "{\"iteration\":0,\"v\":1}\n{\"iteration\":1,\"v\":2}\n"
			"{\"iteration\":2,\"v\":3}\n{\"iteration\":3,\"v\":4}\n";
	const char *b = "{\"iteration\":0,\"v\":1}\n{\"iteration\": 2, \"v\": 3}\n";
	const char *moved = "{\"iteration\": 2, \"v\": 3}";
	struct store_change chg;
	struct store_rec rec;
	struct store *s;
	size_t files;
	char *lost;

	t_write_file(p, a, strlen(a));
	s = t_store_open(p, STORE_TIMES | STORE_VALIDATE);
	T_CHECK(store_lookup(s, 2, &rec) == 0 && !rec.replaced && !rec.tag,
		"not replaced yet");
	store_changes_take(s, &chg);
	store_change_free(&chg);
	replace_file(p, b, strlen(b));
	T_CHECK(store_refresh(s) == 0, "refresh");
	check_serves_the_file(s, p);
	lost = lost_lines(p, &files);
	T_CHECK(files == 1 && strcmp(lost, "{\"iteration\":1,\"v\":2}\n"
				       "{\"iteration\":3,\"v\":4}\n") == 0,
		"%zu lost files: %s", files, lost);
	free(lost);
	T_CHECK(store_changes_take(s, &chg) == 0 && chg.lost && chg.reset,
		"change log");
	store_change_free(&chg);
	T_CHECK(store_lookup(s, 0, &rec) == 0 && !rec.replaced,
		"an unchanged line is not replaced");
	T_CHECK(store_lookup(s, 2, &rec) == 0 && rec.replaced &&
		rec.tag == hash_tag(moved, strlen(moved)),
		"a changed line is replaced, tagged with its bytes");
	/* Sticky: the same file again changes nothing. */
	replace_file(p, b, strlen(b));
	T_CHECK(store_refresh(s) == 0, "refresh");
	T_CHECK(store_lookup(s, 2, &rec) == 0 && rec.replaced, "sticky");
	lost = lost_lines(p, &files);
	T_CHECK(files == 1, "nothing more lost: %zu files", files);
	free(lost);
	store_close(s);
	free(p);
}

/* A later line with the same number: the record is replaced. */
static void test_a_duplicate_line_marks_replaced(void)
{
	char *p = t_path("dup.jsonl");
	const char *a = "{\"iteration\":0,\"v\":1}\n{\"iteration\":0,\"v\":2}\n";
	const char *shown = "{\"iteration\":0,\"v\":2}";
	struct store_rec rec;
	struct store *s;

	t_write_file(p, a, strlen(a));
	s = t_store_open(p, 0);
	T_CHECK(store_lookup(s, 0, &rec) == 0 && rec.replaced &&
		rec.tag == hash_tag(shown, strlen(shown)), "duplicate");
	store_close(s);
	free(p);
}

/* When the vanished lines cannot be kept, the store keeps showing them
 * (the old file stays open) and tries again on the next refresh. */
static void test_lines_that_cannot_be_kept_stay_shown(void)
{
	char *p = t_path("nokeep.jsonl"), lostdir[4096];
	const char *a = "{\"iteration\":0}\n{\"iteration\":1}\n";
	const char *b = "{\"iteration\":0}\n";
	struct store *s;
	size_t files;
	char *lost;

	t_write_file(p, a, strlen(a));
	s = t_store_open(p, 0);
	/* A plain file where the directory should be: mkdir fails. */
	snprintf(lostdir, sizeof(lostdir), "%s.lost", p);
	t_write_file(lostdir, "x", 1);
	replace_file(p, b, strlen(b));
	T_CHECK(store_refresh(s) < 0, "refresh fails");
	{
		struct buf line = BUF_INIT;

		T_CHECK(store_read(s, 1, &line) == 0 && line.len == 15,
			"iteration 1 still shown");
		buf_free(&line);
	}
	if (unlink(lostdir) < 0)
		abort();
	T_CHECK(store_refresh(s) == 0, "refresh");
	check_serves_the_file(s, p);
	lost = lost_lines(p, &files);
	T_CHECK(files == 1 && strcmp(lost, "{\"iteration\":1}\n") == 0,
		"kept on the second try: %s", lost);
	free(lost);
	store_close(s);
	free(p);
}

/* The seeds' save that read the store before our commit and numbered its
 * own record like ours: the number stays, our record is gone from the file.
 * That is a loss too: our line is kept. */
static void test_a_number_taken_by_another_record_keeps_the_old_line(void)
{
	char *p = t_path("taken.jsonl");
	const char *a = "{\"iteration\":0,\"v\":1}\n{\"iteration\":1,\"v\":\"ours\"}\n";
	const char *b = "{\"iteration\": 0, \"v\": 1}\n{\"iteration\": 1, \"v\": \"theirs\"}\n";
	struct store *s;
	size_t files;
	char *lost;

	t_write_file(p, a, strlen(a));
	s = t_store_open(p, 0);
	replace_file(p, b, strlen(b));
	T_CHECK(store_refresh(s) == 0, "refresh");
	check_serves_the_file(s, p);
	lost = lost_lines(p, &files);
	T_CHECK(files == 1 && strcmp(lost, "{\"iteration\":1,\"v\":\"ours\"}\n") == 0,
		"%zu lost files: %s", files, lost);
	free(lost);
	store_close(s);
	free(p);
}

/* A line appended for a number already shown replaces it: marked, and the
 * tag follows the shown line. */
static void test_an_appended_replacement_marks_replaced(void)
{
	char *p = t_path("append.jsonl");
	const char *a = "{\"iteration\":0,\"v\":1}\n{\"iteration\":1,\"v\":2}\n";
	const char *more = "{\"iteration\":0,\"v\":3}\n";
	const char *shown = "{\"iteration\":0,\"v\":3}";
	struct store_rec rec;
	struct store *s;
	int fd;

	t_write_file(p, a, strlen(a));
	s = t_store_open(p, 0);
	fd = open(p, O_WRONLY | O_APPEND);
	if (fd < 0 || write(fd, more, strlen(more)) != (ssize_t)strlen(more) ||
	    close(fd) < 0)
		abort();
	T_CHECK(store_refresh(s) == 0, "refresh");
	check_serves_the_file(s, p);
	T_CHECK(store_lookup(s, 0, &rec) == 0 && rec.replaced &&
		rec.tag == hash_tag(shown, strlen(shown)), "replaced");
	T_CHECK(store_lookup(s, 1, &rec) == 0 && !rec.replaced && !rec.tag,
		"iteration 1 untouched");
	store_close(s);
	free(p);
}

int main(void)
{
	T_RUN(test_replace_between_rename_and_adopt);
	T_RUN(test_grown_in_place_with_another_last_line);
	T_RUN(test_replace_keeps_vanished_lines_and_marks_changed_ones);
	T_RUN(test_a_duplicate_line_marks_replaced);
	T_RUN(test_an_appended_replacement_marks_replaced);
	T_RUN(test_a_number_taken_by_another_record_keeps_the_old_line);
	T_RUN(test_lines_that_cannot_be_kept_stay_shown);
	return t_done();
}
