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
