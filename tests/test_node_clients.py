"""`smoe serve` driven by the real client libraries from npm (`openai` and
`ollama`, pinned in tests/node/package.json and package-lock.json): runs
`node --test` on tests/node/*.test.mjs against this build's smoe and reports
every node test as a test of its own, so the runner's totals include them.

Skips with a message when node or tests/node/node_modules is missing
(install with `npm ci` in tests/node; .ci/run does)."""
import glob
import os
import re
import shutil
import subprocess
import unittest

from server_lib import V3_VOCAB, make_model
from smoe_testlib import ROOT, SMOE, Workdir

NODE_DIR = os.path.join(ROOT, "tests", "node")
TAP_LINE = re.compile(r"^(not ok|ok) \d+ - (.*?)(\s+# (SKIP|TODO)\b.*)?$")


def why_skip():
    if not shutil.which("node"):
        return "node is not installed"
    for pkg in ("openai", "ollama"):
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", pkg)):
            return f"tests/node/node_modules/{pkg} is missing (run `npm ci` in tests/node)"
    return None


class NodeTest(unittest.TestCase):
    """One node test, reported under its own name."""

    def __init__(self, name):
        super().__init__("runTest")
        self.node_name = name

    def id(self):
        return f"test_node_clients.{self.node_name}"

    def __str__(self):
        return self.id()

    def runTest(self):  # never called: results are reported by NodeSuite
        pass


def parse_tap(text):
    """(file, name, status, detail) for the top-level tests of node's TAP."""
    out, cur_file = [], None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = TAP_LINE.match(line)  # top level only: nested lines are indented
        if not m:
            continue
        name = m.group(2)
        status = "skip" if m.group(4) else ("ok" if m.group(1) == "ok" else "fail")
        detail = []
        for nxt in lines[i + 1:]:
            if nxt.startswith("  "):
                detail.append(nxt)
            else:
                break
        out.append((name, status, "\n".join(detail)))
    return out


class NodeSuite(unittest.TestSuite):
    def run(self, result, debug=False):
        reason = why_skip()
        if reason:
            result.addSkip(NodeTest("node_tests"), reason)
            return result
        work = Workdir()
        try:
            model = make_model(work.file("tiny.gguf"), V3_VOCAB)
            env = dict(os.environ, SMOE_BIN=SMOE, SMOE_TEST_MODEL=model)
            files = sorted(glob.glob(os.path.join(NODE_DIR, "*.test.mjs")))
            for path in files:
                base = os.path.basename(path)[:-len(".test.mjs")]
                try:
                    p = subprocess.run(["node", "--test", "--test-reporter=tap", path], cwd=NODE_DIR, env=env,
                                       capture_output=True, text=True, timeout=900)
                    out, rc = p.stdout + p.stderr, p.returncode
                except subprocess.TimeoutExpired as e:
                    out, rc = (e.stdout or "") if isinstance(e.stdout, str) else "", -1
                    out += "\n(timed out)"
                tests = parse_tap(out)
                failed = False
                for name, status, detail in tests:
                    t = NodeTest(f"{base}: {name}")
                    if status == "ok":
                        result.addSuccess(t)
                    elif status == "skip":
                        result.addSkip(t, detail.strip()[:200])
                    else:
                        failed = True
                        try:
                            raise AssertionError(f"{base}: {name}\n{detail}")
                        except AssertionError:
                            import sys
                            result.addFailure(t, sys.exc_info())
                if rc != 0 and not failed:
                    try:
                        raise AssertionError(f"node --test {base} exited {rc} with no failing test:\n{out[-4000:]}")
                    except AssertionError:
                        import sys
                        result.addFailure(NodeTest(f"{base}: exit status"), sys.exc_info())
                if not tests:
                    try:
                        raise AssertionError(f"node --test {base} reported no tests:\n{out[-4000:]}")
                    except AssertionError:
                        import sys
                        result.addFailure(NodeTest(f"{base}: no tests"), sys.exc_info())
        finally:
            work.cleanup()
        return result


def load_tests(loader, tests, pattern):
    return NodeSuite()
