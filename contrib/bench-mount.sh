#!/usr/bin/env bash
# Mount benchmark, ratios from one run on this machine:
#  1. grep -c over all iterations/*/code.py and cat of all record.json on a
#     10,000-record history: first pass right after mounting (caches dropped)
#     and second pass, with -o ro and (second pass) writable, against the
#     same tree written out as real files on the same disk (caches dropped
#     the same way);
#  2. ls -l iterations of a 100,000-record history;
#  3. median close() latency of a drop through the mount against
#     iterfs-commit of the same record;
#  4. commits per second with 8 writers dropping at once against one writer.
#
#   bash contrib/bench-mount.sh        (root: drops the page cache)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/iterfs-bench}
ITERFS=$PWD/build/fs/iterfs COMMIT=$PWD/build/core/iterfs-commit
[ -x "$ITERFS" ] || { echo "build first: ninja -C build" >&2; exit 1; }
mkdir -p "$BENCH_DIR"
mnt=$BENCH_DIR/mnt
mkdir -p "$mnt"
cleanup() { mountpoint -q "$mnt" && fusermount3 -u "$mnt"; true; }
trap cleanup EXIT

secs() { python3 -c 'import sys,time,subprocess; t=time.monotonic(); subprocess.run(sys.argv[1:], check=True, shell=False, stdout=subprocess.DEVNULL); print(f"{time.monotonic()-t:.3f}")' "$@"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
dropcache() { sync; echo 3 >/proc/sys/vm/drop_caches; }

h10k=$BENCH_DIR/history-10000.jsonl
[ -s "$h10k" ] || python3 contrib/gen-history.py "$h10k" --records 10000 --seed 1
h100k=$BENCH_DIR/history-100000.jsonl
[ -s "$h100k" ] || python3 contrib/gen-history.py "$h100k" --records 100000 --seed 1

# The same tree as real files on the same disk.
real=$BENCH_DIR/real-10000
if [ ! -d "$real/iterations" ]; then
	"$ITERFS" -o ro "$h10k" "$mnt"
	rm -rf "$real"; mkdir -p "$real"
	cp -r "$mnt/iterations" "$real/"
	fusermount3 -u "$mnt"
fi

grep_all() { bash -c 'cd "$1" && grep -c strategy iterations/*/code.py >/dev/null' _ "$1"; }
cat_all() { bash -c 'cd "$1" && cat iterations/*/record.json >/dev/null' _ "$1"; }

echo "## 1. 10,000-record history: grep -c over code.py, cat of record.json"
printf '| pass | iterfs | real files | iterfs / real |\n|---|---:|---:|---:|\n'
for op in grep_all cat_all; do
	dropcache
	r1=$(secs bash -c "$(declare -f $op); $op $real")
	r2=$(secs bash -c "$(declare -f $op); $op $real")
	dropcache
	"$ITERFS" -o ro "$h10k" "$mnt"
	m1=$(secs bash -c "$(declare -f $op); $op $mnt")
	m2=$(secs bash -c "$(declare -f $op); $op $mnt")
	fusermount3 -u "$mnt"
	# A writable mount answers every open itself (the drop box needs it).
	"$ITERFS" "$h10k" "$mnt"
	bash -c "$(declare -f $op); $op $mnt"
	w2=$(secs bash -c "$(declare -f $op); $op $mnt")
	fusermount3 -u "$mnt"
	printf '| %s first | %ss | %ss | %sx |\n' "$op" "$m1" "$r1" "$(ratio "$m1" "$r1")"
	printf '| %s second | %ss | %ss | %sx |\n' "$op" "$m2" "$r2" "$(ratio "$m2" "$r2")"
	printf '| %s second, writable mount | %ss | %ss | %sx |\n' "$op" "$w2" "$r2" "$(ratio "$w2" "$r2")"
done

echo
echo "## 2. ls -l iterations of a 100,000-record history"
t0=$(date +%s.%N)
"$ITERFS" -o ro "$h100k" "$mnt"
t1=$(date +%s.%N)
l1=$(secs bash -c "ls -l $mnt/iterations >/dev/null")
l2=$(secs bash -c "ls -l $mnt/iterations >/dev/null")
fusermount3 -u "$mnt"
printf '| mount (index) | ls -l first | ls -l second |\n|---:|---:|---:|\n'
printf '| %.3fs | %ss | %ss |\n' "$(echo "$t1 - $t0" | bc)" "$l1" "$l2"

echo
# A commit rewrites the store, so its cost (and what group commit saves)
# grows with the store: sections 3 and 4 run on two sizes.
for size in ${DROP_SIZES:-1000 10000}; do
echo "## 3. close() latency of one drop through the mount vs iterfs-commit, $size-record store"
store=$BENCH_DIR/drops.jsonl
rm -f "$store" "$store.lock"; rm -rf "$store.rejected"
head -n "$size" "$h10k" >"$store"
# A drop must be complete for the store: its last record, renumbered.
drop=$BENCH_DIR/drop-mount.json
python3 contrib/bench-drop.py "$store" --code-lines 2 >"$drop"
"$ITERFS" "$store" "$mnt"
python3 - "$mnt" "$COMMIT" "$store" "$drop" <<'PY'
import json, os, subprocess, sys, tempfile, time
mnt, commit, store, drop = sys.argv[1:5]
rec = open(drop, encoding="utf-8").read()
def median(xs): xs = sorted(xs); return xs[len(xs) // 2]
via_mount = []
for i in range(30):
    t = time.monotonic()
    with open(f"{mnt}/incoming/bench-{i}.json", "w") as f:
        f.write(rec)
    via_mount.append(time.monotonic() - t)
src = tempfile.NamedTemporaryFile("w", delete=False, suffix=".json"); src.write(rec); src.close()
via_tool = []
for i in range(30):
    t = time.monotonic()
    subprocess.run([commit, store, src.name], check=True, stdout=subprocess.DEVNULL)
    via_tool.append(time.monotonic() - t)
os.unlink(src.name)
m, c = median(via_mount) * 1e3, median(via_tool) * 1e3
print("| drop through the mount | iterfs-commit | mount / tool |\n|---:|---:|---:|")
print(f"| {m:.2f} ms | {c:.2f} ms | {m / c:.2f}x |")
PY

echo
echo "## 4. 8 writers dropping at once vs one writer, $size-record store"
python3 - "$mnt" "$drop" <<'PY'
import json, multiprocessing, sys, time
mnt, drop = sys.argv[1:3]
rec = open(drop, encoding="utf-8").read()
def writer(args):
    w, n = args
    for i in range(n):
        with open(f"{mnt}/incoming/w{w}-{i}-{time.monotonic_ns()}.json", "w") as f:
            f.write(rec)
def rate(writers, per):
    t = time.monotonic()
    with multiprocessing.Pool(writers) as p:
        p.map(writer, [(w, per) for w in range(writers)])
    return writers * per / (time.monotonic() - t)
one = rate(1, 80)
eight = rate(8, 40)
print("| 1 writer | 8 writers | 8 / 1 |\n|---:|---:|---:|")
print(f"| {one:.0f} commits/s | {eight:.0f} commits/s | {eight / one:.2f}x |")
PY
fusermount3 -u "$mnt"
echo
done
