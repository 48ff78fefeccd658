"""History through a real iterfs mount."""
import errno
import json
import os

from support import REAL_NAMES, TempDir, real
from iterfs_client import History


class MountReads(TempDir):
    def test_real_histories_read_the_same_through_the_mount_as_from_the_file(self):
        """every real history reads the same through the mount and from the file"""
        [real(name) for name in REAL_NAMES]
        for name in REAL_NAMES:
            with self.subTest(name):
                store = self.copy_real(name)
                mnt = self.mount(store, "-o", "ro")
                m, f = History(mnt), History(store)
                self.assertTrue(m.mounted)
                self.assertFalse(f.mounted)
                self.assertEqual(list(m.iter_records()), list(f.iter_records()))
                self.assertEqual(m.highest(), f.highest())
                self.assertEqual(m.last(), f.last())
                self.assertEqual(m.get(2), f.get(2))
                self.assertEqual(m.load_previous_feedback(), f.load_previous_feedback())
                with self.assertRaises(KeyError):
                    m.get(10 ** 6)


class MountCommits(TempDir):
    def test_save_commits_through_incoming_and_returns_the_number(self):
        store = self.path("h.jsonl")
        with open(store, "w") as f:
            f.write('{"iteration": 4, "code": "a", "metrics": {}}\n'
                    '{"iteration": 1, "code": "b", "metrics": {}}\n')
        mnt = self.mount(store)
        h = History(mnt)
        n = h.save({"code": "c", "metrics": {"sharpe": 1.5}})
        self.assertEqual(n, 5)
        self.assertEqual(h.get(5)["code"], "c")
        self.assertEqual(os.readlink(os.path.join(mnt, "latest")), "iterations/5")
        # Durable in the store when save returned.
        self.assertEqual(History(store).get(5)["metrics"], {"sharpe": 1.5})
        self.assertEqual(os.listdir(os.path.join(mnt, "incoming")), [])

    def test_a_rejected_save_raises_oserror_with_errno_and_reason(self):
        store = self.path("h.jsonl")
        with open(store, "w") as f:
            f.write('{"iteration": 0, "code": "a"}\n')
        with open(store, "rb") as f:
            before = f.read()
        mnt = self.mount(store)
        with self.assertRaises(OSError) as cm:
            History(mnt).save({"iteration": 0, "code": "different"})
        e = cm.exception
        self.assertEqual(e.errno, errno.EEXIST)
        self.assertIn("0", e.strerror)
        name = os.path.basename(e.filename)
        kept = sorted(os.listdir(os.path.join(mnt, "incoming")))
        self.assertEqual(kept, [name + ".reason", name + ".rejected"])
        with open(os.path.join(mnt, "incoming", name + ".reason")) as f:
            self.assertEqual(f.read().strip(), e.strerror)
        with open(store, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_save_iteration_result_through_a_mount_of_a_real_history(self):
        """the seeds' save through a mount of a real history speaks its dialect"""
        store = self.copy_real("migrated_no_code.jsonl")
        mnt = self.mount(store)
        h = History(mnt)
        rec = dict(h.last())
        del rec["iteration"]
        rec["strategy_type"] = "from the client"
        n = h.save(rec)
        self.assertEqual(n, 20)
        with open(store, "rb") as f:
            last = json.loads(f.read().splitlines()[-1])
        self.assertEqual(list(last)[0], "iteration")
        self.assertEqual(last["iteration"], 20)
        self.assertEqual(last["strategy_type"], "from the client")
        self.assertRegex(last["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
