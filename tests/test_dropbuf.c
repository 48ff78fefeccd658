/* test_dropbuf - a drop's bytes in memory and spilled to disk: the same
 * bytes either way, memory bounded, nothing left on disk. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dropbuf.h"
#include "testutil.h"

static struct dropbuf_pool *pool_or_die(size_t spill_at, size_t budget)
{
	struct dropbuf_opts o = { spill_at, budget };
	struct dropbuf_pool *p;

	if (dropbuf_pool_new(t_tmpdir(), &o, &p) < 0)
		abort();
	return p;
}

static size_t dir_entries(void)
{
	DIR *d = opendir(t_tmpdir());
	struct dirent *de;
	size_t n = 0;

	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Write `len` pseudo-random bytes in uneven chunks, with one hole. */
static void fill(struct dropbuf *db, char *want, size_t len)
{
	size_t off = 0, n;
	unsigned x = 7;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		want[i] = (char)(x >> 16);
	}
	memset(want + 100, 0, 50);
	while (off < len) {
		n = (off * 7 + 1000) % 70000 + 1;
		if (n > len - off)
			n = len - off;
		if (off <= 100 && off + n > 150) {
			T_CHECK(dropbuf_write(db, want, 100, 0) == 0, "head");
			T_CHECK(dropbuf_write(db, want + 150, off + n - 150,
					      150) == 0, "after hole");
		} else {
			T_CHECK(dropbuf_write(db, want + off, n, off) == 0,
				"write at %zu", off);
		}
		off += n;
	}
}

static void check_same(struct dropbuf *db, const char *want, size_t len)
{
	struct dropbuf_view v;
	char *got = malloc(len + 1);
	size_t n = 0;

	T_CHECK(dropbuf_size(db) == len, "size %llu want %zu",
		(unsigned long long)dropbuf_size(db), len);
	T_CHECK(dropbuf_read(db, 0, len + 10, got, &n) == 0 && n == len,
		"read %zu", n);
	T_CHECK_MEM(got, n, want, len, "read back");
	T_CHECK(dropbuf_view(db, 3, len - 3, &v) == 0, "view");
	T_CHECK_MEM(v.p, v.len, want + 3, len - 3, "view bytes");
	dropbuf_view_release(&v);
	free(got);
}

static void test_small_drop_stays_in_memory(void)
{
	struct dropbuf_pool *p = pool_or_die(1 << 20, 8 << 20);
	struct dropbuf *db;
	char want[5000];

	T_CHECK(dropbuf_new(p, &db) == 0, "new");
	fill(db, want, sizeof(want));
	T_CHECK(!dropbuf_spilled(db), "spilled a 5000-byte drop");
	T_CHECK(dropbuf_pool_mem(p) >= sizeof(want), "memory not counted");
	check_same(db, want, sizeof(want));
	dropbuf_free(db);
	T_CHECK(dropbuf_pool_mem(p) == 0, "memory left: %zu",
		dropbuf_pool_mem(p));
	dropbuf_pool_free(p);
}

static void test_large_drop_spills_and_reads_back_the_same(void)
{
	struct dropbuf_pool *p = pool_or_die(64 << 10, 8 << 20);
	size_t len = 3 << 20;
	char *want = malloc(len);
	struct dropbuf *db;

	T_CHECK(dropbuf_new(p, &db) == 0, "new");
	fill(db, want, len);
	T_CHECK(dropbuf_spilled(db), "a 3 MiB drop was not spilled");
	T_CHECK(dropbuf_pool_mem(p) == 0, "a spilled drop holds %zu bytes "
		"of memory", dropbuf_pool_mem(p));
	check_same(db, want, len);
	T_CHECK(dir_entries() == 0, "the spill file has a name");
	T_CHECK(dropbuf_truncate(db, 10) == 0, "truncate");
	check_same(db, want, 10);
	T_CHECK(dropbuf_truncate(db, 0) == 0 && dropbuf_size(db) == 0,
		"truncate to 0");
	dropbuf_free(db);
	dropbuf_pool_free(p);
	free(want);
}

static void test_many_drops_stay_within_the_memory_budget(void)
{
	struct dropbuf_pool *p = pool_or_die(1 << 20, 4 << 20);
	struct dropbuf *db[40];
	char chunk[64 << 10];
	size_t i, j, spilled = 0;

	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 40; i++) {
		T_CHECK(dropbuf_new(p, &db[i]) == 0, "new");
		for (j = 0; j < 12; j++)
			T_CHECK(dropbuf_write(db[i], chunk, sizeof(chunk),
					      j * sizeof(chunk)) == 0,
				"write");
		T_CHECK(dropbuf_pool_mem(p) <= (4 << 20), "memory %zu over "
			"the budget", dropbuf_pool_mem(p));
	}
	for (i = 0; i < 40; i++) {
		spilled += dropbuf_spilled(db[i]);
		T_CHECK(dropbuf_size(db[i]) == 12 * sizeof(chunk), "size");
		dropbuf_free(db[i]);
	}
	T_CHECK(spilled > 30, "only %zu of 40 768k drops spilled", spilled);
	T_CHECK(dropbuf_pool_mem(p) == 0, "memory left");
	dropbuf_pool_free(p);
}

static void test_extending_truncate_reads_zeros(void)
{
	struct dropbuf_pool *p = pool_or_die(1 << 20, 8 << 20);
	struct dropbuf *db;
	char got[8], want[8] = { 'a', 'b', 0, 0, 0, 0, 0, 0 };
	size_t n;

	T_CHECK(dropbuf_new(p, &db) == 0, "new");
	T_CHECK(dropbuf_write(db, "abcd", 4, 0) == 0, "write");
	T_CHECK(dropbuf_truncate(db, 2) == 0, "cut");
	T_CHECK(dropbuf_truncate(db, 8) == 0, "extend");
	T_CHECK(dropbuf_read(db, 0, 8, got, &n) == 0 && n == 8, "read");
	T_CHECK_MEM(got, n, want, 8, "zeros after the cut");
	dropbuf_free(db);
	dropbuf_pool_free(p);
}

static void test_a_view_of_a_bad_range_is_einval(void)
{
	struct dropbuf_pool *p = pool_or_die(1 << 20, 8 << 20);
	struct dropbuf_view v;
	struct dropbuf *db;

	T_CHECK(dropbuf_new(p, &db) == 0, "new");
	T_CHECK(dropbuf_write(db, "abcd", 4, 0) == 0, "write");
	T_CHECK(dropbuf_view(db, 2, 3, &v) == -EINVAL, "past the end");
	T_CHECK(dropbuf_view(db, 4, 0, &v) == 0 && v.len == 0, "empty");
	dropbuf_view_release(&v);
	dropbuf_free(db);
	dropbuf_pool_free(p);
}

int main(void)
{
	T_RUN(test_small_drop_stays_in_memory);
	T_RUN(test_large_drop_spills_and_reads_back_the_same);
	T_RUN(test_many_drops_stay_within_the_memory_budget);
	T_RUN(test_extending_truncate_reads_zeros);
	T_RUN(test_a_view_of_a_bad_range_is_einval);
	return t_done();
}
