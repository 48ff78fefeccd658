/* ops.c - the low-level FUSE operations.
 *
 * Every operation is split in two: do_<op>() computes the answer and returns
 * 0 or -errno, <op>() sends exactly one reply.  Nothing here may end the
 * daemon: a bad record or a failing read is an errno for that request and a
 * log line.
 *
 * Caching policy (the speed of a read-mostly tree comes from the kernel):
 * iterations/<n>/ and its files never change once written, so their entries
 * and attributes live for a day, their pages are kept (keep_cache, noflush)
 * and the listing of <n>/ is cached (cache_readdir).  What changes with a
 * commit (/, iterations/, by-hash/ and below, latest, incoming/) gets short
 * or zero timeouts and no listing cache, and the notifier pushes
 * invalidations.  A lookup that fails is never cached, so a just-committed
 * iteration is visible at once.
 */
#include "iterfs.h"
#include "ino.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"

#define TTL_FOREVER 86400.0
#define TTL_SHORT 1.0
#define TTL_NONE 0.0

static struct ifs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Errors that are a normal answer, not worth a log line. */
static bool err_is_quiet(int e)
{
	return e == ENOENT || e == EROFS || e == ENOTDIR || e == EISDIR ||
	       e == EEXIST || e == EPERM || e == EACCES || e == EINTR ||
	       e == ENOTEMPTY || e == EINVAL || e == EFBIG || e == ENAMETOOLONG;
}

static void reply_err(fuse_req_t req, const char *op, uint64_t ino, int r)
{
	if (!err_is_quiet(-r))
		log_err("%s of inode %" PRIu64 ": %s", op, ino, strerror(-r));
	fuse_reply_err(req, -r);
}

/* --- attributes ----------------------------------------------------------- */

static void store_mtime(struct ifs *fs, struct timespec *ts)
{
	struct stat st;

	/* A missing store (empty history) has the epoch as its time. */
	if (stat(store_path(fs->store), &st) < 0) {
		ts->tv_sec = 0;
		ts->tv_nsec = 0;
		return;
	}
	*ts = st.st_mtim;
}

static void attr_fill(struct ifs *fs, struct stat *st, uint64_t ino,
		      mode_t mode, nlink_t nlink, uint64_t size,
		      struct timespec mtime)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = nlink;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)size;
	st->st_blksize = 4096;
	/* Directories and symlinks occupy no blocks, as fast symlinks and
	 * this tree's directories hold no data of their own. */
	st->st_blocks = S_ISREG(mode) ? (blkcnt_t)((size + 511) / 512) : 0;
	st->st_atim = mtime;
	st->st_mtim = mtime;
	st->st_ctim = mtime;
}

static struct timespec ts_of(int64_t us)
{
	int64_t sec = us / 1000000 - (us % 1000000 < 0);
	struct timespec ts = { .tv_sec = (time_t)sec,
			       .tv_nsec = (long)(us - sec * 1000000) * 1000 };

	return ts;
}

static int link_text(enum ino_kind k, int64_t n, char *out, size_t len)
{
	int w;

	if (k == IK_LATEST)
		w = snprintf(out, len, "iterations/%" PRId64, n);
	else
		w = snprintf(out, len, "../../iterations/%" PRId64, n);
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : w;
}

/* The code behind by-hash/<h>/ whose lowest iteration is f; -ENOENT when
 * f is no longer the lowest iteration of its code (a stale inode). */
static int hash_dir_code(struct ifs *fs, int64_t f, unsigned char d[HASH_LEN],
			 struct store_code *code)
{
	bool has;
	int r;

	r = store_code_of(fs->store, f, d, &has);
	if (r < 0)
		return r;
	if (!has)
		return -ENOENT;
	r = store_code_lookup(fs->store, d, code, NULL, 0);
	if (r < 0)
		return r;
	return code->first_iter == f ? 0 : -ENOENT;
}

/* Iterations with code d, ascending, in a new array (*iters, free()) of
 * *n entries. */
static int hash_iters(struct ifs *fs, const unsigned char d[HASH_LEN],
		      int64_t **iters, size_t *n)
{
	struct store_code code;
	size_t cap;
	int64_t *v;
	int r;

	r = store_code_lookup(fs->store, d, &code, NULL, 0);
	if (r < 0)
		return r;
	cap = code.count ? code.count : 1;
	v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	r = store_code_lookup(fs->store, d, &code, v, cap);
	if (r < 0) {
		free(v);
		return r;
	}
	/* The count may have grown in between: take what fits. */
	*n = code.count < cap ? code.count : cap;
	*iters = v;
	return 0;
}

static int hash_dir_mtime(struct ifs *fs, const unsigned char d[HASH_LEN],
			  int64_t *mtime)
{
	struct store_rec rec;
	int64_t *iters;
	size_t i, n;
	int r;

	r = hash_iters(fs, d, &iters, &n);
	if (r < 0)
		return r;
	/* Like any directory, it changes when an entry is added. */
	*mtime = 0;
	for (i = 0; i < n; i++)
		if (store_lookup(fs->store, iters[i], &rec) == 0 &&
		    rec.mtime > *mtime)
			*mtime = rec.mtime;
	free(iters);
	return 0;
}

static int view_attr(struct ifs *fs, int64_t n, enum view_kind k,
		     uint64_t *size, int64_t *mtime)
{
	struct store_rec rec;
	bool present;
	int r;

	r = store_lookup(fs->store, n, &rec);
	if (r < 0)
		return r;
	r = vcache_get(fs->vc, fs->store, &rec, k, &present, size, 0, 0, NULL);
	if (r < 0)
		return r;
	if (!present)
		return -ENOENT;
	*mtime = rec.mtime;
	return 0;
}

static void incoming_to_entry(struct ifs *fs, const struct incoming_attr *a,
			      struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	attr_fill(fs, &e->attr, a->ino, a->mode, 1, a->size, a->mtime);
	e->attr.st_uid = a->uid;
	e->attr.st_gid = a->gid;
	e->attr_timeout = TTL_NONE;
	e->entry_timeout = TTL_NONE;
}

static int node_fixed(struct ifs *fs, uint64_t ino, struct fuse_entry_param *e)
{
	struct store_stats ss;
	struct timespec t;
	nlink_t nlink;
	int r;

	store_mtime(fs, &t);
	e->entry_timeout = TTL_FOREVER;
	e->attr_timeout = TTL_SHORT;
	switch (ino) {
	case INO_ROOT:
		nlink = 2 + 2 + (fs->in ? 1 : 0);
		attr_fill(fs, &e->attr, ino, S_IFDIR | 0555, nlink, 0, t);
		return 0;
	case INO_ITERATIONS:
		r = store_stats(fs->store, &ss);
		if (r < 0)
			return r;
		attr_fill(fs, &e->attr, ino, S_IFDIR | 0555,
			  (nlink_t)(2 + ss.iterations), 0, t);
		return 0;
	case INO_BYHASH:
		/* Counting the codes means hashing every record; 1 is what
		 * find(1) and others understand as "subdirectories not
		 * counted", so listing / stays cheap on a large history. */
		attr_fill(fs, &e->attr, ino, S_IFDIR | 0555, 1, 0, t);
		return 0;
	case INO_INCOMING:
		if (!fs->in)
			return -ENOENT;
		attr_fill(fs, &e->attr, ino, S_IFDIR | 0755, 2, 0, t);
		e->attr_timeout = TTL_NONE;
		return 0;
	}
	return -ENOENT;
}

/* Attributes and cache lifetimes of any inode. */
static int node_get(struct ifs *fs, uint64_t ino, struct fuse_entry_param *e)
{
	unsigned char d[HASH_LEN];
	struct incoming_attr ia;
	struct store_code code;
	struct store_rec rec;
	enum ino_kind k;
	uint64_t size;
	int64_t mtime;
	char target[64];
	bool has;
	int64_t n;
	int r;

	memset(e, 0, sizeof(*e));
	e->ino = ino;
	if (incoming_owns(ino)) {
		if (!fs->in)
			return -ENOENT;
		r = incoming_getattr(fs->in, ino, &ia);
		if (r < 0)
			return r;
		incoming_to_entry(fs, &ia, e);
		return 0;
	}
	if (!ino_split(ino, &n, &k))
		return node_fixed(fs, ino, e);

	switch (k) {
	case IK_ITER_DIR:
		r = store_lookup(fs->store, n, &rec);
		if (r < 0)
			return r;
		attr_fill(fs, &e->attr, ino, S_IFDIR | 0555, 2, 0,
			  ts_of(rec.mtime));
		e->attr_timeout = e->entry_timeout = TTL_FOREVER;
		return 0;
	case IK_HASH_DIR:
		r = hash_dir_code(fs, n, d, &code);
		if (r < 0)
			return r;
		r = hash_dir_mtime(fs, d, &mtime);
		if (r < 0)
			return r;
		attr_fill(fs, &e->attr, ino, S_IFDIR | 0555, 2, 0,
			  ts_of(mtime));
		e->attr_timeout = e->entry_timeout = TTL_SHORT;
		return 0;
	case IK_HASH_CODE:
		r = hash_dir_code(fs, n, d, &code);
		if (r < 0)
			return r;
		r = view_attr(fs, n, VIEW_CODE, &size, &mtime);
		if (r < 0)
			return r;
		attr_fill(fs, &e->attr, ino, S_IFREG | 0444, 1, size,
			  ts_of(mtime));
		/* Its content is fixed; which inode the name leads to is
		 * not (a lower iteration with the same code may arrive). */
		e->attr_timeout = TTL_FOREVER;
		e->entry_timeout = TTL_SHORT;
		return 0;
	case IK_HASH_LINK:
	case IK_LATEST:
		r = store_lookup(fs->store, n, &rec);
		if (r < 0)
			return r;
		if (k == IK_HASH_LINK) {
			r = store_code_of(fs->store, n, d, &has);
			if (r < 0)
				return r;
			if (!has)
				return -ENOENT;
		}
		r = link_text(k, n, target, sizeof(target));
		if (r < 0)
			return r;
		attr_fill(fs, &e->attr, ino, S_IFLNK | 0777, 1, (uint64_t)r,
			  ts_of(rec.mtime));
		e->attr_timeout = TTL_FOREVER;
		/* latest must follow every commit at once. */
		e->entry_timeout = k == IK_LATEST ? TTL_NONE : TTL_SHORT;
		return 0;
	default:
		r = view_attr(fs, n, (enum view_kind)(k - IK_VIEW), &size,
			      &mtime);
		if (r < 0)
			return r;
		attr_fill(fs, &e->attr, ino, S_IFREG | 0444, 1, size,
			  ts_of(mtime));
		e->attr_timeout = e->entry_timeout = TTL_FOREVER;
		return 0;
	}
}

static bool is_dir_ino(uint64_t ino)
{
	enum ino_kind k;
	int64_t n;

	if (incoming_owns(ino))
		return false;
	if (!ino_split(ino, &n, &k))
		return true;
	return k == IK_ITER_DIR || k == IK_HASH_DIR;
}

/* --- names ---------------------------------------------------------------- */

/* Iteration names are canonical decimals: "7", never "07" or "+7". */
static int parse_iter(const char *name, int64_t *n)
{
	size_t len = strlen(name), i;
	int64_t v = 0;

	if (len == 0 || len > 18 || (len > 1 && name[0] == '0'))
		return -ENOENT;
	for (i = 0; i < len; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -ENOENT;
		v = v * 10 + (name[i] - '0');
	}
	if (!ino_iter_ok(v))
		return -ENOENT;
	*n = v;
	return 0;
}

static int parse_hash(const char *name, unsigned char d[HASH_LEN])
{
	size_t i;

	if (strlen(name) != HASH_HEX_LEN)
		return -ENOENT;
	for (i = 0; i < HASH_HEX_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return -ENOENT;
	return hash_from_hex(name, HASH_HEX_LEN, d) < 0 ? -ENOENT : 0;
}

static int latest_ino(struct ifs *fs, uint64_t *ino)
{
	bool found;
	int64_t n;
	int r;

	r = store_highest(fs->store, &n, &found);
	if (r < 0)
		return r;
	if (!found || !ino_iter_ok(n))
		return -ENOENT;
	*ino = ino_make(n, IK_LATEST);
	return 0;
}

static int lookup_root(struct ifs *fs, const char *name, uint64_t *ino)
{
	if (strcmp(name, "iterations") == 0)
		*ino = INO_ITERATIONS;
	else if (strcmp(name, "by-hash") == 0)
		*ino = INO_BYHASH;
	else if (strcmp(name, "incoming") == 0 && fs->in)
		*ino = INO_INCOMING;
	else if (strcmp(name, "latest") == 0)
		return latest_ino(fs, ino);
	else
		return -ENOENT;
	return 0;
}

static int lookup_hash_dir(struct ifs *fs, int64_t f, const char *name,
			   uint64_t *ino)
{
	unsigned char d[HASH_LEN], dn[HASH_LEN];
	struct store_code code;
	bool has;
	int64_t n;
	int r;

	r = hash_dir_code(fs, f, d, &code);
	if (r < 0)
		return r;
	if (strcmp(name, "code.py") == 0) {
		*ino = ino_make(f, IK_HASH_CODE);
		return 0;
	}
	r = parse_iter(name, &n);
	if (r < 0)
		return r;
	r = store_code_of(fs->store, n, dn, &has);
	if (r < 0)
		return r;
	if (!has || memcmp(d, dn, HASH_LEN) != 0)
		return -ENOENT;
	*ino = ino_make(n, IK_HASH_LINK);
	return 0;
}

static int do_lookup(struct ifs *fs, uint64_t parent, const char *name,
		     struct fuse_entry_param *e)
{
	unsigned char d[HASH_LEN];
	struct incoming_attr ia;
	struct store_code code;
	enum view_kind v;
	enum ino_kind k;
	uint64_t ino;
	int64_t n;
	int r;

	switch (parent) {
	case INO_ROOT:
		r = lookup_root(fs, name, &ino);
		break;
	case INO_ITERATIONS:
		r = parse_iter(name, &n);
		if (r == 0)
			ino = ino_make(n, IK_ITER_DIR);
		break;
	case INO_BYHASH:
		r = parse_hash(name, d);
		if (r == 0)
			r = store_code_lookup(fs->store, d, &code, NULL, 0);
		if (r == 0 && !ino_iter_ok(code.first_iter))
			r = -ENOENT;
		if (r == 0)
			ino = ino_make(code.first_iter, IK_HASH_DIR);
		break;
	case INO_INCOMING:
		if (!fs->in)
			return -ENOENT;
		r = incoming_lookup(fs->in, name, &ia);
		if (r < 0)
			return r;
		incoming_to_entry(fs, &ia, e);
		return 0;
	default:
		if (!ino_split(parent, &n, &k))
			return incoming_owns(parent) ? -ENOTDIR : -ENOENT;
		if (k == IK_ITER_DIR) {
			r = view_by_name(name, &v);
			if (r == 0)
				ino = ino_make(n, (enum ino_kind)(IK_VIEW + v));
		} else if (k == IK_HASH_DIR) {
			r = lookup_hash_dir(fs, n, name, &ino);
		} else {
			r = -ENOTDIR;
		}
		break;
	}
	if (r < 0)
		return r;
	return node_get(fs, ino, e);
}

static void ifs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int r = do_lookup(fs_of(req), parent, name, &e);

	if (r < 0)
		reply_err(req, "lookup", parent, r);
	else
		fuse_reply_entry(req, &e);
}

static void ifs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void ifs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void ifs_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int r = node_get(fs_of(req), ino, &e);

	(void)fi;
	if (r < 0)
		reply_err(req, "getattr", ino, r);
	else
		fuse_reply_attr(req, &e.attr, e.attr_timeout);
}

static int do_setattr(struct ifs *fs, uint64_t ino, const struct stat *attr,
		      int to_set, struct fuse_entry_param *e)
{
	struct incoming_setattr sa = {
		.set_mode = to_set & FUSE_SET_ATTR_MODE,
		.set_uid = to_set & FUSE_SET_ATTR_UID,
		.set_gid = to_set & FUSE_SET_ATTR_GID,
		.set_size = to_set & FUSE_SET_ATTR_SIZE,
		.set_mtime = to_set & (FUSE_SET_ATTR_MTIME |
				       FUSE_SET_ATTR_MTIME_NOW),
		.mode = attr->st_mode,
		.uid = attr->st_uid,
		.gid = attr->st_gid,
		.mtime = attr->st_mtim,
	};
	int r;

	if (!incoming_owns(ino) || !fs->in)
		return -EROFS;
	if (sa.set_size && attr->st_size < 0)
		return -EINVAL;
	sa.size = (uint64_t)attr->st_size;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &sa.mtime);
	r = incoming_setattr(fs->in, ino, &sa);
	if (r < 0)
		return r;
	return node_get(fs, ino, e);
}

static void ifs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int r = do_setattr(fs_of(req), ino, attr, to_set, &e);

	(void)fi;
	if (r < 0)
		reply_err(req, "setattr", ino, r);
	else
		fuse_reply_attr(req, &e.attr, e.attr_timeout);
}

static int do_readlink(struct ifs *fs, uint64_t ino, char *out, size_t len)
{
	struct fuse_entry_param e;
	enum ino_kind k;
	int64_t n;
	int r;

	if (!ino_split(ino, &n, &k) || (k != IK_HASH_LINK && k != IK_LATEST))
		return -EINVAL;
	r = node_get(fs, ino, &e);
	if (r < 0)
		return r;
	r = link_text(k, n, out, len);
	return r < 0 ? r : 0;
}

static void ifs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[64];
	int r = do_readlink(fs_of(req), ino, target, sizeof(target));

	if (r < 0)
		reply_err(req, "readlink", ino, r);
	else
		fuse_reply_readlink(req, target);
}

/* --- directories ---------------------------------------------------------- */

struct dfill {
	fuse_req_t req;
	struct ifs *fs;
	char *buf;
	size_t size;
	size_t used;
	bool plus;
};

static mode_t ino_type(uint64_t ino)
{
	enum ino_kind k;
	int64_t n;

	if (incoming_owns(ino))
		return S_IFREG;
	if (!ino_split(ino, &n, &k))
		return S_IFDIR;
	if (k == IK_ITER_DIR || k == IK_HASH_DIR)
		return S_IFDIR;
	if (k == IK_HASH_LINK || k == IK_LATEST)
		return S_IFLNK;
	return S_IFREG;
}

/* Add one entry; `next` is the offset of the entry after it.  `known` (may
 * be NULL) carries attributes the caller already has.  Returns 0, 1 when
 * the buffer is full, or -errno.  An entry that vanished since it was
 * listed is left out. */
static int dfill_add(struct dfill *f, const char *name, uint64_t ino,
		     const struct fuse_entry_param *known, off_t next)
{
	struct fuse_entry_param e;
	size_t room = f->size - f->used, n;
	int r;

	if (f->plus) {
		if (known) {
			e = *known;
		} else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
			/* No attributes: the kernel takes no reference. */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = ino;
			e.attr.st_mode = S_IFDIR;
		} else {
			r = node_get(f->fs, ino, &e);
			if (r == -ENOENT)
				return 0;
			if (r < 0)
				return r;
		}
		n = fuse_add_direntry_plus(f->req, f->buf + f->used, room, name,
					   &e, next);
	} else {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = ino;
		e.attr.st_mode = known ? known->attr.st_mode : ino_type(ino);
		n = fuse_add_direntry(f->req, f->buf + f->used, room, name,
				      &e.attr, next);
	}
	if (n > room)
		return 1;
	f->used += n;
	return 0;
}

static int fill_dots(struct dfill *f, uint64_t self, uint64_t parent,
		     off_t *off)
{
	int r = 0;

	if (*off == 0) {
		r = dfill_add(f, ".", self, NULL, 1);
		if (r)
			return r;
		*off = 1;
	}
	if (*off == 1) {
		r = dfill_add(f, "..", parent, NULL, 2);
		if (r)
			return r;
		*off = 2;
	}
	return 0;
}

static int fill_root(struct dfill *f, off_t off)
{
	static const char *const names[] = { "iterations", "latest",
					      "by-hash", "incoming" };
	uint64_t ino;
	off_t i;
	int r;

	r = fill_dots(f, INO_ROOT, INO_ROOT, &off);
	if (r)
		return r < 0 ? r : 0;
	for (i = off; i < 2 + 4; i++) {
		r = lookup_root(f->fs, names[i - 2], &ino);
		if (r == -ENOENT)
			continue;
		if (r == 0)
			r = dfill_add(f, names[i - 2], ino, NULL, i + 1);
		if (r)
			return r < 0 ? r : 0;
	}
	return 0;
}

static int fill_iterations(struct dfill *f, off_t off)
{
	int64_t iters[256];
	char name[32];
	size_t n, i, rank;
	int r;

	r = fill_dots(f, INO_ITERATIONS, INO_ROOT, &off);
	if (r)
		return r < 0 ? r : 0;
	rank = (size_t)off - 2;
	for (;;) {
		r = store_list(f->fs->store, rank, iters, 256, &n);
		if (r < 0 || n == 0)
			return r;
		for (i = 0; i < n; i++, rank++) {
			if (!ino_iter_ok(iters[i]))
				continue;
			snprintf(name, sizeof(name), "%" PRId64, iters[i]);
			r = dfill_add(f, name, ino_make(iters[i], IK_ITER_DIR),
				      NULL, (off_t)rank + 3);
			if (r)
				return r < 0 ? r : 0;
		}
	}
}

static int fill_byhash(struct dfill *f, off_t off)
{
	struct store_code codes[64];
	char name[HASH_HEX_LEN + 1];
	size_t n, i, rank;
	int r;

	r = fill_dots(f, INO_BYHASH, INO_ROOT, &off);
	if (r)
		return r < 0 ? r : 0;
	rank = (size_t)off - 2;
	for (;;) {
		r = store_codes(f->fs->store, rank, codes, 64, &n);
		if (r < 0 || n == 0)
			return r;
		for (i = 0; i < n; i++, rank++) {
			if (!ino_iter_ok(codes[i].first_iter))
				continue;
			hash_to_hex(codes[i].digest, name);
			r = dfill_add(f, name,
				      ino_make(codes[i].first_iter,
					       IK_HASH_DIR),
				      NULL, (off_t)rank + 3);
			if (r)
				return r < 0 ? r : 0;
		}
	}
}

static int fill_hash_dir(struct dfill *f, int64_t first, off_t off)
{
	unsigned char d[HASH_LEN];
	struct store_code code;
	int64_t *iters;
	char name[32];
	size_t i, count;
	int r;

	r = hash_dir_code(f->fs, first, d, &code);
	if (r < 0)
		return r;
	r = fill_dots(f, ino_make(first, IK_HASH_DIR), INO_BYHASH, &off);
	if (r)
		return r < 0 ? r : 0;
	if (off == 2) {
		r = dfill_add(f, "code.py", ino_make(first, IK_HASH_CODE),
			      NULL, 3);
		if (r)
			return r < 0 ? r : 0;
		off = 3;
	}
	r = hash_iters(f->fs, d, &iters, &count);
	if (r < 0)
		return r;
	for (i = (size_t)off - 3; i < count; i++) {
		if (!ino_iter_ok(iters[i]))
			continue;
		snprintf(name, sizeof(name), "%" PRId64, iters[i]);
		r = dfill_add(f, name, ino_make(iters[i], IK_HASH_LINK), NULL,
			      (off_t)i + 4);
		if (r)
			break;
	}
	free(iters);
	return r < 0 ? r : 0;
}

static int fill_iter_dir(struct dfill *f, int64_t n, off_t off)
{
	struct buf line = BUF_INIT;
	unsigned mask;
	int k, r;

	r = store_read(f->fs->store, n, &line);
	if (r < 0)
		goto out;
	r = view_mask(line.data, line.len, &mask);
	if (r == -EINVAL) {
		log_err("%s: iteration %" PRId64 ": not a JSON object",
			store_path(f->fs->store), n);
		r = -EIO;
	}
	if (r < 0)
		goto out;
	r = fill_dots(f, ino_make(n, IK_ITER_DIR), INO_ITERATIONS, &off);
	if (r)
		goto out;
	for (k = (int)off - 2; k < VIEW_COUNT; k++) {
		if (!(mask & (1u << k)))
			continue;
		r = dfill_add(f, view_name((enum view_kind)k),
			      ino_make(n, (enum ino_kind)(IK_VIEW + k)), NULL,
			      k + 3);
		if (r)
			goto out;
	}
out:
	buf_free(&line);
	return r < 0 ? r : 0;
}

static int fill_incoming(struct dfill *f, off_t off)
{
	struct incoming_dirent ents[32];
	struct fuse_entry_param e;
	size_t n, i, rank;
	int r;

	if (!f->fs->in)
		return -ENOENT;
	r = fill_dots(f, INO_INCOMING, INO_ROOT, &off);
	if (r)
		return r < 0 ? r : 0;
	rank = (size_t)off - 2;
	for (;;) {
		r = incoming_list(f->fs->in, rank, ents, 32, &n);
		if (r < 0 || n == 0)
			return r;
		for (i = 0; i < n; i++, rank++) {
			incoming_to_entry(f->fs, &ents[i].attr, &e);
			r = dfill_add(f, ents[i].name, e.ino, &e,
				      (off_t)rank + 3);
			if (r)
				return r < 0 ? r : 0;
		}
	}
}

static int do_readdir(struct dfill *f, uint64_t ino, off_t off)
{
	enum ino_kind k;
	int64_t n;

	switch (ino) {
	case INO_ROOT:
		return fill_root(f, off);
	case INO_ITERATIONS:
		return fill_iterations(f, off);
	case INO_BYHASH:
		return fill_byhash(f, off);
	case INO_INCOMING:
		return fill_incoming(f, off);
	}
	if (!ino_split(ino, &n, &k))
		return incoming_owns(ino) ? -ENOTDIR : -ENOENT;
	if (k == IK_ITER_DIR)
		return fill_iter_dir(f, n, off);
	if (k == IK_HASH_DIR)
		return fill_hash_dir(f, n, off);
	return -ENOTDIR;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, bool plus)
{
	struct dfill f = { .req = req, .fs = fs_of(req), .size = size,
			   .plus = plus };
	int r;

	f.buf = malloc(size ? size : 1);
	if (!f.buf) {
		reply_err(req, "readdir", ino, -ENOMEM);
		return;
	}
	r = do_readdir(&f, ino, off);
	/* Entries already added are sent: the next call resumes after them. */
	if (r < 0 && f.used == 0)
		reply_err(req, plus ? "readdirplus" : "readdir", ino, r);
	else
		fuse_reply_buf(req, f.buf, f.used);
	free(f.buf);
}

static void ifs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, false);
}

static void ifs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, true);
}

static int do_opendir(struct ifs *fs, uint64_t ino, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	enum ino_kind k;
	int64_t n;
	int r;

	r = node_get(fs, ino, &e);
	if (r < 0)
		return r;
	if (!S_ISDIR(e.attr.st_mode))
		return -ENOTDIR;
	/* Only iterations/<n>/ is as immutable as its record. */
	if (ino_split(ino, &n, &k) && k == IK_ITER_DIR) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	return 0;
}

static void ifs_opendir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	int r = do_opendir(fs_of(req), ino, fi);

	if (r < 0)
		reply_err(req, "opendir", ino, r);
	else
		fuse_reply_open(req, fi);
}

static void ifs_releasedir(fuse_req_t req, fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* --- files ---------------------------------------------------------------- */

/* --- answers from the drop box -------------------------------------------
 * incoming_flush, _fsync, _rename and _release answer through these, from
 * the calling thread or later from the committer thread; a killed or
 * interrupted writer's request is taken back while its commit has not
 * started (incoming_interrupt).  Registering the interrupt callback first
 * means a request interrupted before it was queued is simply committed. */

static void reply_drop(void *arg, int r)
{
	fuse_req_t req = arg;

	if (r < 0 && !err_is_quiet(-r) && r != -ETIMEDOUT)
		log_err("incoming: answering a commit: %s", strerror(-r));
	fuse_reply_err(req, -r);
}

/* Release answers are sent by the caller (nobody waits for them). */
static void answered_elsewhere(void *arg, int r)
{
	(void)arg;
	(void)r;
}

static void ifs_interrupt(fuse_req_t req, void *data)
{
	struct ifs *fs = data;

	incoming_interrupt(fs->in, req);
}

/* A reader's close must not commit a drop that a writer is still
 * writing: read-only handles of incoming/ entries are never flushed (the
 * access mode is kept in fh, for kernels that ignore noflush). */
static void incoming_handle(struct fuse_file_info *fi)
{
	fi->fh = (uint64_t)(fi->flags & O_ACCMODE);
	if ((fi->flags & O_ACCMODE) == O_RDONLY)
		fi->noflush = 1;
}

static bool handle_writes(const struct fuse_file_info *fi)
{
	return fi && fi->fh != (uint64_t)O_RDONLY;
}

static int do_open(struct ifs *fs, uint64_t ino, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int r;

	if (incoming_owns(ino)) {
		if (!fs->in)
			return -ENOENT;
		r = incoming_open(fs->in, ino, fi->flags);
		if (r < 0)
			return r;
		/* Drops change under the reader; never serve stale pages. */
		fi->direct_io = 1;
		incoming_handle(fi);
		return 0;
	}
	if (is_dir_ino(ino))
		return -EISDIR;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	r = node_get(fs, ino, &e);
	if (r < 0)
		return r;
	if (!S_ISREG(e.attr.st_mode))
		return -EINVAL;
	fi->keep_cache = 1;
	fi->noflush = 1;
	return 0;
}

static void ifs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);
	int r = do_open(fs, ino, fi);

	if (r < 0) {
		reply_err(req, "open", ino, r);
		return;
	}
	/* Zero-message opens: from now on the kernel opens (keeping the
	 * cache) and closes files without a request, which is most of the
	 * cost of reading many small files. */
	if (fs->no_open && !incoming_owns(ino)) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* An interrupted open is never released by the kernel. */
	if (fuse_reply_open(req, fi) != 0 && incoming_owns(ino))
		incoming_release(fs->in, ino, answered_elsewhere, NULL);
}

static int do_read(struct ifs *fs, uint64_t ino, size_t size, off_t off,
		   struct buf *out)
{
	struct store_rec rec;
	enum view_kind v;
	enum ino_kind k;
	uint64_t total;
	bool present;
	int64_t n;
	int r;

	if (off < 0)
		return -EINVAL;
	if (incoming_owns(ino)) {
		if (!fs->in)
			return -ENOENT;
		return incoming_read(fs->in, ino, (uint64_t)off, size, out);
	}
	if (!ino_split(ino, &n, &k))
		return -EISDIR;
	if (k == IK_HASH_CODE)
		v = VIEW_CODE;
	else if (k >= IK_VIEW && k < IK_VIEW + VIEW_COUNT)
		v = (enum view_kind)(k - IK_VIEW);
	else
		return -EINVAL;
	r = store_lookup(fs->store, n, &rec);
	if (r < 0)
		return r;
	r = vcache_get(fs->vc, fs->store, &rec, v, &present, &total,
		       (uint64_t)off, size, out);
	if (r < 0)
		return r;
	return present ? 0 : -ENOENT;
}

static void ifs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct buf b = BUF_INIT;
	int r = do_read(fs_of(req), ino, size, off, &b);

	(void)fi;
	if (r < 0)
		reply_err(req, "read", ino, r);
	else
		fuse_reply_buf(req, b.data, b.len);
	buf_free(&b);
}

static int do_write(struct ifs *fs, uint64_t ino, const char *data,
		    size_t size, off_t off)
{
	if (!incoming_owns(ino) || !fs->in)
		return -EROFS;
	if (off < 0)
		return -EINVAL;
	return incoming_write(fs->in, ino, data, size, (uint64_t)off);
}

static void ifs_write(fuse_req_t req, fuse_ino_t ino, const char *data,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	int r = do_write(fs_of(req), ino, data, size, off);

	(void)fi;
	if (r < 0)
		reply_err(req, "write", ino, r);
	else
		fuse_reply_write(req, size);
}

static void ifs_flush(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);

	/* Without incoming/ nothing needs a flush: tell the kernel once. */
	if (fs->ro) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (!incoming_owns(ino) || !fs->in || !handle_writes(fi)) {
		fuse_reply_err(req, 0);
		return;
	}
	fuse_req_interrupt_func(req, ifs_interrupt, fs);
	incoming_flush(fs->in, ino, reply_drop, req);
}

/* A read-only descriptor never commits: another process's fsync must not
 * split a drop that its writer is still writing. */
static void ifs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);

	(void)datasync;
	if (!incoming_owns(ino) || !fs->in || !handle_writes(fi)) {
		fuse_reply_err(req, 0);
		return;
	}
	fuse_req_interrupt_func(req, ifs_interrupt, fs);
	incoming_fsync(fs->in, ino, reply_drop, req);
}

static void ifs_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);

	(void)fi;
	if (incoming_owns(ino) && fs->in)
		incoming_release(fs->in, ino, answered_elsewhere, NULL);
	fuse_reply_err(req, 0);
}

static int do_create(fuse_req_t req, struct ifs *fs, uint64_t parent,
		     const char *name, mode_t mode, struct fuse_entry_param *e)
{
	struct incoming_attr ia;
	int r;

	if (parent != INO_INCOMING || !fs->in)
		return is_dir_ino(parent) ? -EROFS : -ENOTDIR;
	if (!S_ISREG(mode))
		return -EPERM;
	r = incoming_create(fs->in, name, mode & ~fuse_req_ctx(req)->umask,
			    &ia);
	if (r < 0)
		return r;
	incoming_to_entry(fs, &ia, e);
	return 0;
}

static void ifs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);
	struct fuse_entry_param e;
	int r = do_create(req, fs, parent, name, mode, &e);

	if (r < 0) {
		reply_err(req, "create", parent, r);
		return;
	}
	fi->direct_io = 1;
	incoming_handle(fi);
	if (fuse_reply_create(req, &e, fi) != 0)
		incoming_release(fs->in, e.ino, answered_elsewhere, NULL);
}

/* Drops are made with open(O_CREAT); mknod makes nothing anywhere. */
static void ifs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	(void)name;
	(void)mode;
	(void)rdev;
	reply_err(req, "mknod", parent,
		  parent == INO_INCOMING && fs_of(req)->in ? -EPERM : -EROFS);
}

static void ifs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ifs *fs = fs_of(req);
	int r = -EROFS;

	if (parent == INO_INCOMING && fs->in)
		r = incoming_unlink(fs->in, name);
	if (r < 0)
		reply_err(req, "unlink", parent, r);
	else
		fuse_reply_err(req, 0);
}

static void ifs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	(void)name;
	(void)mode;
	reply_err(req, "mkdir", parent, -EROFS);
}

static void ifs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)name;
	reply_err(req, "rmdir", parent, -EROFS);
}

static void ifs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	(void)link;
	(void)name;
	reply_err(req, "symlink", parent, -EROFS);
}

/* Within incoming/ a rename may commit (incoming.h), so it is answered
 * like a flush.  Out of or into incoming/ it is -EXDEV, which makes mv
 * copy (and so commit) instead. */
static void ifs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags)
{
	struct ifs *fs = fs_of(req);
	bool from = parent == INO_INCOMING && fs->in;
	bool to = newparent == INO_INCOMING && fs->in;

	if (from && to) {
		fuse_req_interrupt_func(req, ifs_interrupt, fs);
		incoming_rename(fs->in, name, newname, flags, reply_drop, req);
		return;
	}
	reply_err(req, "rename", parent, from || to ? -EXDEV : -EROFS);
}

static void ifs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		     const char *newname)
{
	(void)newparent;
	(void)newname;
	reply_err(req, "link", ino, -EROFS);
}

static int do_access(struct ifs *fs, uint64_t ino, int mask)
{
	struct fuse_entry_param e;
	int r;

	r = node_get(fs, ino, &e);
	if (r < 0)
		return r;
	if (!(mask & W_OK))
		return 0;
	if (ino == INO_INCOMING || incoming_owns(ino))
		return (e.attr.st_mode & 0200) ? 0 : -EACCES;
	return -EROFS;
}

static void ifs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	int r = do_access(fs_of(req), ino, mask);

	if (r < 0)
		reply_err(req, "access", ino, r);
	else
		fuse_reply_err(req, 0);
}

static int do_statfs(struct ifs *fs, struct statvfs *sv)
{
	/* Space and inodes are those commits will use: the store's. */
	if (statvfs(fs->dir, sv) < 0)
		return -errno;
	sv->f_namemax = 255;
	return 0;
}

static void ifs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int r = do_statfs(fs_of(req), &sv);

	if (r < 0)
		reply_err(req, "statfs", ino, r);
	else
		fuse_reply_statfs(req, &sv);
}

static void ifs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct ifs *fs = userdata;

	/* Only a mount without incoming/ can do without open and release:
	 * the drop box counts its writers through them. */
	fs->no_open = fs->ro && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Inodes are not exportable over NFS: no generation numbers. */
	conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
	/* A drop is written in few large requests. */
	conn->max_write = 1u << 20;
	log_debug("kernel protocol %u.%u, capable 0x%x, want 0x%x",
		  conn->proto_major, conn->proto_minor, conn->capable,
		  conn->want);
}

static void ifs_destroy(void *userdata)
{
	(void)userdata;
	log_debug("session destroyed");
}

const struct fuse_lowlevel_ops ifs_ops = {
	.init = ifs_init,
	.destroy = ifs_destroy,
	.lookup = ifs_lookup,
	.forget = ifs_forget,
	.forget_multi = ifs_forget_multi,
	.getattr = ifs_getattr,
	.setattr = ifs_setattr,
	.readlink = ifs_readlink,
	.mknod = ifs_mknod,
	.mkdir = ifs_mkdir,
	.unlink = ifs_unlink,
	.rmdir = ifs_rmdir,
	.symlink = ifs_symlink,
	.rename = ifs_rename,
	.link = ifs_link,
	.open = ifs_open,
	.read = ifs_read,
	.write = ifs_write,
	.flush = ifs_flush,
	.release = ifs_release,
	.fsync = ifs_fsync,
	.opendir = ifs_opendir,
	.readdir = ifs_readdir,
	.readdirplus = ifs_readdirplus,
	.releasedir = ifs_releasedir,
	.statfs = ifs_statfs,
	.access = ifs_access,
	.create = ifs_create,
};
