#!/usr/bin/env bash
# Index benchmark: how long store_open takes on a 100,000-record history
# (about 700 MB) against `wc -l` on the same file, and how much memory the
# index holds per record.  Run by hand; prints a markdown table.
#
#   contrib/bench-index.sh
#
# Environment:
#   ITERFS_BUILD  build directory with tests/bench_index (default: build)
#   BENCH_DIR     cache for the generated history (default /tmp/iterfs-bench);
#                 the file is reused across runs
#   RECORDS       records in the history (default 100000)
#   CODE_BYTES    gen-history.py --code-bytes (default 6200, about 7 KB a
#                 record; RECORDS=1000000 CODE_BYTES=100 is the million-record
#                 history of bench-million.sh, 900 MB)
#   RUNS          timed runs of each command; the median is shown (default 7)
#
# Both commands are timed as whole processes, page cache warm, one after the
# other in each round so that drift hits both alike.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ITERFS_BUILD:-$root/build}
dir=${BENCH_DIR:-/tmp/iterfs-bench}
records=${RECORDS:-100000}
code_bytes=${CODE_BYTES:-6200}
runs=${RUNS:-7}
bench=$build/tests/bench_index

if [ ! -x "$bench" ]; then
	echo "bench-index: $bench not built (ninja -C $build tests/bench_index)" >&2
	exit 1
fi
mkdir -p "$dir"
hist=$dir/history-$records.jsonl
[ "$code_bytes" = 6200 ] || hist=$dir/history-$records-c$code_bytes.jsonl
if [ ! -s "$hist" ]; then
	echo "generating $hist ..." >&2
	python3 "$root/contrib/gen-history.py" "$hist.tmp" --records "$records" --seed 1 \
		--code-bytes "$code_bytes"
	mv "$hist.tmp" "$hist"
fi

# Warm the page cache so both commands read from memory.
cat "$hist" >/dev/null

. "$root/contrib/bench-lib.sh"
# span T0 T1: seconds between two `now` readings.
span() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'; }

wc_t=() idx_t=() times_t=() val_t=() quick_t=() lazy_t=() hash_t=() views_t=()
out=
for ((i = 0; i < runs; i++)); do
	t0=$(now); wc -l "$hist" >/dev/null; t1=$(now)
	wc_t+=("$(span "$t0" "$t1")")
	t0=$(now); out=$("$bench" "$hist"); t1=$(now)
	idx_t+=("$(span "$t0" "$t1")")
	t0=$(now); "$bench" "$hist" mount >/dev/null; t1=$(now)
	times_t+=("$(span "$t0" "$t1")")
	t0=$(now); "$bench" "$hist" validate >/dev/null; t1=$(now)
	val_t+=("$(span "$t0" "$t1")")
	t0=$(now); qout=$("$bench" "$hist" quick); t1=$(now)
	quick_t+=("$(span "$t0" "$t1")")
	t0=$(now); lout=$("$bench" "$hist" lazy); t1=$(now)
	lazy_t+=("$(span "$t0" "$t1")")
	hout=$("$bench" "$hist" hash)
	hash_t+=("$(awk -v t="${hout%% *}" 'BEGIN { printf "%.4f", t }')")
	vout=$("$bench" "$hist" views)
	views_t+=("$(awk -v t="${vout%% *}" 'BEGIN { printf "%.4f", t }')")
done

read -r _ recs iters skipped bytes <<<"$out"
if [ "$recs" -ne "$records" ] || [ "$skipped" -ne 0 ]; then
	echo "bench-index: indexed $recs records ($skipped skipped), expected $records" >&2
	exit 1
fi
m_wc=$(printf '%s\n' "${wc_t[@]}" | median)
m_idx=$(printf '%s\n' "${idx_t[@]}" | median)
m_times=$(printf '%s\n' "${times_t[@]}" | median)
m_val=$(printf '%s\n' "${val_t[@]}" | median)
m_quick=$(printf '%s\n' "${quick_t[@]}" | median)
m_lazy=$(printf '%s\n' "${lazy_t[@]}" | median)
m_hash=$(printf '%s\n' "${hash_t[@]}" | median)
m_views=$(printf '%s\n' "${views_t[@]}" | median)
read -r _ _ _ _ hbytes <<<"$hout"
read -r _ _ _ _ qbytes <<<"$qout"
read -r _ _ _ _ lbytes <<<"$lout"
read -r _ _ _ _ vbytes <<<"$vout"
size_mb=$(awk -v s="$(stat -c %s "$hist")" 'BEGIN { printf "%.0f", s / 1e6 }')

echo "Index of $recs records ($iters iterations, $size_mb MB), median of $runs runs, page cache warm:"
echo
echo "| command | seconds | vs wc -l |"
echo "|---|---|---|"
echo "| wc -l | $m_wc | 1.00 |"
echo "| store_open | $m_idx | $(ratio "$m_idx" "$m_wc") |"
echo "| store_open, STORE_TIMES + STORE_VALIDATE (the full scan: the mount of a store under 8 MiB) | $m_times | $(ratio "$m_times" "$m_wc") |"
echo "| store_open, STORE_VALIDATE | $m_val | $(ratio "$m_val" "$m_wc") |"
echo "| store_open, STORE_LAZY (the mount now: quick index) | $m_quick | $(ratio "$m_quick" "$m_wc") |"
echo "| store_open, STORE_LAZY, then store_validate (the validation thread's work) | $m_lazy | $(ratio "$m_lazy" "$m_wc") |"
echo "| first by-hash use (decode + SHA-256 of every code, in-process) | $m_hash | $(ratio "$m_hash" "$m_wc") |"
echo "| first by-metric + failed use (every record's metrics and outcome, in-process) | $m_views | $(ratio "$m_views" "$m_wc") |"
echo
echo "| index memory | bytes |"
echo "|---|---|"
echo "| total (store_stats index_bytes) | $bytes |"
echo "| per record | $(awk -v b="$bytes" -v r="$recs" 'BEGIN { printf "%.1f", b / r }') |"
echo "| per record, quick index (pending, no timestamps) | $(awk -v b="$qbytes" -v r="$recs" 'BEGIN { printf "%.1f", b / r }') |"
echo "| per record, after the validation (with timestamps: the mount's) | $(awk -v b="$lbytes" -v r="$recs" 'BEGIN { printf "%.1f", b / r }') |"
echo "| per record with by-hash built (not counted in the target) | $(awk -v b="$hbytes" -v r="$recs" 'BEGIN { printf "%.1f", b / r }') |"
echo "| per record with by-metric and failed built | $(awk -v b="$vbytes" -v r="$recs" 'BEGIN { printf "%.1f", b / r }') |"
