"""A plain store file: reads that skip what the core skips, and commits
with the protocol of iterfs-commit (core/writer.c):

    flock(STORE.lock)  ->  temp file in the store's directory (a reflink or
    copy of the store, then the new line)  ->  fsync  ->  rename over the
    store  ->  fsync of the directory  ->  unlock

so that iterfs mounts, iterfs-commit and every other client of the lock
never lose or duplicate a record.  A commit does not json.loads every line:
a line's number is read by a pattern where the number is its first member
(as every writer of these histories puts it), and only the few other lines,
and the highest records for the dialect, are decoded.
"""
import contextlib
import errno
import fcntl
import json
import os
import re
import uuid

from . import dialect as dl

_FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int)
# How many of the highest records decide whether code_hash is in use.
_PROBE = 16
_FIRST_NUMBER = re.compile(rb'\s*\{\s*"(?:iteration|iteration_num)"\s*:\s*(\d+)\s*[,}]')


def lock_path(store):
    return os.fspath(store) + ".lock"


@contextlib.contextmanager
def store_lock(store, shared=False):
    """Hold flock(2) on STORE.lock, the lock every iterfs writer takes.

    Wrap any other writer of the store in it (the recipe for loops that keep
    their own writer class), and nothing is lost between it and iterfs."""
    fd = os.open(lock_path(store), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _lines(data):
    """(line number from 1, bytes without LF/CR) of every line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for i, line in enumerate(data.split(b"\n"), 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        yield i, line


def decode(line):
    """The record on one line, or None when the core would skip it."""
    try:
        r = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return r if isinstance(r, dict) else None


def read(store):
    """(records by number, later line winning; skipped line numbers).

    Skipped lines (torn tails, garbage, objects without a number) are only
    counted: nothing here ever rewrites or drops them."""
    records, skipped = {}, []
    try:
        with open(store, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return records, skipped
    for no, line in _lines(data):
        if not line.strip():
            continue
        r = decode(line)
        n = dl.number_of(r) if r is not None else None
        if n is None:
            skipped.append(no)
        else:
            records[n] = r
    return records, skipped


def _index(data):
    """{number: [line bytes, in file order]} of the lines that may be
    records, decoding only lines whose number is not their first member."""
    index = {}
    for _, line in _lines(data):
        m = _FIRST_NUMBER.match(line)
        if m:
            # A torn line may start like a record: _record settles it.
            index.setdefault(int(m.group(1)), []).append(line)
            continue
        if not line.strip():
            continue
        r = decode(line)
        n = dl.number_of(r) if r is not None else None
        if n is not None:
            index.setdefault(n, []).append(line)
    return index


def _record(index, n):
    """(line, record) shown for number n: its last line that decodes, or
    (None, None)."""
    for line in reversed(index.get(n, ())):
        r = decode(line)
        if r is not None:
            return line, r
    return None, None


def _highest(index):
    """The highest number that has a record."""
    for n in sorted(index, reverse=True):
        if _record(index, n)[1] is not None:
            return n
    return -1


def _dialect(index):
    """The store's dialect, from its highest records."""
    sample, hashes = None, False
    for n in sorted(index, reverse=True)[:_PROBE]:
        r = _record(index, n)[1]
        if r is None:
            continue
        if sample is None:
            sample = r
        hashes = hashes or "code_hash" in r
    return dl.Dialect(sample, hashes)


def _read_index(store):
    try:
        with open(store, "rb") as f:
            return _index(f.read())
    except FileNotFoundError:
        return {}


def highest(store):
    """The highest iteration number in the store, -1 when it has none."""
    return _highest(_read_index(store))


def last(store):
    """The record with the highest number, or None."""
    index = _read_index(store)
    n = _highest(index)
    return None if n < 0 else _record(index, n)[1]


def dialect(store):
    return _dialect(_read_index(store))


def _copy(src_fd, dst_fd, size):
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        return
    except OSError:
        pass
    done = 0
    while done < size:
        n = os.copy_file_range(src_fd, dst_fd, size - done, done, done)
        if n == 0:
            raise OSError(errno.EIO, "store shrank while copying")
        done += n


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(store, record, number=None):
    """Commit one record into the store file; returns its iteration number.

    `number` is used only when the record carries none; without either,
    highest + 1 is assigned.  Raises dl.Rejected (an OSError) with EINVAL or
    EEXIST, or OSError from the disk; the store is then unchanged.  A
    byte-identical re-send is a no-op that returns the number."""
    store = os.fspath(store)
    with store_lock(store):
        while True:
            n, done = _commit_once(store, record, number)
            if done:
                return n


def _identity(fd_or_path):
    try:
        st = os.stat(fd_or_path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _commit_once(store, record, number):
    """One attempt under the lock: (number, True), or (None, False) when a
    writer that ignores the lock replaced the store meanwhile (its records
    must not be undone: start over from the new file)."""
    directory = os.path.dirname(os.path.abspath(store))
    try:
        src = os.open(store, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        src = None
    try:
        data = b""
        mode = 0o644
        if src is not None:
            mode = os.fstat(src).st_mode & 0o7777
            chunks = []
            while True:
                b = os.read(src, 1 << 20)
                if not b:
                    break
                chunks.append(b)
            data = b"".join(chunks)
        index = _index(data)
        out = dl.normalise(record, _dialect(index),
                           _highest(index) + 1 if number is None else number)
        n = dl.number_of(out)
        line = dl.compact(out).encode("utf-8")
        taken = _record(index, n)[0]
        if taken is not None:
            if taken == line:
                return n, True
            raise dl.Rejected(errno.EEXIST,
                              "iteration %d is taken by a different record" % n)
        tmp = os.path.join(directory, ".%s.iterfs-tmp.%d.%s" % (
            os.path.basename(store), os.getpid(), uuid.uuid4().hex[:8]))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            if data:
                _copy(src, fd, len(data))
            tail = (b"\n" if data and not data.endswith(b"\n") else b"") + line + b"\n"
            view = memoryview(tail)
            off = len(data)
            while view:
                w = os.pwrite(fd, view, off)
                view, off = view[w:], off + w
            os.fchmod(fd, mode)
            os.fsync(fd)
            os.close(fd)
            fd = None
            if _identity(store) != (None if src is None else _identity(src)):
                os.unlink(tmp)
                return None, False
            os.rename(tmp, store)
        except BaseException:
            if fd is not None:
                os.close(fd)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(directory)
        return n, True
    finally:
        if src is not None:
            os.close(src)


