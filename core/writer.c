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

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "fault.h"
#include "fileio.h"
#include "log.h"

/* The paths of one commit, all malloc'd. */
struct paths {
	char *lock;
	char *dir;
	char *base;    /* the store's file name */
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
}

static int paths_init(const char *store, struct paths *pp)
{
	const char *slash = strrchr(store, '/');

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
	if (!pp->lock || !pp->dir || !pp->base) {
		paths_free(pp);
		return -ENOMEM;
	}
	return 0;
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

/* Steps 3 and 4: everything between the plan and store_adopt.  *renamed
 * tells whether the store now holds the new content. */
static int rewrite(struct store *s, const struct paths *pp, const char *lines,
		   size_t len, bool *renamed, const char **step)
{
	struct atomicfile_opts opts = { .log_tag = "commit" };
	const char *store = store_path(s);
	struct atomicfile *af = NULL;
	struct stat ost;
	bool lf = true;
	int ofd, r;

	*renamed = false;
	*step = "temp";
	ofd = open(store, O_RDONLY | O_CLOEXEC);
	if (ofd < 0 && errno != ENOENT)
		return fail("temp", store, -errno);
	if (ofd >= 0 && fstat(ofd, &ost) < 0) {
		r = fail("temp", store, -errno);
		goto out_close;
	}
	/* The new store keeps the old one's mode and owner. */
	if (ofd >= 0 && geteuid() == 0 &&
	    (ost.st_uid != 0 || ost.st_gid != getegid())) {
		opts.chown = true;
		opts.uid = ost.st_uid;
		opts.gid = ost.st_gid;
	}
	r = atomicfile_begin(pp->dir, pp->base,
			     ofd >= 0 ? ost.st_mode & 07777 : 0644, &opts, &af);
	if (r < 0)
		goto out_close;
	*step = "copy";
	if (ofd >= 0) {
		r = atomicfile_copy_from(af, ofd, (uint64_t)ost.st_size,
					 (uint64_t)len + 1);
		if (r < 0)
			goto out_abort;
	}
	*step = "append";
	if (ofd >= 0) {
		r = ends_in_lf(ofd, (uint64_t)ost.st_size, &lf);
		if (r < 0) {
			fail("append", store, r);
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
	*step = "rename";
	r = atomicfile_commit(af, NULL, 0, renamed);
	if (*renamed)
		*step = "fsync_dir";
	goto out_close;
out_abort:
	atomicfile_abort(af);
out_close:
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
	/* Under the lock nobody else is between temp and rename: any temp
	 * of ours in the directory was left by a writer that died. */
	r = atomicfile_remove_stale(pp.dir, pp.base, ATOMICFILE_STALE_ALL);
	if (r < 0)
		log_warn("commit: stale-temp scan %s: %s", pp.dir,
			 strerror(-r));
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
	r = rewrite(s, &pp, lines, len, &renamed, &step);
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
