/* dropbuf.c - a drop's bytes, in memory or spilled to an unnamed file.
 *
 * Memory is accounted by capacity, not length: a buffer that grew by
 * doubling holds its capacity whatever its length.  A buffer never moves
 * back from the file to memory (a truncate to 0 included): the file is
 * already paid for and the drop was large once.
 */
#include "dropbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"

struct dropbuf_pool {
	char *dir;
	struct dropbuf_opts o;
	size_t mem;        /* capacity of every in-memory buffer */
};

struct dropbuf {
	struct dropbuf_pool *pool;
	char *mem;         /* NULL once spilled (or while empty) */
	size_t cap;
	uint64_t size;
	int fd;            /* -1 while in memory */
};

int dropbuf_pool_new(const char *dir, const struct dropbuf_opts *o,
		     struct dropbuf_pool **out)
{
	struct dropbuf_pool *pool = calloc(1, sizeof(*pool));

	if (!pool)
		return -ENOMEM;
	pool->dir = strdup(dir);
	if (!pool->dir) {
		free(pool);
		return -ENOMEM;
	}
	pool->o = *o;
	if (!pool->o.spill_at)
		pool->o.spill_at = DROPBUF_SPILL_AT_DEFAULT;
	if (!pool->o.mem_budget)
		pool->o.mem_budget = DROPBUF_MEM_BUDGET_DEFAULT;
	*out = pool;
	return 0;
}

void dropbuf_pool_free(struct dropbuf_pool *pool)
{
	if (!pool)
		return;
	free(pool->dir);
	free(pool);
}

size_t dropbuf_pool_mem(const struct dropbuf_pool *pool)
{
	return pool->mem;
}

int dropbuf_new(struct dropbuf_pool *pool, struct dropbuf **out)
{
	struct dropbuf *db = calloc(1, sizeof(*db));

	if (!db)
		return -ENOMEM;
	db->pool = pool;
	db->fd = -1;
	*out = db;
	return 0;
}

void dropbuf_free(struct dropbuf *db)
{
	if (!db)
		return;
	db->pool->mem -= db->cap;
	free(db->mem);
	if (db->fd >= 0)
		close(db->fd);
	free(db);
}

uint64_t dropbuf_size(const struct dropbuf *db)
{
	return db->size;
}

bool dropbuf_spilled(const struct dropbuf *db)
{
	return db->fd >= 0;
}

/* An unnamed file in the pool's directory that only its owner can read. */
static int spill_file(const struct dropbuf_pool *pool, int *fd)
{
	char path[4096];
	unsigned long long rnd;
	int r;

	*fd = open(pool->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (*fd >= 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		r = -errno;
		log_err("incoming: spill file in %s: %s", pool->dir,
			strerror(-r));
		return r;
	}
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned long long)rand();
	snprintf(path, sizeof(path), "%s/.iterfs-spill.%ld.%016llx",
		 pool->dir, (long)getpid(), rnd);
	*fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (*fd < 0) {
		r = -errno;
		log_err("incoming: spill file %s: %s", path, strerror(-r));
		return r;
	}
	if (unlink(path) < 0)
		log_warn("incoming: unlink spill file %s: %s", path,
			 strerror(errno));
	return 0;
}

/* Move the bytes to a spill file. */
static int spill(struct dropbuf *db)
{
	int fd, r;

	r = spill_file(db->pool, &fd);
	if (r < 0)
		return r;
	if (db->size) {
		r = fileio_pwrite_full(fd, db->mem, (size_t)db->size, 0);
		if (r < 0) {
			log_err("incoming: writing spill file in %s: %s",
				db->pool->dir, strerror(-r));
			close(fd);
			return r;
		}
	}
	db->pool->mem -= db->cap;
	free(db->mem);
	db->mem = NULL;
	db->cap = 0;
	db->fd = fd;
	return 0;
}

/* Make the buffer able to hold `end` bytes: grow the memory, or spill. */
static int make_room(struct dropbuf *db, uint64_t end)
{
	struct dropbuf_pool *pool = db->pool;
	size_t cap;
	char *p;

	if (db->fd >= 0 || end <= db->cap)
		return 0;
	if (end > pool->o.spill_at)
		return spill(db);
	cap = db->cap ? db->cap : 4096;
	while (cap < end)
		cap *= 2;
	if (cap > pool->o.spill_at)
		cap = pool->o.spill_at;
	if (pool->mem - db->cap + cap > pool->o.mem_budget)
		return spill(db);
	p = realloc(db->mem, cap);
	if (!p)
		return -ENOMEM;
	pool->mem += cap - db->cap;
	db->mem = p;
	db->cap = cap;
	return 0;
}

static int file_err(const struct dropbuf *db, const char *what, int r)
{
	log_err("incoming: %s spill file in %s: %s", what, db->pool->dir,
		strerror(-r));
	return r;
}

int dropbuf_write(struct dropbuf *db, const void *p, size_t n, uint64_t off)
{
	uint64_t end = off + n;
	int r;

	if (end < off)
		return -EFBIG;
	r = make_room(db, end);
	if (r < 0)
		return r;
	if (db->fd >= 0) {
		r = fileio_pwrite_full(db->fd, p, n, off);
		if (r < 0)
			return file_err(db, "writing", r);
	} else {
		if (off > db->size)
			memset(db->mem + db->size, 0, (size_t)(off - db->size));
		memcpy(db->mem + off, p, n);
	}
	if (end > db->size)
		db->size = end;
	return 0;
}

int dropbuf_truncate(struct dropbuf *db, uint64_t size)
{
	int r;

	if (size > db->size) {
		r = make_room(db, size);
		if (r < 0)
			return r;
		if (db->fd < 0)
			memset(db->mem + db->size, 0, (size_t)(size - db->size));
	}
	if (db->fd >= 0 && ftruncate(db->fd, (off_t)size) < 0)
		return file_err(db, "truncating", -errno);
	db->size = size;
	return 0;
}

int dropbuf_read(const struct dropbuf *db, uint64_t off, size_t n, void *out,
		 size_t *got)
{
	int r;

	*got = 0;
	if (off >= db->size)
		return 0;
	if (n > db->size - off)
		n = (size_t)(db->size - off);
	if (db->fd < 0) {
		memcpy(out, db->mem + off, n);
		*got = n;
		return 0;
	}
	r = fileio_pread_full(db->fd, out, n, off);
	if (r < 0)
		return file_err(db, "reading", r);
	*got = n;
	return 0;
}

int dropbuf_view(const struct dropbuf *db, uint64_t off, size_t len,
		 struct dropbuf_view *v)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t start;
	char *m;

	memset(v, 0, sizeof(*v));
	v->p = "";
	if (len == 0)
		return 0;
	if (off > db->size || len > db->size - off)
		return -EINVAL;
	if (db->fd < 0) {
		m = malloc(len);
		if (!m)
			return -ENOMEM;
		memcpy(m, db->mem + off, len);
		v->map = m;
		v->p = m;
		v->len = len;
		return 0;
	}
	start = off - off % (uint64_t)page;
	v->map_len = (size_t)(off - start) + len;
	m = mmap(NULL, v->map_len, PROT_READ, MAP_SHARED, db->fd, (off_t)start);
	if (m == MAP_FAILED) {
		v->map_len = 0;
		return file_err(db, "mapping", -errno);
	}
	v->map = m;
	v->p = m + (off - start);
	v->len = len;
	return 0;
}

void dropbuf_view_release(struct dropbuf_view *v)
{
	if (v->map_len)
		munmap(v->map, v->map_len);
	else
		free(v->map);
	memset(v, 0, sizeof(*v));
	v->p = "";
}
