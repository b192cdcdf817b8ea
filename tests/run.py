#!/usr/bin/env python3
"""Run smoe's whole test suite against one or more build directories.

    tests/run.py build build-san

For each build: every C unit-test binary (build/test_*, cmocka, TAP output)
and every Python test module tests/test_*.py (unittest, with SMOE_BIN set to
that build's smoe).  Ends with the line 'N passed, N failed, N skipped'.

A cross build (build-arm64, mk/arm64.mk) has a file `runner` with the
command prefixes that run its binaries (qemu), one a line, each optionally
followed by `|` and the names of the only unit binaries to run under it:
its unit binaries run under each, and the end-to-end check against this
machine's build/smoe (tests/cross_check.py); the Python suite is not run on
it.  Emulation is slow, so these runs go side by side, one per CPU core,
and are reported in order.  A build directory that does not exist is
reported as skipped.
"""
import glob
import importlib.util
import os
import shlex
import subprocess
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def exec_unit_binary(path, env, prefix=()):
    """The finished process, or None when it timed out.  Under an emulator
    (a prefix) the limit is longer: qemu computes floating point in software,
    and test_kernels takes minutes of CPU there, more on a shared machine."""
    env = dict(env, CMOCKA_MESSAGE_OUTPUT="TAP")
    try:
        return subprocess.run([*prefix, path], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=1800 if prefix else 600)
    except subprocess.TimeoutExpired:
        return None


def run_unit_binary(path, env, tally, prefix=(), tag="", done=None):
    p = done.result() if done is not None else exec_unit_binary(path, env, prefix)
    if p is None:
        tally.fail(f"{path}{tag}: timed out")
        return
    seen = 0
    for line in p.stdout.splitlines():
        if line.startswith("ok ") or line.startswith("not ok "):
            seen += 1
            name = f"{os.path.basename(path)}{tag}: {line}"
            if "# skip" in line.lower():
                tally.skip(name)
            elif line.startswith("ok "):
                tally.ok(name)
            else:
                tally.fail(name, p.stdout[-3000:] + p.stderr[-3000:])
    if p.returncode != 0 and (seen == 0 or not tally.failed_recently):
        tally.fail(f"{path}: exit code {p.returncode}", p.stdout[-3000:] + p.stderr[-3000:])
    elif "Sanitizer" in p.stderr or "runtime error" in p.stderr:
        tally.fail(f"{path}: sanitizer report", p.stderr[-3000:])


class Tally:
    def __init__(self, label):
        self.label = label
        self.passed = self.failed = self.skipped = 0
        self.failed_recently = False
        self.failures = []

    def ok(self, name):
        self.passed += 1
        self.failed_recently = False
        print(f"PASS [{self.label}] {name}", flush=True)

    def fail(self, name, detail=""):
        self.failed += 1
        self.failed_recently = True
        self.failures.append((name, detail))
        print(f"FAIL [{self.label}] {name}", flush=True)

    def skip(self, name, why=""):
        self.skipped += 1
        print(f"SKIP [{self.label}] {name} {why}", flush=True)


class Deferred:
    """Records a Tally's calls from another thread, to replay them in order."""

    def __init__(self):
        self.calls = []

    def ok(self, *a):
        self.calls.append(("ok", a))

    def fail(self, *a):
        self.calls.append(("fail", a))

    def replay(self, tally):
        for name, a in self.calls:
            getattr(tally, name)(*a)


class TallyResult(unittest.TestResult):
    def __init__(self, tally):
        super().__init__()
        self.tally = tally

    def addSuccess(self, test):
        self.tally.ok(test.id())

    def addFailure(self, test, err):
        self.tally.fail(test.id(), self._exc_info_to_string(err, test))

    def addError(self, test, err):
        self.tally.fail(test.id(), self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        self.tally.skip(test.id(), f"({reason})")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self.tally.fail(subtest.id(), self._exc_info_to_string(err, test))

    def addExpectedFailure(self, test, err):
        self.tally.ok(test.id())

    def addUnexpectedSuccess(self, test):
        self.tally.fail(test.id(), "unexpected success")


def run_python_tests(build, tally, pattern):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", pattern))):
        name = f"{os.path.splitext(os.path.basename(path))[0]}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:  # a broken test module is a failure, not a crash
            tally.fail(f"{name}: import failed: {e}")
            continue
        suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
        suite.run(TallyResult(tally))


def main():
    builds = sys.argv[1:] or ["build"]
    pattern = os.environ.get("SMOE_TESTS", "test_*.py")
    shared = os.environ.get("SMOE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
    os.environ["SMOE_SHARED"] = shared
    if not os.path.isdir(shared):
        print(f"note: {shared} is absent; tests that need shared data will skip")
    os.chdir(ROOT)
    totals = []
    start = time.time()
    for build in builds:
        tally = Tally(build)
        totals.append(tally)
        if not os.path.isdir(os.path.join(ROOT, build)):
            tally.skip(build, "(not built)")
            continue
        runners = os.path.join(ROOT, build, "runner")
        if os.path.exists(runners):  # a cross build: unit binaries under qemu, then the end-to-end check
            sys.path.insert(0, os.path.join(ROOT, "tests"))
            import cross_check
            with open(runners) as f:
                lines = [shlex.split(line) for line in f if line.strip()]
            binaries = [b for b in sorted(glob.glob(os.path.join(ROOT, build, "test_*")))
                        if os.access(b, os.X_OK) and not b.endswith(".o")]
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                plan = []  # per runner line: its tag, (binary, future) pairs, the end-to-end check
                for line in lines:
                    prefix = line[:line.index("|")] if "|" in line else line
                    only = line[line.index("|") + 1:] if "|" in line else None
                    tag = f" ({' '.join(prefix[prefix.index('-cpu'):][:2])})" if "-cpu" in prefix else ""
                    runs = [(b, pool.submit(exec_unit_binary, b, dict(os.environ), prefix))
                            for b in binaries if only is None or os.path.basename(b) in only]
                    check = Deferred()
                    plan.append((tag, prefix, runs, check, pool.submit(cross_check.run, build, prefix, tag, check)))
                for tag, prefix, runs, check, done in plan:
                    for binary, future in runs:
                        run_unit_binary(binary, None, tally, prefix, tag, future)
                    done.result()
                    check.replay(tally)
            continue
        env = dict(os.environ, SMOE_BIN=os.path.join(ROOT, build, "smoe"), SMOE_BUILD=build)
        os.environ.update(SMOE_BIN=env["SMOE_BIN"], SMOE_BUILD=build)
        for binary in sorted(glob.glob(os.path.join(ROOT, build, "test_*"))):
            if os.access(binary, os.X_OK) and not binary.endswith(".o"):
                run_unit_binary(binary, env, tally)
        run_python_tests(build, tally, pattern)
    print()
    for t in totals:
        for name, detail in t.failures:
            print(f"---- FAIL [{t.label}] {name}\n{detail}")
    for t in totals:
        print(f"{t.label}: {t.passed} passed, {t.failed} failed, {t.skipped} skipped")
    print(f"time: {time.time() - start:.0f} s")
    p = sum(t.passed for t in totals)
    f = sum(t.failed for t in totals)
    s = sum(t.skipped for t in totals)
    print(f"{p} passed, {f} failed, {s} skipped")
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main())
