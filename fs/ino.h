/* ino.h - inode numbers computed from what they name, so that they are the
 * same on every mount of the same history and need no table: lookup,
 * getattr, readdir and forget decode them, forget has nothing to free.
 *
 *   1..4                 /, iterations/, by-hash/, incoming/
 *   ((n + 1) << 4) | k   everything tied to iteration n:
 *     k = 0              iterations/<n>/
 *     k = 1 + view       iterations/<n>/<view> (code.py ... record.json)
 *     k = 8              by-hash/<h>/ whose lowest iteration is n
 *     k = 9              by-hash/<h>/code.py, same n
 *     k = 10             by-hash/<h>/<n>, the link to iterations/<n>
 *     k = 11             latest while it points at iterations/<n>
 *   >= INCOMING_INO_BASE incoming/ entries, owned by incoming.h
 *
 * `latest` gets a new inode whenever its target changes, so the kernel may
 * cache every symlink body forever.  Iteration numbers above INO_ITER_MAX
 * do not fit below INCOMING_INO_BASE and are not shown.
 */
#ifndef ITERFS_INO_H
#define ITERFS_INO_H

#include <stdbool.h>
#include <stdint.h>

#include "incoming.h"
#include "record.h"

#define INO_ROOT 1
#define INO_ITERATIONS 2
#define INO_BYHASH 3
#define INO_INCOMING 4

enum ino_kind {
	IK_ITER_DIR = 0,
	IK_VIEW = 1, /* IK_VIEW + view_kind, up to IK_VIEW + VIEW_COUNT - 1 */
	IK_HASH_DIR = 8,
	IK_HASH_CODE = 9,
	IK_HASH_LINK = 10,
	IK_LATEST = 11,
};

#define INO_ITER_MAX STORE_ITER_MAX

static inline bool ino_iter_ok(int64_t n)
{
	return n >= 0 && n <= INO_ITER_MAX;
}

static inline uint64_t ino_make(int64_t n, enum ino_kind k)
{
	return ((uint64_t)(n + 1) << 4) | (uint64_t)k;
}

/* Split an iteration-tied inode.  False for the fixed directories, for
 * incoming/ entries and for numbers no inode of ours ever had. */
static inline bool ino_split(uint64_t ino, int64_t *n, enum ino_kind *k)
{
	unsigned kind = (unsigned)(ino & 15);

	if (ino < 16 || ino >= INCOMING_INO_BASE)
		return false;
	if (kind >= IK_VIEW + VIEW_COUNT && kind < IK_HASH_DIR)
		return false;
	if (kind > IK_LATEST)
		return false;
	*n = (int64_t)(ino >> 4) - 1;
	*k = (enum ino_kind)kind;
	return true;
}

#endif
