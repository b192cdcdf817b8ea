"""Properties of the Mixtral definition, checked on smoe's own outputs:

- a prompt in one batch, in chunks, and one token at a time: same logits;
- experts that are all identical give the dense model with that FFN;
- changing an expert the router did not select changes nothing, and
  changing one it did select changes the logits (so the test can fail);
- merged and per-expert layouts of the same weights give the same logits.
"""
import re
import unittest

import numpy as np

from smoe_testlib import Workdir, rel_diff, smoe_logits, synth, tokens_for
import gguf_tool


def routing(trace_path):
    """{layer: set of experts chosen for any position}"""
    chosen = {}
    with open(trace_path) as f:
        for line in f:
            m = re.match(r"layer (\d+) pos (\d+) experts (.*)", line)
            chosen.setdefault(int(m.group(1)), set()).update(int(x.split(":")[0]) for x in m.group(3).split())
    return chosen


def overwrite_tensor(path, out, name, seed):
    """Copy a GGUF, replacing one tensor's data with other random values."""
    data = bytearray(open(path, "rb").read())
    g = gguf_tool.read(bytes(data))
    t = next(t for t in g.tensors if t.name == name)
    start = g.layout["data_offset"] + t.offset
    n = t.nbytes
    vals = np.random.default_rng(seed).uniform(-0.2, 0.2, size=n // 4).astype("<f4")
    data[start:start + n] = vals.tobytes()
    open(out, "wb").write(data)


class InvariantTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.toks = tokens_for(12, 259, seed=7)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def logits(self, model, *extra, tokens=None):
        return smoe_logits(model, tokens or self.toks, self.dir.file("out.f32"), *extra)

    def test_batch_equals_one_at_a_time(self):
        model = synth(self.dir.file("b.gguf"), "--preset", "tiny", "--seed", "31")
        whole = self.logits(model)
        for batch in ["1", "5"]:
            d = rel_diff(self.logits(model, "--batch", batch), whole)
            self.assertLessEqual(d, 1e-6, f"--batch {batch}: {d:.3e}")

    def test_identical_experts_equal_dense(self):
        moe = synth(self.dir.file("same.gguf"), "--preset", "tiny", "--seed", "32", "--identical-experts")
        dense = synth(self.dir.file("dense.gguf"), "--preset", "tiny", "--seed", "32", "--experts", "0")
        d = rel_diff(self.logits(moe), self.logits(dense))
        self.assertLessEqual(d, 1e-5, f"identical experts vs dense: {d:.3e}")
        # and a model with distinct experts does differ from the dense one
        distinct = synth(self.dir.file("distinct.gguf"), "--preset", "tiny", "--seed", "32")
        self.assertGreater(rel_diff(self.logits(distinct), self.logits(dense)), 1e-3)

    def test_unselected_expert_changes_nothing(self):
        model = synth(self.dir.file("split.gguf"), "--preset", "tiny", "--seed", "33", "--layout", "split")
        trace = self.dir.file("trace.txt")
        base = self.logits(model, "--trace-routing", trace)
        chosen = routing(trace)
        self.assertEqual(sorted(chosen), [0, 1])
        unused = [e for e in range(8) if e not in chosen[1]]
        used = sorted(chosen[1])
        self.assertTrue(unused, "every expert was selected; use a shorter prompt")
        changed = self.dir.file("changed.gguf")
        for kind in ["gate", "up", "down"]:
            overwrite_tensor(model, changed, f"blk.1.ffn_{kind}.{unused[0]}.weight", seed=1)
            self.assertTrue(np.array_equal(self.logits(changed), base), f"unselected expert {unused[0]} {kind}")
        overwrite_tensor(model, changed, f"blk.1.ffn_down.{used[0]}.weight", seed=1)
        self.assertGreater(rel_diff(self.logits(changed), base), 1e-4, "a selected expert's weights matter")

    def test_merged_equals_split(self):
        merged = synth(self.dir.file("m.gguf"), "--preset", "tiny", "--seed", "34")
        split = synth(self.dir.file("s.gguf"), "--preset", "tiny", "--seed", "34", "--layout", "split")
        self.assertTrue(np.array_equal(self.logits(merged), self.logits(split)))

    def test_prefix_logits_do_not_depend_on_later_tokens(self):
        model = synth(self.dir.file("c.gguf"), "--preset", "tiny", "--seed", "35")
        a = self.logits(model)
        other = self.toks[:6] + [t + 1 for t in self.toks[6:]]
        b = self.logits(model, tokens=other)
        self.assertTrue(np.array_equal(a[:6], b[:6]))
        self.assertFalse(np.array_equal(a[6:], b[6:]))


if __name__ == "__main__":
    unittest.main()
