/* atomicfile.c - temp, fill, fsync, rename, fsync directory: see
 * atomicfile.h.
 *
 * Contents: naming and recognising temps; begin; write and copy (FICLONE,
 * copy_file_range, read/write); commit; abort; stale-temp removal.
 */
#include "atomicfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "fileio.h"
#include "log.h"

#define COPY_CHUNK ((size_t)1 << 20)
/* "." + name + TAG + pid (at most 10 digits) + "." + 16 hex digits. */
#define TEMP_EXTRA (1 + (sizeof(ATOMICFILE_TAG) - 1) + 10 + 1 + 16)
#define TEMP_NAME_MAX (NAME_MAX - TEMP_EXTRA)

struct atomicfile {
	int dfd;
	int fd;
	char *dir;
	char *name;       /* the target given to begin */
	char *tmp;        /* temp name in dir */
	char *tmp_path;   /* dir/tmp, for logs */
	uint64_t size;
	bool synced;
	uint64_t need;    /* the last free-space check that failed */
	uint64_t avail;
	const char *tag;
	const char *scope;
	struct fault fault;
};

/* Log a failed step; returns r for `return fail(...)`. */
static int fail(const struct atomicfile *af, const char *step,
		const char *path, int r)
{
	log_err("%s: %s %s: %s", af->tag, step, path, strerror(-r));
	return r;
}

/* Parse ".<name>" TAG "<pid>.<hex>": the name part's length and the pid.
 * The tag is searched from the end, so a name may contain it.  An older
 * drop box's temps, TAG "<pid>.<hex>" with no name, parse with length 0. */
static bool parse_temp(const char *s, size_t *name_len, long *pid)
{
	const char *tag = NULL, *p, *q;
	size_t tl = strlen(ATOMICFILE_TAG);

	if (s[0] != '.')
		return false;
	for (p = strstr(s + 1, ATOMICFILE_TAG); p;
	     p = strstr(p + 1, ATOMICFILE_TAG))
		tag = p;
	if (tag) {
		*name_len = (size_t)(tag - s - 1);
	} else if (strncmp(s, ATOMICFILE_TAG, tl) == 0) {
		tag = s;
		*name_len = 0;
	} else {
		return false;
	}
	p = tag + tl;
	q = p;
	while (*q >= '0' && *q <= '9')
		q++;
	if (q == p || q - p > 10 || *q != '.')
		return false;
	*pid = strtol(p, NULL, 10);
	p = ++q;
	while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))
		q++;
	return q != p && !*q;
}

bool atomicfile_is_temp(const char *name)
{
	size_t n;
	long pid;

	return parse_temp(name, &n, &pid);
}

static char *temp_name(const char *name)
{
	uint64_t rnd;
	struct timespec ts;
	char *out;

	/* Uniqueness comes from O_EXCL; randomness only avoids collisions
	 * with a temp a crashed writer of the same pid left behind. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		rnd = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
	}
	if (asprintf(&out, ".%.*s" ATOMICFILE_TAG "%ld.%016" PRIx64,
		     (int)fileio_utf8_cut(name, TEMP_NAME_MAX), name, (long)getpid(),
		     rnd) < 0)
		return NULL;
	return out;
}

/* Cleanup after a failure: that failure is what gets reported; a temp
 * that cannot be removed is only logged (the next remove_stale gets it). */
static void unlink_temp(const struct atomicfile *af)
{
	if (unlinkat(af->dfd, af->tmp, 0) < 0 && errno != ENOENT)
		log_err("%s: unlink %s: %s", af->tag, af->tmp_path,
			strerror(errno));
}

static void af_free(struct atomicfile *af)
{
	if (af->fd >= 0)
		close(af->fd);
	if (af->dfd >= 0)
		close(af->dfd);
	free(af->dir);
	free(af->name);
	free(af->tmp);
	free(af->tmp_path);
	free(af);
}

int atomicfile_begin(const char *dir, const char *name, mode_t mode,
		     const struct atomicfile_opts *opts,
		     struct atomicfile **out)
{
	struct atomicfile *af;
	int r;

	*out = NULL;
	af = calloc(1, sizeof(*af));
	if (!af)
		return -ENOMEM;
	af->fd = af->dfd = -1;
	af->tag = opts && opts->log_tag ? opts->log_tag : "atomicfile";
	af->scope = opts && opts->fault_scope ? opts->fault_scope : "";
	fault_read(&af->fault);
	af->dir = strdup(dir);
	af->name = strdup(name);
	af->tmp = temp_name(name);
	if (!af->dir || !af->name || !af->tmp ||
	    asprintf(&af->tmp_path, "%s/%s", dir, af->tmp) < 0) {
		af->tmp_path = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	r = fault_at(&af->fault, af->scope, "temp");
	if (r < 0) {
		fail(af, "temp", af->tmp_path, r);
		goto out_free;
	}
	af->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (af->dfd < 0) {
		r = fail(af, "temp", dir, -errno);
		goto out_free;
	}
	af->fd = openat(af->dfd, af->tmp,
			O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			mode & 0777);
	if (af->fd < 0) {
		r = fail(af, "temp", af->tmp_path, -errno);
		goto out_free;
	}
	/* open() applied the umask; the caller's mode is the mode. */
	if (fchmod(af->fd, mode & 07777) < 0 ||
	    (opts && opts->chown && fchown(af->fd, opts->uid, opts->gid) < 0)) {
		r = fail(af, "temp", af->tmp_path, -errno);
		goto out_unlink;
	}
	*out = af;
	return 0;
out_unlink:
	unlink_temp(af);
out_free:
	af_free(af);
	return r;
}

int atomicfile_fd(const struct atomicfile *af)
{
	return af->fd;
}

const char *atomicfile_temp_path(const struct atomicfile *af)
{
	return af->tmp_path;
}

uint64_t atomicfile_size(const struct atomicfile *af)
{
	return af->size;
}

int atomicfile_write(struct atomicfile *af, const void *p, size_t n)
{
	int r = fault_at(&af->fault, af->scope, "append");

	if (!r)
		r = fileio_pwrite_full(af->fd, p, n, af->size);
	if (r < 0)
		return fail(af, "append", af->tmp_path, r);
	af->size += n;
	af->synced = false;
	return 0;
}

/* read/write from `in` [from, size) to the temp at af->size + from. */
static int copy_rw(struct atomicfile *af, int in, uint64_t from,
		   uint64_t size)
{
	char *b = malloc(COPY_CHUNK);
	size_t got;
	int r = 0;

	if (!b)
		return -ENOMEM;
	while (from < size) {
		size_t want = size - from < COPY_CHUNK ? size - from : COPY_CHUNK;

		r = fileio_pread_upto(in, b, want, from, &got);
		if (r < 0)
			break;
		if (got == 0) {
			/* Shrunk under us by a writer that ignores the lock. */
			r = -EIO;
			break;
		}
		r = fileio_pwrite_full(af->fd, b, got, af->size + from);
		if (r < 0)
			break;
		from += got;
	}
	free(b);
	return r;
}

static int check_space(struct atomicfile *af, uint64_t need)
{
	struct statvfs vfs;
	uint64_t avail;

	if (fstatvfs(af->fd, &vfs) < 0)
		return -errno;
	/* root may use the blocks reserved for it. */
	avail = (uint64_t)(geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail) *
		vfs.f_frsize;
	if (avail >= need)
		return 0;
	af->need = need;
	af->avail = avail;
	log_err("%s: copy %s: needs %" PRIu64 " bytes free in %s, %" PRIu64
		" free", af->tag, af->tmp_path, need, af->dir, avail);
	return -ENOSPC;
}

static int copy_range(struct atomicfile *af, int in, uint64_t size,
		      uint64_t extra)
{
	loff_t oi = 0, oo = (loff_t)af->size;
	int r;

	r = check_space(af, size + extra);
	if (r < 0)
		return r;
	while ((uint64_t)oi < size) {
		ssize_t n = copy_file_range(in, &oi, af->fd, &oo,
					    (size_t)(size - (uint64_t)oi), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == ENOSYS || errno == EXDEV ||
			      errno == EINVAL || errno == EOPNOTSUPP))
			return copy_rw(af, in, (uint64_t)oi, size);
		if (n < 0)
			return -errno;
		if (n == 0)
			/* End of the source, or a filesystem that reports 0
			 * instead of failing: read/write tells which. */
			return copy_rw(af, in, (uint64_t)oi, size);
	}
	return 0;
}

int atomicfile_copy_from(struct atomicfile *af, int fd, uint64_t size,
			 uint64_t extra)
{
	struct stat st;
	int r;

	af->need = af->avail = 0;
	r = fault_at(&af->fault, af->scope, "copy");
	if (r < 0)
		return fail(af, "copy", af->tmp_path, r);
	af->synced = false;
	if (size == 0)
		return 0;
	if (af->size == 0 && ioctl(af->fd, FICLONE, fd) == 0) {
		/* The clone takes the whole file as it is now. */
		if (fstat(af->fd, &st) < 0)
			return fail(af, "copy", af->tmp_path, -errno);
		if ((uint64_t)st.st_size < size)
			return fail(af, "copy", af->tmp_path, -EIO);
		if ((uint64_t)st.st_size > size &&
		    ftruncate(af->fd, (off_t)size) < 0)
			return fail(af, "copy", af->tmp_path, -errno);
	} else {
		r = copy_range(af, fd, size, extra);
		/* Cut what a partial copy wrote: the temp stays the bytes
		 * appended so far. */
		if (r < 0 && ftruncate(af->fd, (off_t)af->size) < 0)
			log_err("%s: truncate %s: %s", af->tag, af->tmp_path,
				strerror(errno));
		if (r < 0)
			return fail(af, "copy", af->tmp_path, r);
	}
	af->size += size;
	return 0;
}

void atomicfile_space(const struct atomicfile *af, uint64_t *need,
		      uint64_t *avail)
{
	*need = af->need;
	*avail = af->avail;
}

int atomicfile_sync(struct atomicfile *af)
{
	int r;

	if (af->synced)
		return 0;
	r = fault_at(&af->fault, af->scope, "fsync_temp");
	if (!r && fsync(af->fd) < 0)
		r = -errno;
	if (r < 0)
		return fail(af, "fsync_temp", af->tmp_path, r);
	af->synced = true;
	return 0;
}

static int rename_noreplace(struct atomicfile *af, const char *name)
{
	struct stat st;

	if (renameat2(af->dfd, af->tmp, af->dfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* The filesystem cannot do it atomically: the caller's lock is what
	 * keeps the check and the rename together. */
	if (fstatat(af->dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	return renameat(af->dfd, af->tmp, af->dfd, name) == 0 ? 0 : -errno;
}

int atomicfile_commit(struct atomicfile *af, const char *name, unsigned flags,
		      bool *renamed)
{
	int r;

	if (renamed)
		*renamed = false;
	if (!name)
		name = af->name;
	r = atomicfile_sync(af);
	if (r < 0)
		goto out_abort;
	r = fault_at(&af->fault, af->scope, "rename");
	if (!r && (flags & ATOMICFILE_NOREPLACE))
		r = rename_noreplace(af, name);
	else if (!r && renameat(af->dfd, af->tmp, af->dfd, name) < 0)
		r = -errno;
	if (r == -EEXIST && (flags & ATOMICFILE_NOREPLACE))
		return r;
	if (r < 0) {
		fail(af, "rename", af->tmp_path, r);
		goto out_abort;
	}
	if (renamed)
		*renamed = true;
	r = fault_at(&af->fault, af->scope, "fsync_dir");
	if (!r && fsync(af->dfd) < 0)
		r = -errno;
	if (r < 0) {
		log_err("%s: fsync_dir %s: %s (%s/%s was already renamed; it "
			"may not survive a crash)", af->tag, af->dir,
			strerror(-r), af->dir, name);
		goto out_free;
	}
	fault_at(&af->fault, af->scope, "done");
	goto out_free;
out_abort:
	unlink_temp(af);
out_free:
	af_free(af);
	return r;
}

void atomicfile_abort(struct atomicfile *af)
{
	if (!af)
		return;
	unlink_temp(af);
	af_free(af);
}

static bool pid_alive(long pid)
{
	if (pid <= 0 || pid > INT_MAX)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

int atomicfile_remove_stale(const char *dir, const char *name, unsigned flags)
{
	size_t want = name ? fileio_utf8_cut(name, TEMP_NAME_MAX) : 0, n;
	struct dirent *de;
	long pid;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!parse_temp(de->d_name, &n, &pid))
			continue;
		if (name && (n != want || memcmp(de->d_name + 1, name, n) != 0))
			continue;
		if (!(flags & ATOMICFILE_STALE_ALL) && pid_alive(pid))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
			if (errno != ENOENT)
				log_warn("atomicfile: remove stale %s/%s: %s",
					 dir, de->d_name, strerror(errno));
		} else {
			log_info("atomicfile: removed stale temp %s/%s", dir,
				 de->d_name);
		}
	}
	closedir(d);
	return 0;
}
