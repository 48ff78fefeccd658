#!/usr/bin/env bats
# The views beside iterations/: lost+found/ (lines another writer's replace
# made vanish, kept in STORE.lost/) and the hidden .iterfs/status.

load helpers

teardown() {
	teardown_tracked
	iterfs_unmount_all
}

# A record line complete for seed's store, numbered N.
record() {
	printf '{"iteration": %d, "code": "lost = %d\\n", "metrics": {"sharpe": 0.9}, "timestamp": "2025-10-12T10:00:00.000001"}\n' "$1" "$1"
}

# Append a record to the store as another process would: the mount sees
# the change and re-reads what lives beside the store.
touch_store() {
	record "$1" >>"$STORE"
	timeout 10 bash -c 'until [ -e "$1" ]; do sleep 0.02; done' - "$MNT/iterations/$1"
}

@test "lost+found is absent while STORE.lost/ holds nothing" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	seed "$STORE"
	iterfs_mount "$STORE"
	[ "$(ls -A "$MNT" | tr '\n' ' ')" = "by-hash by-metric failed incoming iterations latest " ]
	run stat "$MNT/lost+found"
	[ "$status" -ne 0 ]
	mkdir "$STORE.lost"
	touch_store 3
	[ ! -e "$MNT/lost+found" ]
}

@test "lost+found shows the files of STORE.lost/ read-only, and follows them" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	seed "$STORE"
	iterfs_mount "$STORE"
	mkdir "$STORE.lost"
	record 7 >"$STORE.lost/20251012T100000.000000.jsonl"
	{ record 8; record 9; } >"$STORE.lost/20251012T100001.000000.jsonl"
	touch_store 3
	[ "$(ls -A "$MNT" | tr '\n' ' ')" = "by-hash by-metric failed incoming iterations latest lost+found " ]
	[ "$(ls "$MNT/lost+found" | tr '\n' ' ')" = "20251012T100000.000000.jsonl 20251012T100001.000000.jsonl " ]
	cmp "$STORE.lost/20251012T100001.000000.jsonl" "$MNT/lost+found/20251012T100001.000000.jsonl"
	[ "$(stat -c '%a %s' "$MNT/lost+found/20251012T100000.000000.jsonl")" = "444 $(stat -c %s "$STORE.lost/20251012T100000.000000.jsonl")" ]
	[ "$(stat -c %a "$MNT/lost+found")" = 555 ]
	[ "$(stat -c %h "$MNT")" -eq 8 ]
	run touch "$MNT/lost+found/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run rm "$MNT/lost+found/20251012T100000.000000.jsonl"
	[ "$status" -ne 0 ]
	[ -e "$STORE.lost/20251012T100000.000000.jsonl" ]
	# Gone from STORE.lost/, gone from the mount at the next change.
	rm "$STORE.lost/20251012T100000.000000.jsonl"
	touch_store 4
	[ "$(ls "$MNT/lost+found" | tr '\n' ' ')" = "20251012T100001.000000.jsonl " ]
	rm "$STORE.lost/20251012T100001.000000.jsonl"
	touch_store 5
	[ ! -e "$MNT/lost+found" ]
	[ "$(ls -A "$MNT" | tr '\n' ' ')" = "by-hash by-metric failed incoming iterations latest " ]
}

@test "cp of a lost+found file into incoming/ commits its lines again" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	seed "$STORE"
	iterfs_mount "$STORE"
	mkdir "$STORE.lost"
	{ record 8; record 9; } >"$STORE.lost/20251012T100001.000000.jsonl"
	touch_store 3
	cp "$MNT/lost+found/20251012T100001.000000.jsonl" "$MNT/incoming/"
	[ "$(cat "$MNT/iterations/8/code.py")" = "lost = 8" ]
	[ "$(cat "$MNT/iterations/9/code.py")" = "lost = 9" ]
	[ "$(grep -c '"lost = ' "$STORE")" -eq 3 ]
}

@test ".iterfs/status is hidden from listings and describes the mount as JSON" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	seed "$STORE"
	echo 'torn {' >>"$STORE"
	record 3 >>"$STORE"
	iterfs_mount "$STORE" -o max_record=1M
	[[ "$(ls -A "$MNT")" != *iterfs* ]]
	[[ "$(find "$MNT" -name '*iterfs*')" = "" ]]
	[ "$(tar -C "$MNT" -cf - . | tar -tf - | grep -c iterfs)" -eq 0 ]
	[ -d "$MNT/.iterfs" ]
	[ "$(stat -c %s "$MNT/.iterfs/status")" -eq "$(cat "$MNT/.iterfs/status" | wc -c)" ]
	python3 - "$MNT/.iterfs/status" "$STORE" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["store"] == sys.argv[2], s
assert s["records"] == 4 and s["iterations"] == 4, s
assert s["skipped"] == 1 and s["skipped_lines"] == [4], s
assert s["rejected"] == 0 and s["lost"] == 0 and s["commits"] == 0, s
assert s["last_commit"] is None, s
assert "max_record=1048576" in s["mount_options"] and s["mount_options"].startswith("rw"), s
assert s["writable"] is True and s["version"], s
assert s["drops_waiting"] == 0 and s["last_commit_ms"] == 0, s
assert s["validating"] is False, s
PY
}

@test ".iterfs/status parses at every read while drops commit and fail" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	seed "$STORE"
	iterfs_mount "$STORE"
	(
		for i in $(seq 3 42); do
			record "$i" >"$MNT/incoming/d$i.json" || exit 1
		done
		echo 'not json' >"$MNT/incoming/bad.json"
		exit 0
	) 3>&- &
	local writer=$!
	python3 - "$MNT/.iterfs/status" <<'PY'
import json, sys
seen = set()
for i in range(300):
    with open(sys.argv[1]) as f:
        s = json.load(f)
    seen.add(s["records"])
print(len(seen), "different record counts seen")
PY
	wait "$writer" || true
	python3 - "$MNT/.iterfs/status" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["records"] == 43, s
assert s["commits"] >= 1 and s["last_commit"].endswith("Z"), s
assert s["rejected"] == 1, s
assert s["drops_waiting"] == 0 and s["last_commit_ms"] > 0, s
PY
}

@test "by-metric ranks each numeric metric and failed lists failed runs, following commits" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	seed "$STORE"
	iterfs_mount "$STORE"
	[ "$(ls "$MNT/by-metric")" = sharpe ]
	[ "$(ls "$MNT/by-metric/sharpe" | tr '\n' ' ')" = "1 2 3 " ]
	[ "$(readlink "$MNT/by-metric/sharpe/1")" = ../../iterations/2 ]
	[ "$(cat "$MNT/by-metric/sharpe/3/code.py")" = "x = 0" ]
	[ -z "$(ls "$MNT/failed")" ]
	printf '{"code": "y\\n", "metrics": {"sharpe": 0.95, "calmar": 3}, "success": false}\n' >"$MNT/incoming/f.json"
	printf '{"code": "z\\n", "metrics": {"sharpe": 0.5}, "error": "boom"}\n' >"$MNT/incoming/e.json"
	# At once after the commits: a failed run is not ranked, a run with an
	# error still is.
	[ "$(ls "$MNT/by-metric/sharpe" | wc -l)" -eq 4 ]
	[ "$(readlink "$MNT/by-metric/sharpe/1")" = ../../iterations/4 ]
	[ "$(readlink "$MNT/by-metric/sharpe/4")" = ../../iterations/0 ]
	[ ! -e "$MNT/by-metric/calmar" ]
	[ "$(ls "$MNT/failed" | tr '\n' ' ')" = "3 4 " ]
	[ "$(readlink "$MNT/failed/3")" = ../iterations/3 ]
	[ "$(cat "$MNT/failed/4/error.txt")" = boom ]
}

# --- by-metric/ and failed/ against views_model.py ---------------------------

MODEL=$BATS_TEST_DIRNAME/views_model.py

# mount_views ROOT: by-metric/ and failed/ of the mount at ROOT in
# views_model.py tree's format.  Metric
# names come hex-encoded (any byte but NUL and "/" may be in them); rank
# entries in plain `ls` order, which must be rank order; failed/ by number.
mount_views() {
	local root=$1 name hex d names
	while IFS= read -r -d '' name; do
		hex=$(printf '%s' "$name" | od -An -tx1 -v | tr -d ' \n')
		echo "by-metric/$hex/"
		d=$root/by-metric/$name
		names=$(ls -- "$d")
		[ -n "$names" ] || continue
		# One readlink for the whole directory: it prints the targets in
		# the order of its arguments.
		paste <(printf '%s\n' "$names") <(cd "$d" && readlink -- $names) |
			awk -F '\t' -v d="by-metric/$hex/" '{ print d $1 " -> " $2 }'
	done < <(find "$root/by-metric" -mindepth 1 -maxdepth 1 -printf '%f\0' | LC_ALL=C sort -z)
	names=$(ls -- "$root/failed" | sort -n)
	[ -n "$names" ] || return 0
	paste <(printf '%s\n' "$names") <(cd "$root/failed" && readlink -- $names) |
		awk -F '\t' '{ print "failed/" $1 " -> " $2 }'
}

# lookup_views ROOT WANT [BEFORE]: each entry named in WANT or BEFORE (files
# in views_model.py tree's format) looked up by its name alone, no listing
# first (a listing would refresh the kernel's entries): its target, or
# "absent".  Prints the mismatches; fails on any.
lookup_views() {
	python3 - "$@" <<'PY'
import os, sys
root, want = sys.argv[1], sys.argv[2]
def entries(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        name, _, target = line.rstrip("\n").partition(" -> ")
        if target:
            out[name] = target
    return out
exp = entries(want)
names = set(exp)
for before in sys.argv[3:]:
    names |= set(entries(before))
def path(name):
    parts = name.split("/")
    if parts[0] == "by-metric":
        parts[1] = os.fsdecode(bytes.fromhex(parts[1]))
    return os.path.join(root, *parts)
bad = 0
for name in sorted(names):
    try:
        got = os.readlink(path(name))
    except FileNotFoundError:
        got = "absent"
    if got != exp.get(name, "absent"):
        bad += 1
        if bad <= 20:
            print("lookup %s: want %s, got %s" % (name, exp.get(name, "absent"), got))
sys.exit(1 if bad else 0)
PY
}

# views_match ROOT STORE [BEFORE]: the views under ROOT are the model's of
# STORE, looked up by name (lookup_views, also the names of BEFORE) and
# listed (mount_views); on a difference, the first lines of it go to the
# test's output.
views_match() {
	local root=$1 store=$2
	python3 "$MODEL" tree "$store" >"$BATS_TEST_TMPDIR/want"
	lookup_views "$root" "$BATS_TEST_TMPDIR/want" "${@:3}" || return 1
	mount_views "$root" >"$BATS_TEST_TMPDIR/got"
	diff "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got" | head -n 20
	cmp -s "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
}

# real_histories: sets HISTS to the real histories, or skips when the shared
# data is absent (a failure under CI).
real_histories() {
	HISTS=()
	[ -z "$REAL" ] || HISTS=("$REAL"/*.jsonl)
	if [ ! -r "${HISTS[0]:-}" ]; then
		[ -z "${CI:-}" ] || { echo "real histories missing in CI" >&2; return 1; }
		skip "real histories not present"
	fi
}

@test "by-metric and failed of every real history are the model's, each mounted read-only" {
	local h ranked=0 failed=0
	real_histories
	for h in "${HISTS[@]}"; do
		iterfs_mount "$h" -o ro
		echo "$h"
		views_match "$MNT" "$h"
		iterfs_unmount
		ranked=$((ranked + $(grep -c -- ' -> ../../' "$BATS_TEST_TMPDIR/want" || true)))
		failed=$((failed + $(grep -c '^failed/' "$BATS_TEST_TMPDIR/want" || true)))
	done
	# Not a comparison of empty directories only.
	[ "$ranked" -gt 0 ]
	[ "$failed" -gt 0 ]
}

@test "by-metric and failed of a generated 10,000-record history are the model's" {
	STORE=$BATS_TEST_TMPDIR/g.jsonl
	python3 "$MODEL" gen "$STORE" 10000 11 odd
	iterfs_mount "$STORE"
	views_match "$MNT" "$STORE"
	# What the history holds, so that the comparison covers it: ties,
	# NaN, booleans, failed runs, both success aliases, names a directory
	# cannot carry.
	grep -q NaN "$STORE"
	grep -q '"success": false' "$STORE"
	grep -q '"execution_result": {"success": false' "$STORE"
	grep -qE '"(sharpe|return|trades)": (true|false)' "$STORE"
	grep -q '"a/b": ' "$STORE"
	[ "$(grep -c '^by-metric/[0-9a-f]*/$' "$BATS_TEST_TMPDIR/want")" -ge 6 ]
	[ "$(grep -c '^failed/' "$BATS_TEST_TMPDIR/want")" -gt 1000 ]
}

@test "by-metric and failed read numbers, duplicate keys and the aliases as Python does" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	# Overflow to +-Infinity, -0 against 0 and 1e-400 (ties), integers
	# past 2^53, escaped names, a duplicate key whose last value is NaN or
	# a string, a success alias present but null, an error not a string.
	cat >"$STORE" <<'EOF'
{"iteration": 0, "code": "a", "metrics": {"m": 1e400, "n": -0}}
{"iteration": 1, "code": "b", "metrics": {"m": 12345678901234567890, "n": 0}}
{"iteration": 2, "code": "c", "metrics": {"m": 1.0e+2, "a": 1, "\u0061": 2}, "success": null, "execution_result": {"success": false}}
{"iteration": 3, "code": "d", "metrics": {"m": -1E-5, "a": 3, "n": -0.0}, "execution_result": {"success": false, "error_message": null}}
{"iteration": 4, "code": "e", "metrics": {"m": 12345678901234567891, "\u00fc": 1, "ü": 0.5}, "error": null, "execution_result": {"error_message": "x"}}
{"iteration": 5, "code": "f", "metrics": {"m": -1e400, "n": 1e-400}, "success": "false"}
{"iteration": 6, "code": "g", "metrics": {"m": Infinity, "n": -Infinity}, "error": 7, "execution_result": {"error_message": "y"}}
{"iteration": 7, "code": "h", "metrics": {"m": 5, "m": NaN, "n": 2, "n": "x"}}
{"iteration": 8, "code": "i", "metrics": {"m": 100}, "success": true, "execution_result": {"success": false}}
{"iteration": 9, "code": "j", "metrics": {"m": 100.0}, "success": 0}
EOF
	iterfs_mount "$STORE" -o ro
	views_match "$MNT" "$STORE"
	[ "$(ls "$MNT/by-metric/n" | tr '\n' ' ')" = "1 2 3 4 " ]
	[ "$(ls "$MNT/failed")" = 3 ]
}

@test "a rank name that ls does not list does not resolve" {
	STORE=$BATS_TEST_TMPDIR/g.jsonl
	python3 "$MODEL" gen "$STORE" 300 3
	iterfs_mount "$STORE"
	local d=$MNT/by-metric/sharpe n w
	n=$(ls "$d" | wc -l)
	w=${#n}
	[ "$w" -ge 2 ]
	[ -L "$d/$(printf '%0*d' "$w" 1)" ]
	[ -L "$d/$(printf '%0*d' "$w" "$n")" ]
	[ ! -e "$d/$(printf '%0*d' "$w" $((n + 1)))" ]
	[ ! -L "$d/$(printf '%0*d' "$w" 0)" ]
	[ ! -L "$d/1" ]
	[ ! -L "$d/$(printf '%0*d' $((w + 1)) 1)" ]
	[ ! -e "$MNT/by-metric/a" ]
	[ ! -e "$MNT/failed/$(ls "$MNT/iterations" | sort -n | tail -n 1)0" ]
}

# views_follow ROOT STORE BEFORE: polls until the views under ROOT are the
# model's of STORE (views_match; an outside writer's change reaches the mount
# within a second; the bound of 100 polls guards a hang), then asserts it.  The
# model's views must differ from BEFORE (a file of mount_views' output), so
# that the poll cannot pass on an unchanged mount.
views_follow() {
	local root=$1 store=$2 before=$3 i
	python3 "$MODEL" tree "$store" >"$BATS_TEST_TMPDIR/want"
	! cmp -s "$before" "$BATS_TEST_TMPDIR/want" || return 1
	for ((i = 0; i < 100; i++)); do
		if views_match "$root" "$store" "$before" >/dev/null; then
			echo "followed after $i polls"
			return 0
		fi
		sleep 0.05
	done
	views_match "$root" "$store" "$before"
}

# A generated store of 300 records; a drop into it needs code and metrics.
gen_store() {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	python3 "$MODEL" gen "$STORE" 300 5
}

# drop_at_once NAME TEXT: drops TEXT into incoming/ and, at once after its
# close() returned, the views are the model's of the store.  The views are
# read before the drop, so that the kernel holds the old entries and links.
drop_at_once() {
	mount_views "$MNT" >"$BATS_TEST_TMPDIR/before"
	printf '%s\n' "$2" >"$MNT/incoming/$1"
	views_match "$MNT" "$STORE" "$BATS_TEST_TMPDIR/before"
	! cmp -s "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/got" || return 1
}

@test "rankings and failed follow drops into incoming at once" {
	gen_store
	iterfs_mount "$STORE"
	views_match "$MNT" "$STORE"
	# First of sharpe after the Infinity ones, last of return before the
	# -Infinity ones, a new metric.  The names the drops make are looked
	# up first: the kernel must not remember that they were absent.
	[ ! -e "$MNT/by-metric/fresh one" ]
	[ ! -e "$MNT/failed/302" ]
	[ ! -e "$MNT/failed/304" ]
	drop_at_once top.json '{"code": "top\n", "metrics": {"sharpe": 1e300, "return": -1e300, "fresh one": 3}}'
	[ "$(cat "$MNT/by-metric/fresh one/1/code.py")" = top ]
	# A tie with it: the lower iteration stays first (views_match).
	drop_at_once tie.json '{"code": "tie\n", "metrics": {"sharpe": 1e300, "fresh one": 3}}'
	[ "$(readlink "$MNT/by-metric/fresh one/2")" = ../../iterations/301 ]
	# Failed runs, by either success alias: in failed/, not ranked.
	drop_at_once f1.json '{"code": "f\n", "metrics": {"sharpe": 1e301, "fail only": 1}, "success": false}'
	[ -L "$MNT/failed/302" ]
	[ ! -e "$MNT/by-metric/fail only" ]
	drop_at_once f2.json '{"code": "g\n", "metrics": {"trades": 1e302}, "execution_result": {"success": false}}'
	[ -L "$MNT/failed/303" ]
	# An error text: in failed/ and still ranked.
	drop_at_once e.json '{"code": "e\n", "metrics": {"sharpe": 1e299}, "error": "boom", "success": true}'
	[ -L "$MNT/failed/304" ]
	# Two records in one drop; NaN and booleans do not rank.
	drop_at_once two.json '{"code": "n\n", "metrics": {"sharpe": NaN, "only nan": NaN, "flag": true}}
{"code": "m\n", "metrics": {"return": 1e303}}'
	[ ! -e "$MNT/by-metric/only nan" ]
	[ ! -e "$MNT/by-metric/flag" ]
	[ "$(iter_count)" -eq 307 ]
}

@test "rank names widen at once when a drop ranks the tenth run of a metric" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	local i
	for i in $(seq 0 8); do
		printf '{"iteration": %d, "code": "x = %d\\n", "metrics": {"sharpe": %d}}\n' "$i" "$i" "$i"
	done >"$STORE"
	iterfs_mount "$STORE"
	[ "$(ls "$MNT/by-metric/sharpe" | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 " ]
	[ "$(readlink "$MNT/by-metric/sharpe/1")" = ../../iterations/8 ]
	[ ! -e "$MNT/by-metric/sharpe/10" ]
	drop_at_once d.json '{"code": "y\n", "metrics": {"sharpe": 4.5}}'
	[ "$(ls "$MNT/by-metric/sharpe" | tr '\n' ' ')" = "01 02 03 04 05 06 07 08 09 10 " ]
	[ ! -L "$MNT/by-metric/sharpe/1" ]
	[ "$(readlink "$MNT/by-metric/sharpe/05")" = ../../iterations/9 ]
	[ "$(readlink "$MNT/by-metric/sharpe/10")" = ../../iterations/0 ]
}

@test "rankings and failed follow iterfs-commit from outside the mount" {
	gen_store
	iterfs_mount "$STORE"
	mount_views "$MNT" >"$BATS_TEST_TMPDIR/before"
	printf '%s\n' '{"code": "out\n", "metrics": {"sharpe": 1e300, "outside": -2}}' \
		'{"code": "out2\n", "metrics": {"return": 1e300}, "success": false}' >"$BATS_TEST_TMPDIR/d.json"
	"$ITERFS_COMMIT" "$STORE" "$BATS_TEST_TMPDIR/d.json"
	views_follow "$MNT" "$STORE" "$BATS_TEST_TMPDIR/before"
	[ "$(readlink "$MNT/by-metric/outside/1")" = ../../iterations/300 ]
	[ -L "$MNT/failed/301" ]
}

@test "rankings and failed follow a Python temp+os.replace rewrite of the store" {
	gen_store
	iterfs_mount "$STORE"
	mount_views "$MNT" >"$BATS_TEST_TMPDIR/before"
	# The seeds' own save: read all, change, write all to a temp file,
	# os.replace.  Rank 1 of sharpe fails, the last becomes first, a failed
	# run with an error succeeds without it; every number stays.
	python3 - "$STORE" <<'PY'
import json, math, os, sys
path = sys.argv[1]
recs = [json.loads(l) for l in open(path, encoding="utf-8")]
def ok(r):
    s = r.get("success", (r.get("execution_result") or {}).get("success"))
    return s is not False
def sharpe(r):
    m = r.get("metrics")
    v = m.get("sharpe") if isinstance(m, dict) else None
    if ok(r) and isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v):
        return v
    return None
ranked = sorted((r for r in recs if sharpe(r) is not None),
                key=lambda r: (-sharpe(r), r["iteration"]))
first, last = ranked[0], ranked[-1]
first["success"] = False
first.pop("execution_result", None)
last["metrics"]["sharpe"] = 1e308
fixed = next(r for r in recs if isinstance(r.get("error"), str))
del fixed["error"]
fixed["success"] = True
tmp = path + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
os.replace(tmp, path)
PY
	views_follow "$MNT" "$STORE" "$BATS_TEST_TMPDIR/before"
	[ "$(iter_count)" -eq 300 ]
}
