"""Replay the fuzz corpora and every fuzz finding (tests/fuzz/) on this build.

Each fuzz target tests/fuzz/fuzz_NAME.c is also built by `make` as
BUILD/fuzz_replay_NAME, a plain program that feeds files to the target's
LLVMFuzzerTestOneInput (tests/fuzz/replay_main.c), so the inputs run here
on the plain and the sanitizer build without clang or libFuzzer:
tests/fuzz/regressions/NAME/ holds the inputs that once crashed a target
(each fixed since), tests/fuzz/corpus/NAME/ the seeds.
"""
import glob
import os
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("SMOE_BUILD", "build")
FUZZ = os.path.join(ROOT, "tests", "fuzz")
NAMES = sorted(os.path.basename(p)[len("fuzz_"):-2] for p in glob.glob(os.path.join(FUZZ, "fuzz_*.c"))
               if not p.endswith("fuzz_util.c"))


class FuzzReplay(unittest.TestCase):
    def replay(self, name, folder):
        binary = os.path.join(ROOT, BUILD, "fuzz_replay_" + name)
        self.assertTrue(os.access(binary, os.X_OK), f"{binary} is not built (make)")
        inputs = os.path.join(FUZZ, folder, name)
        if not os.path.isdir(inputs) or not os.listdir(inputs):
            self.skipTest(f"no inputs in tests/fuzz/{folder}/{name}")
        p = subprocess.run([binary, inputs], capture_output=True, text=True, timeout=600)
        # the input that failed is the last one named before the report
        last = [line for line in p.stderr.splitlines() if line.startswith("input ")][-1:]
        report = "\n".join(line for line in p.stderr.splitlines() if not line.startswith("input "))
        self.assertEqual(p.returncode, 0, f"{last}\n{report[-3000:]}")
        self.assertNotIn("Sanitizer", p.stderr, report[-3000:])
        self.assertNotIn("runtime error", p.stderr, report[-3000:])
        self.assertIn("replayed", p.stdout)

    def test_targets_found(self):
        self.assertGreaterEqual(len(NAMES), 5, NAMES)


def _add(name, folder):
    def test(self):
        self.replay(name, folder)
    test.__doc__ = f"tests/fuzz/{folder}/{name} through fuzz_replay_{name}"
    setattr(FuzzReplay, f"test_{folder}_{name}", test)


for _name in NAMES:
    _add(_name, "regressions")
    _add(_name, "corpus")
