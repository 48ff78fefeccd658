#!/usr/bin/env bash
# Write the bundled sample history: 200 records in the simple dialect
# (iteration, code, metrics, feedback, timestamp, success, and an error where
# a run failed; strategy code with non-ASCII text, metrics with NaN now and
# then, repeated code for by-hash), so that the README's example drops are
# complete for it; generated
# by contrib/gen-history.py with a fixed seed, so every run gives the same
# bytes.  An existing file is kept (it may hold records you committed).
#
# Usage: bash contrib/sample.sh [OUT]     (default: build/sample/history.jsonl)
# Prints the path of the history.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../build/sample/history.jsonl}
if [ ! -e "$out" ]; then
	mkdir -p "$(dirname "$out")"
	python3 "$here/gen-history.py" "$out.tmp" --records 200 \
		--dialect iteration --seed 42
	mv "$out.tmp" "$out"
fi
realpath "$out"
