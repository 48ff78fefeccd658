/* keep.h - directories of kept files beside a store (no FUSE).
 *
 * Two live beside a store "<store>":
 *   "<store>.rejected/"  drops that could not be committed: "<kept>" holds
 *                        the drop's bytes, "<kept>.reason" one line saying
 *                        why (reason + LF);
 *   "<store>.lost/"      lines that vanished when an outside writer replaced
 *                        the store, "<time>.jsonl", no reason file.
 * Nothing kept is ever partial: every file is written through atomicfile.h
 * (temp, fsync, rename, fsync directory).
 *
 * Calling sequence:
 *   keepdir_open(store_path, ".rejected", &kd)  nothing created yet
 *   keepdir_put / keepdir_put_fd                 creates the directory lazily
 *   keepdir_list, keepdir_remove, keepdir_unlink_name
 *   keepdir_close(kd)
 *
 * Names.  A kept name is derived from `base` (the drop's name): a leading
 * '.' (or an empty base) gets a "_" prefix, so no kept name starts with '.'
 * and none can be a temp of atomicfile.h; a base ending in ".reason" gets a
 * "_" suffix, so a kept file is never taken for another's reason file; the
 * base is cut (never inside a UTF-8 sequence) so that the name fits in
 * KEEP_NAME_MAX, which leaves room for "<kept>.reason" here and
 * "<kept>.rejected" in the mount.  When the name is taken, base.1, base.2,
 * ... (taken atomically with RENAME_NOREPLACE; the keepdir's mutex makes
 * choosing and taking one step within the process).  A name whose
 * ".reason" file exists is also taken.  keepdir_list skips every name that
 * starts with '.' or ends in ".reason", and anything not a regular file.
 *
 * Permissions.  Kept files carry what the store's readers may already read,
 * no more: file mode = store mode & 0666, directory mode = file mode plus x
 * wherever r is set (store 0600: 0700/0600; 0644: 0755/0644).  While the
 * store does not exist: 0700/0600 (nothing says who may read it yet).  The
 * umask does not narrow them.  Run as root, the directory and files are
 * given the store's owner and group.  After creating the directory its
 * parent is fsync'ed.
 *
 * Identity.  A put returns a keep_id: the kept name and the file's
 * (st_dev, st_ino), inode generation, size and mtime.  Replacing and
 * removing by id act only while that name still holds that same file (all
 * five equal: inode numbers are reused at once on ext4, so dev and ino
 * alone could take a newer file for the old one), so a late failure of one
 * drop can never replace or remove bytes another writer now keeps under
 * that name.
 *
 * Errors: -errno (-ENOSPC, -EIO, -EACCES, -ENOMEM, ...); every failing step
 * is logged with the step, the path and strerror.  Fault injection
 * (fault.h): "keep.mkdir", "keep.<step>" for the kept file and
 * "keep_reason.<step>" for its reason file, <step> as in atomicfile.h.
 *
 * Thread-safety: every function may be called from any thread; kd->mu (a
 * mutex, held across each call's file I/O) serialises them per keepdir.
 * It is a leaf lock: no other lock is taken under it.
 */
#ifndef ITERFS_KEEP_H
#define ITERFS_KEEP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define KEEP_REASON_SUFFIX ".reason"
/* Room for the longer of ".reason" here and ".rejected" in the mount. */
#define KEEP_NAME_MAX (NAME_MAX - 9)

struct keepdir;

struct keep_id {
	char name[KEEP_NAME_MAX + 1];  /* "" : nothing kept */
	dev_t dev;
	ino_t ino;
	uint32_t generation;           /* FS_IOC_GETVERSION, 0 where none */
	uint64_t size;
	struct timespec mtime;
};

struct keep_entry {
	char name[KEEP_NAME_MAX + 1];
	bool has_reason;               /* "<name>.reason" exists */
	dev_t dev;
	ino_t ino;
	uint64_t size;
	struct timespec mtime;
};

/* The keepdir "<store real path><suffix>" (symlinks to the store are
 * followed: it lives beside the real file).  Does not create it; when it
 * exists, removes temps left there by processes that died.  Returns 0,
 * -ENOMEM, -EINVAL (suffix empty or with '/'), or the -errno of resolving
 * the store path. */
int keepdir_open(const char *store_path, const char *suffix,
		 struct keepdir **out);
void keepdir_close(struct keepdir *kd);

/* The directory's absolute path (owned by kd). */
const char *keepdir_path(const struct keepdir *kd);

/* Keep `len` bytes of `data` durably, with `reason` (NULL: no reason file;
 * when replacing, an old reason file is removed).  *id is in and out: with
 * id->name empty a new name is chosen from `base`; with the id of an
 * earlier put, that copy is replaced if its name still holds that inode,
 * otherwise a new name is chosen.  On success *id describes the kept file.
 * On error nothing of this put remains (if its rename had already replaced
 * the earlier copy, that copy is gone too: the caller still has the bytes)
 * and id->name is emptied unless the earlier copy is intact.  Returns 0,
 * -EINVAL (base contains '/'), -ENOSPC, -EIO, ... */
int keepdir_put(struct keepdir *kd, const char *base, const void *data,
		size_t len, const char *reason, struct keep_id *id);

/* The same with the first `len` bytes of `fd` (read by offset; FICLONE or
 * copy_file_range where the filesystem can). */
int keepdir_put_fd(struct keepdir *kd, const char *base, int fd,
		   uint64_t len, const char *reason, struct keep_id *id);

/* Remove the kept file and its reason, only if id->name still holds that
 * inode.  Returns 0, -ENOENT (gone, or another file now has the name: it is
 * left alone), or the -errno of unlink/fsync. */
int keepdir_remove(struct keepdir *kd, const struct keep_id *id);

/* The user's rm: remove kept file `name` and its reason, whatever inode.
 * Returns 0, -ENOENT, -EINVAL (not a kept name: starts with '.', contains
 * '/', ends in ".reason"), or the -errno of unlink/fsync. */
int keepdir_unlink_name(struct keepdir *kd, const char *name);

/* The user's rm of "<name>.reason" alone: the kept bytes stay.  Returns
 * 0, -ENOENT, -EINVAL (not a kept name), or the -errno of unlink/fsync. */
int keepdir_unlink_reason(struct keepdir *kd, const char *name);

/* Open kept file `name` (or, with `reason`, its reason file) read-only for
 * the caller (who closes *fd).  Returns 0, -ENOENT, -EINVAL (not a kept
 * name), or the -errno of open. */
int keepdir_open_entry(struct keepdir *kd, const char *name, bool reason,
		       int *fd);

/* The kept entries sorted by name, into a malloc'd array (*out, free() it;
 * NULL when *n is 0).  A missing directory has none.  Returns 0, -ENOMEM,
 * or the -errno of reading the directory. */
int keepdir_list(struct keepdir *kd, struct keep_entry **out, size_t *n);

#endif
