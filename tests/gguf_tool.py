"""gguf_tool.py - a small GGUF reader/writer for the test suite (stdlib only).

The reader parses a well-formed GGUF file (versions 2 and 3) into plain
Python objects.  The writer turns such objects back into bytes and gives the
caller full control over every field, so that tests can craft corrupt files:
the header counts may disagree with the lists, value types are raw ids, any
value, key, tensor-info entry or dimension list may be replaced by raw bytes,
and arbitrary bytes may be appended.

Layout (little-endian):
    "GGUF" u32 version u64 n_tensors u64 n_kv
    n_kv      x { string key, u32 value type, value }
    n_tensors x { string name, u32 n_dims, u64 dims[n_dims], u32 ggml type,
                  u64 offset (relative to the data section) }
    zero padding to general.alignment (default 32), then the data section.
A string is u64 length + bytes; an array is u32 element type, u64 count and
the elements.

Typical use:

    g = gguf_tool.read("model.gguf")
    g.kv("llama.block_count").value = 7
    g.tensor("blk.0.attn_k.weight").dims = [64, 64]
    gguf_tool.write("bad.gguf", g)
"""

import copy
import struct

__all__ = [
    "U8", "I8", "U16", "I16", "U32", "I32", "F32", "BOOL", "STRING", "ARRAY",
    "U64", "I64", "F64", "VTYPE_NAMES", "GGML_TYPES", "GGUFError", "KV",
    "TensorInfo", "GGUFFile", "read", "serialize", "write", "tensor_nbytes",
    "encode_string", "encode_value", "encode_kv", "encode_tensor_info",
]

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)

VTYPE_NAMES = ["uint8", "int8", "uint16", "int16", "uint32", "int32",
               "float32", "bool", "string", "array", "uint64", "int64",
               "float64"]

# struct format of each fixed-size value type
_SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I",
               I32: "<i", F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q",
               F64: "<d"}

# ggml type id -> (name, elements per block, bytes per block)
# (mirrors src/kernels/types.c)
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    30: ("BF16", 1, 2),
}

DEFAULT_ALIGNMENT = 32
MAGIC = b"GGUF"


class GGUFError(Exception):
    """The input is not a GGUF file this reader understands."""


def tensor_nbytes(dims, ggml_type):
    """Byte size of a tensor, or None for an unknown type or a row length
    that is not a whole number of blocks."""
    info = GGML_TYPES.get(ggml_type)
    if info is None:
        return None
    _, block, block_bytes = info
    n = 1
    for d in dims:
        n *= d
    if not dims or dims[0] % block:
        return None
    return n // block * block_bytes


def _to_bytes(s):
    if isinstance(s, (bytes, bytearray)):
        return bytes(s)
    return s.encode("utf-8", "surrogateescape")


def _from_bytes(b):
    return b.decode("utf-8", "surrogateescape")


class KV:
    """One metadata entry.

    key        str (or bytes)
    vtype      raw u32 value type id written to the file
    value      Python value: int/float/bool, str (or bytes) for strings, a
               list for arrays (for arrays of arrays: a list of
               (elem_type, list) pairs)
    elem_type  element type for arrays (None otherwise)
    raw_key    if not None: bytes written instead of the encoded key string
               (length prefix included)
    raw_value  if not None: bytes written after the type id instead of the
               encoded value (use for unknown types, bad bools, absurd
               lengths and counts, ...)
    """

    def __init__(self, key, vtype, value=None, elem_type=None, raw_key=None,
                 raw_value=None):
        self.key = key
        self.vtype = vtype
        self.value = value
        self.elem_type = elem_type
        self.raw_key = raw_key
        self.raw_value = raw_value

    def __repr__(self):
        v = self.value
        if isinstance(v, list) and len(v) > 4:
            v = "[%d items]" % len(v)
        return "KV(%r, %s, %r%s)" % (
            self.key, VTYPE_NAMES[self.vtype] if self.vtype < 13 else self.vtype,
            v, "" if self.elem_type is None else ", elem_type=%d" % self.elem_type)


class TensorInfo:
    """One tensor-info entry.

    name       str (or bytes)
    dims       list of ints, dims[0] fastest; each written as u64 (mod 2**64,
               so -1 gives 2**64-1)
    ggml_type  raw u32 type id
    offset     raw u64 offset relative to the data section
    n_dims     if not None: written instead of len(dims)
    raw        if not None: bytes written instead of the whole entry
    data       the tensor's bytes (filled by read(); used by relayout())
    """

    def __init__(self, name, dims, ggml_type, offset=0, n_dims=None, raw=None,
                 data=None):
        self.name = name
        self.dims = list(dims)
        self.ggml_type = ggml_type
        self.offset = offset
        self.n_dims = n_dims
        self.raw = raw
        self.data = data

    @property
    def nbytes(self):
        return tensor_nbytes(self.dims, self.ggml_type)

    def __repr__(self):
        return "TensorInfo(%r, %r, type=%d, offset=%d)" % (
            self.name, self.dims, self.ggml_type, self.offset)


class GGUFFile:
    """A whole file.

    magic         4 bytes written first
    version       u32
    kvs           list of KV
    tensors       list of TensorInfo
    n_kv          if not None: header kv count written instead of len(kvs)
    n_tensors     if not None: header tensor count written instead of
                  len(tensors)
    alignment     padding granularity used before the data section by the
                  writer (None: taken from a valid u32 general.alignment in
                  kvs, else 32)
    data_section  bytes written after the padding (None: built by relayout())
    tail          raw bytes appended at the very end
    layout        (after read()) byte positions of the regions, see read()
    """

    def __init__(self, version=3, kvs=None, tensors=None):
        self.magic = MAGIC
        self.version = version
        self.kvs = list(kvs or [])
        self.tensors = list(tensors or [])
        self.n_kv = None
        self.n_tensors = None
        self.alignment = None
        self.data_section = None
        self.tail = b""
        self.layout = None

    # -- lookup and editing -------------------------------------------------

    def kv(self, key):
        for kv in self.kvs:
            if kv.key == key:
                return kv
        raise KeyError(key)

    def has_kv(self, key):
        return any(kv.key == key for kv in self.kvs)

    def get(self, key, default=None):
        for kv in self.kvs:
            if kv.key == key:
                return kv.value
        return default

    def set_kv(self, key, vtype, value, elem_type=None):
        """Replace (keeping its position) or append a metadata entry."""
        for i, kv in enumerate(self.kvs):
            if kv.key == key:
                self.kvs[i] = KV(key, vtype, value, elem_type)
                return self.kvs[i]
        self.kvs.append(KV(key, vtype, value, elem_type))
        return self.kvs[-1]

    def remove_kv(self, key):
        n = len(self.kvs)
        self.kvs = [kv for kv in self.kvs if kv.key != key]
        if len(self.kvs) == n:
            raise KeyError(key)

    def tensor(self, name):
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def has_tensor(self, name):
        return any(t.name == name for t in self.tensors)

    def remove_tensor(self, name):
        n = len(self.tensors)
        self.tensors = [t for t in self.tensors if t.name != name]
        if len(self.tensors) == n:
            raise KeyError(name)

    def copy(self):
        return copy.deepcopy(self)

    def effective_alignment(self):
        if self.alignment is not None:
            return self.alignment
        for kv in self.kvs:
            if kv.key == "general.alignment" and kv.vtype == U32 and \
                    kv.raw_value is None and isinstance(kv.value, int) and \
                    kv.value > 0 and kv.value & (kv.value - 1) == 0:
                return kv.value
        return DEFAULT_ALIGNMENT

    def relayout(self):
        """Rebuild the data section from each tensor's .data, packing the
        tensors in list order at aligned offsets.  Data shorter than the
        tensor's byte size is zero-padded, longer data is cut."""
        align = self.effective_alignment()
        out = bytearray()
        for t in self.tensors:
            n = t.nbytes
            d = t.data if t.data is not None else b""
            if n is not None:
                d = bytes(d[:n]) + bytes(max(0, n - len(d)))
            t.offset = len(out)
            out += d
            out += bytes((-len(out)) % align)
        self.data_section = bytes(out)
        return self

    def tensor_data_end(self):
        """Absolute file offset where the last tensor's data ends (as read)."""
        lay = self.layout
        end = lay["data_offset"]
        for t in self.tensors:
            if t.nbytes is not None:
                end = max(end, lay["data_offset"] + t.offset + t.nbytes)
        return end


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------

def encode_string(s):
    b = _to_bytes(s)
    return struct.pack("<Q", len(b)) + b


def encode_value(vtype, value, elem_type=None):
    """Encode a value of the given type (without the type id)."""
    if vtype in _SCALAR_FMT:
        if vtype == BOOL:
            value = int(value)
        return struct.pack(_SCALAR_FMT[vtype], value)
    if vtype == STRING:
        return encode_string(value)
    if vtype == ARRAY:
        if elem_type is None:
            raise ValueError("array needs an element type")
        out = [struct.pack("<IQ", elem_type, len(value))]
        if elem_type in _SCALAR_FMT:
            fmt = _SCALAR_FMT[elem_type]
            if elem_type == BOOL:
                value = [int(v) for v in value]
            out.append(struct.pack("<%d%s" % (len(value), fmt[1]), *value))
        elif elem_type == STRING:
            out.extend(encode_string(v) for v in value)
        elif elem_type == ARRAY:
            for sub_type, sub in value:
                out.append(encode_value(ARRAY, sub, sub_type))
        else:
            raise ValueError("cannot encode array elements of type %r" % elem_type)
        return b"".join(out)
    raise ValueError("cannot encode value of type %r (use raw_value)" % vtype)


def encode_kv(kv):
    key = kv.raw_key if kv.raw_key is not None else encode_string(kv.key)
    val = kv.raw_value if kv.raw_value is not None else \
        encode_value(kv.vtype, kv.value, kv.elem_type)
    return key + struct.pack("<I", kv.vtype & 0xFFFFFFFF) + val


def encode_tensor_info(t):
    if t.raw is not None:
        return bytes(t.raw)
    n_dims = len(t.dims) if t.n_dims is None else t.n_dims
    out = [encode_string(t.name), struct.pack("<I", n_dims & 0xFFFFFFFF)]
    out.extend(struct.pack("<Q", d & 0xFFFFFFFFFFFFFFFF) for d in t.dims)
    out.append(struct.pack("<IQ", t.ggml_type & 0xFFFFFFFF,
                           t.offset & 0xFFFFFFFFFFFFFFFF))
    return b"".join(out)


def serialize(g):
    """Bytes of a GGUFFile (see the class for the override fields)."""
    n_tensors = len(g.tensors) if g.n_tensors is None else g.n_tensors
    n_kv = len(g.kvs) if g.n_kv is None else g.n_kv
    out = bytearray()
    out += g.magic
    out += struct.pack("<I", g.version & 0xFFFFFFFF)
    out += struct.pack("<QQ", n_tensors & 0xFFFFFFFFFFFFFFFF,
                       n_kv & 0xFFFFFFFFFFFFFFFF)
    for kv in g.kvs:
        out += encode_kv(kv)
    for t in g.tensors:
        out += encode_tensor_info(t)
    if g.data_section is None:
        g = g.copy().relayout()
    out += bytes((-len(out)) % g.effective_alignment())
    out += g.data_section
    out += g.tail
    return bytes(out)


def write(path, g):
    data = serialize(g)
    with open(path, "wb") as fp:
        fp.write(data)
    return data


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------

class _Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0
        self.marks = []  # start offset of every field, for truncation tests

    def take(self, n):
        if n > len(self.buf) - self.pos:
            raise GGUFError("truncated at offset %d (need %d bytes)" % (self.pos, n))
        self.marks.append(self.pos)
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.unpack("<Q")
        return _from_bytes(bytes(self.take(n))) if n else ""

    def value(self, vtype, depth=0):
        if vtype in _SCALAR_FMT:
            v = self.unpack(_SCALAR_FMT[vtype])
            if vtype == BOOL:
                if v > 1:
                    raise GGUFError("bool value %d" % v)
                v = bool(v)
            return v, None
        if vtype == STRING:
            return self.string(), None
        if vtype == ARRAY:
            if depth > 8:
                raise GGUFError("arrays nested too deeply")
            et = self.unpack("<I")
            n = self.unpack("<Q")
            if et in _SCALAR_FMT:
                size = struct.calcsize(_SCALAR_FMT[et])
                if n * size > len(self.buf) - self.pos:
                    raise GGUFError("array of %d elements past the end" % n)
                raw = self.take(n * size)
                vals = list(struct.unpack("<%d%s" % (n, _SCALAR_FMT[et][1]), raw))
                if et == BOOL:
                    vals = [bool(v) for v in vals]
                return vals, et
            if et == STRING:
                if n * 8 > len(self.buf) - self.pos:
                    raise GGUFError("array of %d strings past the end" % n)
                return [self.string() for _ in range(n)], et
            if et == ARRAY:
                items = []
                for _ in range(n):
                    sub, sub_et = self.value(ARRAY, depth + 1)
                    items.append((sub_et, sub))
                return items, et
            raise GGUFError("unknown array element type %d" % et)
        raise GGUFError("unknown value type %d" % vtype)


def read(src):
    """Parse a GGUF file from a path or a bytes object.

    The result's .layout is a dict of absolute byte positions:
      header_end        end of the 24-byte header
      kv_spans          [(start, end)] of each metadata entry
      kv_end            end of the metadata
      tensor_spans      [(start, end)] of each tensor-info entry
      tensor_info_end   end of the tensor infos
      data_offset       start of the data section
      file_size
      marks             start offset of every field read (sorted)
    Each tensor's .data holds its bytes (None when they lie outside the file).
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        buf = bytes(src)
    else:
        with open(src, "rb") as fp:
            buf = fp.read()
    r = _Reader(buf)
    magic = r.take(4)
    if magic != MAGIC:
        raise GGUFError("bad magic %r" % magic)
    g = GGUFFile()
    g.version = r.unpack("<I")
    if g.version not in (2, 3):
        raise GGUFError("unsupported version %d" % g.version)
    n_tensors = r.unpack("<Q")
    n_kv = r.unpack("<Q")
    if n_kv > len(buf) or n_tensors > len(buf):
        raise GGUFError("absurd counts")
    layout = {"header_end": r.pos, "kv_spans": [], "tensor_spans": []}
    for _ in range(n_kv):
        start = r.pos
        key = r.string()
        vtype = r.unpack("<I")
        value, et = r.value(vtype)
        g.kvs.append(KV(key, vtype, value, et))
        layout["kv_spans"].append((start, r.pos))
    layout["kv_end"] = r.pos
    for _ in range(n_tensors):
        start = r.pos
        name = r.string()
        n_dims = r.unpack("<I")
        if n_dims > 16:
            raise GGUFError("tensor %r: n_dims %d" % (name, n_dims))
        dims = [r.unpack("<Q") for _ in range(n_dims)]
        ggml_type = r.unpack("<I")
        offset = r.unpack("<Q")
        g.tensors.append(TensorInfo(name, dims, ggml_type, offset))
        layout["tensor_spans"].append((start, r.pos))
    layout["tensor_info_end"] = r.pos
    align = g.effective_alignment()
    data_offset = r.pos + (-r.pos) % align
    if data_offset > len(buf):
        raise GGUFError("file ends before the data section")
    layout["data_offset"] = data_offset
    layout["file_size"] = len(buf)
    r.marks.append(r.pos)
    layout["marks"] = sorted(set(r.marks))
    g.layout = layout
    g.alignment = align
    g.data_section = buf[data_offset:]
    for t in g.tensors:
        n = t.nbytes
        if n is not None and t.offset + n <= len(g.data_section):
            t.data = g.data_section[t.offset:t.offset + n]
    return g


if __name__ == "__main__":  # quick look at a file: python3 gguf_tool.py FILE
    import sys
    g = read(sys.argv[1])
    print("version", g.version, "alignment", g.alignment,
          "data_offset", g.layout["data_offset"], "size", g.layout["file_size"])
    for kv in g.kvs:
        print(" ", kv)
    for t in g.tensors:
        print(" ", t, GGML_TYPES.get(t.ggml_type, ("?",))[0], t.nbytes)
