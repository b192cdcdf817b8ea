/* kernels.c - the portable scalar kernels (the reference every SIMD path is
 * tested against), the activation quantizers in the scalar layout, and the
 * choice of kernel table from the CPU's features.  Layouts: kernels.h. */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "kblock.h"

/* ---------------------------------------------------------------------------
 * Activation quantizers (the scalar layout)
 * ------------------------------------------------------------------------- */

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t smoe_act_q8_bytes(int64_t cols) { return round64((size_t)cols + (size_t)(cols / 32) * 8); }

size_t smoe_act_q8k_bytes(int64_t cols) {
    return round64((size_t)cols + (size_t)(cols / 256) * 4 + (size_t)(cols / 16) * 2);
}

/* The level of v = x * (127 / max|x|): nearest, ties to even (as SIMD
 * conversions round), clamped first so that NaN and overflow stay defined. */
static inline int8_t q8_level(float v) {
    v = v > -127.0f ? v : -127.0f;
    v = v < 127.0f ? v : 127.0f;
    return (int8_t)lrintf(v);
}

static float absmax(const float *x, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

void smoe_act_q8_quantize(const float *x, void *dst, int64_t cols) {
    const int64_t nb = cols / 32;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + cols);
    int32_t *sum = (int32_t *)(void *)(d + nb);
    for (int64_t b = 0; b < nb; b++, x += 32, q += 32) {
        const float amax = absmax(x, 32);
        const float id = amax > 0 ? 127.0f / amax : 0.0f;
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            q[j] = q8_level(x[j] * id);
            s += q[j];
        }
        d[b] = amax / 127.0f;
        sum[b] = s;
    }
}

void smoe_act_q8k_quantize(const float *x, void *dst, int64_t cols) {
    const int64_t nk = cols / 256;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + cols);
    int16_t *bsum = (int16_t *)(void *)(d + nk);
    for (int64_t b = 0; b < nk; b++, x += 256, q += 256) {
        const float amax = absmax(x, 256);
        const float id = amax > 0 ? 127.0f / amax : 0.0f;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) {
                q[16 * g + j] = q8_level(x[16 * g + j] * id);
                s += q[16 * g + j];
            }
            bsum[16 * b + g] = (int16_t)s;
        }
        d[b] = amax / 127.0f;
    }
}

/* ---------------------------------------------------------------------------
 * Dot products: one weight row times one quantized vector.  Each block's
 * integer sum is exact; the float sum runs over blocks in order.
 * ------------------------------------------------------------------------- */

typedef struct q8v {
    const int8_t *q;
    const float *d;
    const int32_t *sum;
} q8v;

static q8v q8_view(const void *act, int64_t cols) {
    q8v v;
    v.q = act;
    v.d = (const float *)(const void *)(v.q + cols);
    v.sum = (const int32_t *)(const void *)(v.d + cols / 32);
    return v;
}

typedef struct q8kv {
    const int8_t *q;
    const float *d;
    const int16_t *bsum;
} q8kv;

static q8kv q8k_view(const void *act, int64_t cols) {
    q8kv v;
    v.q = act;
    v.d = (const float *)(const void *)(v.q + cols);
    v.bsum = (const int16_t *)(const void *)(v.d + cols / 256);
    return v;
}

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
    const q8v a = q8_view(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 18) {
        const int32_t i = dot_nibbles(w + 2, a.q + 32 * b) - 8 * a.sum[b];
        sum += kb_f16(w) * a.d[b] * (float)i;
    }
    return sum;
}

float smoe_vec_dot_q4_1_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = q8_view(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 20) {
        const int32_t i = dot_nibbles(w + 4, a.q + 32 * b);
        sum += kb_f16(w) * a.d[b] * (float)i + kb_f16(w + 2) * a.d[b] * (float)a.sum[b];
    }
    return sum;
}

float smoe_vec_dot_q5_0_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = q8_view(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 22) {
        const int32_t i = dot_q5(w + 2, w + 6, a.q + 32 * b) - 16 * a.sum[b];
        sum += kb_f16(w) * a.d[b] * (float)i;
    }
    return sum;
}

float smoe_vec_dot_q5_1_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = q8_view(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 24) {
        const int32_t i = dot_q5(w + 4, w + 8, a.q + 32 * b);
        sum += kb_f16(w) * a.d[b] * (float)i + kb_f16(w + 2) * a.d[b] * (float)a.sum[b];
    }
    return sum;
}

float smoe_vec_dot_q8_0_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = q8_view(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 34)
        sum += kb_f16(w) * a.d[b] * (float)dot_i8((const int8_t *)(w + 2), a.q + 32 * b, 32);
    return sum;
}

float smoe_vec_dot_q8_1_q8(int64_t cols, const uint8_t *w, const void *act) {
    const q8v a = q8_view(act, cols);
    float sum = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += 36)
        sum += kb_f16(w) * a.d[b] * (float)dot_i8((const int8_t *)(w + 4), a.q + 32 * b, 32);
    return sum;
}

/* Element k of a super-block's 2-bit planes (Q2_K, Q3_K): byte
 * 32*(k/128) + k%32, bits 2*((k/32)%4). */
static inline int plane2(const uint8_t *qs, int k) { return (qs[32 * (k >> 7) + (k & 31)] >> (2 * ((k >> 5) & 3))) & 3; }

float smoe_vec_dot_q2_k_q8k(int64_t cols, const uint8_t *w, const void *act) {
    const q8kv a = q8k_view(act, cols);
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
    const q8kv a = q8k_view(act, cols);
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
    const q8kv a = q8k_view(act, cols);
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
    const q8kv a = q8k_view(act, cols);
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
    const q8kv a = q8k_view(act, cols);
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
    const q8kv a = q8k_view(act, cols);
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

static const smoe_kernels scalar_table = {
    .name = "scalar",
    .act = {[SMOE_ACT_Q8] = {smoe_act_q8_bytes, smoe_act_q8_quantize},
            [SMOE_ACT_Q8K] = {smoe_act_q8k_bytes, smoe_act_q8k_quantize}},
    .w = {
        [SMOE_TYPE_F32] = {SMOE_ACT_F32, gemm_f32},
        [SMOE_TYPE_F16] = {SMOE_ACT_F32, gemm_f16},
        [SMOE_TYPE_BF16] = {SMOE_ACT_F32, gemm_bf16},
        [SMOE_TYPE_Q4_0] = {SMOE_ACT_Q8, gemm_q4_0},
        [SMOE_TYPE_Q4_1] = {SMOE_ACT_Q8, gemm_q4_1},
        [SMOE_TYPE_Q5_0] = {SMOE_ACT_Q8, gemm_q5_0},
        [SMOE_TYPE_Q5_1] = {SMOE_ACT_Q8, gemm_q5_1},
        [SMOE_TYPE_Q8_0] = {SMOE_ACT_Q8, gemm_q8_0},
        [SMOE_TYPE_Q8_1] = {SMOE_ACT_Q8, gemm_q8_1},
        [SMOE_TYPE_Q2_K] = {SMOE_ACT_Q8K, gemm_q2_k},
        [SMOE_TYPE_Q3_K] = {SMOE_ACT_Q8K, gemm_q3_k},
        [SMOE_TYPE_Q4_K] = {SMOE_ACT_Q8K, gemm_q4_k},
        [SMOE_TYPE_Q5_K] = {SMOE_ACT_Q8K, gemm_q5_k},
        [SMOE_TYPE_Q6_K] = {SMOE_ACT_Q8K, gemm_q6_k},
        [SMOE_TYPE_Q8_K] = {SMOE_ACT_Q8K, gemm_q8_k},
    },
};

/* Every gemm NULL: the matmul dequantizes rows to float32. */
static const smoe_kernels reference_table = {.name = "reference"};

const smoe_kernels *smoe_kernels_reference(void) { return &reference_table; }
const smoe_kernels *smoe_kernels_scalar(void) { return &scalar_table; }

/* ---------------------------------------------------------------------------
 * Choice by CPU features
 * ------------------------------------------------------------------------- */

const char *const smoe_kernel_names[] = {"reference", "scalar",
#if defined(__x86_64__)
                                         "avx2", "avx512",
#elif defined(__aarch64__)
                                         "neon",
#endif
                                         NULL};

#if defined(__x86_64__)
/* F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports
 * does not know "f16c", and the fuzz build uses clang. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
}

static int has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}

static int has_avx512(void) {
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16");
}
#endif

const smoe_kernels *smoe_kernels_best(void) {
#if defined(__x86_64__)
    if (has_avx512()) return smoe_kernels_avx512();
    if (has_avx2()) return smoe_kernels_avx2();
#elif defined(__aarch64__)
    const smoe_kernels *k = smoe_kernels_neon();
    if (k) return k;
#endif
    return &scalar_table;
}

const smoe_kernels *smoe_kernels_by_name(const char *name, char *err) {
    if (!strcmp(name, "best")) return smoe_kernels_best();
    if (!strcmp(name, "reference")) return &reference_table;
    if (!strcmp(name, "scalar")) return &scalar_table;
#if defined(__x86_64__)
    if (!strcmp(name, "avx2")) {
        if (has_avx2()) return smoe_kernels_avx2();
        smoe_errf(err, "kernels 'avx2': this CPU lacks AVX2, FMA or F16C");
        return NULL;
    }
    if (!strcmp(name, "avx512")) {
        if (has_avx512()) return smoe_kernels_avx512();
        smoe_errf(err, "kernels 'avx512': this CPU lacks one of AVX-512 F, BW, VL, DQ, VNNI, BF16");
        return NULL;
    }
#elif defined(__aarch64__)
    if (!strcmp(name, "neon")) {
        const smoe_kernels *k = smoe_kernels_neon();
        if (!k) smoe_errf(err, "kernels 'neon': not available on this CPU");
        return k;
    }
#endif
    char list[128] = "";
    for (int i = 0; smoe_kernel_names[i]; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, smoe_kernel_names[i]);
    }
    smoe_errf(err, "unknown kernels '%s' (this build has: best, %s)", name, list);
    return NULL;
}

const smoe_kernels *smoe_kernels_select(char *err) {
    const char *name = getenv("SMOE_KERNELS");
    if (!name || !*name) return smoe_kernels_best();
    const smoe_kernels *k = smoe_kernels_by_name(name, err);
    if (!k && err) {
        char why[SMOE_ERR_SIZE];
        snprintf(why, sizeof why, "%s", err);
        smoe_errf(err, "SMOE_KERNELS: %s", why);
    }
    return k;
}
