/* vcache.c - a small LRU of rendered views and a table of their sizes (see
 * vcache.h).  Slots are found through a chained hash on (iteration, tag,
 * view), so that a lookup costs the same whatever the number of slots;
 * only an insertion scans them, for the least recently used. */
#include "vcache.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

struct vslot {
	struct vview *v;    /* NULL: free */
	int64_t iter;
	uint64_t tag;
	enum view_kind kind;
	uint64_t stamp;     /* last use, for LRU eviction */
	size_t hnext;       /* next slot in the same bucket, or NONE */
};

#define NONE SIZE_MAX

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
	size_t *bucket;       /* first slot of each chain, or NONE */
	size_t nbucket;       /* a power of two */
	uint64_t clock;
	struct vsize *sizes;  /* VSIZE_SLOTS of them */
	struct vcache_stats stats;
	bool valid;           /* immutable: lines passed the full validation */
};

int vview_new(struct buf *bytes, bool present, struct vview **out)
{
	struct vview *v = malloc(sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->refs = 1;
	v->present = present;
	v->bytes = *bytes;
	*bytes = (struct buf)BUF_INIT;
	*out = v;
	return 0;
}

struct vview *vview_get(struct vview *v)
{
	__atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
	return v;
}

void vview_put(struct vview *v)
{
	if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	buf_free(&v->bytes);
	free(v);
}

int vcache_new(size_t slots, bool valid, struct vcache **out)
{
	struct vcache *vc = calloc(1, sizeof(*vc));
	size_t i;
	int r;

	if (!vc)
		return -ENOMEM;
	vc->valid = valid;
	vc->nslot = slots ? slots : 1;
	vc->slot = calloc(vc->nslot, sizeof(*vc->slot));
	if (!vc->slot) {
		r = -ENOMEM;
		goto out_free;
	}
	for (vc->nbucket = 1; vc->nbucket < 2 * vc->nslot; vc->nbucket *= 2)
		;
	vc->bucket = malloc(vc->nbucket * sizeof(*vc->bucket));
	if (!vc->bucket) {
		r = -ENOMEM;
		goto out_slots;
	}
	for (i = 0; i < vc->nbucket; i++)
		vc->bucket[i] = NONE;
	vc->sizes = calloc(VSIZE_SLOTS, sizeof(*vc->sizes));
	if (!vc->sizes) {
		r = -ENOMEM;
		goto out_buckets;
	}
	r = -pthread_mutex_init(&vc->lock, NULL);
	if (r < 0)
		goto out_sizes;
	*out = vc;
	return 0;

out_sizes:
	free(vc->sizes);
out_buckets:
	free(vc->bucket);
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
		vview_put(vc->slot[i].v);
	pthread_mutex_destroy(&vc->lock);
	free(vc->sizes);
	free(vc->bucket);
	free(vc->slot);
	free(vc);
}

void vcache_clear(struct vcache *vc)
{
	size_t i;

	pthread_mutex_lock(&vc->lock);
	for (i = 0; i < vc->nslot; i++) {
		vview_put(vc->slot[i].v);
		vc->slot[i].v = NULL;
	}
	for (i = 0; i < vc->nbucket; i++)
		vc->bucket[i] = NONE;
	memset(vc->sizes, 0, VSIZE_SLOTS * sizeof(*vc->sizes));
	pthread_mutex_unlock(&vc->lock);
}

void vcache_stats(struct vcache *vc, struct vcache_stats *st)
{
	pthread_mutex_lock(&vc->lock);
	*st = vc->stats;
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

static size_t *bucket_of(struct vcache *vc, int64_t iter, uint64_t tag,
			 enum view_kind k)
{
	uint64_t h = (tag ^ ((uint64_t)iter * VIEW_COUNT + (uint64_t)k)) *
		     UINT64_C(0x9e3779b97f4a7c15);

	return &vc->bucket[(h >> 32) & (vc->nbucket - 1)];
}

/* Called with vc->lock. */
static struct vslot *slot_find(struct vcache *vc, int64_t iter, uint64_t tag,
			       enum view_kind k)
{
	size_t i;

	for (i = *bucket_of(vc, iter, tag, k); i != NONE;
	     i = vc->slot[i].hnext) {
		struct vslot *s = &vc->slot[i];

		if (s->iter == iter && s->tag == tag && s->kind == k)
			return s;
	}
	return NULL;
}

/* Take slot `s` out of its chain and drop its view.  Called with
 * vc->lock. */
static void slot_empty(struct vcache *vc, struct vslot *s)
{
	size_t *p, self = (size_t)(s - vc->slot);

	if (!s->v)
		return;
	for (p = bucket_of(vc, s->iter, s->tag, s->kind); *p != self;
	     p = &vc->slot[*p].hnext)
		;
	*p = s->hnext;
	vview_put(s->v);
	s->v = NULL;
}

/* The least recently used slot, emptied.  Called with vc->lock. */
static struct vslot *slot_victim(struct vcache *vc)
{
	struct vslot *best = &vc->slot[0];
	size_t i;

	for (i = 0; i < vc->nslot; i++) {
		if (!vc->slot[i].v)
			return &vc->slot[i];
		if (vc->slot[i].stamp < best->stamp)
			best = &vc->slot[i];
	}
	slot_empty(vc, best);
	return best;
}

int vcache_find(struct vcache *vc, int64_t iter, uint64_t tag,
		enum view_kind k, struct vview **out)
{
	struct vslot *s;
	int r = -ENOENT;

	pthread_mutex_lock(&vc->lock);
	s = slot_find(vc, iter, tag, k);
	if (s) {
		s->stamp = ++vc->clock;
		vc->stats.hits++;
		*out = vview_get(s->v);
		r = 0;
	}
	pthread_mutex_unlock(&vc->lock);
	return r;
}

int vcache_get(struct vcache *vc, const char *path, int64_t iter,
	       uint64_t tag, const char *line, size_t len, enum view_kind k,
	       struct vview **out)
{
	struct buf view = BUF_INIT;
	struct vview *v;
	struct vslot *s;
	bool has;
	int r;

	if (vcache_find(vc, iter, tag, k, out) == 0)
		return 0;

	/* Render without the lock: other readers keep being served. */
	r = vc->valid ? view_render_trusted(line, len, k, &view, &has) :
			view_render(line, len, k, &view, &has);
	if (r == -EINVAL) {
		/* The index trusted a line that is no record after all. */
		log_err("%s: iteration %" PRId64 ": not a JSON object", path,
			iter);
		r = -EIO;
	}
	if (r == 0)
		r = vview_new(&view, has, &v);
	buf_free(&view);
	if (r < 0)
		return r;

	pthread_mutex_lock(&vc->lock);
	vc->stats.renders++;
	/* Another thread may have rendered the same view meanwhile: the
	 * same bytes, kept once. */
	s = slot_find(vc, iter, tag, k);
	if (s) {
		vview_put(v);
		v = s->v;
	} else {
		size_t *b;

		s = slot_victim(vc);
		s->v = v;
		s->iter = iter;
		s->tag = tag;
		s->kind = k;
		b = bucket_of(vc, iter, tag, k);
		s->hnext = *b;
		*b = (size_t)(s - vc->slot);
	}
	s->stamp = ++vc->clock;
	*out = vview_get(v);
	pthread_mutex_unlock(&vc->lock);
	return 0;
}

/* Append a copy of view `v`'s bytes and drop the reference. */
static int view_copy(struct vview *v, bool *present, struct buf *out)
{
	int r = v->present ? buf_append(out, v->bytes.data, v->bytes.len) : 0;

	*present = v->present;
	vview_put(v);
	return r;
}

int vcache_render(struct vcache *vc, const char *path, int64_t iter,
		  uint64_t tag, const char *line, size_t len, enum view_kind k,
		  bool *present, struct buf *out)
{
	struct vview *v;
	int r;

	r = vcache_get(vc, path, iter, tag, line, len, k, &v);
	return r < 0 ? r : view_copy(v, present, out);
}

int vcache_peek(struct vcache *vc, int64_t iter, uint64_t tag,
		enum view_kind k, bool *present, struct buf *out)
{
	struct vview *v;
	int r;

	r = vcache_find(vc, iter, tag, k, &v);
	return r < 0 ? r : view_copy(v, present, out);
}

int vcache_attr(struct vcache *vc, struct store *s, const struct store_rec *rec,
		uint64_t gen, enum view_kind k, bool *present, uint64_t *size,
		uint64_t *tag)
{
	struct buf line = BUF_INIT;
	struct vview *v;
	struct vsize *z;
	uint64_t t;
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
	t = hash_tag(line.data, line.len);
	r = vcache_get(vc, store_path(s), rec->iter, t, line.data, line.len, k,
		       &v);
	if (r < 0)
		goto out;
	*present = v->present;
	*size = v->bytes.len;
	*tag = t;
	vview_put(v);
	pthread_mutex_lock(&vc->lock);
	z = size_slot(vc, rec, k);
	*z = (struct vsize){ .used = true, .present = *present, .kind = k,
			     .len = rec->len, .iter = rec->iter,
			     .offset = rec->offset, .size = *size,
			     .tag = t, .gen = gen };
	pthread_mutex_unlock(&vc->lock);
out:
	buf_free(&line);
	return r;
}
