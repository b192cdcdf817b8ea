#!/usr/bin/env python3
"""make_seeds.py - write the seed corpora of the fuzz targets.

    tests/fuzz/make_seeds.py            (re)write tests/fuzz/corpus/*/

Every seed is made here from scratch (stdlib only, fixed random seed), so
the corpora are reproducible and hold nothing copied from model files:
tiny GGUF models (dims of 8 to 32, every weight type the engine computes
with, dense and mixture-of-experts, merged and per-expert tensors, with and
without a tokenizer), GGUF files exercising every metadata type, small
SentencePiece .model protobufs, tokenizer texts and chat requests.  The
first byte of a tokenizer or chat seed selects options, as the targets
document.
"""
import json
import os
import random
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import gguf_tool as gt  # noqa: E402

CORPUS = os.path.join(HERE, "corpus")
SP = "\u2581"

F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 = 0, 1, 2, 3, 6, 7, 8, 9
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, BF16 = 10, 11, 12, 13, 14, 15, 30


def f16_bytes(vals):
    return struct.pack("<%de" % len(vals), *vals)


# where a K-quant block keeps its scale(s) d (and dmin), and sane values
SCALES = {Q2_K: (80, f16_bytes([0.01, 0.001])), Q3_K: (108, f16_bytes([0.01])),
          Q4_K: (0, f16_bytes([0.01, 0.001])), Q5_K: (0, f16_bytes([0.01, 0.001])),
          Q6_K: (208, f16_bytes([0.01])), Q8_K: (0, struct.pack("<f", 0.01))}


def tensor_bytes(rng, dims, ggml_type):
    """Small random weights; quantized blocks get a sane fp16 scale."""
    n = 1
    for d in dims:
        n *= d
    if ggml_type == F32:
        return struct.pack("<%df" % n, *[rng.uniform(-0.5, 0.5) for _ in range(n)])
    if ggml_type == F16:
        return f16_bytes([rng.uniform(-0.5, 0.5) for _ in range(n)])
    if ggml_type == BF16:
        return b"".join(struct.pack("<f", rng.uniform(-0.5, 0.5))[2:] for _ in range(n))
    name, block, nbytes = gt.GGML_TYPES[ggml_type]
    out = bytearray()
    for _ in range(n // block):
        blk = bytearray(rng.getrandbits(8) for _ in range(nbytes))
        off, scale = SCALES.get(ggml_type, (0, f16_bytes([0.01])))  # d first in the 32-blocks
        blk[off:off + len(scale)] = scale
        out += blk
    return bytes(out)


def tiny_vocab(n):
    """n SentencePiece-style pieces: specials, a few bytes, letters."""
    toks = ["<unk>", "<s>", "</s>", "<0x0A>", "<0x20>", SP, SP + "a", "a", "b", "[INST]", "[/INST]"]
    letters = "cdefghijklmnopqrstuvwxyz"
    i = 0
    while len(toks) < n:
        toks.append(letters[i % len(letters)] * (1 + i // len(letters)))
        i += 1
    toks = toks[:n]
    types = []
    for t in toks:
        if t == "<unk>":
            types.append(2)
        elif t in ("<s>", "</s>", "[INST]", "[/INST]"):
            types.append(3)
        elif t.startswith("<0x"):
            types.append(6)
        else:
            types.append(1)
    scores = [-float(i) for i in range(n)]
    return toks, scores, types


def model(rng, dim=8, layers=1, heads=2, kv_heads=1, ffn=16, experts=0, top_k=0, vocab=16, wtype=F32,
          split=False, tied=False, tokenizer=True, ffn_down_types=None, extra_kvs=(), alignment=None):
    kvs = [gt.KV("general.architecture", gt.STRING, "llama"),
           gt.KV("general.name", gt.STRING, "fuzz seed"),
           gt.KV("llama.block_count", gt.U32, layers),
           gt.KV("llama.embedding_length", gt.U32, dim),
           gt.KV("llama.feed_forward_length", gt.U32, ffn),
           gt.KV("llama.attention.head_count", gt.U32, heads),
           gt.KV("llama.attention.head_count_kv", gt.U32, kv_heads),
           gt.KV("llama.context_length", gt.U32, 64),
           gt.KV("llama.attention.layer_norm_rms_epsilon", gt.F32, 1e-5),
           gt.KV("llama.rope.freq_base", gt.F32, 10000.0),
           gt.KV("llama.rope.dimension_count", gt.U32, dim // heads)]
    if experts:
        kvs += [gt.KV("llama.expert_count", gt.U32, experts), gt.KV("llama.expert_used_count", gt.U32, top_k)]
    if alignment:
        kvs.append(gt.KV("general.alignment", gt.U32, alignment))
    if tokenizer:
        toks, scores, types = tiny_vocab(vocab)
        kvs += [gt.KV("tokenizer.ggml", gt.STRING, "llama"),
                gt.KV("tokenizer.ggml.tokens", gt.ARRAY, toks, gt.STRING),
                gt.KV("tokenizer.ggml.scores", gt.ARRAY, scores, gt.F32),
                gt.KV("tokenizer.ggml.token_type", gt.ARRAY, types, gt.I32),
                gt.KV("tokenizer.ggml.bos_token_id", gt.U32, 1),
                gt.KV("tokenizer.ggml.eos_token_id", gt.U32, 2),
                gt.KV("tokenizer.ggml.unknown_token_id", gt.U32, 0),
                gt.KV("tokenizer.ggml.add_bos_token", gt.BOOL, True)]
    kvs += list(extra_kvs)
    kv_dim = kv_heads * (dim // heads)
    tensors = []

    def add(name, dims, ggml_type=None):
        t = F32 if ggml_type is None and len(dims) == 1 else (wtype if ggml_type is None else ggml_type)
        tensors.append(gt.TensorInfo(name, dims, t, data=tensor_bytes(rng, dims, t)))

    add("token_embd.weight", [dim, vocab])
    add("output_norm.weight", [dim])
    if not tied:
        add("output.weight", [dim, vocab])
    for i in range(layers):
        p = "blk.%d." % i
        add(p + "attn_norm.weight", [dim])
        add(p + "ffn_norm.weight", [dim])
        add(p + "attn_q.weight", [dim, dim])
        add(p + "attn_k.weight", [dim, kv_dim])
        add(p + "attn_v.weight", [dim, kv_dim])
        add(p + "attn_output.weight", [dim, dim])
        down_t = ffn_down_types[i % len(ffn_down_types)] if ffn_down_types else None
        if not experts:
            add(p + "ffn_gate.weight", [dim, ffn])
            add(p + "ffn_up.weight", [dim, ffn])
            add(p + "ffn_down.weight", [ffn, dim], down_t)
            continue
        add(p + "ffn_gate_inp.weight", [dim, experts], F32)
        if split:
            for e in range(experts):
                add(p + "ffn_gate.%d.weight" % e, [dim, ffn])
                add(p + "ffn_up.%d.weight" % e, [dim, ffn])
                add(p + "ffn_down.%d.weight" % e, [ffn, dim], down_t)
        else:
            add(p + "ffn_gate_exps.weight", [dim, ffn, experts])
            add(p + "ffn_up_exps.weight", [dim, ffn, experts])
            add(p + "ffn_down_exps.weight", [ffn, dim, experts], down_t)
    g = gt.GGUFFile(3, kvs, tensors)
    if alignment:
        g.alignment = alignment
    return gt.serialize(g.relayout())


def gguf_metadata_only():
    """Files with every value type and no tensors (or odd ones)."""
    seeds = {}
    kvs = [gt.KV("u8", gt.U8, 200), gt.KV("i8", gt.I8, -5), gt.KV("u16", gt.U16, 60000),
           gt.KV("i16", gt.I16, -300), gt.KV("u32", gt.U32, 4000000000), gt.KV("i32", gt.I32, -7),
           gt.KV("f32", gt.F32, 1.5), gt.KV("bool", gt.BOOL, True), gt.KV("str", gt.STRING, "caf\u00e9"),
           gt.KV("u64", gt.U64, 2 ** 63 + 5), gt.KV("i64", gt.I64, -2 ** 40), gt.KV("f64", gt.F64, -0.25),
           gt.KV("arr.u8", gt.ARRAY, [1, 2, 3], gt.U8), gt.KV("arr.bool", gt.ARRAY, [True, False], gt.BOOL),
           gt.KV("arr.str", gt.ARRAY, ["a", "", "\u2581b"], gt.STRING),
           gt.KV("arr.f64", gt.ARRAY, [0.5, -1e300], gt.F64),
           gt.KV("arr.arr", gt.ARRAY, [(gt.I32, [1, 2]), (gt.STRING, ["x"])], gt.ARRAY),
           gt.KV("general.alignment", gt.U32, 64)]
    seeds["all_types"] = gt.serialize(gt.GGUFFile(3, kvs, []).relayout())
    g = gt.GGUFFile(2, kvs[:6], [gt.TensorInfo("t", [4, 2], F16, data=bytes(16)),
                                 gt.TensorInfo("q", [32], Q8_0, data=bytes(34))])
    seeds["v2_tensors"] = gt.serialize(g.relayout())
    toks, scores, types = tiny_vocab(40)
    vocab_kvs = [gt.KV("tokenizer.ggml", gt.STRING, "llama"),
                 gt.KV("tokenizer.ggml.tokens", gt.ARRAY, toks, gt.STRING),
                 gt.KV("tokenizer.ggml.scores", gt.ARRAY, scores, gt.F32),
                 gt.KV("tokenizer.ggml.token_type", gt.ARRAY, types, gt.I32),
                 gt.KV("tokenizer.ggml.bos_token_id", gt.U32, 1),
                 gt.KV("tokenizer.ggml.eos_token_id", gt.U32, 2),
                 gt.KV("tokenizer.ggml.add_space_prefix", gt.BOOL, False)]
    seeds["vocab_only"] = gt.serialize(gt.GGUFFile(3, vocab_kvs, []).relayout())
    seeds["empty"] = gt.serialize(gt.GGUFFile(3, [], []).relayout())
    return seeds


# ---------------------------------------------------------------------------
# SentencePiece protobufs
# ---------------------------------------------------------------------------

def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, wire, payload):
    tag = varint(num << 3 | wire)
    if wire == 0:
        return tag + varint(payload)
    if wire == 2:
        return tag + varint(len(payload)) + payload
    if wire == 5:
        return tag + struct.pack("<I", payload)
    if wire == 1:
        return tag + struct.pack("<Q", payload)
    raise ValueError(wire)


def piece(text, score=0.0, ptype=None):
    b = field(1, 2, text.encode()) + field(2, 5, struct.unpack("<I", struct.pack("<f", score))[0])
    if ptype is not None:
        b += field(3, 0, ptype)
    return field(1, 2, b)


def spm_model(model_type=2, byte_fallback=True, n_extra=20, dummy_prefix=True, unknown_fields=False, order=0):
    pieces = [piece("<unk>", 0, 2), piece("<s>", 0, 3), piece("</s>", 0, 3)]
    if byte_fallback:
        pieces += [piece("<0x%02X>" % b, 0, 6) for b in range(256)]
    words = [SP, SP + "t", SP + "th", SP + "the", "h", "e", "t", "a", "[INST]", "\u00e9", "\u65e5", "\U0001F600",
             SP + SP, "in", "ing", SP + "a", "b", "c", "[REF]", "unused"]
    for i, w in enumerate(words[:n_extra]):
        t = 4 if w == "[REF]" else 5 if w == "unused" else 3 if w == "[INST]" else None
        pieces.append(piece(w, -float(i), t))
    trainer = field(3, 0, model_type) + field(35, 0, int(byte_fallback)) + field(40, 0, 0) + field(41, 0, 1) + \
        field(42, 0, 2) + field(43, 0, (1 << 64) - 1)
    normalizer = field(1, 2, b"identity") + field(3, 0, int(dummy_prefix))
    if unknown_fields:
        trainer = field(1, 2, b"input.txt") + field(10, 5, 0x3F7FDF3B) + trainer + field(99, 1, 7)
        normalizer += field(4, 0, 1)
    parts = [b"".join(pieces), field(2, 2, trainer), field(3, 2, normalizer)]
    if order:
        parts = parts[1:] + parts[:1]
    out = b"".join(parts)
    if unknown_fields:
        out += field(5, 2, b"self_test_data")
    return out


# ---------------------------------------------------------------------------
# Texts and chat requests
# ---------------------------------------------------------------------------

TEXTS = [
    b"Hello world",
    b" the and hello world, it is in the ing",
    b"  two  spaces   and tabs\t\tand\nnewlines\n\n",
    "caf\u00e9 \u00e9t\u00e9 \u00fc \u65e5\u672c\u8a9e \u20ac \U0001F600\U0001F600 end".encode(),
    b"[INST] hi [/INST] </s> <s> <unk> [TOOL_CALLS]",
    b"[REFERENCE_DOC_0] and [REFERENCE_DOC_1]<|x|>@@ @x",
    b"{\"name\": \"add\", \"arguments\": {\"a\": 1}}",
    "\u2581already\u2581spaced \u2581".encode(),
    b"bad \xff\xfe \xc3 \xe6\x97 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf end \xe2\x96",
    b"nul \x00 inside \x00\x00",
    b"0123456789 00 123 12.5",
    b"hello.hello, hello. the",
]

CHATS = [
    (0, {"messages": [{"role": "user", "content": "Hello"}]}),
    (0, {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello! "}, {"role": "user", "content": "2+2?"}]}),
    (1, {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "What is the weather?"},
                      {"role": "assistant", "tool_calls": [{"id": "abcdefghi", "type": "function",
                                                            "function": {"name": "get_weather",
                                                                         "arguments": "{\"city\": \"Paris\"}"}}]},
                      {"role": "tool", "tool_call_id": "abcdefghi", "name": "get_weather", "content": "22"},
                      {"role": "user", "content": "thanks"}],
         "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                     "parameters": {"type": "object", "properties":
                                                                    {"city": {"type": "string"}}}}}]}),
    (1, {"messages": [{"role": "user", "content": [{"type": "text", "text": "part one"},
                                                   {"type": "text", "text": ""},
                                                   {"type": "text", "text": "part two"}]},
                      {"role": "assistant", "content": "a", "smoe_generated_ids": [300, 301, 2]},
                      {"role": "user", "content": "b"}, {"role": "user", "content": "merged"}]}),
    (1, {"messages": [{"role": "user", "content": "x"},
                      {"role": "assistant", "tool_calls": [
                          {"id": "a1", "function": {"name": "f", "arguments": {"k": [1, 2.5, None, True]}}},
                          {"function": {"name": "g-2", "arguments": ""}}]},
                      {"role": "tool", "tool_call_id": "a1", "content": "{\"ok\": true}"},
                      {"role": "tool", "tool_call_id": "null", "content": ""}],
         "tools": [{"function": {"name": "f"}}, {"type": "function", "function": {"name": "g-2"}}],
         "model": "x", "temperature": 0.7}),
    (3, {"messages": [{"role": "assistant", "content": "starts with assistant"},
                      {"role": "user", "content": "\u00e9\U0001F600 \u2028 \"q\" \\ \n\t"}]}),
    (0, {"messages": [{"role": "user", "content": "x"}], "tools": []}),
    (1, {"messages": [{"role": "robot", "content": "x"}]}),
    (1, {"messages": []}),
    (2, {"messages": [{"role": "user", "content": "nul\u0000inside"}]}),
    (1, [1.5e300, -0.0, 1e-7, 123456789.125, 5e-324, 9007199254740993, -9223372036854775808]),
]


# Grammar / JSON Schema seeds (fuzz_grammar): (option byte, source, candidate).
# Option bit 0: source is a schema; bits 1-3 strict/compact/no_leading_space;
# bit 4: token masks.
GRAMMARS = [
    (0, 'root ::= "[" items? "]"\nitems ::= item ("," " "? item)*\nitem ::= [a-z]+ | num\n'
        'num ::= "-"? ("0" | [1-9] [0-9]*)\n', '[ab, -12,0]'),
    (16, 'root ::= "yes" | "no" | "maybe"{1,3}', 'maybemaybe'),
    (0, '# comment\nroot ::= ( "a" | b )* "." \nb ::= [^a\\n\\x00-\\x1f] .?\n', 'aXy\u00e9a.'),
    (16, 'root ::= "\\u00e9\\U0001F600\\x41" [\\u0100-\\uFFFF]{2,} "\\"\\\\"', '\u00e9\U0001F600A\u0101\u4e2d"\\'),
    (0, 'root ::= a\na ::= "(" a ")" | ""', '((()))'),
    (0, 'root ::= x\nx ::= x "a"', 'a'),
    (0, 'root ::= [z-a]', 'a'),
    (1, json.dumps({"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                                     "age": {"type": "integer", "minimum": 0, "maximum": 150},
                                                     "tags": {"type": "array", "items": {"enum": ["a", "b"]},
                                                              "maxItems": 3}},
                    "required": ["name"]}), '{"name": "Bob", "age": 42, "tags": ["a"]}'),
    (1 | 2 | 16, json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}),
     '{"ok": true}'),
    (1 | 4, json.dumps({"anyOf": [{"type": "number", "exclusiveMinimum": -5}, {"type": "null"},
                                  {"const": {"k": [1, 2]}}]}), '{"k":[1,2]}'),
    (1, json.dumps({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                                        "next": {"$ref": "#/$defs/node"}}}},
                    "$ref": "#/$defs/node"}), '{"v": 1, "next": {"v": 2}}'),
    (1 | 8, json.dumps({"type": "string", "pattern": "^[A-Z]{2}-(\\d{3}|x+)$"}), '"AB-123"'),
    (1, json.dumps({"type": "string", "format": "date-time"}), '"2024-02-29T12:00:00.5+01:00"'),
    (1, json.dumps({"type": "array", "prefixItems": [{"type": "string", "format": "uuid"}, {"type": "number"}],
                    "items": False}), '["123e4567-e89b-12d3-a456-426614174000", 1.5e3]'),
    (1, json.dumps({"allOf": [{"properties": {"a": {"type": "integer"}}}, {"required": ["a"]}],
                    "additionalProperties": False}), '{"a": -0}'),
    (1 | 16, json.dumps({"type": "string", "minLength": 2, "maxLength": 4}), '"\\u00e9\\ud83d\\ude00"'),
    (1, json.dumps({}), '[1, {"x": null}, "s", true]'),
    (1, json.dumps({"type": "object", "uniqueItems": True}), '{}'),
    (1, json.dumps({"type": "string", "format": "email"}), '"a.b@example.com"'),
]

# Server requests (fuzz_server): (option byte, body).  Bits 0-2: endpoint
# (chat, completions, api/generate, api/chat, tokenize, detokenize,
# api/show, models/{id}); bit 3: v3 chat format; bits 4-6: how the
# simulated generation ends (0 stop, 1 length, 2 cancel, 3 error, 4 client gone).
SERVER = [
    (0, {"model": "fuzz-model", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}),
    (0 | 8, {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}], "stream": True,
             "stream_options": {"include_usage": True}, "n": 2, "logprobs": True, "top_logprobs": 3}),
    (0 | 16, {"messages": [{"role": "user", "content": "x"}], "stop": ["a", "bb"], "logit_bias": {"5": -100},
              "temperature": 0.5, "top_p": 0.9, "seed": 7}),
    (0 | 8, {"messages": [{"role": "user", "content": "weather?"}],
             "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]}),
    (0, {"messages": "not a list"}),
    (0, {"model": "other", "messages": []}),
    (1, {"prompt": "Once upon", "max_tokens": 4, "logprobs": 2, "echo": False}),
    (1 | 32, {"prompt": [1, 2, 3], "stream": True, "logprobs": 1}),
    (1 | 48, {"prompt": ["a", "b"], "n": 3, "stream": True}),
    (2, {"model": "fuzz-model", "prompt": "Why?", "stream": False, "options": {"num_predict": 5, "temperature": 0}}),
    (2 | 16, {"prompt": "raw text", "raw": True, "context": [1, 5, 9], "system": "sys",
              "options": {"stop": ["x"], "seed": -1, "top_k": 3}}),
    (2, {"prompt": ""}),
    (2 | 64, {"prompt": "x", "stream": True}),
    (3, {"model": "fuzz-model:latest", "messages": [{"role": "user", "content": "hello"}]}),
    (3 | 8 | 48, {"messages": [{"role": "user", "content": "x"}], "stream": True, "format": "json"}),
    (4, {"content": "Hello world", "add_special": True, "with_pieces": True}),
    (5, {"tokens": [1, 2, 3, 258, -1]}),
    (6, {"model": "fuzz-model", "verbose": True}),
    (0, {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
    (0 | 16, {"messages": [{"role": "user", "content": "x"}], "stream": True,
              "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": True, "schema": {
                  "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}}),
    (3, {"model": "fuzz-model", "messages": [{"role": "user", "content": "x"}], "stream": False,
         "format": {"type": "array", "items": {"type": "string", "maxLength": 3}}}),
]


# Raw HTTP exchanges (fuzz_http): bytes as a client sends them, to a server
# with --api-key k, --cors '*', 4 KiB bodies, nesting 16.
def http_req(method, path, body=None, headers=(), auth=True, chunked=False):
    h = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    if auth:
        h.append("Authorization: Bearer k")
    h += list(headers)
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.append("Content-Type: application/json")
        if chunked:
            h.append("Transfer-Encoding: chunked")
            half = len(data) // 2
            data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (data[:half], data[half:]) if c) + b"0\r\n\r\n"
        else:
            h.append("Content-Length: %d" % len(data))
    return ("\r\n".join(h) + "\r\n\r\n").encode() + data


CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
HTTP = {
    "health": http_req("GET", "/health", auth=False),
    "root": http_req("GET", "/", auth=False),
    "metrics": http_req("GET", "/metrics"),
    "models": http_req("GET", "/v1/models"),
    "model_id": http_req("GET", "/v1/models/fuzz-model"),
    "tags_version_ps": http_req("GET", "/api/tags") + http_req("GET", "/api/version") + http_req("GET", "/api/ps"),
    "chat": http_req("POST", "/v1/chat/completions", CHAT),
    "chat_stream": http_req("POST", "/v1/chat/completions", dict(CHAT, stream=True)),
    "chat_chunked": http_req("POST", "/v1/chat/completions", CHAT, chunked=True),
    "completions": http_req("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2}),
    "generate": http_req("POST", "/api/generate", {"prompt": "x", "stream": False}),
    "ollama_chat": http_req("POST", "/api/chat", {"messages": [{"role": "user", "content": "x"}]}),
    "show": http_req("POST", "/api/show", {"model": "fuzz-model"}),
    "tokenize": http_req("POST", "/tokenize", {"content": "Hello"}),
    "detokenize": http_req("POST", "/detokenize", {"tokens": [1, 2, 3]}),
    "no_key": http_req("POST", "/v1/chat/completions", CHAT, auth=False),
    "bad_key": http_req("GET", "/v1/models", auth=False, headers=["Authorization: Bearer nope"]),
    "preflight": http_req("OPTIONS", "/v1/chat/completions", auth=False,
                          headers=["Origin: http://x", "Access-Control-Request-Method: POST",
                                   "Access-Control-Request-Headers: authorization"]),
    "too_big": http_req("POST", "/v1/completions", b"{" + b" " * 5000 + b"}"),
    "too_big_chunked": http_req("POST", "/v1/completions", b"[" * 3000, chunked=True),
    "too_deep": http_req("POST", "/tokenize", b"[" * 40 + b"]" * 40),
    "bad_json": http_req("POST", "/tokenize", b"{\"content\": \"x\""),
    "bad_utf8": http_req("POST", "/tokenize", b"{\"content\": \"\xff\xfe\"}"),
    "unknown_route": http_req("GET", "/nope"),
    "wrong_method": http_req("GET", "/v1/chat/completions"),
    "expect_continue": http_req("POST", "/v1/completions", {"prompt": "x"}, headers=["Expect: 100-continue"]),
    "pipelined": http_req("GET", "/health", auth=False) + http_req("POST", "/tokenize", {"content": "a"}),
    "http10": b"GET /health HTTP/1.0\r\n\r\n",
    "garbage": b"\x00\x01 not http at all\r\n\r\n",
    "partial": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":",
}


def write_dir(name, seeds):
    d = os.path.join(CORPUS, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for fname, data in sorted(seeds.items()):
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


def main():
    rng = random.Random(20240607)
    models = {
        "dense_f32": model(rng),
        "dense_f32_tied_notok": model(rng, tied=True, tokenizer=False, vocab=12),
        "moe_merged_f16": model(rng, experts=4, top_k=2, wtype=F16, layers=2),
        "moe_split_bf16": model(rng, experts=2, top_k=1, wtype=BF16, split=True),
        "moe_q8_0_gqa": model(rng, dim=32, heads=4, kv_heads=2, ffn=32, experts=2, top_k=2, wtype=Q8_0),
        "dense_q4_q5": model(rng, dim=32, heads=2, kv_heads=2, ffn=32, wtype=Q4_0,
                                  ffn_down_types=[Q4_1, Q5_0, Q5_1, Q8_1], layers=4, tokenizer=False),
        "dense_kquants": model(rng, dim=32, heads=2, kv_heads=1, ffn=256, wtype=Q4_0,
                                    ffn_down_types=[Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K], layers=6,
                                    tokenizer=False),
        "dense_align64": model(rng, alignment=64, vocab=20),
    }
    write_dir("model", models)
    gguf = dict(gguf_metadata_only())
    gguf["dense_f32"] = models["dense_f32"]
    gguf["moe_split_bf16"] = models["moe_split_bf16"]
    write_dir("gguf", gguf)
    write_dir("spm", {
        "bpe_bytes": spm_model(),
        "bpe_small": spm_model(byte_fallback=False, n_extra=12, dummy_prefix=False),
        "bpe_unknown_fields": spm_model(byte_fallback=False, unknown_fields=True, order=1),
        "unigram": spm_model(model_type=1, byte_fallback=False, n_extra=8),
    })
    texts = {}
    for i, t in enumerate(TEXTS):
        for flags in (0, 4 | 1, 2):
            texts["text%02d_%d" % (i, flags)] = bytes([flags]) + t
    write_dir("tokenizer", texts)
    chats = {}
    for i, (flags, req) in enumerate(CHATS):
        chats["chat%02d" % i] = bytes([flags]) + json.dumps(req, ensure_ascii=False).encode()
    write_dir("chat", chats)
    write_dir("grammar", {"g%02d" % i: bytes([o]) + src.encode() + b"\0" + cand.encode()
                          for i, (o, src, cand) in enumerate(GRAMMARS)})
    server = {"s%02d" % i: bytes([o]) + json.dumps(b).encode() for i, (o, b) in enumerate(SERVER)}
    server["model_id"] = bytes([7]) + b"fuzz-model:latest"
    write_dir("server", server)
    write_dir("http", HTTP)
    total = 0
    for root, _, files in os.walk(CORPUS):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print("wrote %s (%d bytes)" % (CORPUS, total))


if __name__ == "__main__":
    main()
