/* log.h - one log sink for the core, the tools and the daemon.
 *
 * The core reports failures here (which step, which path, strerror) and also
 * returns -errno; logging never replaces the return value.  By default lines
 * go to stderr prefixed with the program name; the daemon redirects them to
 * syslog once it has detached.  Thread-safe: each call emits one whole line.
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
/* Route lines to `fn` instead of stderr; NULL restores stderr. */
void log_set_sink(log_sink_fn fn);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
