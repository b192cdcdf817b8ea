/* quant.c - scalar reference code for the GGUF quantized block formats.
 * The byte layouts are described in quant.h. */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "../base/common.h"

/* ---------------------------------------------------------------------------
 * Bytes
 * ------------------------------------------------------------------------- */

static inline float get_f16(const uint8_t *p) { return smoe_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static inline void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Store v as half precision; return the value actually stored. */
static inline float put_f16(uint8_t *p, float v) {
    uint16_t h = smoe_f32_to_f16(v);
    put_u16(p, h);
    return smoe_f16_to_f32(h);
}

static inline uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline float get_f32(const uint8_t *p) {
    uint32_t u = get_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put_u32(p, u);
}

/* Round to the nearest integer, ties to even, clamped to [lo, hi] (NaN
 * gives lo); clamping first keeps the conversion in range. */
static inline int qround(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (!(v < (float)hi)) return hi;
    return (int)lrintf(v);
}

/* (int)v clamped to [0, hi], as ggml truncates its biased levels; in range
 * it is the plain conversion, and NaN or overflow cannot reach it. */
static inline int trunc_level(float v, int hi) {
    if (!(v > 0)) return 0;
    if (!(v < (float)hi)) return hi;
    return (int)v;
}

/* The element of largest magnitude (the first one on ties), with its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0, v = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            v = x[i];
        }
    }
    return v;
}

/* ---------------------------------------------------------------------------
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1: blocks of 32.
 *
 * The quantizers take the scale from the block's extreme values and round
 * every element on its own, with ggml's arithmetic (truncating x/d + 8.5 and
 * so on), so that the bytes equal those of llama.cpp's reference code.
 * ------------------------------------------------------------------------- */

void smoe_dequantize_row_q4_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += 32, b += 18, dst += 32) {
        const float d = get_f16(b);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)((b[2 + j] & 15) - 8) * d;
            dst[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
    }
}

void smoe_quantize_row_q4_0(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += 32, b += 18, src += 32) {
        const float d = signed_absmax(src, 32) / -8.0f; /* the extreme maps to level -8 */
        const float id = d != 0 ? 1.0f / d : 0.0f;
        put_f16(b, d);
        for (int j = 0; j < 16; j++) {
            const float a = src[j] * id, c = src[j + 16] * id;
            b[2 + j] = (uint8_t)(trunc_level(a + 8.5f, 15) | trunc_level(c + 8.5f, 15) << 4);
        }
    }
}

void smoe_dequantize_row_q4_1(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += 32, b += 20, dst += 32) {
        const float d = get_f16(b), m = get_f16(b + 2);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(b[4 + j] & 15) * d + m;
            dst[j + 16] = (float)(b[4 + j] >> 4) * d + m;
        }
    }
}

static void block_min_max(const float *x, int n, float *lo, float *hi) {
    *lo = *hi = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < *lo) *lo = x[i];
        if (x[i] > *hi) *hi = x[i];
    }
}

void smoe_quantize_row_q4_1(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += 32, b += 20, src += 32) {
        float lo, hi;
        block_min_max(src, 32, &lo, &hi);
        const float d = (hi - lo) / 15.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        put_f16(b, d);
        put_f16(b + 2, lo);
        for (int j = 0; j < 16; j++) {
            const float a = (src[j] - lo) * id, c = (src[j + 16] - lo) * id;
            b[4 + j] = (uint8_t)(trunc_level(a + 0.5f, 15) | trunc_level(c + 0.5f, 15) << 4);
        }
    }
}

/* 5-bit levels: low nibbles like Q4_0, the fifth bits gathered in a u32. */
static void unpack_q5(const uint8_t *qh_bytes, const uint8_t *qs, int *q) {
    const uint32_t qh = get_u32(qh_bytes);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        q[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

static void pack_q5(const int *q, uint8_t *qh_bytes, uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    put_u32(qh_bytes, qh);
}

void smoe_dequantize_row_q5_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    int q[32];
    for (int64_t i = 0; i < n; i += 32, b += 22, dst += 32) {
        const float d = get_f16(b);
        unpack_q5(b + 2, b + 6, q);
        for (int j = 0; j < 32; j++) dst[j] = (float)(q[j] - 16) * d;
    }
}

void smoe_quantize_row_q5_0(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    int q[32];
    for (int64_t i = 0; i < n; i += 32, b += 22, src += 32) {
        const float d = signed_absmax(src, 32) / -16.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        put_f16(b, d);
        for (int j = 0; j < 32; j++) {
            const float a = src[j] * id;
            q[j] = trunc_level(a + 16.5f, 31);
        }
        pack_q5(q, b + 2, b + 6);
    }
}

void smoe_dequantize_row_q5_1(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    int q[32];
    for (int64_t i = 0; i < n; i += 32, b += 24, dst += 32) {
        const float d = get_f16(b), m = get_f16(b + 2);
        unpack_q5(b + 4, b + 8, q);
        for (int j = 0; j < 32; j++) dst[j] = (float)q[j] * d + m;
    }
}

void smoe_quantize_row_q5_1(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    int q[32];
    for (int64_t i = 0; i < n; i += 32, b += 24, src += 32) {
        float lo, hi;
        block_min_max(src, 32, &lo, &hi);
        const float d = (hi - lo) / 31.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        put_f16(b, d);
        put_f16(b + 2, lo);
        for (int j = 0; j < 32; j++) {
            const float a = (src[j] - lo) * id;
            q[j] = trunc_level(a + 0.5f, 31);
        }
        pack_q5(q, b + 4, b + 8);
    }
}

void smoe_dequantize_row_q8_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += 32, b += 34, dst += 32) {
        const float d = get_f16(b);
        for (int j = 0; j < 32; j++) dst[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* The Q8_0 / Q8_1 rounding: d = max|x| / 127, q = x/d rounded half away
 * from zero.  Returns the (unrounded) d and the sum of the levels. */
static float q8_block(const float *x, int8_t *q, int *sum) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    *sum = 0;
    for (int j = 0; j < 32; j++) {
        float v = x[j] * id; /* |v| <= 127 up to rounding; the clamp only guards NaN and overflow */
        v = v > -127.0f ? v : -127.0f;
        v = v < 127.0f ? v : 127.0f;
        q[j] = (int8_t)roundf(v);
        *sum += q[j];
    }
    return d;
}

void smoe_quantize_row_q8_0(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += 32, b += 34, src += 32) {
        int8_t q[32];
        int sum;
        put_f16(b, q8_block(src, q, &sum));
        memcpy(b + 2, q, 32);
    }
}

void smoe_dequantize_row_q8_1(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += 32, b += 36, dst += 32) {
        const float d = get_f16(b); /* b + 2 holds d * sum(q), for dot products */
        for (int j = 0; j < 32; j++) dst[j] = (float)(int8_t)b[4 + j] * d;
    }
}

void smoe_quantize_row_q8_1(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += 32, b += 36, src += 32) {
        int8_t q[32];
        int sum;
        const float d = q8_block(src, q, &sum);
        put_f16(b, d);
        put_f16(b + 2, (float)sum * d);
        memcpy(b + 4, q, 32);
    }
}

/* ---------------------------------------------------------------------------
 * K types: the scale (and min) searches.
 *
 * A sub-block is fitted as x ~ s*q - m (affine: Q2_K, Q4_K, Q5_K; levels
 * 0..nmax, m >= 0 because the format stores the min unsigned and subtracts
 * it) or x ~ s*q (symmetric: Q3_K, Q6_K; levels -k..k-1, s of either sign).
 * Each fit minimises a weighted squared error: it tries a grid of scales
 * around the one that maps the block's range onto the levels, solves least
 * squares for the best scale (and min) given each candidate's levels, and
 * then alternates "round every element to its nearest level" with "least
 * squares for the parameters" while the error keeps falling.
 *
 * The sub-block parameters are then coded as small integers under half-
 * precision super-block scales.  Rounding them independently would throw
 * away the fit, so for each sub-block the codes next to the rounded ones
 * are tried with the real (rounded) scales and the elements re-rounded; the
 * best is kept.  A few super-block scales near "the largest sub-block scale
 * gets the top code" are tried the same way.
 *
 * Levels are kept as floats during the search (exact small integers) so
 * that the inner loops are branch-free and vectorise.
 * ------------------------------------------------------------------------- */

/* Candidate inverse scales: (levels + lo + k*step) / range, k < n. */
typedef struct scale_grid {
    float lo, step;
    int n;
} scale_grid;

/* Error weights for one super-block: sqrt(sigma^2 + x^2), sigma^2 the
 * block's mean square.  Large-magnitude weights count more (they dominate
 * dot products), small ones still count; this also curbs the shrinkage an
 * unweighted least-squares fit gives (the fitted values lose energy, which
 * biases every dot product towards zero). */
static void importance(const float *x, float *w) {
    double ss = 0;
    for (int i = 0; i < SMOE_QK_K; i++) ss += (double)x[i] * x[i];
    const float sigma2 = (float)(ss / SMOE_QK_K);
    for (int i = 0; i < SMOE_QK_K; i++) w[i] = sqrtf(sigma2 + x[i] * x[i]);
}

/* Nearest integer of v, ties to even, for |v| < 2^22: adding 1.5*2^23
 * leaves no fraction bits, so the addition itself rounds. */
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

/* Levels round(v*x[i] + c) clamped to [lo, hi] (NaN-safe: a comparison
 * with NaN takes the clamp). */
static void levels(const float *x, int n, float v, float c, float lo, float hi, float *l) {
    for (int i = 0; i < n; i++) {
        float t = x[i] * v + c;
        t = t > lo ? t : lo;
        t = t < hi ? t : hi;
        l[i] = round_even(t);
    }
}

/* Weighted squared error of x against s*l - m. */
static float sq_error(const float *x, const float *w, const float *l, int n, float s, float m) {
    float acc[8] = {0}; /* n is 16 or 32; eight partial sums vectorise */
    for (int i = 0; i < n; i += 8)
        for (int j = 0; j < 8; j++) {
            const float e = s * l[i + j] - m - x[i + j];
            acc[j] += w[i + j] * e * e;
        }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Nearest levels for x ~ s*l - m, l in 0..nmax; returns the error. */
static float affine_assign(const float *x, const float *w, int n, int nmax, float s, float m, float *l) {
    const float inv = s > 0 ? 1.0f / s : 0.0f;
    levels(x, n, inv, m * inv, 0, (float)nmax, l);
    return sq_error(x, w, l, n, s, m);
}

/* Weighted least squares (s, m) for fixed levels, with m >= 0. */
static void affine_lsq(const float *x, const float *w, const float *l, int n, float *s, float *m) {
    double sw = 0, sl = 0, sll = 0, sx = 0, slx = 0;
    for (int i = 0; i < n; i++) {
        sw += w[i];
        sl += w[i] * l[i];
        sll += w[i] * l[i] * l[i];
        sx += w[i] * x[i];
        slx += w[i] * l[i] * x[i];
    }
    const double det = sw * sll - sl * sl;
    double scale = 0, offset = 0; /* x ~ scale*l + offset, offset = -m */
    if (det > 0) {
        scale = (sw * slx - sl * sx) / det;
        offset = (sll * sx - sl * slx) / det;
    }
    if (det <= 0 || offset > 0) { /* all levels equal, or the best min is positive */
        offset = 0;
        scale = sll > 0 ? slx / sll : 0;
    }
    *s = scale > 0 ? (float)scale : 0.0f;
    *m = (float)-offset;
}

static void fit_affine(const float *x, const float *w, int n, int nmax, const scale_grid *g, float *s_out,
                       float *m_out) {
    float lo, hi;
    block_min_max(x, n, &lo, &hi);
    if (lo > 0) lo = 0; /* the min offset cannot be positive */
    if (!(hi > lo)) {   /* every element equals lo <= 0 */
        *s_out = 0;
        *m_out = -lo;
        return;
    }
    float l[32];
    float best_s = (hi - lo) / (float)nmax, best_m = -lo;
    float best = affine_assign(x, w, n, nmax, best_s, best_m, l);
    for (int k = 0; k < g->n; k++) {
        const float iscale = ((float)nmax + g->lo + (float)k * g->step) / (hi - lo);
        levels(x, n, iscale, -lo * iscale, 0, (float)nmax, l);
        float s, m;
        affine_lsq(x, w, l, n, &s, &m);
        const float e = affine_assign(x, w, n, nmax, s, m, l);
        if (e < best) {
            best = e;
            best_s = s;
            best_m = m;
        }
    }
    for (int it = 0; it < 8; it++) {
        affine_assign(x, w, n, nmax, best_s, best_m, l);
        float s, m;
        affine_lsq(x, w, l, n, &s, &m);
        const float e = affine_assign(x, w, n, nmax, s, m, l);
        if (!(e < best)) break;
        best = e;
        best_s = s;
        best_m = m;
    }
    *s_out = best_s;
    *m_out = best_m;
}

/* One affine super-block of 256: sub-blocks of `sub` elements, levels
 * 0..nmax, scale and min codes 0..cmax under f16 d and dmin. */
typedef struct affine_sb {
    uint16_t d, dmin;       /* f16 bits */
    uint8_t sc[16], mn[16]; /* per sub-block codes */
    uint8_t q[SMOE_QK_K];   /* levels */
} affine_sb;

/* Codes for every sub-block under the f16 scales d and dmin: the scale
 * code next to the rounded one first, then the min code.  Returns the total
 * weighted squared error. */
static float affine_codes(const float *x, const float *w, const float *s, const float *m, int sub, int nmax,
                          int cmax, uint16_t d, uint16_t dmin, affine_sb *o) {
    const int n_sub = SMOE_QK_K / sub;
    const float df = smoe_f16_to_f32(d), mf = smoe_f16_to_f32(dmin);
    float l[32], lb[32], total = 0;
    o->d = d;
    o->dmin = dmin;
    for (int j = 0; j < n_sub; j++) {
        const float *xj = x + j * sub, *wj = w + j * sub;
        int a = df > 0 ? qround(s[j] / df, 0, cmax) : 0;
        int c = mf > 0 ? qround(m[j] / mf, 0, cmax) : 0;
        float best = affine_assign(xj, wj, sub, nmax, df * (float)a, mf * (float)c, lb);
        const int a0 = a, c0 = c;
        for (int t = -1; t <= 1; t += 2) {
            const int at = a0 + t;
            if (at < 0 || at > cmax) continue;
            const float e = affine_assign(xj, wj, sub, nmax, df * (float)at, mf * (float)c, l);
            if (e < best) {
                best = e;
                a = at;
                memcpy(lb, l, sizeof l);
            }
        }
        for (int t = -1; t <= 1; t += 2) {
            const int ct = c0 + t;
            if (ct < 0 || ct > cmax) continue;
            const float e = affine_assign(xj, wj, sub, nmax, df * (float)a, mf * (float)ct, l);
            if (e < best) {
                best = e;
                c = ct;
                memcpy(lb, l, sizeof l);
            }
        }
        o->sc[j] = (uint8_t)a;
        o->mn[j] = (uint8_t)c;
        for (int i = 0; i < sub; i++) o->q[j * sub + i] = (uint8_t)lb[i];
        total += best;
    }
    return total;
}

/* Offsets from the top code tried for the super-block scales. */
static const float super_tries[] = {0.0f, -0.5f, 0.5f};
#define N_SUPER_TRIES ((int)(sizeof super_tries / sizeof *super_tries))

static void quant_affine_sb(const float *x, int sub, int nmax, int cmax, const scale_grid *g, affine_sb *o) {
    const int n_sub = SMOE_QK_K / sub;
    float s[16], m[16], smax = 0, mmax = 0, w[SMOE_QK_K];
    importance(x, w);
    for (int j = 0; j < n_sub; j++) {
        fit_affine(x + j * sub, w + j * sub, sub, nmax, g, &s[j], &m[j]);
        smax = s[j] > smax ? s[j] : smax;
        mmax = m[j] > mmax ? m[j] : mmax;
    }
    /* the largest scale (min) at or near the top code: first the scale, then the min */
    const uint16_t dmin = smoe_f32_to_f16(mmax / (float)cmax);
    float best = INFINITY;
    affine_sb c;
    for (int t = 0; t < (smax > 0 ? N_SUPER_TRIES : 1); t++) {
        const uint16_t d = smoe_f32_to_f16(smax / ((float)cmax + super_tries[t]));
        const float e = affine_codes(x, w, s, m, sub, nmax, cmax, d, dmin, &c);
        if (e < best) {
            best = e;
            *o = c;
        }
    }
    const uint16_t d = o->d;
    for (int t = 1; t < (mmax > 0 ? N_SUPER_TRIES : 1); t++) {
        const uint16_t dm = smoe_f32_to_f16(mmax / ((float)cmax + super_tries[t]));
        const float e = affine_codes(x, w, s, m, sub, nmax, cmax, d, dm, &c);
        if (e < best) {
            best = e;
            *o = c;
        }
    }
}

/* Nearest levels for x ~ s*l, l in -k..k-1; returns the error. */
static float sym_assign(const float *x, const float *w, int n, int k, float s, float *l) {
    levels(x, n, s != 0 ? 1.0f / s : 0.0f, 0, (float)-k, (float)(k - 1), l);
    return sq_error(x, w, l, n, s, 0);
}

static float sym_lsq(const float *x, const float *w, const float *l, int n) {
    double sll = 0, slx = 0;
    for (int i = 0; i < n; i++) {
        sll += w[i] * l[i] * l[i];
        slx += w[i] * l[i] * x[i];
    }
    return sll > 0 ? (float)(slx / sll) : 0.0f;
}

static float fit_symmetric(const float *x, const float *w, int n, int k, const scale_grid *g) {
    const float v = signed_absmax(x, n);
    if (v == 0) return 0;
    float l[32];
    float best_s = v / (float)-k; /* the extreme on the longer side, level -k */
    float best = sym_assign(x, w, n, k, best_s, l);
    for (int c = 0; c < g->n; c++) {
        const float t = g->lo + (float)c * g->step;
        /* the extreme towards level -k, or towards level k-1 */
        const float tries[2] = {v / -((float)k + t), v / ((float)(k - 1) + t)};
        for (int o = 0; o < 2; o++) {
            if (!(fabsf(tries[o]) > 0) || !isfinite(tries[o])) continue;
            sym_assign(x, w, n, k, tries[o], l);
            const float s = sym_lsq(x, w, l, n);
            const float e = sym_assign(x, w, n, k, s, l);
            if (e < best) {
                best = e;
                best_s = s;
            }
        }
    }
    for (int it = 0; it < 8; it++) {
        sym_assign(x, w, n, k, best_s, l);
        const float s = sym_lsq(x, w, l, n);
        const float e = sym_assign(x, w, n, k, s, l);
        if (!(e < best)) break;
        best = e;
        best_s = s;
    }
    return best_s;
}

/* One symmetric super-block of 256: 16 sub-blocks of 16, levels -k..k-1,
 * signed scale codes cmin..cmax under an f16 d. */
typedef struct sym_sb {
    uint16_t d;
    int sc[16];
    int8_t q[SMOE_QK_K];
} sym_sb;

/* Codes for every sub-block under the f16 scale d; returns the total
 * weighted squared error. */
static float sym_codes(const float *x, const float *w, const float *s, int k, int cmin, int cmax, uint16_t d,
                       sym_sb *o) {
    const float df = smoe_f16_to_f32(d);
    float l[16], lb[16], total = 0;
    o->d = d;
    for (int j = 0; j < 16; j++) {
        const float *xj = x + 16 * j, *wj = w + 16 * j;
        const int r = df != 0 ? qround(s[j] / df, cmin, cmax) : 0;
        float best = INFINITY;
        for (int a = r - 1; a <= r + 1; a++) {
            if (a < cmin || a > cmax) continue;
            const float e = sym_assign(xj, wj, 16, k, df * (float)a, l);
            if (e < best) {
                best = e;
                o->sc[j] = a;
                memcpy(lb, l, sizeof l);
            }
        }
        for (int i = 0; i < 16; i++) o->q[16 * j + i] = (int8_t)lb[i];
        total += best;
    }
    return total;
}

static void quant_sym_sb(const float *x, int k, int cmin, int cmax, const scale_grid *g, sym_sb *o) {
    float s[16], w[SMOE_QK_K];
    importance(x, w);
    for (int j = 0; j < 16; j++) s[j] = fit_symmetric(x + 16 * j, w + 16 * j, 16, k, g);
    const float v = signed_absmax(s, 16);
    sym_codes(x, w, s, k, cmin, cmax, 0, o);
    if (v == 0) return;
    float best = INFINITY;
    for (int t = 0; t < N_SUPER_TRIES; t++) {
        /* the largest scale at or near code cmin */
        sym_sb c;
        const float e = sym_codes(x, w, s, k, cmin, cmax, smoe_f32_to_f16(v / ((float)cmin + super_tries[t])), &c);
        if (e < best) {
            best = e;
            *o = c;
        }
    }
}

/* Element k of a super-block in the 2-bit planes of Q2_K / Q3_K: byte
 * 32*(k/128) + k%32, bits 2*((k/32)%4). */
static inline int plane2_byte(int k) { return 32 * (k >> 7) + (k & 31); }
static inline int plane2_shift(int k) { return 2 * ((k >> 5) & 3); }

/* ---------------------------------------------------------------------------
 * Q2_K
 * ------------------------------------------------------------------------- */

void smoe_dequantize_row_q2_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 84, dst += SMOE_QK_K) {
        const uint8_t *sc = b, *qs = b + 16;
        const float d = get_f16(b + 80), dmin = get_f16(b + 82);
        for (int k = 0; k < SMOE_QK_K; k += 16) {
            const float dl = d * (float)(sc[k >> 4] & 15), ml = dmin * (float)(sc[k >> 4] >> 4);
            const uint8_t *p = qs + plane2_byte(k);
            const int sh = plane2_shift(k);
            for (int l = 0; l < 16; l++) dst[k + l] = dl * (float)((p[l] >> sh) & 3) - ml;
        }
    }
}

void smoe_quantize_row_q2_k(const float *src, void *dst, int64_t n) {
    static const scale_grid g = {-0.5f, 0.25f, 5};
    uint8_t *b = dst;
    affine_sb o;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 84, src += SMOE_QK_K) {
        quant_affine_sb(src, 16, 3, 15, &g, &o);
        for (int j = 0; j < 16; j++) b[j] = (uint8_t)(o.sc[j] | o.mn[j] << 4);
        memset(b + 16, 0, 64);
        for (int k = 0; k < SMOE_QK_K; k++) b[16 + plane2_byte(k)] |= (uint8_t)(o.q[k] << plane2_shift(k));
        put_u16(b + 80, o.d);
        put_u16(b + 82, o.dmin);
    }
}

/* ---------------------------------------------------------------------------
 * Q3_K
 * ------------------------------------------------------------------------- */

/* 6-bit code of sub-block s in the 12 scale bytes of Q3_K. */
static inline int q3k_code(const uint8_t *sc, int s) {
    const int low = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4;
    return low | ((sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3) << 4;
}

void smoe_dequantize_row_q3_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 110, dst += SMOE_QK_K) {
        const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
        const float d = get_f16(b + 108);
        for (int k = 0; k < SMOE_QK_K; k += 16) {
            const float dl = d * (float)(q3k_code(sc, k >> 4) - 32);
            const uint8_t *p = qs + plane2_byte(k), *h = hm + (k & 31);
            const int sh = plane2_shift(k), hbit = 4 * (k >> 7) + ((k >> 5) & 3);
            for (int l = 0; l < 16; l++) {
                const int q = ((p[l] >> sh) & 3) - (((h[l] >> hbit) & 1) ? 0 : 4);
                dst[k + l] = dl * (float)q;
            }
        }
    }
}

void smoe_quantize_row_q3_k(const float *src, void *dst, int64_t n) {
    static const scale_grid g = {-0.25f, 0.25f, 4};
    uint8_t *b = dst;
    sym_sb o;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 110, src += SMOE_QK_K) {
        quant_sym_sb(src, 4, -32, 31, &g, &o);
        memset(b, 0, 108);
        for (int s = 0; s < 16; s++) {
            const int c = o.sc[s] + 32;
            b[96 + (s & 7)] |= (uint8_t)((c & 15) << (s < 8 ? 0 : 4));
            b[96 + 8 + (s & 3)] |= (uint8_t)((c >> 4) << (2 * (s >> 2)));
        }
        for (int k = 0; k < SMOE_QK_K; k++) {
            const int u = o.q[k] + 4; /* 0..7: low two bits and the high bit */
            b[32 + plane2_byte(k)] |= (uint8_t)((u & 3) << plane2_shift(k));
            b[k & 31] |= (uint8_t)((u >> 2) << (4 * (k >> 7) + ((k >> 5) & 3)));
        }
        put_u16(b + 108, o.d);
    }
}

/* ---------------------------------------------------------------------------
 * Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins.
 * ------------------------------------------------------------------------- */

static inline void k4_scale_min(const uint8_t *p, int s, int *sc, int *mn) {
    if (s < 4) {
        *sc = p[s] & 63;
        *mn = p[s + 4] & 63;
    } else {
        *sc = (p[s + 4] & 15) | (p[s - 4] >> 6) << 4;
        *mn = (p[s + 4] >> 4) | (p[s] >> 6) << 4;
    }
}

static void k4_pack_scales(const uint8_t *sc, const uint8_t *mn, uint8_t *p) {
    for (int s = 0; s < 4; s++) {
        const int t = s + 4;
        p[s] = (uint8_t)(sc[s] | (sc[t] >> 4) << 6);
        p[s + 4] = (uint8_t)(mn[s] | (mn[t] >> 4) << 6);
        p[s + 8] = (uint8_t)((sc[t] & 15) | (mn[t] & 15) << 4);
    }
}

void smoe_dequantize_row_q4_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 144, dst += SMOE_QK_K) {
        const float d = get_f16(b), dmin = get_f16(b + 2);
        for (int s = 0; s < 8; s++) {
            int sc, mn;
            k4_scale_min(b + 4, s, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            const uint8_t *p = b + 16 + 32 * (s >> 1);
            const int sh = 4 * (s & 1);
            for (int l = 0; l < 32; l++) dst[32 * s + l] = dl * (float)((p[l] >> sh) & 15) - ml;
        }
    }
}

void smoe_quantize_row_q4_k(const float *src, void *dst, int64_t n) {
    static const scale_grid g = {-1.0f, 0.5f, 5};
    uint8_t *b = dst;
    affine_sb o;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 144, src += SMOE_QK_K) {
        quant_affine_sb(src, 32, 15, 63, &g, &o);
        put_u16(b, o.d);
        put_u16(b + 2, o.dmin);
        k4_pack_scales(o.sc, o.mn, b + 4);
        for (int s = 0; s < 8; s += 2)
            for (int l = 0; l < 32; l++)
                b[16 + 16 * s + l] = (uint8_t)(o.q[32 * s + l] | o.q[32 * (s + 1) + l] << 4);
    }
}

void smoe_dequantize_row_q5_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 176, dst += SMOE_QK_K) {
        const float d = get_f16(b), dmin = get_f16(b + 2);
        const uint8_t *qh = b + 16;
        for (int s = 0; s < 8; s++) {
            int sc, mn;
            k4_scale_min(b + 4, s, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            const uint8_t *p = b + 48 + 32 * (s >> 1);
            const int sh = 4 * (s & 1);
            for (int l = 0; l < 32; l++) {
                const int q = ((p[l] >> sh) & 15) | ((qh[l] >> s) & 1) << 4;
                dst[32 * s + l] = dl * (float)q - ml;
            }
        }
    }
}

void smoe_quantize_row_q5_k(const float *src, void *dst, int64_t n) {
    static const scale_grid g = {-1.0f, 0.5f, 5};
    uint8_t *b = dst;
    affine_sb o;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 176, src += SMOE_QK_K) {
        quant_affine_sb(src, 32, 31, 63, &g, &o);
        put_u16(b, o.d);
        put_u16(b + 2, o.dmin);
        k4_pack_scales(o.sc, o.mn, b + 4);
        memset(b + 16, 0, 32);
        for (int s = 0; s < 8; s++)
            for (int l = 0; l < 32; l++) b[16 + l] |= (uint8_t)((o.q[32 * s + l] >> 4) << s);
        for (int s = 0; s < 8; s += 2)
            for (int l = 0; l < 32; l++)
                b[48 + 16 * s + l] = (uint8_t)((o.q[32 * s + l] & 15) | (o.q[32 * (s + 1) + l] & 15) << 4);
    }
}

/* ---------------------------------------------------------------------------
 * Q6_K
 * ------------------------------------------------------------------------- */

/* Element k of a Q6_K super-block: its byte in ql with the nibble shift,
 * and its byte in qh with the 2-bit shift. */
static inline int q6_lo_byte(int k) { return 64 * (k >> 7) + 32 * ((k >> 5) & 1) + (k & 31); }
static inline int q6_lo_shift(int k) { return 4 * ((k >> 6) & 1); }
static inline int q6_hi_byte(int k) { return 128 + 32 * (k >> 7) + (k & 31); }
static inline int q6_hi_shift(int k) { return 2 * ((k >> 5) & 3); }

void smoe_dequantize_row_q6_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 210, dst += SMOE_QK_K) {
        const float d = get_f16(b + 208);
        for (int k = 0; k < SMOE_QK_K; k += 16) {
            const float dl = d * (float)(int8_t)b[192 + (k >> 4)];
            const uint8_t *lo = b + q6_lo_byte(k), *hi = b + q6_hi_byte(k);
            const int ls = q6_lo_shift(k), hs = q6_hi_shift(k);
            for (int l = 0; l < 16; l++) {
                const int q = (((lo[l] >> ls) & 15) | ((hi[l] >> hs) & 3) << 4) - 32;
                dst[k + l] = dl * (float)q;
            }
        }
    }
}

void smoe_quantize_row_q6_k(const float *src, void *dst, int64_t n) {
    static const scale_grid g = {-1.0f, 0.5f, 5};
    uint8_t *b = dst;
    sym_sb o;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 210, src += SMOE_QK_K) {
        quant_sym_sb(src, 32, -128, 127, &g, &o);
        memset(b, 0, 192);
        for (int k = 0; k < SMOE_QK_K; k++) {
            const int u = o.q[k] + 32; /* 0..63 */
            b[q6_lo_byte(k)] |= (uint8_t)((u & 15) << q6_lo_shift(k));
            b[q6_hi_byte(k)] |= (uint8_t)((u >> 4) << q6_hi_shift(k));
        }
        for (int s = 0; s < 16; s++) b[192 + s] = (uint8_t)(int8_t)o.sc[s];
        put_u16(b + 208, o.d);
    }
}

/* ---------------------------------------------------------------------------
 * Q8_K: float d, 256 int8 levels, int16 sums of each 16.  The quantizer is
 * ggml's: the extreme element maps to level -127 (d takes its sign).
 * ------------------------------------------------------------------------- */

void smoe_dequantize_row_q8_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 292, dst += SMOE_QK_K) {
        const float d = get_f32(b);
        for (int k = 0; k < SMOE_QK_K; k++) dst[k] = d * (float)(int8_t)b[4 + k];
    }
}

void smoe_quantize_row_q8_k(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += SMOE_QK_K, b += 292, src += SMOE_QK_K) {
        const float v = signed_absmax(src, SMOE_QK_K);
        memset(b, 0, 292);
        if (v == 0) continue; /* d = 0, all levels and sums 0 */
        const float iscale = -127.0f / v;
        for (int k = 0; k < SMOE_QK_K; k++) b[4 + k] = (uint8_t)(int8_t)qround(iscale * src[k], -128, 127);
        for (int s = 0; s < 16; s++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += (int8_t)b[4 + 16 * s + l];
            put_u16(b + 260 + 2 * s, (uint16_t)(int16_t)sum);
        }
        put_f32(b, 1.0f / iscale);
    }
}
