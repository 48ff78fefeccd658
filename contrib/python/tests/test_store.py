"""History on a plain store file: reads, commits, the lock."""
import errno
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import threading

from support import REAL_NAMES, TempDir, real
from iterfs_client import History, Rejected, store_lock


def lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


class StoreReads(TempDir):
    def write(self, data):
        p = self.path("h.jsonl")
        with open(p, "wb") as f:
            f.write(data)
        return p

    def test_real_histories_read_as_python_parses_them(self):
        """every real history reads as json.loads of its lines gives"""
        [real(name) for name in REAL_NAMES]
        for name in REAL_NAMES:
            with self.subTest(name):
                want = {}
                with open(real(name), encoding="utf-8") as f:
                    for line in f:
                        r = json.loads(line)
                        want[r.get("iteration", r.get("iteration_num"))] = r
                h = History(real(name))
                self.assertEqual(list(h.iter_records()), [want[n] for n in sorted(want)])
                self.assertEqual(h.highest(), max(want))
                self.assertEqual(h.last(), want[max(want)])
                self.assertEqual(h.get(3), want[3])
                self.assertEqual(h.skipped, [])

    def test_torn_and_garbage_lines_are_skipped_counted_and_kept(self):
        """torn and garbage lines are skipped and reported, never dropped"""
        data = (b'\xef\xbb\xbf{"iteration": 0, "code": "a"}\r\n'
                b'garbage\n'
                b'[1, 2]\n'
                b'{"iteration": 1, "metrics": {"x": NaN}}\n'
                b'{"iteration": 2, "code": "torn')
        p = self.write(data)
        h = History(p)
        self.assertEqual([r.get("iteration") for r in h.iter_records()], [0, 1])
        self.assertEqual(h.skipped, [2, 3, 5])
        n = h.save({"code": "new"})
        self.assertEqual(n, 2)
        with open(p, "rb") as f:
            after = f.read()
        self.assertTrue(after.startswith(data + b"\n"))
        h = History(p)
        self.assertEqual(h.get(2)["code"], "new")
        self.assertEqual(h.skipped, [2, 3, 5])

    def test_later_line_of_a_number_wins(self):
        p = self.write(b'{"iteration": 0, "code": "old"}\n{"iteration": 0, "code": "new"}\n')
        self.assertEqual(History(p).get(0)["code"], "new")

    def test_missing_store_is_empty(self):
        h = History(self.path("none.jsonl"))
        self.assertEqual(list(h.iter_records()), [])
        self.assertIsNone(h.last())
        self.assertEqual(h.highest(), -1)
        with self.assertRaises(KeyError):
            h.get(0)

    def test_a_directory_that_is_not_a_mount_is_refused(self):
        with self.assertRaises(ValueError):
            History(self.dir)


class StoreCommits(TempDir):
    def test_numbers_are_highest_plus_one_not_last_line_plus_one(self):
        p = self.path("h.jsonl")
        with open(p, "w") as f:
            f.write('{"iteration": 7, "code": "a"}\n{"iteration": 2, "code": "b"}\n')
        self.assertEqual(History(p).save({"code": "c"}), 8)
        self.assertEqual(History(p).get(8)["code"], "c")

    def test_real_histories_take_records_in_their_dialect_and_keep_every_byte(self):
        """a save into each real history keeps its bytes and speaks its dialect"""
        [real(name) for name in REAL_NAMES]
        for name in REAL_NAMES:
            with self.subTest(name):
                p = self.copy_real(name)
                with open(p, "rb") as f:
                    before = f.read()
                h = History(p)
                top = h.highest()
                n = h.save_iteration_result(top + 1, "x = 1\n", {"sharpe_ratio": 1.5},
                                            "try more", success=False, error="boom")
                self.assertEqual(n, top + 1)
                with open(p, "rb") as f:
                    after = f.read()
                self.assertTrue(after.startswith(before))
                new = json.loads(after[len(before):])
                old = json.loads(before.splitlines()[-1])
                num_key = "iteration_num" if "iteration_num" in old else "iteration"
                self.assertEqual(list(new)[0], num_key)
                self.assertEqual(new[num_key], top + 1)
                if "execution_result" in old:
                    self.assertEqual(new["strategy_code"], "x = 1\n")
                    self.assertEqual(new["feedback_used"], "try more")
                    self.assertEqual(new["execution_result"],
                                     {"success": False, "error_message": "boom"})
                    self.assertNotIn("code", new)
                else:
                    self.assertEqual(new["code"], "x = 1\n")
                    self.assertIs(new["success"], False)
                    self.assertEqual(new["error"], "boom")
                self.assertRegex(new["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
                self.assertEqual(History(p).load_previous_feedback(), "try more")

    def test_aliases_are_renamed_to_the_stores_names_in_place(self):
        p = self.path("h.jsonl")
        with open(p, "w") as f:
            f.write('{"iteration_num": 0, "strategy_code": "a", "feedback_used": "f"}\n')
        History(p).save({"code": "b", "metrics": {}, "feedback": "g"})
        last = lines(p)[-2]
        self.assertEqual(last, b'{"iteration_num":1,"strategy_code":"b","metrics":{},'
                               b'"feedback_used":"g","timestamp":' + last.split(b'"timestamp":')[1])

    def test_two_aliases_that_disagree_are_einval_and_commit_nothing(self):
        p = self.path("h.jsonl")
        with self.assertRaises(Rejected) as cm:
            History(p).save({"code": "a", "strategy_code": "b"})
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertFalse(os.path.exists(p))

    def test_code_hash_is_filled_where_the_store_has_it_and_checked(self):
        p = self.path("h.jsonl")
        with open(p, "w") as f:
            f.write('{"iteration": 0, "code": "a", "code_hash": "%s"}\n'
                    % hashlib.sha256(b"a").hexdigest())
        h = History(p)
        h.save({"code": "é"})
        self.assertEqual(h.get(1)["code_hash"], hashlib.sha256("é".encode()).hexdigest())
        with self.assertRaises(Rejected) as cm:
            h.save({"code": "b", "code_hash": "0" * 64})
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        q = self.path("nohash.jsonl")
        History(q).save({"code": "a"})
        self.assertNotIn("code_hash", History(q).get(0))

    def test_a_taken_number_is_eexist_and_an_identical_resend_adds_nothing(self):
        p = self.path("h.jsonl")
        h = History(p)
        rec = {"iteration": 0, "code": "a", "timestamp": "2025-01-01T00:00:00"}
        self.assertEqual(h.save(rec), 0)
        with open(p, "rb") as f:
            before = f.read()
        self.assertEqual(h.save(rec), 0)
        with self.assertRaises(OSError) as cm:
            h.save(dict(rec, code="b"))
        self.assertEqual(cm.exception.errno, errno.EEXIST)
        with open(p, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_a_bad_timestamp_is_einval(self):
        with self.assertRaises(Rejected) as cm:
            History(self.path("h.jsonl")).save({"code": "a", "timestamp": "yesterday"})
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_a_commit_leaves_no_temp_and_keeps_the_mode(self):
        p = self.path("h.jsonl")
        History(p).save({"code": "a"})
        self.assertEqual(os.stat(p).st_mode & 0o777, 0o644)
        os.chmod(p, 0o600)
        History(p).save({"code": "b"})
        self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)
        self.assertEqual(sorted(os.listdir(self.dir)), ["h.jsonl", "h.jsonl.lock"])

    def test_a_commit_waits_for_the_lock(self):
        """a commit waits while another process holds STORE.lock"""
        p = self.path("h.jsonl")
        History(p).save({"code": "a"})
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_RDWR);"
             "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
             p + ".lock"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.assertEqual(holder.stdout.readline(), "held\n")
        t = threading.Thread(target=History(p).save, args=({"code": "b"},))
        t.start()
        t.join(0.5)
        self.assertTrue(t.is_alive())
        self.assertEqual(History(p).highest(), 0)
        holder.stdin.close()
        holder.wait()
        t.join()
        self.assertEqual(History(p).highest(), 1)

    def test_many_processes_committing_at_once_lose_nothing(self):
        p = self.path("h.jsonl")
        code = ("import sys; sys.path.insert(0, sys.argv[2]);"
                "from iterfs_client import History; h = History(sys.argv[1]);"
                "[h.save({'code': '%s-%d' % (sys.argv[3], i)}) for i in range(25)]")
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        procs = [subprocess.Popen([sys.executable, "-c", code, p, pkg, str(w)])
                 for w in range(4)]
        for pr in procs:
            self.assertEqual(pr.wait(), 0)
        recs = list(History(p).iter_records())
        self.assertEqual([r["iteration"] for r in recs], list(range(100)))
        self.assertEqual(sorted(r["code"] for r in recs),
                         sorted("%d-%d" % (w, i) for w in range(4) for i in range(25)))


class Lock(TempDir):
    def test_store_lock_is_flock_on_store_dot_lock(self):
        p = self.path("h.jsonl")
        with store_lock(p):
            fd = os.open(p + ".lock", os.O_RDWR)
            try:
                with self.assertRaises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(fd)
        fd = os.open(p + ".lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)


class Cost(TempDir):
    def test_a_save_into_a_large_store_decodes_only_a_few_lines(self):
        """appending one record does not json.loads every line of the store"""
        from unittest import mock
        import iterfs_client.store as st
        p = self.path("h.jsonl")
        with open(p, "w") as f:
            for i in range(2000):
                f.write(json.dumps({"iteration_num": i, "strategy_code": "x%d" % i}) + "\n")
        real_loads = json.loads
        calls = []

        def counting(*a, **k):
            calls.append(1)
            return real_loads(*a, **k)

        h = History(p)
        with mock.patch.object(st.json, "loads", counting):
            self.assertEqual(h.save_iteration_result(2000, "y", {}, "f"), 2000)
            self.assertEqual(h.highest(), 2000)
            self.assertEqual(h.last()["strategy_code"], "y")
            self.assertEqual(h.load_previous_feedback(), "f")
        self.assertLess(len(calls), 100)
        self.assertEqual(History(p).get(2000)["feedback"], "f")
