/* synth.c - write a deterministic random Mixtral GGUF.
 *
 * Every weight is drawn from a generator keyed by (seed, the tensor's
 * logical name), not by the order of writing, so the same logical weight is
 * equal across layouts: a merged-expert file and a per-expert file of one
 * seed hold the same model, and a dense file holds expert 0's FFN. */
#define _GNU_SOURCE
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/buf.h"
#include "../base/common.h"
#include "../format/gguf.h"
#include "../kernels/types.h"
#include "vocab.h"

int smoe_synth_preset(const char *preset, smoe_synth_opts *o) {
    memset(o, 0, sizeof *o);
    o->rope_theta = 1e6f;
    o->rms_eps = 1e-5f;
    o->type = SMOE_TYPE_F32;
    o->n_experts = 8;
    o->n_experts_used = 2;
    o->seed = 1;
    if (strcmp(preset, "tiny") == 0) {
        o->dim = 128; o->n_layers = 2; o->n_heads = 4; o->n_kv_heads = 2; o->ffn_dim = 256;
        o->n_ctx = 2048; o->vocab_size = 259;
    } else if (strcmp(preset, "small") == 0) {
        o->dim = 256; o->n_layers = 4; o->n_heads = 8; o->n_kv_heads = 2; o->ffn_dim = 640;
        o->n_ctx = 4096; o->vocab_size = 259;
    } else if (strcmp(preset, "bench") == 0) {
        o->dim = 1024; o->n_layers = 16; o->n_heads = 8; o->n_kv_heads = 2; o->ffn_dim = 3584;
        o->n_ctx = 32768; o->vocab_size = 32000;
    } else {
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Random numbers: splitmix64 keyed by a hash of the logical name.
 * ------------------------------------------------------------------------- */

static uint64_t hash_name(const char *s, uint64_t seed) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* uniform in [-1, 1) */
static float uniform(uint64_t *s) { return (float)((double)(smoe_splitmix64(s) >> 11) * 0x1.0p-52 - 1.0); }

/* ---------------------------------------------------------------------------
 * Tensor plan
 * ------------------------------------------------------------------------- */

enum init_kind { INIT_MATRIX, INIT_NORM, INIT_EMBED };

typedef struct plan_tensor {
    char name[96];
    char key[96];         /* logical name for the generator; "%d" = expert */
    enum init_kind init;
    uint32_t n_dims;
    int64_t ne[3];
    int32_t n_slices;     /* experts in a merged tensor, else 1 */
    int32_t expert;       /* expert of a per-expert tensor */
    float scale;
} plan_tensor;

typedef struct plan {
    const smoe_synth_opts *o;
    plan_tensor *t;
    int n;
} plan;

static plan_tensor *add(plan *p, const char *name, const char *key, enum init_kind init, uint32_t nd, int64_t ne0,
                        int64_t ne1, int64_t ne2) {
    plan_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->key, sizeof t->key, "%s", key);
    t->init = init;
    t->n_dims = nd;
    t->ne[0] = ne0; t->ne[1] = ne1; t->ne[2] = ne2;
    t->n_slices = 1;
    /* uniform(-a, a) has standard deviation a/sqrt(3): 1/sqrt(fan_in) keeps
     * each matrix product's output at the scale of its input */
    t->scale = init == INIT_MATRIX ? sqrtf(3.0f / (float)ne0) : 1.0f;
    return t;
}

static int make_plan(plan *p, const smoe_synth_opts *o) {
    int per_layer = 9 + 3 * (o->n_experts ? o->n_experts : 1);
    p->o = o;
    p->n = 0;
    p->t = calloc((size_t)(3 + o->n_layers * per_layer), sizeof *p->t);
    if (!p->t) return -1;
    const int64_t dim = o->dim, kv = (int64_t)o->n_kv_heads * (o->dim / o->n_heads), ffn = o->ffn_dim;
    add(p, "token_embd.weight", "token_embd", INIT_EMBED, 2, dim, o->vocab_size, 1);
    char n[96], k[96];
    for (int L = 0; L < o->n_layers; L++) {
#define T(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, L), n)
#define K(suffix) (snprintf(k, sizeof k, "blk.%d." suffix, L), k)
        add(p, T("attn_norm.weight"), K("attn_norm"), INIT_NORM, 1, dim, 1, 1);
        add(p, T("attn_q.weight"), K("attn_q"), INIT_MATRIX, 2, dim, dim, 1);
        add(p, T("attn_k.weight"), K("attn_k"), INIT_MATRIX, 2, dim, kv, 1);
        add(p, T("attn_v.weight"), K("attn_v"), INIT_MATRIX, 2, dim, kv, 1);
        add(p, T("attn_output.weight"), K("attn_output"), INIT_MATRIX, 2, dim, dim, 1);
        add(p, T("ffn_norm.weight"), K("ffn_norm"), INIT_NORM, 1, dim, 1, 1);
        static const char *const kinds[3] = {"gate", "up", "down"};
        if (o->n_experts == 0) {
            for (int j = 0; j < 3; j++) {
                char tn[64], kn[64];
                snprintf(tn, sizeof tn, "ffn_%s.weight", kinds[j]);
                snprintf(kn, sizeof kn, "ffn_%s.%%d", kinds[j]);
                snprintf(n, sizeof n, "blk.%d.%s", L, tn);
                snprintf(k, sizeof k, "blk.%d.%s", L, kn);
                add(p, n, k, INIT_MATRIX, 2, j == 2 ? ffn : dim, j == 2 ? dim : ffn, 1);
            }
            continue;
        }
        add(p, T("ffn_gate_inp.weight"), K("ffn_gate_inp"), INIT_MATRIX, 2, dim, o->n_experts, 1);
        for (int j = 0; j < 3; j++) {
            int64_t cols = j == 2 ? ffn : dim, rows = j == 2 ? dim : ffn;
            snprintf(k, sizeof k, "blk.%d.ffn_%s.%%d", L, kinds[j]);
            if (!o->split_experts) {
                snprintf(n, sizeof n, "blk.%d.ffn_%s_exps.weight", L, kinds[j]);
                add(p, n, k, INIT_MATRIX, 3, cols, rows, o->n_experts)->n_slices = o->n_experts;
                continue;
            }
            for (int e = 0; e < o->n_experts; e++) {
                snprintf(n, sizeof n, "blk.%d.ffn_%s.%d.weight", L, kinds[j], e);
                add(p, n, k, INIT_MATRIX, 2, cols, rows, 1)->expert = e;
            }
        }
#undef T
#undef K
    }
    add(p, "output_norm.weight", "output_norm", INIT_NORM, 1, dim, 1, 1);
    if (!o->tied_output) add(p, "output.weight", "output", INIT_MATRIX, 2, dim, o->vocab_size, 1);
    return 0;
}

static void store(uint32_t type, uint8_t *dst, int64_t i, float v) {
    if (type == SMOE_TYPE_F32) {
        memcpy(dst + 4 * i, &v, 4);
    } else {
        uint16_t h = type == SMOE_TYPE_F16 ? smoe_f32_to_f16(v) : smoe_f32_to_bf16(v);
        dst[2 * i] = (uint8_t)h;
        dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

/* The default model's LM head: rows of printable ASCII byte tokens (ids
 * 3 + byte in the built-in vocabulary) get a larger scale, so sampling
 * mostly picks them and the gibberish is at least legible. */
static float row_gain(const smoe_synth_opts *o, const plan_tensor *t, int64_t row) {
    if (!o->readable || o->vocab_path || strcmp(t->key, "output") != 0) return 1.0f;
    int64_t byte = row - 3;
    bool printable = (byte >= 0x20 && byte < 0x7f) || byte == '\n';
    return printable ? 6.0f : 1.0f;
}

static int fill_tensor(void *user, uint64_t idx, void *dst, size_t nbytes, char *err) {
    (void)nbytes;
    (void)err;
    const plan *p = user;
    const plan_tensor *t = &p->t[idx];
    const smoe_synth_opts *o = p->o;
    /* norms stay F32 as converters keep them */
    uint32_t type = t->n_dims == 1 ? SMOE_TYPE_F32 : o->type;
    int64_t per_slice = t->ne[0] * t->ne[1];
    for (int32_t s = 0; s < t->n_slices; s++) {
        int32_t expert = t->n_slices > 1 ? s : t->expert;
        if (o->identical_experts) expert = 0;
        char key[128];
        snprintf(key, sizeof key, t->key, expert);
        uint64_t state = hash_name(key, o->seed);
        for (int64_t i = 0; i < per_slice; i++) {
            float v = uniform(&state);
            v = t->init == INIT_NORM ? 1.0f + 0.1f * v : v * t->scale * row_gain(o, t, i / t->ne[0]);
            store(type, dst, (int64_t)s * per_slice + i, v);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Vocabulary: copied from a GGUF, read from a .model, or built in.
 * ------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int write_vocab_keys(gguf_writer *w, const smoe_vocab *v) {
    int rc = gguf_w_str(w, "tokenizer.ggml.model", "llama");
    rc |= gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->token_len,
                         (uint64_t)v->n_tokens);
    rc |= gguf_w_arr_f32(w, "tokenizer.ggml.scores", v->scores, (uint64_t)v->n_tokens);
    rc |= gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->types, (uint64_t)v->n_tokens);
    if (v->bos_id >= 0) rc |= gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id);
    if (v->eos_id >= 0) rc |= gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id);
    if (v->unk_id >= 0) rc |= gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id);
    if (v->pad_id >= 0) rc |= gguf_w_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad_id);
    rc |= gguf_w_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    rc |= gguf_w_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos);
    rc |= gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
    return rc ? -1 : 0;
}

/* Pad the built-in byte vocabulary with unused tokens up to n. */
static int pad_vocab(smoe_vocab *v, int32_t n, char *err) {
    if (n <= v->n_tokens) return 0;
    char **tokens = realloc(v->tokens, (size_t)n * sizeof *tokens);
    if (tokens) v->tokens = tokens;
    uint32_t *lens = realloc(v->token_len, (size_t)n * sizeof *lens);
    if (lens) v->token_len = lens;
    float *scores = realloc(v->scores, (size_t)n * sizeof *scores);
    if (scores) v->scores = scores;
    int32_t *types = realloc(v->types, (size_t)n * sizeof *types);
    if (types) v->types = types;
    if (!tokens || !lens || !scores || !types) return smoe_errf(err, "out of memory");
    for (int32_t i = v->n_tokens; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "<unused%d>", i);
        v->tokens[i] = strdup(buf);
        if (!v->tokens[i]) { v->n_tokens = i; return smoe_errf(err, "out of memory"); }
        v->token_len[i] = (uint32_t)strlen(buf);
        v->scores[i] = 0;
        v->types[i] = SMOE_TOKEN_UNUSED;
        v->n_tokens = i + 1;
    }
    return 0;
}

static int add_vocab(gguf_writer *w, smoe_synth_opts *o, char *err) {
    smoe_vocab v;
    memset(&v, 0, sizeof v);
    if (o->vocab_path && ends_with(o->vocab_path, ".gguf")) {
        gguf_file *f = gguf_open(o->vocab_path, err);
        if (!f) return -1;
        int rc = smoe_vocab_from_gguf(&v, f, err) ? -1 : 0;
        if (rc == 0 && v.n_tokens == 0) rc = smoe_errf(err, "%s: no tokenizer.ggml.tokens in this file", o->vocab_path);
        for (uint64_t i = 0; rc == 0 && i < f->n_kv; i++)
            if (f->kv[i].key.len > 10 && memcmp(f->kv[i].key.p, "tokenizer.", 10) == 0)
                rc = gguf_w_copy_kv(w, &f->kv[i]) ? smoe_errf(err, "out of memory") : 0;
        o->vocab_size = v.n_tokens;
        smoe_vocab_free(&v);
        gguf_close(f);
        return rc;
    }
    int rc;
    if (o->vocab_path) {
        FILE *fp = fopen(o->vocab_path, "rb");
        if (!fp) return smoe_errf(err, "%s: cannot open", o->vocab_path);
        smoe_buf buf = {0};
        int rd = smoe_buf_read(&buf, fp);
        fclose(fp);
        if (rd) {
            const char *why = buf.oom ? "out of memory" : "read error";
            smoe_buf_free(&buf);
            return smoe_errf(err, "%s: %s", o->vocab_path, why);
        }
        char inner[SMOE_ERR_SIZE];
        rc = smoe_vocab_from_spm(&v, (const uint8_t *)buf.p, buf.n, inner);
        smoe_buf_free(&buf);
        if (rc) return smoe_errf(err, "%s: %s", o->vocab_path, inner);
    } else {
        rc = smoe_vocab_builtin_bytes(&v, err);
        if (rc == 0) rc = pad_vocab(&v, o->vocab_size, err);
        if (rc) { smoe_vocab_free(&v); return -1; }
    }
    o->vocab_size = v.n_tokens;
    rc = write_vocab_keys(w, &v) ? smoe_errf(err, "out of memory") : 0;
    smoe_vocab_free(&v);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------- */

static int check_opts(const smoe_synth_opts *o, char *err) {
    if (o->type != SMOE_TYPE_F32 && o->type != SMOE_TYPE_F16 && o->type != SMOE_TYPE_BF16)
        return smoe_errf(err, "synthetic models are written as F32, F16 or BF16");
    if (o->dim < 2 || o->n_layers < 1 || o->n_heads < 1 || o->n_kv_heads < 1 || o->ffn_dim < 1 || o->n_ctx < 1)
        return smoe_errf(err, "every dimension must be positive");
    if (o->dim % o->n_heads || (o->dim / o->n_heads) % 2 || o->n_heads % o->n_kv_heads)
        return smoe_errf(err, "dim must be a multiple of heads with an even head size, heads a multiple of kv-heads");
    if (o->n_experts < 0 || o->n_experts == 1 || o->n_experts > 256)
        return smoe_errf(err, "experts must be 0 (dense) or 2 to 256");
    if (o->n_experts && (o->n_experts_used < 1 || o->n_experts_used > o->n_experts))
        return smoe_errf(err, "top-k must be 1 to the number of experts");
    return 0;
}

int smoe_synth_write(const smoe_synth_opts *opts, const char *path, char *err) {
    smoe_synth_opts o = *opts;
    if (check_opts(&o, err)) return -1;
    gguf_writer *w = gguf_writer_new();
    if (!w) return smoe_errf(err, "out of memory");
    plan p = {0};
    char name[64];
    snprintf(name, sizeof name, "%s", o.name ? o.name : "smoe synthetic");
    int rc = gguf_w_str(w, "general.architecture", "llama");
    rc |= gguf_w_str(w, "general.name", name);
    rc |= gguf_w_str(w, "general.license", "synthetic weights, no license needed");
    rc |= gguf_w_u32(w, "llama.block_count", (uint32_t)o.n_layers);
    rc |= gguf_w_u32(w, "llama.embedding_length", (uint32_t)o.dim);
    rc |= gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)o.ffn_dim);
    rc |= gguf_w_u32(w, "llama.attention.head_count", (uint32_t)o.n_heads);
    rc |= gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)o.n_kv_heads);
    rc |= gguf_w_u32(w, "llama.context_length", (uint32_t)o.n_ctx);
    rc |= gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)(o.dim / o.n_heads));
    rc |= gguf_w_f32(w, "llama.rope.freq_base", o.rope_theta);
    rc |= gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", o.rms_eps);
    if (o.n_experts) {
        rc |= gguf_w_u32(w, "llama.expert_count", (uint32_t)o.n_experts);
        rc |= gguf_w_u32(w, "llama.expert_used_count", (uint32_t)o.n_experts_used);
    }
    if (rc) { rc = smoe_errf(err, "out of memory"); goto out; }
    if ((rc = add_vocab(w, &o, err))) goto out;
    if (make_plan(&p, &o)) { rc = smoe_errf(err, "out of memory"); goto out; }
    for (int i = 0; i < p.n && rc == 0; i++) {
        uint32_t type = p.t[i].n_dims == 1 ? SMOE_TYPE_F32 : o.type;
        if (gguf_w_tensor(w, p.t[i].name, type, p.t[i].n_dims, p.t[i].ne)) rc = smoe_errf(err, "out of memory");
    }
    if (rc == 0) rc = gguf_w_write(w, path, fill_tensor, &p, err);
out:
    free(p.t);
    gguf_writer_free(w);
    return rc;
}
