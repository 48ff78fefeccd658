"""The recipe for loops that keep their own writer class: its save under
store_lock(STORE) races with drops through a mount and loses nothing.

The loop's writer is contrib/seed_commit.py's commit (read every line,
write all to a temp file, os.replace, no lock of its own): the writer of
the drop-box issue.
"""
import json
import os
import subprocess
import sys

from support import CONTRIB, TempDir

from iterfs_client import History

SEED_WRITER = r"""
import sys
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[3])
import seed_commit
from iterfs_client import store_lock

class LockedSeedHistory:
    '''The recipe: the loop's own save, wrapped in the store's lock.'''
    def __init__(self, path):
        self.path = path
    def save(self, record):
        with store_lock(self.path):
            seed_commit.commit(self.path, record)

h = LockedSeedHistory(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[4])):
    h.save({"code": "seed-%d" % i})
"""

DROPPER = r"""
import sys
sys.path.insert(0, sys.argv[2])
from iterfs_client import History
h = History(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[3])):
    h.save({"code": "drop-%d" % i})
"""


class Recipe(TempDir):
    def test_a_locked_seed_writer_racing_mount_drops_loses_nothing(self):
        """the seeds' writer under store_lock racing drops through a mount loses nothing"""
        store = self.path("h.jsonl")
        with open(store, "w") as f:
            f.write('{"iteration": 0, "code": "first"}\n')
        mnt = self.mount(store)
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        n = 40
        seed = subprocess.Popen([sys.executable, "-c", SEED_WRITER, store, pkg,
                                 CONTRIB, str(n)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        drop = subprocess.Popen([sys.executable, "-c", DROPPER, mnt, pkg, str(n)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # Both started and ready: let them go at once.
        self.assertEqual(seed.stdout.readline(), "ready\n")
        self.assertEqual(drop.stdout.readline(), "ready\n")
        seed.stdin.write("go\n")
        drop.stdin.write("go\n")
        seed.stdin.close()
        drop.stdin.close()
        self.assertEqual(seed.wait(), 0)
        self.assertEqual(drop.wait(), 0)

        with open(store, encoding="utf-8") as f:
            recs = [json.loads(line) for line in f]
        codes = sorted(r["code"] for r in recs)
        want = sorted(["first"] + ["seed-%d" % i for i in range(n)] +
                      ["drop-%d" % i for i in range(n)])
        self.assertEqual(codes, want)
        self.assertEqual(sorted(r["iteration"] for r in recs), list(range(2 * n + 1)))
        self.assertFalse(os.path.exists(store + ".lost"))
        self.assertFalse(os.path.exists(os.path.join(mnt, "lost+found")))
        # The mount shows every record.
        self.assertEqual(len(list(History(mnt).iter_records())), 2 * n + 1)
