#!/usr/bin/env bash
# Rankings benchmark: by-metric/ of a 100,000-record history (gen-history.py
# --records 100000 --seed 1, about 7 KB a record) against the loop's own way
# of finding its best runs, each figure from the same rounds of one run:
#   (a) the first `ls by-metric/METRIC | head` right after mounting (it
#       builds every ranking) against Python reading the store with
#       json.loads of every line and sorting by METRIC (target: iterfs at
#       least 10x faster);
#   (b) the second `ls by-metric/METRIC | head` (target: under 50 ms), and
#       for scale `ls | head` of a directory on the local disk holding as
#       many symlinks with the same names;
#   (c) `readlink by-metric/METRIC/<rank 1>` against readlink of a symlink on
#       the local disk (what starting the process costs).
# Also shown: the daemon's resident memory before and after the first look
# (what the rankings cost a record).
# Also shown: the time until the mount is ready, which (a) does not include.
#
#   bash contrib/bench-views.sh
#   ROUNDS=3 METRIC=calmar_ratio bash contrib/bench-views.sh
#
# Environment: BENCH_DIR (default /tmp/iterfs-bench: the history, shared
# with bench-mount.sh, which generates it with the same arguments), RECORDS
# (default 100000), METRIC (default sharpe_ratio; it must be a metric of the
# generated records), ROUNDS (default 5; medians are shown).
#
# The page cache is left warm (the store is read once before the rounds):
# both sides read the same bytes from memory, and no other run on the
# machine loses its cache.  Each timed command runs as a whole process.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/iterfs-bench}
RECORDS=${RECORDS:-100000}
METRIC=${METRIC:-sharpe_ratio}
ROUNDS=${ROUNDS:-5}
ITERFS=$PWD/build/fs/iterfs
[ -x "$ITERFS" ] || { echo "build first: ninja -C build" >&2; exit 1; }
mkdir -p "$BENCH_DIR"
mnt=$BENCH_DIR/mnt-views
mkdir -p "$mnt"
cleanup() {
	if mountpoint -q "$mnt"; then fusermount3 -u "$mnt"; fi
	rm -f "$BENCH_DIR/views-link"
	rm -rf "$BENCH_DIR/views-local"
	true
}
trap cleanup EXIT

. contrib/bench-lib.sh
# range VALUES...: "lowest-highest", for the spread of the rounds.
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
# Its own ratio and secs: one decimal, and milliseconds shown as seconds.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
secs() { awk -v a="$1" 'BEGIN { printf "%.3f s", a / 1000 }'; }

hist=$BENCH_DIR/history-$RECORDS.jsonl
if [ ! -s "$hist" ]; then
	echo "generating $hist ..." >&2
	python3 contrib/gen-history.py "$hist.tmp" --records "$RECORDS" --seed 1
	mv "$hist.tmp" "$hist"
fi

# The loop's way: every line through json.loads, the runs that did not fail
# sorted by the metric, highest first (ties: lower iteration), the top ten.
cat >"$BENCH_DIR/views-loop.py" <<'PY'
import json, math, sys
path, metric = sys.argv[1:3]
rows = []
with open(path, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        ok = r.get("success", (r.get("execution_result") or {}).get("success"))
        v = (r.get("metrics") or {}).get(metric)
        if ok is False or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isnan(v):
            continue
        rows.append((-v, r.get("iteration", r.get("iteration_num"))))
rows.sort()
for v, it in rows[:10]:
    print(it, -v)
PY

ls_head() { bash -c 'ls "$1" | head' - "${1:-$mnt/by-metric/$METRIC}"; }
# The daemon's VmRSS in kB (the one iterfs serving $mnt).
rss_kb() {
	local pid
	pid=$(pgrep -f -n -x "$ITERFS $hist $mnt")
	awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
}
cat "$hist" >/dev/null
mb=$(awk -v s="$(stat -c %s "$hist")" 'BEGIN { printf "%.0f", s / 1e6 }')
echo "# $RECORDS records, $mb MB ($hist), metric $METRIC, median of $ROUNDS rounds"

ln -sfn ../../iterations/0 "$BENCH_DIR/views-link"
ready=() first=() vfirst=() second=() link=() loop=() local_link=() local_ls=()
for ((i = 0; i < ROUNDS; i++)); do
	ready+=("$(ms "$ITERFS" "$hist" "$mnt")")
	[ "$i" -gt 0 ] || rss0=$(rss_kb)
	first+=("$(ms ls_head)")
	[ "$i" -gt 0 ] || rss1=$(rss_kb)
	second+=("$(ms ls_head)")
	top=$(ls "$mnt/by-metric/$METRIC" | sed -n 1p)
	[ -n "$top" ] || { echo "no by-metric/$METRIC in the mount" >&2; exit 1; }
	link+=("$(ms readlink "$mnt/by-metric/$METRIC/$top")")
	if [ ! -d "$BENCH_DIR/views-local" ]; then
		mkdir "$BENCH_DIR/views-local"
		(cd "$mnt/by-metric/$METRIC" && ls | python3 -c '
import os, sys
for name in sys.stdin.read().split():
    os.symlink(os.readlink(name), os.path.join(sys.argv[1], name))
' "$BENCH_DIR/views-local")
		ls_head "$BENCH_DIR/views-local" >/dev/null
	fi
	fusermount3 -u "$mnt"
	# The build alone: the first look once the validation behind the
	# quick mount is done (.iterfs/status), so that it does not wait.
	"$ITERFS" "$hist" "$mnt"
	until grep -q '"validating":[[:space:]]*false' "$mnt/.iterfs/status"; do sleep 0.02; done
	vfirst+=("$(ms ls_head)")
	fusermount3 -u "$mnt"
	local_ls+=("$(ms ls_head "$BENCH_DIR/views-local")")
	loop+=("$(ms python3 "$BENCH_DIR/views-loop.py" "$hist" "$METRIC")")
	local_link+=("$(ms readlink "$BENCH_DIR/views-link")")
done
m_ready=$(printf '%s\n' "${ready[@]}" | median)
m_first=$(printf '%s\n' "${first[@]}" | median)
m_vfirst=$(printf '%s\n' "${vfirst[@]}" | median)
m_both=$(for ((i = 0; i < ROUNDS; i++)); do awk -v a="${ready[i]}" -v b="${first[i]}" 'BEGIN { print a + b }'; done | median)
m_second=$(printf '%s\n' "${second[@]}" | median)
m_link=$(printf '%s\n' "${link[@]}" | median)
m_loop=$(printf '%s\n' "${loop[@]}" | median)
m_local=$(printf '%s\n' "${local_link[@]}" | median)
m_local_ls=$(printf '%s\n' "${local_ls[@]}" | median)
n=$(find "$BENCH_DIR/views-local" -mindepth 1 -maxdepth 1 | wc -l)

echo
echo "| $RECORDS records, page cache warm | iterfs | baseline | baseline / iterfs |"
echo "|---|---:|---:|---:|"
echo "| (a) first \`ls by-metric/$METRIC \| head\` after mounting vs \`json.loads\` of every line + sort | $(secs "$m_first") | $(secs "$m_loop") | **$(ratio "$m_loop" "$m_first")x** |"
echo "| (a) the same once the validation behind the quick mount is done (the build alone) | $(secs "$m_vfirst") | $(secs "$m_loop") | $(ratio "$m_loop" "$m_vfirst")x |"
echo "| (a) \`iterfs\` until ready plus that first \`ls\` | $(secs "$m_both") | $(secs "$m_loop") | $(ratio "$m_loop" "$m_both")x |"
echo "| (b) second \`ls by-metric/$METRIC \| head\` ($n entries) vs the same symlinks on the local disk | **$m_second ms** | $m_local_ls ms | $(ratio "$m_local_ls" "$m_second")x |"
echo "| (c) \`readlink by-metric/$METRIC/$top\` vs readlink of a local symlink | $m_link ms | $m_local ms | $(ratio "$m_local" "$m_link")x |"
echo "| \`iterfs\` (writable) until the mount is ready, not in (a) | $(secs "$m_ready") | | |"
echo
echo "Daemon VmRSS (first round): $(awk -v k="$rss0" 'BEGIN { printf "%.1f", k / 1024 }') MB after mounting, $(awk -v k="$rss1" 'BEGIN { printf "%.1f", k / 1024 }') MB after the first look (every ranking built): $(awk -v a="$rss0" -v b="$rss1" -v n="$RECORDS" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }') bytes a record for the rankings."
echo
echo "Rounds (ms): first ls $(range "${first[@]}"), json.loads + sort $(range "${loop[@]}"), second ls $(range "${second[@]}"), local ls $(range "${local_ls[@]}"), readlink $(range "${link[@]}")."
