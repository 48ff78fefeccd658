/* keep.c - kept files beside a store: see keep.h.
 *
 * Contents: names; modes and the lazy directory; put (one file through
 * atomicfile, then its reason); remove; list.
 */
#include "keep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "fault.h"
#include "fileio.h"
#include "log.h"

#define KEEP_TRIES 100000

struct keepdir {
	pthread_mutex_t mu;
	char *store;    /* the real store path */
	char *dir;      /* store + suffix */
	char *parent;   /* the store's directory */
	int dfd;        /* guarded by mu: the directory, -1 until it exists */
};

/* Where the bytes of one put come from. */
struct source {
	const void *data;
	int fd;
	uint64_t len;
};

/* The store's mode and owner, turned into what kept files get. */
struct perms {
	mode_t file;
	mode_t dir;
	struct atomicfile_opts opts;
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Candidate `i` for `base` (see keep.h, Names). */
static void kept_name(const char *base, unsigned i, char out[KEEP_NAME_MAX + 1])
{
	const char *pre = base[0] == '.' || !base[0] ? "_" : "";
	char suf[16] = "";
	size_t room, cut;

	if (i)
		snprintf(suf, sizeof(suf), ".%u", i);
	room = KEEP_NAME_MAX - strlen(pre) - strlen(suf);
	cut = fileio_utf8_cut(base, room);
	snprintf(out, KEEP_NAME_MAX + 1, "%s%.*s%s", pre, (int)cut, base, suf);
	if (ends_with(out, KEEP_REASON_SUFFIX)) {
		cut = fileio_utf8_cut(base, room - 1);
		snprintf(out, KEEP_NAME_MAX + 1, "%s%.*s_", pre, (int)cut,
			 base);
	}
}

static void perms_of(const struct keepdir *kd, struct perms *p)
{
	struct stat st;

	memset(p, 0, sizeof(*p));
	p->opts.log_tag = "keep";
	p->opts.fault_scope = "keep";
	if (stat(kd->store, &st) < 0) {
		p->file = 0600;
		p->dir = 0700;
		return;
	}
	p->file = st.st_mode & 0666;
	p->dir = p->file | ((p->file & 0444) >> 2);
	if (geteuid() == 0) {
		p->opts.chown = true;
		p->opts.uid = st.st_uid;
		p->opts.gid = st.st_gid;
	}
}

/* Open the directory, creating it first if needed.  Under kd->mu. */
static int ensure_dir(struct keepdir *kd, const struct perms *p)
{
	struct fault f;
	bool created = false;
	struct stat st;
	int r;

	/* The user may have removed the whole directory meanwhile. */
	if (kd->dfd >= 0 && fstat(kd->dfd, &st) == 0 && st.st_nlink > 0)
		return 0;
	if (kd->dfd >= 0)
		close(kd->dfd);
	kd->dfd = -1;
	fault_read(&f);
	r = fault_at(&f, "keep", "mkdir");
	if (!r && mkdir(kd->dir, p->dir) == 0)
		created = true;
	else if (!r && errno != EEXIST)
		r = -errno;
	if (r < 0)
		goto out_fail;
	kd->dfd = open(kd->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (kd->dfd < 0) {
		r = -errno;
		goto out_fail;
	}
	if (!created)
		return 0;
	/* mkdir applied the umask. */
	if (fchmod(kd->dfd, p->dir) < 0 ||
	    (p->opts.chown &&
	     fchown(kd->dfd, p->opts.uid, p->opts.gid) < 0)) {
		r = -errno;
		goto out_fail;
	}
	r = fileio_fsync_dir(kd->parent);
	if (r < 0) {
		log_err("keep: fsync_dir %s: %s", kd->parent, strerror(-r));
		return r;
	}
	return 0;
out_fail:
	log_err("keep: mkdir %s: %s", kd->dir, strerror(-r));
	return r;
}

int keepdir_open(const char *store_path, const char *suffix,
		 struct keepdir **out)
{
	struct keepdir *kd;
	char *base;
	int r;

	*out = NULL;
	if (!suffix[0] || strchr(suffix, '/'))
		return -EINVAL;
	kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	kd->dfd = -1;
	r = fileio_resolve(store_path, &kd->store);
	if (r < 0)
		goto out_free;
	r = fileio_split(kd->store, &kd->parent, &base);
	free(base);
	if (r < 0)
		goto out_free;
	if (asprintf(&kd->dir, "%s%s", kd->store, suffix) < 0) {
		kd->dir = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	if (pthread_mutex_init(&kd->mu, NULL) != 0) {
		r = -ENOMEM;
		goto out_free;
	}
	r = atomicfile_remove_stale(kd->dir, NULL, 0);
	if (r < 0 && r != -ENOENT)
		log_warn("keep: stale-temp scan %s: %s", kd->dir,
			 strerror(-r));
	*out = kd;
	return 0;
out_free:
	free(kd->store);
	free(kd->parent);
	free(kd->dir);
	free(kd);
	return r;
}

void keepdir_close(struct keepdir *kd)
{
	if (!kd)
		return;
	if (kd->dfd >= 0)
		close(kd->dfd);
	pthread_mutex_destroy(&kd->mu);
	free(kd->store);
	free(kd->parent);
	free(kd->dir);
	free(kd);
}

const char *keepdir_path(const struct keepdir *kd)
{
	return kd->dir;
}

/* The inode generation where the filesystem tells it (ext4, btrfs, xfs),
 * else 0. */
static uint32_t generation_of(int fd)
{
	unsigned int v = 0;

	if (ioctl(fd, FS_IOC_GETVERSION, &v) < 0)
		return 0;
	return v;
}

static bool same_file(int dfd, const struct keep_id *id)
{
	struct stat st;
	bool same;
	int fd;

	fd = openat(dfd, id->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
		    O_NONBLOCK);
	if (fd < 0)
		return false;
	same = fstat(fd, &st) == 0 && st.st_dev == id->dev &&
	       st.st_ino == id->ino && (uint64_t)st.st_size == id->size &&
	       st.st_mtim.tv_sec == id->mtime.tv_sec &&
	       st.st_mtim.tv_nsec == id->mtime.tv_nsec &&
	       generation_of(fd) == id->generation;
	close(fd);
	return same;
}

/* "<name>.reason"; name is at most KEEP_NAME_MAX bytes. */
static void reason_name(const char *name, char out[NAME_MAX + 1])
{
	size_t n = strnlen(name, KEEP_NAME_MAX);

	memcpy(out, name, n);
	memcpy(out + n, KEEP_REASON_SUFFIX, sizeof(KEEP_REASON_SUFFIX));
}

static bool exists_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	       errno != ENOENT;
}

/* Unlink name in the keepdir; ENOENT is fine.  Logged. */
static int unlink_quiet(struct keepdir *kd, const char *name)
{
	if (unlinkat(kd->dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	log_err("keep: unlink %s/%s: %s", kd->dir, name, strerror(errno));
	return -errno;
}

static int fsync_keepdir(struct keepdir *kd)
{
	if (fsync(kd->dfd) == 0)
		return 0;
	log_err("keep: fsync_dir %s: %s", kd->dir, strerror(errno));
	return -errno;
}

/* Write the reason file of `name`.  Under kd->mu. */
static int put_reason(struct keepdir *kd, const struct perms *p,
		      const char *name, const char *reason)
{
	struct atomicfile_opts o = p->opts;
	char rname[NAME_MAX + 1];
	struct atomicfile *af;
	int r;

	reason_name(name, rname);
	o.fault_scope = "keep_reason";
	r = atomicfile_begin(kd->dir, rname, p->file, &o, &af);
	if (r < 0)
		return r;
	r = atomicfile_write(af, reason, strlen(reason));
	if (!r)
		r = atomicfile_write(af, "\n", 1);
	if (r < 0) {
		atomicfile_abort(af);
		return r;
	}
	return atomicfile_commit(af, NULL, 0, NULL);
}

/* Rename af to the earlier copy's name if that still holds its inode, else
 * to the first free candidate.  Frees af on every return. */
static int place(struct keepdir *kd, struct atomicfile *af, const char *base,
		 const struct keep_id *old, char name[KEEP_NAME_MAX + 1],
		 bool *renamed, bool *replaced)
{
	char rname[NAME_MAX + 1];
	unsigned i;
	int r;

	*replaced = false;
	if (old->name[0] && same_file(kd->dfd, old)) {
		snprintf(name, KEEP_NAME_MAX + 1, "%s", old->name);
		*replaced = true;
		return atomicfile_commit(af, name, 0, renamed);
	}
	for (i = 0; i < KEEP_TRIES; i++) {
		kept_name(base, i, name);
		reason_name(name, rname);
		if (exists_at(kd->dfd, rname))
			continue;
		r = atomicfile_commit(af, name, ATOMICFILE_NOREPLACE, renamed);
		if (r != -EEXIST)
			return r;
	}
	log_err("keep: %s: no free name for %s", kd->dir, base);
	atomicfile_abort(af);
	return -EEXIST;
}

static int put(struct keepdir *kd, const char *base, const struct source *src,
	       const char *reason, struct keep_id *id)
{
	char name[KEEP_NAME_MAX + 1], tmpbase[KEEP_NAME_MAX + 1];
	char rname[NAME_MAX + 1];
	struct atomicfile *af;
	bool renamed = false, replaced = false;
	struct perms p;
	uint32_t gen;
	struct stat st;
	int r;

	if (strchr(base, '/'))
		return -EINVAL;
	pthread_mutex_lock(&kd->mu);
	perms_of(kd, &p);
	r = ensure_dir(kd, &p);
	if (r < 0)
		goto out_unlock;
	kept_name(base, 0, tmpbase);
	r = atomicfile_begin(kd->dir, tmpbase, p.file, &p.opts, &af);
	if (r < 0)
		goto out_unlock;
	if (src->data)
		r = atomicfile_write(af, src->data, (size_t)src->len);
	else
		r = atomicfile_copy_from(af, src->fd, src->len,
					 reason ? strlen(reason) + 1 : 0);
	if (!r)
		r = atomicfile_sync(af);
	if (!r && fstat(atomicfile_fd(af), &st) < 0) {
		r = -errno;
		log_err("keep: fstat %s: %s", atomicfile_temp_path(af),
			strerror(-r));
	}
	gen = generation_of(atomicfile_fd(af));
	if (r < 0) {
		atomicfile_abort(af);
		goto out_unlock;
	}
	r = place(kd, af, base, id, name, &renamed, &replaced);
	if (r < 0 && !renamed) {
		if (!replaced)
			id->name[0] = '\0';
		goto out_unlock;
	}
	reason_name(name, rname);
	if (!r && reason)
		r = put_reason(kd, &p, name, reason);
	else if (!r && replaced && exists_at(kd->dfd, rname)) {
		/* The earlier copy's reason does not describe these bytes. */
		r = unlink_quiet(kd, rname);
		if (!r)
			r = fsync_keepdir(kd);
	}
	if (r < 0) {
		/* All or nothing: take back what this put renamed. */
		unlink_quiet(kd, rname);
		unlink_quiet(kd, name);
		fsync_keepdir(kd);
		id->name[0] = '\0';
		goto out_unlock;
	}
	snprintf(id->name, sizeof(id->name), "%s", name);
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = (uint64_t)st.st_size;
	id->mtime = st.st_mtim;
	id->generation = gen;
	if (replaced)
		log_info("keep: replaced %s/%s", kd->dir, name);
out_unlock:
	pthread_mutex_unlock(&kd->mu);
	return r;
}

int keepdir_put(struct keepdir *kd, const char *base, const void *data,
		size_t len, const char *reason, struct keep_id *id)
{
	struct source src = { .data = data ? data : "", .fd = -1, .len = len };

	return put(kd, base, &src, reason, id);
}

int keepdir_put_fd(struct keepdir *kd, const char *base, int fd,
		   uint64_t len, const char *reason, struct keep_id *id)
{
	struct source src = { .data = NULL, .fd = fd, .len = len };

	return put(kd, base, &src, reason, id);
}

int keepdir_remove(struct keepdir *kd, const struct keep_id *id)
{
	char rname[NAME_MAX + 1];
	int r = -ENOENT;

	pthread_mutex_lock(&kd->mu);
	if (kd->dfd < 0 || !id->name[0] ||
	    !same_file(kd->dfd, id))
		goto out_unlock;
	reason_name(id->name, rname);
	/* The reason first: a crash between leaves a kept file without a
	 * reason, never a reason without its file. */
	r = unlink_quiet(kd, rname);
	if (!r)
		r = unlink_quiet(kd, id->name);
	if (!r)
		r = fsync_keepdir(kd);
out_unlock:
	pthread_mutex_unlock(&kd->mu);
	return r;
}

static bool is_kept_name(const char *name)
{
	return name[0] && name[0] != '.' && !strchr(name, '/') &&
	       !ends_with(name, KEEP_REASON_SUFFIX) &&
	       strlen(name) <= KEEP_NAME_MAX;
}

/* Open the directory if it exists; -ENOENT if not.  Under kd->mu. */
static int open_existing(struct keepdir *kd)
{
	if (kd->dfd >= 0)
		return 0;
	kd->dfd = open(kd->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return kd->dfd < 0 ? -errno : 0;
}

/* Remove the reason of kept file `name` and, with `bytes`, the file itself:
 * the user's rm of either.  -ENOENT when what is named is not there. */
static int unlink_kept(struct keepdir *kd, const char *name, bool bytes)
{
	char rname[NAME_MAX + 1];
	int r;

	if (!is_kept_name(name))
		return -EINVAL;
	reason_name(name, rname);
	pthread_mutex_lock(&kd->mu);
	r = open_existing(kd);
	if (r < 0)
		goto out_unlock;
	if (!exists_at(kd->dfd, bytes ? name : rname)) {
		r = -ENOENT;
		goto out_unlock;
	}
	r = unlink_quiet(kd, rname);
	if (!r && bytes && unlinkat(kd->dfd, name, 0) < 0) {
		r = -errno;
		log_err("keep: unlink %s/%s: %s", kd->dir, name, strerror(-r));
	}
	if (!r)
		r = fsync_keepdir(kd);
out_unlock:
	pthread_mutex_unlock(&kd->mu);
	return r;
}

int keepdir_unlink_name(struct keepdir *kd, const char *name)
{
	return unlink_kept(kd, name, true);
}

int keepdir_unlink_reason(struct keepdir *kd, const char *name)
{
	return unlink_kept(kd, name, false);
}

int keepdir_open_entry(struct keepdir *kd, const char *name, bool reason,
		       int *fd)
{
	char rname[NAME_MAX + 1];
	int r;

	*fd = -1;
	if (!is_kept_name(name))
		return -EINVAL;
	if (reason)
		reason_name(name, rname);
	pthread_mutex_lock(&kd->mu);
	r = open_existing(kd);
	if (!r) {
		*fd = openat(kd->dfd, reason ? rname : name,
			     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (*fd < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&kd->mu);
	return r;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct keep_entry *)a)->name,
		      ((const struct keep_entry *)b)->name);
}

int keepdir_list(struct keepdir *kd, struct keep_entry **out, size_t *n)
{
	struct keep_entry *v = NULL, *nv;
	char rname[NAME_MAX + 1];
	size_t cap = 0;
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	int r, fd;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&kd->mu);
	r = open_existing(kd);
	if (r == -ENOENT) {
		r = 0;
		goto out_unlock;
	}
	if (r < 0)
		goto out_fail;
	/* fdopendir owns the descriptor it is given. */
	fd = dup(kd->dfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		goto out_fail;
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d))) {
		if (!is_kept_name(de->d_name) ||
		    fstatat(kd->dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				goto out_fail;
			}
			v = nv;
		}
		memcpy(v[*n].name, de->d_name, strlen(de->d_name) + 1);
		reason_name(de->d_name, rname);
		v[*n].has_reason = exists_at(kd->dfd, rname);
		v[*n].dev = st.st_dev;
		v[*n].ino = st.st_ino;
		v[*n].size = (uint64_t)st.st_size;
		v[*n].mtime = st.st_mtim;
		(*n)++;
	}
	if (errno) {
		r = -errno;
		goto out_fail;
	}
	if (*n)
		qsort(v, *n, sizeof(*v), entry_cmp);
	*out = v;
	v = NULL;
	goto out_close;
out_fail:
	log_err("keep: list %s: %s", kd->dir, strerror(-r));
	*n = 0;
out_close:
	free(v);
	if (d)
		closedir(d);
out_unlock:
	pthread_mutex_unlock(&kd->mu);
	return r;
}
