#!/usr/bin/env bash
# Directory mounts: what mounting a directory of 20 histories costs against
# mounting the largest of them alone, each figure a ratio measured in the
# same run (medians of RUNS rounds, interleaved), page cache warm.
#
#   bash contrib/bench-forest.sh
#
# The directory holds one history of BIG records and 19 of SMALL records
# (gen-history.py, deterministic seeds), in BENCH_DIR (default
# /tmp/iterfs-bench/forest), never in the repository.
#
# Rows:
#   ready        iterfs until the mount is ready: the largest file alone,
#                and the directory (which reads no history at mount)
#   first look   ls of the largest history's iterations/ right after
#                mounting (for the directory: its index is built then)
#   ls all       ls of every history's iterations/ right after mounting
#                (the directory reads all 20; alone: the one history)
#   rss          the daemon's VmRSS after mounting and after `ls all`
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/iterfs-bench/forest}
BIG=${BIG:-100000}
SMALL=${SMALL:-5000}
RUNS=${RUNS:-5}
ITERFS=${ITERFS:-$PWD/build/fs/iterfs}
[ -x "$ITERFS" ] || { echo "build first: ninja -C build" >&2; exit 1; }
dir=$BENCH_DIR/runs
mnt=$BENCH_DIR/mnt
mkdir -p "$dir" "$mnt"
cleanup() { if mountpoint -q "$mnt"; then fusermount3 -u "$mnt"; fi; }
trap cleanup EXIT

big=$dir/big_run.jsonl
[ -s "$big" ] || python3 contrib/gen-history.py "$big" --records "$BIG" --seed 1 --code-bytes 1000
for i in $(seq -w 1 19); do
	f=$dir/small_$i.jsonl
	[ -s "$f" ] || python3 contrib/gen-history.py "$f" --records "$SMALL" --seed "$((10#$i + 1))" --code-bytes 1000
done
cat "$dir"/*.jsonl >/dev/null

. contrib/bench-lib.sh
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$(pgrep -n -f -- "^$ITERFS .*$mnt\$")/status"; }
ls_all() { for d in "$mnt"/*/; do ls "$d/iterations" >/dev/null; done; }

declare -A t
for ((r = 0; r < RUNS; r++)); do
	t[alone_ready]+="$(secs "$ITERFS" -o ro "$big" "$mnt") "
	t[alone_first]+="$(secs ls "$mnt/iterations") "
	a_rss0=$(rss_mb)
	fusermount3 -u "$mnt"
	t[dir_ready]+="$(secs "$ITERFS" -o ro "$dir" "$mnt") "
	d_rss0=$(rss_mb)
	t[dir_first]+="$(secs ls "$mnt/big_run/iterations") "
	t[dir_all]+="$(secs ls_all) "
	d_rss1=$(rss_mb)
	fusermount3 -u "$mnt"
done
med() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
ar=$(med alone_ready) af=$(med alone_first)
dr=$(med dir_ready) df=$(med dir_first) da=$(med dir_all)
echo "# 1 history of $BIG records and 19 of $SMALL ($(du -sh "$dir" | cut -f1)), -o ro, median of $RUNS rounds"
echo
echo "| step | largest alone (s) | directory of 20 (s) | directory / alone |"
echo "|---|---:|---:|---:|"
echo "| mount ready | $ar | $dr | $(ratio "$dr" "$ar") |"
echo "| first \`ls\` of the largest history's iterations/ | $af | $df | $(ratio "$df" "$af") |"
echo "| mount ready + first \`ls\` of the largest | $(awk -v a="$ar" -v b="$af" 'BEGIN { printf "%.4f", a + b }') | $(awk -v a="$dr" -v b="$df" 'BEGIN { printf "%.4f", a + b }') | $(ratio "$(awk -v a="$dr" -v b="$df" 'BEGIN { print a + b }')" "$(awk -v a="$ar" -v b="$af" 'BEGIN { print a + b }')") |"
echo "| then \`ls\` of all 20 histories' iterations/ | | $da | |"
echo
echo "| daemon VmRSS (MB, last round) | largest alone | directory of 20 |"
echo "|---|---:|---:|"
echo "| after mounting | $a_rss0 | $d_rss0 |"
echo "| after reading every history's iterations/ | | $d_rss1 |"
