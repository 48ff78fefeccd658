"""What the tests share: temp dirs, real histories, mounts of the built
daemon (ready when iterfs returns, as in tests/helpers.bash; always
unmounted), and a waiting helper that needs no sleeps."""
import os
import select
import shutil
import subprocess
import tempfile
import unittest

BUILD = os.environ.get("ITERFS_BUILD", "")
REAL = os.environ.get("ITERFS_REAL_DATA", "")
ITERFS = os.path.join(BUILD, "fs", "iterfs")
ITERFS_COMMIT = os.path.join(BUILD, "core", "iterfs-commit")
# contrib/, where seed_commit.py lives.
CONTRIB = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL_NAMES = ("llm_only_50.jsonl", "unified_factor_graph.jsonl",
              "json_mode_test.jsonl", "migrated_no_code.jsonl")


def need(cond, why):
    """Skip (a failure under CI, where everything must be present)."""
    if not cond:
        if os.environ.get("CI"):
            raise AssertionError("missing under CI: " + why)
        raise unittest.SkipTest(why)


def real(name):
    path = os.path.join(REAL, name)
    need(REAL and os.path.exists(path), "real history %s not present" % name)
    return path


def wait_exit(pid):
    """Block until process `pid` (not our child) is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], 30)
    finally:
        os.close(fd)


class TempDir(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="iterfs-py.")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def copy_real(self, name):
        dst = self.path(name)
        shutil.copyfile(real(name), dst)
        return dst

    def mount(self, store, *opts):
        """Mount `store` under the temp dir; returns the mount point."""
        need(BUILD and os.access(ITERFS, os.X_OK), "ITERFS_BUILD has no fs/iterfs")
        need(os.path.exists("/dev/fuse"), "no /dev/fuse")
        mnt = tempfile.mkdtemp(prefix="mnt.", dir=self.dir)
        subprocess.run([ITERFS, *opts, store, mnt], check=True,
                       stdin=subprocess.DEVNULL)
        self.assertTrue(os.path.ismount(mnt))
        pid = int(subprocess.run(["pgrep", "-n", "-f", "^%s .*%s$" % (ITERFS, mnt)],
                                 check=True, capture_output=True, text=True).stdout)
        self.addCleanup(self.unmount, mnt, pid)
        return mnt

    def unmount(self, mnt, pid):
        if os.path.ismount(mnt):
            if subprocess.run(["fusermount3", "-u", mnt]).returncode:
                subprocess.run(["fusermount3", "-uz", mnt])
        wait_exit(pid)
