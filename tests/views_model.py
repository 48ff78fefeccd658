#!/usr/bin/env python3
"""The derived views (by-metric, failed) of a store, computed independently
of the C code with Python's json module, for test_views.

    views_model.py show STORE            the views, in test_views' format:
                                         "metric <name hex> <iter>..." per
                                         metric (bytewise by name), then
                                         "failed <iter>..."
    views_model.py gen OUT N SEED        a history of N records with NaN,
                                         ties, missing keys, negative values,
                                         failed runs, both success aliases
    views_model.py append STORE N SEED   append N records, about a third of
                                         them replacing existing numbers
"""

import json
import math
import random
import sys


def shown(path):
    """The shown record of every iteration number (the later line wins)."""
    seen = {}
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            if no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                r = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(r, dict):
                continue
            for k in ("iteration", "iteration_num"):
                if k in r:
                    v = r[k]
                    if (isinstance(v, int) and not isinstance(v, bool)
                            and 0 <= v <= (1 << 42) - 2):
                        seen[v] = r
                    break
    return seen


def first(r, key, nested, want):
    """The contract's alias rule: the first key present wins; a value of the
    wrong type counts as absent."""
    if key in r:
        v = r[key]
        return v if isinstance(v, want) else None
    er = r.get("execution_result")
    if isinstance(er, dict) and nested in er:
        v = er[nested]
        return v if isinstance(v, want) else None
    return None


def show(path):
    recs = shown(path)
    ranks = {}
    failed = []
    for it in sorted(recs):
        r = recs[it]
        ok = first(r, "success", "success", bool)
        err = first(r, "error", "error_message", str)
        if ok is False or err is not None:
            failed.append(it)
        if ok is False:
            continue
        m = r.get("metrics")
        if not isinstance(m, dict):
            continue
        for k, v in m.items():
            if "\0" in k:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and math.isnan(v):
                continue
            ranks.setdefault(k, []).append((float(v), it))
    out = []
    for k in sorted(ranks, key=lambda k: k.encode("utf-8", "surrogatepass")):
        order = sorted(ranks[k], key=lambda t: (-t[0], t[1]))
        out.append("metric " + k.encode("utf-8", "surrogatepass").hex() +
                   "".join(" %d" % it for _, it in order))
    out.append("failed" + "".join(" %d" % it for it in failed))
    sys.stdout.write("\n".join(out) + "\n")


KEYS = ["sharpe", "return", "max_drawdown", "win rate", "\u00fc", "trades"]
TIES = [0.5, 1, -1, 2.25, 0]


def value(rnd):
    c = rnd.random()
    if c < 0.3:
        return rnd.choice(TIES)
    if c < 0.5:
        return round(rnd.uniform(-5, 5), 3)
    if c < 0.6:
        return rnd.randint(-1000, 1000)
    if c < 0.65:
        return float("nan")
    if c < 0.68:
        return rnd.choice([float("inf"), float("-inf")])
    if c < 0.72:
        return rnd.choice([True, False])
    if c < 0.76:
        return None
    if c < 0.8:
        return "n/a"
    return rnd.uniform(-100, 100)


def record(rnd, it):
    members = []
    for k in KEYS:
        if rnd.random() < 0.7:
            members.append((k, value(rnd)))
    if rnd.random() < 0.05 and members:
        # A duplicate key: the last one counts, as in Python.
        members.append((members[0][0], value(rnd)))
    mtext = "{" + ", ".join(json.dumps(k, ensure_ascii=False) + ": " +
                            json.dumps(v) for k, v in members) + "}"
    if rnd.random() < 0.03:
        mtext = rnd.choice(["null", "[1, 2]", "7"])
    c = rnd.random()
    head = '{"iteration": %d, "code": %s, ' % (
        it, json.dumps("x = %d\n" % rnd.randint(0, 50)))
    if c < 0.5:
        tail = '"success": %s' % rnd.choice(["true", "false"])
    elif c < 0.7:
        tail = '"execution_result": {"success": %s, "error_message": %s}' % (
            rnd.choice(["true", "false"]),
            rnd.choice(["null", '"boom"']))
    elif c < 0.8:
        tail = '"error": "Traceback", "success": true'
    elif c < 0.85:
        tail = '"success": "no"'
    else:
        tail = '"feedback": "ok"'
    return head + '"metrics": ' + mtext + ", " + tail + "}\n"


def gen(out, n, seed):
    rnd = random.Random(seed)
    with open(out, "w", encoding="utf-8") as f:
        for it in range(n):
            f.write(record(rnd, it))


def append(path, n, seed):
    rnd = random.Random(seed)
    have = sorted(shown(path))
    top = have[-1] + 1 if have else 0
    with open(path, "a", encoding="utf-8") as f:
        for _ in range(n):
            if have and rnd.random() < 0.33:
                it = rnd.choice(have)
            else:
                it = top
                top += 1
            f.write(record(rnd, it))


def main():
    cmd = sys.argv[1]
    if cmd == "show":
        show(sys.argv[2])
    elif cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "append":
        append(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("views_model.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
