/* testutil.h - the small harness every unit test uses.
 *
 *   static void test_something(void) { T_CHECK(x == 1, "x is %d", x); }
 *   int main(void) { T_RUN(test_something); return t_done(); }
 *
 * A failed check prints file:line and the message and marks the current test
 * failed; the test goes on.  t_done() prints "N passed, N failed" and returns
 * the exit status.  Helpers abort the whole program on setup failures (they
 * are not what is being tested).
 */
#ifndef ITERFS_TESTUTIL_H
#define ITERFS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

extern int t_failed_checks;

void t_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define T_CHECK(cond, ...)                                               \
	do {                                                             \
		if (!(cond))                                             \
			t_fail(__FILE__, __LINE__, __VA_ARGS__);         \
	} while (0)

/* Compare two byte ranges; on mismatch print the first differing offset
 * and both sides around it. */
#define T_CHECK_MEM(got, glen, want, wlen, what)                          \
	t_check_mem(__FILE__, __LINE__, (got), (glen), (want), (wlen), (what))
bool t_check_mem(const char *file, int line, const void *got, size_t glen,
		 const void *want, size_t wlen, const char *what);

#define T_RUN(fn) t_run(#fn, fn)
void t_run(const char *name, void (*fn)(void));
int t_done(void);

/* A fresh directory for this test program (removed at t_done unless
 * ITERFS_KEEP_TMP is set).  Owned by the harness. */
const char *t_tmpdir(void);
/* "<tmpdir>/<name>", malloc'd.  */
char *t_path(const char *name);
/* Write/replace a whole file; aborts on error. */
void t_write_file(const char *path, const void *data, size_t len);
/* Read a whole file (malloc'd, NUL-terminated); NULL if it does not exist. */
char *t_read_file(const char *path, size_t *len);
/* store_open(path, flags), aborting on failure (setup, not what is
 * tested). */
struct store;
struct store *t_store_open(const char *path, unsigned flags);
/* Path of a real history under $ITERFS_REAL_DATA, or NULL when the data is
 * not present (callers skip those cases with a note). malloc'd. */
char *t_real_data(const char *name);

#endif
