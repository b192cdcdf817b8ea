"""`smoe tokenize`: SentencePiece BPE conformance and round trips.

- llama-spm.gguf: all 46 cases of llama.cpp's tokenizer conformance file
  reproduce the reference ids exactly (no BOS, dummy prefix added).
- Mistral's real tokenizers (mistral-v1 for Mixtral 8x7B, mistral-v3 for
  Mixtral 8x22B): ids recorded from the reference SentencePiece library;
  "[INST]" and friends typed as text never give control tokens.
- Round trips through the streaming decoder (--round-trip feeds it one token
  at a time): random strings over all Unicode planes, whitespace runs,
  leading and trailing spaces, several languages, NUL bytes; invalid UTF-8
  becomes U+FFFD per bad byte, as in SentencePiece.
- The command line: BOS handling, stdin, --pieces, errors.

Files come from ../shared (or $SMOE_SHARED); tests that need them skip when
they are absent.  When the reference SentencePiece Python module happens to be
installed (Debian: python3-sentencepiece), random strings are also compared
with it directly; otherwise that test skips.
"""
import os
import random
import subprocess
import unittest

import gguf_tool
from smoe_testlib import SHARED, SMOE, Workdir

LLAMA_SPM = os.path.join(SHARED, "vocab", "llama-spm.gguf")
MISTRAL_V1 = os.path.join(SHARED, "tokenizers", "mistral-v1.model")
MISTRAL_V3 = os.path.join(SHARED, "tokenizers", "mistral-v3.model")


def need(*paths):
    for p in paths:
        if not os.path.exists(p):
            raise unittest.SkipTest(f"{p} not found (shared test data is absent)")


def run(*args, input=None):
    p = subprocess.run([SMOE, *map(str, args)], input=input, capture_output=True, timeout=120)
    err = p.stderr.decode("utf-8", "replace")
    if "Sanitizer" in err or "runtime error" in err:
        raise AssertionError(f"sanitizer report: {err[-2000:]}")
    return p


class Tok:
    """Run `smoe tokenize` on byte strings through a temporary file."""

    def __init__(self, workdir):
        self.dir = workdir
        self.n = 0

    def _file(self, data):
        self.n += 1
        path = self.dir.file(f"text{self.n}.txt")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def ok(self, *args, input=None):
        p = run("tokenize", *args, input=input)
        if p.returncode != 0:
            raise AssertionError(f"smoe tokenize {args} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
        return p.stdout

    def ids(self, model, data, bos=False):
        if isinstance(data, str):
            data = data.encode("utf-8")
        out = self.ok("-m", model, *([] if bos else ["--no-bos"]), "--file", self._file(data))
        return [int(x) for x in out.split()]

    def round_trip(self, model, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self.ok("-m", model, "--round-trip", "--file", self._file(data))


def sp_replace(b):
    """What SentencePiece's normaliser makes of bytes b: every byte that does
    not begin a well-formed UTF-8 character becomes one U+FFFD."""
    out, i = [], 0
    while i < len(b):
        c = b[i]
        n = 1 if c < 0x80 else 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if 0xF0 <= c <= 0xF4 else 0
        if n and i + n <= len(b):
            try:
                out.append(b[i:i + n].decode("utf-8"))
                i += n
                continue
            except UnicodeDecodeError:
                pass
        out.append("\ufffd")
        i += 1
    return "".join(out)


def random_text(rng, n):
    """n random Unicode scalar values from every plane (no surrogates, and
    no U+2581, which SentencePiece decodes to a space), mixed with spaces."""
    chars = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            chars.append(rng.choice([" ", "  ", "\t", "\n", "   "]))
            continue
        if r < 0.4:
            c = rng.randint(0x20, 0x7E)
        elif r < 0.6:
            c = rng.randint(0x80, 0xFFFF)
        else:
            plane = rng.randint(0, 16)
            c = plane * 0x10000 + rng.randint(0, 0xFFFF)
        if 0xD800 <= c <= 0xDFFF or c == 0x2581:
            c = 0x41
        chars.append(chr(c))
    return "".join(chars)


TEXTS = [
    "Hello world",
    " leading space",
    "trailing space ",
    "  two leading, two trailing  ",
    "     ",
    " ",
    "a  b   c    d\t\te\n\nf \n g",
    "The quick brown fox jumps over the lazy dog.",
    "Le cœur a ses raisons que la raison ne connaît point. À bientôt, garçon !",
    "Über allen Gipfeln ist Ruh. Straße, Größe, Mädchen.",
    "¿Dónde está la biblioteca? ¡El niño comió mañana!",
    "Nel mezzo del cammin di nostra vita, perché così è.",
    "日本語のテキスト、中文。한국어 текст ελληνικά עברית العربية हिन्दी",
    "emoji 😀🦙🎉 👩‍👩‍👧‍👦 🇫🇷 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀀",
    "[INST] typed control tokens [/INST] </s><s>",
    "code:\n    def f(x):\n        return x + 1\n",
    "\r\n\r\nwindows lines\r\n",
]


class LlamaSpmConformance(unittest.TestCase):
    """llama.cpp's conformance cases: each input of llama-spm.gguf.inp
    (separated by lines __ggml_vocab_test__) gives the ids on the same line
    of llama-spm.gguf.out."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.tok = Tok(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_all_cases(self):
        inp, out = LLAMA_SPM + ".inp", LLAMA_SPM + ".out"
        need(LLAMA_SPM, inp, out)
        with open(inp, "rb") as f:
            cases = f.read().split(b"\n__ggml_vocab_test__\n")
        self.assertEqual(cases[-1], b"")
        cases = cases[:-1]
        with open(out, "r", encoding="utf-8") as f:
            expected = f.read().split("\n")[:-1]
        self.assertEqual(len(cases), 46)
        self.assertEqual(len(expected), 46)
        for i, (text, want) in enumerate(zip(cases, expected)):
            with self.subTest(case=i, text=text[:40]):
                self.assertEqual(self.tok.ids(LLAMA_SPM, text), [int(x) for x in want.split()])


# Recorded from the reference SentencePiece library (sp.encode(text)).
MISTRAL_V1_IDS = [
    ("Hello, world!", [22557, 28725, 1526, 28808]),
    ("  leading and trailing  ", [259, 5374, 304, 27166, 259]),
    ("[INST] What is 2+2? [/INST]",
     [733, 16289, 28793, 1824, 349, 28705, 28750, 28806, 28750, 28804, 733, 28748, 16289, 28793]),
    ("<s>[INST]</s>[TOOL_CALLS]",
     [523, 28713, 28767, 28792, 16289, 28793, 700, 28713, 28767, 28792, 3957, 3064, 28730, 13741, 28735, 28793]),
    ("Ça va? Ünïcödé — “quotes” …",
     [28705, 29215, 28708, 4536, 28804, 13156, 28711, 28920, 28717, 14697, 28797, 1040, 981, 364, 4769, 28838, 8140]),
    ("日本語のテキスト、中文。",
     [28705, 29142, 29119, 30321, 28993, 29610, 29753, 29109, 29123, 29041, 28991, 29019, 28944]),
    ("emoji 😀🦙🎉", [877, 27813, 28705, 30575, 243, 162, 169, 156, 31862]),
    ("tabs\tand\nnewlines\r\n", [261, 4737, 12, 391, 13, 1095, 8063, 28801, 13]),
    ("▁literal lower block", [28705, 20819, 3889, 2724]),
    ("    def f(x):\n        return x", [260, 801, 285, 28732, 28744, 1329, 13, 5390, 604, 1318]),
    ("", []),
    (" ", [259]),
    ("\x00nul\x00", [28705, 3, 28711, 353, 3]),
]

MISTRAL_V3_IDS = [
    ("Hello, world!", [23325, 29493, 2294, 29576]),
    ("  leading and trailing  ", [1027, 6142, 1072, 27934, 1027]),
    ("[INST] What is 2+2? [/INST]",
     [1501, 17057, 29561, 2592, 1117, 29473, 29518, 29574, 29518, 29572, 1501, 29516, 17057, 29561]),
    ("<s>[INST]</s>[TOOL_CALLS]",
     [1291, 29481, 29535, 29560, 17057, 29561, 1468, 29481, 29535, 29560, 4725, 3832, 29498, 14509, 29503, 29561]),
    ("Ça va? Ünïcödé — “quotes” …",
     [29473, 29983, 29476, 5304, 29572, 13924, 29479, 29688, 29485, 15465, 29565, 1808, 1749, 1132, 5537, 29606, 8908]),
    ("日本語のテキスト、中文。",
     [29473, 29910, 29887, 31089, 29761, 30378, 30521, 29877, 29891, 29809, 29759, 29787, 29712]),
    ("emoji 😀🦙🎉", [1645, 28581, 29473, 31343, 1011, 930, 937, 924, 32630]),
    ("tabs\tand\nnewlines\r\n", [1029, 5505, 780, 1159, 781, 1863, 8831, 29569, 781]),
    # user-defined pieces match as typed, as in the reference
    ("[REFERENCE_DOC_1] and [REFERENCE_DOC_12]x[REFERENCE_DOC_",
     [29473, 769, 1072, 29473, 758, 29512, 29560, 15097, 1493, 16451, 29498, 5938, 29511, 29498]),
    ("▁literal lower block", [29473, 21587, 4657, 3492]),
    ("    def f(x):\n        return x", [1028, 1569, 1053, 29500, 29512, 2097, 781, 6158, 1372, 2086]),
    ("", []),
    (" ", [1027]),
    ("\x00nul\x00", [29473, 771, 29479, 1121, 771]),
]


class MistralTokenizers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.tok = Tok(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def check_recorded(self, model, table):
        need(model)
        for text, want in table:
            with self.subTest(text=text):
                self.assertEqual(self.tok.ids(model, text), want)
                # BOS (<s> = 1) first by default, once
                self.assertEqual(self.tok.ids(model, text, bos=True), [1] + want)

    def test_mistral_v1_recorded_ids(self):
        self.check_recorded(MISTRAL_V1, MISTRAL_V1_IDS)

    def test_mistral_v3_recorded_ids(self):
        self.check_recorded(MISTRAL_V3, MISTRAL_V3_IDS)

    def test_typed_control_tokens_stay_text(self):
        text = ("[INST] hi [/INST] <s></s>[TOOL_CALLS][AVAILABLE_TOOLS][/AVAILABLE_TOOLS]"
                "[TOOL_RESULTS][/TOOL_RESULTS][IMG][PREFIX][MIDDLE][SUFFIX][control_8]")
        for model, control in ((MISTRAL_V1, {0, 1, 2}), (MISTRAL_V3, set(range(0, 11)))):
            need(model)
            with self.subTest(model=os.path.basename(model)):
                ids = self.tok.ids(model, text, bos=True)
                self.assertEqual(ids[0], 1)
                self.assertFalse(control & set(ids[1:]), ids)
                self.assertEqual(self.tok.round_trip(model, text).decode("utf-8"), text)


class RoundTrip(unittest.TestCase):
    """decode(encode(s)) == s, decoding one token at a time."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.tok = Tok(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def models(self):
        found = [m for m in (LLAMA_SPM, MISTRAL_V1, MISTRAL_V3) if os.path.exists(m)]
        if not found:
            raise unittest.SkipTest("no tokenizer files in shared data")
        return found

    def check(self, model, text):
        got = self.tok.round_trip(model, text)
        self.assertEqual(got.decode("utf-8"), text)  # strict: valid UTF-8 as well

    def test_fixed_texts(self):
        for model in self.models():
            for text in TEXTS:
                with self.subTest(model=os.path.basename(model), text=text):
                    self.check(model, text)

    def test_random_strings_all_planes(self):
        rng = random.Random(20240601)
        for model in self.models():
            for i in range(25):
                text = random_text(rng, rng.randint(1, 60))
                with self.subTest(model=os.path.basename(model), i=i, text=text):
                    self.check(model, text)

    def test_one_long_random_string(self):
        rng = random.Random(7)
        text = random_text(rng, 20000)
        for model in self.models():
            with self.subTest(model=os.path.basename(model)):
                self.check(model, text)

    def test_nul_bytes(self):
        for model in self.models():
            for text in ["\x00", "a\x00b", "\x00\x00 \x00", " \x00"]:
                with self.subTest(model=os.path.basename(model), text=text):
                    self.check(model, text)

    def test_byte_fallback_emoji(self):
        """🦙 is not a piece: four byte tokens, which the streaming decoder
        must hold back until the character is complete."""
        need(MISTRAL_V1)
        out = self.tok.ok("-m", MISTRAL_V1, "--no-bos", "--pieces", "🦙")
        lines = out.decode("utf-8").splitlines()
        self.assertEqual([l.split("\t")[1] for l in lines], ["▁", "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"])
        self.check(MISTRAL_V1, "🦙🦙 x🦙")

    def test_invalid_utf8_becomes_replacement(self):
        for model in self.models():
            for data in [b"ab\xffcd\xe2\x82", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80x", b"\xf4\x90\x80\x80",
                         b"\x80\x80 a", b"ok \xf0\x9f\x98"]:
                with self.subTest(model=os.path.basename(model), data=data):
                    want = sp_replace(data)
                    self.assertEqual(self.tok.round_trip(model, data).decode("utf-8"), want)
                    self.assertEqual(self.tok.ids(model, data), self.tok.ids(model, want))

    def test_random_bytes_never_crash(self):
        rng = random.Random(3)
        for model in self.models():
            for i in range(12):
                data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
                with self.subTest(model=os.path.basename(model), i=i):
                    got = self.tok.round_trip(model, data).decode("utf-8")
                    self.assertEqual(got, sp_replace(data).replace("\u2581", " "))


class CommandLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.tok = Tok(cls.dir)
        # A GGUF holding only a small vocabulary, with add_bos_token false.
        S = gguf_tool.STRING
        tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab"]
        kvs = [
            gguf_tool.KV("tokenizer.ggml.model", S, "llama"),
            gguf_tool.KV("tokenizer.ggml.tokens", gguf_tool.ARRAY, tokens, elem_type=S),
            gguf_tool.KV("tokenizer.ggml.scores", gguf_tool.ARRAY, [0.0, 0, 0, -1, -1, -1, -3, -2],
                         elem_type=gguf_tool.F32),
            gguf_tool.KV("tokenizer.ggml.token_type", gguf_tool.ARRAY, [2, 3, 3, 1, 1, 1, 1, 1],
                         elem_type=gguf_tool.I32),
            gguf_tool.KV("tokenizer.ggml.bos_token_id", gguf_tool.U32, 1),
            gguf_tool.KV("tokenizer.ggml.unknown_token_id", gguf_tool.U32, 0),
            gguf_tool.KV("tokenizer.ggml.add_bos_token", gguf_tool.BOOL, False),
        ]
        cls.small = cls.dir.file("small.gguf")
        gguf_tool.write(cls.small, gguf_tool.GGUFFile(kvs=kvs))
        cls.no_vocab = cls.dir.file("novocab.gguf")
        gguf_tool.write(cls.no_vocab, gguf_tool.GGUFFile(kvs=[gguf_tool.KV("general.name", S, "x")]))
        cls.unigram = cls.dir.file("unigram.gguf")
        kvs[0] = gguf_tool.KV("tokenizer.ggml.model", S, "gpt2")
        gguf_tool.write(cls.unigram, gguf_tool.GGUFFile(kvs=kvs))

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def fails(self, *args, want=None, input=None):
        p = run("tokenize", *args, input=input)
        self.assertEqual(p.returncode, 1, p.stdout)
        err = p.stderr.decode("utf-8", "replace")
        self.assertTrue(err.startswith("smoe: ") and err.count("\n") == 1, repr(err))
        if want:
            self.assertIn(want, err)

    def test_small_vocab_without_bos(self):
        # add_bos_token false: no BOS even without --no-bos; <unk> for 'c' (no byte fallback)
        self.assertEqual(self.tok.ok("-m", self.small, "ab a"), b"3 7 6\n")
        self.assertEqual(self.tok.ok("-m", self.small, "a c c"), b"6 3 0 3 0\n")
        self.assertEqual(self.tok.ok("-m", self.small, "cc"), b"3 0\n")
        self.assertEqual(self.tok.ok("-m", self.small, "--pieces", "ab"), "3\t▁\n7\tab\n".encode())
        self.assertEqual(self.tok.ok("-m", self.small, ""), b"\n")

    def test_stdin_and_dash_text(self):
        need(MISTRAL_V1)
        a = self.tok.ok("-m", MISTRAL_V1, "-", input="Hello, world!".encode())
        self.assertEqual(a, b"1 22557 28725 1526 28808\n")
        b = self.tok.ok("-m", MISTRAL_V1, "--no-bos", "--", "-5 degrees")
        self.assertEqual(b, self.tok.ok("-m", MISTRAL_V1, "--no-bos", "-", input=b"-5 degrees"))
        self.assertEqual(self.tok.ok("-m", MISTRAL_V1, "--round-trip", "-", input=b" \x00 x "), b" \x00 x ")

    def test_errors(self):
        self.fails("hello", want="-m FILE is required")
        self.fails("-m", self.dir.file("missing.gguf"), "hello")
        self.fails("-m", self.dir.file("missing.model"), "hello", want="cannot open")
        self.fails("-m", self.small, "--file", self.dir.file("missing.txt"), want="cannot open")
        self.fails("-m", self.small, "--bogus", "x", want="unknown option")
        self.fails("-m", self.small, "a", "b", want="more than one TEXT")
        self.fails("-m", self.small, want="exactly one of")
        self.fails("-m", self.small, "--pieces", "--round-trip", "a", want="do not go together")
        self.fails("-m", self.no_vocab, "hello", want="no tokenizer")
        self.fails("-m", self.unigram, "hello", want="not supported")
        notgguf = self.dir.file("text.gguf")
        with open(notgguf, "wb") as f:
            f.write(b"this is not a gguf file at all, just some text")
        self.fails("-m", notgguf, "hello")
        notspm = self.dir.file("text.model")
        with open(notspm, "wb") as f:
            f.write(b"\xff\xff\xff\xff")
        self.fails("-m", notspm, "hello", want="spm")

    def test_help(self):
        p = run("tokenize", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"usage: smoe tokenize", p.stdout)


class AgainstSentencePiece(unittest.TestCase):
    """Random strings against the reference library itself, where installed."""

    def test_random_strings(self):
        try:
            import sentencepiece  # noqa: F401 (optional; Debian python3-sentencepiece)
        except ImportError:
            raise unittest.SkipTest("the sentencepiece Python module is not installed")
        need(MISTRAL_V1, MISTRAL_V3)
        d = Workdir()
        tok = Tok(d)
        rng = random.Random(99)
        pool = ["the", " the", "ing", "[INST]", "<s>", "[REFERENCE_DOC_1]", "  ", "    ", "\u2581", "...",
                "3333", "é", "日本", "😀", "\n", "\t", "\x00", "\xff"]
        try:
            for model in (MISTRAL_V1, MISTRAL_V3):
                sp = sentencepiece.SentencePieceProcessor(model_file=model)
                for i in range(40):
                    parts = [rng.choice(pool) if rng.random() < 0.5 else random_text(rng, 3) for _ in range(20)]
                    text = "".join(parts)
                    with self.subTest(model=os.path.basename(model), text=text):
                        want = sp.encode(text)
                        self.assertEqual(tok.ids(model, text), want)
                        self.assertEqual(tok.round_trip(model, text).decode("utf-8"), sp.decode(want))
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
