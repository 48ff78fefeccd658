/* derived.c - the table of derived views and the parallel line reader they
 * share (see derived.h). */
#include "derived.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"

#define MAP_THREADS 8
#define MAP_PARALLEL_MIN 2048
/* Work is handed out in chunks of this many records, so that a thread
 * slowed by the other users of a shared machine does not hold up the
 * rest; each thread reads its records in blocks of up to MAP_BLOCK bytes
 * instead of one pread each (a million small records were a million
 * system calls). */
#define MAP_CHUNK 4096
#define MAP_BLOCK ((uint64_t)1 << 20)

const struct derived_ops *const derived_views[DERIVED_COUNT] = {
	[DERIVED_BYHASH] = &derived_byhash_ops,
	[DERIVED_BYMETRIC] = &derived_bymetric_ops,
	[DERIVED_FAILED] = &derived_failed_ops,
};

struct map_job {
	int fd;
	const struct ent *e;
	size_t n;
	char *out;
	size_t size;
	int (*fn)(const char *line, size_t len, const struct ent *e,
		  void *out, void *arg);
	void *arg;
	size_t next;  /* the next chunk's first record (atomic) */
	int err;      /* the first error, 0 none (atomic) */
};

/* The bytes [woff, woff + wlen) of the file, read for the records from e[i]
 * on: as many of the following records as lie after one another within
 * MAP_BLOCK bytes of e[i] (all of them in a file written in number order),
 * or e[i] alone.  The gaps between them (replaced or skipped lines) are
 * read too, never more than a block. */
static int map_window(const struct map_job *j, size_t i, size_t end,
		      struct buf *w, uint64_t *woff, size_t *wlen)
{
	uint64_t lo = j->e[i].off, hi = lo + j->e[i].len;
	int r;

	while (++i < end && j->e[i].off >= hi &&
	       j->e[i].off + j->e[i].len - lo <= MAP_BLOCK)
		hi = j->e[i].off + j->e[i].len;
	buf_reset(w);
	r = buf_reserve(w, (size_t)(hi - lo));
	if (r < 0)
		return r;
	r = fileio_pread_full(j->fd, w->data, (size_t)(hi - lo), lo);
	if (r < 0)
		return r;
	*woff = lo;
	*wlen = (size_t)(hi - lo);
	return 0;
}

/* Records [lo, hi) of the job, through one window buffer.  A line's
 * terminator (LF or CR) lies outside every record line, so it is
 * overwritten with the NUL that fn's contract promises. */
static int map_chunk(struct map_job *j, size_t lo, size_t hi, struct buf *w)
{
	uint64_t woff = 0;
	size_t wlen = 0, i;
	char *line;
	int r;

	for (i = lo; i < hi; i++) {
		const struct ent *e = &j->e[i];

		if (e->off < woff || e->off + e->len > woff + wlen) {
			r = map_window(j, i, hi, w, &woff, &wlen);
			if (r < 0)
				return r;
		}
		/* buf_reserve keeps a byte beyond wlen for this NUL. */
		line = w->data + (e->off - woff);
		line[e->len] = '\0';
		r = j->fn(line, e->len, e, j->out + i * j->size, j->arg);
		if (r)
			return r;
	}
	return 0;
}

static void *map_job_run(void *arg)
{
	struct map_job *j = arg;
	struct buf w = BUF_INIT;
	size_t lo, hi;
	int r;

	for (;;) {
		if (__atomic_load_n(&j->err, __ATOMIC_RELAXED))
			break;
		lo = __atomic_fetch_add(&j->next, MAP_CHUNK, __ATOMIC_RELAXED);
		if (lo >= j->n)
			break;
		hi = j->n - lo < MAP_CHUNK ? j->n : lo + MAP_CHUNK;
		r = map_chunk(j, lo, hi, &w);
		if (r) {
			int none = 0;

			__atomic_compare_exchange_n(&j->err, &none, r, false,
						    __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
			break;
		}
	}
	buf_free(&w);
	return NULL;
}

int derived_map(int fd, const struct ent *e, size_t n, void *out,
		size_t size,
		int (*fn)(const char *line, size_t len, const struct ent *e,
			  void *out, void *arg),
		void *arg)
{
	struct map_job job = { fd, e, n, out, size, fn, arg, 0, 0 };
	pthread_t th[MAP_THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nt = 1, started = 0, i;

	/* An empty store has no entry array at all: e + 0 on NULL is UB. */
	if (!n)
		return 0;
	if (n >= MAP_PARALLEL_MIN && cpus > 1)
		nt = cpus < MAP_THREADS ? (size_t)cpus : MAP_THREADS;
	/* This thread works too; the others help while they can be had (the
	 * chunks are shared, so a thread that cannot start costs nothing). */
	for (i = 1; i < nt; i++) {
		if (pthread_create(&th[started], NULL, map_job_run, &job) != 0)
			break;
		started++;
	}
	map_job_run(&job);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return job.err;
}
