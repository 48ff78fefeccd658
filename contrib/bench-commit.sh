#!/usr/bin/env bash
# Commit latency benchmark: median latency of one durable commit into
# histories of 100, 10,000 and 100,000 records, on the local filesystem and on
# a loop-mounted XFS image with reflink, against the seed algorithm (Python,
# json.loads/json.dumps everything, no fsync) and against one write+fdatasync
# append (the physical floor).  Ratios come from the same run.
#
#   bash contrib/bench-commit.sh            (root: it mounts a loop XFS image)
#   SIZES="100 10000" bash contrib/bench-commit.sh
#   SIZES="100 1000000" CODE_BYTES=100 ROUNDS=5 bash contrib/bench-commit.sh
#                                           (the million-record run, 900 MB)
#
# CODE_BYTES is gen-history.py's --code-bytes (default 6200: about 7 KB a
# record; 100: about 900 bytes).  From 1,000,000 records on, the seed runs
# once and only on the local filesystem (it takes minutes and its cost does
# not depend on reflink), and iterfs commits 3 times there (each copies the
# whole store).  ROUNDS (default 1) repeats the iterfs, journal and append
# measurements, every size in turn, and reports the median of the rounds (the
# seed runs in the first round only).  The drop is the store's last record with a new code and
# without number, timestamp and code_hash (contrib/bench-drop.py), so it is
# complete for the store.
#
# The "journal" column is the close() path of the journal design in README
# ("Million records"): lock, refresh, plan, one new durable segment file
# beside the store (bench_commit --journal); the fold is not in it.
#
# Needs a build in ./build (ninja -C build) and xfsprogs.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/iterfs-bench}
SIZES=${SIZES:-"100 10000 100000"}
CODE_BYTES=${CODE_BYTES:-6200}
ROUNDS=${ROUNDS:-1}
bench=build/tests/bench_commit
[ -x "$bench" ] || { echo "build first: ninja -C build" >&2; exit 1; }
mkdir -p "$BENCH_DIR"

xfs_img=$BENCH_DIR/xfs.img xfs_mnt=$BENCH_DIR/xfs
cleanup() { mountpoint -q "$xfs_mnt" && umount "$xfs_mnt"; rm -f "$xfs_img"; }
trap cleanup EXIT
mkdir -p "$xfs_mnt"
truncate -s 6G "$xfs_img"
mkfs.xfs -q -f -m reflink=1 "$xfs_img"
mount -o loop "$xfs_img" "$xfs_mnt"

med() { sed -n 's/^median_us=\([0-9]*\).*/\1/p'; }
ratio() { [ "$1" = - ] && { echo -; return; }; python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$1" "$2"; }

median() { printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '| fs | records | iterfs median | seed median | append+fdatasync | journal (design) | seed / iterfs | iterfs / append | journal / append |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
declare -A at100 jat100
growth=""
for fs in ext4 xfs-reflink; do
	dir=$BENCH_DIR/local
	[ "$fs" = xfs-reflink ] && dir=$xfs_mnt
	mkdir -p "$dir"
	declare -A ours_t=() jour_t=() app_t=() seed_v=()
	# Rounds go through every size in turn, so that the other load of a
	# shared disk hits the sizes alike; each figure is the median over
	# the rounds of each round's median.
	for ((round = 0; round < ROUNDS; round++)); do
		for n in $SIZES; do
			src=$BENCH_DIR/history-$n.jsonl
			[ "$CODE_BYTES" = 6200 ] || src=$BENCH_DIR/history-$n-c$CODE_BYTES.jsonl
			[ -s "$src" ] || python3 contrib/gen-history.py "$src" --records "$n" \
				--seed 1 --code-bytes "$CODE_BYTES"
			drop=$BENCH_DIR/drop-$n-c$CODE_BYTES.json
			[ -s "$drop" ] || python3 contrib/bench-drop.py "$src" >"$drop"
			runs=20 seed_runs=5
			[ "$n" -ge 100000 ] && { runs=7; seed_runs=3; }
			[ "$n" -ge 1000000 ] && { seed_runs=1; [ "$fs" = ext4 ] && runs=3; }
			cp "$src" "$dir/ours.jsonl"
			ours_t[$n]+="$("$bench" "$dir/ours.jsonl" "$drop" "$runs" | med) "
			jour_t[$n]+="$("$bench" --journal "$dir/ours.jsonl" "$drop" 20 | med) "
			rm -f "$dir/ours.jsonl" "$dir/ours.jsonl.lock"
			seed_v[$n]=${seed_v[$n]:--}
			if [ "$round" = 0 ] && { [ "$n" -lt 1000000 ] || [ "$fs" = ext4 ]; }; then
				cp "$src" "$dir/seed.jsonl"
				seed_v[$n]=$(python3 contrib/seed_commit.py "$dir/seed.jsonl" "$drop" "$seed_runs" | med)
				rm -f "$dir/seed.jsonl"
			fi
			cp "$src" "$dir/append.jsonl"
			app_t[$n]+="$("$bench" --append "$dir/append.jsonl" "$drop" "$runs" | med) "
			rm -f "$dir/append.jsonl"
		done
	done
	for n in $SIZES; do
		ours=$(median "${ours_t[$n]}") jour=$(median "${jour_t[$n]}")
		app=$(median "${app_t[$n]}") seed=${seed_v[$n]}
		[ "$n" = 100 ] && { at100[$fs]=$ours; jat100[$fs]=$jour; }
		printf '| %s | %s | %s µs | %s µs | %s µs | %s µs | %sx | %sx | %sx |\n' "$fs" "$n" "$ours" "$seed" \
			"$app" "$jour" "$(ratio "$seed" "$ours")" "$(ratio "$ours" "$app")" "$(ratio "$jour" "$app")"
		[ "$n" -ge 100000 ] && [ -n "${at100[$fs]:-}" ] &&
			growth+="$fs: latency at $n records / at 100 = $(ratio "$ours" "${at100[$fs]}")x (journal design: $(ratio "$jour" "${jat100[$fs]}")x; per round: ${ours_t[$n]}µs vs ${ours_t[100]:-}µs)"$'\n'
	done
done
echo
printf '%s' "$growth"
