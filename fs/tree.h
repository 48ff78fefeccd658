/* tree.h - the one description of the mounted tree (no FUSE).
 *
 * What is at which name, with which attributes, listing, link text and
 * bytes; ops.c only converts these answers to and from FUSE.  Inode numbers
 * are those of ino.h.  Attributes come as a `struct stat` plus how long the
 * kernel may trust them, so that everything here runs without a mount
 * (tests/test_tree.c).
 *
 * The top level is a table in tree.c (name, inode, whether listed, whether
 * present now); each inode kind has its handlers there (attributes, lookup,
 * listing, link text, content).  Adding a top-level view is one row and one
 * set of handlers.
 *
 * Calling sequence:
 *   tree_new(&opts, &t)
 *   tree_lookup / tree_getattr / tree_list / tree_readlink    any thread
 *   tree_open -> tree_file_read ... -> tree_file_free          per open file
 *   tree_read                                   reads without an open
 *   tree_changed(t)        after every change of the store (re-lists what
 *                          the tree keeps about files beside the store)
 *   tree_note_commit(t, ...)   after every commit through incoming/
 *   tree_free(t)
 *
 * An open file is a snapshot: tree_open fixes the bytes the handle reads
 * until tree_file_free, whatever happens to the store meanwhile.  It takes
 * no copy: a view's handle shares the view cache's rendered bytes by
 * reference, or, when they are not cached, keeps the record's line and
 * renders it at the first read (an open whose pages the kernel already
 * holds is never read: it costs one line read, no render); handles of one
 * version share one rendering.  A record whose line changed while the
 * mount shows it is "replaced": its files get new inode numbers from the
 * IR_VERSION region of ino.h for every new content, so the kernel never
 * takes cached pages of one version for another.  An inode whose version is
 * no longer the one shown answers -ESTALE (the kernel then looks the name up
 * again: open(2) and stat(2) retry once by themselves), except to getattr
 * while a snapshot of it is open: like an unlinked file, it keeps the
 * attributes it had at open (fstat(2) of the reader's descriptor).
 *
 * Errors: 0 or -errno; -ENOENT for names and inodes that do not exist (now),
 * -ENOTDIR, -EISDIR, -EINVAL (readlink of a non-link), -ESTALE (above),
 * -EIO (a line that is no record after all: logged), -ENOMEM.
 *
 * Threads: every function may be called from any thread.  t->lock (a mutex)
 * guards the version table, the lost+found list and the commit figures; it
 * is taken after none of ours and no other lock of ours is taken under it
 * (the store's and the vcache's locks are taken only outside it).
 */
#ifndef ITERFS_TREE_H
#define ITERFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "incoming.h"
#include "store.h"
#include "vcache.h"

/* Seconds: what never changes under an inode, what may change at any
 * commit, and what changes under the reader. */
#define TREE_TTL_FOREVER 86400.0
#define TREE_TTL_SHORT 1.0
#define TREE_TTL_NONE 0.0

struct tree;
struct tree_file;

struct tree_opts {
	struct store *store;      /* borrowed; outlives the tree */
	struct vcache *vc;        /* borrowed; outlives the tree */
	struct incoming *in;      /* borrowed; NULL: no incoming/ (-o ro) */
	uid_t uid;                /* owner of every entry */
	gid_t gid;
	const char *mount_opts;   /* shown in .iterfs/status; copied; may be
				   * NULL */
};

/* What the tree says about one inode. */
struct tree_node {
	struct stat st;           /* st_ino is the inode number */
	double attr_timeout;      /* how long st may be trusted */
	double entry_timeout;     /* how long the name -> inode may be */
	bool keep_cache;          /* the content of this inode never changes:
				   * cached pages stay valid across opens */
	bool cache_dir;           /* the listing never changes either */
	bool direct_io;           /* content may change between getattr and
				   * read (generated at open): no page cache,
				   * read to EOF whatever st_size said */
};

/* Start.  Lists lost+found once.  Returns 0 or -ENOMEM. */
int tree_new(const struct tree_opts *o, struct tree **out);
void tree_free(struct tree *t);

/* Attributes of an inode.  incoming/ entries are answered by incoming.h;
 * an inode that is gone or stale but open (tree_open) answers what it was
 * at that open. */
int tree_getattr(struct tree *t, uint64_t ino, struct tree_node *nd);

/* The entry `name` in directory `parent`.  Returns 0, -ENOENT, -ENOTDIR,
 * -ENAMETOOLONG. */
int tree_lookup(struct tree *t, uint64_t parent, const char *name,
		struct tree_node *nd);

/* One listed entry.  `nd` carries the inode and the type in st_mode, and,
 * when tree_list was asked for `attrs`, everything (not for "." and "..",
 * which never carry attributes: the kernel takes no reference on them).
 * `next` is the offset that resumes after this entry.  Return 0 to go on,
 * 1 when full (the entry was not taken), or -errno to stop. */
typedef int tree_fill_fn(void *arg, const char *name,
			 const struct tree_node *nd, bool has_attrs,
			 off_t next);

/* List directory `dir` from offset `off` (0: from ".").  Entries that
 * vanish while listing are left out.  Returns 0 (also when `fill` said
 * full), fill's -errno, -ENOENT, -ENOTDIR. */
int tree_list(struct tree *t, uint64_t dir, off_t off, bool attrs,
	      tree_fill_fn *fill, void *arg);

/* The text of symlink `ino`, NUL-terminated in out[len].  Returns 0,
 * -EINVAL (not a link), -ENOENT, -ENAMETOOLONG. */
int tree_readlink(struct tree *t, uint64_t ino, char *out, size_t len);

/* Open regular file `ino` for reading: its content now, owned by *out,
 * which must be freed (tree_file_free) before the tree.
 * Returns 0, -ENOENT, -ESTALE, -EISDIR, -EINVAL (not a file), -EIO,
 * -ENOMEM. */
int tree_open(struct tree *t, uint64_t ino, struct tree_file **out);
/* Its attributes at open, st_size that of the snapshot (owned by f). */
const struct tree_node *tree_file_node(const struct tree_file *f);
/* Append bytes [off, off + max) of the snapshot to `out`.  Returns 0,
 * -ENOMEM, or -EIO (a view kept as its line, rendered at this first read,
 * whose line is no record after all: logged; the next read tries again).
 * Any number of threads may read one file at once. */
int tree_file_read(struct tree_file *f, uint64_t off, size_t max,
		   struct buf *out);
void tree_file_free(struct tree_file *f);

/* Read without an open (a mount whose opens the kernel does alone): the
 * content of the version `ino` names -- the record shown now, or, for a
 * replaced version, its bytes while the view cache still holds them (then
 * -ESTALE).  Returns as tree_open. */
int tree_read(struct tree *t, uint64_t ino, uint64_t off, size_t max,
	      struct buf *out);

/* The store changed (called by the notifier thread): re-list lost+found.
 * *lost_changed (may be NULL) says whether its entries changed. */
void tree_changed(struct tree *t, bool *lost_changed);

/* A commit through incoming/ finished at `when` (CLOCK_REALTIME). */
void tree_note_commit(struct tree *t, const struct timespec *when);

/* .iterfs/status as it is now (JSON, LF-terminated), appended to `out`.
 * Returns 0 or -ENOMEM. */
int tree_status(struct tree *t, struct buf *out);

#endif
