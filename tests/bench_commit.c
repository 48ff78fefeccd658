/* bench_commit - median latency of durable commits into one store, from a
 * long-lived process (what the mount does), or of the physical floor.
 *
 *   bench_commit STORE DROP COUNT            writer_commit of DROP, COUNT times
 *   bench_commit --append STORE DROP COUNT   one write + fdatasync append each
 *   bench_commit --journal STORE DROP COUNT  the commit path of the journal
 *                                            design (README, "Million
 *                                            records"): lock, refresh, plan,
 *                                            one durable segment file
 *
 * DROP is a record without iteration number, so each commit takes the next
 * one.  Prints "median_us=N p90_us=N" on stdout.
 *
 * --journal measures what close() of a drop would cost if a commit wrote
 * its lines to a new file STORE.journal/<offset>.jsonl (temp, fsync, rename,
 * fsync of the directory) instead of rewriting the store: every step but the
 * fold, which runs later and off the close() path.  The store itself is
 * left unchanged, so every commit is planned against the same store; the
 * segments are named by a sequence number and removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "commit.h"
#include "log.h"
#include "store.h"
#include "writer.h"

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return NULL;
	}
	p = malloc((size_t)n + 1);
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	if (p) {
		p[n] = '\0';
		*len = (size_t)n;
	}
	return p;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The floor: what appending one line durably costs on this disk. */
static int append_once(const char *store, const char *line, size_t len)
{
	int fd = open(store, O_WRONLY | O_APPEND | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t w = write(fd, line, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = -errno;
			goto out_close;
		}
		line += w;
		len -= (size_t)w;
	}
	if (fdatasync(fd) < 0)
		r = -errno;
out_close:
	close(fd);
	return r;
}

/* One commit of the journal design: the store's flock, a refresh, the
 * drop validated and numbered against the store, its lines written to a
 * new segment durably. */
static int journal_once(struct store *s, const char *jdir, unsigned seq,
			const char *drop, size_t len, char why[COMMIT_WHY_LEN])
{
	struct commit_plan *plan = NULL;
	struct atomicfile *af = NULL;
	struct writer_lock *lk;
	const char *lines;
	char name[64];
	size_t count, n;
	int64_t first, last;
	int r;

	r = writer_lock(s, WRITER_LOCK_TIMEOUT_MS_DEFAULT, &lk);
	if (r < 0)
		return r;
	r = store_refresh(s);
	if (!r)
		r = commit_plan_new(s, &plan);
	if (!r)
		r = commit_plan_add(plan, drop, len, WRITER_MAX_RECORD_DEFAULT,
				    &count, &first, &last, why);
	if (r < 0)
		goto out_unlock;
	lines = commit_plan_lines(plan, &n);
	snprintf(name, sizeof(name), "%020u.jsonl", seq);
	r = atomicfile_begin(jdir, name, 0644, NULL, &af);
	if (r < 0)
		goto out_unlock;
	r = atomicfile_write(af, lines, n);
	if (r < 0) {
		atomicfile_abort(af);
		goto out_unlock;
	}
	r = atomicfile_commit(af, NULL, 0, NULL);
out_unlock:
	commit_plan_free(plan);
	writer_unlock(lk);
	return r;
}

/* Remove the segments journal_once wrote, then the directory. */
static void journal_clean(const char *jdir, int count)
{
	char path[4096];
	int i;

	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/%020u.jsonl", jdir, (unsigned)i);
		if (unlink(path) < 0 && errno != ENOENT)
			fprintf(stderr, "bench_commit: unlink %s: %s\n", path,
				strerror(errno));
	}
	if (rmdir(jdir) < 0)
		fprintf(stderr, "bench_commit: rmdir %s: %s\n", jdir,
			strerror(errno));
}

int main(int argc, char **argv)
{
	char why[COMMIT_WHY_LEN] = "";
	char *jdir = NULL;
	struct store *s = NULL;
	bool append = false, journal = false;
	double *lat;
	char *drop;
	size_t len;
	int count, i, r;

	log_set_prog("bench_commit");
	if (argc > 1 && (strcmp(argv[1], "--append") == 0 ||
			 strcmp(argv[1], "--journal") == 0)) {
		append = strcmp(argv[1], "--append") == 0;
		journal = !append;
		argv++;
		argc--;
	}
	if (argc != 4 || (count = atoi(argv[3])) <= 0) {
		fprintf(stderr, "usage: bench_commit [--append|--journal] STORE "
			"DROP COUNT\n");
		return 2;
	}
	if (journal && (asprintf(&jdir, "%s.journal", argv[1]) < 0 ||
			(mkdir(jdir, 0755) < 0 && errno != EEXIST))) {
		fprintf(stderr, "bench_commit: %s.journal: %s\n", argv[1],
			strerror(errno));
		return 3;
	}
	drop = read_all(argv[2], &len);
	if (!drop) {
		fprintf(stderr, "bench_commit: %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	lat = calloc((size_t)count, sizeof(*lat));
	if (!lat)
		return 3;
	if (!append) {
		r = store_open(argv[1], 0, &s);
		if (r < 0) {
			fprintf(stderr, "bench_commit: %s: %s\n", argv[1], strerror(-r));
			return 3;
		}
	}
	for (i = 0; i < count; i++) {
		struct writer_req req = { .data = drop, .len = len };
		double t0 = now_us();

		if (append)
			r = append_once(argv[1], drop, len);
		else if (journal)
			r = journal_once(s, jdir, (unsigned)i, drop, len, why);
		else
			r = writer_commit(s, &req, 1, WRITER_MAX_RECORD_DEFAULT);
		if (r == 0 && !append && !journal)
			r = req.result;
		lat[i] = now_us() - t0;
		if (r < 0) {
			fprintf(stderr, "bench_commit: commit %d: %s %s\n", i,
				strerror(-r), journal ? why : append ? "" :
				req.reason);
			return 3;
		}
	}
	qsort(lat, (size_t)count, sizeof(*lat), cmp_double);
	printf("median_us=%.0f p90_us=%.0f\n", lat[count / 2],
	       lat[(count * 9) / 10 < count ? (count * 9) / 10 : count - 1]);
	if (s)
		store_close(s);
	if (jdir)
		journal_clean(jdir, count);
	free(jdir);
	free(lat);
	free(drop);
	return 0;
}
