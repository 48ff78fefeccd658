"""The record fields of the contract (tree.md, "The store"): aliases, and
how a record is put into the dialect of a store before it is committed.

One home for the alias table on the Python side; core/record.c is the C one.
"""
import datetime
import errno
import hashlib
import json

# meaning -> keys, first present wins (the contract's table).
NUMBER = ("iteration", "iteration_num")
CODE = ("code", "strategy_code")
FEEDBACK = ("feedback", "feedback_used")
ALIASES = (NUMBER, CODE, FEEDBACK)


class Rejected(OSError):
    """A record the store refuses: errno EINVAL, EEXIST, ... and the reason."""


def first(record, keys):
    """(key, value) of the first alias present, or (None, None)."""
    for k in keys:
        if k in record:
            return k, record[k]
    return None, None


def number_of(record):
    """The record's iteration number, or None (not an int >= 0, or a bool)."""
    _, n = first(record, NUMBER)
    if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
        return n
    return None


def code_of(record):
    _, c = first(record, CODE)
    return c if isinstance(c, str) else None


def feedback_of(record):
    _, f = first(record, FEEDBACK)
    return f if isinstance(f, str) else None


def sha256_hex(code):
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def now_iso():
    """Python's datetime.now().isoformat(), always with microseconds."""
    return datetime.datetime.now().isoformat(timespec="microseconds")


class Dialect:
    """The names a store's records use, read from its highest record.

    keys: meaning tuple -> the key the store uses (absent: the drop's own).
    nested: the store keeps success/error in execution_result.
    hashes: the store's records carry code_hash.
    """

    def __init__(self, sample=None, hashes=False):
        self.keys = {}
        self.nested = False
        self.hashes = hashes
        if sample:
            for meaning in ALIASES:
                k, _ = first(sample, meaning)
                if k:
                    self.keys[meaning] = k
            self.nested = ("success" not in sample and
                           isinstance(sample.get("execution_result"), dict))
            self.hashes = hashes or "code_hash" in sample

    def number_key(self, record):
        if NUMBER in self.keys:
            return self.keys[NUMBER]
        # An empty store takes the drop's dialect (tree.md, "The commit").
        return "iteration_num" if "strategy_code" in record else "iteration"


def normalise(record, dialect, number=None):
    """A copy of `record` in the store's dialect, with `number` (when the
    record has none), a timestamp and, where the store uses it, code_hash.
    The number goes first, timestamp and code_hash last, as the core does.
    Raises Rejected(EINVAL) for conflicting aliases, a bad timestamp or a
    code_hash that does not match the code."""
    if not isinstance(record, dict):
        raise Rejected(errno.EINVAL, "not a JSON object")
    out = dict(record)
    for meaning in ALIASES:
        present = [k for k in meaning if k in out]
        if len(present) > 1 and any(out[k] != out[present[0]] for k in present):
            raise Rejected(errno.EINVAL, "%s and %s disagree" % tuple(present[:2]))
        if present:
            # Rename in place: the member keeps its position.
            target = dialect.keys.get(meaning, present[0])
            value = out[present[0]]
            out = {(target if k == present[0] else k): (value if k == present[0] else v)
                   for k, v in out.items() if k == present[0] or k not in present}
    if number_of(out) is None:
        k, v = first(out, NUMBER)
        if k is not None and v is not None:
            raise Rejected(errno.EINVAL, "%s is not an integer >= 0" % k)
        if k is not None:
            del out[k]
        if number is None:
            raise ValueError("no iteration number to assign")
        out = dict([(dialect.number_key(out), number)] + list(out.items()))
    ts = out.get("timestamp")
    if ts is None:
        out["timestamp"] = now_iso()
    else:
        try:
            datetime.datetime.fromisoformat(ts if isinstance(ts, str) else "")
        except ValueError:
            raise Rejected(errno.EINVAL, "timestamp is not ISO 8601: %r" % (ts,))
    code = code_of(out)
    given = out.get("code_hash")
    if given is not None:
        if code is None or given != sha256_hex(code):
            raise Rejected(errno.EINVAL, "code_hash does not match the code")
    elif dialect.hashes and code is not None:
        out["code_hash"] = sha256_hex(code)
    return out


def compact(record):
    """The one-line form the store keeps (what json.dumps gives compactly)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=True)
