/* log.h - one log sink for the core, the tools and the daemon.
 *
 * The core reports failures here (which step, which path, strerror) and also
 * returns -errno; logging never replaces the return value.  By default lines
 * go to stderr prefixed with the program name; log_set_file() makes a file
 * the default instead, and the daemon routes lines elsewhere (syslog) with
 * log_set_sink().  Thread-safe: each call emits one whole line.
 *
 * Calling sequence: log_set_prog, log_set_level and log_set_file once at
 * start, before any other thread exists; log_set_sink around phases
 * (NULL returns to the default: the file if one is set, else stderr).
 */
#ifndef ITERFS_LOG_H
#define ITERFS_LOG_H

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

typedef void (*log_sink_fn)(enum log_level lvl, const char *line);

/* Set the program name used as prefix on stderr (not copied: pass a literal
 * or argv[0]). */
void log_set_prog(const char *prog);
/* Lines above `max` are dropped.  Default LOG_LVL_INFO. */
void log_set_level(enum log_level max);
/* Route lines to `fn` instead of the default; NULL restores the default. */
void log_set_sink(log_sink_fn fn);
/* Make the file `path` the default destination: opened for appending
 * (created 0644), each line written with one write(2) as
 * "2026-11-25T13:30:00.123456+0000 PROG[PID] LEVEL: message", local time.
 * The descriptor survives fork and daemonising (it is not stdio) and is
 * closed by log_set_file(NULL), which restores stderr.  Returns 0, or
 * -errno from open(2) with the previous default kept. */
int log_set_file(const char *path);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
