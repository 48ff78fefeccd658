/* writer.c - the atomic, durable, group-committing store writer.
 *
 * Why a whole new file per commit and not an append: a reader (the mount,
 * the Python loop, tail -f) must never see a partial record, and a crash in
 * the middle of an append leaves a torn line in the history itself.  The
 * copy is cheap where it matters: FICLONE shares the old extents on XFS and
 * btrfs, copy_file_range stays in the kernel elsewhere.
 *
 * After rename() the new content is what everybody sees, so a failure of the
 * directory fsync cannot be undone: the records are in the store, but may
 * not survive a power loss.  That case is reported as the fsync's errno
 * (-EIO, ...) like any other failure, the log line says the rename happened,
 * and the store is adopted as it now is.  A writer retrying its drop with an
 * explicit number then gets the no-op re-send; one without a number would add
 * a second copy, which is why a failed commit is never reported as success.
 *
 * Fault injection (ITERFS_FAULT, read once per commit): see fault.h.  The
 * "done" step only knows "crash" (after the directory fsync, before
 * store_adopt and unlock).
 *
 * Contents: the lock (paths, /proc/locks, polling flock, writer_lock); the
 * rewrite (the old file, the outside-writer check, free space, rewrite);
 * failure reasons; writer_commit_locked (the start-over loop);
 * writer_commit.
 */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "fault.h"
#include "fileio.h"
#include "log.h"

/* How often a commit starts over when an outside writer replaced the store
 * under it, before it gives up with -EAGAIN. */
#define WRITER_ATTEMPTS 5
/* Free space kept in hand beyond the new store's size when it must be
 * copied (no FICLONE). */
#define WRITER_SPACE_MARGIN ((uint64_t)1 << 20)

struct writer_lock {
	struct store *s;
	int fd;          /* the flock'ed lock file */
	char *real;      /* the store's real path (symlinks followed) */
	char *lock;      /* "<real>.lock" */
	char *dir;       /* the store's directory */
	char *base;      /* the store's file name */
	struct fault fault;
};

/* Log a failed step; returns r for `return fail(...)`. */
static int fail(const char *step, const char *path, int r)
{
	log_err("commit: %s %s: %s", step, path, strerror(-r));
	return r;
}

static void lock_free(struct writer_lock *lk)
{
	if (lk->fd >= 0)
		close(lk->fd);
	free(lk->real);
	free(lk->lock);
	free(lk->dir);
	free(lk->base);
	free(lk);
}

static int paths_init(struct writer_lock *lk, const char *store)
{
	if (asprintf(&lk->lock, "%s.lock", store) < 0) {
		lk->lock = NULL;
		return -ENOMEM;
	}
	return fileio_split(store, &lk->dir, &lk->base);
}

/* The pid /proc/locks names as holding a flock on the file `st`, or 0.
 * The device there is the superblock's, which differs from st_dev on some
 * filesystems (btrfs): an entry with the same inode on another device is
 * taken only when none matches both. */
static long lock_holder(const struct stat *st)
{
	char line[256], kind[16];
	unsigned long long ino;
	unsigned maj, min;
	long pid, exact = 0, same_ino = 0;
	FILE *f = fopen("/proc/locks", "re");

	if (!f)
		return 0;
	while (!exact && fgets(line, sizeof(line), f)) {
		if (strstr(line, "->") ||
		    sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", kind, &pid,
			   &maj, &min, &ino) != 5 ||
		    strcmp(kind, "FLOCK") != 0 ||
		    ino != (unsigned long long)st->st_ino)
			continue;
		if (maj == major(st->st_dev) && min == minor(st->st_dev))
			exact = pid;
		else if (!same_ino)
			same_ino = pid;
	}
	fclose(f);
	return exact ? exact : same_ino;
}

static void log_timeout(const struct writer_lock *lk, int timeout_ms)
{
	struct stat st;
	long pid = fstat(lk->fd, &st) == 0 ? lock_holder(&st) : 0;

	if (pid > 0)
		log_err("commit: lock %s: %s after %d ms (held by pid %ld)",
			lk->lock, strerror(ETIMEDOUT), timeout_ms, pid);
	else
		log_err("commit: lock %s: %s after %d ms (holder unknown)",
			lk->lock, strerror(ETIMEDOUT), timeout_ms);
}

/* Open (or create, with the store's permission bits) the lock file.
 * Read-only is enough for flock, and works on a lock file of a 0444 store. */
static int open_lock(struct writer_lock *lk, const char *store)
{
	struct stat st;
	mode_t mode = 0644;
	bool chown_it = false;

	if (stat(store, &st) == 0) {
		mode = st.st_mode & 0666;
		chown_it = geteuid() == 0 &&
			   (st.st_uid != 0 || st.st_gid != getegid());
	}
	lk->fd = open(lk->lock, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (lk->fd >= 0) {
		/* open() applied the umask. */
		if (fchmod(lk->fd, mode) < 0 ||
		    (chown_it && fchown(lk->fd, st.st_uid, st.st_gid) < 0))
			return fail("lock", lk->lock, -errno);
		return 0;
	}
	if (errno != EEXIST)
		return fail("lock", lk->lock, -errno);
	lk->fd = open(lk->lock, O_RDONLY | O_CLOEXEC);
	if (lk->fd < 0)
		return fail("lock", lk->lock, -errno);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* flock(LOCK_EX), polling with LOCK_NB: no signal, a bound, and the
 * caller's say between tries. */
static int wait_lock(struct writer_lock *lk, int timeout_ms,
		     writer_give_up_fn give_up, void *arg)
{
	int64_t start = now_ms();
	long backoff_ms = 1;
	struct timespec ts;

	for (;;) {
		if (flock(lk->fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return fail("lock", lk->lock, -errno);
		if (backoff_ms == 1)
			log_debug("commit: lock %s: waiting for another writer",
				  lk->lock);
		if (give_up && give_up(arg))
			return -ECANCELED;
		if (timeout_ms >= 0 && now_ms() - start >= timeout_ms) {
			if (timeout_ms > 0)
				log_timeout(lk, timeout_ms);
			return -ETIMEDOUT;
		}
		ts.tv_sec = 0;
		ts.tv_nsec = backoff_ms * 1000000;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		backoff_ms = backoff_ms * 2 > 50 ? 50 : backoff_ms * 2;
	}
}

/* A store path that exists must be a regular file: opening a FIFO would
 * hang, a directory or device is not a history. */
static int check_regular(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : fail("open", path, -errno);
	if (S_ISREG(st.st_mode))
		return 0;
	log_err("commit: store %s is %s, not a regular file", path,
		fileio_kind(st.st_mode));
	return -EINVAL;
}

int writer_lock(struct store *s, int timeout_ms, struct writer_lock **out)
{
	return writer_lock_wait(s, timeout_ms, NULL, NULL, out);
}

int writer_lock_wait(struct store *s, int timeout_ms,
		     writer_give_up_fn give_up, void *arg,
		     struct writer_lock **out)
{
	struct writer_lock *lk;
	const char *store;
	int r;

	*out = NULL;
	lk = calloc(1, sizeof(*lk));
	if (!lk)
		return -ENOMEM;
	lk->s = s;
	lk->fd = -1;
	fault_read(&lk->fault);
	/* Commits, the lock and temps act on the real file: renaming over a
	 * symlink would replace the link with a copy. */
	r = fileio_resolve(store_path(s), &lk->real);
	if (r < 0) {
		fail("open", store_path(s), r);
		goto out_free;
	}
	store = lk->real;
	r = check_regular(store);
	if (r < 0)
		goto out_free;
	r = paths_init(lk, store);
	if (r < 0)
		goto out_free;
	r = fault_at(&lk->fault, "", "lock");
	if (r < 0) {
		fail("lock", lk->lock, r);
		goto out_free;
	}
	r = open_lock(lk, store);
	if (!r)
		r = wait_lock(lk, timeout_ms, give_up, arg);
	if (r < 0)
		goto out_free;
	/* Under the lock nobody else is between temp and rename: any temp
	 * of ours in the directory was left by a writer that died. */
	r = atomicfile_remove_stale(lk->dir, lk->base, ATOMICFILE_STALE_ALL);
	if (r < 0)
		log_warn("commit: stale-temp scan %s: %s", lk->dir,
			 strerror(-r));
	*out = lk;
	return 0;
out_free:
	lock_free(lk);
	return r;
}

void writer_unlock(struct writer_lock *lk)
{
	if (lk)
		lock_free(lk);
}

/* The old content's last byte is LF (or there is none)? */
static int ends_in_lf(int ofd, uint64_t size, bool *lf)
{
	char last;
	int r;

	*lf = true;
	if (size == 0)
		return 0;
	r = fileio_pread_full(ofd, &last, 1, size - 1);
	if (r < 0)
		return r;
	*lf = last == '\n';
	return 0;
}

/* The store as the commit found it: open before the refresh, so that the
 * index can only be of this file or of one that replaced it (which the
 * check before the rename then sees). */
struct old {
	int fd;          /* -1: there was no store */
	struct stat st;
};

static int open_old(const struct writer_lock *lk, struct old *o)
{
	o->fd = open(lk->real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (o->fd < 0)
		return errno == ENOENT ? 0 : fail("open", lk->real, -errno);
	if (fstat(o->fd, &o->st) < 0)
		return fail("open", lk->real, -errno);
	if (!S_ISREG(o->st.st_mode)) {
		log_err("commit: store %s is %s, not a regular file", lk->real,
			fileio_kind(o->st.st_mode));
		return -EINVAL;
	}
	return 0;
}

/* Is the store path still the file we copied (or still absent)? */
static int still_same(const struct writer_lock *lk, const struct old *o,
		      bool *same)
{
	struct stat st;

	if (stat(lk->real, &st) < 0) {
		if (errno != ENOENT)
			return fail("before_rename", lk->real, -errno);
		*same = o->fd < 0;
		return 0;
	}
	*same = o->fd >= 0 && st.st_dev == o->st.st_dev &&
		st.st_ino == o->st.st_ino && st.st_size == o->st.st_size &&
		st.st_mtim.tv_sec == o->st.st_mtim.tv_sec &&
		st.st_mtim.tv_nsec == o->st.st_mtim.tv_nsec;
	return 0;
}

static void space_reason(struct atomicfile *af, char why[COMMIT_WHY_LEN])
{
	uint64_t need, avail;

	atomicfile_space(af, &need, &avail);
	if (need)
		snprintf(why, COMMIT_WHY_LEN, "needs %.1f MB free beside the "
			 "store, %.1f MB free", need / 1e6, avail / 1e6);
}

/* Steps 3 and 4: everything between the plan and store_adopt.  *renamed
 * tells whether the store now holds the new content; then *newfd (the
 * caller closes it) reads the file renamed, which the store adopts even if
 * another writer has replaced it at the path meanwhile.  *replaced: the
 * store was replaced by another writer since `o` was opened (nothing was
 * renamed; the caller starts over). */
static int rewrite(const struct writer_lock *lk, const struct old *o,
		   const char *lines, size_t len, bool *renamed,
		   bool *replaced, int *newfd, const char **step,
		   char why[COMMIT_WHY_LEN])
{
	struct atomicfile_opts opts = { .log_tag = "commit" };
	struct atomicfile *af = NULL;
	bool lf = true, same = false;
	int r;

	*renamed = *replaced = false;
	/* The new store keeps the old one's mode and owner. */
	if (o->fd >= 0 && geteuid() == 0 &&
	    (o->st.st_uid != 0 || o->st.st_gid != getegid())) {
		opts.chown = true;
		opts.uid = o->st.st_uid;
		opts.gid = o->st.st_gid;
	}
	*step = "temp";
	r = atomicfile_begin(lk->dir, lk->base,
			     o->fd >= 0 ? o->st.st_mode & 07777 : 0644, &opts,
			     &af);
	if (r < 0)
		return r;
	*step = "copy";
	if (o->fd >= 0) {
		r = atomicfile_copy_from(af, o->fd, (uint64_t)o->st.st_size,
					 (uint64_t)len + 1 +
					 WRITER_SPACE_MARGIN);
		if (r == -ENOSPC)
			space_reason(af, why);
		if (r < 0)
			goto out_abort;
	}
	*step = "append";
	if (o->fd >= 0) {
		r = ends_in_lf(o->fd, (uint64_t)o->st.st_size, &lf);
		if (r < 0) {
			fail("append", lk->real, r);
			goto out_abort;
		}
	}
	if (!lf)
		r = atomicfile_write(af, "\n", 1);
	if (!r)
		r = atomicfile_write(af, lines, len);
	if (r < 0)
		goto out_abort;
	*step = "fsync_temp";
	r = atomicfile_sync(af);
	if (r < 0)
		goto out_abort;
	/* Never undo an outside writer (one that ignores the lock): if the
	 * store is no longer the file we copied, our rename would throw its
	 * save away.  A replace between this check and the rename can still
	 * be lost; the window is one stat and one rename wide. */
	*step = "before_rename";
	r = fault_at(&lk->fault, "", "before_rename");
	if (r < 0) {
		fail("before_rename", lk->real, r);
		goto out_abort;
	}
	r = still_same(lk, o, &same);
	if (r < 0)
		goto out_abort;
	if (!same) {
		*replaced = true;
		goto out_abort;
	}
	*step = "rename";
	*newfd = fcntl(atomicfile_fd(af), F_DUPFD_CLOEXEC, 0);
	if (*newfd < 0) {
		r = fail("rename", lk->real, -errno);
		goto out_abort;
	}
	r = atomicfile_commit(af, NULL, 0, renamed);
	if (*renamed)
		*step = "fsync_dir";
	return r;
out_abort:
	atomicfile_abort(af);
	return r;
}

/* Give every request (or every accepted one) the batch's error; `why` is
 * the reason when not empty, else one made from the step. */
static void batch_fail(struct writer_req *reqs, size_t n, bool only_accepted,
		       int r, const char *step, bool renamed, const char *why)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (only_accepted && reqs[i].result != 0)
			continue;
		reqs[i].result = r;
		reqs[i].count = 0;
		if (why && why[0])
			snprintf(reqs[i].reason, COMMIT_WHY_LEN, "%s", why);
		else if (renamed)
			snprintf(reqs[i].reason, COMMIT_WHY_LEN,
				 "the store was replaced but %s failed: the "
				 "records may not survive a crash", step);
		else
			snprintf(reqs[i].reason, COMMIT_WHY_LEN,
				 "the commit failed at %s; the store is "
				 "unchanged", step);
	}
}

/* The reason for a failed writer_lock. */
static void lock_reason(struct store *s, int r, char why[COMMIT_WHY_LEN])
{
	struct stat st;
	char *real;

	why[0] = '\0';
	if (r == -ETIMEDOUT) {
		snprintf(why, COMMIT_WHY_LEN, "timed out waiting for the "
			 "store's lock (another writer holds %s.lock)",
			 store_path(s));
	} else if (r == -EINVAL && fileio_resolve(store_path(s), &real) == 0) {
		if (stat(real, &st) == 0 && !S_ISREG(st.st_mode))
			snprintf(why, COMMIT_WHY_LEN, "the store %s is %s, "
				 "not a regular file", real,
				 fileio_kind(st.st_mode));
		free(real);
	}
}

int writer_commit_locked(struct writer_lock *lk, struct writer_req *reqs,
			 size_t n, size_t max_record)
{
	char why[COMMIT_WHY_LEN] = "";
	struct commit_plan *plan = NULL;
	struct store *s = lk->s;
	const char *lines, *step;
	bool renamed = false, replaced = false;
	int newfd = -1;
	struct old o;
	unsigned attempt;
	size_t len, i;
	int r, e;

	for (attempt = 1;; attempt++) {
		step = "open";
		r = open_old(lk, &o);
		if (r == -EINVAL)
			snprintf(why, sizeof(why), "the store %s is %s, not a "
				 "regular file", lk->real,
				 fileio_kind(o.st.st_mode));
		if (r < 0)
			goto out_fail_all;
		step = "refresh";
		r = store_refresh(s);
		if (!r)
			r = commit_plan_new(s, &plan);
		if (r < 0) {
			fail("plan", store_path(s), r);
			goto out_fail_all;
		}
		for (i = 0; i < n; i++) {
			reqs[i].result = commit_plan_add(plan, reqs[i].data,
							 reqs[i].len,
							 max_record,
							 &reqs[i].count,
							 &reqs[i].first,
							 &reqs[i].last,
							 reqs[i].reason);
			if (reqs[i].result == -ENOMEM)
				snprintf(reqs[i].reason, COMMIT_WHY_LEN,
					 "out of memory");
		}
		lines = commit_plan_lines(plan, &len);
		if (len == 0)
			goto out_plan;
		r = rewrite(lk, &o, lines, len, &renamed, &replaced, &newfd,
			    &step, why);
		if (!renamed && newfd >= 0) {
			close(newfd);
			newfd = -1;
		}
		if (!replaced)
			break;
		commit_plan_free(plan);
		plan = NULL;
		if (o.fd >= 0)
			close(o.fd);
		if (attempt == WRITER_ATTEMPTS) {
			r = -EAGAIN;
			log_err("commit: %s was replaced by another writer "
				"during each of %u attempts; giving up",
				lk->real, attempt);
			snprintf(why, sizeof(why), "the store was replaced by "
				 "another writer during each of %u attempts; "
				 "nothing was committed", attempt);
			batch_fail(reqs, n, true, r, step, false, why);
			return r;
		}
		log_info("commit: %s was replaced by another writer during "
			 "the commit; starting over with its content",
			 lk->real);
	}
	if (r < 0)
		batch_fail(reqs, n, true, r, step, renamed, why);
	if (renamed) {
		/* The file renamed holds the new content whatever fsync_dir
		 * said; a writer that ignores the lock may have replaced it at
		 * the path already (tests race one here), and adopting that
		 * file instead would lose these records silently. */
		fault_at(&lk->fault, "", "before_adopt");
		e = store_adopt(s, newfd);
		if (e < 0)
			log_warn("commit: adopt %s: %s (the next refresh "
				 "re-indexes)", store_path(s), strerror(-e));
		close(newfd);
	}
out_plan:
	commit_plan_free(plan);
	if (o.fd >= 0)
		close(o.fd);
	return r;
out_fail_all:
	batch_fail(reqs, n, false, r, step, false, why);
	if (o.fd >= 0)
		close(o.fd);
	return r;
}

int writer_commit(struct store *s, struct writer_req *reqs, size_t n,
		  size_t max_record)
{
	char why[COMMIT_WHY_LEN];
	struct writer_lock *lk;
	int r;

	r = writer_lock(s, WRITER_LOCK_TIMEOUT_MS_DEFAULT, &lk);
	if (r < 0) {
		lock_reason(s, r, why);
		batch_fail(reqs, n, false, r, "lock", false, why);
		return r;
	}
	r = writer_commit_locked(lk, reqs, n, max_record);
	writer_unlock(lk);
	return r;
}
