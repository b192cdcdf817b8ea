/* forward.c - the Mixtral forward pass over a batch of (sequence, position,
 * token) entries, and the per-sequence KV cache it reads and writes.
 *
 * For each layer:
 *   x  = x + Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
 *   x  = x + sum over the top-k experts e of  w_e · down_e(silu(gate_e·h) * up_e·h)
 *        with h = norm(x), w = softmax of the k selected router logits.
 * Entries routed to the same expert are gathered so that each selected
 * expert's weights are read once per batch; unselected experts are never
 * touched. */
#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <string.h>

#include "../base/common.h"
#include "../kernels/types.h"
#include "model.h"

/* ---------------------------------------------------------------------------
 * KV cache: one per sequence, [layer][position][kv_dim], F16 (IEEE half,
 * rounded to nearest even when stored, widened exactly when read) or F32.
 * ------------------------------------------------------------------------- */

struct smoe_seq {
    int32_t n_ctx, n_layers, kv_dim;
    int32_t len;        /* positions 0..len-1 hold valid keys and values */
    int32_t batch_len;  /* scratch while validating a batch */
    smoe_kv_type type;
    size_t elem;        /* bytes per element: 2 or 4 */
    uint8_t *k, *v;
};

static size_t kv_elem(smoe_kv_type t) { return t == SMOE_KV_F32 ? sizeof(float) : sizeof(uint16_t); }

size_t smoe_kv_bytes_per_pos(const smoe_model *m, smoe_kv_type type) {
    const smoe_hparams *hp = &m->hp;
    return 2 * (size_t)hp->n_layers * (size_t)hp->n_kv_heads * (size_t)hp->head_dim * kv_elem(type);
}

smoe_seq *smoe_seq_new_typed(const smoe_model *m, int32_t n_ctx, smoe_kv_type type, char *err) {
    const smoe_hparams *hp = &m->hp;
    if (n_ctx == 0) n_ctx = hp->n_ctx_train;
    if (n_ctx < 1 || n_ctx > (1 << 24)) {
        smoe_errf(err, "context size %d is out of range (1 to 16777216)", n_ctx);
        return NULL;
    }
    if (type != SMOE_KV_F16 && type != SMOE_KV_F32) {
        smoe_errf(err, "unknown KV cache type %d", (int)type);
        return NULL;
    }
    smoe_seq *s = calloc(1, sizeof *s);
    if (!s) { smoe_errf(err, "out of memory"); return NULL; }
    s->n_ctx = n_ctx;
    s->n_layers = hp->n_layers;
    s->kv_dim = hp->n_kv_heads * hp->head_dim;
    s->type = type;
    s->elem = kv_elem(type);
    size_t n = (size_t)hp->n_layers * (size_t)n_ctx * (size_t)s->kv_dim;
    s->k = malloc(n * s->elem);
    s->v = malloc(n * s->elem);
    if (!s->k || !s->v) {
        smoe_errf(err, "out of memory for a KV cache of %d positions (%zu MiB)", n_ctx, 2 * n * s->elem >> 20);
        smoe_seq_free(s);
        return NULL;
    }
    return s;
}

smoe_seq *smoe_seq_new(const smoe_model *m, int32_t n_ctx, char *err) {
    return smoe_seq_new_typed(m, n_ctx, SMOE_KV_F16, err);
}

void smoe_seq_free(smoe_seq *s) {
    if (!s) return;
    free(s->k);
    free(s->v);
    free(s);
}

int32_t smoe_seq_n_ctx(const smoe_seq *s) { return s->n_ctx; }

static uint8_t *kv_at(const smoe_seq *s, uint8_t *base, int32_t layer, int32_t pos) {
    return base + ((size_t)layer * (size_t)s->n_ctx + (size_t)pos) * (size_t)s->kv_dim * s->elem;
}

/* Store n floats at dst in the cache's type. */
static void kv_store(const smoe_seq *s, uint8_t *dst, const float *src, int32_t n) {
    if (s->type == SMOE_KV_F32) memcpy(dst, src, (size_t)n * sizeof(float));
    else smoe_type_get(SMOE_TYPE_F16)->from_float(src, dst, n);
}

/* n floats of the cache at src: the cache itself when it is F32, else
 * widened into buf. */
static const float *kv_load(const smoe_seq *s, const uint8_t *src, float *buf, int32_t n) {
    if (s->type == SMOE_KV_F32) return (const float *)(const void *)src;
    smoe_type_get(SMOE_TYPE_F16)->to_float(src, buf, n);
    return buf;
}

/* ---------------------------------------------------------------------------
 * Context: scratch buffers for a batch.
 * ------------------------------------------------------------------------- */

struct smoe_ctx {
    const smoe_model *m;
    int32_t max_batch;
    float *x, *xb, *q, *k, *v, *att, *ffn_out;  /* activations, per entry */
    float *xe, *h1, *h3, *ye;                   /* one expert's gathered rows */
    float *router;                              /* n_experts per entry */
    int32_t *sel;                               /* chosen experts, k per entry */
    float *sel_w;                               /* their weights */
    int32_t *rows;                              /* entries routed to one expert */
    float *rows_w;
    smoe_route_fn route_fn;
    void *route_user;
    smoe_mm mm;                                 /* matmul kernels and their scratch */
};

/* Quantized activations are made for at most this many entries at a time
 * (bigger batches go through the matmul in slices). */
#define MM_SLICE 256

smoe_ctx *smoe_ctx_new(const smoe_model *m, int32_t max_batch, char *err) {
    const smoe_hparams *hp = &m->hp;
    if (max_batch < 1 || max_batch > 65536) {
        smoe_errf(err, "batch size %d is out of range (1 to 65536)", max_batch);
        return NULL;
    }
    smoe_ctx *c = calloc(1, sizeof *c);
    if (!c) { smoe_errf(err, "out of memory"); return NULL; }
    c->m = m;
    c->max_batch = max_batch;
    size_t B = (size_t)max_batch, dim = (size_t)hp->dim, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t ffn = (size_t)hp->ffn_dim, ne = hp->n_experts ? (size_t)hp->n_experts : 1;
    size_t k = hp->n_experts ? (size_t)hp->n_experts_used : 1;
    c->x = malloc(B * dim * sizeof(float));
    c->xb = malloc(B * dim * sizeof(float));
    c->q = malloc(B * dim * sizeof(float));
    c->k = malloc(B * kv * sizeof(float));
    c->v = malloc(B * kv * sizeof(float));
    c->att = malloc(B * dim * sizeof(float));
    c->ffn_out = malloc(B * dim * sizeof(float));
    c->xe = malloc(B * dim * sizeof(float));
    c->ye = malloc(B * dim * sizeof(float));
    c->h1 = malloc(B * ffn * sizeof(float));
    c->h3 = malloc(B * ffn * sizeof(float));
    c->router = malloc(B * ne * sizeof(float));
    c->sel = malloc(B * k * sizeof(int32_t));
    c->sel_w = malloc(B * k * sizeof(float));
    c->rows = malloc(B * sizeof(int32_t));
    c->rows_w = malloc(B * sizeof(float));
    if (!c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->ffn_out || !c->xe || !c->ye || !c->h1 ||
        !c->h3 || !c->router || !c->sel || !c->sel_w || !c->rows || !c->rows_w) {
        smoe_errf(err, "out of memory for batch buffers of %d entries", max_batch);
        smoe_ctx_free(c);
        return NULL;
    }
    c->mm.k = smoe_kernels_select(err);
    if (!c->mm.k) {
        smoe_ctx_free(c);
        return NULL;
    }
    size_t sb = smoe_mm_scratch_bytes(c->mm.k, hp->dim > hp->ffn_dim ? hp->dim : hp->ffn_dim,
                                      max_batch < MM_SLICE ? max_batch : MM_SLICE);
    if (sb) {
        c->mm.scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
        if (!c->mm.scratch) {
            smoe_errf(err, "out of memory for %zu MiB of matmul scratch", sb >> 20);
            smoe_ctx_free(c);
            return NULL;
        }
        c->mm.scratch_bytes = sb;
    }
    return c;
}

void smoe_ctx_free(smoe_ctx *c) {
    if (!c) return;
    float *bufs[] = {c->x, c->xb, c->q, c->k, c->v, c->att, c->ffn_out, c->xe, c->ye, c->h1, c->h3, c->router,
                     c->sel_w, c->rows_w};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(c->sel);
    free(c->rows);
    free(c->mm.scratch);
    free(c);
}

void smoe_ctx_set_route_trace(smoe_ctx *c, smoe_route_fn fn, void *user) {
    c->route_fn = fn;
    c->route_user = user;
}

/* ---------------------------------------------------------------------------
 * Attention
 * ------------------------------------------------------------------------- */

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* scratch: smoe_max_threads() x attention_scratch(hp, longest sequence in the
 * batch) floats: one thread's scores for the query heads of a KV group, then
 * a row of widened F16 */
static size_t attention_scratch(const smoe_hparams *hp, int32_t max_len) {
    return (size_t)(hp->n_heads / hp->n_kv_heads) * (size_t)max_len + (size_t)hp->head_dim;
}

static void attention(smoe_ctx *c, int32_t layer, const smoe_batch_entry *e, int32_t n, float *scratch,
                      int32_t max_len) {
    const smoe_hparams *hp = &c->m->hp;
    const int32_t hd = hp->head_dim, dim = hp->dim, kv_dim = hp->n_kv_heads * hd;
    const int32_t group = hp->n_heads / hp->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);

    /* rotate and store this batch's keys and values first, so that an entry
     * sees the earlier entries of its own sequence in the same batch */
    for (int32_t t = 0; t < n; t++) {
        for (int32_t h = 0; h < hp->n_heads; h++) smoe_rope(c->q + (size_t)t * dim + h * hd, hp->n_rot, e[t].pos, hp->rope_theta);
        for (int32_t h = 0; h < hp->n_kv_heads; h++)
            smoe_rope(c->k + (size_t)t * kv_dim + h * hd, hp->n_rot, e[t].pos, hp->rope_theta);
        kv_store(e[t].seq, kv_at(e[t].seq, e[t].seq->k, layer, e[t].pos), c->k + (size_t)t * kv_dim, kv_dim);
        kv_store(e[t].seq, kv_at(e[t].seq, e[t].seq->v, layer, e[t].pos), c->v + (size_t)t * kv_dim, kv_dim);
    }

    /* One work item per entry and KV head: the query heads that share the
     * KV head (GQA) go together, so that each cached key and value row is
     * widened from F16 once for all of them rather than once per head. */
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t tk = 0; tk < (int64_t)n * hp->n_kv_heads; tk++) {
        const int32_t t = (int32_t)(tk / hp->n_kv_heads), kvh = (int32_t)(tk % hp->n_kv_heads);
        const smoe_seq *s = e[t].seq;
        const int32_t len = e[t].pos + 1;
        const size_t head_off = (size_t)kvh * hd * s->elem;
        const float *q = c->q + (size_t)t * dim + (size_t)kvh * group * hd; /* heads kvh*group ... */
        float *out = c->att + (size_t)t * dim + (size_t)kvh * group * hd;
        float *scores = scratch + (size_t)thread_id() * attention_scratch(hp, max_len);
        float *row = scores + (size_t)group * max_len;
        for (int32_t p = 0; p < len; p++) {
            const float *k = kv_load(s, kv_at(s, s->k, layer, p) + head_off, row, hd);
            for (int32_t g = 0; g < group; g++)
                scores[(size_t)g * max_len + p] = smoe_dot_f32(q + (size_t)g * hd, k, hd) * scale;
        }
        for (int32_t g = 0; g < group; g++) smoe_softmax(scores + (size_t)g * max_len, len);
        memset(out, 0, (size_t)group * hd * sizeof(float));
        for (int32_t p = 0; p < len; p++) {
            const float *v = kv_load(s, kv_at(s, s->v, layer, p) + head_off, row, hd);
            for (int32_t g = 0; g < group; g++) {
                const float w = scores[(size_t)g * max_len + p];
                float *o = out + (size_t)g * hd;
                for (int32_t i = 0; i < hd; i++) o[i] += w * v[i];
            }
        }
    }
}

/* ---------------------------------------------------------------------------
 * Feed-forward: mixture of experts (a dense FFN is the one-expert case)
 * ------------------------------------------------------------------------- */

/* Pick the k largest router logits (lower index first on ties) and weight
 * them by a softmax over those k alone, as Mixtral defines. */
static void route(const float *logits, int32_t n_exp, int32_t k, int32_t *sel, float *w) {
    for (int32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int32_t e = 0; e < n_exp; e++) {
            bool taken = false;
            for (int32_t i = 0; i < j; i++) taken |= sel[i] == e;
            if (!taken && (best < 0 || logits[e] > logits[best])) best = e;
        }
        sel[j] = best;
        w[j] = logits[best];
    }
    smoe_softmax(w, k);
}

/* y[rows] += weight * down(silu(gate x) * up x) for the gathered rows. */
static void expert_ffn(smoe_ctx *c, const smoe_layer *l, int32_t e, int32_t cnt) {
    const smoe_hparams *hp = &c->m->hp;
    const int32_t dim = hp->dim, ffn = hp->ffn_dim;
    for (int32_t r = 0; r < cnt; r++)
        memcpy(c->xe + (size_t)r * dim, c->xb + (size_t)c->rows[r] * dim, (size_t)dim * sizeof(float));
    float *const h[2] = {c->h1, c->h3};
    const smoe_matrix *const gu[2] = {&l->gate[e], &l->up[e]};
    smoe_matmul_multi(&c->mm, 2, h, gu, c->xe, cnt);
    smoe_swiglu(c->h1, c->h3, (int64_t)cnt * ffn);
    smoe_matmul_ex(&c->mm, c->ye, &l->down[e], c->h1, cnt);
    for (int32_t r = 0; r < cnt; r++) {
        float *dst = c->ffn_out + (size_t)c->rows[r] * dim;
        const float *src = c->ye + (size_t)r * dim;
        for (int32_t i = 0; i < dim; i++) dst[i] += c->rows_w[r] * src[i];
    }
}

static void feed_forward(smoe_ctx *c, int32_t layer, int32_t n) {
    const smoe_hparams *hp = &c->m->hp;
    const smoe_layer *l = &c->m->layers[layer];
    memset(c->ffn_out, 0, (size_t)n * hp->dim * sizeof(float));
    if (hp->n_experts == 0) {
        for (int32_t t = 0; t < n; t++) { c->rows[t] = t; c->rows_w[t] = 1.0f; }
        expert_ffn(c, l, 0, n);
        return;
    }
    const int32_t k = hp->n_experts_used;
    smoe_matmul_ex(&c->mm, c->router, &l->router, c->xb, n);
    for (int32_t t = 0; t < n; t++) {
        route(c->router + (size_t)t * hp->n_experts, hp->n_experts, k, c->sel + (size_t)t * k, c->sel_w + (size_t)t * k);
        if (c->route_fn) c->route_fn(c->route_user, layer, t, c->sel + (size_t)t * k, c->sel_w + (size_t)t * k, k);
    }
    for (int32_t e = 0; e < hp->n_experts; e++) {
        int32_t cnt = 0;
        for (int32_t t = 0; t < n; t++)
            for (int32_t j = 0; j < k; j++)
                if (c->sel[(size_t)t * k + j] == e) {
                    c->rows[cnt] = t;
                    c->rows_w[cnt++] = c->sel_w[(size_t)t * k + j];
                }
        if (cnt) expert_ffn(c, l, e, cnt);
    }
}

/* ---------------------------------------------------------------------------
 * The whole model
 * ------------------------------------------------------------------------- */

static int check_batch(const smoe_ctx *c, const smoe_batch_entry *e, int32_t n, char *err) {
    const smoe_hparams *hp = &c->m->hp;
    if (n < 0 || n > c->max_batch)
        return smoe_errf(err, "batch of %d entries exceeds this context's maximum of %d", n, c->max_batch);
    for (int32_t t = 0; t < n; t++) {
        if (!e[t].seq) return smoe_errf(err, "batch entry %d has no sequence", t);
        e[t].seq->batch_len = e[t].seq->len;
    }
    for (int32_t t = 0; t < n; t++) {
        smoe_seq *s = e[t].seq;
        if (e[t].token < 0 || e[t].token >= hp->n_vocab)
            return smoe_errf(err, "batch entry %d: token %d is outside the vocabulary (0 to %d)", t, e[t].token,
                             hp->n_vocab - 1);
        if (e[t].pos < 0 || e[t].pos >= s->n_ctx)
            return smoe_errf(err, "batch entry %d: position %d is outside the context (0 to %d)", t, e[t].pos,
                             s->n_ctx - 1);
        if (e[t].pos > s->batch_len)
            return smoe_errf(err, "batch entry %d: position %d skips ahead; the sequence holds %d positions", t,
                             e[t].pos, s->batch_len);
        s->batch_len = e[t].pos + 1;
    }
    return 0;
}

int smoe_forward(smoe_ctx *c, const smoe_batch_entry *e, int32_t n, float *logits, char *err) {
    const smoe_model *m = c->m;
    const smoe_hparams *hp = &m->hp;
    const int32_t dim = hp->dim;
    if (check_batch(c, e, n, err)) return -1;
    int32_t max_len = 1;
    for (int32_t t = 0; t < n; t++) if (e[t].pos + 1 > max_len) max_len = e[t].pos + 1;
    float *scores = malloc((size_t)smoe_max_threads() * attention_scratch(hp, max_len) * sizeof(float));
    if (!scores) return smoe_errf(err, "out of memory for attention scores over %d positions", max_len);

    for (int32_t t = 0; t < n; t++) smoe_matrix_row(&m->tok_embd, e[t].token, c->x + (size_t)t * dim);

    for (int32_t L = 0; L < hp->n_layers; L++) {
        const smoe_layer *l = &m->layers[L];
        for (int32_t t = 0; t < n; t++)
            smoe_rmsnorm(c->xb + (size_t)t * dim, c->x + (size_t)t * dim, l->attn_norm, dim, hp->rms_eps);
        float *const qkv[3] = {c->q, c->k, c->v};
        const smoe_matrix *const wqkv[3] = {&l->wq, &l->wk, &l->wv};
        smoe_matmul_multi(&c->mm, 3, qkv, wqkv, c->xb, n);
        attention(c, L, e, n, scores, max_len);
        smoe_matmul_ex(&c->mm, c->xb, &l->wo, c->att, n);
        for (int64_t i = 0; i < (int64_t)n * dim; i++) c->x[i] += c->xb[i];

        for (int32_t t = 0; t < n; t++)
            smoe_rmsnorm(c->xb + (size_t)t * dim, c->x + (size_t)t * dim, l->ffn_norm, dim, hp->rms_eps);
        feed_forward(c, L, n);
        for (int64_t i = 0; i < (int64_t)n * dim; i++) c->x[i] += c->ffn_out[i];
    }

    free(scores);
    for (int32_t t = 0; t < n; t++) e[t].seq->len = e[t].pos + 1;

    /* final norm and LM head, only for the entries that want logits */
    int32_t cnt = 0;
    for (int32_t t = 0; t < n; t++)
        if (e[t].want_logits)
            smoe_rmsnorm(c->xb + (size_t)cnt++ * dim, c->x + (size_t)t * dim, m->output_norm, dim, hp->rms_eps);
    if (cnt) smoe_matmul_ex(&c->mm, logits, &m->output, c->xb, cnt);
    return 0;
}
