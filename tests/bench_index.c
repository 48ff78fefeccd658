/* bench_index - time store_open on one history (run by
 * contrib/bench-index.sh, not a test).
 *
 *   bench_index FILE [mount|validate|quick|lazy|hash|views]
 *
 * Prints one line: seconds records iterations skipped index_bytes.
 * "quick" times the open iterfs mounts with (STORE_LAZY: the quick index
 * only); "lazy" times that open plus its full validation (store_validate),
 * what the daemon's validation thread does after the mount.
 * "hash" times the first by-hash use after the open instead (reading and
 * hashing every record's code, on a store validated at open as the daemon's
 * is once its validation is done); index_bytes then includes the by-hash
 * tables.  "views" likewise times the first use of by-metric and failed
 * (reading every record's metrics and outcome).
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct store_stats st;
	struct store *s;
	struct store_code code;
	unsigned flags = 0;
	bool hash = false, views = false, lazy = false;
	size_t n;
	int r;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bench_index FILE "
			"[mount|validate|quick|lazy|hash|views]\n");
		return 2;
	}
	if (argc == 3 && strcmp(argv[2], "mount") == 0)
		flags = STORE_TIMES | STORE_VALIDATE; /* what iterfs opens with */
	else if (argc == 3 && strcmp(argv[2], "validate") == 0)
		flags = STORE_VALIDATE;
	else if (argc == 3 && strcmp(argv[2], "quick") == 0)
		flags = STORE_TIMES | STORE_VALIDATE | STORE_LAZY;
	else if (argc == 3 && strcmp(argv[2], "lazy") == 0) {
		flags = STORE_TIMES | STORE_VALIDATE | STORE_LAZY;
		lazy = true;
	}
	else if (argc == 3 && strcmp(argv[2], "hash") == 0) {
		flags = STORE_TIMES | STORE_VALIDATE;
		hash = true;
	} else if (argc == 3 && strcmp(argv[2], "views") == 0) {
		flags = STORE_TIMES | STORE_VALIDATE;
		views = true;
	}
	else if (argc == 3) {
		fprintf(stderr, "bench_index: unknown mode %s\n", argv[2]);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = store_open(argv[1], flags, &s);
	if (!r && lazy)
		r = store_validate(s, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r < 0) {
		fprintf(stderr, "bench_index: %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	if (hash) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = store_codes(s, 0, &code, 1, &n);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (r < 0) {
			fprintf(stderr, "bench_index: by-hash of %s: %s\n",
				argv[1], strerror(-r));
			store_close(s);
			return 1;
		}
	}
	if (views) {
		char *name = NULL;
		int64_t it;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = store_metric_names(s, 0, &name, 1, &n);
		if (!r)
			r = store_failed(s, 0, &it, 1, &n);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		free(name);
		if (r < 0) {
			fprintf(stderr, "bench_index: views of %s: %s\n",
				argv[1], strerror(-r));
			store_close(s);
			return 1;
		}
	}
	store_stats(s, &st);
	printf("%.6f %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
	       (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       st.records, st.iterations, st.skipped, st.index_bytes);
	store_close(s);
	return 0;
}
