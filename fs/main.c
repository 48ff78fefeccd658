/* main.c - iterfs [options] STORE MOUNTPOINT: parse the command line, open
 * the store, mount, detach once the mount is ready, serve until unmounted.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cJSON.h>
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>

#include "config.h"
#include "hist.h"
#include "iterfs.h"
#include "log.h"
#include "writer.h"

/* Exit codes, documented in --help. */
enum {
	EXIT_USAGE = 1,
	EXIT_STORE = 2,
	EXIT_MOUNT = 3,
};

/* How every history is opened: timestamps for mtimes, every line
 * validated, a large one on its quick index with the validation behind
 * the mount (store.h). */
#define HIST_STORE_FLAGS (STORE_TIMES | STORE_VALIDATE | STORE_LAZY_LARGE)

static const char usage_text[] =
"Usage: iterfs [options] STORE MOUNTPOINT\n"
"       iterfs [options] DIRECTORY MOUNTPOINT\n"
"       fusermount3 -u MOUNTPOINT\n";

static const char help_text[] =
"\n"
"Mount the iteration history STORE, a JSON Lines file with one record per\n"
"iteration, at MOUNTPOINT as a read-only directory tree that ls, cat, grep,\n"
"diff, find, rsync and tar understand, and commit new records by writing\n"
"files into incoming/.\n"
"\n"
"THE TREE\n"
"  iterations/<n>/       one directory per iteration number n (decimal)\n"
"      code.py           the strategy code (\"code\" or \"strategy_code\")\n"
"      metrics.json      the metrics, pretty-printed\n"
"      feedback.txt      the feedback (\"feedback\" or \"feedback_used\")\n"
"      error.txt         the error (\"error\" or execution_result.error_message)\n"
"      record.json       the whole record, pretty-printed\n"
"  latest                symlink to iterations/<highest n>, absent while empty\n"
"  by-hash/<sha256>/     one directory per distinct code\n"
"      code.py           that code\n"
"      <n>               symlink to ../../iterations/<n>, one per iteration\n"
"  by-metric/<metric>/   one directory per numeric metric\n"
"      <rank>            symlink to ../../iterations/<n>, highest value first,\n"
"                        ranks from 1, zero-padded; failed runs not ranked\n"
"  failed/<n>            symlink to ../iterations/<n> for each iteration that\n"
"                        failed or has an error\n"
"  lost+found/           lines that vanished when another writer replaced\n"
"                        STORE (kept in STORE.lost/), absent while none\n"
"  incoming/             the drop box (absent with -o ro)\n"
"  .iterfs/status        the mount's state as JSON (records, skipped lines,\n"
"                        rejected and lost counts, options, last commit);\n"
"                        not listed, so ls, rsync and tar do not see it\n"
"\n"
"  A file exists only where the record has that field.  Files are 0444,\n"
"  directories 0555, incoming/ is writable by the mounting user only.  The\n"
"  modification time of iterations/<n>/ and its files is the record's\n"
"  timestamp; sizes are exact before the first read and inode numbers are\n"
"  the same on every mount, so rsync -a and tar see a stable tree.  An open\n"
"  file is a snapshot: it reads the record as it was at open, whatever\n"
"  replaces it meanwhile.\n"
"\n"
"COMMITTING\n"
"  Write one JSON object (pretty or compact, or several, one per line, which\n"
"  commit together) to a new file in incoming/ and close it.  close()\n"
"  returns 0 only once the record is durably in STORE.  A missing iteration\n"
"  number is assigned (highest + 1), a missing timestamp is set to now.\n"
"  close() fails with EINVAL (not a JSON object, a field of the wrong type),\n"
"  EEXIST (the iteration number is taken by a different record), EFBIG\n"
"  (larger than max_record), ENOSPC or EIO.  A drop that never committed\n"
"  stays readable as incoming/<name>.rejected, with the reason in\n"
"  incoming/<name>.reason, until removed with rm.  The shell does not report\n"
"  close() errors of its redirections (echo ... > incoming/x): check for the\n"
"  .reason file, or copy the record in with cp, which reports them.\n"
"\n"
"  Changes made to STORE by other processes (iterfs-commit, the loop's own\n"
"  saves) show in the mount within a second.\n"
"\n"
"OPTIONS\n"
"  -h, --help            print this help and exit\n"
"  -V, --version         print the versions of iterfs, libfuse, cJSON and\n"
"                        OpenSSL and exit\n"
"  -f                    stay in the foreground; messages go to stderr\n"
"  -d                    debug: also log every FUSE request (implies -f)\n"
"  -s                    serve requests in a single thread\n"
"  -o OPT[,OPT...]       mount options:\n"
"     ro                 read-only mount without incoming/; also the fastest\n"
"                        for reading, as files are then opened and closed\n"
"                        without a request to the daemon\n"
"     max_record=SIZE    largest drop accepted, in bytes, with an optional\n"
"                        k, M or G suffix (default 16M)\n"
"     lock_timeout=SECS  how long a drop waits for STORE.lock when another\n"
"                        process holds it before close() fails with\n"
"                        ETIMEDOUT (default 30; 0 waits for ever)\n"
"     allow_other        let other users use the mount (non-root users need\n"
"                        user_allow_other in /etc/fuse.conf); the permission\n"
"                        bits are then enforced (default_permissions), so\n"
"                        only the mounting user can write to incoming/\n"
"     max_threads=N      at most N worker threads (default 10)\n"
"     max_idle_threads=N\n"
"                        keep at most N idle worker threads\n"
"     clone_fd           one /dev/fuse descriptor per worker thread\n"
"     log=FILE           append the daemon's messages to FILE, one line each\n"
"                        with a timestamp, instead of syslog or stderr\n"
"     allow_root, default_permissions, auto_unmount, fsname=NAME,\n"
"     subtype=NAME       as described in mount.fuse3(8)\n"
"     rw, dev, nodev, suid, nosuid, exec, noexec, atime, noatime, async,\n"
"     sync, dirsync      generic mount flags (mount(8)), passed to the kernel\n"
"     defaults           accepted and ignored, for fstab lines\n"
"\n"
"  Options may also follow STORE and MOUNTPOINT, as mount.fuse3 passes them\n"
"  from mount -t fuse.iterfs and /etc/fstab (see FSTAB).  Any other option\n"
"  is refused: iterfs: unknown option 'NAME', exit status 1.\n"
"\n"
"STORE\n"
"  The JSONL file, in any of the dialects the loop has written (\"iteration\"\n"
"  or \"iteration_num\", ...).  A missing file is an empty history, created\n"
"  by the first commit; its directory must exist.  Lines that are not JSON\n"
"  objects are not shown and are reported when mounting.  Commits lock\n"
"  STORE.lock beside it with flock(2) and keep rejected drops in\n"
"  STORE.rejected/.\n"
"\n"
"DIRECTORY\n"
"  Given a directory instead of a file, iterfs shows every history under it\n"
"  (*.jsonl, searched recursively) as its own tree of the shape above, at\n"
"  its relative path without .jsonl: runs/hybrid_50/innovations.jsonl is\n"
"  MOUNTPOINT/hybrid_50/innovations/, with its own iterations/, latest,\n"
"  by-hash/, by-metric/, failed/ and incoming/.  A history is read when its\n"
"  name is first looked up, not at mount; new files show at the next\n"
"  listing, removed ones vanish from it.  A .jsonl file with no line that\n"
"  carries an iteration number in its first MiB is not shown (logged once),\n"
"  nor are hidden names and iterfs's own STORE.rejected/ and STORE.lost/.\n"
"  Inode numbers are the same on every mount: a history's part comes from\n"
"  its relative path.  Renaming between two histories' incoming/ is EXDEV.\n"
"\n"
"  Without -f, iterfs returns once the mount is ready and goes on serving it\n"
"  in the background; its messages then go to syslog (journalctl -t iterfs),\n"
"  or to the file given with -o log=FILE (containers often have no syslog).\n"
"  fusermount3 -u MOUNTPOINT, SIGTERM and SIGINT unmount cleanly.\n"
"\n"
"FSTAB\n"
"  With iterfs on the PATH of mount(8) (/usr/local/bin after meson install):\n"
"    mount -t fuse.iterfs /data/history.jsonl /mnt/h -o ro\n"
"  or in /etc/fstab, then mount /mnt/h:\n"
"    /data/history.jsonl  /mnt/h  fuse.iterfs  ro,noauto,log=/var/log/iterfs.log  0 0\n"
"\n"
"EXIT STATUS\n"
"  0  success (the mount is ready; in the foreground: unmounted cleanly)\n"
"  1  usage: unknown option, bad option value (or a log file that cannot be\n"
"     opened), missing or extra argument\n"
"  2  STORE cannot be read, or its directory does not exist\n"
"  3  mounting failed (MOUNTPOINT missing or not a directory, no permission,\n"
"     no /dev/fuse), or the daemon could not start serving\n"
"\n"
"EXAMPLES\n"
"  iterfs history.jsonl /mnt/h\n"
"  ls /mnt/h/iterations | wc -l\n"
"  cat /mnt/h/latest/code.py\n"
"  grep -l 'rolling(60)' /mnt/h/iterations/*/code.py\n"
"  diff /mnt/h/iterations/3/code.py /mnt/h/iterations/4/code.py\n"
"  ls /mnt/h/by-hash/*/ | head\n"
"  echo '{\"code\": \"print(1)\", \"metrics\": {\"sharpe\": 1.2},' \\\n"
"       '\"feedback\": \"first try\", \"success\": true}' \\\n"
"      > /mnt/h/incoming/new.json\n"
"  rsync -a /mnt/h/ backup/\n"
"  iterfs -o ro,allow_other history.jsonl /srv/history\n"
"  iterfs -o ro runs/ /mnt/runs; diff -r /mnt/runs/a/latest /mnt/runs/b/latest\n"
"  fusermount3 -u /mnt/h\n"
"\n"
"SEE ALSO\n"
"  iterfs-commit(1), iterfs-check(1), fusermount3(1), mount.fuse3(8)\n";

struct cli {
	const char *store;
	const char *mountpoint;
	char *log;
	int nonopts;
	bool help;
	bool version;
	bool ro;
	bool allow_other;
	bool has_fsname;
	bool has_subtype;
	bool bad;
	size_t max_record;
	int lock_timeout_ms;
};

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_RO,
	KEY_MAX_RECORD,
	KEY_LOCK_TIMEOUT,
	KEY_ALLOW_OTHER,
	KEY_FSNAME,
	KEY_SUBTYPE,
	KEY_LOG,
};

static const struct fuse_opt cli_opts[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("max_record=", KEY_MAX_RECORD),
	FUSE_OPT_KEY("lock_timeout=", KEY_LOCK_TIMEOUT),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	FUSE_OPT_KEY("log=", KEY_LOG),
	FUSE_OPT_END
};

/* One line on stderr, "iterfs: what: reason", before any daemon exists. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("iterfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* "16M" -> 16 << 20.  Returns 0 or -EINVAL. */
static int parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end || v == 0 || v > (SIZE_MAX >> shift))
		return -EINVAL;
	*out = (size_t)v << shift;
	return 0;
}

/* The options libfuse takes that --help documents; the rest of what libfuse
 * would take (nonempty is no longer one) is refused by name, so that a typo
 * in an fstab line is not a mount with a silent default. */
static const char *const passed_on[] = {
	"-f", "-d", "-s", "allow_root", "default_permissions", "auto_unmount",
	"max_threads=", "max_idle_threads=", "clone_fd",
	"rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime",
	"noatime", "async", "sync", "dirsync",
};

static bool is_passed_on(const char *arg)
{
	size_t i, len;

	for (i = 0; i < sizeof(passed_on) / sizeof(passed_on[0]); i++) {
		len = strlen(passed_on[i]);
		if (passed_on[i][len - 1] == '=' ?
		    strncmp(arg, passed_on[i], len) == 0 :
		    strcmp(arg, passed_on[i]) == 0)
			return true;
	}
	return false;
}

/* "30" -> 30000 ms; "0" waits for ever (-1).  Returns 0 or -EINVAL. */
static int parse_seconds(const char *s, int *ms)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > INT_MAX / 1000)
		return -EINVAL;
	*ms = v ? (int)v * 1000 : -1;
	return 0;
}

static int cli_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *c = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		c->help = true;
		return 0;
	case KEY_VERSION:
		c->version = true;
		return 0;
	case KEY_RO:
		/* Also a kernel mount flag: keep it for libfuse. */
		c->ro = true;
		return 1;
	case KEY_MAX_RECORD:
		if (parse_size(arg + strlen("max_record="), &c->max_record) < 0) {
			say("invalid max_record '%s' (bytes, optional k/M/G)",
			    arg + strlen("max_record="));
			c->bad = true;
		}
		return 0;
	case KEY_LOCK_TIMEOUT:
		if (parse_seconds(arg + strlen("lock_timeout="),
				  &c->lock_timeout_ms) < 0) {
			say("invalid lock_timeout '%s' (whole seconds, 0 for "
			    "no limit)", arg + strlen("lock_timeout="));
			c->bad = true;
		}
		return 0;
	case KEY_ALLOW_OTHER:
		c->allow_other = true;
		return 1;
	case KEY_FSNAME:
		c->has_fsname = true;
		return 1;
	case KEY_SUBTYPE:
		c->has_subtype = true;
		return 1;
	case KEY_LOG:
		/* arg is a temporary piece of a split -o list. */
		free(c->log);
		c->log = strdup(arg + strlen("log="));
		if (!c->log || !c->log[0]) {
			say("invalid log '' (a file name)");
			c->bad = true;
		}
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (is_passed_on(arg))
			return 1;
		if (strcmp(arg, "defaults") == 0)
			return 0;
		say("unknown option '%s'", arg);
		c->bad = true;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		c->nonopts++;
		if (c->nonopts == 1)
			c->store = arg;
		else if (c->nonopts == 2)
			c->mountpoint = arg;
		return 0;
	}
	return 1;
}

static void print_version(void)
{
	printf("iterfs %s\n", ITERFS_VERSION);
	printf("libfuse %s (FUSE API %d.%d)\n", fuse_pkgversion(),
	       FUSE_USE_VERSION / 100, FUSE_USE_VERSION % 100);
	printf("cJSON %s\n", cJSON_Version());
	printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
	fflush(stdout);
	fuse_lowlevel_version();
}

/* libfuse's own messages, through our log (syslog once detached).  libfuse
 * writes some messages in pieces: collect them up to the newline. */
static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt,
			     va_list ap)
{
	static __thread char line[1024];
	static __thread size_t used;
	enum log_level lvl = LOG_LVL_DEBUG;
	const char *p = line;

	vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	used = strlen(line);
	if (used < sizeof(line) - 1 && (used == 0 || line[used - 1] != '\n'))
		return;
	while (used && line[used - 1] == '\n')
		line[--used] = '\0';
	used = 0;
	if (!line[0])
		return;
	if (strncmp(p, "fuse: ", 6) == 0)
		p += 6;
	if (level <= FUSE_LOG_ERR)
		lvl = LOG_LVL_ERR;
	else if (level == FUSE_LOG_WARNING)
		lvl = LOG_LVL_WARN;
	else if (level <= FUSE_LOG_INFO)
		lvl = LOG_LVL_INFO;
	log_msg(lvl, "%s", p);
}

/* While the store is opened the user is told about failures in one line of
 * ours; the core's own lines are held back and shown only on success. */
static struct {
	char line[8][256];
	enum log_level lvl[8];
	unsigned n;
} held;

static void hold_sink(enum log_level lvl, const char *line)
{
	if (held.n < 8) {
		snprintf(held.line[held.n], sizeof(held.line[0]), "%s", line);
		held.lvl[held.n++] = lvl;
	}
}

static void held_replay(void)
{
	unsigned i;

	for (i = 0; i < held.n; i++)
		log_msg(held.lvl[i], "%s", held.line[i]);
	held.n = 0;
}

static void syslog_sink(enum log_level lvl, const char *line)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	syslog(prio[lvl], "%s", line);
}

/* A directory of histories as an absolute path in *dir (*path NULL), or
 * the store as an absolute path (the daemon leaves the working directory)
 * and its directory, which must exist.  Prints the error; returns 0 or an
 * exit code. */
static int resolve_store(const char *arg, char **path, char **dir)
{
	const char *slash = strrchr(arg, '/');
	const char *base = slash ? slash + 1 : arg;
	char *d, real[PATH_MAX];
	struct stat st;
	size_t len;
	DIR *dh;

	*path = NULL;
	if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
		dh = opendir(arg);
		if (!dh || !realpath(arg, real)) {
			say("%s: %s", arg, strerror(errno));
			if (dh)
				closedir(dh);
			return EXIT_STORE;
		}
		closedir(dh);
		*dir = strdup(real);
		if (!*dir) {
			say("%s: %s", arg, strerror(ENOMEM));
			return EXIT_STORE;
		}
		return 0;
	}
	if (!slash)
		d = strdup(".");
	else if (slash == arg)
		d = strdup("/");
	else
		d = strndup(arg, (size_t)(slash - arg));
	if (!d) {
		say("%s: %s", arg, strerror(ENOMEM));
		return EXIT_STORE;
	}
	if (!realpath(d, real)) {
		say("%s: directory %s: %s", arg, d, strerror(errno));
		free(d);
		return EXIT_STORE;
	}
	free(d);
	len = strlen(real) + 1 + strlen(base) + 1;
	*path = malloc(len);
	*dir = strdup(real);
	if (!*path || !*dir) {
		free(*path);
		free(*dir);
		say("%s: %s", arg, strerror(ENOMEM));
		return EXIT_STORE;
	}
	snprintf(*path, len, "%s%s%s", real, strcmp(real, "/") ? "/" : "",
		 base);
	if (stat(*path, &st) == 0 && !S_ISREG(st.st_mode)) {
		say("%s: not a regular file or directory", arg);
		free(*path);
		free(*dir);
		return EXIT_STORE;
	}
	return 0;
}

static void report_skipped(struct store *s, const char *arg)
{
	struct store_stats ss;
	uint64_t lines[3];
	size_t total, i, n;
	char where[96] = "";
	int w = 0;

	if (store_stats(s, &ss) < 0 || ss.skipped == 0)
		return;
	store_skipped(s, lines, 3, &total);
	n = total < 3 ? total : 3;
	for (i = 0; i < n && w >= 0 && (size_t)w < sizeof(where); i++)
		w += snprintf(where + w, sizeof(where) - (size_t)w, "%s%llu",
			      i ? ", " : "", (unsigned long long)lines[i]);
	log_warn("%s: %llu line%s not shown, not a JSON object with an "
		 "iteration number (line %s%s)", arg,
		 (unsigned long long)ss.skipped, ss.skipped == 1 ? "" : "s",
		 where, total > n ? ", ..." : "");
}

static int add_opt(struct fuse_args *args, const char *name, const char *val)
{
	char *opt = NULL, *full;
	size_t len = strlen(name) + strlen(val) + 1;
	int r;

	full = malloc(len);
	if (!full)
		return -1;
	snprintf(full, len, "%s%s", name, val);
	r = fuse_opt_add_opt_escaped(&opt, full);
	free(full);
	if (r == 0)
		r = fuse_opt_add_arg(args, "-o");
	if (r == 0)
		r = fuse_opt_add_arg(args, opt);
	free(opt);
	return r;
}

/* The options that shape the mount, as .iterfs/status shows them. */
static char *mount_opts_text(const struct ifs *fs, bool allow_other)
{
	char *text = NULL;

	if (asprintf(&text, "%s,max_record=%zu,lock_timeout=%d%s",
		     fs->ro ? "ro" : "rw", fs->max_record,
		     fs->lock_timeout_ms < 0 ? 0 : fs->lock_timeout_ms / 1000,
		     allow_other ? ",allow_other" : "") < 0)
		return NULL;
	return text;
}

static void hist_opts_of(const struct ifs *fs, uint16_t id,
			 struct hist_opts *ho)
{
	memset(ho, 0, sizeof(*ho));
	ho->se = fs->se;
	ho->id = id;
	ho->ro = fs->ro;
	ho->max_record = fs->max_record;
	ho->lock_timeout_ms = fs->lock_timeout_ms;
	ho->uid = fs->uid;
	ho->gid = fs->gid;
	ho->mount_opts = fs->mount_opts;
}

/* forest_opts.open: a history of a directory mount, at its first lookup. */
static int open_history(void *arg, const char *path, uint16_t id,
			struct forest_hist *fh)
{
	struct ifs *fs = arg;
	struct hist_opts ho;
	struct store *s;
	struct hist *h;
	int r;

	r = store_open(path, HIST_STORE_FLAGS, &s);
	if (r < 0)
		return r;
	report_skipped(s, path);
	hist_opts_of(fs, id, &ho);
	r = hist_start(s, &ho, &h);
	if (r < 0)
		return r;
	hist_parts(h, fh);
	log_info("%s: shown", path);
	return 0;
}

static void close_history(void *arg, struct forest_hist *fh)
{
	(void)arg;
	hist_stop(fh->owner);
}

/* What is served: the one store (taken) or the directory's histories. */
static int start_serving(struct ifs *fs, struct store *single)
{
	struct forest_opts fo = {
		.dir = single ? NULL : fs->dir,
		.open = open_history,
		.close = close_history,
		.arg = fs,
		.uid = fs->uid,
		.gid = fs->gid,
	};
	struct hist_opts ho;
	struct hist *h;
	int r;

	if (single) {
		hist_opts_of(fs, 0, &ho);
		r = hist_start(single, &ho, &h);
		if (r < 0)
			return r;
		hist_parts(h, &fo.single);
	}
	r = forest_new(&fo, &fs->forest);
	if (r < 0) {
		log_err("%s: %s", fs->dir, strerror(-r));
		if (single)
			hist_stop(h);
	}
	return r;
}

static int serve(struct fuse_session *se, const struct fuse_cmdline_opts *o)
{
	struct fuse_loop_config *cfg;
	int r;

	if (o->singlethread)
		return fuse_session_loop(se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)o->clone_fd);
	/* UINT_MAX: not given, keep libfuse's default. */
	if (o->max_threads != UINT_MAX)
		fuse_loop_cfg_set_max_threads(cfg, o->max_threads);
	if (o->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, o->max_idle_threads);
	r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}

/* The mountpoint as an absolute path into mnt[PATH_MAX], which must be a
 * directory.  A daemon that died without unmounting leaves a mount whose
 * every access fails with ENOTCONN: name it, and the cure.  Prints the
 * error; returns false then. */
static bool mountpoint_ok(const char *arg, char *mnt)
{
	struct stat st;
	int e;

	if (!realpath(arg, mnt)) {
		e = errno;
		goto out_err;
	}
	if (stat(mnt, &st) < 0 || !S_ISDIR(st.st_mode)) {
		e = errno == ENOTCONN ? ENOTCONN : ENOTDIR;
		goto out_err;
	}
	return true;

out_err:
	if (e == ENOTCONN)
		say("%s: a dead mount is still there (%s); unmount it with "
		    "fusermount3 -u %s", arg, strerror(e), arg);
	else
		say("%s: %s", arg, strerror(e));
	return false;
}

/* The store argument as an absolute path, for the mount table (fsname). */
static char *absolute(const char *arg)
{
	char cwd[PATH_MAX], *p;
	size_t len;

	if (arg[0] == '/')
		return strdup(arg);
	if (!getcwd(cwd, sizeof(cwd)))
		return strdup(arg);
	len = strlen(cwd) + 1 + strlen(arg) + 1;
	p = malloc(len);
	if (p)
		snprintf(p, len, "%s/%s", cwd, arg);
	return p;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli cli = {
		.max_record = WRITER_MAX_RECORD_DEFAULT,
		.lock_timeout_ms = WRITER_LOCK_TIMEOUT_MS_DEFAULT,
	};
	struct fuse_cmdline_opts fo = { 0 };
	struct ifs fs = { 0 };
	struct store *store = NULL;
	char mnt[PATH_MAX], *path = NULL, *fsname;
	int rc = EXIT_USAGE, r;

	log_set_prog("iterfs");
	fuse_set_log_func(fuse_log_to_ours);
	/* The store's whole-store passes allocate and free arrays of tens of
	 * MB.  glibc raises its mmap threshold as such chunks are freed, so
	 * the next ones come from an arena, and a thread's arena never gives
	 * its top back (malloc_trim leaves it too): at 1,000,000 records the
	 * validation thread alone left 26 MB resident.  A fixed threshold
	 * keeps every chunk of 1 MiB or more in its own mapping, given back at
	 * free.  The daemon's choice, not the library's: it changes the whole
	 * process. */
	if (mallopt(M_MMAP_THRESHOLD, 1 << 20) != 1)
		say("cannot fix the heap's mmap threshold; memory freed by "
		    "large passes may stay resident");

	if (fuse_opt_parse(&args, &cli, cli_opts, cli_proc) < 0 || cli.bad)
		goto out_usage;
	if (cli.help) {
		fputs(usage_text, stdout);
		fputs(help_text, stdout);
		rc = 0;
		goto out_args;
	}
	if (cli.version) {
		print_version();
		rc = 0;
		goto out_args;
	}
	if (cli.nonopts != 2) {
		say(cli.nonopts < 2 ? "missing %s" : "too many arguments%s",
		    cli.nonopts == 0 ? "STORE and MOUNTPOINT" :
		    cli.nonopts == 1 ? "MOUNTPOINT" : "");
		goto out_usage;
	}
	if (fuse_parse_cmdline(&args, &fo) < 0)
		goto out_usage;
	/* Before the daemon leaves the working directory: a relative name is
	 * relative to where iterfs was started. */
	if (cli.log) {
		r = log_set_file(cli.log);
		if (r < 0) {
			say("log file %s: %s", cli.log, strerror(-r));
			goto out_opts_usage;
		}
	}
	if (fo.debug)
		log_set_level(LOG_LVL_DEBUG);

	fsname = absolute(cli.store);
	if (!fsname ||
	    (!cli.has_fsname && add_opt(&args, "fsname=", fsname)) ||
	    (!cli.has_subtype && add_opt(&args, "subtype=", "iterfs")) ||
	    (cli.allow_other && fuse_opt_add_arg(&args, "-odefault_permissions"))) {
		free(fsname);
		say("%s", strerror(ENOMEM));
		goto out_opts;
	}
	free(fsname);
	/* Options first: a usage error is reported as one whatever else is
	 * wrong.  libfuse names the option it refuses. */
	fs.se = fuse_session_new(&args, &ifs_ops, sizeof(ifs_ops), &fs);
	if (!fs.se) {
		fputs("Try 'iterfs --help' for more information.\n", stderr);
		goto out_opts;
	}

	rc = resolve_store(cli.store, &path, &fs.dir);
	if (rc)
		goto out_session;
	if (path) {
		log_set_sink(hold_sink);
		r = store_open(path, HIST_STORE_FLAGS, &store);
		log_set_sink(NULL);
		if (r == 0)
			held_replay();
		if (r < 0) {
			say("%s: %s", cli.store, strerror(-r));
			rc = EXIT_STORE;
			goto out_paths;
		}
		report_skipped(store, cli.store);
	}
	if (!cli.ro && access(fs.dir, W_OK) < 0)
		log_warn("%s: commits will fail: directory %s: %s", cli.store,
			 fs.dir, strerror(errno));
	fs.uid = getuid();
	fs.gid = getgid();
	fs.ro = cli.ro;
	fs.max_record = cli.max_record;
	fs.lock_timeout_ms = cli.lock_timeout_ms;
	fs.mount_opts = mount_opts_text(&fs, cli.allow_other);
	if (!fs.mount_opts) {
		say("%s", strerror(ENOMEM));
		rc = EXIT_STORE;
		goto out_store;
	}

	rc = EXIT_MOUNT;
	if (!mountpoint_ok(cli.mountpoint, mnt))
		goto out_store;
	if (fuse_set_signal_handlers(fs.se) < 0) {
		say("cannot install signal handlers");
		goto out_store;
	}
	if (fuse_session_mount(fs.se, mnt) < 0) {
		say("%s: mount failed", cli.mountpoint);
		goto out_signals;
	}
	/* Returns in the parent only after the mount is ready. */
	if (fuse_daemonize(fo.foreground) < 0) {
		say("cannot detach from the terminal");
		goto out_unmount;
	}
	if (!fo.foreground && !cli.log) {
		openlog("iterfs", LOG_PID, LOG_DAEMON);
		log_set_sink(syslog_sink);
	}
	r = start_serving(&fs, store);
	store = NULL;
	if (r < 0)
		goto out_unmount;
	log_info("%s mounted at %s%s", path ? path : fs.dir, mnt,
		 fs.ro ? " read-only" : "");

	r = serve(fs.se, &fo);
	if (r < 0)
		log_err("%s: session ended: %s", mnt, strerror(-r));
	else
		rc = 0;
	log_info("%s unmounted", mnt);

	forest_free(fs.forest);
out_unmount:
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_store:
	store_close(store);
	free(fs.mount_opts);
out_paths:
	free(path);
	free(fs.dir);
out_session:
	fuse_session_destroy(fs.se);
out_opts:
	free(fo.mountpoint);
out_args:
	log_set_file(NULL);
	free(cli.log);
	fuse_opt_free_args(&args);
	return rc;

out_opts_usage:
	free(fo.mountpoint);
	rc = EXIT_USAGE;
	goto out_args;

out_usage:
	fputs(usage_text, stderr);
	fputs("Try 'iterfs --help' for more information.\n", stderr);
	rc = EXIT_USAGE;
	goto out_args;
}
