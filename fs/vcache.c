/* vcache.c - a small LRU of rendered views and a table of their sizes (see
 * vcache.h). */
#include "vcache.h"

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
	uint64_t tag;
	enum view_kind kind;
	uint64_t stamp;     /* last use, for LRU eviction */
	struct buf data;
};

/* Direct-mapped: a collision overwrites. */
struct vsize {
	bool used;
	bool present;
	enum view_kind kind;
	uint32_t len;
	int64_t iter;
	uint64_t offset;
	uint64_t size;
	uint64_t tag;
	uint64_t gen;       /* store generation the tag was last checked at */
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
	vc->slot = calloc(slots ? slots : 1, sizeof(*vc->slot));
	if (!vc->slot) {
		r = -ENOMEM;
		goto out_free;
	}
	vc->nslot = slots ? slots : 1;
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

/* FNV-1a, then a final mix so that the low bits depend on every byte. */
uint64_t vcache_tag(const char *line, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)line[i];
		h *= UINT64_C(0x100000001b3);
	}
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	return h;
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

static struct vslot *slot_find(struct vcache *vc, int64_t iter, uint64_t tag,
			       enum view_kind k)
{
	size_t i;

	for (i = 0; i < vc->nslot; i++)
		if (vc->slot[i].used && vc->slot[i].iter == iter &&
		    vc->slot[i].tag == tag && vc->slot[i].kind == k)
			return &vc->slot[i];
	return NULL;
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

int vcache_render(struct vcache *vc, const char *path, int64_t iter,
		  uint64_t tag, const char *line, size_t len, enum view_kind k,
		  bool *present, struct buf *out)
{
	struct buf view = BUF_INIT;
	struct vslot *v;
	bool has;
	int r;

	pthread_mutex_lock(&vc->lock);
	v = slot_find(vc, iter, tag, k);
	if (v) {
		v->stamp = ++vc->clock;
		*present = v->present;
		r = buf_append(out, v->data.data, v->data.len);
		pthread_mutex_unlock(&vc->lock);
		return r;
	}
	pthread_mutex_unlock(&vc->lock);

	/* Render without the lock: other readers keep being served. */
	r = view_render(line, len, k, &view, &has);
	if (r == -EINVAL) {
		/* The index trusted a line that is no record after all. */
		log_err("%s: iteration %" PRId64 ": not a JSON object", path,
			iter);
		r = -EIO;
	}
	if (r < 0)
		goto out;
	r = buf_append(out, view.data, view.len);
	if (r < 0)
		goto out;
	*present = has;

	pthread_mutex_lock(&vc->lock);
	/* Another thread may have rendered the same view meanwhile. */
	v = slot_find(vc, iter, tag, k);
	if (!v)
		v = slot_victim(vc);
	buf_free(&v->data);
	v->data = view;
	view = (struct buf)BUF_INIT;
	v->used = true;
	v->present = has;
	v->iter = iter;
	v->tag = tag;
	v->kind = k;
	v->stamp = ++vc->clock;
	pthread_mutex_unlock(&vc->lock);
out:
	buf_free(&view);
	return r;
}

int vcache_peek(struct vcache *vc, int64_t iter, uint64_t tag,
		enum view_kind k, bool *present, struct buf *out)
{
	struct vslot *v;
	int r = -ENOENT;

	pthread_mutex_lock(&vc->lock);
	v = slot_find(vc, iter, tag, k);
	if (v) {
		v->stamp = ++vc->clock;
		*present = v->present;
		r = buf_append(out, v->data.data, v->data.len);
	}
	pthread_mutex_unlock(&vc->lock);
	return r;
}

int vcache_attr(struct vcache *vc, struct store *s, const struct store_rec *rec,
		uint64_t gen, enum view_kind k, bool *present, uint64_t *size,
		uint64_t *tag)
{
	struct buf line = BUF_INIT, view = BUF_INIT;
	struct vsize *z;
	uint64_t t;
	bool has;
	int r;

	pthread_mutex_lock(&vc->lock);
	z = size_slot(vc, rec, k);
	if (size_is(z, rec, k) && z->gen == gen) {
		*present = z->present;
		*size = z->size;
		*tag = z->tag;
		pthread_mutex_unlock(&vc->lock);
		return 0;
	}
	pthread_mutex_unlock(&vc->lock);

	r = store_read(s, rec->iter, &line);
	if (r < 0)
		goto out;
	t = vcache_tag(line.data, line.len);
	r = vcache_render(vc, store_path(s), rec->iter, t, line.data, line.len,
			  k, &has, &view);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&vc->lock);
	z = size_slot(vc, rec, k);
	*z = (struct vsize){ .used = true, .present = has, .kind = k,
			     .len = rec->len, .iter = rec->iter,
			     .offset = rec->offset, .size = view.len,
			     .tag = t, .gen = gen };
	pthread_mutex_unlock(&vc->lock);
	*present = has;
	*size = view.len;
	*tag = t;
out:
	buf_free(&view);
	buf_free(&line);
	return r;
}
