"""The public API (include/smoe.h, include/smoe_gen.h) through
examples/generate.c: it builds with the public headers alone, gives the very
text `smoe run` gives for the same prompt, seed and settings (plain, sampled,
chat), and reports bad input as one clear line."""
import glob
import os
import re
import subprocess
import tempfile
import unittest

import gguf_tool
from smoe_testlib import ROOT, SHARED, SMOE, Workdir, synth

BUILD = os.environ.get("SMOE_BUILD", "build")
EXAMPLE = os.path.join(ROOT, BUILD, "examples", "generate")

# (name, flags both programs take), each run with the same prompt
CASES = [
    ("greedy", ["-n", "24", "--temp", "0"]),
    ("sampled", ["-n", "32", "--temp", "1.5", "--seed", "7"]),
    ("sampled-top", ["-n", "32", "--temp", "0.9", "--top-k", "12", "--top-p", "0.8", "--seed", "11"]),
    ("defaults", []),
    ("chat", ["--chat", "-n", "24", "--seed", "3"]),
    ("chat-system", ["--system", "Answer briefly.", "-n", "24", "--temp", "0"]),
]


class ExampleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.model = synth(cls.dir.file("m.gguf"), "--preset", "tiny", "--seed", "3", "--readable")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def run_prog(self, argv):
        p = subprocess.run(argv, capture_output=True, timeout=300)
        err = p.stderr.decode("utf-8", "replace")
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error", err)
        return p

    def example(self, *args):
        return self.run_prog([EXAMPLE, "-m", self.model, *map(str, args)])

    def test_public_headers_stand_alone(self):
        # the public headers include nothing but each other and the C library
        for h in glob.glob(os.path.join(ROOT, "include", "*.h")):
            with open(h) as f:
                for inc in re.findall(r'#include\s+"([^"]+)"', f.read()):
                    self.assertTrue(os.path.exists(os.path.join(ROOT, "include", inc)), f"{h} includes {inc}")
        # the example compiles and links with -Iinclude only (no -Isrc) against
        # the build's libsmoe.a, as a program embedding smoe would
        san = ["-fsanitize=address,undefined"] if "san" in BUILD else []
        with tempfile.TemporaryDirectory() as tmp:
            exe = os.path.join(tmp, "generate")
            cmd = ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", *san, "-I", os.path.join(ROOT, "include"),
                   os.path.join(ROOT, "examples", "generate.c"), os.path.join(ROOT, BUILD, "libsmoe.a"),
                   "-o", exe, "-fopenmp", "-ljansson", "-lm"]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr)
            a = self.run_prog([exe, "-m", self.model, "-p", "abc", "-n", "8", "--temp", "0"])
            self.assertEqual(a.returncode, 0, a.stderr)
            self.assertEqual(a.stdout, self.example("-p", "abc", "-n", "8", "--temp", "0").stdout)

    def test_same_text_as_smoe_run(self):
        for name, flags in CASES:
            for prompt in ["Once upon a time", "x"]:
                with self.subTest(case=name, prompt=prompt):
                    ours = self.example("-p", prompt, *flags)
                    self.assertEqual(ours.returncode, 0, ours.stderr)
                    ref = self.run_prog([SMOE, "run", "-m", self.model, "-p", prompt, *flags])
                    self.assertEqual(ref.returncode, 0, ref.stderr)
                    self.assertEqual(ours.stdout, ref.stdout)
                    self.assertGreater(len(ours.stdout.strip()), 0)
                    # and the same counts: prompt tokens, generated tokens
                    m = re.search(rb"(\d+) prompt tokens, (\d+) generated, finish: (\w+)", ours.stderr)
                    r = re.search(rb"prompt (\d+) tokens.*generated (\d+) tokens", ref.stderr)
                    self.assertEqual(m.groups()[:2], r.groups(), ours.stderr + ref.stderr)
                    n = int(flags[flags.index("-n") + 1]) if "-n" in flags else 256  # smoe run's default
                    self.assertEqual(m.group(3), b"length" if int(m.group(2)) == n else b"stop")

    def test_real_vocabularies(self):
        # Mistral's v3 vocabulary (control [INST]: chat format v3) and a llama
        # SentencePiece one (v1): tokenizing and the chat format detected from
        # the model are the library's, as they are smoe run's
        spm = os.path.join(SHARED, "tokenizers", "mistral-v3.model")
        gg = os.path.join(SHARED, "vocab", "llama-spm.gguf")
        if not (os.path.exists(spm) and os.path.exists(gg)):
            self.skipTest("../shared tokenizer files are absent")
        for name, vocab in [("v3", spm), ("llama", gg)]:
            model = synth(self.dir.file(f"{name}.gguf"), "--preset", "tiny", "--vocab", vocab, "--dim", "64",
                          "--heads", "2", "--kv-heads", "1")
            for flags in [["-n", "16", "--temp", "0"], ["--chat", "-n", "16", "--seed", "5"],
                          ["--system", "Be kind.", "-n", "16", "--temp", "0"]]:
                with self.subTest(vocab=name, flags=flags):
                    args = ["-m", model, "-p", "What is [INST] 2 + 2?", *flags]
                    ours = self.run_prog([EXAMPLE, *args])
                    self.assertEqual(ours.returncode, 0, ours.stderr)
                    ref = self.run_prog([SMOE, "run", *args])
                    self.assertEqual(ours.stdout, ref.stdout)
                    m = re.search(rb"(\d+) prompt tokens", ours.stderr)
                    r = re.search(rb"prompt (\d+) tokens", ref.stderr)
                    self.assertEqual(m.group(1), r.group(1))

    def test_stop_string(self):
        full = self.example("-p", "q", "-n", "40", "--temp", "0").stdout.decode().rstrip("\n")
        self.assertGreater(len(full), 12)
        stop = full[8:11]
        cut = self.example("-p", "q", "-n", "40", "--temp", "0", "--stop", stop)
        ref = self.run_prog([SMOE, "run", "-m", self.model, "-p", "q", "-n", "40", "--temp", "0", "--stop", stop])
        self.assertEqual(cut.stdout, ref.stdout)
        self.assertEqual(cut.stdout.decode().rstrip("\n"), full[:full.index(stop)])
        self.assertIn(b"finish: stop", cut.stderr)

    def assert_fails(self, words, *args, model=None):
        p = self.run_prog([EXAMPLE, "-m", model or self.model, *map(str, args)])
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = p.stderr.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("generate: "), lines[0])
        self.assertIn(words, lines[0])
        self.assertEqual(p.stdout, b"")

    def test_bad_input(self):
        self.assert_fails("No such file", "-p", "a", model=self.dir.file("missing.gguf"))
        self.assert_fails("temperature", "-p", "a", "--temp", "-1")
        self.assert_fails("temperature", "-p", "a", "--temp", "1e9")
        self.assert_fails("top_p", "-p", "a", "--top-p", "0")
        self.assert_fails("top_p", "-p", "a", "--top-p", "1.5")
        self.assert_fails("top_k", "-p", "a", "--top-k", "-2")
        self.assert_fails("max_tokens", "-p", "a", "-n", "-5")
        self.assert_fails("context", "-p", "a" * 5000)
        g = gguf_tool.read(self.model)
        g.kvs = [kv for kv in g.kvs if not kv.key.startswith("tokenizer.")]
        bare = self.dir.file("bare.gguf")
        gguf_tool.write(bare, g)
        self.assert_fails("no tokenizer", "-p", "a", model=bare)
        junk = self.dir.file("junk.gguf")
        with open(junk, "wb") as f:
            f.write(b"GGUF" + b"\xff" * 60)
        p = self.run_prog([EXAMPLE, "-m", junk, "-p", "a"])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertTrue(p.stderr.startswith(b"generate: "), p.stderr)


if __name__ == "__main__":
    unittest.main()
