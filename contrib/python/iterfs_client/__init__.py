"""iterfs_client: the history of a strategy loop, through an iterfs mount or
straight in its JSONL store file.  Standard library only, Python 3.9+.

    import sys; sys.path.insert(0, "contrib/python")   # no pip needed
    from iterfs_client import (save_iteration_result, load_previous_feedback,
                               get_last_iteration_number, History)

The seeds' three functions work on HISTORY_FILE (from $ITERFS_HISTORY, else
"iteration_history.jsonl"); `History(path)` on any path.  `path` is either

- a mount point (or one history's subtree of a directory mount): records
  are committed by writing them into incoming/ and read from the tree
  (latest, iterations/<n>/record.json); or
- a store file: records are committed with the protocol of iterfs-commit
  (flock on STORE.lock, temp file beside the store, fsync, rename, fsync of
  the directory) and read by skipping torn and garbage lines the way the
  core does, never dropping them.

Either way numbers are highest + 1, records are written in the store's
dialect (iteration/iteration_num, code/strategy_code, feedback/feedback_used,
success and error at the top or in execution_result), with a timestamp
(datetime.now().isoformat()) and, where the store's records carry one, the
code's sha256 as code_hash.  A rejected record raises OSError with the errno
(EINVAL, EEXIST, EFBIG, ENOSPC, EIO, ETIMEDOUT) and the reason as message.

Loops that keep their own writer class take the same lock around its save:

    with store_lock(path_of_the_store):
        my_history.save(record)
"""
import os

from . import dialect as _dl
from . import mount as _mount
from . import store as _store
from .dialect import Rejected
from .store import store_lock

__all__ = ["History", "Rejected", "store_lock", "HISTORY_FILE",
           "save_iteration_result", "load_previous_feedback",
           "get_last_iteration_number"]

HISTORY_FILE = os.environ.get("ITERFS_HISTORY", "iteration_history.jsonl")


class History:
    """One history: a mount point or a store file (see the module's doc)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.mounted = _mount.is_mount(self.path)
        if not self.mounted and os.path.isdir(self.path):
            raise ValueError("%s: a directory but not an iterfs mount" % self.path)
        # Line numbers of the lines the last read of a store file skipped.
        self.skipped = []

    def __repr__(self):
        return "History(%r)" % self.path

    def _records(self):
        records, self.skipped = _store.read(self.path)
        return records

    def save(self, record):
        """Commit one record (a dict); returns its iteration number (None
        only when a mount assigned it and another writer replaced it before
        it was read back).  A record without a number gets highest + 1."""
        if self.mounted:
            d = _mount.dialect(self.path)
            return _mount.commit(self.path, self._complete(record, d))
        return _store.commit(self.path, record)

    @staticmethod
    def _complete(record, d):
        """What the client fills in before a drop: dialect, timestamp and
        code_hash; the number is left to the mount (highest + 1 under its
        lock), unless the record has one."""
        n = _dl.number_of(record) if isinstance(record, dict) else None
        out = _dl.normalise(record, d, 0 if n is None else n)
        if n is None:
            del out[_dl.first(out, _dl.NUMBER)[0]]
        return out

    def get(self, n):
        """The record of iteration n; KeyError when there is none."""
        if self.mounted:
            return _mount.get(self.path, n)
        return self._records()[n]

    def iter_records(self):
        """Every record, by ascending iteration number (the later line of a
        number wins, as in the tree)."""
        if self.mounted:
            for n in _mount.numbers(self.path):
                try:
                    yield _mount.get(self.path, n)
                except KeyError:
                    continue
            return
        records = self._records()
        for n in sorted(records):
            yield records[n]

    def last(self):
        """The record with the highest number, or None while empty."""
        if self.mounted:
            n = self.highest()
            return None if n < 0 else self.get(n)
        return _store.last(self.path)

    def highest(self):
        """The highest iteration number, -1 while empty."""
        if self.mounted:
            return _mount.highest(self.path)
        return _store.highest(self.path)

    def dialect(self):
        """The names this history's records use (see dialect.Dialect)."""
        if self.mounted:
            return _mount.dialect(self.path)
        return _store.dialect(self.path)

    def save_iteration_result(self, iteration, code, metrics, feedback,
                              used_fallback=False, success=True, error=None):
        """The seeds' save, in this history's dialect; returns the number."""
        d = self.dialect()
        record = {"iteration": iteration, "code": code, "metrics": metrics,
                  "feedback": feedback, "used_fallback": used_fallback}
        if d.nested:
            record["execution_result"] = {"success": success, "error_message": error}
        else:
            record["success"] = success
            record["error"] = error
        record["timestamp"] = _dl.now_iso()
        if d.hashes and isinstance(code, str):
            record["code_hash"] = _dl.sha256_hex(code)
        return self.save(_dl.normalise(record, d))

    def load_previous_feedback(self):
        """The feedback of the highest iteration, "" when there is none."""
        last = self.last()
        return (_dl.feedback_of(last) or "") if last else ""


def _default():
    return History(HISTORY_FILE)


def save_iteration_result(iteration, code, metrics, feedback,
                          used_fallback=False, success=True, error=None):
    """Save one iteration into HISTORY_FILE (the seeds' API)."""
    _default().save_iteration_result(iteration, code, metrics, feedback,
                                     used_fallback, success, error)


def load_previous_feedback():
    """The feedback of the last iteration in HISTORY_FILE, "" if none."""
    return _default().load_previous_feedback()


def get_last_iteration_number():
    """The highest iteration number in HISTORY_FILE, -1 if none; the next
    iteration is this + 1."""
    return _default().highest()
