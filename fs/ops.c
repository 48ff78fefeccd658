/* ops.c - the low-level FUSE operations: glue between the kernel and the
 * tree (tree.h says what is where) and the drop box (incoming.h).
 *
 * Contents:
 *   errors                     err_is_quiet, reply_err
 *   attributes and names       lookup, forget, getattr, setattr, readlink
 *   directories                readdir(plus), opendir, releasedir
 *   files                      open, read, release (tree files own a
 *                              snapshot: tree_open), write, flush, fsync,
 *                              create, and the drop box's answers
 *   the rest                   mknod ... statfs, init, the operation table
 *
 * Every operation is split in two: do_<op>() computes the answer and returns
 * 0 or -errno, <op>() sends exactly one reply, converting the tree's
 * answer (struct tree_node: a stat and its timeouts) in one place
 * (entry_of).  Nothing here may end the daemon: a bad record or a failing
 * read is an errno for that request and a log line.  The caching policy is
 * the tree's (tree.c); a lookup that fails is never cached, so a
 * just-committed iteration is visible at once.
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

#include "log.h"

static struct ifs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Errors that are a normal answer, not worth a log line. */
static bool err_is_quiet(int e)
{
	return e == ENOENT || e == EROFS || e == ENOTDIR || e == EISDIR ||
	       e == EEXIST || e == EPERM || e == EACCES || e == EINTR ||
	       e == ENOTEMPTY || e == EINVAL || e == EFBIG || e == ENAMETOOLONG ||
	       e == ESTALE;
}

/* The drop box of the history `ino` belongs to: true, with *p filled,
 * when that history has one (not -o ro). */
static bool drops_at(struct ifs *fs, uint64_t ino, struct forest_place *p)
{
	return forest_place(fs->forest, ino, p) == 0 && p->in;
}

/* The local part alone says what an inode is: the history is looked up
 * only for drop box inodes, so reads and releases of tree files (the hot
 * path) route nothing here. */
static bool is_drop(struct ifs *fs, uint64_t ino, struct forest_place *p)
{
	return ino_is_incoming(ino_local(ino)) && drops_at(fs, ino, p);
}

static bool is_dropbox(struct ifs *fs, uint64_t ino, struct forest_place *p)
{
	return ino_local(ino) == INO_INCOMING && drops_at(fs, ino, p);
}

static void reply_err(fuse_req_t req, const char *op, uint64_t ino, int r)
{
	if (!err_is_quiet(-r))
		log_err("%s of inode %" PRIu64 ": %s", op, ino, strerror(-r));
	fuse_reply_err(req, -r);
}

/* --- attributes and names ---------------------------------------------- */

static void entry_of(const struct tree_node *nd, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = nd->st.st_ino;
	e->attr = nd->st;
	e->attr_timeout = nd->attr_timeout;
	e->entry_timeout = nd->entry_timeout;
}

static void ifs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct tree_node nd;
	int r = forest_lookup(fs_of(req)->forest, parent, name, &nd);

	if (r < 0) {
		reply_err(req, "lookup", parent, r);
		return;
	}
	entry_of(&nd, &e);
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
	struct tree_node nd;
	int r = forest_getattr(fs_of(req)->forest, ino, &nd);

	(void)fi;
	if (r < 0)
		reply_err(req, "getattr", ino, r);
	else
		fuse_reply_attr(req, &nd.st, nd.attr_timeout);
}

static int do_setattr(struct ifs *fs, uint64_t ino, const struct stat *attr,
		      int to_set, struct tree_node *nd)
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
	struct forest_place p;
	int r;

	if (!is_drop(fs, ino, &p))
		return -EROFS;
	if (sa.set_size && attr->st_size < 0)
		return -EINVAL;
	sa.size = (uint64_t)attr->st_size;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &sa.mtime);
	r = incoming_setattr(p.in, p.local, &sa);
	if (r < 0)
		return r;
	return forest_getattr(fs->forest, ino, nd);
}

static void ifs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct tree_node nd;
	int r = do_setattr(fs_of(req), ino, attr, to_set, &nd);

	(void)fi;
	if (r < 0)
		reply_err(req, "setattr", ino, r);
	else
		fuse_reply_attr(req, &nd.st, nd.attr_timeout);
}

static void ifs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[64];
	int r = forest_readlink(fs_of(req)->forest, ino, target,
				sizeof(target));

	if (r < 0)
		reply_err(req, "readlink", ino, r);
	else
		fuse_reply_readlink(req, target);
}

/* --- directories ---------------------------------------------------------- */

struct dfill {
	fuse_req_t req;
	char *buf;
	size_t size;
	size_t used;
	bool plus;
};

/* tree_fill_fn: one entry into the reply buffer. */
static int dfill_add(void *arg, const char *name, const struct tree_node *nd,
		     bool has_attrs, off_t next)
{
	struct dfill *f = arg;
	struct fuse_entry_param e;
	size_t room = f->size - f->used, n;

	if (f->plus) {
		/* Without attributes ("." and "..") the kernel takes no
		 * reference: a zero entry. */
		memset(&e, 0, sizeof(e));
		if (has_attrs)
			entry_of(nd, &e);
		else
			e.attr = nd->st;
		n = fuse_add_direntry_plus(f->req, f->buf + f->used, room, name,
					   &e, next);
	} else {
		n = fuse_add_direntry(f->req, f->buf + f->used, room, name,
				      &nd->st, next);
	}
	if (n > room)
		return 1;
	f->used += n;
	return 0;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, bool plus)
{
	struct dfill f = { .req = req, .size = size, .plus = plus };
	int r;

	f.buf = malloc(size ? size : 1);
	if (!f.buf) {
		reply_err(req, "readdir", ino, -ENOMEM);
		return;
	}
	r = forest_list(fs_of(req)->forest, ino, off, plus, dfill_add, &f);
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
	struct tree_node nd;
	int r;

	r = forest_getattr(fs->forest, ino, &nd);
	if (r < 0)
		return r;
	if (!S_ISDIR(nd.st.st_mode))
		return -ENOTDIR;
	fi->cache_readdir = nd.cache_dir;
	fi->keep_cache = nd.keep_cache;
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

/* `data` is the drop box the request went to. */
static void ifs_interrupt(fuse_req_t req, void *data)
{
	incoming_interrupt(data, req);
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

/* A tree file's handle owns its snapshot (tree.h): fi->fh points at the
 * tree_file, freed at release.  Opens of drops keep their access mode in
 * fh instead (incoming_handle). */
static int do_open(struct ifs *fs, uint64_t ino, struct fuse_file_info *fi,
		   struct forest_place *p)
{
	const struct tree_node *nd;
	struct tree_file *f;
	int r;

	r = forest_place(fs->forest, ino, p);
	if (r < 0)
		return r;
	if (ino_is_incoming(p->local)) {
		if (!p->in)
			return -ENOENT;
		r = incoming_open(p->in, p->local, fi->flags);
		if (r < 0)
			return r;
		fi->direct_io = 1;
		incoming_handle(fi);
		return 0;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	r = tree_open(p->tree, p->local, &f);
	if (r < 0)
		return r;
	nd = tree_file_node(f);
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->keep_cache = nd->keep_cache;
	fi->direct_io = nd->direct_io;
	fi->noflush = 1;
	return 0;
}

static void ifs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);
	struct forest_place p;
	int r = do_open(fs, ino, fi, &p);

	if (r < 0) {
		reply_err(req, "open", ino, r);
		return;
	}
	/* Zero-message opens: from now on the kernel opens (keeping the
	 * cache) and closes files without a request, which is most of the
	 * cost of reading many small files.  Reads then come without a
	 * handle and are served from the record as it is at each read
	 * (tree_read). */
	if (fs->no_open && !ino_is_incoming(p.local)) {
		tree_file_free((struct tree_file *)(uintptr_t)fi->fh);
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* An interrupted open is never released by the kernel. */
	if (fuse_reply_open(req, fi) != 0) {
		if (ino_is_incoming(p.local))
			incoming_release(p.in, p.local, answered_elsewhere,
					 NULL);
		else
			tree_file_free((struct tree_file *)(uintptr_t)fi->fh);
	}
}

static int do_read(struct ifs *fs, uint64_t ino,
		   const struct fuse_file_info *fi, size_t size, off_t off,
		   struct buf *out)
{
	struct forest_place p;

	if (off < 0)
		return -EINVAL;
	if (is_drop(fs, ino, &p))
		return incoming_read(p.in, p.local, (uint64_t)off, size, out);
	if (fi && fi->fh)
		return tree_file_read((struct tree_file *)(uintptr_t)fi->fh,
				      (uint64_t)off, size, out);
	return forest_read(fs->forest, ino, (uint64_t)off, size, out);
}

static void ifs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct buf b = BUF_INIT;
	int r = do_read(fs_of(req), ino, fi, size, off, &b);

	if (r < 0)
		reply_err(req, "read", ino, r);
	else
		fuse_reply_buf(req, b.data, b.len);
	buf_free(&b);
}

static int do_write(struct ifs *fs, uint64_t ino, const char *data,
		    size_t size, off_t off)
{
	struct forest_place p;

	if (!is_drop(fs, ino, &p))
		return -EROFS;
	if (off < 0)
		return -EINVAL;
	return incoming_write(p.in, p.local, data, size, (uint64_t)off);
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
	struct forest_place p;

	/* Without incoming/ nothing needs a flush: tell the kernel once. */
	if (fs->ro) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (!handle_writes(fi) || !is_drop(fs, ino, &p)) {
		fuse_reply_err(req, 0);
		return;
	}
	fuse_req_interrupt_func(req, ifs_interrupt, p.in);
	incoming_flush(p.in, p.local, reply_drop, req);
}

/* A read-only descriptor never commits: another process's fsync must not
 * split a drop that its writer is still writing. */
static void ifs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);
	struct forest_place p;

	(void)datasync;
	if (!handle_writes(fi) || !is_drop(fs, ino, &p)) {
		fuse_reply_err(req, 0);
		return;
	}
	fuse_req_interrupt_func(req, ifs_interrupt, p.in);
	incoming_fsync(p.in, p.local, reply_drop, req);
}

static void ifs_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);
	struct forest_place p;

	if (is_drop(fs, ino, &p))
		incoming_release(p.in, p.local, answered_elsewhere, NULL);
	else if (!ino_is_incoming(ino_local(ino)))
		tree_file_free((struct tree_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static int do_create(fuse_req_t req, struct ifs *fs, uint64_t parent,
		     const char *name, mode_t mode, struct fuse_entry_param *e,
		     struct forest_place *p)
{
	struct incoming_attr ia;
	struct tree_node nd;
	int r;

	if (!is_dropbox(fs, parent, p)) {
		r = forest_getattr(fs->forest, parent, &nd);
		if (r < 0)
			return r;
		return S_ISDIR(nd.st.st_mode) ? -EROFS : -ENOTDIR;
	}
	if (!S_ISREG(mode))
		return -EPERM;
	r = incoming_create(p->in, name, mode & ~fuse_req_ctx(req)->umask,
			    &ia);
	if (r < 0)
		return r;
	r = forest_getattr(fs->forest, forest_ino(p, ia.ino), &nd);
	if (r < 0)
		return r;
	entry_of(&nd, e);
	return 0;
}

static void ifs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct ifs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct forest_place p;
	int r = do_create(req, fs, parent, name, mode, &e, &p);

	if (r < 0) {
		reply_err(req, "create", parent, r);
		return;
	}
	fi->direct_io = 1;
	incoming_handle(fi);
	if (fuse_reply_create(req, &e, fi) != 0)
		incoming_release(p.in, ino_local(e.ino), answered_elsewhere,
				 NULL);
}

/* Drops are made with open(O_CREAT); mknod makes nothing anywhere. */
static void ifs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	struct forest_place p;

	(void)name;
	(void)mode;
	(void)rdev;
	reply_err(req, "mknod", parent,
		  is_dropbox(fs_of(req), parent, &p) ? -EPERM : -EROFS);
}

static void ifs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct forest_place p;
	int r = -EROFS;

	if (is_dropbox(fs_of(req), parent, &p))
		r = incoming_unlink(p.in, name);
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

/* Within one incoming/ a rename may commit (incoming.h), so it is
 * answered like a flush.  Out of or into an incoming/ it is -EXDEV, which
 * makes mv copy (and so commit) instead. */
static void ifs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags)
{
	struct ifs *fs = fs_of(req);
	struct forest_place p, np;
	bool from = is_dropbox(fs, parent, &p);
	bool to = is_dropbox(fs, newparent, &np);

	if (from && to && p.id == np.id) {
		fuse_req_interrupt_func(req, ifs_interrupt, p.in);
		incoming_rename(p.in, name, newname, flags, reply_drop, req);
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
	struct forest_place p;
	struct tree_node nd;
	int r;

	r = forest_getattr(fs->forest, ino, &nd);
	if (r < 0)
		return r;
	if (!(mask & W_OK))
		return 0;
	if (is_dropbox(fs, ino, &p) || is_drop(fs, ino, &p))
		return (nd.st.st_mode & 0200) ? 0 : -EACCES;
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
