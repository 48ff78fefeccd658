"""An iterfs mount: reads through the tree, commits through incoming/.

A commit writes the record to a unique plain name in incoming/ and closes
it: close() returns only once the record is durable in the store, and fails
with the commit's errno (EINVAL, EEXIST, EFBIG, ENOSPC, EIO, ETIMEDOUT).
The rejected drop stays as incoming/<name>.rejected beside
incoming/<name>.reason, whose text becomes the OSError's message.
"""
import errno
import json
import os
import uuid

from . import dialect as dl


def is_mount(path):
    """A directory with the tree's iterations/ (a mount, or one history's
    subtree of a directory mount)."""
    return os.path.isdir(os.path.join(path, "iterations"))


def highest(root):
    """The number `latest` points at, -1 while the history is empty."""
    try:
        target = os.readlink(os.path.join(root, "latest"))
    except FileNotFoundError:
        return -1
    return int(os.path.basename(target))


def numbers(root):
    return sorted(int(n) for n in os.listdir(os.path.join(root, "iterations")))


def get(root, n):
    """The whole record of iteration n (KeyError when there is none)."""
    try:
        with open(os.path.join(root, "iterations", str(n), "record.json"), "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise KeyError(n) from None


def dialect(root):
    """The store's dialect, from its highest record."""
    n = highest(root)
    return dl.Dialect(get(root, n) if n >= 0 else None)


def _reason(incoming, name):
    try:
        with open(os.path.join(incoming, name + ".reason"), encoding="utf-8",
                  errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def commit(root, record):
    """Commit one record through incoming/.  Returns its iteration number
    (read back from the tree when the mount assigned it), or None if another
    writer replaced it before it could be read back.  Raises OSError with the
    commit's errno and the .reason text."""
    incoming = os.path.join(root, "incoming")
    name = "%d-%s.json" % (os.getpid(), uuid.uuid4().hex)
    data = (dl.compact(record) + "\n").encode("utf-8")
    before = highest(root)
    fd = os.open(os.path.join(incoming, name),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        os.close(fd)
        raise _rejected(e, incoming, name) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.close(fd)
    except OSError as e:
        raise _rejected(e, incoming, name) from None
    n = dl.number_of(record)
    return n if n is not None else _find(root, record, before)


def _rejected(e, incoming, name):
    why = _reason(incoming, name) or os.strerror(e.errno)
    return dl.Rejected(e.errno, why, os.path.join(incoming, name))


def _find(root, record, before):
    """The number the mount gave `record`: the first iteration above the
    highest seen before the commit whose fields are the record's."""
    for n in range(before + 1, highest(root) + 1):
        try:
            got = get(root, n)
        except KeyError:
            continue
        if all(got.get(k) == v for k, v in record.items()
               if k not in dl.NUMBER and k != "timestamp"):
            return n
    return None
