"""`smoe bench`: the shape of its table and JSON lines on tiny models, with
few repetitions and small prompt/generation lengths.  Nothing about speed
is asserted; the bytes read per generated token are checked against a
computation from the file's tensors (every tensor whole, k/n of the experts,
one embedding row unless it doubles as the output head)."""
import json
import re
import subprocess
import unittest

import gguf_tool as gt
from smoe_testlib import SMOE, Workdir, smoe, synth

FAST = ["-r", "1", "-p", "8", "-n", "4", "--bw-mib", "16"]


def expected_bytes_per_token(path):
    g = gt.read(path)
    n_exp = g.get("llama.expert_count") or 0
    k = g.get("llama.expert_used_count") or 0
    tied = not g.has_tensor("output.weight")
    total = 0.0
    for t in g.tensors:
        if t.name == "token_embd.weight" and not tied:
            total += t.nbytes / t.dims[1]
        elif n_exp and re.match(r"blk\.\d+\.ffn_(gate|up|down)(_exps|\.\d+)\.weight$", t.name):
            total += t.nbytes * k / n_exp
        else:
            total += t.nbytes
    return total


class BenchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.tiny = synth(cls.dir.file("tiny.gguf"), "--preset", "tiny", "--seed", "71")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def bench_json(self, model, *extra):
        out = smoe("bench", "-m", model, *FAST, "--json", *extra).stdout
        return [json.loads(line) for line in out.strip().splitlines()]

    def test_table(self):
        out = smoe("bench", "-m", self.tiny, *FAST).stdout
        for label in ("model:", "threads:", "bandwidth:", "per token:", "ceiling:", "peak RSS:"):
            self.assertRegex(out, rf"(?m)^{label}", out)
        self.assertRegex(out, r"(?m)^pp8 +[0-9.]+ ± [0-9.]+$")
        self.assertRegex(out, r"(?m)^tg4 +[0-9.]+ ± [0-9.]+ +[0-9.]+% of the ceiling$")
        self.assertRegex(out, r"bandwidth: +[0-9.]+ GB/s \(streaming read of 16 MiB")
        self.assertIn("kv cache: F16", out)

    def test_json_lines(self):
        rows = self.bench_json(self.tiny, "-t", "1")
        self.assertEqual([r["test"] for r in rows], ["pp8", "tg4"])
        keys = {"model", "model_bytes", "tensor_bytes", "tensor_types", "params", "params_active", "threads",
                "kv_type", "test", "n_prompt", "n_gen", "reps", "tokens_per_s", "tokens_per_s_sd",
                "samples_tokens_per_s", "bandwidth_bytes_per_s", "bytes_per_token", "ceiling_tokens_per_s",
                "percent_of_ceiling", "peak_rss_bytes"}
        bpt = expected_bytes_per_token(self.tiny)
        for r in rows:
            self.assertEqual(set(r), keys)
            self.assertEqual(r["threads"], 1)
            self.assertEqual(r["reps"], 1)
            self.assertEqual(len(r["samples_tokens_per_s"]), 1)
            self.assertGreater(r["tokens_per_s"], 0)
            self.assertEqual(r["tokens_per_s_sd"], 0)
            self.assertGreater(r["bandwidth_bytes_per_s"], 0)
            self.assertAlmostEqual(r["bytes_per_token"], bpt, delta=1e-6 * bpt)
            self.assertAlmostEqual(r["ceiling_tokens_per_s"], r["bandwidth_bytes_per_s"] / bpt,
                                   delta=1e-9 * r["ceiling_tokens_per_s"])
            self.assertGreater(r["peak_rss_bytes"], 0)
        pp, tg = rows
        self.assertEqual((pp["n_prompt"], pp["n_gen"], tg["n_prompt"], tg["n_gen"]), (8, 0, 0, 4))
        self.assertIsNone(pp["percent_of_ceiling"])
        self.assertAlmostEqual(tg["percent_of_ceiling"], 100 * tg["tokens_per_s"] / tg["ceiling_tokens_per_s"])

    def test_repetitions_lists_and_no_bandwidth(self):
        out = smoe("bench", "-m", self.tiny, "-r", "2", "-p", "4,6", "-n", "0", "--bw-mib", "0", "--json").stdout
        rows = [json.loads(line) for line in out.strip().splitlines()]
        self.assertEqual([r["test"] for r in rows], ["pp4", "pp6"])
        for r in rows:
            self.assertEqual(len(r["samples_tokens_per_s"]), 2)
            self.assertGreaterEqual(r["tokens_per_s_sd"], 0)
            self.assertIsNone(r["bandwidth_bytes_per_s"])
            self.assertIsNone(r["ceiling_tokens_per_s"])

    def test_every_kind_of_model(self):
        """Dense, tied output, per-expert tensors, BF16, a quantization mix,
        a context shorter than the test."""
        models = {
            "dense-tied": ["--experts", "0", "--tied"],
            "split-bf16": ["--layout", "split", "--type", "bf16"],
            "short-ctx": ["--ctx", "8"],
        }
        paths = {name: synth(self.dir.file(f"{name}.gguf"), "--preset", "tiny", "--seed", "72", *args)
                 for name, args in models.items()}
        paths["q4_k_m"] = self.dir.file("q4km.gguf")
        src = synth(self.dir.file("d256.gguf"), "--preset", "tiny", "--dim", "256", "--experts", "2", "--seed", "73")
        smoe("quantize", src, paths["q4_k_m"], "q4_k_m")
        for name, path in paths.items():
            with self.subTest(model=name):
                rows = self.bench_json(path, "-p", "12")
                self.assertEqual([r["test"] for r in rows], ["pp12", "tg4"])
                self.assertAlmostEqual(rows[0]["bytes_per_token"], expected_bytes_per_token(path),
                                       delta=1e-6 * rows[0]["bytes_per_token"])
        # a tied head is read whole: more than the untied model's one row
        g = gt.read(paths["dense-tied"])
        emb = g.tensor("token_embd.weight").nbytes
        self.assertGreaterEqual(expected_bytes_per_token(paths["dense-tied"]), emb)

    def test_refusals(self):
        for args, words in ((["bench"], "no model"),
                            (["bench", "-m", self.tiny, "-p", "x"], "-p: 'x' is not an integer"),
                            (["bench", "-m", self.tiny, "-r", "0"], "-r: '0' is not an integer from 1"),
                            (["bench", "-m", self.tiny, "-p", "0", "-n", "0"], "nothing to measure"),
                            (["bench", "-m", self.dir.file("missing.gguf")], "missing.gguf")):
            p = subprocess.run([SMOE, *args], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn(words, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


if __name__ == "__main__":
    unittest.main()
