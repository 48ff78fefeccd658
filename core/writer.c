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
 */
#include "writer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "fileio.h"
#include "log.h"

#define TMP_TAG ".iterfs-tmp."
#define COPY_CHUNK ((size_t)1 << 20)

/* The paths of one commit, all malloc'd. */
struct paths {
	char *lock;
	char *dir;
	char *base;    /* the store's file name */
	char *tmp;
};

/* Log a failed step; returns r for `return fail(...)`. */
static int fail(const char *step, const char *path, int r)
{
	log_err("commit: %s %s: %s", step, path, strerror(-r));
	return r;
}

static void paths_free(struct paths *pp)
{
	free(pp->lock);
	free(pp->dir);
	free(pp->base);
	free(pp->tmp);
}

static int paths_init(const char *store, struct paths *pp)
{
	const char *slash = strrchr(store, '/');
	uint64_t rnd;
	struct timespec ts;

	memset(pp, 0, sizeof(*pp));
	if (asprintf(&pp->lock, "%s.lock", store) < 0)
		pp->lock = NULL;
	if (!slash)
		pp->dir = strdup(".");
	else if (slash == store)
		pp->dir = strdup("/");
	else
		pp->dir = strndup(store, (size_t)(slash - store));
	pp->base = strdup(slash ? slash + 1 : store);
	/* Uniqueness comes from O_EXCL; randomness only avoids collisions
	 * with a temp a crashed writer of the same pid left behind. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		rnd = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
	}
	if (pp->dir && pp->base &&
	    asprintf(&pp->tmp, "%s/.%s" TMP_TAG "%ld.%016" PRIx64, pp->dir,
		     pp->base, (long)getpid(), rnd) < 0)
		pp->tmp = NULL;
	if (!pp->lock || !pp->dir || !pp->base || !pp->tmp) {
		paths_free(pp);
		return -ENOMEM;
	}
	return 0;
}

/* ".<base>.iterfs-tmp.<digits>.<hex>" exactly: a temp of this writer. */
static bool is_our_tmp(const char *name, const char *base)
{
	size_t bl = strlen(base), tl = strlen(TMP_TAG);
	const char *p;

	if (name[0] != '.' || strncmp(name + 1, base, bl) != 0 ||
	    strncmp(name + 1 + bl, TMP_TAG, tl) != 0)
		return false;
	p = name + 1 + bl + tl;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p++ != '.' || !*p)
		return false;
	while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
		p++;
	return *p == '\0';
}

/* Under the lock nobody else is between temp and rename: any temp of ours
 * in the directory was left by a writer that died. */
static void remove_stale(const struct paths *pp)
{
	struct dirent *de;
	DIR *d = opendir(pp->dir);

	if (!d) {
		log_warn("commit: stale-temp scan %s: %s", pp->dir,
			 strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		if (!is_our_tmp(de->d_name, pp->base))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			log_warn("commit: remove stale %s/%s: %s", pp->dir,
				 de->d_name, strerror(errno));
		else
			log_info("commit: removed stale temp %s/%s", pp->dir,
				 de->d_name);
	}
	closedir(d);
}

static int take_lock(const struct paths *pp, const struct fault *f, int *fd)
{
	int r = fault_at(f, "", "lock");

	if (r < 0)
		return fail("lock", pp->lock, r);
	*fd = open(pp->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (*fd < 0)
		return fail("lock", pp->lock, -errno);
	while (flock(*fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		close(*fd);
		*fd = -1;
		return fail("lock", pp->lock, r);
	}
	return 0;
}

static int copy_rw(int out, int in, uint64_t from, uint64_t size)
{
	char *b = malloc(COPY_CHUNK);
	int r = 0;

	if (!b)
		return -ENOMEM;
	while (from < size) {
		size_t want = size - from < COPY_CHUNK ? size - from : COPY_CHUNK;
		ssize_t n = pread(in, b, want, (off_t)from);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			/* Shrunk under us by a writer that ignores the lock. */
			r = -EIO;
			break;
		}
		r = fileio_pwrite_full(out, b, (size_t)n, from);
		if (r < 0)
			break;
		from += (uint64_t)n;
	}
	free(b);
	return r;
}

/* Fill `out` with the `size` bytes of `in`; *got is the size it ends with. */
static int copy_old(int out, int in, uint64_t size, uint64_t *got)
{
	struct stat st;
	loff_t oi = 0, oo = 0;

	if (ioctl(out, FICLONE, in) == 0) {
		/* The clone takes the file as it is now. */
		if (fstat(out, &st) < 0)
			return -errno;
		*got = (uint64_t)st.st_size;
		return 0;
	}
	*got = size;
	while ((uint64_t)oi < size) {
		ssize_t n = copy_file_range(in, &oi, out, &oo,
					    (size_t)(size - (uint64_t)oi), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == ENOSYS || errno == EXDEV ||
			      errno == EINVAL || errno == EOPNOTSUPP))
			return copy_rw(out, in, (uint64_t)oi, size);
		if (n < 0)
			return -errno;
		if (n == 0)
			/* Some filesystems report 0 instead of failing. */
			return copy_rw(out, in, (uint64_t)oi, size);
	}
	return 0;
}

/* Create the temp file beside the store, with the store's mode and owner. */
static int make_temp(const struct paths *pp, const char *store,
		     const struct fault *f, int *tfd, int *ofd,
		     struct stat *ost)
{
	int r = fault_at(f, "", "temp");

	if (r < 0)
		return fail("temp", pp->tmp, r);
	*ofd = open(store, O_RDONLY | O_CLOEXEC);
	if (*ofd < 0 && errno != ENOENT)
		return fail("temp", store, -errno);
	if (*ofd >= 0 && fstat(*ofd, ost) < 0)
		return fail("temp", store, -errno);
	*tfd = open(pp->tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	if (*tfd < 0)
		return fail("temp", pp->tmp, -errno);
	/* open() applied the umask; the new store keeps the old one's mode. */
	if (fchmod(*tfd, *ofd >= 0 ? ost->st_mode & 07777 : 0644) < 0)
		return fail("temp", pp->tmp, -errno);
	if (*ofd >= 0 && geteuid() == 0 &&
	    (ost->st_uid != 0 || ost->st_gid != getegid()) &&
	    fchown(*tfd, ost->st_uid, ost->st_gid) < 0)
		return fail("temp", pp->tmp, -errno);
	return 0;
}

/* Steps 3 and 4: everything between the plan and store_adopt.  *renamed
 * tells whether the store now holds the new content. */
static int rewrite(struct store *s, const struct paths *pp,
		   const struct fault *f, const char *lines, size_t len,
		   bool *renamed, const char **step)
{
	const char *store = store_path(s);
	struct stat ost;
	uint64_t size = 0;
	char last;
	int tfd = -1, ofd = -1, r;
	ssize_t n;

	*renamed = false;
	*step = "temp";
	r = make_temp(pp, store, f, &tfd, &ofd, &ost);
	if (r < 0)
		goto out_unlink;
	*step = "copy";
	r = fault_at(f, "", "copy");
	if (!r && ofd >= 0)
		r = copy_old(tfd, ofd, (uint64_t)ost.st_size, &size);
	if (r < 0) {
		fail("copy", pp->tmp, r);
		goto out_unlink;
	}
	*step = "append";
	r = fault_at(f, "", "append");
	if (!r && size > 0) {
		/* The temp is write-only; the old file has the same bytes. */
		do
			n = pread(ofd, &last, 1, (off_t)(size - 1));
		while (n < 0 && errno == EINTR);
		if (n < 0)
			r = -errno;
		else if (n == 0)
			r = -EIO;
		if (!r && last != '\n') {
			r = fileio_pwrite_full(tfd, "\n", 1, size);
			size++;
		}
	}
	if (!r)
		r = fileio_pwrite_full(tfd, lines, len, size);
	if (r < 0) {
		fail("append", pp->tmp, r);
		goto out_unlink;
	}
	*step = "fsync_temp";
	r = fault_at(f, "", "fsync_temp");
	if (!r && fsync(tfd) < 0)
		r = -errno;
	if (r < 0) {
		fail("fsync_temp", pp->tmp, r);
		goto out_unlink;
	}
	*step = "rename";
	r = fault_at(f, "", "rename");
	if (!r && rename(pp->tmp, store) < 0)
		r = -errno;
	if (r < 0) {
		fail("rename", pp->tmp, r);
		goto out_unlink;
	}
	*renamed = true;
	*step = "fsync_dir";
	r = fault_at(f, "", "fsync_dir");
	if (!r) {
		r = fileio_fsync_dir(pp->dir);
	}
	if (r < 0) {
		log_err("commit: fsync_dir %s: %s (the store was already "
			"renamed; its records may not survive a crash)",
			pp->dir, strerror(-r));
		goto out_close;
	}
	*step = "done";
	fault_at(f, "", "done");
	goto out_close;
out_unlink:
	if (tfd >= 0 && unlink(pp->tmp) < 0)
		log_err("commit: unlink %s: %s", pp->tmp, strerror(errno));
out_close:
	if (tfd >= 0)
		close(tfd);
	if (ofd >= 0)
		close(ofd);
	return r;
}

static void batch_fail(struct writer_req *reqs, size_t n, bool only_accepted,
		       int r, const char *step, bool renamed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (only_accepted && reqs[i].result != 0)
			continue;
		reqs[i].result = r;
		reqs[i].count = 0;
		if (renamed)
			snprintf(reqs[i].reason, COMMIT_WHY_LEN,
				 "the store was replaced but %s failed: the "
				 "records may not survive a crash", step);
		else
			snprintf(reqs[i].reason, COMMIT_WHY_LEN,
				 "the commit failed at %s; the store is "
				 "unchanged", step);
	}
}

int writer_commit(struct store *s, struct writer_req *reqs, size_t n,
		  size_t max_record)
{
	struct commit_plan *plan = NULL;
	struct paths pp;
	struct fault f;
	const char *lines, *step = "lock";
	bool renamed = false;
	size_t len, i;
	int lfd = -1, r, e;

	fault_read(&f);
	r = paths_init(store_path(s), &pp);
	if (r < 0) {
		batch_fail(reqs, n, false, r, "lock", false);
		return r;
	}
	r = take_lock(&pp, &f, &lfd);
	if (r < 0) {
		batch_fail(reqs, n, false, r, "lock", false);
		goto out_paths;
	}
	remove_stale(&pp);
	step = "refresh";
	r = store_refresh(s, NULL);
	if (!r)
		r = commit_plan_new(s, &plan);
	if (r < 0) {
		fail("plan", store_path(s), r);
		batch_fail(reqs, n, false, r, step, false);
		goto out_unlock;
	}
	for (i = 0; i < n; i++) {
		reqs[i].result = commit_plan_add(plan, reqs[i].data, reqs[i].len,
						 max_record, &reqs[i].count,
						 &reqs[i].first, &reqs[i].last,
						 reqs[i].reason);
		if (reqs[i].result == -ENOMEM)
			snprintf(reqs[i].reason, COMMIT_WHY_LEN,
				 "out of memory");
	}
	lines = commit_plan_lines(plan, &len);
	if (len == 0)
		goto out_plan;
	r = rewrite(s, &pp, &f, lines, len, &renamed, &step);
	if (r < 0)
		batch_fail(reqs, n, true, r, step, renamed);
	if (renamed) {
		/* The path holds the new content whatever fsync_dir said. */
		e = store_adopt(s, NULL);
		if (e < 0)
			log_warn("commit: adopt %s: %s (the next refresh "
				 "re-indexes)", store_path(s), strerror(-e));
	}
out_plan:
	commit_plan_free(plan);
out_unlock:
	close(lfd);
out_paths:
	paths_free(&pp);
	return r;
}
