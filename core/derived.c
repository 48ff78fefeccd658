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
	int r;
};

static void *map_job_run(void *arg)
{
	struct map_job *j = arg;
	struct buf line = BUF_INIT;
	size_t i;

	j->r = 0;
	for (i = 0; i < j->n && !j->r; i++) {
		buf_reset(&line);
		j->r = buf_reserve(&line, j->e[i].len);
		if (!j->r)
			j->r = fileio_pread_full(j->fd, line.data, j->e[i].len,
						 j->e[i].off);
		if (j->r)
			break;
		line.len = j->e[i].len;
		line.data[line.len] = '\0';
		j->r = j->fn(line.data, line.len, &j->e[i],
			     j->out + i * j->size, j->arg);
	}
	buf_free(&line);
	return NULL;
}

int derived_map(int fd, const struct ent *e, size_t n, void *out,
		size_t size,
		int (*fn)(const char *line, size_t len, const struct ent *e,
			  void *out, void *arg),
		void *arg)
{
	struct map_job job[MAP_THREADS];
	pthread_t th[MAP_THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nt = 1, started = 0, i, per;
	int r = 0;

	/* An empty store has no entry array at all: e + 0 on NULL is UB. */
	if (!n)
		return 0;
	if (n >= MAP_PARALLEL_MIN && cpus > 1)
		nt = cpus < MAP_THREADS ? (size_t)cpus : MAP_THREADS;
	per = (n + nt - 1) / nt;
	for (i = 0; i < nt; i++) {
		size_t lo = i * per < n ? i * per : n;
		size_t hi = lo + per < n ? lo + per : n;

		job[i] = (struct map_job){ fd, e + lo, hi - lo,
					   (char *)out + lo * size, size, fn,
					   arg, 0 };
	}
	/* Job 0 runs here; the others get threads while they can be had. */
	for (i = 1; i < nt; i++) {
		if (pthread_create(&th[i], NULL, map_job_run, &job[i]) != 0)
			break;
		started++;
	}
	map_job_run(&job[0]);
	r = job[0].r;
	for (i = 1; i <= started; i++) {
		pthread_join(th[i], NULL);
		if (!r)
			r = job[i].r;
	}
	for (i = started + 1; i < nt && !r; i++) {
		map_job_run(&job[i]);
		r = job[i].r;
	}
	return r;
}
