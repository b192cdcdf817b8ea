/* gguf.c - GGUF reader (mmap + full validation) and streaming writer.
 *
 * File layout (little-endian):
 *   "GGUF" u32 version  u64 n_tensors  u64 n_kv
 *   n_kv x   { string key, u32 type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to `general.alignment` (default 32), then the data section.
 * A string is u64 length + bytes; an array is u32 element type, u64 count,
 * elements. */
#define _GNU_SOURCE
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/buf.h"
#include "../base/common.h"
#include "../kernels/types.h"

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};
/* Size of a fixed-size value, 0 for string/array. */
static const uint8_t vtype_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_vtype_name(uint32_t t) {
    return t < GGUF_VTYPE_COUNT ? vtype_names[t] : "unknown";
}

bool gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.p, c, n) == 0;
}

/* ---------------------------------------------------------------------------
 * Cursor: bounds-checked little-endian reads.
 * ------------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *base;
    size_t pos, size;
    char *err;
} cursor;

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return smoe_errf(c->err, "file truncated: %s needs %" PRIu64 " bytes at offset %zu, but the file has %zu bytes",
                         what, n, c->pos, c->size);
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    *v = (uint32_t)le(c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    *v = le(c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(cursor *c, gguf_str *s, uint64_t max, const char *what) {
    uint64_t len;
    if (rd_u64(c, &len, what)) return -1;
    if (len > max)
        return smoe_errf(c->err, "%s: string length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes",
                         what, len, max);
    if (need(c, len, what)) return -1;
    s->p = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

/* A printable, bounded rendering of a name from the file for messages. */
static const char *show(gguf_str s, char buf[80]) {
    size_t n = 0;
    for (uint64_t i = 0; i < s.len && n < 72; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        buf[n++] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    if (s.len > 72) { buf[n++] = '.'; buf[n++] = '.'; buf[n++] = '.'; }
    buf[n] = 0;
    return buf;
}

/* ---------------------------------------------------------------------------
 * Metadata values
 * ------------------------------------------------------------------------- */

/* Validate (and skip over) one value of type t.  For arrays, fill the
 * array fields of kv when kv is not NULL (top level only). */
static int read_value(cursor *c, uint32_t t, int depth, gguf_kv *kv, const char *key) {
    if (t >= GGUF_VTYPE_COUNT)
        return smoe_errf(c->err, "key '%s': unknown value type %u", key, t);
    if (vtype_size[t]) {
        if (need(c, vtype_size[t], key)) return -1;
        if (t == GGUF_BOOL && c->base[c->pos] > 1)
            return smoe_errf(c->err, "key '%s': bool value is %u, expected 0 or 1", key, c->base[c->pos]);
        c->pos += vtype_size[t];
        return 0;
    }
    if (t == GGUF_STRING) {
        gguf_str s;
        return rd_str(c, &s, GGUF_MAX_STR_LEN, key);
    }
    /* array */
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return smoe_errf(c->err, "key '%s': arrays nested deeper than %d", key, GGUF_MAX_ARRAY_DEPTH);
    uint32_t et;
    uint64_t count;
    if (rd_u32(c, &et, key) || rd_u64(c, &count, key)) return -1;
    if (et >= GGUF_VTYPE_COUNT)
        return smoe_errf(c->err, "key '%s': unknown array element type %u", key, et);
    if (count > GGUF_MAX_ARRAY_LEN)
        return smoe_errf(c->err, "key '%s': array length %" PRIu64 " exceeds the limit of %u", key, count,
                         GGUF_MAX_ARRAY_LEN);
    /* Every element takes at least this many bytes: reject absurd counts
     * before walking them. */
    uint64_t min_elem = vtype_size[et] ? vtype_size[et] : (et == GGUF_STRING ? 8 : 12);
    if (count > (c->size - c->pos) / min_elem)
        return smoe_errf(c->err, "file truncated: key '%s' declares %" PRIu64 " array elements of type %s, more than the %zu bytes left can hold",
                         key, count, gguf_vtype_name(et), c->size - c->pos);
    if (kv) {
        kv->arr_type = et;
        kv->arr_count = count;
        kv->arr_data = c->base + c->pos;
    }
    if (vtype_size[et]) {
        if (et == GGUF_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (c->base[c->pos + i] > 1)
                    return smoe_errf(c->err, "key '%s': bool element %" PRIu64 " is %u, expected 0 or 1", key, i,
                                     c->base[c->pos + i]);
        }
        c->pos += count * vtype_size[et];
        return 0;
    }
    for (uint64_t i = 0; i < count; i++)
        if (read_value(c, et, depth + 1, NULL, key)) return -1;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Sorted indices: lookup and duplicate detection.
 * ------------------------------------------------------------------------- */

static int cmp_str(gguf_str a, gguf_str b) {
    size_t n = a.len < b.len ? a.len : b.len;
    int r = memcmp(a.p, b.p, n);
    if (r) return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* qsort has no context argument in C11; sort with a small merge sort. */
typedef gguf_str (*key_of_fn)(const void *items, uint32_t i);

static gguf_str kv_key(const void *items, uint32_t i) { return ((const gguf_kv *)items)[i].key; }
static gguf_str tensor_key(const void *items, uint32_t i) { return ((const gguf_tensor *)items)[i].name; }

static void merge_sort(uint32_t *idx, uint32_t *tmp, uint64_t n, const void *items, key_of_fn key) {
    if (n < 2) return;
    uint64_t h = n / 2;
    merge_sort(idx, tmp, h, items, key);
    merge_sort(idx + h, tmp, n - h, items, key);
    uint64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp_str(key(items, idx[i]), key(items, idx[j])) <= 0 ? idx[i++] : idx[j++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static uint32_t *sorted_index(uint64_t n, const void *items, key_of_fn key) {
    uint32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    uint32_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!idx || !tmp) { free(idx); free(tmp); return NULL; }
    for (uint64_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
    merge_sort(idx, tmp, n, items, key);
    free(tmp);
    return idx;
}

static int64_t find_sorted(const uint32_t *idx, uint64_t n, const void *items, key_of_fn key, const char *name) {
    gguf_str want = {name, strlen(name)};
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int r = cmp_str(key(items, idx[mid]), want);
        if (r == 0) return idx[mid];
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

/* ---------------------------------------------------------------------------
 * Header, metadata and tensor infos
 * ------------------------------------------------------------------------- */

static int parse_header(gguf_file *f, cursor *c) {
    if (c->size < 4 || memcmp(c->base, "GGUF", 4) != 0)
        return smoe_errf(c->err, "not a GGUF file: bad magic (expected 'GGUF' at offset 0)");
    c->pos = 4;
    if (rd_u32(c, &f->version, "header version")) return -1;
    if (f->version == 1)
        return smoe_errf(c->err, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (f->version != 2 && f->version != 3)
        return smoe_errf(c->err, "unsupported GGUF version %u (only versions 2 and 3%s)", f->version,
                         f->version > 0xffff ? "; a big-endian file?" : "");
    if (rd_u64(c, &f->n_tensors, "header tensor count") || rd_u64(c, &f->n_kv, "header metadata count"))
        return -1;
    if (f->n_tensors > GGUF_MAX_TENSORS)
        return smoe_errf(c->err, "tensor count %" PRIu64 " exceeds the limit of %d", f->n_tensors, GGUF_MAX_TENSORS);
    if (f->n_kv > GGUF_MAX_KV)
        return smoe_errf(c->err, "metadata count %" PRIu64 " exceeds the limit of %d", f->n_kv, GGUF_MAX_KV);
    return 0;
}

static int parse_kvs(gguf_file *f, cursor *c) {
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    if (!f->kv) return smoe_errf(c->err, "out of memory for %" PRIu64 " metadata entries", f->n_kv);
    char what[48], namebuf[80];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        snprintf(what, sizeof what, "metadata key %" PRIu64, i);
        if (rd_str(c, &kv->key, GGUF_MAX_KEY_LEN, what)) return -1;
        if (kv->key.len == 0) return smoe_errf(c->err, "metadata key %" PRIu64 " is empty", i);
        if (memchr(kv->key.p, 0, kv->key.len))
            return smoe_errf(c->err, "metadata key %" PRIu64 " ('%s') contains a NUL byte", i, show(kv->key, namebuf));
        show(kv->key, namebuf);
        if (rd_u32(c, &kv->type, namebuf)) return -1;
        kv->val = c->base + c->pos;
        if (read_value(c, kv->type, 0, kv, namebuf)) return -1;
        kv->val_len = (uint64_t)(c->base + c->pos - kv->val);
    }
    f->kv_sorted = sorted_index(f->n_kv, f->kv, kv_key);
    if (!f->kv_sorted) return smoe_errf(c->err, "out of memory");
    for (uint64_t i = 1; i < f->n_kv; i++)
        if (cmp_str(f->kv[f->kv_sorted[i - 1]].key, f->kv[f->kv_sorted[i]].key) == 0)
            return smoe_errf(c->err, "duplicate metadata key '%s'", show(f->kv[f->kv_sorted[i]].key, namebuf));
    return 0;
}

static int read_alignment(gguf_file *f, char *err) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv) return 0;
    if (kv->type != GGUF_U32)
        return smoe_errf(err, "key 'general.alignment' has type %s, expected uint32", gguf_vtype_name(kv->type));
    uint64_t a = le(kv->val, 4);
    if (a == 0 || (a & (a - 1)) || a > (1u << 20))
        return smoe_errf(err, "key 'general.alignment' is %" PRIu64 ", expected a power of two up to 1048576", a);
    f->alignment = a;
    return 0;
}

static int parse_tensor_info(gguf_file *f, cursor *c, uint64_t i) {
    gguf_tensor *t = &f->tensors[i];
    char what[48], nb[80];
    snprintf(what, sizeof what, "tensor info %" PRIu64, i);
    if (rd_str(c, &t->name, UINT64_MAX, what)) return -1;
    if (t->name.len == 0) return smoe_errf(c->err, "tensor %" PRIu64 " has an empty name", i);
    if (t->name.len > GGUF_MAX_NAME_LEN)
        return smoe_errf(c->err, "tensor %" PRIu64 " name is %" PRIu64 " bytes long, the limit is %d", i,
                         t->name.len, GGUF_MAX_NAME_LEN);
    if (memchr(t->name.p, 0, t->name.len))
        return smoe_errf(c->err, "tensor %" PRIu64 " ('%s') name contains a NUL byte", i, show(t->name, nb));
    show(t->name, nb);
    if (rd_u32(c, &t->n_dims, nb)) return -1;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return smoe_errf(c->err, "tensor '%s': n_dims is %u, expected 1 to %d", nb, t->n_dims, GGUF_MAX_DIMS);
    uint64_t nelem = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if (rd_u64(c, &ne, nb)) return -1;
        if (ne == 0 || ne > INT64_MAX)
            return smoe_errf(c->err, "tensor '%s': dimension %u is %" PRId64 ", expected at least 1", nb, d,
                             (int64_t)ne);
        if (!smoe_mul_u64(nelem, ne, &nelem) || nelem > INT64_MAX / 2)
            return smoe_errf(c->err, "tensor '%s': element count overflows", nb);
        t->ne[d] = (int64_t)ne;
    }
    t->nelem = (int64_t)nelem;
    if (rd_u32(c, &t->type, nb) || rd_u64(c, &t->offset, nb)) return -1;
    char tb[32];
    const smoe_type_info *ti = smoe_type_get(t->type);
    if (!ti) return smoe_errf(c->err, "tensor '%s': unknown type %s", nb, smoe_type_name(t->type, tb));
    if (t->ne[0] % ti->block_size)
        return smoe_errf(c->err, "tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %" PRId64,
                         nb, t->ne[0], ti->name, ti->block_size);
    uint64_t bytes = (uint64_t)(nelem / (uint64_t)ti->block_size);
    if (!smoe_mul_u64(bytes, (uint64_t)ti->block_bytes, &bytes))
        return smoe_errf(c->err, "tensor '%s': byte size overflows", nb);
    t->nbytes = bytes;
    return 0;
}

static int cmp_offset_pairs(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static int place_tensors(gguf_file *f, cursor *c) {
    char nb[80];
    uint64_t data_off = c->pos;
    uint64_t rem = data_off % f->alignment;
    if (rem) data_off += f->alignment - rem;
    f->data_offset = data_off;
    if (f->n_tensors == 0) return 0;
    uint64_t (*span)[2] = malloc(f->n_tensors * sizeof *span);
    if (!span) return smoe_errf(c->err, "out of memory");
    int rc = 0;
    for (uint64_t i = 0; i < f->n_tensors && rc == 0; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t start, end;
        show(t->name, nb);
        if (t->offset % f->alignment)
            rc = smoe_errf(c->err, "tensor '%s': data offset %" PRIu64 " is not aligned to %" PRIu64, nb, t->offset,
                           f->alignment);
        else if (!smoe_add_u64(data_off, t->offset, &start) || !smoe_add_u64(start, t->nbytes, &end) ||
                 end > c->size)
            rc = smoe_errf(c->err, "tensor '%s': data (offset %" PRIu64 ", %" PRIu64 " bytes) lies past the end of the file (%zu bytes)",
                           nb, t->offset, t->nbytes, c->size);
        else {
            t->data = c->base + start;
            span[i][0] = t->offset;
            span[i][1] = i;
        }
    }
    if (rc == 0) {
        qsort(span, f->n_tensors, sizeof *span, cmp_offset_pairs);
        for (uint64_t i = 1; i < f->n_tensors && rc == 0; i++) {
            const gguf_tensor *a = &f->tensors[span[i - 1][1]], *b = &f->tensors[span[i][1]];
            if (a->offset + a->nbytes > b->offset) {
                char nb2[80];
                rc = smoe_errf(c->err, "tensors '%s' and '%s' overlap in the data section", show(a->name, nb),
                               show(b->name, nb2));
            }
        }
    }
    free(span);
    return rc;
}

static int parse_tensors(gguf_file *f, cursor *c) {
    /* a tensor info takes at least 8+1+4+8+4+8 bytes */
    if (f->n_tensors > (c->size - c->pos) / 33)
        return smoe_errf(c->err, "file truncated: %" PRIu64 " tensors declared but only %zu bytes left for their descriptions",
                         f->n_tensors, c->size - c->pos);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    if (!f->tensors) return smoe_errf(c->err, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (parse_tensor_info(f, c, i)) return -1;
    f->tensor_sorted = sorted_index(f->n_tensors, f->tensors, tensor_key);
    if (!f->tensor_sorted) return smoe_errf(c->err, "out of memory");
    char nb[80];
    for (uint64_t i = 1; i < f->n_tensors; i++)
        if (cmp_str(f->tensors[f->tensor_sorted[i - 1]].name, f->tensors[f->tensor_sorted[i]].name) == 0)
            return smoe_errf(c->err, "duplicate tensor name '%s'", show(f->tensors[f->tensor_sorted[i]].name, nb));
    return place_tensors(f, c);
}

gguf_file *gguf_parse(const uint8_t *data, size_t size, char *err) {
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) { smoe_errf(err, "out of memory"); return NULL; }
    f->data = data;
    f->size = size;
    cursor c = {data, 0, size, err};
    if (parse_header(f, &c) || parse_kvs(f, &c) || read_alignment(f, err) || parse_tensors(f, &c)) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open(const char *path, char *err) {
    char inner[SMOE_ERR_SIZE];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { smoe_errf(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        smoe_errf(err, "%s: not a regular file", path);
        return NULL;
    }
    if (st.st_size < 8) {
        close(fd);
        smoe_errf(err, "%s: file truncated: %lld bytes is too small for a GGUF header", path, (long long)st.st_size);
        return NULL;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) { smoe_errf(err, "%s: mmap failed: %s", path, strerror(errno)); return NULL; }
    gguf_file *f = gguf_parse(map, (size_t)st.st_size, inner);
    if (!f) {
        munmap(map, (size_t)st.st_size);
        smoe_errf(err, "%s: %s", path, inner);
        return NULL;
    }
    f->mapped = true;
    return f;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->data, f->size);
    free(f->kv);
    free(f->tensors);
    free(f->kv_sorted);
    free(f->tensor_sorted);
    free(f);
}

/* ---------------------------------------------------------------------------
 * Lookup and typed reads
 * ------------------------------------------------------------------------- */

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    if (!f->kv_sorted) { /* during parsing: linear scan */
        for (uint64_t i = 0; i < f->n_kv; i++)
            if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
        return NULL;
    }
    int64_t i = find_sorted(f->kv_sorted, f->n_kv, f->kv, kv_key, key);
    return i < 0 ? NULL : &f->kv[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t i = find_sorted(f->tensor_sorted, f->n_tensors, f->tensors, tensor_key, name);
    return i < 0 ? NULL : &f->tensors[i];
}

static bool scalar_int(uint32_t type, const uint8_t *p, int64_t *v, bool *too_big) {
    *too_big = false;
    switch (type) {
    case GGUF_U8: *v = p[0]; return true;
    case GGUF_I8: *v = (int8_t)p[0]; return true;
    case GGUF_U16: *v = (int64_t)le(p, 2); return true;
    case GGUF_I16: *v = (int16_t)le(p, 2); return true;
    case GGUF_U32: *v = (int64_t)le(p, 4); return true;
    case GGUF_I32: *v = (int32_t)le(p, 4); return true;
    case GGUF_I64: *v = (int64_t)le(p, 8); return true;
    case GGUF_U64: {
        uint64_t u = le(p, 8);
        *too_big = u > INT64_MAX;
        *v = (int64_t)(u & INT64_MAX);
        return true;
    }
    default: return false;
    }
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t min, int64_t max, int64_t *out, char *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 0;
    bool too_big;
    int64_t v;
    if (!scalar_int(kv->type, kv->val, &v, &too_big))
        return smoe_errf(err, "key '%s' has type %s, expected an integer", key, gguf_vtype_name(kv->type));
    if (too_big || v < min || v > max)
        return smoe_errf(err, "key '%s' is %s%" PRId64 ", expected %" PRId64 " to %" PRId64, key,
                         too_big ? "above " : "", v, min, max);
    *out = v;
    return 1;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, char *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 0;
    if (kv->type == GGUF_F32) {
        uint32_t u = (uint32_t)le(kv->val, 4);
        float x;
        memcpy(&x, &u, 4);
        *out = x;
    } else if (kv->type == GGUF_F64) {
        uint64_t u = le(kv->val, 8);
        memcpy(out, &u, 8);
    } else {
        return smoe_errf(err, "key '%s' has type %s, expected float32", key, gguf_vtype_name(kv->type));
    }
    return 1;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, char *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL)
        return smoe_errf(err, "key '%s' has type %s, expected bool", key, gguf_vtype_name(kv->type));
    *out = kv->val[0] != 0;
    return 1;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, char *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_STRING)
        return smoe_errf(err, "key '%s' has type %s, expected string", key, gguf_vtype_name(kv->type));
    out->len = le(kv->val, 8);
    out->p = (const char *)kv->val + 8;
    return 1;
}

int gguf_get_array(const gguf_file *f, const char *key, uint32_t elem_type, const gguf_kv **out, char *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_ARRAY)
        return smoe_errf(err, "key '%s' has type %s, expected an array of %s", key, gguf_vtype_name(kv->type),
                         gguf_vtype_name(elem_type));
    if (kv->arr_type != elem_type)
        return smoe_errf(err, "key '%s' is an array of %s, expected an array of %s", key,
                         gguf_vtype_name(kv->arr_type), gguf_vtype_name(elem_type));
    *out = kv;
    return 1;
}

gguf_str gguf_next_str(const uint8_t **cur) {
    gguf_str s;
    s.len = le(*cur, 8);
    s.p = (const char *)*cur + 8;
    *cur += 8 + s.len;
    return s;
}

double gguf_arr_f64(const gguf_kv *kv, uint64_t i) {
    const uint8_t *p = kv->arr_data + i * vtype_size[kv->arr_type];
    if (kv->arr_type == GGUF_F32) {
        uint32_t u = (uint32_t)le(p, 4);
        float x;
        memcpy(&x, &u, 4);
        return x;
    }
    if (kv->arr_type == GGUF_F64) {
        uint64_t u = le(p, 8);
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    int64_t v;
    bool big;
    return scalar_int(kv->arr_type, p, &v, &big) ? (double)v : 0.0;
}

int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i) {
    int64_t v = 0;
    bool big;
    scalar_int(kv->arr_type, kv->arr_data + i * vtype_size[kv->arr_type], &v, &big);
    return v;
}

/* ---------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------- */

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} wtensor;

struct gguf_writer {
    smoe_buf kv;          /* serialised key/value pairs; kv.oom: out of memory */
    uint64_t n_kv;
    wtensor *t;
    uint64_t n_t, cap_t;
};

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    smoe_buf_free(&w->kv);
    free(w);
}

static void put(gguf_writer *w, const void *p, size_t n) { smoe_buf_add(&w->kv, p, n); }

static void put_le(gguf_writer *w, uint64_t v, int n) {
    uint8_t b[8];
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, (size_t)n);
}

static void put_str(gguf_writer *w, const char *s, uint64_t n) {
    put_le(w, n, 8);
    put(w, s, n);
}

static int begin_kv(gguf_writer *w, const char *key, uint32_t type) {
    put_str(w, key, strlen(key));
    put_le(w, type, 4);
    w->n_kv++;
    return 0;
}

static int done(gguf_writer *w) { return w->kv.oom ? -1 : 0; }

int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v) {
    begin_kv(w, key, GGUF_U32);
    put_le(w, v, 4);
    return done(w);
}

int gguf_w_i32(gguf_writer *w, const char *key, int32_t v) {
    begin_kv(w, key, GGUF_I32);
    put_le(w, (uint32_t)v, 4);
    return done(w);
}

int gguf_w_f32(gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    begin_kv(w, key, GGUF_F32);
    put_le(w, u, 4);
    return done(w);
}

int gguf_w_bool(gguf_writer *w, const char *key, bool v) {
    begin_kv(w, key, GGUF_BOOL);
    put_le(w, v ? 1 : 0, 1);
    return done(w);
}

int gguf_w_str(gguf_writer *w, const char *key, const char *v) {
    begin_kv(w, key, GGUF_STRING);
    put_str(w, v, strlen(v));
    return done(w);
}

int gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, const uint32_t *lens, uint64_t n) {
    begin_kv(w, key, GGUF_ARRAY);
    put_le(w, GGUF_STRING, 4);
    put_le(w, n, 8);
    for (uint64_t i = 0; i < n; i++) put_str(w, v[i], lens ? lens[i] : strlen(v[i]));
    return done(w);
}

int gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) {
    begin_kv(w, key, GGUF_ARRAY);
    put_le(w, GGUF_F32, 4);
    put_le(w, n, 8);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put_le(w, u, 4);
    }
    return done(w);
}

int gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    begin_kv(w, key, GGUF_ARRAY);
    put_le(w, GGUF_I32, 4);
    put_le(w, n, 8);
    for (uint64_t i = 0; i < n; i++) put_le(w, (uint32_t)v[i], 4);
    return done(w);
}

int gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    put_str(w, kv->key.p, kv->key.len);
    put_le(w, kv->type, 4);
    put(w, kv->val, kv->val_len);
    w->n_kv++;
    return done(w);
}

int gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne) {
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) return -1;
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t) return -1;
        w->t = t;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return -1;
    t->type = type;
    t->n_dims = n_dims;
    uint64_t nelem = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    for (uint32_t d = 0; d < n_dims; d++) nelem *= (uint64_t)ne[d];
    const smoe_type_info *ti = smoe_type_get(type);
    if (!ti || ne[0] % ti->block_size) { free(t->name); return -1; }
    t->nbytes = nelem / (uint64_t)ti->block_size * (uint64_t)ti->block_bytes;
    w->n_t++;
    return 0;
}

/* n == 0 writes nothing: an empty string or array may come with p NULL,
 * which fwrite must not be given */
static int write_all(FILE *fp, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, fp) == n ? 0 : -1; }

static int write_padding(FILE *fp, uint64_t pos, uint64_t align) {
    static const uint8_t zeros[64];
    uint64_t pad = (align - pos % align) % align;
    while (pad) {
        size_t n = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        if (write_all(fp, zeros, n)) return -1;
        pad -= n;
    }
    return 0;
}

static int write_body(gguf_writer *w, FILE *fp, gguf_fill_fn fill, void *user, char *err) {
    const uint64_t align = GGUF_DEFAULT_ALIGNMENT;
    uint8_t hdr[24];
    memcpy(hdr, "GGUF", 4);
    for (int i = 0; i < 4; i++) hdr[4 + i] = (uint8_t)(3u >> (8 * i));
    for (int i = 0; i < 8; i++) hdr[8 + i] = (uint8_t)(w->n_t >> (8 * i));
    for (int i = 0; i < 8; i++) hdr[16 + i] = (uint8_t)(w->n_kv >> (8 * i));
    if (write_all(fp, hdr, 24) || write_all(fp, w->kv.p, w->kv.n)) goto io;
    uint64_t pos = 24 + w->kv.n, off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        t->offset = off;
        off += t->nbytes;
        off += (align - off % align) % align;
        uint8_t b[8 + 4 + 8 * GGUF_MAX_DIMS + 4 + 8];
        size_t n = 0, nl = strlen(t->name);
        for (int k = 0; k < 8; k++) b[n++] = (uint8_t)((uint64_t)nl >> (8 * k));
        if (write_all(fp, b, n) || write_all(fp, t->name, nl)) goto io;
        n = 0;
        for (int k = 0; k < 4; k++) b[n++] = (uint8_t)(t->n_dims >> (8 * k));
        for (uint32_t d = 0; d < t->n_dims; d++)
            for (int k = 0; k < 8; k++) b[n++] = (uint8_t)((uint64_t)t->ne[d] >> (8 * k));
        for (int k = 0; k < 4; k++) b[n++] = (uint8_t)(t->type >> (8 * k));
        for (int k = 0; k < 8; k++) b[n++] = (uint8_t)(t->offset >> (8 * k));
        if (write_all(fp, b, n)) goto io;
        pos += 8 + nl + n;
    }
    if (write_padding(fp, pos, align)) goto io;
    for (uint64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        void *buf = malloc(t->nbytes ? t->nbytes : 1);
        if (!buf) return smoe_errf(err, "out of memory for tensor '%s' (%" PRIu64 " bytes)", t->name, t->nbytes);
        int rc = fill(user, i, buf, t->nbytes, err);
        if (rc == 0 && write_all(fp, buf, t->nbytes)) rc = -2;
        free(buf);
        if (rc == -1) return -1;
        if (rc == -2 || write_padding(fp, t->nbytes, align)) goto io;
    }
    return 0;
io:
    return smoe_errf(err, "write failed: %s", strerror(errno ? errno : EIO));
}

/* A destination that is not a regular file (a device, a FIFO): written in
 * place; renaming over it would replace the device node itself. */
static int write_special(gguf_writer *w, const char *path, gguf_fill_fn fill, void *user, char *err) {
    char inner[SMOE_ERR_SIZE];
    FILE *fp = fopen(path, "wb");
    if (!fp) return smoe_errf(err, "%s: %s", path, strerror(errno));
    errno = 0;
    int rc = write_body(w, fp, fill, user, inner);
    if (rc == 0 && fflush(fp) != 0) rc = smoe_errf(inner, "write failed: %s", strerror(errno));
    if (fclose(fp) != 0 && rc == 0) rc = smoe_errf(inner, "write failed: %s", strerror(errno));
    if (rc != 0) smoe_errf(err, "%s: %s", path, inner);
    return rc;
}

/* fsync the directory holding path, so that the rename is durable. */
static void sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: the file itself is already on disk */
        close(fd);
    }
}

int gguf_w_write(gguf_writer *w, const char *path, gguf_fill_fn fill, void *user, char *err) {
    char inner[SMOE_ERR_SIZE];
    if (w->kv.oom) return smoe_errf(err, "%s: out of memory while building metadata", path);
    struct stat dst;
    if (stat(path, &dst) == 0 && !S_ISREG(dst.st_mode) && !S_ISDIR(dst.st_mode))
        return write_special(w, path, fill, user, err);
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return smoe_errf(err, "out of memory");
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        smoe_errf(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; a model file is for reading */
    FILE *fp = fdopen(fd, "wb");
    if (!fp) { close(fd); unlink(tmp); free(tmp); return smoe_errf(err, "%s: %s", path, strerror(errno)); }
    errno = 0;
    int rc = write_body(w, fp, fill, user, inner);
    if (rc == 0 && fflush(fp) != 0) rc = smoe_errf(inner, "write failed: %s", strerror(errno));
    if (rc == 0 && fsync(fileno(fp)) != 0) rc = smoe_errf(inner, "fsync failed: %s", strerror(errno));
    if (fclose(fp) != 0 && rc == 0) rc = smoe_errf(inner, "close failed: %s", strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = smoe_errf(inner, "rename into place failed: %s", strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        smoe_errf(err, "%s: %s", path, inner);
    } else sync_dir(path);
    free(tmp);
    return rc;
}
