#!/usr/bin/env python3
"""Print a drop that a store accepts, for the benchmarks.

    bench-drop.py STORE [--code-lines N]

A commit must carry every field every record of the store carries, so the
drop is the store's last record (read from its last line) without the fields
a commit fills in (the iteration number, timestamp, code_hash), with a new
strategy code of N lines (default 120, about 7 KB) under the store's code
key.  Printed compact on one line, UTF-8.
"""
import argparse
import json

NUMBER_KEYS = ("iteration", "iteration_num")
FILLED_IN = NUMBER_KEYS + ("timestamp", "code_hash")


def last_line(path):
    with open(path, "rb") as f:
        f.seek(0, 2)
        end = f.tell()
        back = min(end, 1 << 20)
        f.seek(end - back)
        lines = f.read(back).rstrip(b"\r\n").split(b"\n")
    return lines[-1].decode("utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--code-lines", type=int, default=120)
    args = ap.parse_args()
    rec = json.loads(last_line(args.store))
    code_key = "strategy_code" if "strategy_code" in rec else "code"
    drop = {k: v for k, v in rec.items() if k not in FILLED_IN}
    drop[code_key] = "def strategy(data):\n" + "".join(
        f"    f{i} = data.get('price:收盤價').rolling({i + 5}).mean()\n"
        for i in range(args.code_lines))
    print(json.dumps(drop, ensure_ascii=False))


if __name__ == "__main__":
    main()
