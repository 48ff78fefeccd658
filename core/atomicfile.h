/* atomicfile.h - the one durable "write a file beside another".
 *
 * Readers of `dir/name` see the old file or the whole new one, never a part,
 * and once atomicfile_commit returns 0 the new file survives a power loss.
 *
 * Calling sequence:
 *   atomicfile_begin(dir, name, mode, opts, &af)   O_EXCL temp in dir
 *   atomicfile_write / atomicfile_copy_from ...    append to the temp
 *   [atomicfile_sync(af)]                          fsync now (else commit)
 *   atomicfile_commit(af, NULL, flags, &renamed)   fsync, rename, fsync dir
 *   or atomicfile_abort(af)                        unlink the temp
 * After begin succeeds the caller must end with commit or abort.  commit
 * frees af on every return except -EEXIST with ATOMICFILE_NOREPLACE (the
 * temp then stays, synced, for a commit under another name, or an abort).
 * A failed write or copy leaves af valid: the caller aborts.
 *
 * Temp names: "." + name + ".iterfs-tmp." + pid + "." + 16 hex digits, the
 * name part cut to fit NAME_MAX (never inside a UTF-8 sequence).  They start
 * with '.', so a directory whose own names never start with '.' (keep.h)
 * cannot meet one; in the store's directory the tag makes a clash with a
 * user's file implausible, and O_EXCL makes it harmless (begin fails).
 * atomicfile_is_temp() recognises exactly this shape.
 *
 * The mode is applied with fchmod: the umask does not narrow it.
 *
 * Errors are -errno; every failing step is logged with the step, the path
 * and strerror, prefixed with opts->log_tag.  Fault injection (fault.h):
 * steps temp, copy, append, fsync_temp, rename, fsync_dir, done, in the
 * scope opts->fault_scope, snapshot taken at begin.
 *
 * Thread-safety: an atomicfile is used by one thread at a time; different
 * ones are independent.  Two threads committing with ATOMICFILE_NOREPLACE
 * to one name: one wins, the other gets -EEXIST (also where the filesystem
 * lacks RENAME_NOREPLACE, as long as every writer of that directory uses
 * this module and holds a common lock; see atomicfile_commit).
 */
#ifndef ITERFS_ATOMICFILE_H
#define ITERFS_ATOMICFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ATOMICFILE_TAG ".iterfs-tmp."

struct atomicfile;

struct atomicfile_opts {
	const char *log_tag;      /* log prefix; NULL: "atomicfile" */
	const char *fault_scope;  /* fault.h scope; NULL: "" */
	bool chown;               /* give the file uid/gid (root only) */
	uid_t uid;
	gid_t gid;
};

enum atomicfile_flags {
	/* commit: rename only if `name` does not exist, else -EEXIST. */
	ATOMICFILE_NOREPLACE = 1u << 0,
	/* remove_stale: remove every temp, also those of live processes (the
	 * caller holds the lock every writer of those temps holds). */
	ATOMICFILE_STALE_ALL = 1u << 1,
};

/* Create the temp for `dir/name` with exactly `mode` (07777 bits).  `opts`
 * may be NULL; its strings must outlive af.  Returns 0, -ENOMEM, or the
 * -errno of opening dir or creating the temp. */
int atomicfile_begin(const char *dir, const char *name, mode_t mode,
		     const struct atomicfile_opts *opts,
		     struct atomicfile **out);

/* The temp's descriptor (O_RDWR, owned by af) and its path (for logs). */
int atomicfile_fd(const struct atomicfile *af);
const char *atomicfile_temp_path(const struct atomicfile *af);

/* Bytes written so far. */
uint64_t atomicfile_size(const struct atomicfile *af);

/* Append n bytes (short writes looped).  Step "append".  Returns 0 or
 * -errno (-ENOSPC, -EIO, ...). */
int atomicfile_write(struct atomicfile *af, const void *p, size_t n);

/* Append the first `size` bytes of `fd` (read by offset; its file position
 * is not used).  Into an empty temp FICLONE shares the extents; otherwise,
 * or where it fails, copy_file_range, else read/write, after checking with
 * statvfs that the directory has `size + extra` bytes free (else -ENOSPC,
 * and atomicfile_space tells the numbers).  -EIO when fd holds fewer than
 * `size` bytes.  Step "copy". */
int atomicfile_copy_from(struct atomicfile *af, int fd, uint64_t size,
			 uint64_t extra);

/* After copy_from failed its free-space check: the bytes it needed and the
 * bytes free; both 0 when the last failure was not that check. */
void atomicfile_space(const struct atomicfile *af, uint64_t *need,
		      uint64_t *avail);

/* fsync the temp now (step "fsync_temp"); commit then does not repeat it.
 * For callers that check something just before the rename.  0 or -errno;
 * af stays valid either way. */
int atomicfile_sync(struct atomicfile *af);

/* fsync the temp (unless synced), rename it to `name` (NULL: the name given
 * to begin) in the same directory, fsync the directory.  With
 * ATOMICFILE_NOREPLACE an existing `name` is -EEXIST and af stays valid;
 * where renameat2(RENAME_NOREPLACE) is not supported the fallback checks
 * first, which is only safe under the caller's own lock.  *renamed (may be
 * NULL) tells whether `name` now holds the new content: true also when the
 * directory fsync failed after the rename (then the content may not
 * survive a power loss, and its -errno is returned). */
int atomicfile_commit(struct atomicfile *af, const char *name, unsigned flags,
		      bool *renamed);

/* Unlink the temp and free af (NULL is a no-op).  A failed unlink is
 * logged only. */
void atomicfile_abort(struct atomicfile *af);

/* Remove temps of this module in `dir` that no process is still writing:
 * those for `name` (NULL: for any name) whose pid is not alive, or every
 * one with ATOMICFILE_STALE_ALL.  Each removal is logged.  Returns 0, or
 * the -errno of opening dir (-ENOENT when it does not exist). */
int atomicfile_remove_stale(const char *dir, const char *name, unsigned flags);

/* Whether `name` has the shape of a temp of this module. */
bool atomicfile_is_temp(const char *name);

#endif
