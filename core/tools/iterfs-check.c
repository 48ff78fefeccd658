/* iterfs-check - report what is wrong with a history, read-only.
 *
 * Contents: the tally of records (hash_mismatch, check_records,
 * count_codes), the progress line (progress_*), the two reports (text and
 * --json), main.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "buf.h"
#include "config.h"
#include "hash.h"
#include "jtext.h"
#include "log.h"
#include "record.h"
#include "store.h"

#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2
#define EXIT_UNREADABLE 3

/* How many line / iteration numbers are listed before "...". */
#define LIST_MAX 20
#define CHUNK 1024

static const char usage_text[] =
	"usage: iterfs-check STORE\n"
	"       iterfs-check --json STORE\n"
	"\n"
	"Read the JSONL history STORE (never writing it) and print counts:\n"
	"records, iterations, distinct codes, skipped lines (with their line\n"
	"numbers, and how many of them carry a number above the highest the\n"
	"tree shows), duplicate iteration numbers, code_hash mismatches and\n"
	"records without a timestamp.  On a terminal, a scan that takes more\n"
	"than a second (ITERFS_PROGRESS_AFTER seconds) shows its progress on\n"
	"stderr; never when stdout is not a terminal.\n"
	"\n"
	"  -j, --json     print the counts as one JSON object\n"
	"  -h, --help     show this help\n"
	"  -V, --version  show the version\n"
	"\n"
	"Exit status: 0 clean; 1 skipped lines, duplicate numbers or code_hash\n"
	"mismatches found (records without a timestamp are allowed);\n"
	"2 usage error; 3 the store cannot be read.\n";

struct tally {
	uint64_t mismatches, no_time;
	int64_t bad[LIST_MAX];
	size_t nbad;
};

/* The progress line: a thread that waits `after` seconds, then redraws
 * "phase" (and a bar while `total` is known) ten times a second on stderr
 * until progress_stop(), which erases it.  The scanning thread only stores
 * into the atomics. */
struct progress {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;                      /* guarded by lock */
	double after;
	_Atomic(const char *) phase;
	_Atomic uint64_t at, total;     /* total 0: unknown */
};

static void progress_draw(struct progress *p, unsigned tick)
{
	static const char spin[] = "|/-\\";
	uint64_t at = atomic_load(&p->at), total = atomic_load(&p->total);
	char bar[31];
	unsigned i, fill;

	if (!total) {
		fprintf(stderr, "\r\033[K%s %c", atomic_load(&p->phase),
			spin[tick % 4]);
	} else {
		fill = (unsigned)(at * 30 / total);
		for (i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r\033[K%s [%s] %3u%% %" PRIu64 "/%" PRIu64,
			atomic_load(&p->phase), bar,
			(unsigned)(at * 100 / total), at, total);
	}
	fflush(stderr);
}

static int wait_until(struct progress *p, const struct timespec *when)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	while (!p->done && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&p->cond, &p->lock, when);
	r = p->done;
	pthread_mutex_unlock(&p->lock);
	return r;
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	struct timespec when, due, now;
	bool drawn = false;
	unsigned tick = 0;

	clock_gettime(CLOCK_REALTIME, &when);
	when.tv_sec += (time_t)p->after;
	when.tv_nsec += (long)((p->after - (double)(time_t)p->after) * 1e9);
	if (when.tv_nsec >= 1000000000L) {
		when.tv_sec++;
		when.tv_nsec -= 1000000000L;
	}
	due = when;
	for (;;) {
		if (when.tv_nsec >= 1000000000L) {
			when.tv_sec++;
			when.tv_nsec -= 1000000000L;
		}
		if (wait_until(p, &when))
			break;
		progress_draw(p, tick++);
		drawn = true;
		when.tv_nsec += 100000000L;
	}
	/* A scan that outlasted the delay shows where it ended, even if it
	 * ended between two redraws. */
	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec > due.tv_sec ||
	    (now.tv_sec == due.tv_sec && now.tv_nsec >= due.tv_nsec)) {
		progress_draw(p, tick);
		drawn = true;
	}
	if (drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	return NULL;
}

/* Only where someone watches: stdout and stderr both terminals. */
static bool progress_start(struct progress *p)
{
	const char *env = getenv("ITERFS_PROGRESS_AFTER");
	char *end;

	if (!isatty(STDOUT_FILENO) || !isatty(STDERR_FILENO))
		return false;
	p->after = 1.0;
	if (env && *env) {
		p->after = strtod(env, &end);
		if (*end || p->after < 0 || p->after > 1e6)
			p->after = 1.0;
	}
	p->done = false;
	atomic_store(&p->phase, "indexing");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, progress_main, p) != 0) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		return false;
	}
	return true;
}

static void progress_phase(struct progress *p, const char *phase,
			   uint64_t total)
{
	atomic_store(&p->total, 0);
	atomic_store(&p->at, 0);
	atomic_store(&p->phase, phase);
	atomic_store(&p->total, total);
}

static void progress_stop(struct progress *p)
{
	pthread_mutex_lock(&p->lock);
	p->done = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

/* Does a code_hash in the record disagree with its code? */
static int hash_mismatch(const char *line, size_t len, bool *bad)
{
	unsigned char want[HASH_LEN], got[HASH_LEN];
	struct buf text = BUF_INIT;
	struct jtext_span v;
	bool found;
	int r;

	*bad = false;
	r = record_field(line, len, FIELD_CODE_HASH, &v, NULL, &found);
	if (r < 0 || !found)
		return r;
	r = jtext_string_decode(v, &text);
	if (r == -ENOMEM)
		goto out;
	if (r < 0 || hash_from_hex(text.data ? text.data : "", text.len, want) < 0) {
		*bad = true;
		r = 0;
		goto out;
	}
	buf_reset(&text);
	r = record_field(line, len, FIELD_CODE, &v, NULL, &found);
	if (r < 0)
		goto out;
	if (!found) {
		*bad = true;
		goto out;
	}
	r = jtext_string_decode(v, &text);
	if (!r)
		r = hash_sha256(text.data ? text.data : "", text.len, got);
	if (!r)
		*bad = memcmp(want, got, HASH_LEN) != 0;
out:
	buf_free(&text);
	return r;
}

static int check_records(struct store *s, struct tally *t,
			 struct progress *p)
{
	int64_t iters[CHUNK];
	struct buf line = BUF_INIT;
	size_t start = 0, n, i;
	int64_t when;
	bool bad, found;
	int r = 0;

	do {
		r = store_list(s, start, iters, CHUNK, &n);
		if (r < 0)
			goto out;
		for (i = 0; i < n; i++) {
			buf_reset(&line);
			r = store_read(s, iters[i], &line);
			if (r < 0)
				goto out;
			r = hash_mismatch(line.data, line.len, &bad);
			if (r < 0)
				goto out;
			if (bad) {
				if (t->nbad < LIST_MAX)
					t->bad[t->nbad++] = iters[i];
				t->mismatches++;
			}
			r = record_timestamp(line.data, line.len, &when,
					     &found);
			if (r < 0)
				goto out;
			if (!found)
				t->no_time++;
		}
		start += n;
		atomic_store(&p->at, start);
	} while (n == CHUNK);
out:
	buf_free(&line);
	return r;
}

static int count_codes(struct store *s, uint64_t *count)
{
	struct store_code codes[256];
	size_t n;
	int r;

	*count = 0;
	do {
		r = store_codes(s, (size_t)*count, codes, 256, &n);
		if (r < 0)
			return r;
		*count += n;
	} while (n == 256);
	return 0;
}

struct report {
	const char *path;
	struct store_stats st;
	uint64_t codes;
	uint64_t lines[LIST_MAX];
	size_t nskip;
	struct tally t;
};

static bool has_problems(const struct report *rp)
{
	return rp->st.skipped || rp->st.duplicates || rp->t.mismatches;
}

static void print_text(const struct report *rp)
{
	size_t i;

	printf("records: %" PRIu64 "\n", rp->st.records);
	printf("iterations: %" PRIu64 "\n", rp->st.iterations);
	printf("distinct codes: %" PRIu64 "\n", rp->codes);
	printf("skipped lines: %" PRIu64, rp->st.skipped);
	for (i = 0; i < rp->nskip && i < LIST_MAX; i++)
		printf("%s%" PRIu64, i ? ", " : rp->nskip > 1 ? " (lines " : " (line ",
		       rp->lines[i]);
	if (rp->nskip)
		printf("%s)", rp->nskip > LIST_MAX ? ", ..." : "");
	/* Said apart: such a line is a record to Python, not to the tree. */
	if (rp->st.beyond)
		printf("\nof them numbered above %" PRId64 " (not shown): %" PRIu64,
		       (int64_t)STORE_ITER_MAX, rp->st.beyond);
	printf("\nduplicate numbers: %" PRIu64 "\n", rp->st.duplicates);
	printf("code_hash mismatches: %" PRIu64, rp->t.mismatches);
	for (i = 0; i < rp->t.nbad; i++)
		printf("%s%" PRId64, i ? ", " :
		       rp->t.mismatches > 1 ? " (iterations " : " (iteration ",
		       rp->t.bad[i]);
	if (rp->t.nbad)
		printf("%s)", rp->t.mismatches > LIST_MAX ? ", ..." : "");
	printf("\ntimestamps missing: %" PRIu64 "\n", rp->t.no_time);
}

/* The same counts as one object on one line; the lists hold the first
 * LIST_MAX. */
static int print_json(const struct report *rp)
{
	cJSON *o = cJSON_CreateObject(), *a = NULL, *b = NULL;
	size_t i;
	char *text;
	bool ok;

	ok = o &&
	     cJSON_AddStringToObject(o, "store", rp->path) &&
	     cJSON_AddNumberToObject(o, "records", (double)rp->st.records) &&
	     cJSON_AddNumberToObject(o, "iterations", (double)rp->st.iterations) &&
	     cJSON_AddNumberToObject(o, "distinct_codes", (double)rp->codes) &&
	     cJSON_AddNumberToObject(o, "skipped_lines", (double)rp->st.skipped) &&
	     (a = cJSON_AddArrayToObject(o, "skipped_line_numbers")) &&
	     cJSON_AddNumberToObject(o, "skipped_numbered_beyond_max", (double)rp->st.beyond) &&
	     cJSON_AddNumberToObject(o, "duplicate_numbers", (double)rp->st.duplicates) &&
	     cJSON_AddNumberToObject(o, "code_hash_mismatches", (double)rp->t.mismatches) &&
	     (b = cJSON_AddArrayToObject(o, "code_hash_mismatch_iterations")) &&
	     cJSON_AddNumberToObject(o, "timestamps_missing", (double)rp->t.no_time) &&
	     cJSON_AddBoolToObject(o, "clean", !has_problems(rp));
	for (i = 0; ok && i < rp->nskip && i < LIST_MAX; i++)
		ok = cJSON_AddItemToArray(a, cJSON_CreateNumber((double)rp->lines[i]));
	for (i = 0; ok && i < rp->t.nbad; i++)
		ok = cJSON_AddItemToArray(b, cJSON_CreateNumber((double)rp->t.bad[i]));
	text = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text)
		return -ENOMEM;
	puts(text);
	cJSON_free(text);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct report rp = { 0 };
	struct progress prog = { 0 };
	struct store *s = NULL;
	struct stat sb;
	bool json = false, shown;
	int c, r, status = EXIT_SUCCESS;

	log_set_prog("iterfs-check");
	while ((c = getopt_long(argc, argv, "jhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("iterfs-check %s\n", ITERFS_VERSION);
			return EXIT_SUCCESS;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	rp.path = argv[optind];
	/* store_open treats a missing file as an empty history; a check of a
	 * path that is not there is an error. */
	if (stat(rp.path, &sb) < 0) {
		fprintf(stderr, "iterfs-check: %s: %s\n", rp.path, strerror(errno));
		return EXIT_UNREADABLE;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "iterfs-check: %s: not a regular file\n", rp.path);
		return EXIT_UNREADABLE;
	}
	shown = progress_start(&prog);
	r = store_open(rp.path, STORE_VALIDATE | STORE_TIMES, &s);
	if (!r)
		r = store_stats(s, &rp.st);
	if (!r) {
		progress_phase(&prog, "hashing codes", 0);
		r = count_codes(s, &rp.codes);
	}
	if (!r) {
		progress_phase(&prog, "checking records", rp.st.iterations);
		r = check_records(s, &rp.t, &prog);
	}
	if (!r)
		r = store_skipped(s, rp.lines, LIST_MAX, &rp.nskip);
	if (shown)
		progress_stop(&prog);
	if (r < 0) {
		fprintf(stderr, "iterfs-check: %s: %s\n", rp.path, strerror(-r));
		status = EXIT_UNREADABLE;
		goto out;
	}
	if (json) {
		r = print_json(&rp);
		if (r < 0) {
			fprintf(stderr, "iterfs-check: %s\n", strerror(-r));
			status = EXIT_UNREADABLE;
			goto out;
		}
	} else {
		print_text(&rp);
	}
	if (has_problems(&rp))
		status = EXIT_PROBLEMS;
	if (fflush(stdout) != 0)
		status = EXIT_UNREADABLE;
out:
	store_close(s);
	return status;
}
