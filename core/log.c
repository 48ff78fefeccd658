#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *log_prog = "iterfs";
static enum log_level log_max = LOG_LVL_INFO;
static log_sink_fn log_sink;

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
	else
		fprintf(stderr, "%s: %s\n", log_prog, line);
}
