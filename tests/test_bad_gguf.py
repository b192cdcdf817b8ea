"""test_bad_gguf.py - `smoe info` must reject corrupt or inconsistent model
files cleanly.

For every bad input the process must exit with status 1 (not a signal, not
0, not another code) within TIMEOUT seconds, and write exactly one line to
stderr that starts with "smoe: ", names the problem (a case-specific keyword
or the offending key / tensor name, compared case-insensitively), and holds
no sanitizer report.  stdout may contain anything.

The binary is $SMOE_BIN (default build/smoe, relative to the repository
root, which is the working directory).  Base files are made with
`smoe synth --preset tiny`, then read, mutated and rewritten with
tests/gguf_tool.py.

Run: SMOE_BIN=build/smoe python3 tests/test_bad_gguf.py -v
"""

import concurrent.futures
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_tool as gt  # noqa: E402

TIMEOUT = 20
SMOE_BIN = os.environ.get("SMOE_BIN", "build/smoe")
SANITIZER_MARKERS = ("Sanitizer", "runtime error", "LeakSanitizer")
WORKERS = max(1, min(8, os.cpu_count() or 1))
KEEP = bool(os.environ.get("SMOE_TEST_KEEP"))
SHOW = bool(os.environ.get("SMOE_TEST_SHOW"))  # print every case's message

U64_MAX = 2 ** 64 - 1
U32_MAX = 2 ** 32 - 1


def _bin():
    return os.path.abspath(SMOE_BIN) if os.sep in SMOE_BIN else SMOE_BIN


def run_smoe(args, timeout=TIMEOUT):
    """Run the binary; returns (returncode or 'timeout', stdout, stderr)."""
    try:
        p = subprocess.run([_bin()] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or b"", e.stderr or b""
    return p.returncode, p.stdout, p.stderr


def describe_rc(rc):
    if rc == "timeout":
        return "no exit within %d s (hang?)" % TIMEOUT
    if isinstance(rc, int) and rc < 0:
        return "killed by signal %d" % -rc
    return "exit status %r" % rc


def check_rejection(rc, err_bytes, keywords, path=None):
    """Return None when the run is a clean rejection, else a description of
    what is wrong.  keywords: any of them must appear in the message
    (case-insensitive, not counting the file's path); None accepts any
    message."""
    err = err_bytes.decode("utf-8", "replace")
    problems = []
    if rc != 1:
        problems.append(describe_rc(rc) + " (expected exit status 1)")
    if any(m in err for m in SANITIZER_MARKERS):
        problems.append("sanitizer report on stderr")
    lines = err.splitlines()
    if len(lines) != 1:
        problems.append("stderr has %d lines (expected exactly 1)" % len(lines))
    elif not lines[0].startswith("smoe: "):
        problems.append("stderr line does not start with 'smoe: '")
    elif keywords is not None:
        low = lines[0].replace(path, "<file>") if path else lines[0]
        low = low.lower()
        if not any(k.lower() in low for k in keywords):
            problems.append("message names none of %r" % (list(keywords),))
    if not problems:
        return None
    shown = err if len(err) < 1500 else err[:1500] + "...[%d bytes]" % len(err)
    return "; ".join(problems) + "\n  stderr: %r" % shown


def truncate_points(g, max_header_points=480, data_points=24):
    """Offsets at which to cut a valid file: every field boundary of the
    metadata and of a few tensor infos (and one byte past it), a stride over
    the whole header region, and a sample inside the data section (always
    before the end of the last tensor's data, so the cut file is invalid)."""
    lay = g.layout
    info_end = lay["tensor_info_end"]
    data_end = g.tensor_data_end()
    pts = set(range(0, min(40, info_end)))
    for (s, _), kv in zip(lay["kv_spans"], g.kvs):
        klen = len(gt._to_bytes(kv.key))
        for b in (s, s + 8, s + 8 + klen, s + 12 + klen):
            pts.update((b, b + 1))
        if kv.vtype == gt.ARRAY:  # element type, count, first element
            v = s + 12 + klen
            pts.update((v + 4, v + 12, v + 13))
    chosen = list(range(min(4, len(g.tensors))))
    if g.tensors:
        chosen.append(len(g.tensors) - 1)
    for i in chosen:
        s = lay["tensor_spans"][i][0]
        t = g.tensors[i]
        b = s + 8 + len(gt._to_bytes(t.name))
        bounds = [s, s + 8, b]
        b += 4
        for _ in t.dims:
            bounds.append(b)
            b += 8
        bounds += [b, b + 4, b + 12]
        for x in bounds:
            pts.update((x, x + 1))
    stride = max(1, info_end // 300)
    pts.update(range(0, info_end, stride))
    pts.update((info_end - 1, info_end, lay["data_offset"]))
    pts = sorted(p for p in pts if 0 <= p < data_end)
    head = [p for p in pts if p <= info_end]
    if len(head) > max_header_points:  # keep it fast: thin out evenly
        step = len(head) / max_header_points
        head = sorted({head[int(i * step)] for i in range(max_header_points)})
    rest = [p for p in pts if p > info_end]
    data_off = lay["data_offset"]
    span = data_end - data_off
    data = {data_off + 1, data_end - 1, data_end - 8}
    for i in range(data_points):
        data.add(data_off + span * i // data_points)
    for t in g.tensors[:6]:
        data.add(data_off + t.offset)
        data.add(data_off + t.offset + 1)
    data = sorted(p for p in data if data_off <= p < data_end)
    return sorted(set(head) | set(rest) | set(data))


class BadGGUFTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="smoe-bad-gguf-")
        cls.counter = 0
        cls.paths = {}
        for name, extra in (("base", []), ("split", ["--layout", "split"]),
                            ("dense", ["--experts", "0"])):
            path = os.path.join(cls.tmp, name + ".gguf")
            rc, out, err = run_smoe(["synth", "--preset", "tiny", "--seed", "1",
                                     "-o", path] + extra, timeout=120)
            if rc != 0:
                shutil.rmtree(cls.tmp, ignore_errors=True)
                raise RuntimeError("%s synth %s failed (%s): %s" % (
                    SMOE_BIN, name, describe_rc(rc),
                    err.decode("utf-8", "replace")))
            cls.paths[name] = path
        with open(cls.paths["base"], "rb") as fp:
            cls.base_bytes = fp.read()
        cls.base = gt.read(cls.base_bytes)
        cls.split = gt.read(cls.paths["split"])
        cls.dense = gt.read(cls.paths["dense"])
        b = cls.base
        cls.n_layers = b.get("llama.block_count")
        cls.dim = b.get("llama.embedding_length")
        cls.n_experts = b.get("llama.expert_count")
        cls.n_used = b.get("llama.expert_used_count")

    @classmethod
    def tearDownClass(cls):
        if KEEP:
            sys.stderr.write("\nkept test files in %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------

    def new_path(self, label):
        # a neutral name: the message's keywords must not come from the path
        type(self).counter += 1
        return os.path.join(self.tmp, "c%04d.gguf" % self.counter)

    def materialize(self, label, content):
        """content: bytes or a GGUFFile; returns the written path."""
        path = self.new_path(label)
        data = content if isinstance(content, (bytes, bytearray)) else gt.serialize(content)
        with open(path, "wb") as fp:
            fp.write(data)
        return path

    def write_and_run(self, job):
        """Write one case file, run `info` on it, delete it (unless
        SMOE_TEST_KEEP is set; the files are big copies of the model)."""
        _label, path, content, _kw = job
        data = content if isinstance(content, (bytes, bytearray)) else gt.serialize(content)
        with open(path, "wb") as fp:
            fp.write(data)
        try:
            return run_smoe(["info", "-m", path])
        finally:
            if not KEEP:
                os.unlink(path)

    def run_cases(self, cases):
        """cases: list of (label, bytes-or-GGUFFile, keywords).  The files
        are written and run in parallel, then each is checked in a subTest."""
        jobs = [(label, self.new_path(label), content, kw)
                for label, content, kw in cases]
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
            results = list(ex.map(self.write_and_run, jobs))
        for (label, path, _content, kw), (rc, _out, err) in zip(jobs, results):
            if SHOW:
                sys.stderr.write("\n  [%s] rc=%s %s" % (label, rc, err.decode("utf-8", "replace").strip()))
            with self.subTest(case=label):
                problem = check_rejection(rc, err, kw, path)
                if problem:
                    self.fail("%s: %s" % (label, problem))

    def mutated(self, fn, base=None):
        g = (base or self.base).copy()
        fn(g)
        return g

    def tensor_names(self, g=None):
        return [t.name for t in (g or self.base).tensors]

    # -- sanity: the valid files load ----------------------------------------

    def test_00_valid_files_load(self):
        for name, path in sorted(self.paths.items()):
            with self.subTest(file=name):
                rc, _out, err = run_smoe(["info", "-m", path])
                self.assertEqual(rc, 0, "info on valid %s file: %s; stderr %r" % (
                    name, describe_rc(rc), err.decode("utf-8", "replace")))
                self.assertFalse(any(m in err.decode("utf-8", "replace")
                                     for m in SANITIZER_MARKERS))

    def test_01_tool_round_trip(self):
        # gguf_tool must reproduce the file byte for byte, and re-laid-out
        # files (other alignment) must still load: otherwise the mutations
        # below would test the tool, not the reader.
        for name in ("base", "split", "dense"):
            with open(self.paths[name], "rb") as fp:
                raw = fp.read()
            self.assertEqual(gt.serialize(gt.read(raw)), raw, name)
        cases = []
        g = self.base.copy()
        g.data_section = None
        cases.append(("relayout", g))

        def align64(g):
            g.set_kv("general.alignment", gt.U32, 64)
            g.alignment = 64
            g.relayout()
        cases.append(("alignment 64", self.mutated(align64)))

        def tail(g):
            g.tail = b"\0" * 100
        cases.append(("trailing bytes", self.mutated(tail)))
        cases.append(("version 2", self.mutated(lambda g: setattr(g, "version", 2))))
        for label, g in cases:
            with self.subTest(case=label):
                path = self.materialize(label, g)
                rc, _out, err = run_smoe(["info", "-m", path])
                self.assertEqual(rc, 0, "%s: %s; stderr %r" % (
                    label, describe_rc(rc), err.decode("utf-8", "replace")))

    # -- truncation ----------------------------------------------------------

    def test_truncated_header_and_metadata(self):
        g = self.base
        pts = [p for p in truncate_points(g) if p <= g.layout["kv_end"]]
        self.assertGreater(len(pts), 50)
        self.run_cases([("truncated at %d" % p, self.base_bytes[:p],
                         ("truncated", "past the end"))
                        for p in pts])

    def test_truncated_tensor_infos_and_data(self):
        g = self.base
        pts = [p for p in truncate_points(g) if p > g.layout["kv_end"]]
        self.assertGreater(len(pts), 30)
        self.run_cases([("truncated at %d (kv_end %d, data at %d)" % (
            p, g.layout["kv_end"], g.layout["data_offset"]),
            self.base_bytes[:p], ("truncated", "past the end"))
            for p in pts])

    def test_truncated_split_layout_data(self):
        g = self.split
        with open(self.paths["split"], "rb") as fp:
            raw = fp.read()
        data_off, end = g.layout["data_offset"], g.tensor_data_end()
        pts = sorted({g.layout["tensor_info_end"] - 3, data_off, end - 1} |
                     {data_off + (end - data_off) * i // 8 for i in range(1, 8)})
        self.run_cases([("split truncated at %d" % p, raw[:p],
                         ("truncated", "past the end")) for p in pts])

    # -- header ----------------------------------------------------------------

    def test_header(self):
        raw = self.base_bytes
        cases = []
        for magic in (b"GGML", b"gguf", b"FUGG", b"\0\0\0\0", b"GGJT"):
            cases.append(("magic %r" % magic, magic + raw[4:], ("magic",)))
        cases.append(("magic only", b"GGUF", ("truncated", "magic")))
        cases.append(("text file", b"hello, this is not a model file\n" * 4, ("magic",)))
        for v in (0, 1, 4, 5, 0x03000000, 0x02000000, U32_MAX):
            cases.append(("version %#x" % v,
                          raw[:4] + struct.pack("<I", v) + raw[8:], ("version",)))

        def counts(n_tensors=None, n_kv=None):
            g = self.base.copy()
            g.n_tensors, g.n_kv = n_tensors, n_kv
            return g
        n_t, n_kv = len(self.base.tensors), len(self.base.kvs)
        for n in (2 ** 63, 2 ** 61, U64_MAX, 2 ** 32):
            cases.append(("tensor count %d" % n, counts(n_tensors=n), ("tensor count", "tensors")))
            cases.append(("kv count %d" % n, counts(n_kv=n), ("metadata count", "metadata", "key")))
        # within the reader's limits but far more than the file holds
        cases.append(("tensor count 2**20", counts(n_tensors=2 ** 20), ("truncated", "tensors")))
        cases.append(("tensor count 100000", counts(n_tensors=100000), ("truncated", "tensors")))
        # counts that disagree with the lists: the parser reads the wrong
        # structure; any clean one-line rejection will do
        cases.append(("kv count +1", counts(n_kv=n_kv + 1), None))
        cases.append(("kv count -1", counts(n_kv=n_kv - 1), None))
        cases.append(("tensor count +1", counts(n_tensors=n_t + 1), None))
        cases.append(("kv count 0", counts(n_kv=0), None))
        self.run_cases(cases)

    # -- metadata --------------------------------------------------------------

    def test_metadata_encoding(self):
        cases = []

        def first(kv):
            return lambda g: g.kvs.insert(0, kv)
        cases.append(("empty key", self.mutated(first(gt.KV("", gt.U32, 1))), ("empty",)))
        cases.append(("NUL in key", self.mutated(first(gt.KV("a\0b", gt.U32, 1))), ("NUL",)))
        for n in (2 ** 63, U64_MAX, 2 ** 61):
            cases.append(("key length %d" % n, self.mutated(first(gt.KV(
                "x", gt.U32, 1, raw_key=struct.pack("<Q", n) + b"x"))),
                ("string length", "limit", "truncated")))
        cases.append(("key length 65536", self.mutated(first(gt.KV(
            "x", gt.U32, 1, raw_key=struct.pack("<Q", 65536) + b"x" * 65536))),
            ("string length", "limit")))
        # keys cannot be longer than the base file, so use a small file
        short = gt.GGUFFile(kvs=[gt.KV("x", gt.U32, 1, raw_key=struct.pack("<Q", 1000) + b"abc")])
        short.data_section = b""
        cases.append(("key longer than the file", short, ("truncated",)))
        empty = gt.GGUFFile()
        empty.data_section = b""
        cases.append(("no metadata, no tensors", empty,
                      ("general.architecture", "missing", "architecture")))

        arch_key = "general.architecture"

        def raw_value(key, vtype, value_bytes):
            def fn(g):
                kv = g.kv(key)
                kv.vtype, kv.raw_value = vtype, value_bytes
            return fn
        for n in (2 ** 63, U64_MAX, 2 ** 40):
            cases.append(("string length %d" % n, self.mutated(raw_value(
                arch_key, gt.STRING, struct.pack("<Q", n) + b"llama")),
                ("string length", "limit", arch_key)))
        too_long = len(self.base_bytes) + 1000
        cases.append(("string longer than the file", self.mutated(raw_value(
            arch_key, gt.STRING, struct.pack("<Q", too_long) + b"llama")),
            ("truncated",)))
        # a string in the middle of an array claiming to be huge
        toks = self.base.get("tokenizer.ggml.tokens")
        self.assertIsInstance(toks, list)
        elems = b"".join(gt.encode_string(t) for t in toks[:3])
        cases.append(("string in array longer than the file", self.mutated(raw_value(
            "tokenizer.ggml.tokens", gt.ARRAY,
            struct.pack("<IQ", gt.STRING, len(toks)) + elems +
            struct.pack("<Q", too_long) + b"abc")), ("truncated",)))
        cases.append(("string in array length 2**63", self.mutated(raw_value(
            "tokenizer.ggml.tokens", gt.ARRAY,
            struct.pack("<IQ", gt.STRING, len(toks)) + elems +
            struct.pack("<Q", 2 ** 63) + b"abc")),
            ("string length", "limit", "tokenizer.ggml.tokens")))

        scores_key = "tokenizer.ggml.scores"
        for n in (2 ** 62, 2 ** 63, U64_MAX, 2 ** 61 + 1):
            cases.append(("array count %d" % n, self.mutated(raw_value(
                scores_key, gt.ARRAY, struct.pack("<IQ", gt.F32, n) + b"\0" * 64)),
                ("array length", "limit", "truncated")))
        for n, et in ((2 ** 28, gt.F32), (2 ** 27, gt.STRING), (2 ** 24, gt.U8),
                      (1000000, gt.ARRAY)):
            cases.append(("array count %d of %s past the end" % (n, gt.VTYPE_NAMES[et]),
                          self.mutated(raw_value(scores_key, gt.ARRAY,
                                                 struct.pack("<IQ", et, n) + b"\0" * 64)),
                          ("truncated",)))

        def append_kv(kv):
            return lambda g: g.kvs.append(kv)
        for t in (13, 14, 255, U32_MAX):
            cases.append(("unknown value type %d" % t, self.mutated(append_kv(
                gt.KV("test.bad_type", t, raw_value=b"\0" * 16))),
                ("unknown value type", "unknown")))
        cases.append(("unknown array element type", self.mutated(append_kv(
            gt.KV("test.bad_array", gt.ARRAY, raw_value=struct.pack("<IQ", 13, 1) + b"\0" * 16))),
            ("unknown",)))
        for v in (2, 255):
            cases.append(("bool value %d" % v, self.mutated(append_kv(
                gt.KV("test.flag", gt.BOOL, raw_value=bytes([v])))), ("bool",)))
        cases.append(("bool array element 2", self.mutated(append_kv(
            gt.KV("test.flags", gt.ARRAY, raw_value=struct.pack("<IQ", gt.BOOL, 3) + b"\x00\x01\x02"))),
            ("bool",)))
        deep = b"".join(struct.pack("<IQ", gt.ARRAY, 1) for _ in range(40)) + \
            struct.pack("<IQ", gt.U8, 0)
        cases.append(("arrays nested 41 deep", self.mutated(append_kv(
            gt.KV("test.deep", gt.ARRAY, raw_value=deep))), ("nested", "depth", "deep")))

        def dup(key):
            def fn(g):
                g.kvs.append(gt.KV(key, g.kv(key).vtype, g.kv(key).value, g.kv(key).elem_type))
            return fn
        cases.append(("duplicate key general.architecture", self.mutated(dup(arch_key)),
                      ("duplicate",)))
        cases.append(("duplicate key llama.block_count (other type)", self.mutated(
            append_kv(gt.KV("llama.block_count", gt.STRING, "2"))), ("duplicate",)))
        cases.append(("duplicate key, adjacent", self.mutated(
            lambda g: g.kvs.insert(1, gt.KV(g.kvs[0].key, g.kvs[0].vtype,
                                            g.kvs[0].value, g.kvs[0].elem_type))),
            ("duplicate",)))

        def alignment(value, vtype=gt.U32):
            def fn(g):
                g.kvs.insert(1, gt.KV("general.alignment", vtype, value))
            return fn
        for a in (0, 3, 48, 2 ** 31, 2 ** 21, U32_MAX):
            cases.append(("general.alignment %d" % a, self.mutated(alignment(a)),
                          ("general.alignment",)))
        cases.append(("general.alignment as uint64", self.mutated(alignment(32, gt.U64)),
                      ("general.alignment",)))
        cases.append(("general.alignment as string", self.mutated(alignment("32", gt.STRING)),
                      ("general.alignment",)))
        self.run_cases(cases)

    # -- tensor infos ---------------------------------------------------------

    def test_tensor_infos(self):
        cases = []
        names = self.tensor_names()
        t0 = names[0]
        norm = "output_norm.weight" if "output_norm.weight" in names else names[-1]

        def on(name, fn):
            return self.mutated(lambda g: fn(g.tensor(name)))

        def setattrs(**kw):
            def fn(t):
                for k, v in kw.items():
                    setattr(t, k, v)
            return fn

        def ndims_0(t):
            t.dims = []
        cases.append(("n_dims 0", on(t0, ndims_0), ("n_dims",)))

        def ndims_5(t):
            t.dims = t.dims + [1] * (5 - len(t.dims))
        cases.append(("n_dims 5", on(t0, ndims_5), ("n_dims",)))
        cases.append(("n_dims 2**32-1", on(t0, setattrs(n_dims=U32_MAX)), ("n_dims",)))
        cases.append(("n_dims 5 on last tensor", on(names[-1], ndims_5), ("n_dims",)))
        for d in (0, U64_MAX, 2 ** 63):
            def dim(t, d=d):
                t.dims = [d] + t.dims[1:]
            cases.append(("dimension %d" % d, on(t0, dim), ("dimension",)))

            def dim_last(t, d=d):
                t.dims = t.dims[:-1] + [d]
            cases.append(("last dimension %d" % d, on(names[-1], dim_last), ("dimension",)))
        cases.append(("element count overflow 2**32 x3",
                      on(t0, setattrs(dims=[2 ** 32] * 3, ggml_type=0)), ("overflow",)))
        cases.append(("element count overflow 2**31 x2",
                      on(t0, setattrs(dims=[2 ** 31, 2 ** 31], ggml_type=0)), ("overflow",)))
        cases.append(("element count overflow 2**16 x4",
                      on(t0, setattrs(dims=[2 ** 16] * 4, ggml_type=0)), ("overflow",)))
        cases.append(("byte size overflow F64 2**61",
                      on(t0, setattrs(dims=[2 ** 61], ggml_type=28)), ("overflow",)))
        cases.append(("byte size overflow I64 2**31 x 2**30",
                      on(t0, setattrs(dims=[2 ** 31, 2 ** 30], ggml_type=27)), ("overflow",)))
        cases.append(("huge tensor 2**40 F32",
                      on(t0, setattrs(dims=[2 ** 40], ggml_type=0)), ("past the end",)))
        for ty in (77, 4, 5, 16, 39, 40, 255, U32_MAX):
            cases.append(("tensor type %d" % ty, on(t0, setattrs(ggml_type=ty)),
                          ("unknown type", "type")))
        cases.append(("Q4_0 row length 48", on(norm, setattrs(dims=[48], ggml_type=2)),
                      ("block size", "multiple")))
        cases.append(("Q4_K row length 64", on(norm, setattrs(dims=[64], ggml_type=12)),
                      ("block size", "multiple")))

        data_len = len(self.base.data_section)
        last = max(self.base.tensors, key=lambda t: t.offset)
        for off in (data_len + 64 - data_len % 32, 2 ** 30, 2 ** 63, U64_MAX - 31, U64_MAX + 1 - 64):
            cases.append(("%s offset %d" % (last.name, off), on(last.name, setattrs(offset=off)),
                          ("past the end",)))
        cases.append(("first tensor offset past EOF", on(t0, setattrs(offset=2 ** 40)),
                      ("past the end",)))
        for delta in (1, 4, 16, 31):
            def unalign(t, delta=delta):
                t.offset += delta
            cases.append(("offset +%d unaligned" % delta, on(names[1], unalign), ("aligned",)))

        # overlaps
        by_off = sorted(self.base.tensors, key=lambda t: t.offset)
        a, b = by_off[0], by_off[1]
        cases.append(("overlap: same offset", on(b.name, setattrs(offset=a.offset)),
                      ("overlap",)))
        big = max(self.base.tensors, key=lambda t: t.nbytes)
        small = min((t for t in self.base.tensors if t is not big), key=lambda t: t.nbytes)
        inside = big.offset + 32 * ((big.nbytes // 2) // 32)
        if big.nbytes > 64 and inside + small.nbytes <= data_len:
            cases.append(("overlap: %s inside %s" % (small.name, big.name),
                          on(small.name, setattrs(offset=inside)), ("overlap",)))
        # the first tensor runs into the next one by one aligned step
        back = b.offset - 32
        if a.offset < back < a.offset + a.nbytes:
            cases.append(("overlap: next tensor moved back 32 bytes",
                          on(b.name, setattrs(offset=back)), ("overlap",)))

        # names
        cases.append(("empty tensor name", on(t0, setattrs(name="")), ("empty",)))
        cases.append(("NUL in tensor name", on(t0, setattrs(name="tok\0en")), ("NUL",)))
        cases.append(("tensor name 300 bytes", on(t0, setattrs(name="x" * 300)),
                      ("name", "limit")))
        for n in (U64_MAX, 2 ** 63, 10 ** 6):
            raw = struct.pack("<Q", n) + b"blk"
            cases.append(("tensor name length %d" % n,
                          on(t0, setattrs(raw=raw)), ("truncated", "name", "limit")))
        cases.append(("duplicate tensor name", self.mutated(
            lambda g: setattr(g.tensors[1], "name", g.tensors[0].name)), ("duplicate",)))
        cases.append(("duplicate tensor name, far apart", self.mutated(
            lambda g: setattr(g.tensors[-1], "name", g.tensors[2].name)), ("duplicate",)))
        self.run_cases(cases)

    # -- model: hyperparameters ----------------------------------------------

    def test_hyperparameters(self):
        cases = []

        def kv(key, vtype, value, elem_type=None, base=None):
            return self.mutated(lambda g: g.set_kv(key, vtype, value, elem_type), base)

        def drop(key, base=None):
            return self.mutated(lambda g: g.remove_kv(key), base)
        arch = "general.architecture"
        cases.append(("architecture gpt2", kv(arch, gt.STRING, "gpt2"), ("architecture", "gpt2")))
        cases.append(("architecture empty", kv(arch, gt.STRING, ""), ("architecture",)))
        cases.append(("architecture llama2", kv(arch, gt.STRING, "llama2"), ("architecture",)))
        cases.append(("architecture as uint32", kv(arch, gt.U32, 1), ("architecture",)))
        cases.append(("architecture missing", drop(arch), ("architecture",)))
        nl = self.n_layers
        for key in ("llama.block_count", "llama.embedding_length",
                    "llama.feed_forward_length", "llama.attention.head_count"):
            cases.append(("%s as string" % key, kv(key, gt.STRING, "8"), (key,)))
            cases.append(("%s missing" % key, drop(key), (key,)))
            cases.append(("%s = 0" % key, kv(key, gt.U32, 0), (key,)))
            cases.append(("%s = -1" % key, kv(key, gt.I32, -1), (key,)))
        cases.append(("block_count as float32", kv("llama.block_count", gt.F32, float(nl)),
                      ("llama.block_count",)))
        cases.append(("block_count as array", kv("llama.block_count", gt.ARRAY, [nl], gt.U32),
                      ("llama.block_count",)))
        cases.append(("block_count 2**63 (uint64)", kv("llama.block_count", gt.U64, 2 ** 63),
                      ("llama.block_count",)))
        cases.append(("block_count 2**32 (int64)", kv("llama.block_count", gt.I64, 2 ** 32),
                      ("llama.block_count",)))
        cases.append(("block_count one too many", kv("llama.block_count", gt.U32, nl + 1),
                      ("blk.%d." % nl, "missing")))
        dim = self.dim
        cases.append(("embedding_length 2x", kv("llama.embedding_length", gt.U32, dim * 2),
                      ("embedding_length", "token_embd")))
        heads = self.base.get("llama.attention.head_count")
        # (keeps the head size even and not below rope.dimension_count)
        cases.append(("embedding_length + 2 per head",
                      kv("llama.embedding_length", gt.U32, dim + 2 * heads),
                      ("embedding_length", "token_embd")))
        kv_heads = self.base.get("llama.attention.head_count_kv", heads)
        cases.append(("head_count not dividing dim", kv("llama.attention.head_count", gt.U32, dim + 1),
                      ("head_count",)))
        if kv_heads > 1 or heads > 1:
            cases.append(("head_count_kv not dividing head_count",
                          kv("llama.attention.head_count_kv", gt.U32, heads + 1),
                          ("head_count_kv",)))
        cases.append(("head_count_kv 0", kv("llama.attention.head_count_kv", gt.U32, 0),
                      ("head_count_kv",)))
        cases.append(("rope dimension_count odd",
                      kv("llama.rope.dimension_count", gt.U32, 3), ("dimension_count",)))
        cases.append(("rope dimension_count above head dim",
                      kv("llama.rope.dimension_count", gt.U32, dim // heads + 2),
                      ("dimension_count",)))
        cases.append(("rms epsilon negative",
                      kv("llama.attention.layer_norm_rms_epsilon", gt.F32, -1.0),
                      ("layer_norm_rms_epsilon",)))
        cases.append(("rms epsilon as string",
                      kv("llama.attention.layer_norm_rms_epsilon", gt.STRING, "1e-5"),
                      ("layer_norm_rms_epsilon",)))
        cases.append(("rope freq_base 0", kv("llama.rope.freq_base", gt.F32, 0.0),
                      ("freq_base",)))
        cases.append(("rope freq_base NaN", kv("llama.rope.freq_base", gt.F32, float("nan")),
                      ("freq_base",)))
        cases.append(("context_length 0", kv("llama.context_length", gt.U32, 0),
                      ("context_length",)))

        ne, nu = self.n_experts, self.n_used
        self.assertTrue(ne and ne >= 2, "the tiny preset should be a MoE model")
        cases.append(("expert_used_count > expert_count",
                      kv("llama.expert_used_count", gt.U32, ne + 1), ("expert_used_count",)))
        cases.append(("expert_used_count 0", kv("llama.expert_used_count", gt.U32, 0),
                      ("expert_used_count",)))
        cases.append(("expert_used_count -1", kv("llama.expert_used_count", gt.I32, -1),
                      ("expert_used_count",)))
        cases.append(("expert_used_count as string", kv("llama.expert_used_count", gt.STRING, "2"),
                      ("expert_used_count",)))
        cases.append(("expert_count 300", kv("llama.expert_count", gt.U32, 300),
                      ("expert_count",)))
        cases.append(("expert_count 257", kv("llama.expert_count", gt.U32, 257),
                      ("expert_count",)))
        cases.append(("expert_count 2**31", kv("llama.expert_count", gt.U32, 2 ** 31),
                      ("expert_count",)))
        cases.append(("expert_count 2**63 (uint64)", kv("llama.expert_count", gt.U64, 2 ** 63),
                      ("expert_count",)))
        cases.append(("expert_count 1", self.mutated(lambda g: (
            g.set_kv("llama.expert_count", gt.U32, 1),
            g.set_kv("llama.expert_used_count", gt.U32, 1))), ("expert_count",)))
        cases.append(("expert_count -1", kv("llama.expert_count", gt.I32, -1),
                      ("expert_count",)))
        if nu < ne - 1:
            # fewer experts than the tensors hold: a shape mismatch
            cases.append(("expert_count one less than the tensors",
                          kv("llama.expert_count", gt.U32, ne - 1),
                          ("ffn_gate_inp", "shape", "expert")))
        cases.append(("dense: expert_used_count without experts",
                      kv("llama.expert_used_count", gt.U32, 2, base=self.dense),
                      ("expert_used_count",)))
        self.run_cases(cases)

    # -- model: tokenizer ------------------------------------------------------

    def test_tokenizer_metadata(self):
        cases = []
        toks = self.base.get("tokenizer.ggml.tokens")
        n = len(toks)

        def kv(key, vtype, value, elem_type=None):
            return self.mutated(lambda g: g.set_kv(key, vtype, value, elem_type))
        cases.append(("scores as int32 array",
                      kv("tokenizer.ggml.scores", gt.ARRAY, [0] * n, gt.I32),
                      ("tokenizer.ggml.scores",)))
        cases.append(("scores as float32 scalar",
                      kv("tokenizer.ggml.scores", gt.F32, 0.0), ("tokenizer.ggml.scores",)))
        cases.append(("scores too short",
                      kv("tokenizer.ggml.scores", gt.ARRAY, [0.0] * (n - 1), gt.F32),
                      ("tokenizer.ggml.scores", "scores")))
        cases.append(("tokens as int32 array",
                      kv("tokenizer.ggml.tokens", gt.ARRAY, list(range(n)), gt.I32),
                      ("tokenizer.ggml.tokens",)))
        cases.append(("tokens as a string", kv("tokenizer.ggml.tokens", gt.STRING, "abc"),
                      ("tokenizer.ggml.tokens",)))
        cases.append(("tokens as array of arrays",
                      kv("tokenizer.ggml.tokens", gt.ARRAY, [(gt.U8, [65])] * n, gt.ARRAY),
                      ("tokenizer.ggml.tokens",)))

        def fewer_tokens(g):
            for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                        "tokenizer.ggml.token_type"):
                if g.has_kv(key):
                    g.kv(key).value = g.kv(key).value[:-1]
        cases.append(("one token fewer than token_embd rows", self.mutated(fewer_tokens),
                      ("tokenizer.ggml.tokens", "token_embd", "n_vocab", "vocab")))
        if self.base.has_kv("tokenizer.ggml.token_type"):
            cases.append(("token_type as float32 array",
                          kv("tokenizer.ggml.token_type", gt.ARRAY, [1.0] * n, gt.F32),
                          ("tokenizer.ggml.token_type",)))
        for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
            if self.base.has_kv(key):
                cases.append(("%s out of range" % key, kv(key, gt.U32, n + 5), (key,)))
                cases.append(("%s as string" % key, kv(key, gt.STRING, "1"), (key,)))
        self.run_cases(cases)

    # -- model: tensors --------------------------------------------------------

    def test_missing_tensors(self):
        cases = []

        def drop(name, base=None):
            return self.mutated(lambda g: g.remove_tensor(name), base)
        nl = self.n_layers
        last = nl - 1
        for name in ("blk.%d.attn_q.weight" % min(1, last), "blk.0.ffn_gate_exps.weight",
                     "blk.%d.ffn_down_exps.weight" % last, "blk.0.ffn_gate_inp.weight",
                     "blk.0.attn_norm.weight", "blk.%d.ffn_norm.weight" % last,
                     "blk.0.attn_output.weight", "token_embd.weight", "output_norm.weight"):
            self.assertTrue(self.base.has_tensor(name), name)
            cases.append(("missing %s" % name, drop(name), (name, "missing")))
        for name in ("blk.0.ffn_up.1.weight", "blk.%d.ffn_down.%d.weight" % (last, self.n_experts - 1),
                     "blk.0.ffn_gate.0.weight"):
            self.assertTrue(self.split.has_tensor(name), name)
            cases.append(("split: missing %s" % name, drop(name, self.split), (name, "missing")))
        for name in ("blk.0.ffn_down.weight", "blk.%d.ffn_gate.weight" % last):
            self.assertTrue(self.dense.has_tensor(name), name)
            cases.append(("dense: missing %s" % name, drop(name, self.dense), (name, "missing")))
        self.run_cases(cases)

    def test_wrong_shapes(self):
        cases = []

        def reshape(name, dims, base=None, ggml_type=None):
            def fn(g):
                t = g.tensor(name)
                t.dims = list(dims)
                if ggml_type is not None:
                    t.ggml_type = ggml_type
                g.relayout()
            return self.mutated(fn, base)
        b = self.base
        k = b.tensor("blk.0.attn_k.weight")
        cases.append(("attn_k dims swapped %r" % (k.dims,),
                      reshape(k.name, k.dims[::-1]), (k.name, "shape")))
        cases.append(("attn_k twice as many rows",
                      reshape(k.name, [k.dims[0], k.dims[1] * 2]), (k.name, "shape")))
        cases.append(("attn_k as 3-D", reshape(k.name, k.dims + [1]), (k.name, "shape")))
        q = b.tensor("blk.0.attn_q.weight")
        cases.append(("attn_q 1-D", reshape(q.name, [q.dims[0] * q.dims[1]]), (q.name, "shape")))
        if b.has_tensor("output.weight"):
            o = b.tensor("output.weight")
            cases.append(("output.weight transposed", reshape(o.name, o.dims[::-1]),
                          ("output.weight", "shape")))
        e = b.tensor("token_embd.weight")
        cases.append(("token_embd transposed", reshape(e.name, e.dims[::-1]),
                      ("token_embd", "shape")))
        cases.append(("token_embd 1-D", reshape(e.name, [e.dims[0] * e.dims[1]]),
                      ("token_embd", "shape")))
        g = b.tensor("blk.0.ffn_gate_exps.weight")
        cases.append(("ffn_gate_exps one expert more",
                      reshape(g.name, g.dims[:2] + [g.dims[2] + 1]), (g.name, "shape")))
        cases.append(("ffn_gate_exps 2-D", reshape(g.name, [g.dims[0], g.dims[1] * g.dims[2]]),
                      (g.name, "shape")))
        d = b.tensor("blk.0.ffn_down_exps.weight")
        cases.append(("ffn_down_exps as gate shape", reshape(d.name, g.dims), (d.name, "shape")))
        r = b.tensor("blk.0.ffn_gate_inp.weight")
        cases.append(("router rows + 1", reshape(r.name, [r.dims[0], r.dims[1] + 1]),
                      (r.name, "shape")))
        n = b.tensor("output_norm.weight")
        cases.append(("output_norm length + 1", reshape(n.name, [n.dims[0] + 1]),
                      ("output_norm", "shape")))
        s = self.split.tensor("blk.0.ffn_up.1.weight")
        cases.append(("split: per-expert tensor transposed",
                      reshape(s.name, s.dims[::-1], base=self.split), (s.name, "shape")))
        dd = self.dense.tensor("blk.0.ffn_up.weight")
        cases.append(("dense: ffn_up transposed",
                      reshape(dd.name, dd.dims[::-1], base=self.dense), (dd.name, "shape")))
        # a type this engine will never compute with
        cases.append(("attn_q as I64", reshape(q.name, q.dims, ggml_type=27),
                      (q.name, "has type", "I64")))
        self.run_cases(cases)

    # -- fuzz: single corrupted bytes in the header region -----------------

    def test_corrupted_bytes(self):
        # Overwrite single bytes of the header, metadata and tensor infos.
        # Some of these still make a loadable file, so exit 0 is accepted;
        # anything else must be a clean one-line rejection.
        raw = self.base_bytes
        end = self.base.layout["tensor_info_end"]
        positions = sorted(set(list(range(0, 24)) +
                               [end * i // 140 for i in range(140)]))
        jobs = []
        for i, p in enumerate(positions):
            v = (0xFF, 0x00, 0x80, 0x7F, 0x41)[i % 5]
            if raw[p] == v:
                v ^= 0x01
            data = raw[:p] + bytes([v]) + raw[p + 1:]
            label = "byte %d = %#x" % (p, v)
            jobs.append((label, self.new_path("flip%d" % p), data, None))
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
            results = list(ex.map(self.write_and_run, jobs))
        for (label, path, _data, _kw), (rc, _out, err) in zip(jobs, results):
            with self.subTest(case=label):
                if rc == 0:
                    text = err.decode("utf-8", "replace")
                    self.assertFalse(any(m in text for m in SANITIZER_MARKERS),
                                     "%s: sanitizer report: %r" % (label, text))
                    continue
                problem = check_rejection(rc, err, None, path)
                if problem:
                    self.fail("%s: %s" % (label, problem))


if __name__ == "__main__":
    unittest.main()
