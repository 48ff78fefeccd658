#include "testutil.h"

#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int t_failed_checks;
static int t_passed, t_failed;
static char t_dir[256];

void t_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	t_failed_checks++;
}

bool t_check_mem(const char *file, int line, const void *got, size_t glen,
		 const void *want, size_t wlen, const char *what)
{
	const unsigned char *g = got, *w = want;
	size_t i = 0, lo;

	while (i < glen && i < wlen && g[i] == w[i])
		i++;
	if (i == glen && i == wlen)
		return true;
	lo = i > 40 ? i - 40 : 0;
	t_fail(file, line, "%s differs at byte %zu (got %zu bytes, want %zu)\n"
	       "    got:  %.*s\n    want: %.*s", what, i, glen, wlen,
	       (int)((glen - lo) > 80 ? 80 : glen - lo), (const char *)g + lo,
	       (int)((wlen - lo) > 80 ? 80 : wlen - lo), (const char *)w + lo);
	return false;
}

void t_run(const char *name, void (*fn)(void))
{
	int before = t_failed_checks;

	fn();
	if (t_failed_checks == before) {
		t_passed++;
		printf("ok - %s\n", name);
	} else {
		t_failed++;
		printf("not ok - %s\n", name);
	}
	fflush(stdout);
}

int t_done(void)
{
	char cmd[300];

	printf("%d passed, %d failed\n", t_passed, t_failed);
	if (t_dir[0] && !getenv("ITERFS_KEEP_TMP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", t_dir);
	}
	return t_failed || !t_passed ? 1 : 0;
}

const char *t_tmpdir(void)
{
	const char *base;

	if (t_dir[0])
		return t_dir;
	base = getenv("TMPDIR");
	snprintf(t_dir, sizeof(t_dir), "%s/iterfs-test.XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(t_dir)) {
		perror("mkdtemp");
		abort();
	}
	return t_dir;
}

char *t_path(const char *name)
{
	size_t n = strlen(t_tmpdir()) + strlen(name) + 2;
	char *p = malloc(n);

	if (!p)
		abort();
	snprintf(p, n, "%s/%s", t_tmpdir(), name);
	return p;
}

void t_write_file(const char *path, const void *data, size_t len)
{
	const char *p = data;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		abort();
	}
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "write %s: %s\n", path, strerror(errno));
			abort();
		}
		p += w;
		len -= (size_t)w;
	}
	if (close(fd) < 0)
		abort();
}

char *t_read_file(const char *path, size_t *len)
{
	struct stat st;
	char *p;
	size_t got = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0)
		abort();
	p = malloc((size_t)st.st_size + 1);
	if (!p)
		abort();
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	p[got] = '\0';
	if (len)
		*len = got;
	return p;
}

char *t_real_data(const char *name)
{
	const char *dir = getenv("ITERFS_REAL_DATA");
	char *p;
	size_t n;

	if (!dir)
		return NULL;
	n = strlen(dir) + strlen(name) + 2;
	p = malloc(n);
	if (!p)
		abort();
	snprintf(p, n, "%s/%s", dir, name);
	if (access(p, R_OK) != 0) {
		free(p);
		return NULL;
	}
	return p;
}

struct store *t_store_open(const char *path, unsigned flags)
{
	struct store *s = NULL;
	int r = store_open(path, flags, &s);

	if (r < 0) {
		fprintf(stderr, "store_open %s: %s\n", path, strerror(-r));
		abort();
	}
	return s;
}
