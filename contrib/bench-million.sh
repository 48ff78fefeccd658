#!/usr/bin/env bash
# Million-record benchmark: what a 1,000,000-record history (900 MB, small
# code: gen-history.py --code-bytes 100) costs through the mount, each figure
# as a ratio against a baseline measured in the same run.
#
#   bash contrib/bench-million.sh                 (root: drops the page cache)
#   SECTIONS="ready pass" bash contrib/bench-million.sh
#
# Sections (all by default, in this order):
#   ready  mount ready (the parent of `iterfs` returns) at 1,000,000 records,
#          -o ro and writable, against `wc -l` of the store, page cache warm
#   rss    the daemon's resident memory per record right after mounting, after
#          `ls -l iterations`, after reading every file of 1,000 iterations
#          spread over the history, after the first by-hash/ look
#   ls     `ls -l iterations` at 1,000,000 against the same 1,000,000
#          directories made real on the same disk (empty: `ls -l` does not look
#          inside), first (caches dropped; iterfs just mounted) and second
#   hash   the first by-hash/ look (stat of one by-hash/<sha256>/, which builds
#          the table) against `sha256sum` of every record's code bytes in one
#          file, warm; also the full `ls by-hash`
#   grep   first `grep -c` over every code.py of a 10,000-record history (about
#          7 KB a record) right after mounting, store in the page cache, against
#          the same files on disk, warm (-o ro and writable); and through
#          bench_floor, a FUSE daemon that serves the same shape from memory
#          with no work per request: the round trips' own cost here
#          (build/tests/bench_floor)
#   pass   the warm second pass of the same grep (and `cat` of every
#          record.json) through a writable mount and -o ro, and through
#          writable mounts with -s, -o max_threads=1/2/4 and -o clone_fd,
#          and bench_floor without and with OPEN (grep only), against real
#          files; all mounted at once, median of PASSES rounds
#
# Commit latency at a million records is bench-commit.sh's:
#   SIZES="100 1000000" CODE_BYTES=100 bash contrib/bench-commit.sh
#
# Environment: BENCH_DIR (default /tmp/iterfs-bench: histories, the real
# trees, the code bytes; they are reused across runs: 1,000,000 empty
# directories take about 4 GB on ext4), RECORDS (default 1000000), RUNS
# (rounds of ready, hash and grep, default 5), PASSES (rounds of pass,
# default 5).
#
# Each timed command runs as a whole process; ratios come from the same run,
# and each baseline is timed in the same rounds as what it is compared to.
# On a shared machine single figures move by 10-20 %: run twice when one looks
# off.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/iterfs-bench}
RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-5}
PASSES=${PASSES:-5}
SECTIONS=${SECTIONS:-"ready rss ls hash grep pass"}
ITERFS=$PWD/build/fs/iterfs
FLOOR=$PWD/build/tests/bench_floor
[ -x "$ITERFS" ] && [ -x "$FLOOR" ] || { echo "build first: ninja -C build" >&2; exit 1; }
mkdir -p "$BENCH_DIR"
mnt=$BENCH_DIR/mnt-million
mkdir -p "$mnt"
daemon=
# Every mount of this script is $mnt or $mnt-<something>.
umount_all() {
	local m
	for m in "$mnt" "$mnt"-*; do
		if mountpoint -q "$m"; then fusermount3 -u "$m"; fi
	done
}
cleanup() {
	umount_all
	if [ -n "$daemon" ]; then wait "$daemon" 2>/dev/null; fi
	true
}
trap cleanup EXIT

. contrib/bench-lib.sh
dropcache() { sync; echo 3 >/proc/sys/vm/drop_caches; }
umnt() { fusermount3 -u "$mnt"; }
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

big=$BENCH_DIR/history-$RECORDS-c100.jsonl
if [ ! -s "$big" ]; then
	echo "generating $big ..." >&2
	python3 contrib/gen-history.py "$big.tmp" --records "$RECORDS" --seed 1 --code-bytes 100
	mv "$big.tmp" "$big"
fi
h10k=$BENCH_DIR/history-10000.jsonl
[ -s "$h10k" ] || python3 contrib/gen-history.py "$h10k" --records 10000 --seed 1
mb=$(awk -v s="$(stat -c %s "$big")" 'BEGIN { printf "%.0f", s / 1e6 }')
echo "# $RECORDS records, $mb MB ($big)"

if has ready; then
	cat "$big" >/dev/null
	wc_t=() ro_t=() rw_t=()
	for ((i = 0; i < RUNS; i++)); do
		wc_t+=("$(secs wc -l "$big")")
		ro_t+=("$(secs "$ITERFS" -o ro "$big" "$mnt")"); umnt
		rw_t+=("$(secs "$ITERFS" "$big" "$mnt")"); umnt
	done
	wc_s=$(printf '%s\n' "${wc_t[@]}" | median)
	ro_s=$(printf '%s\n' "${ro_t[@]}" | median)
	rw_s=$(printf '%s\n' "${rw_t[@]}" | median)
	echo
	echo "## (a) mount ready, page cache warm, median of $RUNS rounds"
	echo "| command | seconds | vs wc -l |"
	echo "|---|---:|---:|"
	echo "| wc -l | $wc_s | 1.00 |"
	echo "| iterfs -o ro, until the mount is ready | $ro_s | $(ratio "$ro_s" "$wc_s") |"
	echo "| iterfs (writable), until the mount is ready | $rw_s | $(ratio "$rw_s" "$wc_s") |"
fi

# The digest of the last code in the store: the first by-hash/ look.
last_hash() {
	python3 - "$big" <<'PY'
import hashlib, json, sys
with open(sys.argv[1], "rb") as f:
    f.seek(-(1 << 20), 2)
    lines = f.read().rstrip(b"\n").split(b"\n")[1:]
for line in reversed(lines):
    rec = json.loads(line)
    code = rec.get("strategy_code", rec.get("code"))
    if isinstance(code, str):
        print(hashlib.sha256(code.encode()).hexdigest())
        break
PY
}

if has rss; then
	log=$BENCH_DIR/million-daemon.log
	cat "$big" >/dev/null
	"$ITERFS" -f "$big" "$mnt" 2>"$log" &
	daemon=$!
	while ! mountpoint -q "$mnt"; do sleep 0.05; done
	rss() { awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$daemon/status"; }
	per() { awk -v b="$1" -v r="$RECORDS" 'BEGIN { printf "%.1f", b / r }'; }
	r0=$(rss)
	ls -l "$mnt/iterations" >/dev/null
	r1=$(rss)
	step=$((RECORDS / 1000))
	for ((n = 0; n < RECORDS; n += step)); do
		cat "$mnt/iterations/$n"/* >/dev/null 2>&1 || true
	done
	r2=$(rss)
	stat "$mnt/by-hash/$(last_hash)" >/dev/null
	r3=$(rss)
	umnt
	wait "$daemon" || true
	daemon=
	echo
	echo "## (b) daemon resident memory (VmRSS), writable mount"
	echo "| after | MB | bytes per record |"
	echo "|---|---:|---:|"
	for row in "mounting:$r0" "ls -l iterations:$r1" "reading every file of 1,000 iterations:$r2" \
		"the first by-hash/ look:$r3"; do
		b=${row##*:}
		echo "| ${row%:*} | $(awk -v b="$b" 'BEGIN { printf "%.1f", b / 1e6 }') | $(per "$b") |"
	done
fi

if has ls; then
	real=$BENCH_DIR/real-dirs-$RECORDS
	if [ ! -d "$real/iterations" ]; then
		echo "making $RECORDS directories in $real ..." >&2
		rm -rf "$real"
		python3 - "$real/iterations" "$RECORDS" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root)
for i in range(n):
    os.mkdir(f"{root}/{i}", 0o555)
PY
	fi
	cat "$big" >/dev/null
	mkdir -p "$mnt-ro" "$mnt-rw"
	"$ITERFS" -o ro "$big" "$mnt-ro"
	"$ITERFS" "$big" "$mnt-rw"
	dropcache
	real1=$(secs ls -l "$real/iterations")
	ro1=$(secs ls -l "$mnt-ro/iterations")
	rw1=$(secs ls -l "$mnt-rw/iterations")
	real2=() ro2=() rw2=()
	for ((i = 0; i < 3; i++)); do
		real2+=("$(secs ls -l "$real/iterations")")
		ro2+=("$(secs ls -l "$mnt-ro/iterations")")
		rw2+=("$(secs ls -l "$mnt-rw/iterations")")
	done
	fusermount3 -u "$mnt-ro"
	fusermount3 -u "$mnt-rw"
	real2=$(printf '%s\n' "${real2[@]}" | median)
	ro2=$(printf '%s\n' "${ro2[@]}" | median)
	rw2=$(printf '%s\n' "${rw2[@]}" | median)
	echo
	echo "## (c) ls -l iterations, $RECORDS entries"
	echo "| | first | second (median of 3) | first / real | second / real |"
	echo "|---|---:|---:|---:|---:|"
	echo "| real directories on the same disk (first: caches dropped) | $real1 | $real2 | 1.00 | 1.00 |"
	echo "| iterfs -o ro (first: just mounted) | $ro1 | $ro2 | $(ratio "$ro1" "$real1") | $(ratio "$ro2" "$real2") |"
	echo "| iterfs writable | $rw1 | $rw2 | $(ratio "$rw1" "$real1") | $(ratio "$rw2" "$real2") |"
fi

if has hash; then
	codes=$BENCH_DIR/codes-$RECORDS-c100.bin
	if [ ! -s "$codes" ]; then
		python3 - "$big" "$codes" <<'PY'
import json, sys
with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[2], "wb") as out:
    for line in f:
        rec = json.loads(line)
        code = rec.get("strategy_code", rec.get("code"))
        if isinstance(code, str):
            out.write(code.encode())
PY
	fi
	cmb=$(awk -v s="$(stat -c %s "$codes")" 'BEGIN { printf "%.0f", s / 1e6 }')
	cat "$codes" "$big" >/dev/null
	h=$(last_hash)
	sha=() look=() list=() vlook=()
	for ((i = 0; i < RUNS; i++)); do
		sha+=("$(secs sha256sum "$codes")")
		"$ITERFS" -o ro "$big" "$mnt"
		look+=("$(secs stat "$mnt/by-hash/$h")")
		list+=("$(secs ls "$mnt/by-hash")")
		umnt
		# Once the validation behind the quick mount is done: the
		# build alone.
		"$ITERFS" -o ro "$big" "$mnt"
		until grep -q '"validating":[[:space:]]*false' "$mnt/.iterfs/status"; do sleep 0.05; done
		vlook+=("$(secs stat "$mnt/by-hash/$h")")
		umnt
	done
	sha=$(printf '%s\n' "${sha[@]}" | median)
	look_s=$(printf '%s\n' "${look[@]}" | median)
	list_s=$(printf '%s\n' "${list[@]}" | median)
	vlook_s=$(printf '%s\n' "${vlook[@]}" | median)
	echo
	echo "## (d) first by-hash/ look, page cache warm, median of $RUNS rounds"
	echo "| command | seconds | vs sha256sum |"
	echo "|---|---:|---:|"
	echo "| sha256sum of every record's code bytes ($cmb MB in one file) | $sha | 1.00 |"
	echo "| stat by-hash/<sha256>/ just after mounting (builds the table while the validation runs) | $look_s | $(ratio "$look_s" "$sha") |"
	echo "| stat by-hash/<sha256>/ once the validation is done (builds the table) | $vlook_s | $(ratio "$vlook_s" "$sha") |"
	echo "| then ls by-hash (every distinct code) | $list_s | $(ratio "$list_s" "$sha") |"
fi

# The 10,000-record tree as real files on the same disk.
real10k=$BENCH_DIR/real-10000
if { has grep || has pass; } && [ ! -d "$real10k/iterations" ]; then
	"$ITERFS" -o ro "$h10k" "$mnt"
	rm -rf "$real10k"
	mkdir -p "$real10k"
	cp -r "$mnt/iterations" "$real10k/"
	umnt
fi
# bench_floor serves as many code.py files as the tree has, of their mean
# size, one in each of as many directories.  floor_mount mounts it at
# $mnt-floor0, or with --open at $mnt-floor1 (the number of arguments).
floor_mount() {
	"$FLOOR" "$@" "$nfiles" "$fsize" "$mnt-floor$#" 3>&- &
	while ! mountpoint -q "$mnt-floor$#"; do sleep 0.05; done
}
if has grep || has pass; then
	nfiles=$(find "$real10k/iterations" -name code.py | wc -l)
	fsize=$(find "$real10k/iterations" -name code.py -printf '%s\n' |
		awk '{ s += $1 } END { printf "%d", s / NR }')
	mkdir -p "$mnt-floor0" "$mnt-floor1"
fi
grep_all() { (cd "$1" && grep -c strategy iterations/*/code.py); }
cat_all() { (cd "$1" && cat iterations/*/record.json); }

if has grep; then
	grep_all "$real10k" >/dev/null
	cat "$h10k" >/dev/null
	real=() ro=() rw=() fl=()
	for ((i = 0; i < RUNS; i++)); do
		real+=("$(secs grep_all "$real10k")")
		"$ITERFS" -o ro "$h10k" "$mnt"
		ro+=("$(secs grep_all "$mnt")")
		umnt
		"$ITERFS" "$h10k" "$mnt"
		rw+=("$(secs grep_all "$mnt")")
		umnt
		floor_mount
		fl+=("$(secs grep_all "$mnt-floor0")")
		fusermount3 -u "$mnt-floor0"
	done
	real=$(printf '%s\n' "${real[@]}" | median)
	ro_s=$(printf '%s\n' "${ro[@]}" | median)
	rw_s=$(printf '%s\n' "${rw[@]}" | median)
	fl_s=$(printf '%s\n' "${fl[@]}" | median)
	echo
	echo "## (e) first grep -c over every code.py, 10,000 records, store in the page cache, median of $RUNS rounds"
	echo "| | seconds | vs real files |"
	echo "|---|---:|---:|"
	echo "| real files on the same disk, warm | $real | 1.00 |"
	echo "| iterfs -o ro, first pass after mounting | $ro_s | $(ratio "$ro_s" "$real") |"
	echo "| iterfs writable, first pass after mounting | $rw_s | $(ratio "$rw_s" "$real") |"
	echo "| bench_floor ($nfiles files of $fsize bytes from memory, no work per request), first pass | $fl_s | $(ratio "$fl_s" "$real") |"
fi

if has pass; then
	# Every variant is mounted at once (idle daemons cost nothing) and
	# each round times them one after the other, so that the load of a
	# shared machine hits them alike.
	variants=("-o ro" "" "-s" "-o max_threads=1" "-o max_threads=2" "-o max_threads=4" "-o clone_fd")
	dirs=("$real10k")
	for ((v = 0; v < ${#variants[@]}; v++)); do
		mkdir -p "$mnt-$v"
		# shellcheck disable=SC2086
		"$ITERFS" ${variants[v]} "$h10k" "$mnt-$v"
		dirs+=("$mnt-$v")
	done
	# The floors have code.py files only: grep, no cat.
	floor_mount
	floor_mount --open
	dirs+=("$mnt-floor0" "$mnt-floor1")
	declare -A tg tc
	for d in "${dirs[@]}"; do
		grep_all "$d" >/dev/null
		[[ $d == "$mnt-floor"* ]] || cat_all "$d" >/dev/null
		tg[$d]= tc[$d]=
	done
	for ((i = 0; i < PASSES; i++)); do
		for d in "${dirs[@]}"; do
			tg[$d]+="$(secs grep_all "$d") "
			[[ $d == "$mnt-floor"* ]] || tc[$d]+="$(secs cat_all "$d") "
		done
	done
	umount_all
	med() { printf '%s\n' $1 | median; }
	rg=$(med "${tg[$real10k]}")
	rc=$(med "${tc[$real10k]}")
	echo
	echo "## (f) warm second pass, 10,000 records, median of $PASSES rounds"
	echo "| mount | grep -c code.py | vs real | cat record.json | vs real |"
	echo "|---|---:|---:|---:|---:|"
	echo "| real files | $rg | 1.00 | $rc | 1.00 |"
	for ((v = 0; v < ${#variants[@]}; v++)); do
		g=$(med "${tg[$mnt-$v]}")
		c=$(med "${tc[$mnt-$v]}")
		label="iterfs ${variants[v]}"
		[ "${variants[v]}" = "-o ro" ] || label="iterfs writable ${variants[v]}"
		echo "| $label | $g | $(ratio "$g" "$rg") | $c | $(ratio "$c" "$rc") |"
	done
	g=$(med "${tg[$mnt-floor0]}")
	echo "| bench_floor (no open, as -o ro) | $g | $(ratio "$g" "$rg") | | |"
	g=$(med "${tg[$mnt-floor1]}")
	echo "| bench_floor --open (OPEN and RELEASE, as writable) | $g | $(ratio "$g" "$rg") | | |"
fi
