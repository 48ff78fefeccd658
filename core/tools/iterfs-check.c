/* iterfs-check - report what is wrong with a history, read-only. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
	"\n"
	"Read the JSONL history STORE (never writing it) and print counts:\n"
	"records, iterations, distinct codes, skipped lines (with their line\n"
	"numbers, and how many of them carry a number above the highest the\n"
	"tree shows), duplicate iteration numbers, code_hash mismatches and\n"
	"records without a timestamp.\n"
	"\n"
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

static int check_records(struct store *s, struct tally *t)
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

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t lines[LIST_MAX], codes;
	struct store_stats st;
	struct tally t = { 0 };
	struct store *s = NULL;
	struct stat sb;
	const char *path;
	size_t nskip, i;
	int c, r, status = EXIT_SUCCESS;

	log_set_prog("iterfs-check");
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
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
	path = argv[optind];
	/* store_open treats a missing file as an empty history; a check of a
	 * path that is not there is an error. */
	if (stat(path, &sb) < 0) {
		fprintf(stderr, "iterfs-check: %s: %s\n", path, strerror(errno));
		return EXIT_UNREADABLE;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "iterfs-check: %s: not a regular file\n", path);
		return EXIT_UNREADABLE;
	}
	r = store_open(path, STORE_VALIDATE | STORE_TIMES, &s);
	if (!r)
		r = store_stats(s, &st);
	if (!r)
		r = count_codes(s, &codes);
	if (!r)
		r = check_records(s, &t);
	if (!r)
		r = store_skipped(s, lines, LIST_MAX, &nskip);
	if (r < 0) {
		fprintf(stderr, "iterfs-check: %s: %s\n", path, strerror(-r));
		status = EXIT_UNREADABLE;
		goto out;
	}
	printf("records: %" PRIu64 "\n", st.records);
	printf("iterations: %" PRIu64 "\n", st.iterations);
	printf("distinct codes: %" PRIu64 "\n", codes);
	printf("skipped lines: %" PRIu64, st.skipped);
	for (i = 0; i < nskip && i < LIST_MAX; i++)
		printf("%s%" PRIu64, i ? ", " : nskip > 1 ? " (lines " : " (line ",
		       lines[i]);
	if (nskip)
		printf("%s)", nskip > LIST_MAX ? ", ..." : "");
	/* Said apart: such a line is a record to Python, not to the tree. */
	if (st.beyond)
		printf("\nof them numbered above %" PRId64 " (not shown): %" PRIu64,
		       (int64_t)STORE_ITER_MAX, st.beyond);
	printf("\nduplicate numbers: %" PRIu64 "\n", st.duplicates);
	printf("code_hash mismatches: %" PRIu64, t.mismatches);
	for (i = 0; i < t.nbad; i++)
		printf("%s%" PRId64, i ? ", " :
		       t.mismatches > 1 ? " (iterations " : " (iteration ",
		       t.bad[i]);
	if (t.nbad)
		printf("%s)", t.mismatches > LIST_MAX ? ", ..." : "");
	printf("\ntimestamps missing: %" PRIu64 "\n", t.no_time);
	if (st.skipped || st.duplicates || t.mismatches)
		status = EXIT_PROBLEMS;
	if (fflush(stdout) != 0)
		status = EXIT_UNREADABLE;
out:
	store_close(s);
	return status;
}
