"""Quantized models: `smoe quantize`, then smoe's logits against the NumPy
reference (ref/mixtral_ref.py), which dequantizes the blocks with its own
code written from the layouts.

For every type: a synthetic model (the tiny preset with dim 256, so that
every weight matrix has rows of 256, a whole number of blocks for every
type, the K types included) is quantized, described by `smoe info`, and run
on prompts of 1 and 20 tokens.  Tolerance: max |difference| <= 1e-4 of max
|logit|, as for the float types: both sides compute with the same
dequantized weights (bit for bit, the blocks decode to the same float32
values), so what remains is float32 accumulation in smoe against float64 in
the reference.

Also: on a dense model, the quantized logits stay near the float model's
(a loose per-type bound: quantization did happen, did not wreck the model,
and fewer bits cost more), a model whose
rows are partly not a whole number of K blocks, float16/bfloat16 inputs,
re-quantizing a quantized model (with a warning), and the refusals (unknown
type, unwritable output, non-finite weights, a quantized tensor whose row
length is not a whole number of blocks).  The mixes (Q4_K_M ...) are tested
in test_quant_mixes.py; here --pure gives every matrix the one type.

Set SMOE_REF_REPORT=FILE to append the measured figures to FILE.
"""
import os
import struct
import subprocess
import unittest

import numpy as np

import gguf_tool as gt
from smoe_testlib import (PYTHON, REF, SMOE, Workdir, exact_kernels, rel_diff, ref_logits, smoe, smoe_logits,
                          synth, tokens_for)

TOL = 1e-4

TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k"]
TYPE_IDS = {"q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q8_1": 9, "q2_k": 10, "q3_k": 11,
            "q4_k": 12, "q5_k": 13, "q6_k": 14, "q8_k": 15}
BLOCK = {t: 256 if t.endswith("_k") else 32 for t in TYPES}

# Quality, on a dense model (no routing: with experts, a near-tie in the
# router can flip under any perturbation and jump the logits): RMS of
# (quantized-model logits - float-model logits) / RMS of the float model's
# logits must stay under these bounds, about twice the measured figures
# (which are reported).
QUALITY = {"q8_0": 0.03, "q8_1": 0.03, "q8_k": 0.03, "q6_k": 0.08, "q5_0": 0.2, "q5_1": 0.2, "q5_k": 0.2,
           "q4_0": 0.4, "q4_1": 0.4, "q4_k": 0.4, "q3_k": 0.75, "q2_k": 1.0}
# and fewer bits must cost more
ORDER = ["q8_0", "q6_k", "q5_k", "q4_k", "q3_k", "q2_k"]

BASE = ["--preset", "tiny", "--dim", "256", "--seed", "31"]
PROMPTS = [tokens_for(1, 259, seed=1), tokens_for(20, 259, seed=2)]


def report(line):
    path = os.environ.get("SMOE_REF_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def run_smoe(*args):
    """Run smoe expecting failure; returns (exit code, stderr)."""
    p = subprocess.run([SMOE, *map(str, args)], capture_output=True, text=True, timeout=300)
    if "Sanitizer" in p.stderr or "runtime error" in p.stderr:
        raise AssertionError(f"sanitizer report: {p.stderr[-2000:]}")
    return p.returncode, p.stderr


class QuantizedModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.base = synth(cls.dir.file("base.gguf"), *BASE)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def quantize(self, src, name, qtype):
        out = self.dir.file(name)
        smoe("quantize", "--pure", src, out, qtype)  # every matrix in qtype, no mix
        return out

    def compare(self, label, model, tokens):
        # The tolerance holds for the exact path (SMOE_KERNELS=reference:
        # blocks dequantized to float32, float activations).  The fast
        # kernels round the activations to 8 bits per block, which moves the
        # logits by about 1e-2 of max |logit|: measured and printed, not
        # asserted here (tests/unit/test_kernels.c checks the kernels).
        with exact_kernels():
            a = smoe_logits(model, tokens, self.dir.file(f"{label}.smoe.f32"))
        b = ref_logits(model, tokens, self.dir.file(f"{label}.ref.f32"))
        self.assertEqual(a.shape, b.shape)
        self.assertGreater(float(abs(b).max()), 0.1)  # the logits are not flat
        d = rel_diff(a, b)
        self.assertLessEqual(d, TOL, f"{label}: {len(tokens)} tokens: max relative difference {d:.3e}")
        fast = rel_diff(smoe_logits(model, tokens, self.dir.file(f"{label}.fast.f32")), b)
        print(f"note: {label}, {len(tokens)} tokens: max |logit difference| / max |logit|: exact path {d:.1e}, "
              f"fast kernels {fast:.1e}")
        report(f"{label} n={len(tokens)} fast kernels max_rel_diff={fast:.3e}")
        return a, d

    def test_every_type_against_reference(self):
        base = gt.read(self.base)
        matrices = [t.name for t in base.tensors if len(t.dims) >= 2]
        for qtype in TYPES:
            with self.subTest(type=qtype):
                model = self.quantize(self.base, f"{qtype}.gguf", qtype)
                # every matrix in the type, every vector still F32
                g = gt.read(model)
                for t in g.tensors:
                    want = TYPE_IDS[qtype] if len(t.dims) >= 2 else 0
                    self.assertEqual(t.ggml_type, want, f"{qtype}: tensor {t.name}")
                info = smoe("info", "-m", model).stdout
                name = qtype.upper()
                self.assertRegex(info, rf"\n\s+{name}\s+{len(matrices)} tensors")
                for tokens in PROMPTS:
                    _, d = self.compare(f"{qtype}-{len(tokens)}", model, tokens)
                    report(f"{name} n={len(tokens)} max_rel_diff={d:.3e}")

    def test_quality_dense(self):
        src = synth(self.dir.file("dense.gguf"), *BASE, "--experts", "0")
        tokens = PROMPTS[1]
        ref = smoe_logits(src, tokens, self.dir.file("dense.f32")).astype(np.float64)
        err = {}
        for qtype in TYPES:
            model = self.quantize(src, f"dense-{qtype}.gguf", qtype)
            a = smoe_logits(model, tokens, self.dir.file(f"dense-{qtype}.f32")).astype(np.float64)
            err[qtype] = float(np.sqrt(np.mean((a - ref) ** 2)) / np.sqrt(np.mean(ref ** 2)))
            report(f"{qtype.upper()} dense model: RMS logit change vs float {err[qtype]:.4f}")
            with self.subTest(type=qtype):
                self.assertGreater(err[qtype], 0, "logits identical to the float model's")
                self.assertLess(err[qtype], QUALITY[qtype])
        for fewer, more in zip(ORDER[1:], ORDER):
            self.assertGreater(err[fewer], err[more], f"{fewer} is not worse than {more}")

    def test_rows_not_all_whole_blocks(self):
        """dim 128: for the K types only the matrices with rows of 256
        (ffn_down) are quantized, the rest stay F32, and it all still runs."""
        src = synth(self.dir.file("d128.gguf"), "--preset", "tiny", "--seed", "32")
        model = self.quantize(src, "d128-q4k.gguf", "q4_k")
        g = gt.read(model)
        for t in g.tensors:
            want = 12 if len(t.dims) >= 2 and t.dims[0] % 256 == 0 else 0
            self.assertEqual(t.ggml_type, want, t.name)
        self.assertTrue(any(t.ggml_type == 12 for t in g.tensors))
        self.compare("d128-q4k", model, PROMPTS[1])

    def test_half_precision_inputs(self):
        for ftype in ("f16", "bf16"):
            with self.subTest(input=ftype):
                src = synth(self.dir.file(f"{ftype}.gguf"), *BASE, "--type", ftype)
                for qtype in ("q8_0", "q5_k"):
                    model = self.quantize(src, f"{ftype}-{qtype}.gguf", qtype)
                    self.compare(f"{ftype}-{qtype}", model, PROMPTS[1])

    def test_metadata_copied(self):
        model = self.quantize(self.base, "meta-q6k.gguf", "q6_k")
        a, b = gt.read(self.base), gt.read(model)
        before = {kv.key: kv.value for kv in a.kvs}
        after = {kv.key: kv.value for kv in b.kvs}
        for key, value in before.items():
            if key != "general.file_type":
                self.assertIn(key, after)
                self.assertEqual(after[key], value, key)
        self.assertEqual(after["general.file_type"], 18)  # llama.cpp's MOSTLY_Q6_K
        self.assertEqual([t.name for t in a.tensors], [t.name for t in b.tensors])


class QuantizeRefusalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.base = synth(cls.dir.file("base.gguf"), "--preset", "tiny", "--seed", "41")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def refuse(self, *args, expect):
        rc, err = run_smoe(*args)
        self.assertNotEqual(rc, 0)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn(expect, lines[0])
        return lines[0]

    def test_unknown_type(self):
        out = self.dir.file("x.gguf")
        line = self.refuse("quantize", self.base, out, "q9_0", expect="unknown quantization type 'q9_0'")
        for t in TYPES:
            self.assertIn(t, line)  # names the valid ones
        self.refuse("quantize", self.base, out, "f16", expect="unknown quantization type")
        self.assertFalse(os.path.exists(out))

    def test_quantized_input(self):
        """A quantized model is dequantized and quantized again, with a
        one-line warning; a tensor already in its target type is copied."""
        q = self.dir.file("q4.gguf")
        smoe("quantize", self.base, q, "q4_0")
        out = self.dir.file("again.gguf")
        p = subprocess.run([SMOE, "quantize", "--pure", q, out, "q8_0"], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("warning", lines[0])
        self.assertIn("already quantized (Q4_0)", lines[0])
        self.assertIn("compound", lines[0])
        g = gt.read(out)
        self.assertTrue(all(t.ggml_type == 8 for t in g.tensors if len(t.dims) >= 2))
        smoe("info", "-m", out)
        tokens = PROMPTS[1]
        with exact_kernels():
            a = smoe_logits(out, tokens, self.dir.file("again.f32"))
        b = ref_logits(out, tokens, self.dir.file("again.ref.f32"))
        self.assertLessEqual(rel_diff(a, b), TOL)
        # same type in and out: the bytes are copied, not re-rounded
        same = self.dir.file("same.gguf")
        smoe("quantize", "--pure", q, same, "q4_0")
        before, after = gt.read(q), gt.read(same)
        for t in before.tensors:
            self.assertEqual(after.tensor(t.name).data, t.data, t.name)

    def test_unwritable_output(self):
        blocker = self.dir.file("a-file")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        self.refuse("quantize", self.base, os.path.join(blocker, "out.gguf"), "q4_0", expect="out.gguf")
        if os.geteuid() != 0:  # root writes into read-only directories anyway
            ro = self.dir.file("readonly")
            os.mkdir(ro, 0o555)
            self.refuse("quantize", self.base, os.path.join(ro, "out.gguf"), "q4_0", expect="out.gguf")
            self.assertEqual(os.listdir(ro), [])

    def test_failure_midway_leaves_nothing(self):
        """A NaN weight stops the conversion after the header is written: the
        error names the tensor and row, and no file (nor temporary) is left."""
        g = gt.read(self.base)
        t = g.tensor("blk.1.ffn_up_exps.weight")
        data = bytearray(t.data)
        row = 3
        data[(row * t.dims[0] + 5) * 4:(row * t.dims[0] + 6) * 4] = struct.pack("<f", float("nan"))
        t.data = bytes(data)
        g.relayout()
        bad = self.dir.file("nan.gguf")
        gt.write(bad, g)
        outdir = self.dir.file("nan-out")
        os.mkdir(outdir)
        self.refuse("quantize", bad, os.path.join(outdir, "q.gguf"), "q4_0",
                    expect=f"tensor 'blk.1.ffn_up_exps.weight' row {row}: has a value that is not finite")
        self.assertEqual(os.listdir(outdir), [])

    def test_bad_arguments(self):
        self.refuse("quantize", self.base, expect="quantize needs IN.gguf OUT.gguf TYPE")
        self.refuse("quantize", self.dir.file("missing.gguf"), self.dir.file("y.gguf"), "q4_0",
                    expect="missing.gguf")

    def test_row_length_not_whole_blocks(self):
        """A Q4_0 tensor declared with rows of 48: one line from `smoe info`
        naming the tensor, the row length and the block size; the reference
        refuses it too."""
        q = self.dir.file("q4-for-bad.gguf")
        smoe("quantize", self.base, q, "q4_0")
        g = gt.read(q)
        t = g.tensor("blk.0.attn_q.weight")
        self.assertEqual(t.ggml_type, 2)
        t.dims = [48] + list(t.dims[1:])
        bad = self.dir.file("rows48.gguf")
        gt.write(bad, g)
        self.refuse("info", "-m", bad,
                    expect="tensor 'blk.0.attn_q.weight': row length 48 is not a multiple of the Q4_0 block size 32")
        p = subprocess.run([PYTHON, REF, bad, "--tokens", "1", "-o", self.dir.file("r.f32")],
                           capture_output=True, text=True, timeout=300)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not a multiple of the Q4_0 block size 32", p.stderr)


if __name__ == "__main__":
    unittest.main()
