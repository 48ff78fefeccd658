#!/usr/bin/env bash
# Commit latency benchmark: median latency of one durable commit into
# histories of 100, 10,000 and 100,000 records, on the local filesystem and on
# a loop-mounted XFS image with reflink, against the seed algorithm (Python,
# json.loads/json.dumps everything, no fsync) and against one write+fdatasync
# append (the physical floor).  Ratios come from the same run.
#
#   bash contrib/bench-commit.sh            (root: it mounts a loop XFS image)
#   SIZES="100 10000" bash contrib/bench-commit.sh
#
# Needs a build in ./build (ninja -C build) and xfsprogs.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/iterfs-bench}
SIZES=${SIZES:-"100 10000 100000"}
bench=build/tests/bench_commit
[ -x "$bench" ] || { echo "build first: ninja -C build" >&2; exit 1; }
mkdir -p "$BENCH_DIR"

drop=$BENCH_DIR/drop.json
python3 - "$drop" <<'PY'
import json, sys
code = "def strategy(data):\n" + "".join(
    f"    f{i} = data.get('price:收盤價').rolling({i + 5}).mean()\n" for i in range(120))
json.dump({"code": code, "metrics": {"sharpe_ratio": 1.25, "max_drawdown": -0.2},
           "feedback": "keep the momentum filter", "success": True}, open(sys.argv[1], "w"))
PY

xfs_img=$BENCH_DIR/xfs.img xfs_mnt=$BENCH_DIR/xfs
cleanup() { mountpoint -q "$xfs_mnt" && umount "$xfs_mnt"; rm -f "$xfs_img"; }
trap cleanup EXIT
mkdir -p "$xfs_mnt"
truncate -s 6G "$xfs_img"
mkfs.xfs -q -f -m reflink=1 "$xfs_img"
mount -o loop "$xfs_img" "$xfs_mnt"

med() { sed -n 's/^median_us=\([0-9]*\).*/\1/p'; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$1" "$2"; }

printf '| fs | records | iterfs median | seed median | append+fdatasync | seed / iterfs | iterfs / append |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
declare -A at100
growth=""
for fs in ext4 xfs-reflink; do
	dir=$BENCH_DIR/local
	[ "$fs" = xfs-reflink ] && dir=$xfs_mnt
	mkdir -p "$dir"
	for n in $SIZES; do
		src=$BENCH_DIR/history-$n.jsonl
		[ -s "$src" ] || python3 contrib/gen-history.py "$src" --records "$n" --seed 1
		runs=20 seed_runs=5
		[ "$n" -ge 100000 ] && { runs=7; seed_runs=3; }
		cp "$src" "$dir/ours.jsonl"
		ours=$("$bench" "$dir/ours.jsonl" "$drop" "$runs" | med)
		rm -f "$dir/ours.jsonl" "$dir/ours.jsonl.lock"
		cp "$src" "$dir/seed.jsonl"
		seed=$(python3 contrib/seed_commit.py "$dir/seed.jsonl" "$drop" "$seed_runs" | med)
		rm -f "$dir/seed.jsonl"
		cp "$src" "$dir/append.jsonl"
		app=$("$bench" --append "$dir/append.jsonl" "$drop" "$runs" | med)
		rm -f "$dir/append.jsonl"
		[ "$n" = 100 ] && at100[$fs]=$ours
		printf '| %s | %s | %s µs | %s µs | %s µs | %sx | %sx |\n' "$fs" "$n" "$ours" "$seed" "$app" \
			"$(ratio "$seed" "$ours")" "$(ratio "$ours" "$app")"
		[ "$n" = 100000 ] && [ -n "${at100[$fs]:-}" ] &&
			growth+="$fs: latency at 100,000 records / at 100 = $(ratio "$ours" "${at100[$fs]}")x"$'\n'
	done
done
echo
printf '%s' "$growth"
