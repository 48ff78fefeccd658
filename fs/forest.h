/* forest.h - which history answers for an inode: one history at the root
 * (`iterfs STORE MNT`), or every history under a directory, each at its
 * relative path without ".jsonl" (`iterfs DIR MNT`).  No FUSE.
 *
 * The functions below take and give mount-wide inode numbers (ino.h: the
 * history's part in the top 16 bits); they route each request to the tree
 * of its history (tree.h) with the inode within that history, and give its
 * answers back with mount-wide numbers.  The folders of a directory mount
 * (the root and every directory that holds histories) are the forest's own.
 *
 * A directory mount:
 *   - finds histories by walking DIR (names starting with '.' and the
 *     side directories "<history>.jsonl.rejected" and ".lost" excepted);
 *     a "*.jsonl" file is a history when a line of its first MiB is a
 *     record (an object with an iteration number); others are not shown,
 *     and are logged once (again only after they change);
 *   - walks again when a folder is listed from its start, stat'ed, or a
 *     name is not found in it, so new histories show without remounting,
 *     removed ones stop being listed, and a folder's mtime (its newest
 *     history's) is current (a walk reads names and stats, and only the
 *     first MiB of files it has not probed since they last changed);
 *   - opens a history (o->open: its store's index, drop box, threads) at
 *     the first lookup of its name, never at mount, and keeps it open until
 *     forest_free, so that inode numbers the kernel holds stay valid;
 *   - gives each history the part of its inode numbers from a hash of its
 *     relative path (the next free part when two paths collide, in the
 *     walk's sorted order), so numbers are the same on every mount;
 *   - shows a history rather than a folder of the same name (logged once).
 *
 * Calling sequence:
 *   forest_new(&opts, &f)
 *   forest_getattr / _lookup / _list / _readlink / _open / _read
 *   forest_place                         for the drop box's operations
 *   forest_free(f)                       closes every history it opened
 *
 * Errors: as tree.h; -ENOENT also for the inodes of a history that is not
 * open; -EIO when a history cannot be opened (logged with its path and
 * the reason).
 *
 * Threads: any thread.  f->lock (a mutex) guards the node table; f->open_mu
 * serialises opening histories and is taken before f->lock, never under
 * it; tree locks are taken with neither held.
 */
#ifndef ITERFS_FOREST_H
#define ITERFS_FOREST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "incoming.h"
#include "tree.h"

#define FOREST_PROBE_BYTES (1u << 20)

struct forest;

/* One history as the forest routes to it; filled by the opener. */
struct forest_hist {
	struct tree *tree;
	struct incoming *in;       /* NULL: no incoming/ (read-only) */
	void *owner;               /* the opener's, handed back to close */
};

struct forest_opts {
	/* A directory of histories (absolute), or NULL for the one history
	 * `single` (already open, part 0, shown at the root). */
	const char *dir;
	struct forest_hist single;
	/* Open the history at `path` (absolute), whose inode numbers carry
	 * part `id`; fill *h.  Returns 0 or -errno. */
	int (*open)(void *arg, const char *path, uint16_t id,
		    struct forest_hist *h);
	/* Close one that open filled (and `single`). */
	void (*close)(void *arg, struct forest_hist *h);
	void *arg;
	uid_t uid;                 /* owner of the folders */
	gid_t gid;
};

/* Where a mount-wide inode lives: the history's tree and drop box and the
 * inode within it, or (tree NULL) a folder of the forest. */
struct forest_place {
	struct tree *tree;
	struct incoming *in;
	uint16_t id;
	uint64_t local;
};

/* Returns 0, -ENOMEM, or -errno of opening dir. */
int forest_new(const struct forest_opts *o, struct forest **out);
void forest_free(struct forest *f);

/* Returns 0 or -ENOENT (no such history open). */
int forest_place(struct forest *f, uint64_t ino, struct forest_place *p);

/* The mount-wide number of `local` in place p's history. */
static inline uint64_t forest_ino(const struct forest_place *p,
				  uint64_t local)
{
	return ino_global(p->id, local);
}

int forest_getattr(struct forest *f, uint64_t ino, struct tree_node *nd);
int forest_lookup(struct forest *f, uint64_t parent, const char *name,
		  struct tree_node *nd);
int forest_list(struct forest *f, uint64_t dir, off_t off, bool attrs,
		tree_fill_fn *fill, void *arg);
int forest_readlink(struct forest *f, uint64_t ino, char *out, size_t len);
int forest_open(struct forest *f, uint64_t ino, struct tree_file **out);
int forest_read(struct forest *f, uint64_t ino, uint64_t off, size_t max,
		struct buf *out);

#endif
