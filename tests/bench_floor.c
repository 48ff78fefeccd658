/* bench_floor - the least a FUSE daemon can do for iterfs' first read pass
 * (run by contrib/bench-million.sh's "floor" section, not a test).
 *
 *   bench_floor [--open] N SIZE MOUNTPOINT
 *
 * Mounts, in the foreground until unmounted, the shape the read-pass
 * benchmarks read: iterations/<n>/code.py for n < N, each file SIZE bytes
 * of constant text served from memory.  Nothing is parsed, rendered or
 * looked up: every request is answered from arithmetic on the inode
 * number, with the timeouts, no-open and no-flush that `iterfs -o ro`
 * uses, on libfuse's multithreaded loop with its defaults.  --open answers
 * OPEN (keep_cache, noflush) and RELEASE instead, as a writable iterfs
 * must for its drop box.  What a pass costs through it is what the
 * kernel's round trips cost on this machine, the floor under any daemon
 * with this tree.
 *
 * Inodes: 1 the root, 2 iterations/, 3 + 2n the directory <n>/, 4 + 2n its
 * code.py.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fuse_lowlevel.h>

#define INO_ITERS 2
#define TIMEOUT 86400.0

static bool floor_opens;
static unsigned long floor_n;
static size_t floor_size;
static char *floor_text;

/* The directory <n>/ or its code.py for an inode; false for the others. */
static bool floor_ino_iter(fuse_ino_t ino, unsigned long *n, bool *file)
{
	if (ino < 3 || (ino - 3) / 2 >= floor_n)
		return false;
	*n = (ino - 3) / 2;
	*file = (ino - 3) % 2 == 1;
	return true;
}

static int floor_stat(fuse_ino_t ino, struct stat *st)
{
	unsigned long n;
	bool file;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID || ino == INO_ITERS) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	if (!floor_ino_iter(ino, &n, &file))
		return -ENOENT;
	st->st_mode = file ? S_IFREG | 0444 : S_IFDIR | 0555;
	st->st_nlink = file ? 1 : 2;
	st->st_size = file ? (off_t)floor_size : 0;
	return 0;
}

static int do_lookup(fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *e)
{
	unsigned long n;
	char *end;
	bool file;

	memset(e, 0, sizeof(*e));
	if (parent == FUSE_ROOT_ID && strcmp(name, "iterations") == 0)
		e->ino = INO_ITERS;
	else if (parent == INO_ITERS && name[0] >= '0' && name[0] <= '9') {
		errno = 0;
		n = strtoul(name, &end, 10);
		if (errno || *end || n >= floor_n)
			return -ENOENT;
		e->ino = 3 + 2 * n;
	} else if (floor_ino_iter(parent, &n, &file) && !file &&
		   strcmp(name, "code.py") == 0)
		e->ino = parent + 1;
	else
		return -ENOENT;
	e->attr_timeout = e->entry_timeout = TIMEOUT;
	return floor_stat(e->ino, &e->attr);
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int r = do_lookup(parent, name, &e);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_entry(req, &e);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct stat st;
	int r = floor_stat(ino, &st);

	(void)fi;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

/* Entry `off` of directory ino, its name and type; false past the last. */
static bool floor_dirent(fuse_ino_t ino, off_t off, char *name, size_t len,
			 struct stat *st)
{
	unsigned long n;
	bool file;

	memset(st, 0, sizeof(*st));
	if (ino == FUSE_ROOT_ID) {
		if (off > 0)
			return false;
		snprintf(name, len, "iterations");
		st->st_ino = INO_ITERS;
		st->st_mode = S_IFDIR;
		return true;
	}
	if (ino == INO_ITERS) {
		if ((unsigned long)off >= floor_n)
			return false;
		snprintf(name, len, "%ld", (long)off);
		st->st_ino = 3 + 2 * (fuse_ino_t)off;
		st->st_mode = S_IFDIR;
		return true;
	}
	if (!floor_ino_iter(ino, &n, &file) || file || off > 0)
		return false;
	snprintf(name, len, "code.py");
	st->st_ino = ino + 1;
	st->st_mode = S_IFREG;
	return true;
}

static void floor_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	char *buf = malloc(size), name[32];
	size_t used = 0, need;
	struct stat st;

	(void)fi;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	while (floor_dirent(ino, off, name, sizeof(name), &st)) {
		need = fuse_add_direntry(req, buf + used, size - used, name,
					 &st, off + 1);
		if (need > size - used)
			break;
		used += need;
		off++;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* As `iterfs -o ro`: refusing OPEN and FLUSH once spares every later file
 * open, release and close their round trips.  With --open, as a writable
 * iterfs answers a tree file: cached across opens, no FLUSH at close. */
static void floor_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	if (!floor_opens) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void floor_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void floor_flush(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if ((size_t)off >= floor_size)
		size = 0;
	else if (size > floor_size - (size_t)off)
		size = floor_size - (size_t)off;
	fuse_reply_buf(req, size ? floor_text + off : NULL, size);
}

static const struct fuse_lowlevel_ops floor_ops = {
	.lookup = floor_lookup,
	.getattr = floor_getattr,
	.readdir = floor_readdir,
	.open = floor_open,
	.flush = floor_flush,
	.release = floor_release,
	.read = floor_read,
};

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], "-o", "ro,fsname=bench_floor", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_loop_config *cfg = NULL;
	struct fuse_session *se;
	static const char line[] = "    signal = strategy(data)  # floor\n";
	size_t i;
	int r = 1;

	if (argc == 5 && strcmp(argv[1], "--open") == 0) {
		floor_opens = true;
		argv++;
		argc--;
	}
	if (argc != 4 || (floor_n = strtoul(argv[1], NULL, 10)) == 0 ||
	    (floor_size = strtoul(argv[2], NULL, 10)) == 0) {
		fprintf(stderr,
			"usage: bench_floor [--open] N SIZE MOUNTPOINT\n");
		return 2;
	}
	floor_text = malloc(floor_size);
	if (!floor_text) {
		fprintf(stderr, "bench_floor: %s\n", strerror(ENOMEM));
		return 1;
	}
	for (i = 0; i < floor_size; i++)
		floor_text[i] = line[i % (sizeof(line) - 1)];
	se = fuse_session_new(&args, &floor_ops, sizeof(floor_ops), NULL);
	if (!se)
		goto out_text;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, argv[3]) != 0)
		goto out_signals;
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		goto out_unmount;
	r = fuse_session_loop_mt(se, cfg) ? 1 : 0;
	fuse_loop_cfg_destroy(cfg);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_text:
	free(floor_text);
	fuse_opt_free_args(&args);
	return r;
}
