"""End-to-end check of a cross build (build-arm64) against this machine's.

Run by tests/run.py for a build directory with a `runner` file (mk/arm64.mk),
once per runner (qemu CPU model).  The cross-built smoe, under qemu:

  - synthesises the tiny model and quantizes one with rows of 256 (what the
    K types need) to the Q4_K_M mix: both files must be byte for byte the
    x86 build's.  The second model is kept small (2 M parameters): qemu
    emulates floating point in software, and quantizing is float work;
  - computes the next-token logits of a dozen tokens with each (F32 weights,
    and Q4_K/Q5_K/Q6_K/Q8_0 through the quantized kernels): they must match
    build/smoe's within 1e-5 of max |logit|.  The cross build uses its
    fastest kernels (NEON), this machine its scalar ones: the NEON kernels
    reproduce the scalar path's sums in its order, so the two may differ
    only by the C library's float functions; the measured difference is
    printed.  (Against AVX2/AVX-512, whose sums run in another order, the
    8-bit activation quantization now and then rounds one level the other
    way, and a logit moves by about 1e-2 of the largest: no test.)
"""
import array
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# this machine's smoe to compare against: build/smoe (what `make` builds),
# or SMOE_CROSS_HOST to check against another build directory's
HOST = os.environ.get("SMOE_CROSS_HOST") or os.path.join(ROOT, "build", "smoe")
TOLERANCE = 1e-5
TOKENS = "1,72,101,108,108,111,44,32,119,111,114,108,100,33"


def _smoe(prefix, binary, args, env):
    p = subprocess.run([*prefix, binary, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join([*prefix, binary, *args])} exited {p.returncode}: {p.stderr.strip()[-2000:]}")


def _read_f32(path):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return a


def _same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def run(build, prefix, tag, tally):
    cross = os.path.join(ROOT, build, "smoe")
    name = f"cross_check{tag}"
    if not os.access(HOST, os.X_OK):
        tally.fail(f"{name}: {HOST} is missing (the check compares against it: run make first)")
        return
    env = {k: v for k, v in os.environ.items() if k != "SMOE_KERNELS"}
    with tempfile.TemporaryDirectory(prefix="smoe-cross-") as tmp:
        f = lambda n: os.path.join(tmp, n)  # noqa: E731
        models = []
        try:
            _smoe((), HOST, ["synth", "--preset", "tiny", "-o", f("tiny.gguf")], env)
            _smoe(prefix, cross, ["synth", "--preset", "tiny", "-o", f("tiny-cross.gguf")], env)
            _smoe((), HOST, ["synth", "--preset", "tiny", "--dim", "256", "--ffn", "256", "--experts", "4",
                             "--vocab-size", "512", "--seed", "7", "-o", f("tiny256.gguf")], env)
            _smoe((), HOST, ["quantize", f("tiny256.gguf"), f("q4km.gguf"), "Q4_K_M"], env)
            _smoe(prefix, cross, ["quantize", f("tiny256.gguf"), f("q4km-cross.gguf"), "Q4_K_M"], env)
        except RuntimeError as e:
            tally.fail(f"{name}: synth and quantize", str(e))
            return
        for a, b in (("tiny.gguf", "tiny-cross.gguf"), ("q4km.gguf", "q4km-cross.gguf")):
            test = f"{name}: {b} is byte for byte {a}"
            if _same_file(f(a), f(b)):
                tally.ok(test)
            else:
                tally.fail(test)
            models.append(a)
        for m in models:
            test = f"{name}: logits of {m}"
            try:
                _smoe((), HOST, ["logits", "-m", f(m), "--tokens", TOKENS, "-o", f(m + ".host.f32")],
                      dict(env, SMOE_KERNELS="scalar"))
                _smoe(prefix, cross, ["logits", "-m", f(m), "--tokens", TOKENS, "-o", f(m + ".cross.f32")], env)
            except RuntimeError as e:
                tally.fail(test, str(e))
                continue
            want, got = _read_f32(f(m + ".host.f32")), _read_f32(f(m + ".cross.f32"))
            if len(want) != len(got) or not want:
                tally.fail(test, f"{len(got)} logits, expected {len(want)}")
                continue
            scale = max(abs(x) for x in want)
            rel = max(abs(x - y) for x, y in zip(want, got)) / scale
            print(f"# {test}: max |difference| {rel:.2e} of max |logit|", flush=True)
            if rel <= TOLERANCE:
                tally.ok(test)
            else:
                tally.fail(test, f"max |difference| {rel:.3e} of max |logit| > {TOLERANCE}")
