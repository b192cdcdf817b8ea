"""`smoe perplexity`: perplexity over a text and KL divergence from a base model.

- On a tiny F32 synthetic model, smoe's perplexity (F32 KV cache) agrees
  with the NumPy reference's (ref/mixtral_ref.py --perplexity, the same
  windows: BOS + ctx-1 text tokens, second half scored) to 4 significant
  digits; with the default F16 KV cache it stays close too.
- A model against itself: KL exactly 0, top-1 agreement 100 %.
- Quantized against the F16 original: Q8_0's KL is small and smaller than
  Q4_K_M's.
- Output shape, --chunks, and the refusals.

Set SMOE_REF_REPORT=FILE to append the measured figures to FILE.
"""
import json
import os
import subprocess
import unittest

import gguf_tool as gt
from smoe_testlib import PYTHON, REF, SMOE, Workdir, smoe, synth

# about 200 tokens with the byte vocabulary: 6 windows of 32
TEXT = ("The river ran past the old mill and under the stone bridge, where children threw bread to the "
        "ducks every morning before school.")
CTX = 32


def report(line):
    path = os.environ.get("SMOE_REF_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def ppl_json(model, text, *extra):
    out = smoe("perplexity", "-m", model, "-f", text, "--ctx", CTX, "--json", *extra).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def run_smoe(*args):
    p = subprocess.run([SMOE, *map(str, args)], capture_output=True, text=True, timeout=300)
    if "Sanitizer" in p.stderr or "runtime error" in p.stderr:
        raise AssertionError(f"sanitizer report: {p.stderr[-2000:]}")
    return p


class PerplexityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.text = cls.dir.file("text.txt")
        with open(cls.text, "w") as f:
            f.write(TEXT)
        cls.f32 = synth(cls.dir.file("tiny-f32.gguf"), "--preset", "tiny", "--seed", "61")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_matches_reference(self):
        ids = smoe("tokenize", "-m", self.f32, "--no-bos", "--file", self.text).stdout.split()
        bos = gt.read(self.f32).get("tokenizer.ggml.bos_token_id")
        p = subprocess.run([PYTHON, REF, self.f32, "--perplexity", "--tokens", ",".join(ids), "--ctx", str(CTX),
                            "--bos", str(bos)], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        ref = dict(line.split(" = ") for line in p.stdout.strip().splitlines())
        ref_ppl, ref_n = float(ref["perplexity"]), int(ref["scored"])
        exact = ppl_json(self.f32, self.text, "--kv", "f32")
        self.assertEqual(exact["text_tokens"], len(ids))
        self.assertEqual(exact["windows"], len(ids) // (CTX - 1))
        self.assertEqual(exact["scored"], ref_n)
        self.assertEqual(ref_n, exact["windows"] * (CTX - CTX // 2))
        d32 = abs(exact["perplexity"] - ref_ppl) / ref_ppl
        self.assertLess(d32, 5e-5, f"smoe {exact['perplexity']} vs reference {ref_ppl}")  # 4 significant digits
        self.assertEqual(f"{exact['perplexity']:.4g}", f"{ref_ppl:.4g}")
        half = ppl_json(self.f32, self.text)  # the default F16 cache
        self.assertEqual(half["kv_type"], "f16")
        d16 = abs(half["perplexity"] - ref_ppl) / ref_ppl
        self.assertLess(d16, 1e-3)
        report(f"perplexity tiny-f32 ctx {CTX}: reference {ref_ppl:.9g}, smoe F32 KV {exact['perplexity']:.9g} "
               f"(rel {d32:.1e}), F16 KV {half['perplexity']:.9g} (rel {d16:.1e})")

    def test_self_kl_is_zero(self):
        r = ppl_json(self.f32, self.text, "--kl-base", self.f32)
        self.assertEqual(r["kl_mean"], 0.0)
        self.assertEqual(r["top1_agreement"], 1.0)
        self.assertEqual(r["base_perplexity"], r["perplexity"])

    def test_quantized_kl(self):
        # rows of 256, so that Q4_K_M's K types apply
        base = synth(self.dir.file("b16.gguf"), "--preset", "tiny", "--dim", "256", "--type", "f16", "--seed", "62")
        kl, top1 = {}, {}
        for mix in ("q8_0", "q4_k_m"):
            q = self.dir.file(f"b-{mix}.gguf")
            smoe("quantize", base, q, mix)
            r = ppl_json(q, self.text, "--kl-base", base)
            kl[mix], top1[mix] = r["kl_mean"], r["top1_agreement"]
            report(f"KL tiny-dim256 {mix} vs F16: {r['kl_mean']:.3e} +- {r['kl_se']:.1e}, top-1 "
                   f"{100 * r['top1_agreement']:.1f}%, ppl {r['perplexity']:.3f} (base {r['base_perplexity']:.3f})")
            self.assertGreater(r["kl_mean"], 0)
        self.assertLess(kl["q8_0"], 0.01)
        self.assertLess(kl["q8_0"], kl["q4_k_m"])
        self.assertGreater(top1["q8_0"], 0.9)

    def test_text_report_and_chunks(self):
        out = smoe("perplexity", "-m", self.f32, "-f", self.text, "--ctx", CTX, "--chunks", 2,
                   "--kl-base", self.f32).stdout
        self.assertIn("2 windows of 32 (BOS first), the last 16 of each scored: 32 tokens", out)
        for label in ("perplexity:", "base perplexity:", "KL divergence:", "top-1 agreement: 100.00% (32 of 32)"):
            self.assertIn(label, out)

    def test_refusals(self):
        short = self.dir.file("short.txt")
        with open(short, "w") as f:
            f.write("too short")
        p = run_smoe("perplexity", "-m", self.f32, "-f", short, "--ctx", 64)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("fewer than one window of 63", p.stderr)
        p = run_smoe("perplexity", "-m", self.f32)
        self.assertIn("no text", p.stderr)
        p = run_smoe("perplexity", "-m", self.f32, "-f", self.dir.file("missing.txt"))
        self.assertIn("missing.txt: cannot read", p.stderr)
        other = synth(self.dir.file("v300.gguf"), "--preset", "tiny", "--vocab-size", "300")
        p = run_smoe("perplexity", "-m", self.f32, "-f", self.text, "--ctx", CTX, "--kl-base", other)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("300 tokens in its vocabulary", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
