/* model.c - bind a GGUF file's tensors to the Mixtral model, checking every
 * hyperparameter and every tensor's shape and type on the way. */
#define _GNU_SOURCE
#include "model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "../kernels/types.h"

#define MAX_EXPERTS 256

/* ---------------------------------------------------------------------------
 * Hyperparameters
 * ------------------------------------------------------------------------- */

static int req_int(const gguf_file *f, const char *key, int64_t min, int64_t max, int32_t *out, char *err) {
    int64_t v;
    int r = gguf_get_int(f, key, min, max, &v, err);
    if (r < 0) return -1;
    if (r == 0) return smoe_errf(err, "missing metadata key '%s'", key);
    *out = (int32_t)v;
    return 0;
}

static int opt_int(const gguf_file *f, const char *key, int64_t min, int64_t max, int32_t def, int32_t *out,
                   char *err) {
    int64_t v;
    int r = gguf_get_int(f, key, min, max, &v, err);
    if (r < 0) return -1;
    *out = r ? (int32_t)v : def;
    return 0;
}

static int opt_float(const gguf_file *f, const char *key, double def, double min, double max, float *out,
                     char *err) {
    double v = def;
    if (gguf_get_float(f, key, &v, err) < 0) return -1;
    if (!isfinite(v) || v < min || v > max)
        return smoe_errf(err, "key '%s' is %g, expected %g to %g", key, v, min, max);
    *out = (float)v;
    return 0;
}

static int read_hparams(const gguf_file *f, smoe_hparams *hp, char *err) {
    gguf_str arch;
    int r = gguf_get_str(f, "general.architecture", &arch, err);
    if (r < 0) return -1;
    if (r == 0) return smoe_errf(err, "missing metadata key 'general.architecture'");
    if (!gguf_str_eq(arch, "llama")) {
        char a[64]; /* the name as one printable ASCII line: the bytes are the file's */
        size_t n = 0;
        for (; n < arch.len && n < 40; n++) a[n] = arch.p[n] >= 0x20 && arch.p[n] < 0x7F ? arch.p[n] : '?';
        a[n] = 0;
        return smoe_errf(err, "key 'general.architecture' is '%s', expected 'llama' (Mixtral and Mistral files)", a);
    }
    if (req_int(f, "llama.block_count", 1, 1024, &hp->n_layers, err) ||
        req_int(f, "llama.embedding_length", 1, 1 << 16, &hp->dim, err) ||
        req_int(f, "llama.feed_forward_length", 1, 1 << 20, &hp->ffn_dim, err) ||
        req_int(f, "llama.attention.head_count", 1, 1024, &hp->n_heads, err) ||
        opt_int(f, "llama.attention.head_count_kv", 1, 1024, hp->n_heads, &hp->n_kv_heads, err) ||
        opt_int(f, "llama.context_length", 1, 1 << 24, 4096, &hp->n_ctx_train, err) ||
        opt_int(f, "llama.expert_count", 0, INT32_MAX, 0, &hp->n_experts, err) ||
        opt_int(f, "llama.expert_used_count", 0, INT32_MAX, 0, &hp->n_experts_used, err) ||
        opt_float(f, "llama.attention.layer_norm_rms_epsilon", 1e-5, 1e-12, 1.0, &hp->rms_eps, err) ||
        opt_float(f, "llama.rope.freq_base", 10000.0, 1e-3, 1e12, &hp->rope_theta, err))
        return -1;
    if (hp->dim % hp->n_heads)
        return smoe_errf(err, "llama.embedding_length %d is not a multiple of llama.attention.head_count %d", hp->dim,
                         hp->n_heads);
    hp->head_dim = hp->dim / hp->n_heads;
    if (hp->head_dim % 2)
        return smoe_errf(err, "head dimension %d (embedding_length / head_count) must be even for rotary embeddings",
                         hp->head_dim);
    if (hp->n_heads % hp->n_kv_heads)
        return smoe_errf(err, "llama.attention.head_count %d is not a multiple of llama.attention.head_count_kv %d",
                         hp->n_heads, hp->n_kv_heads);
    if (opt_int(f, "llama.rope.dimension_count", 2, hp->head_dim, hp->head_dim, &hp->n_rot, err)) return -1;
    if (hp->n_rot % 2) return smoe_errf(err, "llama.rope.dimension_count %d must be even", hp->n_rot);
    if (hp->n_experts > MAX_EXPERTS)
        return smoe_errf(err, "llama.expert_count is %d, above the limit of %d", hp->n_experts, MAX_EXPERTS);
    if (hp->n_experts == 1)
        return smoe_errf(err, "llama.expert_count is 1; a single-expert model must be stored as a dense model");
    if (hp->n_experts > 0 && (hp->n_experts_used < 1 || hp->n_experts_used > hp->n_experts))
        return smoe_errf(err, "llama.expert_used_count is %d, expected 1 to llama.expert_count (%d)",
                         hp->n_experts_used, hp->n_experts);
    if (hp->n_experts == 0 && hp->n_experts_used > 0)
        return smoe_errf(err, "llama.expert_used_count is %d but the model has no experts (llama.expert_count is 0)",
                         hp->n_experts_used);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------- */

static void fmt_shape(char *buf, size_t n, const int64_t *ne, uint32_t nd) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < nd && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, d ? ", " : "", ne[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Find a tensor and check its shape (ne0 first, as GGUF lists it) and
 * that this build can compute with its type. */
static const gguf_tensor *get_tensor(const gguf_file *f, const char *name, uint32_t nd, const int64_t *want,
                                     char *err) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) { smoe_errf(err, "missing tensor '%s'", name); return NULL; }
    bool ok = t->n_dims == nd;
    for (uint32_t d = 0; ok && d < nd; d++) ok = t->ne[d] == want[d];
    if (!ok) {
        char got[96], exp[96];
        fmt_shape(got, sizeof got, t->ne, t->n_dims);
        fmt_shape(exp, sizeof exp, want, nd);
        smoe_errf(err, "tensor '%s' has shape %s, expected %s", name, got, exp);
        return NULL;
    }
    const smoe_type_info *ti = smoe_type_get(t->type);
    if (!ti->to_float) {
        smoe_errf(err,
                  "tensor '%s' has type %s, which this build cannot compute with (F32, F16, BF16, Q4_0, Q4_1, "
                  "Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K)",
                  name, ti->name);
        return NULL;
    }
    return t;
}

static int bind_matrix(const gguf_file *f, const char *name, int64_t cols, int64_t rows, smoe_matrix *m,
                       char *err) {
    int64_t ne[2] = {cols, rows};
    const gguf_tensor *t = get_tensor(f, name, 2, ne, err);
    if (!t) return -1;
    *m = (smoe_matrix){t->data, t->type, rows, cols, smoe_type_row_bytes(t->type, cols)};
    return 0;
}

/* Norm weights are small: convert them to float once. */
static int bind_vector(const gguf_file *f, const char *name, int64_t n, float **out, char *err) {
    int64_t ne[1] = {n};
    const gguf_tensor *t = get_tensor(f, name, 1, ne, err);
    if (!t) return -1;
    *out = malloc((size_t)n * sizeof(float));
    if (!*out) return smoe_errf(err, "out of memory");
    smoe_type_get(t->type)->to_float(t->data, *out, n);
    return 0;
}

/* Experts: merged 3-D tensors blk.N.ffn_X_exps.weight, or one 2-D tensor
 * per expert blk.N.ffn_X.E.weight. */
static int bind_experts(const gguf_file *f, int layer, const char *kind, int64_t cols, int64_t rows, int n_exp,
                        smoe_matrix *out, char *err) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", layer, kind);
    if (gguf_find_tensor(f, name)) {
        int64_t ne[3] = {cols, rows, n_exp};
        const gguf_tensor *t = get_tensor(f, name, 3, ne, err);
        if (!t) return -1;
        size_t rb = smoe_type_row_bytes(t->type, cols);
        for (int e = 0; e < n_exp; e++)
            out[e] = (smoe_matrix){(const uint8_t *)t->data + (size_t)e * (size_t)rows * rb, t->type, rows, cols, rb};
        return 0;
    }
    char first[96];
    snprintf(first, sizeof first, "blk.%d.ffn_%s.0.weight", layer, kind);
    if (!gguf_find_tensor(f, first))
        return smoe_errf(err, "missing tensor '%s' (or the per-expert tensors '%s'...)", name, first);
    for (int e = 0; e < n_exp; e++) {
        snprintf(name, sizeof name, "blk.%d.ffn_%s.%d.weight", layer, kind, e);
        if (bind_matrix(f, name, cols, rows, &out[e], err)) return -1;
    }
    return 0;
}

static int bind_layer(smoe_model *m, int i, char *err) {
    const gguf_file *f = m->file;
    const smoe_hparams *hp = &m->hp;
    smoe_layer *l = &m->layers[i];
    const int64_t dim = hp->dim, kv_dim = (int64_t)hp->n_kv_heads * hp->head_dim;
    char name[96];
#define NAME(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, i), name)
    if (bind_vector(f, NAME("attn_norm.weight"), dim, &l->attn_norm, err) ||
        bind_vector(f, NAME("ffn_norm.weight"), dim, &l->ffn_norm, err) ||
        bind_matrix(f, NAME("attn_q.weight"), dim, dim, &l->wq, err) ||
        bind_matrix(f, NAME("attn_k.weight"), dim, kv_dim, &l->wk, err) ||
        bind_matrix(f, NAME("attn_v.weight"), dim, kv_dim, &l->wv, err) ||
        bind_matrix(f, NAME("attn_output.weight"), dim, dim, &l->wo, err))
        return -1;
    int n_exp = hp->n_experts ? hp->n_experts : 1;
    l->gate = calloc((size_t)n_exp, sizeof(smoe_matrix));
    l->up = calloc((size_t)n_exp, sizeof(smoe_matrix));
    l->down = calloc((size_t)n_exp, sizeof(smoe_matrix));
    if (!l->gate || !l->up || !l->down) return smoe_errf(err, "out of memory");
    if (hp->n_experts == 0)
        return bind_matrix(f, NAME("ffn_gate.weight"), dim, hp->ffn_dim, &l->gate[0], err) ||
                       bind_matrix(f, NAME("ffn_up.weight"), dim, hp->ffn_dim, &l->up[0], err) ||
                       bind_matrix(f, NAME("ffn_down.weight"), hp->ffn_dim, dim, &l->down[0], err)
                   ? -1
                   : 0;
    if (bind_matrix(f, NAME("ffn_gate_inp.weight"), dim, hp->n_experts, &l->router, err)) return -1;
#undef NAME
    return bind_experts(f, i, "gate", dim, hp->ffn_dim, n_exp, l->gate, err) ||
                   bind_experts(f, i, "up", dim, hp->ffn_dim, n_exp, l->up, err) ||
                   bind_experts(f, i, "down", hp->ffn_dim, dim, n_exp, l->down, err)
               ? -1
               : 0;
}

static int bind_globals(smoe_model *m, char *err) {
    const gguf_file *f = m->file;
    smoe_hparams *hp = &m->hp;
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return smoe_errf(err, "missing tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[0] != hp->dim) {
        char got[96];
        fmt_shape(got, sizeof got, emb->ne, emb->n_dims);
        return smoe_errf(err, "tensor 'token_embd.weight' has shape %s, expected [%d, n_vocab] "
                              "(llama.embedding_length is %d)", got, hp->dim, hp->dim);
    }
    if (emb->ne[1] > INT32_MAX) return smoe_errf(err, "tensor 'token_embd.weight': vocabulary too large");
    hp->n_vocab = (int32_t)emb->ne[1];
    if (bind_matrix(f, "token_embd.weight", hp->dim, hp->n_vocab, &m->tok_embd, err) ||
        bind_vector(f, "output_norm.weight", hp->dim, &m->output_norm, err))
        return -1;
    hp->tied_output = gguf_find_tensor(f, "output.weight") == NULL;
    if (hp->tied_output) {
        m->output = m->tok_embd;
        return 0;
    }
    return bind_matrix(f, "output.weight", hp->dim, hp->n_vocab, &m->output, err);
}

/* ---------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------- */

smoe_model *smoe_model_from_gguf(gguf_file *f, char *err) {
    smoe_model *m = calloc(1, sizeof *m);
    if (!m) { smoe_errf(err, "out of memory"); return NULL; }
    m->file = f;
    if (read_hparams(f, &m->hp, err) || bind_globals(m, err)) goto fail;
    m->layers = calloc((size_t)m->hp.n_layers, sizeof *m->layers);
    if (!m->layers) { smoe_errf(err, "out of memory"); goto fail; }
    for (int i = 0; i < m->hp.n_layers; i++)
        if (bind_layer(m, i, err)) goto fail;
    if (smoe_vocab_from_gguf(&m->vocab, f, err)) goto fail;
    if (m->vocab.n_tokens && m->vocab.n_tokens != m->hp.n_vocab) {
        smoe_errf(err, "tokenizer.ggml.tokens has %d tokens but token_embd.weight has %d rows", m->vocab.n_tokens,
                  m->hp.n_vocab);
        goto fail;
    }
    return m;
fail:
    m->file = NULL; /* the caller still owns f on failure */
    smoe_model_free(m);
    return NULL;
}

smoe_model *smoe_model_load(const char *path, char *err) {
    char inner[SMOE_ERR_SIZE];
    gguf_file *f = gguf_open(path, err);
    if (!f) return NULL;
    smoe_model *m = smoe_model_from_gguf(f, inner);
    if (!m) {
        gguf_close(f);
        smoe_errf(err, "%s: %s", path, inner);
    }
    return m;
}

void smoe_model_free(smoe_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int i = 0; i < m->hp.n_layers; i++) {
            smoe_layer *l = &m->layers[i];
            free(l->attn_norm);
            free(l->ffn_norm);
            free(l->gate);
            free(l->up);
            free(l->down);
        }
        free(m->layers);
    }
    free(m->output_norm);
    smoe_vocab_free(&m->vocab);
    gguf_close(m->file);
    free(m);
}

const smoe_hparams *smoe_model_hparams(const smoe_model *m) { return &m->hp; }

void smoe_model_param_counts(const smoe_model *m, uint64_t *total, uint64_t *active) {
    const gguf_file *f = m->file;
    const smoe_hparams *hp = &m->hp;
    uint64_t all = 0, experts = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        all += (uint64_t)t->nelem;
        bool is_expert = false;
        if (hp->n_experts && t->name.len > 4 && memcmp(t->name.p, "blk.", 4) == 0) {
            /* blk.N.ffn_{gate,up,down}_exps.weight or blk.N.ffn_{gate,up,down}.E.weight */
            const char *p = memchr(t->name.p + 4, '.', t->name.len - 4);
            size_t rest = p ? t->name.len - (size_t)(p + 1 - t->name.p) : 0;
            if (p && rest > 4 && memcmp(p + 1, "ffn_", 4) == 0) {
                gguf_str tail = {p + 1, rest};
                is_expert = !gguf_str_eq(tail, "ffn_gate_inp.weight") && !gguf_str_eq(tail, "ffn_norm.weight");
            }
        }
        if (is_expert) experts += (uint64_t)t->nelem;
    }
    uint64_t embd = (uint64_t)hp->n_vocab * (uint64_t)hp->dim;
    *total = all;
    uint64_t act = all - experts;
    if (hp->n_experts) act += experts / (uint64_t)hp->n_experts * (uint64_t)hp->n_experts_used;
    if (!hp->tied_output) act = act - embd + (uint64_t)hp->dim; /* one embedding row per token */
    *active = act;
}
