#!/usr/bin/env python3
"""Independent float64 reference for Mixtral / Llama-architecture GGUF models.

This program reads a GGUF file by itself (its own small parser below) and runs
the forward pass as defined by Hugging Face's Mixtral/Mistral modelling code,
in float64, using only Python 3 and NumPy.

It is deliberately independent of the smoe C engine: nothing here is derived
from the C code.  In particular, rotary position embedding is applied the
Hugging Face way ("rotate_half" on the two halves of each head) after undoing
the row permutation that llama.cpp's converter applies to the Q and K weights,
whereas the C engine rotates adjacent pairs on the permuted weights.  If both
agree, both are right.

Weights may be F32, F16, BF16 or one of ggml's quantized block formats
(Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K .. Q6_K, Q8_K); quantized tensors
are dequantized by whole-array NumPy code written from the block layouts,
and the forward pass then runs on those values in float64.

Usage:
    python3 mixtral_ref.py MODEL.gguf --tokens 1,2,3 -o OUT.f32 [--info]
    python3 mixtral_ref.py MODEL.gguf --perplexity --tokens TEXT_IDS --ctx N --bos ID

OUT.f32 receives n_tokens x n_vocab little-endian float32 logits, row-major,
one row per position (position p attends to positions 0..p).
"""

import argparse
import struct
import sys

import numpy as np


class UnsupportedModel(Exception):
    """Raised for any file this reference cannot (or will not) handle."""


# --------------------------------------------------------------------------
# GGUF parsing
# --------------------------------------------------------------------------

GGUF_MAGIC = b"GGUF"

# metadata value types -> (struct format, numpy dtype) for fixed-size scalars
_SCALAR_TYPES = {
    0: ("<B", "<u1"),   # UINT8
    1: ("<b", "<i1"),   # INT8
    2: ("<H", "<u2"),   # UINT16
    3: ("<h", "<i2"),   # INT16
    4: ("<I", "<u4"),   # UINT32
    5: ("<i", "<i4"),   # INT32
    6: ("<f", "<f4"),   # FLOAT32
    7: ("<B", "<u1"),   # BOOL (1 byte)
    10: ("<Q", "<u8"),  # UINT64
    11: ("<q", "<i8"),  # INT64
    12: ("<d", "<f8"),  # FLOAT64
}
_TYPE_STRING = 8
_TYPE_ARRAY = 9

# ggml tensor types we accept: type id -> (name, elements per block, bytes per block)
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
_TENSOR_TYPES = {
    GGML_F32: ("F32", 1, 4), GGML_F16: ("F16", 1, 2), GGML_BF16: ("BF16", 1, 2),
    2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
}


# --------------------------------------------------------------------------
# Quantized block formats (ggml's), dequantized with whole-array operations
# --------------------------------------------------------------------------
#
# Each function takes the raw blocks as a (n_blocks, block_bytes) uint8
# array and returns (n_blocks, block_size) float32 values.  Arithmetic is
# float32 in the order the format defines (scale products first, then the
# level, then the min), which is exact for every product involved, so the
# values equal those any correct implementation computes.
#
# Naming: in a 256-element super-block, element k = 128*h + 32*g + l
# (h < 2, g < 4, l < 32) for the formats that pack 2-bit planes.

def _f16(b, at):
    return b[:, at:at + 2].copy().view("<f2").astype(np.float32)        # (n, 1)


def _nibbles(qs):
    """(n, 16) bytes -> (n, 32): the low nibbles are elements 0..15, the high 16..31."""
    return np.concatenate([qs & 15, qs >> 4], axis=1)


def _bits32(b, at):
    """The 32 bits of a little-endian u32 field, bit j as column j."""
    word = b[:, at:at + 4].copy().view("<u4").astype(np.uint64)          # (n, 1)
    return ((word >> np.arange(32, dtype=np.uint64)) & 1).astype(np.uint8)


def _f32(a):
    return a.astype(np.float32)


def _deq_q4_0(b):
    return _f32(_nibbles(b[:, 2:18]).astype(np.int32) - 8) * _f16(b, 0)


def _deq_q4_1(b):
    return _f32(_nibbles(b[:, 4:20])) * _f16(b, 0) + _f16(b, 2)


def _deq_q5_0(b):
    q = _nibbles(b[:, 6:22]) | (_bits32(b, 2) << 4)
    return _f32(q.astype(np.int32) - 16) * _f16(b, 0)


def _deq_q5_1(b):
    q = _nibbles(b[:, 8:24]) | (_bits32(b, 4) << 4)
    return _f32(q) * _f16(b, 0) + _f16(b, 2)


def _deq_q8_0(b):
    return _f32(b[:, 2:34].copy().view(np.int8)) * _f16(b, 0)


def _deq_q8_1(b):
    # bytes 2..3 hold d * sum(q), used only by dot-product kernels
    return _f32(b[:, 4:36].copy().view(np.int8)) * _f16(b, 0)


def _planes2(qs):
    """(n, 64) bytes of 2-bit planes -> (n, 256) levels 0..3: element
    128h + 32g + l is bits 2g..2g+1 of byte 32h + l."""
    shifts = (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)
    return ((qs.reshape(-1, 2, 1, 32) >> shifts) & 3).reshape(-1, 256)


def _per16(v):
    """One value per 16 elements -> one per element."""
    return np.repeat(v, 16, axis=1)


def _deq_q2_k(b):
    sc = b[:, 0:16]
    q = _planes2(b[:, 16:80])
    scale = _f16(b, 80) * _f32(_per16(sc & 15))
    minimum = _f16(b, 82) * _f32(_per16(sc >> 4))
    return scale * _f32(q) - minimum


def _deq_q3_k(b):
    hmask, sc = b[:, 0:32], b[:, 96:108]
    low = _planes2(b[:, 32:96]).astype(np.int32)
    # third bit of element 128h + 32g + l: bit 4h + g of hmask[l]; clear means "minus 4"
    shifts = (4 * np.arange(2, dtype=np.uint8)[:, None] + np.arange(4, dtype=np.uint8)[None, :]).reshape(1, 2, 4, 1)
    high = ((hmask.reshape(-1, 1, 1, 32) >> shifts) & 1).reshape(-1, 256).astype(np.int32)
    q = low - 4 * (1 - high)
    # 6-bit scale of sub-block s: low 4 bits from the nibbles of bytes 0..7
    # (sub-blocks 0..7 low nibbles, 8..15 high nibbles), high 2 bits from
    # byte 8 + s % 4 at bit 2 * (s // 4)
    s = np.arange(16)
    low4 = np.concatenate([sc[:, 0:8] & 15, sc[:, 0:8] >> 4], axis=1)
    high2 = (sc[:, 8 + s % 4] >> (2 * (s // 4)).astype(np.uint8)) & 3
    code = (low4 | (high2 << 4)).astype(np.int32) - 32
    return (_f16(b, 108) * _f32(_per16(code))) * _f32(q)


def _scales_k4(p):
    """12 bytes -> 8 six-bit scales and 8 six-bit mins (Q4_K, Q5_K).
    Sub-blocks 0..3: low 6 bits of bytes 0..3 (scales) and 4..7 (mins).
    Sub-blocks 4..7: low 4 bits in the low / high nibble of bytes 8..11,
    high 2 bits in the top bits of bytes 0..3 (scales) / 4..7 (mins)."""
    sc = np.concatenate([p[:, 0:4] & 63, (p[:, 8:12] & 15) | ((p[:, 0:4] >> 6) << 4)], axis=1)
    mn = np.concatenate([p[:, 4:8] & 63, (p[:, 8:12] >> 4) | ((p[:, 4:8] >> 6) << 4)], axis=1)
    return sc, mn


def _nibbles_k4(qs):
    """(n, 128) bytes -> (n, 256): sub-blocks 2c and 2c+1 are the low and
    high nibbles of bytes 32c .. 32c+31."""
    chunks = qs.reshape(-1, 4, 1, 32)
    return np.concatenate([chunks & 15, chunks >> 4], axis=2).reshape(-1, 256)


def _deq_k4(b, q):
    sc, mn = _scales_k4(b[:, 4:16])
    scale = _f16(b, 0) * _f32(np.repeat(sc, 32, axis=1))
    minimum = _f16(b, 2) * _f32(np.repeat(mn, 32, axis=1))
    return scale * _f32(q) - minimum


def _deq_q4_k(b):
    return _deq_k4(b, _nibbles_k4(b[:, 16:144]))


def _deq_q5_k(b):
    # fifth bit of element 32s + l: bit s of qh[l]
    qh = b[:, 16:48]
    high = ((qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1).reshape(-1, 256)
    return _deq_k4(b, _nibbles_k4(b[:, 48:176]) | (high << 4))


def _deq_q6_k(b):
    ql, qh = b[:, 0:128], b[:, 128:192]
    # low 4 bits of element 128h + 32g + l: byte 64h + 32(g % 2) + l of ql,
    # low nibble for g < 2, high nibble for g >= 2
    halves = ql.reshape(-1, 2, 2, 32)                                     # [h, g % 2, l]
    low = np.stack([halves[:, :, 0] & 15, halves[:, :, 1] & 15,
                    halves[:, :, 0] >> 4, halves[:, :, 1] >> 4], axis=2)  # [h, g, l]
    # high 2 bits: bits 2g..2g+1 of byte 32h + l of qh
    shifts = (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)
    high = (qh.reshape(-1, 2, 1, 32) >> shifts) & 3
    q = (low | (high << 4)).reshape(-1, 256).astype(np.int32) - 32
    scale = _f16(b, 208) * _f32(_per16(b[:, 192:208].copy().view(np.int8)))
    return scale * _f32(q)


def _deq_q8_k(b):
    # float32 d, 256 int8 levels, 16 int16 sums (for dot products only)
    d = b[:, 0:4].copy().view("<f4")
    return _f32(b[:, 4:260].copy().view(np.int8)) * d


_DEQUANTIZE = {2: _deq_q4_0, 3: _deq_q4_1, 6: _deq_q5_0, 7: _deq_q5_1, 8: _deq_q8_0,
               9: _deq_q8_1, 10: _deq_q2_k, 11: _deq_q3_k, 12: _deq_q4_k, 13: _deq_q5_k,
               14: _deq_q6_k, 15: _deq_q8_k}


def dequantize(raw, ttype):
    """Flat float32 values of the blocks in `raw` (bytes of ggml type ttype)."""
    _, block, nbytes = _TENSOR_TYPES[ttype]
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, nbytes)
    with np.errstate(over="ignore", invalid="ignore"):
        return _DEQUANTIZE[ttype](blocks).reshape(-1)


class _Reader:
    """Sequential little-endian reader over a bytes-like buffer."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise UnsupportedModel("truncated GGUF header")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]

    def string(self):
        n = self.unpack("<Q")
        return bytes(self.take(n)).decode("utf-8", errors="replace")

    def value(self, vtype):
        if vtype in _SCALAR_TYPES:
            v = self.unpack(_SCALAR_TYPES[vtype][0])
            return bool(v) if vtype == 7 else v
        if vtype == _TYPE_STRING:
            return self.string()
        if vtype == _TYPE_ARRAY:
            etype = self.unpack("<I")
            count = self.unpack("<Q")
            if etype in _SCALAR_TYPES:  # fast path for numeric arrays
                dt = np.dtype(_SCALAR_TYPES[etype][1])
                raw = self.take(count * dt.itemsize)
                return np.frombuffer(raw, dtype=dt, count=count)
            return [self.value(etype) for _ in range(count)]
        raise UnsupportedModel("unknown GGUF metadata value type %d" % vtype)


def parse_gguf(path):
    """Parse a GGUF v2/v3 file.

    Returns (metadata dict, tensors dict name -> (dims, ggml_type, abs_offset),
    memmap of the whole file).
    """
    data = np.memmap(path, dtype=np.uint8, mode="r")
    r = _Reader(memoryview(data))
    if bytes(r.take(4)) != GGUF_MAGIC:
        raise UnsupportedModel("not a GGUF file (bad magic)")
    version = r.unpack("<I")
    if version not in (2, 3):
        raise UnsupportedModel("unsupported GGUF version %d" % version)
    n_tensors = r.unpack("<Q")
    n_kv = r.unpack("<Q")

    meta = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.unpack("<I")
        meta[key] = r.value(vtype)

    infos = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("<I")
        dims = [r.unpack("<Q") for _ in range(n_dims)]
        ttype = r.unpack("<I")
        offset = r.unpack("<Q")
        infos.append((name, dims, ttype, offset))

    alignment = int(meta.get("general.alignment", 32))
    if alignment <= 0:
        raise UnsupportedModel("bad general.alignment %d" % alignment)
    data_start = (r.pos + alignment - 1) // alignment * alignment

    tensors = {}
    for name, dims, ttype, offset in infos:
        tensors[name] = (dims, ttype, data_start + offset)
    return meta, tensors, data


def load_tensor(gguf, name):
    """Return tensor `name` as a float64 NumPy array in NumPy (row-major) shape.

    GGUF dims are listed fastest-varying first, so dims [ne0, ne1, ne2] become
    NumPy shape (ne2, ne1, ne0).
    """
    _, tensors, data = gguf
    if name not in tensors:
        raise UnsupportedModel("missing tensor %s" % name)
    dims, ttype, start = tensors[name]
    if ttype not in _TENSOR_TYPES:
        raise UnsupportedModel("tensor %s has unsupported ggml type %d" % (name, ttype))
    count = 1
    for d in dims:
        count *= d
    _, block, block_bytes = _TENSOR_TYPES[ttype]
    if dims and dims[0] % block != 0:
        raise UnsupportedModel("tensor %s: row length %d is not a multiple of the %s block size %d"
                               % (name, dims[0], _TENSOR_TYPES[ttype][0], block))
    nbytes = count // block * block_bytes
    if start + nbytes > len(data):
        raise UnsupportedModel("tensor %s extends past end of file" % name)
    raw = data[start:start + nbytes]

    if ttype == GGML_F32:
        arr = np.frombuffer(raw, dtype="<f4")
    elif ttype == GGML_F16:
        arr = np.frombuffer(raw, dtype="<f2")
    elif ttype == GGML_BF16:  # the upper 16 bits of an IEEE float32
        half = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        arr = (half << 16).view(np.float32)
    else:
        arr = dequantize(raw, ttype)
    shape = tuple(reversed(dims)) if dims else ()
    return arr.astype(np.float64).reshape(shape)


def has_tensor(gguf, name):
    return name in gguf[1]


def tensor_dims(gguf, name):
    return gguf[1][name][0]


# --------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------

def read_hparams(gguf):
    meta = gguf[0]
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise UnsupportedModel("unsupported architecture %r (need 'llama')" % (arch,))

    def key(name, default=None):
        full = "llama." + name
        if full in meta:
            return meta[full]
        if default is None:
            raise UnsupportedModel("missing metadata key %s" % full)
        return default

    hp = {
        "n_layer": int(key("block_count")),
        "dim": int(key("embedding_length")),
        "ffn": int(key("feed_forward_length")),
        "n_head": int(key("attention.head_count")),
        "n_head_kv": int(key("attention.head_count_kv")),
        "eps": float(key("attention.layer_norm_rms_epsilon")),
        "rope_base": float(key("rope.freq_base", 10000.0)),
        "n_ctx": int(key("context_length")),
        "n_expert": int(key("expert_count", 0)),
        "n_expert_used": int(key("expert_used_count", 0)),
    }
    if hp["n_head"] <= 0 or hp["dim"] % hp["n_head"] != 0:
        raise UnsupportedModel("embedding_length not divisible by head_count")
    hp["head_dim"] = hp["dim"] // hp["n_head"]
    hp["rot_dim"] = int(key("rope.dimension_count", hp["head_dim"]))
    if hp["n_head_kv"] <= 0 or hp["n_head"] % hp["n_head_kv"] != 0:
        raise UnsupportedModel("head_count not a multiple of head_count_kv")
    if hp["rot_dim"] != hp["head_dim"]:
        raise UnsupportedModel("rope.dimension_count %d != head_dim %d (partial rotary "
                               "not supported)" % (hp["rot_dim"], hp["head_dim"]))
    if hp["head_dim"] % 2 != 0:
        raise UnsupportedModel("odd head_dim")
    if hp["n_expert"] > 0 and not (1 <= hp["n_expert_used"] <= hp["n_expert"]):
        raise UnsupportedModel("bad expert_used_count %d" % hp["n_expert_used"])

    emb_dims = tensor_dims(gguf, "token_embd.weight") if has_tensor(gguf, "token_embd.weight") else None
    if emb_dims is None or len(emb_dims) != 2 or emb_dims[0] != hp["dim"]:
        raise UnsupportedModel("missing or mis-shaped token_embd.weight")
    hp["n_vocab"] = int(emb_dims[1])
    return hp


# --------------------------------------------------------------------------
# Model pieces (Hugging Face definitions)
# --------------------------------------------------------------------------

def rmsnorm(x, weight, eps):
    """x / sqrt(mean(x^2) + eps) * weight, over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def unpermute_qk(w, n_heads):
    """Undo llama.cpp's convert-time permutation of Q/K weight rows.

    The converter maps HF row (head, j*(hd/2)+i) to GGUF row (head, 2*i+j).
    So GGUF rows viewed as (head, i, j) are swapped back to (head, j, i).
    """
    rows, cols = w.shape
    hd = rows // n_heads
    return (w.reshape(n_heads, hd // 2, 2, cols)
             .swapaxes(1, 2)
             .reshape(rows, cols))


def rope_cos_sin(n_pos, rot_dim, base):
    """HF rotary tables: emb = concat(freqs, freqs); returns cos, sin (n_pos, rot_dim)."""
    inv_freq = 1.0 / (base ** (np.arange(0, rot_dim, 2, dtype=np.float64) / rot_dim))
    positions = np.arange(n_pos, dtype=np.float64)
    freqs = np.outer(positions, inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb), np.sin(emb)


def rotate_half(x):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([-x2, x1], axis=-1)


def apply_rope(x, cos, sin):
    """x: (n_heads, n_pos, head_dim) in HF layout; cos/sin: (n_pos, head_dim)."""
    return x * cos + rotate_half(x) * sin


def attention(x, layer, hp, cos, sin):
    """Causal grouped-query self-attention over the whole sequence. x: (n, dim)."""
    n = x.shape[0]
    nh, nkv, hd = hp["n_head"], hp["n_head_kv"], hp["head_dim"]

    q = x @ layer["wq"].T                        # (n, nh*hd)
    k = x @ layer["wk"].T                        # (n, nkv*hd)
    v = x @ layer["wv"].T
    q = q.reshape(n, nh, hd).transpose(1, 0, 2)  # (nh, n, hd)
    k = k.reshape(n, nkv, hd).transpose(1, 0, 2)
    v = v.reshape(n, nkv, hd).transpose(1, 0, 2)

    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)

    group = nh // nkv                            # query head i uses kv head i // group
    k = np.repeat(k, group, axis=0)
    v = np.repeat(v, group, axis=0)

    scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd)   # (nh, n, n)
    future = np.triu(np.ones((n, n), dtype=bool), k=1)
    scores = np.where(future, -np.inf, scores)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)

    out = probs @ v                               # (nh, n, hd)
    out = out.transpose(1, 0, 2).reshape(n, nh * hd)
    return out @ layer["wo"].T


def silu(x):
    return x / (1.0 + np.exp(-x))


def swiglu_ffn(x, w_gate, w_up, w_down):
    """down( silu(gate x) * up x ) for rows of x."""
    return (silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def moe_ffn(x, layer, hp):
    """Sparse MoE block: top-k experts per token, softmax over the chosen logits."""
    n = x.shape[0]
    k = hp["n_expert_used"]
    logits = x @ layer["router"].T                        # (n, n_expert)
    # top-k by logit; stable sort so ties go to the lower expert index
    chosen = np.argsort(-logits, axis=-1, kind="stable")[:, :k]   # (n, k)
    chosen_logits = np.take_along_axis(logits, chosen, axis=-1)
    w = np.exp(chosen_logits - chosen_logits.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)                   # (n, k)

    out = np.zeros_like(x)
    for e in range(hp["n_expert"]):
        rows, slot = np.nonzero(chosen == e)
        if rows.size == 0:
            continue
        y = swiglu_ffn(x[rows], layer["gate"][e], layer["up"][e], layer["down"][e])
        out[rows] += w[rows, slot][:, None] * y
    return out


# --------------------------------------------------------------------------
# Weight loading
# --------------------------------------------------------------------------

def _expect_shape(arr, shape, name):
    if arr.shape != tuple(shape):
        raise UnsupportedModel("tensor %s has shape %s, expected %s"
                               % (name, arr.shape, tuple(shape)))
    return arr


def load_layer(gguf, hp, i):
    dim, ffn, hd = hp["dim"], hp["ffn"], hp["head_dim"]
    kv_dim = hp["n_head_kv"] * hd
    p = "blk.%d." % i

    def t(name, shape):
        return _expect_shape(load_tensor(gguf, p + name), shape, p + name)

    layer = {
        "attn_norm": t("attn_norm.weight", (dim,)),
        "wq": unpermute_qk(t("attn_q.weight", (dim, dim)), hp["n_head"]),
        "wk": unpermute_qk(t("attn_k.weight", (kv_dim, dim)), hp["n_head_kv"]),
        "wv": t("attn_v.weight", (kv_dim, dim)),
        "wo": t("attn_output.weight", (dim, dim)),
        "ffn_norm": t("ffn_norm.weight", (dim,)),
    }

    ne = hp["n_expert"]
    if ne > 0:
        layer["router"] = t("ffn_gate_inp.weight", (ne, dim))
        if has_tensor(gguf, p + "ffn_gate_exps.weight"):
            layer["gate"] = t("ffn_gate_exps.weight", (ne, ffn, dim))
            layer["up"] = t("ffn_up_exps.weight", (ne, ffn, dim))
            layer["down"] = t("ffn_down_exps.weight", (ne, dim, ffn))
        else:
            layer["gate"] = [t("ffn_gate.%d.weight" % e, (ffn, dim)) for e in range(ne)]
            layer["up"] = [t("ffn_up.%d.weight" % e, (ffn, dim)) for e in range(ne)]
            layer["down"] = [t("ffn_down.%d.weight" % e, (dim, ffn)) for e in range(ne)]
    else:
        layer["gate"] = t("ffn_gate.weight", (ffn, dim))
        layer["up"] = t("ffn_up.weight", (ffn, dim))
        layer["down"] = t("ffn_down.weight", (dim, ffn))
    return layer


# --------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------

def forward(path, tokens):
    """Logits (n_tokens, n_vocab) float64 for every position of `tokens`."""
    gguf = parse_gguf(path)
    hp = read_hparams(gguf)
    tokens = np.asarray(list(tokens), dtype=np.int64)
    n = tokens.size
    if n == 0:
        raise UnsupportedModel("empty token list")
    if tokens.min() < 0 or tokens.max() >= hp["n_vocab"]:
        raise UnsupportedModel("token id out of range [0, %d)" % hp["n_vocab"])

    emb = load_tensor(gguf, "token_embd.weight")           # (n_vocab, dim)
    h = emb[tokens].copy()                                  # (n, dim)
    cos, sin = rope_cos_sin(n, hp["rot_dim"], hp["rope_base"])

    for i in range(hp["n_layer"]):
        layer = load_layer(gguf, hp, i)
        x = rmsnorm(h, layer["attn_norm"], hp["eps"])
        h = h + attention(x, layer, hp, cos, sin)
        x = rmsnorm(h, layer["ffn_norm"], hp["eps"])
        if hp["n_expert"] > 0:
            h = h + moe_ffn(x, layer, hp)
        else:
            h = h + swiglu_ffn(x, layer["gate"], layer["up"], layer["down"])

    out_norm = _expect_shape(load_tensor(gguf, "output_norm.weight"), (hp["dim"],),
                             "output_norm.weight")
    if has_tensor(gguf, "output.weight"):
        w_out = _expect_shape(load_tensor(gguf, "output.weight"),
                              (hp["n_vocab"], hp["dim"]), "output.weight")
    else:
        w_out = emb                                          # tied LM head
    return rmsnorm(h, out_norm, hp["eps"]) @ w_out.T


def perplexity(path, text_tokens, ctx, bos):
    """Perplexity of the model over text_tokens (the text's ids, no BOS), in
    the windows `smoe perplexity` uses: consecutive windows of ctx tokens,
    each BOS (when bos >= 0) followed by the next ctx-1 text tokens (ctx
    without BOS), run from scratch; a tail shorter than a window is dropped;
    the tokens at window positions ctx//2 .. ctx-1 are scored, each from the
    logits of the position before it.  Returns (perplexity, tokens scored)."""
    per_window = ctx - 1 if bos >= 0 else ctx
    text_tokens = list(text_tokens)
    nll = []
    for w in range(len(text_tokens) // per_window):
        window = ([bos] if bos >= 0 else []) + text_tokens[w * per_window:(w + 1) * per_window]
        logits = forward(path, window)
        for p in range(ctx // 2, ctx):
            row = logits[p - 1]
            top = row.max()
            log_z = top + np.log(np.sum(np.exp(row - top)))
            nll.append(log_z - row[window[p]])
    if not nll:
        raise UnsupportedModel("fewer text tokens (%d) than one window" % len(text_tokens))
    return float(np.exp(np.mean(nll))), len(nll)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _parse_tokens(text):
    try:
        return [int(s) for s in text.split(",") if s.strip() != ""]
    except ValueError:
        raise UnsupportedModel("bad --tokens list %r" % text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("-o", "--output", help="output file for float32 logits")
    ap.add_argument("--info", action="store_true", help="print hyperparameters")
    ap.add_argument("--perplexity", action="store_true",
                    help="print the perplexity over --tokens (text ids, no BOS) in windows of --ctx")
    ap.add_argument("--ctx", type=int, default=512, help="window length for --perplexity")
    ap.add_argument("--bos", type=int, default=1, help="BOS id opening each window (-1: none)")
    args = ap.parse_args(argv)

    try:
        if args.perplexity:
            if args.tokens is None:
                print("error: --perplexity needs --tokens", file=sys.stderr)
                return 1
            ppl, n = perplexity(args.model, _parse_tokens(args.tokens), args.ctx, args.bos)
            print("perplexity = %.12g" % ppl)
            print("scored = %d" % n)
            return 0
        if args.info:
            gguf = parse_gguf(args.model)
            hp = read_hparams(gguf)
            for k in sorted(hp):
                print("%s = %s" % (k, hp[k]))
            ffn_layout = "dense"
            if hp["n_expert"] > 0:
                ffn_layout = ("merged" if has_tensor(gguf, "blk.0.ffn_gate_exps.weight")
                              else "per-expert")
            print("ffn_layout = %s" % ffn_layout)
            print("tied_output = %s" % (not has_tensor(gguf, "output.weight")))
            if args.tokens is None:
                return 0
        if args.tokens is None or args.output is None:
            print("error: --tokens and -o are required", file=sys.stderr)
            return 1
        logits = forward(args.model, _parse_tokens(args.tokens))
    except UnsupportedModel as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1

    logits.astype("<f4").tofile(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
