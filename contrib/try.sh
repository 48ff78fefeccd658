#!/usr/bin/env bash
# Try iterfs: on Debian 12, as root, install what is missing, build, mount a
# history and print what to try.
#
# Usage: bash contrib/try.sh [STORE.jsonl]
#   STORE   the history to mount; without it, the bundled sample
#           (200 generated records, contrib/sample.sh)
#   MNT     environment: where to mount (default /tmp/iterfs-try)
#   BUILD   environment: the build directory (default build)
set -euo pipefail
store=${1:+$(realpath -m -- "$1")}
cd "$(dirname "$0")/.."
MNT=${MNT:-/tmp/iterfs-try}
BUILD=${BUILD:-build}

. contrib/deps.sh
iterfs_install_deps

[ -d "$BUILD" ] || meson setup "$BUILD"
ninja -C "$BUILD"

if [ -z "$store" ]; then
	store=$(bash contrib/sample.sh "$BUILD/sample/history.jsonl")
fi

mkdir -p "$MNT"
if mountpoint -q "$MNT"; then
	fusermount3 -u "$MNT"
fi
"$BUILD/fs/iterfs" "$store" "$MNT"

n=$(ls "$MNT/iterations" | wc -l)
first=$(ls "$MNT/by-hash" | sed -n 1p)
a=$(ls "$MNT/iterations" | sort -n | sed -n 1p)
b=$(ls "$MNT/iterations" | sort -n | sed -n 2p)
cat <<TXT

$store is mounted at $MNT ($n iterations).

Browse it:
  ls $MNT
  ls $MNT/iterations | sort -n | tail
  ls -l $MNT/latest/
  cat $MNT/latest/code.py
  cat $MNT/latest/metrics.json
  grep -l 'rolling(' $MNT/iterations/*/code.py | head
  grep -l NaN $MNT/iterations/*/metrics.json | wc -l
  diff $MNT/iterations/${a:-0}/code.py $MNT/iterations/${b:-1}/code.py
  ls -l $MNT/by-hash/${first:-<sha256>}/
  du -sh $MNT; find $MNT -name error.txt | wc -l

Commit a record by writing it into incoming/ (close returns once it is durable):
  echo '{"code": "print(\"hello\")\\n", "metrics": {"sharpe": 1.5}, "feedback": "first try", "success": true}' > $MNT/incoming/mine.json
  readlink $MNT/latest; cat $MNT/latest/code.py
  cp $MNT/latest/record.json /tmp/again.json && cp /tmp/again.json $MNT/incoming/    # an identical re-send adds nothing
  echo 'not json' > /tmp/bad.json; cp /tmp/bad.json $MNT/incoming/    # cp: failed to close: Invalid argument
  cat $MNT/incoming/bad.json.reason; rm $MNT/incoming/bad.json.*
  python3 -c 'with open("$MNT/incoming/p.json", "w") as f: f.write("{\"iteration\": 0, \"code\": \"x\", \"metrics\": {}, \"feedback\": \"\", \"success\": true}")'    # OSError: [Errno 17] File exists

A store whose records carry more refuses the same record and says why:
  python3 $PWD/contrib/gen-history.py /tmp/rich.jsonl --records 20 --dialect iteration_num
  echo '{"code": "print(1)", "metrics": {"sharpe": 1.2}, "feedback": "first try", "success": true}' | $(realpath "$BUILD")/core/iterfs-commit /tmp/rich.jsonl

Every history under a directory in one mount, each at its name:
  mkdir -p /tmp/runs/exp /tmp/iterfs-runs
  python3 $PWD/contrib/gen-history.py /tmp/runs/a.jsonl --records 30 --seed 1
  python3 $PWD/contrib/gen-history.py /tmp/runs/exp/b.jsonl --records 20 --seed 2
  $(realpath "$BUILD")/fs/iterfs /tmp/runs /tmp/iterfs-runs; ls /tmp/iterfs-runs /tmp/iterfs-runs/exp
  diff -r /tmp/iterfs-runs/a/latest/ /tmp/iterfs-runs/exp/b/latest/; fusermount3 -u /tmp/iterfs-runs

Unmount:
  fusermount3 -u $MNT
TXT
