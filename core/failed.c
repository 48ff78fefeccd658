/* failed.c - the failed view: the shown iterations that failed (store.h's
 * store_failed, store_is_failed; the hook in derived.h).
 *
 * A record failed when its success meaning is false or it has an error
 * text: the record has an error.txt (record.h's field table: "error", then
 * execution_result.error_message, a string, the empty string included).
 * State: those numbers, ascending, 8 bytes each.  A batch merges into a new
 * array (old minus `gone`, plus the added records that failed), so readers
 * keep the old one until apply swaps it in.
 */
#include "derived.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

struct failed {
	int64_t *it;
	size_t n;
};

struct fplan {
	int64_t *it;
	size_t n;
};

static void *fl_create(void)
{
	return calloc(1, sizeof(struct failed));
}

static void fl_destroy(void *p)
{
	struct failed *f = p;

	if (!f)
		return;
	free(f->it);
	free(f);
}

static void fl_plan_free(void *p)
{
	struct fplan *pl = p;

	if (!pl)
		return;
	free(pl->it);
	free(pl);
}

static uint64_t fl_bytes(const void *p)
{
	const struct failed *f = p;

	return sizeof(*f) + f->n * sizeof(*f->it);
}

/* derived_map's fn: did the record fail?  One walk of the line finds its
 * success and error fields, validating unless the store validates its
 * lines (*arg: derived_batch.valid).  A line that is not JSON after all
 * did not fail. */
static int read_failed(const char *line, size_t len, const struct ent *e,
		       void *out, void *arg)
{
	static const enum record_field want[2] = { FIELD_SUCCESS,
						   FIELD_ERROR };
	const bool *valid = arg;
	bool *failed = out, found[2];
	struct jtext_span v[2];
	int r;

	(void)e;
	r = record_fields(line, len, *valid, want, 2, v, found);
	*failed = r == 0 && ((found[0] && v[0].p[0] == 'f') || found[1]);
	return 0;
}

static bool in_sorted(const int64_t *a, size_t n, int64_t x, size_t *pos)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return lo < n && a[lo] == x;
}

static int fl_prepare(const void *st, const struct derived_batch *b,
		      void **plan)
{
	const struct failed *f = st;
	struct fplan *pl;
	bool *flag;
	size_t i = 0, j = 0;
	int r;

	pl = calloc(1, sizeof(*pl));
	flag = calloc(b->nadd + 1, sizeof(*flag));
	if (pl)
		pl->it = malloc((f->n + b->nadd + 1) * sizeof(*pl->it));
	if (!pl || !flag || !pl->it) {
		r = -ENOMEM;
		goto out;
	}
	r = derived_map(b->fd, b->add, b->nadd, flag, sizeof(*flag),
			read_failed, (void *)&b->valid);
	if (r < 0)
		goto out;
	while (i < f->n || j < b->nadd) {
		if (j < b->nadd && !flag[j]) {
			j++;
		} else if (i < f->n &&
			   in_sorted(b->gone, b->ngone, f->it[i], NULL)) {
			i++;
		} else if (j < b->nadd &&
			   (i >= f->n || b->add[j].iter < f->it[i])) {
			pl->it[pl->n++] = b->add[j++].iter;
		} else {
			pl->it[pl->n++] = f->it[i++];
		}
	}
out:
	free(flag);
	if (r < 0) {
		fl_plan_free(pl);
		return r;
	}
	*plan = pl;
	return 0;
}

static int fl_apply(void *st, void *plan)
{
	struct failed *f = st;
	struct fplan *pl = plan;

	free(f->it);
	f->it = pl->it;
	f->n = pl->n;
	pl->it = NULL;
	fl_plan_free(pl);
	return 0;
}

const struct derived_ops derived_failed_ops = {
	.name = "failed",
	.create = fl_create,
	.destroy = fl_destroy,
	.prepare = fl_prepare,
	.apply = fl_apply,
	.plan_free = fl_plan_free,
	.bytes = fl_bytes,
};

int store_failed(struct store *s, size_t start, int64_t *iters, size_t max,
		 size_t *n)
{
	const struct failed *f;
	size_t i;
	int r;

	*n = 0;
	r = store_view_rdlock(s, DERIVED_FAILED, (const void **)&f);
	if (r < 0)
		return r;
	for (i = 0; i < max && start + i < f->n; i++)
		iters[i] = f->it[start + i];
	*n = i;
	store_view_unlock(s);
	return 0;
}

int store_is_failed(struct store *s, int64_t iter, bool *failed)
{
	const struct failed *f;
	int r;

	r = store_view_rdlock(s, DERIVED_FAILED, (const void **)&f);
	if (r < 0)
		return r;
	if (store_has_locked(s, iter))
		*failed = in_sorted(f->it, f->n, iter, NULL);
	else
		r = -ENOENT;
	store_view_unlock(s);
	return r;
}
