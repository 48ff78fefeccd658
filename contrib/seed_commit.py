#!/usr/bin/env python3
"""The seed algorithm the commit benchmark compares against.

What the loop did before iterfs: read every line with json.loads, write all
records plus the new one with json.dumps to a temp file, os.replace.  No fsync.

    seed_commit.py STORE DROP COUNT   -> prints "median_us=N p90_us=N"
"""
import json
import os
import sys
import time


def commit(store, record):
    records = []
    with open(store, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    key = "iteration_num" if records and "iteration_num" in records[-1] else "iteration"
    highest = max((r.get(key, -1) for r in records), default=-1)
    new = {key: highest + 1, **record}
    records.append(new)
    tmp = store + ".seed-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, store)


def main():
    store, drop, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(drop, encoding="utf-8") as f:
        record = json.load(f)
    lat = []
    for _ in range(count):
        t0 = time.monotonic()
        commit(store, record)
        lat.append((time.monotonic() - t0) * 1e6)
    lat.sort()
    print(f"median_us={lat[len(lat) // 2]:.0f} p90_us={lat[min(len(lat) - 1, len(lat) * 9 // 10)]:.0f}")


if __name__ == "__main__":
    main()
