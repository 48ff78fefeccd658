/* writer.h - the atomic, durable, group-committing store writer.
 *
 * One commit, for one or several drops at once:
 *   1. writer_lock: resolve the store path to the real file (symlinks
 *      followed: the lock, the temp and the rename act beside it, and a
 *      link stays a link); refuse a store that is not a regular file
 *      (-EINVAL, logged with what it is); flock(LOCK_EX) on "<real>.lock"
 *      (other tools can take the same lock), waiting at most a bound;
 *      remove stale temp files of this writer;
 *   2. writer_commit_locked: open the store, store_refresh, then validate
 *      every drop with commit.h (each drop succeeds or fails on its own;
 *      accepted ones go into one rewrite);
 *   3. through atomicfile.h: a temp in the store's directory filled with the
 *      old content (FICLONE, else copy_file_range or read/write after a
 *      statvfs check: -ENOSPC "needs N MB free beside the store, M MB
 *      free"); add LF if the old content does not end in one; append the
 *      new lines; fsync(temp);
 *   4. check that the store path still names the file copied (dev, ino,
 *      size, mtime): a writer that ignores the lock may have replaced it,
 *      and renaming over its save would undo it.  If so, start over from
 *      step 2 with the new file, at most 5 times, then -EAGAIN with a
 *      reason; otherwise rename(temp, store), fsync(directory);
 *   5. store_adopt; writer_unlock.
 * Success is reported only after step 4.  Any failure: the temp is removed,
 * the store is untouched, each accepted drop gets the errno, and the step,
 * the path and strerror are logged.  After a failed fsync nothing is renamed.
 * The one failure that comes after the rename, fsync(directory), cannot be
 * undone: the store holds the new records (and is adopted), but they may not
 * survive a power loss; its errno is still returned, with a reason saying so.
 * The check in step 4 narrows the race with lock-ignoring writers to the
 * instant between one stat and the rename; it cannot close it.
 *
 * Calling sequence: writer_commit(), or, for a caller that must not block
 * on the lock (the drop box waits in its own thread and drops cancelled
 * drops between tries):
 *   writer_lock(s, timeout_ms, &lk) -> writer_commit_locked(lk, ...) (any
 *   number of times) -> writer_unlock(lk).
 *
 * Fault injection for tests (fault.h): ITERFS_FAULT="<step>:<ERRNO>" makes a
 * step fail with that errno (ENOSPC, EIO, ...), ITERFS_FAULT="<step>:crash"
 * kills the process with SIGKILL just before it, "<step>:call" runs the
 * fault_set_call hook there.  Steps: lock, temp, copy, append, fsync_temp,
 * before_rename (just before the check of step 4), rename, fsync_dir, done
 * ("done:crash" kills after step 4), before_adopt (between the rename and
 * store_adopt; crash and call only).  The snapshot of ITERFS_FAULT is taken
 * by writer_lock (lock, before_rename) and per rewrite (the others).
 *
 * Thread-safety: writer_commit may be called from several threads and
 * processes; the flock serialises them (a writer_lock belongs to the thread
 * that took it; flock does not exclude another descriptor of the same
 * process, so two threads each holding their own writer_lock exclude each
 * other too).  Lock order: flock, then store->update_mu, then store->lock.
 */
#ifndef ITERFS_WRITER_H
#define ITERFS_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commit.h"
#include "store.h"

/* Default size limit of one drop (iterfs -o max_record=). */
#define WRITER_MAX_RECORD_DEFAULT ((size_t)16 << 20)

struct writer_req {
	const char *data;   /* in: the drop, owned by the caller */
	size_t len;
	int result;         /* out: 0 or -errno */
	char reason[COMMIT_WHY_LEN]; /* out: one line when result != 0 */
	size_t count;       /* out: records added (0: an identical re-send) */
	int64_t first;      /* out: first and last iteration added */
	int64_t last;
};

/* How long writer_commit waits for the lock. */
#define WRITER_LOCK_TIMEOUT_MS_DEFAULT 30000

/* The store's flock, held. */
struct writer_lock;

/* Take the flock on "<store>.lock", creating it with the store's permission
 * bits (0644 while the store does not exist).  Waits at most timeout_ms
 * (< 0: forever; 0: one try), polling without signals.  Returns 0, -ENOMEM,
 * -ETIMEDOUT (logged with the lock path and, where /proc/locks tells, the
 * holder's pid; not logged for timeout 0), or the -errno of opening the lock
 * file. */
int writer_lock(struct store *s, int timeout_ms, struct writer_lock **out);

/* writer_lock that also asks `give_up(arg)` after every failed try (from
 * the calling thread, no lock held) and returns -ECANCELED, unlogged, when
 * it says true: the drop box stops waiting once every drop it waits for was
 * cancelled.  give_up may be NULL. */
typedef bool (*writer_give_up_fn)(void *arg);
int writer_lock_wait(struct store *s, int timeout_ms,
		     writer_give_up_fn give_up, void *arg,
		     struct writer_lock **out);

/* Steps 2-5 under a lock taken on the same store; results as for
 * writer_commit (also -EAGAIN: the store kept being replaced by another
 * writer; -EINVAL: it is no longer a regular file). */
int writer_commit_locked(struct writer_lock *lk, struct writer_req *reqs,
			 size_t n, size_t max_record);

/* Release the flock and free lk (NULL is a no-op). */
void writer_unlock(struct writer_lock *lk);

/* writer_lock (WRITER_LOCK_TIMEOUT_MS_DEFAULT), writer_commit_locked,
 * writer_unlock: commit `n` drops in one rewrite.  Returns 0 when every request carries its
 * own result (some may be rejected), or -errno when the batch as a whole
 * failed (lock: -ETIMEDOUT, disk: -ENOSPC, -EIO, ...), in which case every
 * request that had been accepted carries that errno too. */
int writer_commit(struct store *s, struct writer_req *reqs, size_t n,
		  size_t max_record);

#endif
