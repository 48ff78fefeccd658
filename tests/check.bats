#!/usr/bin/env bats
# iterfs-check's --json report and its progress line on a terminal.

load helpers

setup() {
	D=$BATS_TEST_TMPDIR
}

@test "--json prints the counts of a clean real history as one JSON object" {
	need_real llm_only_50.jsonl
	run "$ITERFS_CHECK" --json "$HIST"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	python3 - "$output" "$HIST" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r == {"store": sys.argv[2], "records": 50, "iterations": 50, "distinct_codes": 50,
             "skipped_lines": 0, "skipped_line_numbers": [], "skipped_numbered_beyond_max": 0,
             "duplicate_numbers": 0,
             "code_hash_mismatches": 0, "code_hash_mismatch_iterations": [],
             "timestamps_missing": 0, "clean": True}, r
PY
}

@test "--json names skipped lines, duplicates and mismatches and exits 1" {
	printf '%s\n' '{"iteration": 0, "code": "a", "code_hash": "00"}' 'garbage' \
		'{"iteration": 1}' '{"iteration": 1, "timestamp": "2025-01-01T00:00:00"}' >"$D/h.jsonl"
	printf '{"iteration": 2, "code": "torn' >>"$D/h.jsonl"
	run "$ITERFS_CHECK" -j "$D/h.jsonl"
	[ "$status" -eq 1 ]
	python3 - "$output" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["skipped_line_numbers"] == [2, 5], r
assert r["skipped_lines"] == 2 and r["duplicate_numbers"] == 1, r
assert r["code_hash_mismatch_iterations"] == [0] and r["clean"] is False, r
assert r["records"] == 3 and r["iterations"] == 2 and r["timestamps_missing"] == 1, r
PY
	# The text report says the same.
	run "$ITERFS_CHECK" "$D/h.jsonl"
	[ "$status" -eq 1 ]
	[ "${lines[3]}" = "skipped lines: 2 (lines 2, 5)" ]
}

@test "on a terminal a long scan draws a progress bar on stderr, then erases it" {
	command -v script >/dev/null || skip "script missing"
	python3 "$BATS_TEST_DIRNAME/../contrib/gen-history.py" --records 3000 "$D/h.jsonl"
	ITERFS_PROGRESS_AFTER=0 script -qec "$ITERFS_CHECK $D/h.jsonl" /dev/null >"$D/tty"
	# However fast the scan, one that outlasted the delay shows where it ended.
	grep -q 'checking records \[##############################\] 100% 3000/3000' "$D/tty"
	# Erased before the report: the first report line starts clean.
	grep -aq $'\r\033\\[Krecords: 3000' "$D/tty"
}

@test "no progress bar when stdout is not a terminal, nor below the delay" {
	command -v script >/dev/null || skip "script missing"
	python3 "$BATS_TEST_DIRNAME/../contrib/gen-history.py" --records 3000 "$D/h.jsonl"
	ITERFS_PROGRESS_AFTER=0 script -qec "$ITERFS_CHECK $D/h.jsonl >$D/out" /dev/null >"$D/tty"
	[ ! -s "$D/tty" ]
	! grep -q $'\r' "$D/out"
	[ "$(head -1 "$D/out")" = "records: 3000" ]
	# A terminal, but the scan ends long before the delay.
	ITERFS_PROGRESS_AFTER=1000 script -qec "$ITERFS_CHECK $D/h.jsonl" /dev/null >"$D/tty"
	! grep -q 'records \[' "$D/tty"
	! grep -q 'indexing' "$D/tty"
}
