"""The `smoe` command line: info output, synth presets and options, and
clear errors for bad arguments."""
import os
import subprocess
import unittest

import gguf_tool
from smoe_testlib import SMOE, Workdir, smoe, synth


def run(*args):
    return subprocess.run([SMOE, *map(str, args)], capture_output=True, text=True, timeout=120)


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.tiny = synth(cls.dir.file("tiny.gguf"), "--preset", "tiny")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_info_describes_the_model(self):
        out = smoe("info", "-m", self.tiny).stdout
        for want in ["architecture:  llama, mixture of experts: 8 experts, 2 used per token",
                     "layers:        2", "embedding:     128", "context:       2048 tokens",
                     "heads:         4 query, 2 key/value (head size 32", "vocabulary:    259",
                     "F32", "tokenizer:     llama (SentencePiece BPE), 259 tokens",
                     "license:", "parameters:"]:
            self.assertIn(want, out)

    def test_info_parameter_counts(self):
        """total = every element; active = non-expert weights except the
        embedding, one embedding row, and k/n of the expert weights."""
        g = gguf_tool.read(self.tiny)
        total = expert = 0
        for t in g.tensors:
            n = 1
            for d in t.dims:
                n *= d
            total += n
            if "_exps" in t.name:
                expert += n
        dim, vocab = 128, 259
        active = total - expert + expert * 2 // 8 - dim * vocab + dim
        out = smoe("info", "-m", self.tiny).stdout
        line = next(l for l in out.splitlines() if l.startswith("parameters:"))
        self.assertIn(f"{total / 1e6:.2f} M total", line)
        self.assertIn(f"{active / 1e3:.2f} K active", line)

    def test_synth_options_shape_the_file(self):
        path = synth(self.dir.file("opt.gguf"), "--preset", "tiny", "--type", "bf16", "--layout", "split",
                     "--dim", "64", "--heads", "2", "--kv-heads", "1", "--experts", "4", "--top-k", "1",
                     "--layers", "3", "--tied")
        g = gguf_tool.read(path)
        names = {t.name: t for t in g.tensors}
        self.assertIn("blk.2.ffn_down.3.weight", names)
        self.assertNotIn("output.weight", names)
        self.assertEqual(names["blk.0.attn_k.weight"].dims, [64, 32])
        self.assertEqual(names["blk.0.attn_q.weight"].ggml_type, 30)   # BF16
        self.assertEqual(names["blk.0.attn_norm.weight"].ggml_type, 0)  # norms stay F32
        self.assertEqual(g.get("llama.expert_used_count"), 1)
        info = smoe("info", "-m", path).stdout
        self.assertIn("one tensor per expert", info)
        self.assertIn("tied to the token embedding", info)

    def test_synth_is_deterministic(self):
        a = synth(self.dir.file("a.gguf"), "--preset", "tiny", "--seed", "9")
        b = synth(self.dir.file("b.gguf"), "--preset", "tiny", "--seed", "9")
        c = synth(self.dir.file("c.gguf"), "--preset", "tiny", "--seed", "10")
        self.assertEqual(open(a, "rb").read(), open(b, "rb").read())
        self.assertNotEqual(open(a, "rb").read(), open(c, "rb").read())

    def test_bad_arguments_give_one_line(self):
        cases = [
            (["info"], "no model"),
            (["info", "-m", "/nonexistent.gguf"], "cannot open"),
            (["synth", "--preset", "huge", "-o", "x.gguf"], "unknown preset"),
            (["synth", "--dim", "abc", "-o", "x.gguf"], "--dim"),
            (["synth", "--experts", "4", "--top-k", "5", "-o", "x.gguf"], "top-k"),
            (["synth", "--type", "q4_k", "-o", "x.gguf"], "--type"),
            (["synth", "--preset", "tiny"], "no output file"),
            (["logits", "-m", self.tiny, "--tokens", "1,x", "-o", "o.f32"], "--tokens"),
            (["logits", "-m", self.tiny, "--tokens", "1,999", "-o", self.dir.file("o.f32")], "outside the vocabulary"),
            (["frobnicate"], "unknown command"),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                p = run(*args)
                self.assertNotEqual(p.returncode, 0)
                self.assertGreater(p.returncode, 0, "killed by a signal")
                lines = p.stderr.splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertTrue(lines[0].startswith("smoe: "), lines[0])
                self.assertIn(words, lines[0])

    def test_vocabulary_from_files(self):
        shared = os.environ.get("SMOE_SHARED", "")
        spm = os.path.join(shared, "tokenizers", "mistral-v3.model")
        gg = os.path.join(shared, "vocab", "llama-spm.gguf")
        if not (os.path.exists(spm) and os.path.exists(gg)):
            self.skipTest("../shared tokenizer files are absent")
        a = synth(self.dir.file("v3.gguf"), "--preset", "tiny", "--vocab", spm, "--dim", "64", "--heads", "2",
                  "--kv-heads", "1")
        info = smoe("info", "-m", a).stdout
        self.assertIn("32768 tokens", info)
        g = gguf_tool.read(a)
        self.assertEqual(g.get("tokenizer.ggml.tokens")[3], "[INST]")
        b = synth(self.dir.file("llama.gguf"), "--preset", "tiny", "--vocab", gg, "--dim", "64", "--heads", "2",
                  "--kv-heads", "1")
        self.assertIn("32000 tokens", smoe("info", "-m", b).stdout)


if __name__ == "__main__":
    unittest.main()
