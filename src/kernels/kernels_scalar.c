/* kernels_scalar.c - the portable kernels: the integer block dot products
 * one element at a time (the reference every SIMD path is tested against,
 * bit for bit), the float dot products, and the "scalar" and "reference"
 * tables.  Layouts: kernels.h. */
#include <string.h>

#include "kblock.h"
#include "kernels.h"
#include "simd.h"

/* ---------------------------------------------------------------------------
 * Dot products: one weight row times one quantized vector.  Each block's
 * integer sum is exact; the float sum runs over blocks in order.
 * ------------------------------------------------------------------------- */

/* 4-bit levels of a Q4_0/Q4_1 block (16 bytes) times 32 activations */
static int32_t dot_nibbles(const uint8_t *qs, const int8_t *a) {
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += (qs[j] & 15) * a[j] + (qs[j] >> 4) * a[j + 16];
    return s;
}

/* 5-bit levels of a Q5_0/Q5_1 block (qh, qs) times 32 activations */
static int32_t dot_q5(const uint8_t *qhp, const uint8_t *qs, const int8_t *a) {
    const uint32_t qh = kb_u32(qhp);
    int32_t s = 0;
    for (int j = 0; j < 16; j++) {
        s += (int32_t)((qs[j] & 15) | ((qh >> j) & 1) << 4) * a[j];
        s += (int32_t)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) * a[j + 16];
    }
    return s;
}

static int32_t dot_i8(const int8_t *w, const int8_t *a, int n) {
    int32_t s = 0;
    for (int j = 0; j < n; j++) s += w[j] * a[j];
    return s;
}

float smoe_vec_dot_q4_0_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = kb_q8_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 18) {
        const int32_t i = dot_nibbles(w + 2, a.q + 32 * b) - 8 * a.sum[b];
        sum += kb_f16(w) * a.d[b] * (float)i;
    }
    return sum;
}

float smoe_vec_dot_q4_1_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = kb_q8_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 20) {
        const int32_t i = dot_nibbles(w + 4, a.q + 32 * b);
        sum += kb_f16(w) * a.d[b] * (float)i + kb_f16(w + 2) * a.d[b] * (float)a.sum[b];
    }
    return sum;
}

float smoe_vec_dot_q5_0_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = kb_q8_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 22) {
        const int32_t i = dot_q5(w + 2, w + 6, a.q + 32 * b) - 16 * a.sum[b];
        sum += kb_f16(w) * a.d[b] * (float)i;
    }
    return sum;
}

float smoe_vec_dot_q5_1_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = kb_q8_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 24) {
        const int32_t i = dot_q5(w + 4, w + 8, a.q + 32 * b);
        sum += kb_f16(w) * a.d[b] * (float)i + kb_f16(w + 2) * a.d[b] * (float)a.sum[b];
    }
    return sum;
}

float smoe_vec_dot_q8_0_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = kb_q8_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 34)
        sum += kb_f16(w) * a.d[b] * (float)dot_i8((const int8_t *)(w + 2), a.q + 32 * b, 32);
    return sum;
}

float smoe_vec_dot_q8_1_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = kb_q8_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 36)
        sum += kb_f16(w) * a.d[b] * (float)dot_i8((const int8_t *)(w + 4), a.q + 32 * b, 32);
    return sum;
}

/* Element k of a super-block's 2-bit planes (Q2_K, Q3_K): byte
 * 32*(k/128) + k%32, bits 2*((k/32)%4). */
static inline int plane2(const uint8_t *qs, int k) { return (qs[32 * (k >> 7) + (k & 31)] >> (2 * ((k >> 5) & 3))) & 3; }

float smoe_vec_dot_q2_k_q8k(int64_t cols, const uint8_t *w, const void *act) {
    const q8kv a = kb_q8k_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += 84) {
        const int8_t *q = a.q + 256 * b;
        int32_t isum = 0, imin = 0;
        for (int s = 0; s < 16; s++) {
            int32_t t = 0;
            for (int l = 0; l < 16; l++) t += plane2(w + 16, 16 * s + l) * q[16 * s + l];
            isum += (w[s] & 15) * t;
            imin += (w[s] >> 4) * a.bsum[16 * b + s];
        }
        sum += kb_f16(w + 80) * a.d[b] * (float)isum - kb_f16(w + 82) * a.d[b] * (float)imin;
    }
    return sum;
}

float smoe_vec_dot_q3_k_q8k(int64_t cols, const uint8_t *w, const void *act) {
    const q8kv a = kb_q8k_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += 110) {
        const int8_t *q = a.q + 256 * b;
        int8_t sc[16];
        kb_q3k_scales(w + 96, sc);
        int32_t isum = 0;
        for (int s = 0; s < 16; s++) {
            int32_t t = 0;
            for (int l = 0; l < 16; l++) {
                const int k = 16 * s + l;
                const int hbit = (w[k & 31] >> (4 * (k >> 7) + ((k >> 5) & 3))) & 1;
                t += (plane2(w + 32, k) - (hbit ? 0 : 4)) * q[k];
            }
            isum += sc[s] * t;
        }
        sum += kb_f16(w + 108) * a.d[b] * (float)isum;
    }
    return sum;
}

float smoe_vec_dot_q4_k_q8k(int64_t cols, const uint8_t *w, const void *act) {
    const q8kv a = kb_q8k_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += 144) {
        const int8_t *q = a.q + 256 * b;
        uint8_t sc[8], mn[8];
        kb_q4k_scales(w + 4, sc, mn);
        int32_t isum = 0, imin = 0;
        for (int s = 0; s < 8; s++) {
            const uint8_t *p = w + 16 + 32 * (s >> 1);
            const int sh = 4 * (s & 1);
            int32_t t = 0;
            for (int l = 0; l < 32; l++) t += ((p[l] >> sh) & 15) * q[32 * s + l];
            isum += sc[s] * t;
            imin += mn[s] * (a.bsum[16 * b + 2 * s] + a.bsum[16 * b + 2 * s + 1]);
        }
        sum += kb_f16(w) * a.d[b] * (float)isum - kb_f16(w + 2) * a.d[b] * (float)imin;
    }
    return sum;
}

float smoe_vec_dot_q5_k_q8k(int64_t cols, const uint8_t *w, const void *act) {
    const q8kv a = kb_q8k_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += 176) {
        const int8_t *q = a.q + 256 * b;
        const uint8_t *qh = w + 16;
        uint8_t sc[8], mn[8];
        kb_q4k_scales(w + 4, sc, mn);
        int32_t isum = 0, imin = 0;
        for (int s = 0; s < 8; s++) {
            const uint8_t *p = w + 48 + 32 * (s >> 1);
            const int sh = 4 * (s & 1);
            int32_t t = 0;
            for (int l = 0; l < 32; l++) t += (((p[l] >> sh) & 15) | ((qh[l] >> s) & 1) << 4) * q[32 * s + l];
            isum += sc[s] * t;
            imin += mn[s] * (a.bsum[16 * b + 2 * s] + a.bsum[16 * b + 2 * s + 1]);
        }
        sum += kb_f16(w) * a.d[b] * (float)isum - kb_f16(w + 2) * a.d[b] * (float)imin;
    }
    return sum;
}

float smoe_vec_dot_q6_k_q8k(int64_t cols, const uint8_t *w, const void *act) {
    const q8kv a = kb_q8k_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += 210) {
        const int8_t *q = a.q + 256 * b;
        int32_t isum = 0;
        for (int s = 0; s < 16; s++) {
            int32_t t = 0;
            for (int l = 0; l < 16; l++) {
                const int k = 16 * s + l;
                const int lo = (w[64 * (k >> 7) + 32 * ((k >> 5) & 1) + (k & 31)] >> (4 * ((k >> 6) & 1))) & 15;
                const int hi = (w[128 + 32 * (k >> 7) + (k & 31)] >> (2 * ((k >> 5) & 3))) & 3;
                t += ((lo | hi << 4) - 32) * q[k];
            }
            isum += (int8_t)w[192 + s] * t;
        }
        sum += kb_f16(w + 208) * a.d[b] * (float)isum;
    }
    return sum;
}

float smoe_vec_dot_q8_k_q8k(int64_t cols, const uint8_t *w, const void *act) {
    const q8kv a = kb_q8k_at(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += 292)
        sum += kb_f32(w) * a.d[b] * (float)dot_i8((const int8_t *)(w + 4), a.q + 256 * b, 256);
    return sum;
}

/* Float weights: sixteen partial sums, as the reference path's dot. */
#define FLOAT_DOT(name, elem_bytes, load)                                               \
    float smoe_vec_dot_##name(int64_t cols, const uint8_t *w, const void *act) {        \
        const float *x = act;                                                           \
        float acc[16] = {0}, s = 0;                                                     \
        int64_t i = 0;                                                                  \
        for (; i + 16 <= cols; i += 16)                                                 \
            for (int j = 0; j < 16; j++) acc[j] += load(w + (i + j) * elem_bytes) * x[i + j]; \
        for (; i < cols; i++) s += load(w + i * elem_bytes) * x[i];                     \
        for (int j = 0; j < 16; j++) s += acc[j];                                       \
        return s;                                                                       \
    }

static inline float load_bf16(const uint8_t *p) {
    uint32_t u = (uint32_t)kb_u16(p) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

FLOAT_DOT(f32, 4, kb_f32)
FLOAT_DOT(f16, 2, kb_f16)
FLOAT_DOT(bf16, 2, load_bf16)

/* ---------------------------------------------------------------------------
 * The scalar table: every tile is a loop of single dot products.
 * ------------------------------------------------------------------------- */

#define SCALAR_GEMM(name, dot)                                                                           \
    static void gemm_##name(int64_t cols, const uint8_t *w, size_t wstride, int64_t nr, const void *act, \
                            size_t astride, int64_t nt, float *out, size_t ostride) {                    \
        for (int64_t t = 0; t < nt; t++)                                                                 \
            for (int64_t r = 0; r < nr; r++)                                                             \
                out[(size_t)t * ostride + (size_t)r] =                                                   \
                    dot(cols, w + (size_t)r * wstride, (const uint8_t *)act + (size_t)t * astride);      \
    }

SCALAR_GEMM(f32, smoe_vec_dot_f32)
SCALAR_GEMM(f16, smoe_vec_dot_f16)
SCALAR_GEMM(bf16, smoe_vec_dot_bf16)
SCALAR_GEMM(q4_0, smoe_vec_dot_q4_0_q8)
SCALAR_GEMM(q4_1, smoe_vec_dot_q4_1_q8)
SCALAR_GEMM(q5_0, smoe_vec_dot_q5_0_q8)
SCALAR_GEMM(q5_1, smoe_vec_dot_q5_1_q8)
SCALAR_GEMM(q8_0, smoe_vec_dot_q8_0_q8)
SCALAR_GEMM(q8_1, smoe_vec_dot_q8_1_q8)
SCALAR_GEMM(q2_k, smoe_vec_dot_q2_k_q8k)
SCALAR_GEMM(q3_k, smoe_vec_dot_q3_k_q8k)
SCALAR_GEMM(q4_k, smoe_vec_dot_q4_k_q8k)
SCALAR_GEMM(q5_k, smoe_vec_dot_q5_k_q8k)
SCALAR_GEMM(q6_k, smoe_vec_dot_q6_k_q8k)
SCALAR_GEMM(q8_k, smoe_vec_dot_q8_k_q8k)

static const smoe_kernels scalar_table = SIMD_TABLE("scalar", smoe_act_q8_bytes, smoe_act_q8_quantize,
                                                    smoe_act_q8k_bytes, smoe_act_q8k_quantize, SIMD_GEMM_NAME,
                                                    SIMD_GEMM_NAME);

/* Every gemm NULL: the matmul dequantizes rows to float32. */
static const smoe_kernels reference_table = {.name = "reference"};

const smoe_kernels *smoe_kernels_reference(void) { return &reference_table; }
const smoe_kernels *smoe_kernels_scalar(void) { return &scalar_table; }

