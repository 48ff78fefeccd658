/* bench_commit - median latency of durable commits into one store, from a
 * long-lived process (what the mount does), or of the physical floor.
 *
 *   bench_commit STORE DROP COUNT            writer_commit of DROP, COUNT times
 *   bench_commit --append STORE DROP COUNT   one write + fdatasync append each
 *
 * DROP is a record without iteration number, so each commit takes the next
 * one.  Prints "median_us=N p90_us=N" on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
	struct store *s = NULL;
	bool append = false;
	double *lat;
	char *drop;
	size_t len;
	int count, i, r;

	log_set_prog("bench_commit");
	if (argc > 1 && strcmp(argv[1], "--append") == 0) {
		append = true;
		argv++;
		argc--;
	}
	if (argc != 4 || (count = atoi(argv[3])) <= 0) {
		fprintf(stderr, "usage: bench_commit [--append] STORE DROP COUNT\n");
		return 2;
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
		else
			r = writer_commit(s, &req, 1, WRITER_MAX_RECORD_DEFAULT);
		if (r == 0 && !append)
			r = req.result;
		lat[i] = now_us() - t0;
		if (r < 0) {
			fprintf(stderr, "bench_commit: commit %d: %s %s\n", i,
				strerror(-r), append ? "" : req.reason);
			return 3;
		}
	}
	qsort(lat, (size_t)count, sizeof(*lat), cmp_double);
	printf("median_us=%.0f p90_us=%.0f\n", lat[count / 2],
	       lat[(count * 9) / 10 < count ? (count * 9) / 10 : count - 1]);
	if (s)
		store_close(s);
	free(lat);
	free(drop);
	return 0;
}
