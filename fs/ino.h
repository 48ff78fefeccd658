/* ino.h - the whole inode space of the mount, in one place.
 *
 * Numbers are computed from what they name, so that they are the same on
 * every mount of the same history; forget has nothing to free.
 *
 * A number is a history's part and the inode within that history:
 *
 *   bits 63..48   the history: 0 in a single-file mount, and for the
 *                 directory mount's own directories (the root and the
 *                 folders that hold histories); 1..65535 for a history of
 *                 a directory mount, from a hash of its relative path
 *                 (forest.h), so that it is the same on every mount
 *   bits 47..0    the inode within the history ("local"), laid out as
 *
 *   1..15                fixed entries (INO_ROOT ... INO_STATUS)
 *   ((n + 1) << 4) | k   everything tied to iteration n (n <= INO_ITER_MAX):
 *     k = 0              iterations/<n>/
 *     k = 1 + view       iterations/<n>/<view> (code.py ... record.json)
 *     k = 8              by-hash/<h>/ whose lowest iteration is n
 *     k = 9              by-hash/<h>/code.py, same n
 *     k = 10             by-hash/<h>/<n>, the link to iterations/<n>
 *     k = 11             latest while it points at iterations/<n>
 *     k = 12             failed/<n>
 *   [2^46, 2^47)         incoming/ entries, handed out by incoming.c
 *                        (INCOMING_INO_BASE + a counter; not stable)
 *   [2^47, 2^48)         hashed: bit 47, a 4-bit region, 39 bits of a hash
 *                        of what the inode names, and 4 low bits:
 *     IR_VERSION         the files of a record that was replaced: the hash
 *                        of (n, the line's tag), low bits 1 + view.  A new
 *                        content is a new inode, so the kernel never mixes
 *                        cached pages of two versions; the same content
 *                        gets the same number again.
 *     IR_LOST            lost+found/<name>: the hash of the name
 *     IR_METRIC_DIR      by-metric/<metric>/: the hash of the metric's name
 *     IR_METRIC_LINK     by-metric/<metric>/<rank>: the hash of the name and
 *                        of the iteration it leads to (a new target is a new
 *                        inode, as for latest); on a collision with a link
 *                        handed out before, the next free number
 *     IR_FOLDER          a folder of a directory mount (history part 0): the
 *                        hash of its relative path
 *   Hashed numbers are decoded through tables kept by tree.c and forest.c
 *   (only what was handed out enters them).
 *
 * `latest` gets a new inode whenever its target changes, so the kernel may
 * cache every symlink body forever.  INO_ITER_MAX is the store's
 * STORE_ITER_MAX: every record shown fits.
 */
#ifndef ITERFS_INO_H
#define ITERFS_INO_H

#include <stdbool.h>
#include <stdint.h>

#include "record.h"
#include "store.h"

#define INO_ROOT 1
#define INO_ITERATIONS 2
#define INO_BYHASH 3
#define INO_INCOMING 4
#define INO_BYMETRIC 5
#define INO_FAILED 6
#define INO_LOSTFOUND 7
#define INO_DOTITERFS 8       /* .iterfs/ (hidden) */
#define INO_STATUS 9          /* .iterfs/status */
#define INO_FIXED_MAX 15

enum ino_kind {
	IK_ITER_DIR = 0,
	IK_VIEW = 1, /* IK_VIEW + view_kind, up to IK_VIEW + VIEW_COUNT - 1 */
	IK_HASH_DIR = 8,
	IK_HASH_CODE = 9,
	IK_HASH_LINK = 10,
	IK_LATEST = 11,
	IK_FAILED_LINK = 12,
};

#define INO_ITER_MAX STORE_ITER_MAX

#define INO_LOCAL_BITS 48
#define INO_LOCAL_MASK ((UINT64_C(1) << INO_LOCAL_BITS) - 1)
#define INCOMING_INO_BASE (UINT64_C(1) << 46)
#define INO_HASHED_BASE (UINT64_C(1) << 47)

enum ino_region {
	IR_VERSION = 0,
	IR_LOST = 1,
	IR_METRIC_DIR = 2,
	IR_METRIC_LINK = 3,
	IR_FOLDER = 4,
};

#define INO_HASH_BITS 39

static inline bool ino_iter_ok(int64_t n)
{
	return n >= 0 && n <= INO_ITER_MAX;
}

static inline uint64_t ino_make(int64_t n, enum ino_kind k)
{
	return ((uint64_t)(n + 1) << 4) | (uint64_t)k;
}

/* The parts of a mount-wide number, and back. */
static inline uint16_t ino_hist(uint64_t ino)
{
	return (uint16_t)(ino >> INO_LOCAL_BITS);
}

static inline uint64_t ino_local(uint64_t ino)
{
	return ino & INO_LOCAL_MASK;
}

static inline uint64_t ino_global(uint16_t hist, uint64_t local)
{
	return ((uint64_t)hist << INO_LOCAL_BITS) | local;
}

/* The predicates below take local numbers. */
static inline bool ino_is_incoming(uint64_t ino)
{
	return ino >= INCOMING_INO_BASE && ino < INO_HASHED_BASE;
}

static inline bool ino_is_hashed(uint64_t ino)
{
	return ino >= INO_HASHED_BASE && ino <= INO_LOCAL_MASK;
}

static inline uint64_t ino_hashed(enum ino_region r, uint64_t h, unsigned low)
{
	return INO_HASHED_BASE | ((uint64_t)r << (INO_HASH_BITS + 4)) |
	       ((h & ((UINT64_C(1) << INO_HASH_BITS) - 1)) << 4) |
	       (uint64_t)(low & 15);
}

/* A 64-bit mixer (splitmix64's finaliser): what the hashed numbers of
 * tree.c are made of. */
static inline uint64_t ino_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* The hash of (a, iteration n) behind two kinds of hashed numbers: a
 * replaced record's version (a: its line's tag) and by-metric/<metric>/
 * <rank> leading to n (a: the metric's key, the hash bits of its
 * directory's number).  Two links meet in 39 bits once about a million
 * have been handed out; tree.c then gives the later one the next free
 * number (metric_link_ino). */
static inline uint64_t ino_pair_hash(uint64_t a, int64_t n)
{
	return ino_mix64(a ^ ino_mix64((uint64_t)n));
}

static inline enum ino_region ino_region_of(uint64_t ino)
{
	return (enum ino_region)((ino >> (INO_HASH_BITS + 4)) & 15);
}

/* Split an iteration-tied inode.  False for the fixed entries, for
 * incoming/ entries, hashed numbers and numbers no inode of ours ever had. */
static inline bool ino_split(uint64_t ino, int64_t *n, enum ino_kind *k)
{
	unsigned kind = (unsigned)(ino & 15);

	if (ino <= INO_FIXED_MAX || ino >= INCOMING_INO_BASE)
		return false;
	if (kind >= IK_VIEW + VIEW_COUNT && kind < IK_HASH_DIR)
		return false;
	if (kind > IK_FAILED_LINK)
		return false;
	*n = (int64_t)(ino >> 4) - 1;
	*k = (enum ino_kind)kind;
	return true;
}

#endif
