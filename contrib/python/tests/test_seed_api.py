"""The seeds' loop pattern with one import: against a plain store and a mount."""
import importlib
import os

from support import TempDir

import iterfs_client


def seeds_loop(first_run, total):
    """The seeds' documented loop: resume from the last number, carry the
    feedback on, save every iteration (failures too)."""
    from iterfs_client import (get_last_iteration_number, load_previous_feedback,
                               save_iteration_result)
    last = get_last_iteration_number()
    feedback = load_previous_feedback() if last >= 0 else ""
    for it in range(last + 1, total):
        code = "def strategy(data):\n    return %d\n" % it
        ok = it % 3 != 2
        save_iteration_result(iteration=it, code=code,
                              metrics={"sharpe_ratio": it / 10} if ok else {},
                              feedback="after %d (saw %r)" % (it, feedback[:12]),
                              used_fallback=not ok, success=ok,
                              error=None if ok else "boom %d" % it)
        feedback = load_previous_feedback()
        if it == first_run - 1:
            return


class SeedsLoop(TempDir):
    def use(self, path):
        os.environ["ITERFS_HISTORY"] = path
        self.addCleanup(os.environ.pop, "ITERFS_HISTORY")
        importlib.reload(iterfs_client)
        self.addCleanup(importlib.reload, iterfs_client)

    def check(self, path):
        h = iterfs_client.History(path)
        recs = list(h.iter_records())
        self.assertEqual([r["iteration"] for r in recs], list(range(8)))
        self.assertEqual(recs[5]["code"], "def strategy(data):\n    return 5\n")
        self.assertEqual(recs[5]["error"], "boom 5")
        self.assertIs(recs[5]["success"], False)
        self.assertIs(recs[5]["used_fallback"], True)
        # The resumed run carried the feedback of the first run on.
        self.assertEqual(recs[4]["feedback"], "after 4 (saw 'after 3 (saw')")
        self.assertEqual(iterfs_client.get_last_iteration_number(), 7)
        self.assertEqual(iterfs_client.load_previous_feedback(), recs[7]["feedback"])

    def test_the_loop_runs_resumes_and_reads_back_on_a_plain_store(self):
        """the seeds' loop runs, stops, resumes on a plain store"""
        store = self.path("iteration_history.jsonl")
        self.use(store)
        seeds_loop(4, 8)
        self.assertEqual(iterfs_client.get_last_iteration_number(), 3)
        seeds_loop(8, 8)
        self.check(store)

    def test_the_loop_runs_resumes_and_reads_back_through_a_mount(self):
        """the seeds' loop runs, stops, resumes through a mount"""
        store = self.path("iteration_history.jsonl")
        mnt = self.mount(store)
        self.use(mnt)
        self.assertEqual(iterfs_client.get_last_iteration_number(), -1)
        self.assertEqual(iterfs_client.load_previous_feedback(), "")
        seeds_loop(4, 8)
        seeds_loop(8, 8)
        self.check(mnt)
        self.check(store)

    def test_a_taken_iteration_number_raises_eexist(self):
        store = self.path("h.jsonl")
        self.use(store)
        iterfs_client.save_iteration_result(0, "a", {}, "f")
        with self.assertRaises(OSError) as cm:
            iterfs_client.save_iteration_result(0, "b", {}, "f")
        self.assertEqual(cm.exception.errno, 17)
