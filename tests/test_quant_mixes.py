"""Quantization mixes: `smoe quantize IN OUT q4_k_m` and the other named mixes.

The expected type of every tensor comes from the table below (`wanted`),
written from what llama.cpp's mixes of the same names do (attention V/K at
Q8_0 for mixture models, the output head at Q6_K, some ffn_down layers at
higher precision, the router kept F32, the block-size fallbacks).

- Every mix is applied for real to a small mixture model (2 layers, rows of
  256 so the K types apply): the file loads in smoe, each tensor has the
  wanted type, the file size is the sum of the tensors' sizes plus the
  header, the sizes grow from Q2_K to Q8_0, and the logits of one mix match
  the NumPy reference.
- The layer-dependent rules (the first/last eighth, every third layer,
  the first 1/16 or 4 layers) need more layers: `smoe quantize --dry-run`
  prints the plan for 16-layer models (merged and per-expert layouts, dense
  with 2 and 4 queries per KV head, tied output, rows of 128 for the
  fallbacks), compared tensor by tensor with the table; the dry run is
  checked against real files above.
- The progress bar appears on a terminal only.
"""
import os
import pty
import re
import subprocess
import unittest

import gguf_tool as gt
from smoe_testlib import SMOE, Workdir, exact_kernels, rel_diff, ref_logits, smoe, smoe_logits, synth

MIXES = ["q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "q8_0"]
BASE = {"q2_k": "Q2_K", "q3_k_s": "Q3_K", "q3_k_m": "Q3_K", "q4_k_s": "Q4_K", "q4_k_m": "Q4_K",
        "q5_k_s": "Q5_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K", "q8_0": "Q8_0"}
FILE_TYPE = {"q2_k": 10, "q3_k_s": 11, "q3_k_m": 12, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16,
             "q5_k_m": 17, "q6_k": 18, "q8_0": 7}
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
NAME_OF = {tid: info[0] for tid, info in gt.GGML_TYPES.items()}
ID_OF = {info[0]: tid for tid, info in gt.GGML_TYPES.items()}
BLOCK = {info[0]: info[1] for info in gt.GGML_TYPES.values()}


def more_bits(layer, n):
    """The first and last eighth of the layers and every third one between."""
    return layer < n // 8 or layer >= 7 * n // 8 or (layer - n // 8) % 3 == 2


def wanted(mix, name, ne0, in_type, n_dims, facts):
    """The type a mix gives a tensor (names, not ids)."""
    if n_dims < 2:
        return in_type
    base, n, moe = BASE[mix], facts["layers"], facts["moe"]
    m = re.match(r"blk\.(\d+)\.(.*)$", name)
    layer, rest = (int(m.group(1)), m.group(2)) if m else (-1, name)
    low = mix in ("q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m")
    if rest == "ffn_gate_inp.weight":
        t = "F32"
    elif name == "output.weight" or (name == "token_embd.weight" and facts["tied"]):
        t = "Q8_0" if mix == "q8_0" else "Q6_K"
    elif rest == "attn_k.weight":
        t = "Q8_0" if moe else base
    elif rest == "attn_v.weight":
        if moe:
            t = "Q8_0"
        elif mix == "q2_k":
            t = "Q4_K" if facts["gqa"] >= 4 else "Q3_K"
        elif mix == "q3_k_m":
            t = "Q5_K" if layer < 2 else "Q4_K"
        elif mix == "q4_k_s":
            t = "Q5_K" if layer < 4 else base
        elif mix in ("q4_k_m", "q5_k_m"):
            t = "Q6_K" if more_bits(layer, n) else base
        else:
            t = base
    elif rest == "attn_output.weight":
        if moe:
            t = "Q5_K" if low else base
        else:
            t = {"q2_k": "Q3_K", "q3_k_m": "Q4_K"}.get(mix, base)
    elif rest.startswith("ffn_down"):
        if mix == "q2_k":
            t = "Q3_K"
        elif mix == "q3_k_m":
            t = "Q5_K" if layer < n // 16 else "Q4_K"
        elif mix == "q4_k_s":
            t = "Q5_K" if layer < n // 8 else base
        elif mix in ("q4_k_m", "q5_k_m"):
            t = "Q6_K" if more_bits(layer, n) else base
        else:
            t = base
    else:
        t = base
    if ne0 % BLOCK[t]:
        t = FALLBACK.get(t)
        if t is None or ne0 % BLOCK[t]:
            t = in_type
    return t


def facts_of(g):
    heads = g.get("llama.attention.head_count")
    return {"layers": g.get("llama.block_count"), "moe": (g.get("llama.expert_count") or 0) > 1,
            "gqa": heads // g.get("llama.attention.head_count_kv", heads), "tied": not g.has_tensor("output.weight")}


def dry_run(model, mix):
    """{name: (in type, out type, bytes)} and the total line of --dry-run."""
    out = smoe("quantize", "--dry-run", model, mix).stdout.splitlines()
    plan = {}
    for line in out[:-1]:
        name, tin, arrow, tout, nbytes, unit = line.split()
        assert arrow == "->" and unit == "bytes", line
        plan[name] = (tin, tout, int(nbytes))
    assert out[-1].startswith("total: "), out[-1]
    return plan, out[-1]


# 2 layers, 2 experts, 8 query heads on 1 KV head; every row 256 long
SMALL_MOE = ["--preset", "tiny", "--dim", "256", "--ffn", "256", "--experts", "2", "--top-k", "1",
             "--heads", "8", "--kv-heads", "1", "--type", "f16", "--seed", "51"]
# 16 layers for the layer rules (dry runs only)
DEEP = ["--preset", "tiny", "--dim", "256", "--ffn", "256", "--layers", "16", "--experts", "2", "--top-k", "1",
        "--type", "f16", "--seed", "52"]


class MixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.src = synth(cls.dir.file("moe.gguf"), *SMALL_MOE)
        cls.src_g = gt.read(cls.src)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def check_types(self, label, g_in, types_out, facts):
        """types_out: {name: type name} of the output; compared with the table."""
        self.assertEqual(sorted(types_out), sorted(t.name for t in g_in.tensors), label)
        for t in g_in.tensors:
            want = wanted(label.split("/")[0], t.name, t.dims[0], NAME_OF[t.ggml_type], len(t.dims), facts)
            self.assertEqual(types_out[t.name], want, f"{label}: {t.name}")

    def test_every_mix_for_real(self):
        facts = facts_of(self.src_g)
        in_size = os.path.getsize(self.src)
        header_in = in_size - sum(t.nbytes for t in self.src_g.tensors)
        sizes = []
        for mix in MIXES:
            with self.subTest(mix=mix):
                out = self.dir.file(f"moe-{mix}.gguf")
                p = smoe("quantize", self.src, out, mix)
                self.assertEqual(p.stderr, "")  # no progress bar off a terminal
                self.assertIn(f"{mix.upper()} mix", p.stdout)
                g = gt.read(out)
                types = {t.name: NAME_OF[t.ggml_type] for t in g.tensors}
                self.check_types(mix, self.src_g, types, facts)
                # the dry run promised exactly this
                plan, total = dry_run(self.src, mix)
                self.assertEqual({k: v[1] for k, v in plan.items()}, types)
                for t in g.tensors:
                    self.assertEqual(plan[t.name][2], t.nbytes, t.name)
                self.assertEqual(g.get("general.file_type"), FILE_TYPE[mix])
                # the size: the tensors' bytes plus a header like the input's
                data = sum(t.nbytes for t in g.tensors)
                size = os.path.getsize(out)
                self.assertGreaterEqual(size, data)
                self.assertLessEqual(size, data + header_in + 32 * len(g.tensors) + 256)
                self.assertIn(f"tensor data {data} bytes", total)
                sizes.append(size)
                # it loads and runs
                info = smoe("info", "-m", out).stdout
                self.assertIn("layers:        2", info)
                smoe_logits(out, [1, 40, 41, 42], self.dir.file(f"{mix}.f32"))
        # fewer bits, smaller files, in the order of the mixes
        for (a, sa), (b, sb) in zip(zip(MIXES, sizes), zip(MIXES[1:], sizes[1:])):
            self.assertLess(sa, sb, f"{a} is not smaller than {b}")

    def test_mix_against_reference(self):
        out = self.dir.file("ref-q4_k_m.gguf")
        smoe("quantize", self.src, out, "Q4_K_M")  # names are case-insensitive
        tokens = [1, 72, 101, 108, 108, 111, 44, 32, 119]
        with exact_kernels():  # the float path: the default kernels round activations to 8 bits
            a = smoe_logits(out, tokens, self.dir.file("r.smoe.f32"))
        b = ref_logits(out, tokens, self.dir.file("r.ref.f32"))
        self.assertLessEqual(rel_diff(a, b), 1e-4)

    def test_layer_rules_by_dry_run(self):
        models = {
            "moe-merged": DEEP,
            "moe-split": DEEP + ["--layout", "split"],
            "dense-gqa2": DEEP + ["--experts", "0"],
            "dense-gqa4-tied": DEEP + ["--experts", "0", "--heads", "8", "--kv-heads", "2", "--tied"],
            "rows128": ["--preset", "tiny", "--layers", "16", "--experts", "4", "--seed", "53"],
        }
        for label, args in models.items():
            model = synth(self.dir.file(f"{label}.gguf"), *args)
            g = gt.read(model)
            facts = facts_of(g)
            for mix in MIXES:
                with self.subTest(model=label, mix=mix):
                    plan, total = dry_run(model, mix)
                    self.check_types(f"{mix}/{label}", g, {k: v[1] for k, v in plan.items()}, facts)
                    for t in g.tensors:
                        self.assertEqual(plan[t.name][0], NAME_OF[t.ggml_type])
                        self.assertEqual(plan[t.name][2], gt.tensor_nbytes(t.dims, ID_OF[plan[t.name][1]]))
            if label == "moe-split":
                # all experts of a layer alike
                plan, _ = dry_run(model, "q4_k_m")
                for layer in range(16):
                    kinds = {plan[f"blk.{layer}.ffn_down.{e}.weight"][1] for e in range(2)}
                    self.assertEqual(len(kinds), 1)
        # the layer rules did come into play: Q4_K_M's ffn_down on layers 0, 1, 4, 7, 10, 13, 14, 15
        plan, _ = dry_run(self.dir.file("moe-merged.gguf"), "q4_k_m")
        six = [L for L in range(16) if plan[f"blk.{L}.ffn_down_exps.weight"][1] == "Q6_K"]
        self.assertEqual(six, [0, 1, 4, 7, 10, 13, 14, 15])
        plan, _ = dry_run(self.dir.file("rows128.gguf"), "q4_k_m")
        self.assertEqual(plan["blk.0.attn_q.weight"][1], "Q5_0")   # rows of 128: Q4_K falls back
        self.assertEqual(plan["output.weight"][1], "Q8_0")

    def test_pure_and_names(self):
        plan, total = dry_run(self.src, "q8_0")
        self.assertEqual(plan["blk.0.ffn_gate_inp.weight"][1], "F32")
        out = subprocess.run([SMOE, "quantize", "--dry-run", "--pure", self.src, "q8_0"], capture_output=True,
                             text=True, timeout=60).stdout.splitlines()
        self.assertTrue(all(" -> Q8_0 " in line for line in out[:-1] if "norm" not in line), out)
        p = subprocess.run([SMOE, "quantize", "--pure", self.src, self.dir.file("x.gguf"), "q4_k_m"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown quantization type 'q4_k_m'", p.stderr)
        self.assertFalse(os.path.exists(self.dir.file("x.gguf")))
        help_text = smoe("quantize", "--help").stdout
        for mix in MIXES:
            self.assertIn(mix, help_text)
        self.assertIn("ffn_gate_inp", help_text)

    def test_progress_bar_on_a_terminal(self):
        master, slave = pty.openpty()
        try:
            p = subprocess.run([SMOE, "quantize", self.src, self.dir.file("tty.gguf"), "q8_0"], stderr=slave,
                               stdout=subprocess.PIPE, timeout=120)
            os.close(slave)
            slave = None
            seen = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(p.returncode, 0)
        text = seen.decode(errors="replace")
        self.assertIn("quantizing [", text)
        self.assertIn("100%", text)
        self.assertTrue(text.endswith("\r\033[K"), repr(text[-40:]))


if __name__ == "__main__":
    unittest.main()
