/* quantize.c - `smoe quantize IN.gguf OUT.gguf TYPE`: write a copy of a
 * float model with its weight matrices in a quantized type.
 *
 * Every 2-D or 3-D F32/F16/BF16 tensor whose rows are a whole number of
 * blocks is converted row by row (to float, then to TYPE); everything else
 * (norm vectors, rows of another length, other types) is copied byte for
 * byte.  All metadata is copied except general.alignment (the writer uses
 * the default) and general.file_type / general.quantization_version, which
 * are set for the new file.  One type for every matrix: mixes such as
 * Q4_K_M are not made here. */
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "../format/gguf.h"
#include "../kernels/types.h"
#include "cli.h"

static const char help[] =
    "usage: smoe quantize IN.gguf OUT.gguf TYPE\n"
    "  writes OUT.gguf: IN.gguf (F32, F16 or BF16 weights) with every weight matrix\n"
    "  (2-D and 3-D tensors whose row length is a multiple of TYPE's block) in TYPE;\n"
    "  1-D tensors (norms) are copied unchanged.  TYPE is one of\n"
    "    q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 q2_k q3_k q4_k q5_k q6_k q8_k\n"
    "  (q8_1 and q8_k are activation formats: smoe runs them as weights, llama.cpp does not)\n";

static const char valid_types[] = "q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k";

/* llama.cpp's general.file_type for a model that is all TYPE (its "_S"
 * variants for the K types, which are the closest); -1 when it has none. */
static int file_type_of(uint32_t t) {
    switch (t) {
    case SMOE_TYPE_Q4_0: return 2;
    case SMOE_TYPE_Q4_1: return 3;
    case SMOE_TYPE_Q8_0: return 7;
    case SMOE_TYPE_Q5_0: return 8;
    case SMOE_TYPE_Q5_1: return 9;
    case SMOE_TYPE_Q2_K: return 10;
    case SMOE_TYPE_Q3_K: return 11;
    case SMOE_TYPE_Q4_K: return 14;
    case SMOE_TYPE_Q5_K: return 16;
    case SMOE_TYPE_Q6_K: return 18;
    default: return -1;
    }
}

static bool is_float_type(uint32_t t) { return t == SMOE_TYPE_F32 || t == SMOE_TYPE_F16 || t == SMOE_TYPE_BF16; }

typedef struct job {
    const gguf_file *in;
    uint32_t type;
    bool *convert; /* per input tensor */
} job;

static bool converts(const gguf_tensor *t, const smoe_type_info *to) {
    return t->n_dims >= 2 && t->n_dims <= 3 && is_float_type(t->type) && t->ne[0] % to->block_size == 0;
}

/* Convert tensor idx: rows in parallel, each through a float buffer. */
static int fill(void *user, uint64_t idx, void *dst, size_t nbytes, char *err) {
    const job *j = user;
    const gguf_tensor *t = &j->in->tensors[idx];
    if (!j->convert[idx]) {
        memcpy(dst, t->data, nbytes);
        return 0;
    }
    const smoe_type_info *from = smoe_type_get(t->type), *to = smoe_type_get(j->type);
    const int64_t cols = t->ne[0], rows = t->nelem / cols;
    const size_t in_rb = smoe_type_row_bytes(t->type, cols), out_rb = smoe_type_row_bytes(j->type, cols);
    const int nthreads = omp_get_max_threads();
    float *buf = malloc((size_t)nthreads * 2 * (size_t)cols * sizeof(float));
    if (!buf) return smoe_errf(err, "out of memory converting tensor '%.*s'", (int)t->name.len, t->name.p);
    int64_t bad_row = -1;
    int bad_kind = 0; /* 1: non-finite input, 2: the quantized values are not finite */
    #pragma omp parallel for schedule(dynamic, 16)
    for (int64_t r = 0; r < rows; r++) {
        float *x = buf + (size_t)omp_get_thread_num() * 2 * (size_t)cols, *back = x + cols;
        uint8_t *q = (uint8_t *)dst + (size_t)r * out_rb;
        from->to_float((const uint8_t *)t->data + (size_t)r * in_rb, x, cols);
        int kind = 0;
        for (int64_t c = 0; c < cols && !kind; c++) kind = isfinite(x[c]) ? 0 : 1;
        if (!kind) {
            to->from_float(x, q, cols);
            to->to_float(q, back, cols);
            for (int64_t c = 0; c < cols && !kind; c++) kind = isfinite(back[c]) ? 0 : 2;
        }
        if (kind) {
            #pragma omp critical(quantize_bad_row)
            if (bad_row < 0 || r < bad_row) {
                bad_row = r;
                bad_kind = kind;
            }
        }
    }
    free(buf);
    if (bad_row >= 0)
        return smoe_errf(err, "tensor '%.*s' row %" PRId64 ": %s", (int)t->name.len, t->name.p, bad_row,
                         bad_kind == 1 ? "has a value that is not finite"
                                       : "has values too large for this type (a block scale overflows half precision)");
    return 0;
}

static bool key_is(const gguf_kv *kv, const char *name) { return gguf_str_eq(kv->key, name); }

int cmd_quantize(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { fputs(help, stdout); return 0; }
    if (argc != 4) return cli_fail("quantize needs IN.gguf OUT.gguf TYPE (see 'smoe quantize --help')");
    const char *in_path = argv[1], *out_path = argv[2], *type_name = argv[3];
    const int type = smoe_type_from_name(type_name);
    const smoe_type_info *to = type >= 0 ? smoe_type_get((uint32_t)type) : NULL;
    if (!to || to->block_size == 1 || !to->from_float)
        return cli_fail("unknown quantization type '%s' (valid: %s)", type_name, valid_types);

    char err[SMOE_ERR_SIZE];
    gguf_file *in = gguf_open(in_path, err);
    if (!in) return cli_fail("%s", err);
    int rc = 1;
    gguf_writer *w = NULL;
    job j = {in, (uint32_t)type, calloc(in->n_tensors ? in->n_tensors : 1, sizeof(bool))};
    if (!j.convert) { cli_fail("out of memory"); goto out; }

    uint64_t n_conv = 0, bytes_in = 0, bytes_out = 0;
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *t = &in->tensors[i];
        const smoe_type_info *ti = smoe_type_get(t->type);
        if (ti->block_size > 1) {
            cli_fail("%s: already quantized (tensor '%.*s' is %s); quantize from an F32, F16 or BF16 model", in_path,
                     (int)t->name.len, t->name.p, ti->name);
            goto out;
        }
        j.convert[i] = converts(t, to);
        n_conv += j.convert[i];
    }

    w = gguf_writer_new();
    if (!w) { cli_fail("out of memory"); goto out; }
    bool ok = true;
    for (uint64_t i = 0; i < in->n_kv; i++) {
        const gguf_kv *kv = &in->kv[i];
        if (key_is(kv, "general.alignment") || key_is(kv, "general.file_type") ||
            key_is(kv, "general.quantization_version"))
            continue;
        ok &= gguf_w_copy_kv(w, kv) == 0;
    }
    if (file_type_of((uint32_t)type) >= 0) ok &= gguf_w_u32(w, "general.file_type", (uint32_t)file_type_of((uint32_t)type)) == 0;
    ok &= gguf_w_u32(w, "general.quantization_version", 2) == 0;
    for (uint64_t i = 0; i < in->n_tensors && ok; i++) {
        const gguf_tensor *t = &in->tensors[i];
        char name[GGUF_MAX_NAME_LEN + 1];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.p);
        const uint32_t ty = j.convert[i] ? (uint32_t)type : t->type;
        ok &= gguf_w_tensor(w, name, ty, t->n_dims, t->ne) == 0;
        bytes_in += t->nbytes;
        bytes_out += j.convert[i] ? (uint64_t)(t->nelem / to->block_size * to->block_bytes) : t->nbytes;
    }
    if (!ok) { cli_fail("out of memory"); goto out; }
    if (gguf_w_write(w, out_path, fill, &j, err)) { cli_fail("%s", err); goto out; }
    printf("%s: %" PRIu64 " of %" PRIu64 " tensors in %s, the rest copied; tensor data %.2f MiB -> %.2f MiB\n",
           out_path, n_conv, in->n_tensors, to->name, (double)bytes_in / 1048576.0, (double)bytes_out / 1048576.0);
    rc = 0;
out:
    gguf_writer_free(w);
    free(j.convert);
    gguf_close(in);
    return rc;
}
