/* writer.h - the atomic, durable, group-committing store writer.
 *
 * One commit, for one or several drops at once:
 *   1. flock(LOCK_EX) on "<store>.lock" beside the store (other tools can take
 *      the same lock); remove stale temp files of this writer;
 *   2. store_refresh, then validate every drop with commit.h (each drop
 *      succeeds or fails on its own; accepted ones go into one rewrite);
 *   3. create ".<store name>.iterfs-tmp.<pid>.<random>" in the store's
 *      directory (O_EXCL), fill it with the old content by FICLONE, else
 *      copy_file_range, else read/write; add LF if the old content does not
 *      end in one; append the new lines (looping over short writes);
 *   4. fsync(temp), rename(temp, store), fsync(directory);
 *   5. store_adopt, unlock.
 * Success is reported only after step 4.  Any failure: the temp is removed,
 * the store is untouched, each accepted drop gets the errno, and the step,
 * the path and strerror are logged.  After a failed fsync nothing is renamed.
 * The one failure that comes after the rename, fsync(directory), cannot be
 * undone: the store holds the new records (and is adopted), but they may not
 * survive a power loss; its errno is still returned, with a reason saying so.
 *
 * Fault injection for tests (fault.h): ITERFS_FAULT="<step>:<ERRNO>" makes a step fail
 * with that errno (ENOSPC, EIO, ...), ITERFS_FAULT="<step>:crash" kills the
 * process with SIGKILL just before it.  Steps: lock, temp, copy, append,
 * fsync_temp, rename, fsync_dir, done ("done:crash" kills after step 4).
 *
 * Thread-safety: writer_commit may be called from several threads and
 * processes; the flock serialises them.  Lock order: flock, then store->lock.
 */
#ifndef ITERFS_WRITER_H
#define ITERFS_WRITER_H

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

/* Commit `n` drops in one rewrite.  Returns 0 when every request carries its
 * own result (some may be rejected), or -errno when the batch as a whole
 * failed (lock, disk: -ENOSPC, -EIO, ...), in which case every request that
 * had been accepted carries that errno too. */
int writer_commit(struct store *s, struct writer_req *reqs, size_t n,
		  size_t max_record);

#endif
