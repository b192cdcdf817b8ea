"""`smoe run` and `smoe chat`: streaming generation on the built-in default
model and on synthetic models, sampling flags, stop strings, bad input."""
import os
import re
import signal
import subprocess
import unittest

import gguf_tool
from smoe_testlib import SMOE, Workdir, synth

NO_EOS = ["--logit-bias", "2=-inf"]  # random weights: keep answers full length


class GenerateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.env = dict(os.environ, XDG_CACHE_HOME=cls.dir.file("cache"))
        cls.model = synth(cls.dir.file("m.gguf"), "--preset", "tiny", "--seed", "3", "--readable")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def run_smoe(self, *args, input=None, ok=True):
        p = subprocess.run([SMOE, *map(str, args)], input=input, capture_output=True, env=self.env, timeout=300)
        err = p.stderr.decode("utf-8", "replace")
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error", err)
        if ok:
            self.assertEqual(p.returncode, 0, err)
        return p

    def run_text(self, *args, **kw):
        return self.run_smoe("run", "-m", self.model, *args, **kw).stdout.decode()

    def assert_fails(self, words, *args, input=None):
        p = self.run_smoe(*args, input=input, ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = p.stderr.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("smoe: "))
        self.assertIn(words, lines[0])

    def test_default_model_is_created_once(self):
        first = self.run_smoe("run", "-p", "Hello", "-n", "8", "--temp", "0")
        self.assertIn(b"creating the built-in default model", first.stderr)
        self.assertTrue(os.path.exists(self.dir.file("cache/smoe/default-tiny-v1.gguf")))
        again = self.run_smoe("run", "-p", "Hello", "-n", "8", "--temp", "0")
        self.assertNotIn(b"creating", again.stderr)
        self.assertEqual(first.stdout, again.stdout)
        self.assertGreater(len(first.stdout.strip()), 0)
        self.assertRegex(again.stderr.decode(), r"generated \d+ tokens, [\d.]+ tokens/s \| peak memory \d+ MiB")

    def test_token_count_and_summary(self):
        p = self.run_smoe("run", "-m", self.model, "-p", "abc", "-n", "17", *NO_EOS)
        m = re.search(r"prompt (\d+) tokens.*generated (\d+) tokens", p.stderr.decode())
        self.assertEqual(int(m.group(2)), 17)
        self.assertEqual(int(m.group(1)), 1 + 3 + 3)  # BOS, "▁" as 3 byte tokens, 3 bytes

    def test_seed_reproducible(self):
        a = self.run_text("-p", "x", "-n", "24", "--seed", "7", "--temp", "1.5", *NO_EOS)
        b = self.run_text("-p", "x", "-n", "24", "--seed", "7", "--temp", "1.5", *NO_EOS)
        c = self.run_text("-p", "x", "-n", "24", "--seed", "8", "--temp", "1.5", *NO_EOS)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_stop_string_cuts_the_output(self):
        full = self.run_text("-p", "q", "-n", "40", "--temp", "0", *NO_EOS)
        text = full.rstrip("\n")
        self.assertGreater(len(text), 12)
        stop = text[8:11]
        cut = self.run_text("-p", "q", "-n", "40", "--temp", "0", "--stop", stop, *NO_EOS)
        self.assertEqual(cut.rstrip("\n"), text[:text.index(stop)])

    def test_prompt_from_stdin_and_odd_bytes(self):
        a = self.run_text("-p", "-", "-n", "5", "--temp", "0", input=b"hello")
        b = self.run_text("-p", "hello", "-n", "5", "--temp", "0")
        self.assertEqual(a, b)
        # invalid UTF-8 and NUL bytes are input like any other
        out = self.run_smoe("run", "-m", self.model, "-p", "-", "-n", "5", input=b"\xff\xfe\x00abc\xc3").stdout
        out.decode("utf-8")  # the output is valid UTF-8

    def test_zero_tokens(self):
        p = self.run_smoe("run", "-m", self.model, "-p", "abc", "-n", "0")
        self.assertEqual(p.stdout, b"\n")
        self.assertRegex(p.stderr.decode(), r"generated 0 tokens")

    def test_empty_prompt_starts_from_bos(self):
        p = self.run_smoe("run", "-m", self.model, "-p", "", "-n", "4", "--temp", "0")
        self.assertRegex(p.stderr.decode(), r"prompt 1 tokens")

    def test_bad_input(self):
        m = self.model
        self.assert_fails("context", "run", "-m", m, "-p", "a" * 100, "--ctx", "32")
        self.assert_fails("temperature", "run", "-m", m, "-p", "a", "--temp", "-1")
        self.assert_fails("temperature", "run", "-m", m, "-p", "a", "--temp", "1e9")
        self.assert_fails("top_p", "run", "-m", m, "-p", "a", "--top-p", "0")
        self.assert_fails("top_p", "run", "-m", m, "-p", "a", "--top-p", "1.5")
        self.assert_fails("--top-k", "run", "-m", m, "-p", "a", "--top-k", "-2")
        self.assert_fails("-n", "run", "-m", m, "-p", "a", "-n", "1000000000000")
        self.assert_fails("logit_bias", "run", "-m", m, "-p", "a", "--logit-bias", "100000=1")
        self.assert_fails("no prompt", "run", "-m", m)
        self.assert_fails("--stop", "run", "-m", m, "-p", "a", "--stop", "")
        g = gguf_tool.read(m)
        g.kvs = [kv for kv in g.kvs if not kv.key.startswith("tokenizer.")]
        bare = self.dir.file("bare.gguf")
        gguf_tool.write(bare, g)
        self.assert_fails("no tokenizer", "run", "-m", bare, "-p", "a")

    def test_closed_stdout_exits_cleanly(self):
        p = subprocess.run(f"'{SMOE}' run -m '{self.model}' -p a -n 2000 {' '.join(NO_EOS)} | head -c 10",
                           shell=True, capture_output=True, env=self.env, timeout=300,
                           executable="/bin/bash")
        self.assertEqual(len(p.stdout), 10)
        p2 = subprocess.run(["/bin/bash", "-c", f"set -o pipefail; '{SMOE}' run -m '{self.model}' -p a -n 2000 "
                             f"{' '.join(NO_EOS)} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}"],
                            capture_output=True, env=self.env, timeout=300)
        self.assertEqual(p2.stdout.decode().strip(), "0")
        self.assertNotIn(b"Sanitizer", p2.stderr)


class ChatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.model = synth(cls.dir.file("c.gguf"), "--preset", "tiny", "--seed", "4", "--readable")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def chat(self, text, *args):
        p = subprocess.run([SMOE, "chat", "-m", self.model, "-n", "12", "--temp", "0", *NO_EOS, *args],
                           input=text.encode(), capture_output=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        stats = [tuple(map(int, m)) for m in
                 re.findall(r"\[prompt (\d+) tokens, (\d+) processed, (\d+) cached \| generated (\d+)",
                            p.stderr.decode())]
        return p.stdout.decode(), stats

    def test_turns_reuse_the_cache(self):
        out, stats = self.chat("first question\nsecond one\nthird\n")
        self.assertEqual(len(stats), 3)
        (p1, proc1, c1, g1), (p2, proc2, c2, g2), (p3, proc3, c3, g3) = stats
        self.assertEqual(c1, 0)
        self.assertEqual(proc1, p1)
        # turn 2 processes only what is new: turn 1's prompt and answer
        # are in the cache, exactly
        self.assertEqual(c2, p1 + g1)
        self.assertEqual(proc2, p2 - c2)
        self.assertEqual(c3, p2 + g2)
        self.assertEqual(len(out.strip().splitlines()), 3)

    def test_reset_and_commands(self):
        out, stats = self.chat("hello\n/reset\nhello\n/bogus\n/exit\nnot read\n")
        self.assertEqual(len(stats), 2)
        self.assertEqual(stats[1][2], 0)  # nothing cached after /reset
        self.assertEqual(stats[0][0], stats[1][0])
        lines = out.strip().splitlines()
        self.assertEqual(lines[0], lines[1])  # same prompt, greedy: same answer

    def test_system_prompt_changes_the_prompt(self):
        _, plain = self.chat("hi\n")
        _, with_sys = self.chat("hi\n", "--system", "Be brief.")
        self.assertGreater(with_sys[0][0], plain[0][0])

    def test_ctrl_c_stops_the_answer(self):
        p = subprocess.Popen([SMOE, "chat", "-m", self.model, "-n", "-1", *NO_EOS, "--ctx", "4096"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"tell me a long story\n")
        p.stdin.flush()
        p.stdout.read(1)  # the answer has started streaming
        p.send_signal(signal.SIGINT)
        p.stdin.write(b"/exit\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(b"[interrupted]", out)


if __name__ == "__main__":
    unittest.main()
