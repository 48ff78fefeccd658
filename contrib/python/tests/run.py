#!/usr/bin/env python3
"""Run the iterfs_client tests and print TAP (ok N - name / not ok N - name),
which meson's TAP protocol and contrib/test.sh's counter read.

    python3 contrib/python/tests/run.py [-k PATTERN]

Environment: ITERFS_BUILD (the meson build directory, for the mount tests)
and ITERFS_REAL_DATA (the real histories); tests that need what is missing
are reported as skipped, which fails under CI.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


class TapResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _line(self, ok, test, extra=""):
        self.n += 1
        case = getattr(test, "test_case", test)  # a failed subTest
        name = "%s.%s" % (type(case).__name__, case._testMethodName)
        if case is not test:
            name += " " + test._subDescription()
        doc = case.shortDescription()
        if doc:
            name += ": " + doc
        print("%s %d - %s%s" % ("ok" if ok else "not ok", self.n, name, extra),
              flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def _fail(self, test, err, kind):
        self._line(False, test)
        text = self._exc_info_to_string(err, test)
        for line in ("%s\n%s" % (kind, text)).rstrip().splitlines():
            print("# " + line, flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err, "ERROR")

    def addSubTest(self, test, subtest, err):
        # Passing subtests are part of their test's one line.
        if err is not None:
            super().addSubTest(test, subtest, err)
            self._fail(subtest, err, "FAIL")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, " # SKIP " + reason)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line(False, test, " (unexpected success)")


def main():
    loader = unittest.TestLoader()
    if len(sys.argv) == 3 and sys.argv[1] == "-k":
        loader.testNamePatterns = ["*%s*" % sys.argv[2]]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    result = TapResult()
    suite.run(result)
    print("1..%d" % result.n)
    sys.exit(0 if result.wasSuccessful() and result.n else 1)


if __name__ == "__main__":
    main()
