"""smoe's logits against the independent NumPy reference (ref/mixtral_ref.py).

Several synthetic models cover the layouts, weight types and shapes the
issue names; each is compared at prompts of several lengths.  Tolerance:
max |difference| <= 1e-4 of max |logit| for every weight type: F16 and BF16
weights are widened to float32 exactly on both sides, so the only error is
float32 accumulation in smoe against float64 in the reference.

Set SMOE_REF_REPORT=FILE to append the measured figures to FILE.
"""
import os
import unittest

from smoe_testlib import SHARED, Workdir, rel_diff, ref_logits, smoe_logits, synth, tokens_for

TOL = 1e-4

# name -> synth arguments
MODELS = {
    "merged-f32-gqa2": ["--preset", "tiny", "--seed", "11"],
    "split-f32": ["--preset", "tiny", "--seed", "12", "--layout", "split"],
    "merged-f16": ["--preset", "tiny", "--seed", "13", "--type", "f16"],
    "split-bf16": ["--preset", "tiny", "--seed", "14", "--layout", "split", "--type", "bf16"],
    "gqa1-top1": ["--preset", "tiny", "--seed", "15", "--heads", "4", "--kv-heads", "4", "--top-k", "1"],
    "gqa4-topall": ["--preset", "tiny", "--seed", "16", "--heads", "8", "--kv-heads", "2", "--top-k", "8"],
    "dense-f32": ["--preset", "tiny", "--seed", "17", "--experts", "0"],
    "dense-bf16-tied": ["--preset", "tiny", "--seed", "18", "--experts", "0", "--type", "bf16", "--tied"],
    "small-f16-gqa4": ["--preset", "small", "--seed", "19", "--type", "f16"],
}
LENGTHS = [1, 9, 64]


def report(line):
    path = os.environ.get("SMOE_REF_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class ReferenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def compare(self, name, model, tokens):
        a = smoe_logits(model, tokens, self.dir.file(f"{name}.smoe.f32"))
        b = ref_logits(model, tokens, self.dir.file(f"{name}.ref.f32"))
        self.assertEqual(a.shape, b.shape)
        d = rel_diff(a, b)
        report(f"{name} n={len(tokens)} max_rel_diff={d:.3e}")
        self.assertLessEqual(d, TOL, f"{name}: {len(tokens)} tokens: max relative difference {d:.3e}")
        # the comparison can fail: the logits are not flat
        self.assertGreater(float(abs(b).max()), 0.1)
        return d

    def test_models(self):
        for name, args in MODELS.items():
            with self.subTest(model=name):
                model = synth(self.dir.file(f"{name}.gguf"), *args)
                for n in LENGTHS:
                    self.compare(f"{name}", model, tokens_for(n, 259, seed=n))

    def test_far_positions(self):
        """A long prompt reaches positions far into the context (rope angles
        and attention over hundreds of keys)."""
        model = synth(self.dir.file("far.gguf"), "--preset", "tiny", "--seed", "21", "--ctx", "1024")
        self.compare("far-1000", model, tokens_for(1000, 259, seed=3))

    def test_real_vocabulary(self):
        """A model with Mixtral 8x7B's real 32000-token vocabulary."""
        spm = os.path.join(SHARED, "tokenizers", "mistral-v1.model")
        if not os.path.exists(spm):
            self.skipTest(f"{spm} is absent")
        model = synth(self.dir.file("v1.gguf"), "--preset", "tiny", "--seed", "22", "--vocab", spm, "--type", "bf16")
        self.compare("vocab-v1-bf16", model, tokens_for(24, 32000, seed=5))


if __name__ == "__main__":
    unittest.main()
