#!/usr/bin/env python3
"""The tree the contract (../shared/spec/tree.md) promises for a store,
computed independently of the C code, for the mount tests.

    expect.py tree STORE OUT [--ro]   write the expected tree into OUT (new),
                                      with the promised modes and mtimes
    expect.py manifest DIR            one line per entry below DIR:
                                      path type mode size mtime [target]
    expect.py mtime STORE N...        the expected st_mtime of iterations/N,
                                      one line each
    expect.py latest STORE            the highest iteration number, or nothing

Numbers and literals are kept as text (1E-5, NaN and big integers stay as
written), objects keep every member in order, strings are re-encoded the
way json.dumps(s, ensure_ascii=False) does.
"""

import datetime
import hashlib
import json
import math
import os
import re
import stat
import sys


class Raw:
    """A number or literal, kept as its original text."""

    def __init__(self, text):
        self.text = text


class Obj(list):
    """An object: its (key, value) pairs in order, duplicates kept."""

    def get(self, key):
        found = None
        for k, v in self:
            if k == key:
                found = (v,)
        return found


def parse(line):
    return json.loads(line, parse_float=Raw, parse_int=Raw,
                      parse_constant=Raw, object_pairs_hook=Obj)


def pretty(v, ind=0):
    pad = "  " * (ind + 1)
    if isinstance(v, Obj):
        if not v:
            return "{}"
        items = [pad + json.dumps(k, ensure_ascii=False) + ": " +
                 pretty(x, ind + 1) for k, x in v]
        return "{\n" + ",\n".join(items) + "\n" + "  " * ind + "}"
    if isinstance(v, list):
        if not v:
            return "[]"
        items = [pad + pretty(x, ind + 1) for x in v]
        return "[\n" + ",\n".join(items) + "\n" + "  " * ind + "]"
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return json.dumps(v)  # true, false, null


def first(rec, keys):
    """First alias present wins, whatever its type."""
    for k in keys:
        got = rec.get(k)
        if got is not None:
            return got
    return None


def string_field(rec, keys):
    got = first(rec, keys)
    return got[0] if got and isinstance(got[0], str) else None


def iteration(rec):
    got = first(rec, ["iteration", "iteration_num"])
    if not got or not isinstance(got[0], Raw):
        return None
    if not re.fullmatch(r"-?[0-9]+", got[0].text):
        return None
    n = int(got[0].text)
    return n if 0 <= n < 2**63 else None


def error_text(rec):
    got = first(rec, ["error", "execution_result"])
    if not got:
        return None
    if rec.get("error") is None:
        er = got[0]
        if not isinstance(er, Obj):
            return None
        got = er.get("error_message")
        if not got:
            return None
    return got[0] if isinstance(got[0], str) else None


def timestamp(rec):
    ts = string_field(rec, ["timestamp"])
    if ts is None:
        return 0
    try:
        return math.floor(datetime.datetime.fromisoformat(ts).timestamp())
    except ValueError:
        return 0


def success(rec):
    """True, False, or None (unknown): success, then execution_result.success."""
    got = rec.get("success")
    if got is None:
        er = rec.get("execution_result")
        if er is None or not isinstance(er[0], Obj):
            return None
        got = er[0].get("success")
        if got is None:
            return None
    return got[0] if isinstance(got[0], bool) else None


def failed(rec):
    return success(rec) is False or error_text(rec) is not None


def numeric_metrics(rec):
    """name -> value of the numeric members of a record's metrics object,
    the last duplicate winning; NaN is no value."""
    m = rec.get("metrics")
    out = {}
    if m is None or not isinstance(m[0], Obj):
        return out
    for k, v in m[0]:
        out.pop(k, None)
        if isinstance(v, Raw) and v.text not in ("true", "false", "null"):
            x = float(v.text)
            if x == x:
                out[k] = x
    return out


def views(rec):
    """name -> bytes of the files iterations/<n>/ shows for this record."""
    out = {}
    code = string_field(rec, ["code", "strategy_code"])
    if code is not None:
        out["code.py"] = code.encode("utf-8", "surrogatepass")
    m = rec.get("metrics")
    if m is not None and m[0] is not None:
        out["metrics.json"] = (pretty(m[0]) + "\n").encode("utf-8", "surrogatepass")
    fb = string_field(rec, ["feedback", "feedback_used"])
    if fb is not None:
        out["feedback.txt"] = fb.encode("utf-8", "surrogatepass")
    er = error_text(rec)
    if er is not None:
        out["error.txt"] = er.encode("utf-8", "surrogatepass")
    out["record.json"] = (pretty(rec) + "\n").encode("utf-8", "surrogatepass")
    return out


def load(store):
    """iteration -> record, the later line winning."""
    recs = {}
    if not os.path.exists(store):
        return recs
    with open(store, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        try:
            rec = parse(line.decode("utf-8", "surrogateescape"))
        except ValueError:
            continue
        if not isinstance(rec, Obj):
            continue
        n = iteration(rec)
        if n is not None:
            recs[n] = rec
    return recs


def write(path, data, mtime):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o444)
    os.utime(path, (mtime, mtime))


def link(path, target, mtime):
    os.symlink(target, path)
    os.utime(path, (mtime, mtime), follow_symlinks=False)


def tree(store, out, ro):
    recs = load(store)
    smtime = math.floor(os.stat(store).st_mtime) if os.path.exists(store) else 0
    os.mkdir(out)
    its = os.path.join(out, "iterations")
    os.mkdir(its)
    codes = {}
    for n in sorted(recs):
        rec = recs[n]
        t = timestamp(rec)
        d = os.path.join(its, str(n))
        os.mkdir(d)
        for name, data in views(rec).items():
            write(os.path.join(d, name), data, t)
        code = string_field(rec, ["code", "strategy_code"])
        if code is not None:
            h = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
            codes.setdefault(h, []).append((n, t, code))
        os.chmod(d, 0o555)
        os.utime(d, (t, t))
    bh = os.path.join(out, "by-hash")
    os.mkdir(bh)
    for h, members in codes.items():
        d = os.path.join(bh, h)
        os.mkdir(d)
        n0, t0, code = members[0]
        write(os.path.join(d, "code.py"), code.encode("utf-8", "surrogatepass"), t0)
        for n, t, _ in members:
            link(os.path.join(d, str(n)), "../../iterations/%d" % n, t)
        os.chmod(d, 0o555)
        newest = max(t for _, t, _ in members)
        os.utime(d, (newest, newest))
    bm = os.path.join(out, "by-metric")
    os.mkdir(bm)
    ranks = {}
    for n in sorted(recs):
        if success(recs[n]) is False:
            continue
        for k, x in numeric_metrics(recs[n]).items():
            ranks.setdefault(k, []).append((-x, n))
    for k, members in ranks.items():
        if "/" in k or k in (".", "..") or "\0" in k:
            continue
        d = os.path.join(bm, k)
        os.mkdir(d)
        members.sort()
        width = len(str(len(members)))
        for i, (_, n) in enumerate(members):
            link(os.path.join(d, "%0*d" % (width, i + 1)),
                 "../../iterations/%d" % n, timestamp(recs[n]))
    fl = os.path.join(out, "failed")
    os.mkdir(fl)
    for n in sorted(recs):
        if failed(recs[n]):
            link(os.path.join(fl, str(n)), "../iterations/%d" % n,
                 timestamp(recs[n]))
    if recs:
        top = max(recs)
        link(os.path.join(out, "latest"), "iterations/%d" % top,
             timestamp(recs[top]))
    # lost+found/: the files of STORE.lost/ (keep.h's kept names), absent
    # while there are none.
    lost = store + ".lost"
    kept = []
    if os.path.isdir(lost):
        kept = sorted(n for n in os.listdir(lost)
                      if not n.startswith(".") and not n.endswith(".reason")
                      and os.path.isfile(os.path.join(lost, n)))
    if kept:
        lf = os.path.join(out, "lost+found")
        os.mkdir(lf)
        for n in kept:
            src = os.path.join(lost, n)
            with open(src, "rb") as f:
                write(os.path.join(lf, n), f.read(), os.stat(src).st_mtime)
        os.chmod(lf, 0o555)
        os.utime(lf, (smtime, smtime))
    if not ro:
        os.mkdir(os.path.join(out, "incoming"))
        os.chmod(os.path.join(out, "incoming"), 0o755)
        os.utime(os.path.join(out, "incoming"), (smtime, smtime))
    for d in [os.path.join(bm, k) for k in os.listdir(bm)] + [bm, fl]:
        os.chmod(d, 0o555)
        os.utime(d, (smtime, smtime))
    for d in (its, bh, out):
        os.chmod(d, 0o555)
        os.utime(d, (smtime, smtime))


def manifest(top):
    rows = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, top)
            kind = ("d" if stat.S_ISDIR(st.st_mode) else
                    "l" if stat.S_ISLNK(st.st_mode) else
                    "f" if stat.S_ISREG(st.st_mode) else "?")
            size = "-" if kind == "d" else str(st.st_size)
            row = "%s %s %o %s %d" % (rel, kind, stat.S_IMODE(st.st_mode),
                                      size, math.floor(st.st_mtime))
            if kind == "l":
                row += " -> " + os.readlink(p)
            rows.append(row)
    for row in sorted(rows):
        print(row)


def main(argv):
    if len(argv) >= 3 and argv[0] == "tree":
        tree(argv[1], argv[2], "--ro" in argv[3:])
    elif len(argv) == 2 and argv[0] == "manifest":
        manifest(argv[1])
    elif len(argv) >= 3 and argv[0] == "mtime":
        recs = load(argv[1])
        for n in argv[2:]:
            print(timestamp(recs[int(n)]))
    elif len(argv) == 2 and argv[0] == "latest":
        recs = load(argv[1])
        if recs:
            print(max(recs))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
