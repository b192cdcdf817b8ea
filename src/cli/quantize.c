/* quantize.c - `smoe quantize [--pure] IN.gguf OUT.gguf TYPE`: write a copy
 * of a model with its weight matrices quantized.
 *
 * TYPE is either one of the named mixes below, which choose a type per
 * tensor the way llama.cpp's mixes of the same names do, or a single type
 * for every matrix (--pure forces that for the mix names Q2_K, Q6_K and
 * Q8_0, which are also type names).
 *
 * The mixes.  n = layer count, L = a tensor's layer, more(L) = L < n/8 or
 * L >= 7n/8 or (L - n/8) % 3 == 2 (the first and last eighth and every
 * third layer between: llama.cpp's use_more_bits).  "MoE" is a model with
 * experts (llama.cpp applies its 8-expert rules when expert_count is 8;
 * smoe applies them to any expert count, for the same reason: attention is
 * a few percent of a mixture's bytes, so more bits there cost little).
 *
 *   tensor               Q2_K  Q3_K_S Q3_K_M Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K  Q8_0
 *   base: attn_q,        Q2_K  Q3_K   Q3_K   Q4_K   Q4_K   Q5_K   Q5_K   Q6_K  Q8_0
 *     ffn_gate, ffn_up,
 *     token_embd
 *   attn_k      MoE      Q8_0  Q8_0   Q8_0   Q8_0   Q8_0   Q8_0   Q8_0   Q8_0  Q8_0
 *               dense    base in every mix
 *   attn_v      MoE      Q8_0 in every mix
 *               dense    Q3_K  base   Q5_K   Q5_K   Q6_K   base   Q6_K   base  base
 *                        [1]          (L<2,  (L<4,  (more(L),      (more(L),
 *                                     else   else   else base)     else base)
 *                                     Q4_K)  base)
 *   attn_output MoE      Q5_K  Q5_K   Q5_K   Q5_K   Q5_K   base   base   base  base
 *               dense    Q3_K  base   Q4_K   base   base   base   base   base  base
 *   ffn_down             Q3_K  base   Q5_K   Q5_K   Q6_K   base   Q6_K   base  base
 *     (a layer's experts               (L<n/16, (L<n/8, (more(L),    (more(L),
 *      all alike)                      else    else   else base)     else base)
 *                                      Q4_K)   base)
 *   output (token_embd   Q6_K  Q6_K   Q6_K   Q6_K   Q6_K   Q6_K   Q6_K   Q6_K  Q8_0
 *     when tied)         (Q8_0 when its rows are not a whole number of 256-blocks)
 *   ffn_gate_inp         F32 (the router: tiny, and routing is sensitive)
 *   1-D (norms)          copied unchanged
 *
 *   [1] Q4_K when there are 4 or more query heads per KV head.
 *
 * A merged 3-D expert tensor gets one type for all its experts; per-expert
 * tensors of one layer get the same type as each other.  A matrix whose
 * rows are not a whole number of its type's blocks falls back as llama.cpp
 * does: Q2_K, Q3_K -> Q4_0 (llama.cpp now uses IQ4_NL, which smoe lacks),
 * Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; rows not a whole number of 32
 * either keep the input's type.
 *
 * Input already quantized is dequantized and quantized again (with a
 * warning: the two rounding errors compound); a tensor already in its
 * target type is copied byte for byte.  All metadata is copied except
 * general.alignment (the writer uses the default) and general.file_type /
 * general.quantization_version, which are set for the new file.  On a
 * terminal, a progress bar goes to stderr. */
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/common.h"
#include "../format/gguf.h"
#include "../kernels/types.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe quantize [--pure] IN.gguf OUT.gguf TYPE\n"
    "       smoe quantize --dry-run [--pure] IN.gguf TYPE\n"
    "  writes OUT.gguf: IN.gguf with its weight matrices (2-D and 3-D tensors) quantized.\n"
    "  --dry-run writes nothing: it prints each tensor's type before and after, and the size.\n"
    "  TYPE is a mix, choosing a type per tensor as llama.cpp's mixes of the same name do:\n"
    "    q2_k q3_k_s q3_k_m q4_k_s q4_k_m q5_k_s q5_k_m q6_k q8_0\n"
    "  or one type for every matrix whose rows are whole blocks of it (the others are copied):\n"
    "    q4_0 q4_1 q5_0 q5_1 q8_1 q3_k q4_k q5_k q8_k, and with --pure also q2_k q6_k q8_0\n"
    "  (q8_1 and q8_k are activation formats: smoe runs them as weights, llama.cpp does not).\n"
    "  1-D tensors (norms) are always copied.  IN may be F32, F16 or BF16; a model that is\n"
    "  already quantized is dequantized and quantized again, with a warning.\n"
    "\n"
    "  the mixes (n layers, L a tensor's layer, more(L) = L < n/8, L >= 7n/8 or\n"
    "  (L - n/8) % 3 == 2; MoE = a model with experts):\n"
    "    tensor             Q2_K  Q3_K_S Q3_K_M  Q4_K_S  Q4_K_M  Q5_K_S Q5_K_M  Q6_K  Q8_0\n"
    "    attn_q, ffn_gate,  Q2_K  Q3_K   Q3_K    Q4_K    Q4_K    Q5_K   Q5_K    Q6_K  Q8_0\n"
    "      ffn_up, token_embd (the base type)\n"
    "    attn_k   MoE       Q8_0 in every mix;  dense: base\n"
    "    attn_v   MoE       Q8_0 in every mix\n"
    "             dense     Q3_K* base   Q5_K    Q5_K    Q6_K    base   Q6_K    base  base\n"
    "                                    L<2,    L<4,    more(L)        more(L)\n"
    "                                    else    else    else           else\n"
    "                                    Q4_K    base    base           base\n"
    "    attn_output MoE    Q5_K  Q5_K   Q5_K    Q5_K    Q5_K    base   base    base  base\n"
    "             dense     Q3_K  base   Q4_K    base    base    base   base    base  base\n"
    "    ffn_down           Q3_K  base   Q5_K    Q5_K    Q6_K    base   Q6_K    base  base\n"
    "                                    L<n/16, L<n/8,  more(L)        more(L)\n"
    "                                    else    else    else           else\n"
    "                                    Q4_K    base    base           base\n"
    "    output             Q6_K in every mix but Q8_0 (Q8_0); the tied token_embd likewise\n"
    "    ffn_gate_inp       F32 (the router)\n"
    "    * Q4_K with 4 or more query heads per KV head\n"
    "  A layer's experts all get one type.  Rows that are not whole blocks fall back:\n"
    "  Q2_K, Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (else the input type).\n";

static const char valid_types[] = "mixes q2_k, q3_k_s, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, q8_0; "
                                  "types q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k";

/* ---------------------------------------------------------------------------
 * Mixes
 * ------------------------------------------------------------------------- */

enum mix_id { Q2_K_MIX, Q3_K_S_MIX, Q3_K_M_MIX, Q4_K_S_MIX, Q4_K_M_MIX, Q5_K_S_MIX, Q5_K_M_MIX, Q6_K_MIX, Q8_0_MIX };

typedef struct mix_def {
    const char *name;
    enum mix_id id;
    uint32_t base;
    int file_type; /* llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*) */
} mix_def;

static const mix_def mixes[] = {
    {"Q2_K", Q2_K_MIX, SMOE_TYPE_Q2_K, 10},     {"Q3_K_S", Q3_K_S_MIX, SMOE_TYPE_Q3_K, 11},
    {"Q3_K_M", Q3_K_M_MIX, SMOE_TYPE_Q3_K, 12}, {"Q4_K_S", Q4_K_S_MIX, SMOE_TYPE_Q4_K, 14},
    {"Q4_K_M", Q4_K_M_MIX, SMOE_TYPE_Q4_K, 15}, {"Q5_K_S", Q5_K_S_MIX, SMOE_TYPE_Q5_K, 16},
    {"Q5_K_M", Q5_K_M_MIX, SMOE_TYPE_Q5_K, 17}, {"Q6_K", Q6_K_MIX, SMOE_TYPE_Q6_K, 18},
    {"Q8_0", Q8_0_MIX, SMOE_TYPE_Q8_0, 7},
};

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

enum kind { K_OTHER, K_TOKEN_EMBD, K_OUTPUT, K_ROUTER, K_ATTN_Q, K_ATTN_K, K_ATTN_V, K_ATTN_OUT, K_FFN_DOWN };

/* What a tensor is, from its name; *layer is set for blk.N.* tensors. */
static enum kind classify(gguf_str name, int *layer) {
    char n[GGUF_MAX_NAME_LEN + 1];
    snprintf(n, sizeof n, "%.*s", (int)name.len, name.p);
    *layer = -1;
    if (strcmp(n, "token_embd.weight") == 0) return K_TOKEN_EMBD;
    if (strcmp(n, "output.weight") == 0) return K_OUTPUT;
    int L, used = 0;
    if (sscanf(n, "blk.%d.%n", &L, &used) != 1 || used == 0 || L < 0) return K_OTHER;
    *layer = L;
    const char *rest = n + used;
    if (strcmp(rest, "ffn_gate_inp.weight") == 0) return K_ROUTER;
    if (strcmp(rest, "attn_q.weight") == 0) return K_ATTN_Q;
    if (strcmp(rest, "attn_k.weight") == 0) return K_ATTN_K;
    if (strcmp(rest, "attn_v.weight") == 0) return K_ATTN_V;
    if (strcmp(rest, "attn_output.weight") == 0) return K_ATTN_OUT;
    if (strncmp(rest, "ffn_down", 8) == 0) return K_FFN_DOWN; /* .weight, _exps.weight, .E.weight */
    return K_OTHER;
}

typedef struct model_facts {
    int n_layers;
    bool moe;
    int gqa; /* query heads per KV head */
} model_facts;

static bool more_bits(int L, int n) { return L < n / 8 || L >= 7 * n / 8 || (L - n / 8) % 3 == 2; }

/* The mix's type for a tensor, before the block-size fallback. */
static uint32_t mix_type(const mix_def *mx, const model_facts *mf, enum kind k, int L, bool tied) {
    const uint32_t base = mx->base;
    const int n = mf->n_layers;
    const enum mix_id id = mx->id;
    switch (k) {
    case K_ROUTER: return SMOE_TYPE_F32;
    case K_OUTPUT: return id == Q8_0_MIX ? SMOE_TYPE_Q8_0 : SMOE_TYPE_Q6_K;
    case K_TOKEN_EMBD:
        if (tied) return id == Q8_0_MIX ? SMOE_TYPE_Q8_0 : SMOE_TYPE_Q6_K;
        return base;
    case K_ATTN_K: return mf->moe ? SMOE_TYPE_Q8_0 : base;
    case K_ATTN_V:
        if (mf->moe) return SMOE_TYPE_Q8_0;
        switch (id) {
        case Q2_K_MIX: return mf->gqa >= 4 ? SMOE_TYPE_Q4_K : SMOE_TYPE_Q3_K;
        case Q3_K_M_MIX: return L < 2 ? SMOE_TYPE_Q5_K : SMOE_TYPE_Q4_K;
        case Q4_K_S_MIX: return L < 4 ? SMOE_TYPE_Q5_K : base;
        case Q4_K_M_MIX:
        case Q5_K_M_MIX: return more_bits(L, n) ? SMOE_TYPE_Q6_K : base;
        default: return base;
        }
    case K_ATTN_OUT:
        if (mf->moe)
            return id == Q2_K_MIX || id == Q3_K_S_MIX || id == Q3_K_M_MIX || id == Q4_K_S_MIX || id == Q4_K_M_MIX
                       ? SMOE_TYPE_Q5_K
                       : base;
        return id == Q2_K_MIX ? SMOE_TYPE_Q3_K : id == Q3_K_M_MIX ? SMOE_TYPE_Q4_K : base;
    case K_FFN_DOWN:
        switch (id) {
        case Q2_K_MIX: return SMOE_TYPE_Q3_K;
        case Q3_K_M_MIX: return L < n / 16 ? SMOE_TYPE_Q5_K : SMOE_TYPE_Q4_K;
        case Q4_K_S_MIX: return L < n / 8 ? SMOE_TYPE_Q5_K : base;
        case Q4_K_M_MIX:
        case Q5_K_M_MIX: return more_bits(L, n) ? SMOE_TYPE_Q6_K : base;
        default: return base;
        }
    default: return base;
    }
}

/* A type whose blocks fit rows of `cols`, as llama.cpp falls back; -1 when
 * neither the type nor its fallback fits. */
static int fit_type(uint32_t t, int64_t cols) {
    if (cols % smoe_type_get(t)->block_size == 0) return (int)t;
    uint32_t f;
    switch (t) {
    case SMOE_TYPE_Q2_K:
    case SMOE_TYPE_Q3_K: f = SMOE_TYPE_Q4_0; break;
    case SMOE_TYPE_Q4_K: f = SMOE_TYPE_Q5_0; break;
    case SMOE_TYPE_Q5_K: f = SMOE_TYPE_Q5_1; break;
    case SMOE_TYPE_Q6_K: f = SMOE_TYPE_Q8_0; break;
    default: return -1;
    }
    return cols % smoe_type_get(f)->block_size == 0 ? (int)f : -1;
}

/* ---------------------------------------------------------------------------
 * Progress bar (stderr, only on a terminal)
 * ------------------------------------------------------------------------- */

typedef struct progress {
    bool on;
    uint64_t total, done; /* elements to convert */
    uint64_t n_tensors, tensor;
    double last;
    int last_pct;
} progress;

static void progress_draw(progress *p, uint64_t done, bool force) {
    if (!p->on) return;
    int pct = p->total ? (int)(done * 100 / p->total) : 100;
    double t = (smoe_now_ms() / 1e3);
    if (!force && pct == p->last_pct && t - p->last < 0.2) return;
    p->last = t;
    p->last_pct = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '-';
    bar[40] = 0;
    fprintf(stderr, "\rquantizing [%s] %3d%%  tensor %" PRIu64 "/%" PRIu64, bar, pct, p->tensor, p->n_tensors);
    fflush(stderr);
}

static void progress_end(progress *p) {
    if (p->on) fputs("\r\033[K", stderr);
}

/* ---------------------------------------------------------------------------
 * Conversion
 * ------------------------------------------------------------------------- */

typedef struct job {
    const gguf_file *in;
    uint32_t *out_type; /* per input tensor */
    bool *convert;      /* per input tensor: false = copy the bytes */
    progress prog;
} job;

/* Convert tensor idx: rows in parallel, each through a float buffer. */
static int fill(void *user, uint64_t idx, void *dst, size_t nbytes, char *err) {
    job *j = user;
    const gguf_tensor *t = &j->in->tensors[idx];
    j->prog.tensor = idx + 1;
    if (!j->convert[idx]) {
        memcpy(dst, t->data, nbytes);
        progress_draw(&j->prog, j->prog.done, false);
        return 0;
    }
    const uint32_t out_type = j->out_type[idx];
    const smoe_type_info *from = smoe_type_get(t->type), *to = smoe_type_get(out_type);
    const int64_t cols = t->ne[0], rows = t->nelem / cols;
    const size_t in_rb = smoe_type_row_bytes(t->type, cols), out_rb = smoe_type_row_bytes(out_type, cols);
    const int nthreads = omp_get_max_threads();
    float *buf = malloc((size_t)nthreads * 2 * (size_t)cols * sizeof(float));
    if (!buf) return smoe_errf(err, "out of memory converting tensor '%.*s'", (int)t->name.len, t->name.p);
    int64_t bad_row = -1;
    int bad_kind = 0; /* 1: non-finite input, 2: the quantized values are not finite */
    int64_t rows_done = 0;
    const uint64_t done0 = j->prog.done;
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
        if (j->prog.on) {
            int64_t d;
            #pragma omp atomic capture
            d = ++rows_done;
            if (omp_get_thread_num() == 0) progress_draw(&j->prog, done0 + (uint64_t)d * (uint64_t)cols, false);
        }
    }
    free(buf);
    j->prog.done = done0 + (uint64_t)t->nelem;
    if (bad_row >= 0)
        return smoe_errf(err, "tensor '%.*s' row %" PRId64 ": %s", (int)t->name.len, t->name.p, bad_row,
                         bad_kind == 1 ? "has a value that is not finite"
                                       : "has values too large for this type (a block scale overflows half precision)");
    progress_draw(&j->prog, j->prog.done, false);
    return 0;
}

static bool key_is(const gguf_kv *kv, const char *name) { return gguf_str_eq(kv->key, name); }

static int get_int(const gguf_file *f, const char *key, int def) {
    int64_t v;
    return gguf_get_int(f, key, 0, 1 << 24, &v, NULL) == 1 ? (int)v : def;
}

/* Decide each tensor's output type.  Returns the number converted. */
static uint64_t plan(const gguf_file *in, const mix_def *mx, uint32_t single, uint32_t *out_type, bool *convert) {
    model_facts mf = {get_int(in, "llama.block_count", 0), get_int(in, "llama.expert_count", 0) > 1, 1};
    int heads = get_int(in, "llama.attention.head_count", 1), kv_heads = get_int(in, "llama.attention.head_count_kv", heads);
    mf.gqa = kv_heads > 0 ? heads / kv_heads : 1;
    const bool tied = gguf_find_tensor(in, "output.weight") == NULL;
    if (mf.n_layers <= 0) /* no metadata: count the blocks */
        for (uint64_t i = 0; i < in->n_tensors; i++) {
            int L;
            classify(in->tensors[i].name, &L);
            if (L + 1 > mf.n_layers) mf.n_layers = L + 1;
        }
    uint64_t n = 0;
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *t = &in->tensors[i];
        out_type[i] = t->type;
        convert[i] = false;
        if (t->n_dims < 2 || t->n_dims > 3 || !smoe_type_get(t->type)->to_float) continue;
        int target;
        if (mx) {
            int L;
            enum kind k = classify(t->name, &L);
            target = fit_type(mix_type(mx, &mf, k, L, tied), t->ne[0]);
        } else {
            target = t->ne[0] % smoe_type_get(single)->block_size == 0 ? (int)single : -1;
        }
        if (target < 0 || (uint32_t)target == t->type) continue;
        out_type[i] = (uint32_t)target;
        convert[i] = true;
        n++;
    }
    return n;
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    bool pure = false, dry_run = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { fputs(help, stdout); return 0; }
        if (strcmp(a, "--pure") == 0) pure = true;
        else if (strcmp(a, "--dry-run") == 0) dry_run = true;
        else if (a[0] == '-' && a[1]) return cli_fail("unknown option '%s' (see 'smoe quantize --help')", a);
        else if (n_pos++ < 3) pos[n_pos - 1] = a;
    }
    if (dry_run && n_pos == 2) pos[n_pos++] = pos[1];
    if (n_pos != 3)
        return cli_fail(dry_run ? "quantize --dry-run needs IN.gguf TYPE (see 'smoe quantize --help')"
                                : "quantize needs IN.gguf OUT.gguf TYPE (see 'smoe quantize --help')");
    const char *in_path = pos[0], *out_path = pos[1], *type_name = pos[2];
    const mix_def *mx = NULL;
    if (!pure)
        for (size_t k = 0; k < sizeof mixes / sizeof *mixes; k++)
            if (strcasecmp(type_name, mixes[k].name) == 0) mx = &mixes[k];
    const int type = smoe_type_from_name(type_name);
    const smoe_type_info *to = type >= 0 ? smoe_type_get((uint32_t)type) : NULL;
    if (!mx && (!to || to->block_size == 1 || !to->from_float))
        return cli_fail("unknown quantization type '%s' (valid: %s)", type_name, valid_types);

    char err[SMOE_ERR_SIZE];
    gguf_file *in = gguf_open(in_path, err);
    if (!in) return cli_fail("%s", err);
    int rc = 1;
    gguf_writer *w = NULL;
    const uint64_t nt = in->n_tensors ? in->n_tensors : 1;
    job j = {in, calloc(nt, sizeof(uint32_t)), calloc(nt, sizeof(bool)), {0}};
    if (!j.out_type || !j.convert) { cli_fail("out of memory"); goto out; }

    const uint64_t n_conv = plan(in, mx, mx ? 0 : (uint32_t)type, j.out_type, j.convert);
    uint64_t already = 0, n_requant = 0;
    uint32_t qtype = 0;
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *t = &in->tensors[i];
        if (smoe_type_get(t->type)->block_size > 1) {
            if (!already++) qtype = t->type;
            n_requant += j.convert[i];
        }
    }
    if (already)
        fprintf(stderr,
                "smoe: warning: %s is already quantized (%s): %" PRIu64 " tensors are dequantized and quantized again, "
                "so their rounding errors compound; quantize from the F16/BF16/F32 model when you have it\n",
                in_path, smoe_type_get(qtype)->name, n_requant);

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
    const int ftype = mx ? mx->file_type : file_type_of((uint32_t)type);
    if (ftype >= 0) ok &= gguf_w_u32(w, "general.file_type", (uint32_t)ftype) == 0;
    ok &= gguf_w_u32(w, "general.quantization_version", 2) == 0;
    uint64_t bytes_in = 0, bytes_out = 0, count[SMOE_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < in->n_tensors && ok; i++) {
        const gguf_tensor *t = &in->tensors[i];
        char name[GGUF_MAX_NAME_LEN + 1];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.p);
        const uint32_t ty = j.out_type[i];
        ok &= gguf_w_tensor(w, name, ty, t->n_dims, t->ne) == 0;
        bytes_in += t->nbytes;
        bytes_out += j.convert[i] ? smoe_type_row_bytes(ty, t->ne[0]) * (uint64_t)(t->nelem / t->ne[0]) : t->nbytes;
        count[ty]++;
        if (j.convert[i]) j.prog.total += (uint64_t)t->nelem;
    }
    if (!ok) { cli_fail("out of memory"); goto out; }
    if (dry_run) {
        uint64_t mat_elems = 0, mat_bytes = 0;
        for (uint64_t i = 0; i < in->n_tensors; i++) {
            const gguf_tensor *t = &in->tensors[i];
            const uint64_t nb = j.convert[i] ? smoe_type_row_bytes(j.out_type[i], t->ne[0]) * (uint64_t)(t->nelem / t->ne[0])
                                             : t->nbytes;
            printf("%-32.*s %-5s -> %-5s %12" PRIu64 " bytes\n", (int)t->name.len, t->name.p,
                   smoe_type_get(t->type)->name, smoe_type_get(j.out_type[i])->name, nb);
            if (t->n_dims >= 2) { mat_elems += (uint64_t)t->nelem; mat_bytes += nb; }
        }
        printf("total: %s%s, %" PRIu64 " tensors, tensor data %" PRIu64 " bytes (%.2f MiB -> %.2f MiB), "
               "matrices %.3f bits per weight\n",
               mx ? mx->name : to->name, mx ? " mix" : "", in->n_tensors, bytes_out, (double)bytes_in / 1048576.0,
               (double)bytes_out / 1048576.0, mat_elems ? 8.0 * (double)mat_bytes / (double)mat_elems : 0.0);
        rc = 0;
        goto out;
    }
    j.prog.on = isatty(STDERR_FILENO) == 1;
    j.prog.n_tensors = in->n_tensors;
    j.prog.last_pct = -1;
    int wr = gguf_w_write(w, out_path, fill, &j, err);
    progress_end(&j.prog);
    if (wr) { cli_fail("%s", err); goto out; }
    char types[512];
    size_t o = 0;
    types[0] = 0;
    for (int t = 0; t < SMOE_TYPE_COUNT && o < sizeof types; t++)
        if (count[t]) o += (size_t)snprintf(types + o, sizeof types - o, "%s%s %" PRIu64, o ? ", " : "", smoe_type_get((uint32_t)t)->name, count[t]);
    printf("%s: %s%s: %" PRIu64 " of %" PRIu64 " tensors converted, the rest copied (%s); tensor data %.2f MiB -> %.2f MiB\n",
           out_path, mx ? mx->name : to->name, mx ? " mix" : "", n_conv, in->n_tensors, types,
           (double)bytes_in / 1048576.0, (double)bytes_out / 1048576.0);
    rc = 0;
out:
    gguf_writer_free(w);
    free(j.out_type);
    free(j.convert);
    gguf_close(in);
    return rc;
}
