/* fault.h - fault injection for tests, shared by every durable writer.
 *
 * ITERFS_FAULT="<step>:<what>" names one step of one writer:
 *   <what> = an errno name (ENOSPC, EIO, EDQUOT, ...) or number: the step
 *            fails as if its system call had returned that errno;
 *   <what> = crash: SIGKILL to this process just before the step;
 *   <what> = call:  the hook set with fault_set_call() runs just before the
 *            step (tests use it to race an outside writer deterministically).
 * A step is named "<scope>.<name>", or just "<name>" for the empty scope.
 * The store writer uses the empty scope (lock, temp, copy, append,
 * fsync_temp, before_rename, rename, fsync_dir, done, before_adopt); the
 * kept-files module uses "keep" for a kept file and "keep_reason" for its
 * reason file (plus "keep.mkdir"), so that a fault meant for the store does
 * not also stop a rejected drop from being kept.
 *
 * Calling sequence: fault_read() once per operation (a snapshot of the
 * environment, so a test can change it between operations), then
 * fault_at() before each step.  Without ITERFS_FAULT both cost a getenv and
 * a compare.  Thread-safety: struct fault is the caller's; the call hook is
 * one process-wide pointer pair, set by a test before it starts threads.
 */
#ifndef ITERFS_FAULT_H
#define ITERFS_FAULT_H

#include <stdbool.h>

enum fault_kind { FAULT_NONE, FAULT_ERRNO, FAULT_CRASH, FAULT_CALL };

struct fault {
	char step[48];     /* "<scope>.<name>" or "<name>" */
	enum fault_kind kind;
	int err;           /* FAULT_ERRNO: the errno to inject (> 0) */
};

typedef void (*fault_call_fn)(const char *step, void *arg);

/* Snapshot ITERFS_FAULT into *f (FAULT_NONE when unset or malformed; a
 * malformed value is logged once per call). */
void fault_read(struct fault *f);

/* Before step `name` of `scope` ("" for none): 0 to go on, the injected
 * -errno, or no return at all (crash).  FAULT_CALL runs the hook and
 * returns 0.  The "done" step of any scope, and the writer's
 * "before_adopt", only know crash and call. */
int fault_at(const struct fault *f, const char *scope, const char *name);

/* Set (or with NULL clear) the hook that "<step>:call" runs. */
void fault_set_call(fault_call_fn fn, void *arg);

#endif
