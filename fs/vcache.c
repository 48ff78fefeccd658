/* vcache.c - a small LRU of rendered views (see iterfs.h). */
#include "iterfs.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct vslot {
	bool used;
	bool present;
	int64_t iter;
	uint64_t offset;
	uint32_t len;
	enum view_kind kind;
	uint64_t stamp;     /* last use, for LRU eviction */
	struct buf data;
};

/* Sizes outlive the rendered bytes: the kernel asks for attributes again
 * after every read of a writable mount (the atime it must refresh), long
 * after the bytes left the LRU.  Direct-mapped: a collision overwrites. */
struct vsize {
	bool used;
	bool present;
	enum view_kind kind;
	uint32_t len;
	int64_t iter;
	uint64_t offset;
	uint64_t size;
};

#define VSIZE_SLOTS 65536

struct vcache {
	pthread_mutex_t lock; /* guards everything below */
	struct vslot *slot;
	size_t nslot;
	uint64_t clock;
	struct vsize *sizes;  /* VSIZE_SLOTS of them */
};

int vcache_new(size_t slots, struct vcache **out)
{
	struct vcache *vc = calloc(1, sizeof(*vc));
	int r;

	if (!vc)
		return -ENOMEM;
	vc->slot = calloc(slots, sizeof(*vc->slot));
	if (!vc->slot) {
		r = -ENOMEM;
		goto out_free;
	}
	vc->nslot = slots;
	vc->sizes = calloc(VSIZE_SLOTS, sizeof(*vc->sizes));
	if (!vc->sizes) {
		r = -ENOMEM;
		goto out_slots;
	}
	r = -pthread_mutex_init(&vc->lock, NULL);
	if (r < 0)
		goto out_sizes;
	*out = vc;
	return 0;

out_sizes:
	free(vc->sizes);
out_slots:
	free(vc->slot);
out_free:
	free(vc);
	return r;
}

void vcache_free(struct vcache *vc)
{
	size_t i;

	if (!vc)
		return;
	for (i = 0; i < vc->nslot; i++)
		buf_free(&vc->slot[i].data);
	pthread_mutex_destroy(&vc->lock);
	free(vc->sizes);
	free(vc->slot);
	free(vc);
}

void vcache_clear(struct vcache *vc)
{
	size_t i;

	pthread_mutex_lock(&vc->lock);
	for (i = 0; i < vc->nslot; i++) {
		buf_free(&vc->slot[i].data);
		vc->slot[i].used = false;
	}
	memset(vc->sizes, 0, VSIZE_SLOTS * sizeof(*vc->sizes));
	pthread_mutex_unlock(&vc->lock);
}

static struct vsize *size_slot(struct vcache *vc, const struct store_rec *rec,
			       enum view_kind k)
{
	uint64_t h = ((uint64_t)rec->iter * VIEW_COUNT + (uint64_t)k) *
		     UINT64_C(0x9e3779b97f4a7c15);

	return &vc->sizes[h >> (64 - 16)];
}

static bool size_is(const struct vsize *z, const struct store_rec *rec,
		    enum view_kind k)
{
	return z->used && z->iter == rec->iter && z->offset == rec->offset &&
	       z->len == rec->len && z->kind == k;
}

static bool slot_is(const struct vslot *v, const struct store_rec *rec,
		    enum view_kind k)
{
	return v->used && v->iter == rec->iter && v->offset == rec->offset &&
	       v->len == rec->len && v->kind == k;
}

/* Copy what the caller asked for out of a slot; called with vc->lock. */
static int slot_copy(const struct vslot *v, bool *present, uint64_t *size,
		     uint64_t off, size_t max, struct buf *out)
{
	*present = v->present;
	*size = v->data.len;
	if (!out || off >= v->data.len)
		return 0;
	if (max > v->data.len - off)
		max = (size_t)(v->data.len - off);
	return buf_append(out, v->data.data + off, max);
}

static struct vslot *slot_victim(struct vcache *vc)
{
	struct vslot *best = &vc->slot[0];
	size_t i;

	for (i = 0; i < vc->nslot; i++) {
		if (!vc->slot[i].used)
			return &vc->slot[i];
		if (vc->slot[i].stamp < best->stamp)
			best = &vc->slot[i];
	}
	return best;
}

int vcache_get(struct vcache *vc, struct store *s, const struct store_rec *rec,
	       enum view_kind k, bool *present, uint64_t *size, uint64_t off,
	       size_t max, struct buf *out)
{
	struct buf line = BUF_INIT, view = BUF_INIT;
	struct vslot *v;
	struct vsize *z;
	bool has;
	size_t i;
	int r;

	pthread_mutex_lock(&vc->lock);
	z = size_slot(vc, rec, k);
	if (!out && size_is(z, rec, k)) {
		*present = z->present;
		*size = z->size;
		pthread_mutex_unlock(&vc->lock);
		return 0;
	}
	for (i = 0; i < vc->nslot; i++) {
		if (slot_is(&vc->slot[i], rec, k)) {
			vc->slot[i].stamp = ++vc->clock;
			r = slot_copy(&vc->slot[i], present, size, off, max, out);
			pthread_mutex_unlock(&vc->lock);
			return r;
		}
	}
	pthread_mutex_unlock(&vc->lock);

	/* Render without the lock: other readers keep being served. */
	r = store_read(s, rec->iter, &line);
	if (r < 0)
		goto out_line;
	r = view_render(line.data, line.len, k, &view, &has);
	if (r == -EINVAL) {
		/* The index trusted a line that is no record after all. */
		log_err("%s: iteration %" PRId64 " (line %" PRIu64
			"): not a JSON object", store_path(s), rec->iter,
			rec->lineno);
		r = -EIO;
	}
	if (r < 0)
		goto out_view;

	pthread_mutex_lock(&vc->lock);
	/* Another thread may have rendered the same view meanwhile. */
	for (i = 0; i < vc->nslot; i++)
		if (slot_is(&vc->slot[i], rec, k))
			break;
	v = i < vc->nslot ? &vc->slot[i] : slot_victim(vc);
	buf_free(&v->data);
	v->data = view;
	view = (struct buf)BUF_INIT;
	v->used = true;
	v->present = has;
	v->iter = rec->iter;
	v->offset = rec->offset;
	v->len = rec->len;
	v->kind = k;
	v->stamp = ++vc->clock;
	*z = (struct vsize){ .used = true, .present = has, .kind = k,
			     .len = rec->len, .iter = rec->iter,
			     .offset = rec->offset, .size = v->data.len };
	r = slot_copy(v, present, size, off, max, out);
	pthread_mutex_unlock(&vc->lock);

out_view:
	buf_free(&view);
out_line:
	buf_free(&line);
	return r;
}
