/* sampler.c - penalties, truncation (top-k, top-p, min-p), temperature and
 * a seeded draw. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct smoe_sampler {
    smoe_sampler_params p;
    smoe_logit_bias *bias;
    int32_t n_vocab;
    uint64_t rng[2];
    int32_t *hist;     /* ring of the last `window` tokens */
    int32_t window, hist_n, hist_cap, hist_pos;
    int32_t *count;    /* occurrences of each token in the window */
    cand *cands;       /* scratch: n_vocab candidates */
};

void smoe_sampler_defaults(smoe_sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
}

int smoe_sampler_check(const smoe_sampler_params *p, int32_t n_vocab, char *err) {
    if (!(p->temperature >= 0 && p->temperature <= 100))
        return smoe_errf(err, "temperature %g is out of range (0 to 100; 0 means greedy)", p->temperature);
    if (p->top_k < 0) return smoe_errf(err, "top_k %d is negative (0 turns it off)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return smoe_errf(err, "top_p %g is out of range (above 0, at most 1)", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1)) return smoe_errf(err, "min_p %g is out of range (0 to 1)", p->min_p);
    if (!(p->repeat_penalty > 0 && p->repeat_penalty <= 10))
        return smoe_errf(err, "repeat_penalty %g is out of range (above 0, at most 10; 1 turns it off)", p->repeat_penalty);
    if (p->repeat_last_n < -1 || p->repeat_last_n > (1 << 24))
        return smoe_errf(err, "repeat_last_n %d is out of range (-1 for all, 0 off, up to 16777216)", p->repeat_last_n);
    if (!(p->presence_penalty >= -2 && p->presence_penalty <= 2))
        return smoe_errf(err, "presence_penalty %g is out of range (-2 to 2)", p->presence_penalty);
    if (!(p->frequency_penalty >= -2 && p->frequency_penalty <= 2))
        return smoe_errf(err, "frequency_penalty %g is out of range (-2 to 2)", p->frequency_penalty);
    if (p->n_bias < 0) return smoe_errf(err, "logit bias count is negative");
    for (int32_t i = 0; i < p->n_bias; i++) {
        if (p->bias[i].token < 0 || p->bias[i].token >= n_vocab)
            return smoe_errf(err, "logit_bias: token %d is outside the vocabulary (0 to %d)", p->bias[i].token,
                             n_vocab - 1);
        if (isnan(p->bias[i].bias) || p->bias[i].bias == INFINITY)
            return smoe_errf(err, "logit_bias: the bias of token %d is not a number or +infinity", p->bias[i].token);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Random numbers: xoroshiro128+ seeded through splitmix64.
 * ------------------------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* uniform in [0, 1) with 53 random bits */
static double next_double(uint64_t s[2]) {
    uint64_t s0 = s[0], s1 = s[1], r = s0 + s1;
    s1 ^= s0;
    s[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
    s[1] = rotl(s1, 37);
    return (double)(r >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------- */

smoe_sampler *smoe_sampler_new(const smoe_sampler_params *p, int32_t n_vocab, char *err) {
    if (smoe_sampler_check(p, n_vocab, err)) return NULL;
    smoe_sampler *s = calloc(1, sizeof *s);
    if (!s) { smoe_errf(err, "out of memory"); return NULL; }
    s->p = *p;
    s->n_vocab = n_vocab;
    s->window = p->repeat_last_n < 0 ? (1 << 24) : p->repeat_last_n;
    s->bias = p->n_bias ? malloc((size_t)p->n_bias * sizeof *s->bias) : NULL;
    s->count = calloc((size_t)n_vocab, sizeof *s->count);
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    /* the ring grows on demand up to the window: an "all tokens" window
     * must not cost 64 MiB up front */
    if ((p->n_bias && !s->bias) || !s->count || !s->cands) {
        smoe_errf(err, "out of memory");
        smoe_sampler_free(s);
        return NULL;
    }
    if (p->n_bias) memcpy(s->bias, p->bias, (size_t)p->n_bias * sizeof *s->bias);
    s->p.bias = s->bias;
    smoe_sampler_reset(s);
    return s;
}

void smoe_sampler_free(smoe_sampler *s) {
    if (!s) return;
    free(s->bias);
    free(s->hist);
    free(s->count);
    free(s->cands);
    free(s);
}

void smoe_sampler_reset(smoe_sampler *s) {
    uint64_t x = s->p.seed;
    s->rng[0] = smoe_splitmix64(&x);
    s->rng[1] = smoe_splitmix64(&x);
    memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
    s->hist_n = s->hist_pos = 0;
}

/* ---------------------------------------------------------------------------
 * History for the penalties
 * ------------------------------------------------------------------------- */

void smoe_sampler_accept(smoe_sampler *s, int32_t token) {
    if (s->window == 0 || token < 0 || token >= s->n_vocab) return;
    if (s->hist_n < s->window) {
        /* grow the ring (still unwrapped while hist_n < window) */
        if (s->hist_n == s->hist_cap) {
            int32_t cap = s->hist_cap ? s->hist_cap * 2 : 64;
            if (cap > s->window) cap = s->window;
            int32_t *h = realloc(s->hist, (size_t)cap * sizeof *h);
            if (!h) return; /* penalties then see a shorter history */
            s->hist = h;
            s->hist_cap = cap;
        }
        s->hist[s->hist_n++] = token;
        s->count[token]++;
        return;
    }
    int32_t old = s->hist[s->hist_pos];
    s->count[old]--;
    s->hist[s->hist_pos] = token;
    s->count[token]++;
    s->hist_pos = (s->hist_pos + 1) % s->window;
}

/* Each distinct token of the window once: its count is negated while it is
 * being visited and restored afterwards, so the pass stays linear. */
static void apply_penalties(smoe_sampler *s, float *logits) {
    const smoe_sampler_params *p = &s->p;
    if (p->repeat_penalty == 1 && p->presence_penalty == 0 && p->frequency_penalty == 0) return;
    for (int32_t i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i], c = s->count[t];
        if (c <= 0) continue;
        float l = logits[t];
        l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (float)c * p->frequency_penalty + p->presence_penalty;
        logits[t] = l;
        s->count[t] = -c;
    }
    for (int32_t i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i];
        if (s->count[t] < 0) s->count[t] = -s->count[t];
    }
}

/* ---------------------------------------------------------------------------
 * Truncation without a full sort
 * ------------------------------------------------------------------------- */

/* min-heap on logit of the k best candidates */
static void sift_down(cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].logit < h[m].logit) m = l;
        if (r < n && h[r].logit < h[m].logit) m = r;
        if (m == i) return;
        cand t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static int cmp_cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id; /* deterministic order among equals */
}

/* Move the k largest of c[0..n) to the front, sorted descending. */
static void select_top(cand *c, int32_t n, int32_t k) {
    if (k >= n) { qsort(c, (size_t)n, sizeof *c, cmp_cand_desc); return; }
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (c[i].logit > c[0].logit || (c[i].logit == c[0].logit && c[i].id < c[0].id)) {
            cand t = c[0]; c[0] = c[i]; c[i] = t;
            sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cmp_cand_desc);
}

/* Number of leading candidates (sorted) whose probability mass reaches p;
 * grows the sorted prefix geometrically so a peaked distribution never
 * sorts more than a few hundred entries. */
static int32_t top_p_count(cand *c, int32_t n, float p, float max_logit, double total) {
    int32_t sorted = n < 64 ? n : 64;
    select_top(c, n, sorted);
    for (;;) {
        double cum = 0;
        for (int32_t i = 0; i < sorted; i++) {
            cum += exp((double)c[i].logit - max_logit) / total;
            if (cum >= p) return i + 1;
        }
        if (sorted == n) return n;
        sorted = sorted * 4 < n ? sorted * 4 : n;
        select_top(c, n, sorted);
    }
}

/* ---------------------------------------------------------------------------
 * Sampling
 * ------------------------------------------------------------------------- */

int32_t smoe_sampler_sample(smoe_sampler *s, float *logits) {
    const smoe_sampler_params *p = &s->p;
    const int32_t V = s->n_vocab;
    for (int32_t i = 0; i < p->n_bias; i++) logits[p->bias[i].token] += p->bias[i].bias;
    apply_penalties(s, logits);

    if (p->temperature == 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    cand *c = s->cands;
    int32_t n = 0;
    float mx = -INFINITY;
    for (int32_t i = 0; i < V; i++) {
        if (logits[i] == -INFINITY) continue; /* banned */
        c[n++] = (cand){logits[i], i};
        if (logits[i] > mx) mx = logits[i];
    }
    if (n == 0) return 0; /* everything banned: nothing sensible left */
    if (p->top_k > 0 && p->top_k < n) {
        select_top(c, n, p->top_k);
        n = p->top_k;
    }
    if (p->top_p < 1) {
        double total = 0;
        for (int32_t i = 0; i < n; i++) total += exp((double)c[i].logit - mx);
        n = top_p_count(c, n, p->top_p, mx, total);
    }
    if (p->min_p > 0) {
        /* keep candidates with probability >= min_p * the best's */
        float cut = mx + logf(p->min_p);
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++) if (c[i].logit >= cut) c[m++] = c[i];
        n = m;
    }
    /* temperature, then a draw in candidate order (deterministic) */
    double total = 0;
    for (int32_t i = 0; i < n; i++) total += exp(((double)c[i].logit - mx) / p->temperature);
    double r = next_double(s->rng) * total, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += exp(((double)c[i].logit - mx) / p->temperature);
        if (r < cum) return c[i].id;
    }
    return c[n - 1].id;
}

int32_t smoe_sampler_sample_masked(smoe_sampler *s, float *logits, const uint64_t *allowed) {
    const int32_t V = s->n_vocab;
    if (allowed) {
        for (int32_t w = 0; w * 64 < V; w++) {
            uint64_t bits = allowed[w];
            if (bits == ~0ull) continue;
            int32_t end = w * 64 + 64 < V ? w * 64 + 64 : V;
            for (int32_t i = w * 64; i < end; i++)
                if (!((bits >> (i & 63)) & 1)) logits[i] = -INFINITY;
        }
    }
    int32_t t = smoe_sampler_sample(s, logits);
    if (t < 0 || t >= V || logits[t] == -INFINITY) return -1;
    if (allowed && !((allowed[t >> 6] >> (t & 63)) & 1)) return -1;
    return t;
}
