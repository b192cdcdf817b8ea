"""Helpers shared by the Python tests: run the smoe binary, make models."""
import contextlib
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOE = os.environ.get("SMOE_BIN", os.path.join(ROOT, "build", "smoe"))
SHARED = os.environ.get("SMOE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
PYTHON = "/usr/bin/python3"
REF = os.path.join(ROOT, "ref", "mixtral_ref.py")


def smoe(*args, timeout=600):
    """Run smoe; raise with its stderr when it fails."""
    p = subprocess.run([SMOE, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"smoe {' '.join(map(str, args))} exited {p.returncode}: {p.stderr.strip()}")
    if "Sanitizer" in p.stderr or "runtime error" in p.stderr:
        raise AssertionError(f"sanitizer report: {p.stderr[-2000:]}")
    return p


class Workdir:
    """A temporary directory that lives as long as a test class."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="smoe-test-")
        self.path = self._tmp.name

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        self._tmp.cleanup()


def synth(path, *args):
    smoe("synth", "-o", path, *args)
    return path


@contextlib.contextmanager
def exact_kernels():
    """smoe runs started inside take the exact matmul path
    (SMOE_KERNELS=reference: weights dequantized to float32, float32
    activations), for comparisons with the float64 reference; the default
    kernels round activations to 8 bits for quantized weights."""
    old = os.environ.get("SMOE_KERNELS")
    os.environ["SMOE_KERNELS"] = "reference"
    try:
        yield
    finally:
        if old is None:
            del os.environ["SMOE_KERNELS"]
        else:
            os.environ["SMOE_KERNELS"] = old


def smoe_logits(model, tokens, out, *extra):
    smoe("logits", "-m", model, "--tokens", ",".join(map(str, tokens)), "-o", out, *extra)
    return np.fromfile(out, dtype="<f4").reshape(len(tokens), -1)


def ref_logits(model, tokens, out):
    p = subprocess.run([PYTHON, REF, model, "--tokens", ",".join(map(str, tokens)), "-o", out],
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise AssertionError(f"reference failed: {p.stderr.strip()}")
    return np.fromfile(out, dtype="<f4").reshape(len(tokens), -1)


def rel_diff(a, b):
    """max |a - b| relative to max |b|."""
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))


def tokens_for(n, vocab, seed=0):
    rng = np.random.default_rng(seed)
    return [1] + [int(t) for t in rng.integers(3, vocab, size=n - 1)]
