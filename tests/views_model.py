#!/usr/bin/env python3
"""The derived views (by-metric, failed) of a store, computed independently
of the C code with Python's json module, for test_views (the API) and
views.bats (the mount).

    views_model.py show STORE            the views, in test_views' format:
                                         "metric <name hex> <iter>..." per
                                         metric (bytewise by name), then
                                         "failed <iter>..."
    views_model.py tree STORE            the views as the mount shows them,
                                         one line per entry, in views.bats'
                                         format (see tree())
    views_model.py gen OUT N SEED [odd]  a history of N records with NaN,
                                         ties, missing keys, negative values,
                                         failed runs, both success aliases;
                                         with "odd", also metric names no
                                         directory can have ("a/b", "..",
                                         "", 256 bytes) and awkward ones
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


def views(path):
    """{metric: [iteration, ...] in rank order}, [failed iteration, ...]."""
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
    return ({k: [it for _, it in sorted(v, key=lambda t: (-t[0], t[1]))]
             for k, v in ranks.items()}, failed)


def utf8(k):
    return k.encode("utf-8", "surrogatepass")


def show(path):
    ranks, failed = views(path)
    out = []
    for k in sorted(ranks, key=utf8):
        out.append("metric " + utf8(k).hex() +
                   "".join(" %d" % it for it in ranks[k]))
    out.append("failed" + "".join(" %d" % it for it in failed))
    sys.stdout.write("\n".join(out) + "\n")


def dir_name_ok(k):
    """A metric name a directory entry can carry (NAME_MAX is 255 bytes)."""
    b = utf8(k)
    return b not in (b"", b".", b"..") and b"/" not in b and len(b) <= 255


def tree(path):
    """The mount's by-metric/ and failed/ as views.bats' mount_views prints
    them: "by-metric/<name hex>/" for each metric directory (bytewise by
    name), then "by-metric/<name hex>/<rank> -> ../../iterations/<n>" for
    each rank from 1, zero-padded to the width of the largest; then
    "failed/<n> -> ../iterations/<n>" by number."""
    ranks, failed = views(path)
    out = []
    for k in sorted((k for k in ranks if dir_name_ok(k)), key=utf8):
        d = "by-metric/" + utf8(k).hex() + "/"
        out.append(d)
        w = len(str(len(ranks[k])))
        out.extend("%s%0*d -> ../../iterations/%d" % (d, w, rank, it)
                   for rank, it in enumerate(ranks[k], 1))
    out.extend("failed/%d -> ../iterations/%d" % (it, it) for it in failed)
    sys.stdout.write("".join(line + "\n" for line in out))


KEYS = ["sharpe", "return", "max_drawdown", "win rate", "\u00fc", "trades"]
# Names a directory cannot have, or only just can, and names shells and
# ls(1) trip on: not for test_views (the API hands out every name).
ODD_KEYS = ["a/b", ".", "..", "", "y" * 255, "z" * 256, "\u00fc" * 128,
            "-n", "tab\there", "new\nline", "nul\u0000key", "*", "\\"]
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


def record(rnd, it, keys=KEYS):
    members = []
    for k in keys:
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


def gen(out, n, seed, odd=False):
    rnd = random.Random(seed)
    keys = KEYS + ODD_KEYS if odd else KEYS
    with open(out, "w", encoding="utf-8") as f:
        for it in range(n):
            f.write(record(rnd, it, keys))


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
    elif cmd == "tree":
        tree(sys.argv[2])
    elif cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
            sys.argv[5:] == ["odd"])
    elif cmd == "append":
        append(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("views_model.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
