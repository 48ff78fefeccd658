#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "iterfs";
static enum log_level log_max = LOG_LVL_INFO;
static log_sink_fn log_sink;
static int log_fd = -1;

void log_set_prog(const char *prog)
{
	log_prog = prog;
}

void log_set_level(enum log_level max)
{
	log_max = max;
}

void log_set_sink(log_sink_fn fn)
{
	log_sink = fn;
}

int log_set_file(const char *path)
{
	int fd = -1;

	if (path) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return 0;
}

/* Nowhere is left to report a failing log write: it is dropped. */
static void write_line(const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(log_fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

/* One line, one write: O_APPEND keeps lines of concurrent writers (threads,
 * other mounts sharing the file) whole. */
static void file_line(enum log_level lvl, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char out[1200], zone[8];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	if (strftime(zone, sizeof(zone), "%z", &tm) == 0)
		zone[0] = '\0';
	n = snprintf(out, sizeof(out),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%06ld%s %s[%ld] %s: %s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, zone, log_prog,
		     (long)getpid(), names[lvl], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(out)) {
		n = sizeof(out) - 1;
		out[n - 1] = '\n';
	}
	write_line(out, (size_t)n);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_sink)
		log_sink(lvl, line);
	else if (log_fd >= 0)
		file_line(lvl, line);
	else
		fprintf(stderr, "%s: %s\n", log_prog, line);
}
