"""The allocation-failure sweep (tests/allocfail/, `make allocfail`).

Builds build-allocfail/allocfail (incrementally: a few minutes the first
time) and runs it: every operation with its N-th allocation failing, for
every N until it succeeds, under ASan/LSan.  The sweep is its own
sanitizer build, so it runs once, with the plain build's pass of the suite
(not again for build-san).
"""
import os
import re
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("SMOE_BUILD", "build")


class AllocFail(unittest.TestCase):
    def test_sweep(self):
        if BUILD.rstrip("/").endswith("-san"):
            self.skipTest("the sweep is a sanitizer build of its own; run with the plain build")
        b = subprocess.run(["make", "-s", "allocfail"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        self.assertEqual(b.returncode, 0, b.stderr[-3000:])
        p = subprocess.run([os.path.join(ROOT, "build-allocfail", "allocfail")], cwd=ROOT, capture_output=True,
                           text=True, timeout=1200)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr)[-4000:])
        self.assertNotIn("Sanitizer", p.stderr, p.stderr[-4000:])
        m = re.search(r"allocfail: (\d+) operations, (\d+) failure points", p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertGreaterEqual(int(m.group(1)), 20)
        # every operation really was swept (at least one failure point each)
        for line in p.stdout.splitlines():
            pm = re.match(r"(\S+)\s+(\d+) failure points", line)
            if pm:
                self.assertGreater(int(pm.group(2)), 0, line)


if __name__ == "__main__":
    unittest.main()
