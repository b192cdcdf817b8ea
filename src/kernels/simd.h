/* simd.h - the scaffolding every kernel table is built on: the per-vector
 * unrolling macros, the tile loop that makes a gemm from a row kernel, the
 * table's shape, and the loaders that are the same on every instruction
 * set (plus, for the two x86 files, the AVX2 helpers both use).
 *
 * A SIMD file (simd_avx2.c, simd_avx512.c, simd_neon.c) writes, per weight
 * type, a row kernel
 *
 *   ALWAYS void row_X(const int nt, int64_t cols, const uint8_t *w,
 *                     const uint8_t *act, size_t astride,
 *                     float *out, size_t ostride)
 *
 * that computes one weight row against nt <= 4 activation vectors (nt a
 * constant in each inlined copy, so that FOR_T unrolls into registers) and
 * writes out[t*ostride]; SIMD_GEMM turns it into the table's gemm and
 * SIMD_TABLE fills the table from the gemms' names.  Everything here is a
 * macro or always_inline, so each file's kernels compile exactly as if
 * written out in it. */
#ifndef SMOE_SIMD_H
#define SMOE_SIMD_H

#include <stdint.h>
#include <string.h>

#include "kblock.h"
#include "kernels.h"

#define ALWAYS static inline __attribute__((always_inline))

/* ---------------------------------------------------------------------------
 * Unrolling
 * ------------------------------------------------------------------------- */

/* The statements once for each vector t < nt, t a constant in each copy,
 * so that per-vector arrays are indexed by constants and live in
 * registers (a loop, even one unrolled by pragma, leaves them in memory). */
#define FOR_T(...)                                                                                           \
    do {                                                                                                     \
        { const int t = 0; if (t < nt) { __VA_ARGS__ } }                                                     \
        { const int t = 1; if (t < nt) { __VA_ARGS__ } }                                                     \
        { const int t = 2; if (t < nt) { __VA_ARGS__ } }                                                     \
        { const int t = 3; if (t < nt) { __VA_ARGS__ } }                                                     \
    } while (0)
/* the same for i = 0..3 (shift counts and table indices must be constants) */
#define FOR4(i, ...)                                                                                         \
    do {                                                                                                     \
        { const int i = 0; __VA_ARGS__ }                                                                     \
        { const int i = 1; __VA_ARGS__ }                                                                     \
        { const int i = 2; __VA_ARGS__ }                                                                     \
        { const int i = 3; __VA_ARGS__ }                                                                     \
    } while (0)

/* ---------------------------------------------------------------------------
 * The tile loop: groups of G vectors (G <= 4), each row of the tile against
 * a group; 3, 2 or 1 left over at the end, each with its own constant
 * count.  The result for a vector does not depend on its group's size
 * (kernels.h), so neither does the split.
 * ------------------------------------------------------------------------- */

#define SIMD_GEMM(gname, row, G)                                                                            \
    static void gname(int64_t cols, const uint8_t *w, size_t wstride, int64_t nr, const void *act,         \
                      size_t astride, int64_t nt, float *out, size_t ostride) {                            \
        const uint8_t *a = act;                                                                             \
        int64_t t = 0;                                                                                      \
        for (; t + G <= nt; t += G)                                                                         \
            for (int64_t r = 0; r < nr; r++)                                                                \
                row(G, cols, w + (size_t)r * wstride, a + (size_t)t * astride, astride,                     \
                    out + (size_t)t * ostride + (size_t)r, ostride);                                        \
        const int64_t left = nt - t;                                                                        \
        a += (size_t)t * astride;                                                                           \
        out += (size_t)t * ostride;                                                                         \
        for (int64_t r = 0; r < nr && left > 0; r++) {                                                      \
            const uint8_t *wr = w + (size_t)r * wstride;                                                    \
            if (left == 3) row(3, cols, wr, a, astride, out + r, ostride);                                  \
            else if (left == 2) row(2, cols, wr, a, astride, out + r, ostride);                             \
            else row(1, cols, wr, a, astride, out + r, ostride);                                            \
        }                                                                                                   \
    }

/* ---------------------------------------------------------------------------
 * The table: its name, the two quantizers (bytes and quantize functions)
 * and one gemm per weight type, named by FG(type) for the float types and
 * QG(type) for the quantized ones (FG(f32), QG(q4_0), ...).
 * ------------------------------------------------------------------------- */

#define SIMD_TABLE(tname, q8_bytes, q8_quantize, q8k_bytes, q8k_quantize, FG, QG)                         \
    {                                                                                                       \
        .name = tname,                                                                                      \
        .act = {[SMOE_ACT_Q8] = {q8_bytes, q8_quantize}, [SMOE_ACT_Q8K] = {q8k_bytes, q8k_quantize}},      \
        .w = {                                                                                              \
            [SMOE_TYPE_F32] = {SMOE_ACT_F32, FG(f32)},                                                      \
            [SMOE_TYPE_F16] = {SMOE_ACT_F32, FG(f16)},                                                      \
            [SMOE_TYPE_BF16] = {SMOE_ACT_F32, FG(bf16)},                                                    \
            [SMOE_TYPE_Q4_0] = {SMOE_ACT_Q8, QG(q4_0)},                                                     \
            [SMOE_TYPE_Q4_1] = {SMOE_ACT_Q8, QG(q4_1)},                                                     \
            [SMOE_TYPE_Q5_0] = {SMOE_ACT_Q8, QG(q5_0)},                                                     \
            [SMOE_TYPE_Q5_1] = {SMOE_ACT_Q8, QG(q5_1)},                                                     \
            [SMOE_TYPE_Q8_0] = {SMOE_ACT_Q8, QG(q8_0)},                                                     \
            [SMOE_TYPE_Q8_1] = {SMOE_ACT_Q8, QG(q8_1)},                                                     \
            [SMOE_TYPE_Q2_K] = {SMOE_ACT_Q8K, QG(q2_k)},                                                    \
            [SMOE_TYPE_Q3_K] = {SMOE_ACT_Q8K, QG(q3_k)},                                                    \
            [SMOE_TYPE_Q4_K] = {SMOE_ACT_Q8K, QG(q4_k)},                                                    \
            [SMOE_TYPE_Q5_K] = {SMOE_ACT_Q8K, QG(q5_k)},                                                    \
            [SMOE_TYPE_Q6_K] = {SMOE_ACT_Q8K, QG(q6_k)},                                                    \
            [SMOE_TYPE_Q8_K] = {SMOE_ACT_Q8K, QG(q8_k)},                                                    \
        },                                                                                                  \
    }
/* the plain naming: gemm_f32, gemm_q4_0, ... */
#define SIMD_GEMM_NAME(type) gemm_##type

/* ---------------------------------------------------------------------------
 * Loaders of any alignment, the same on every instruction set (memcpy
 * compiles to one load)
 * ------------------------------------------------------------------------- */

ALWAYS uint32_t simd_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

ALWAYS float simd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

/* ---------------------------------------------------------------------------
 * x86: what the AVX2 and the AVX-512 files share (both are compiled with
 * at least AVX2, FMA and F16C; see the Makefile)
 * ------------------------------------------------------------------------- */

#if defined(__x86_64__) && defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>

ALWAYS float ldf16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

ALWAYS __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
ALWAYS __m128i ld128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

ALWAYS float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Q4_K, Q5_K: the 6-bit scales and mins of a super-block from its 12
 * scale bytes p, as bytes [sc0..7, mn0..7] */
ALWAYS __m128i k4_scale_bytes(const uint8_t *p) {
    const uint32_t u0 = simd_u32(p), u1 = simd_u32(p + 4), u2 = simd_u32(p + 8);
    const uint32_t sc_lo = u0 & 0x3f3f3f3f, mn_lo = u1 & 0x3f3f3f3f;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0f) | ((u0 >> 6) & 0x03030303) << 4;
    const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 6) & 0x03030303) << 4;
    return _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
}

/* Q3_K: the sixteen signed scales (code - 32) of a super-block from its 12
 * scale bytes p, as bytes */
ALWAYS __m128i k3_scale_bytes(const uint8_t *p) {
    const uint32_t a0 = simd_u32(p), a1 = simd_u32(p + 4), h = simd_u32(p + 8), m = 0x0f0f0f0f, m2 = 0x03030303;
    const uint32_t c0 = (a0 & m) | (h & m2) << 4, c1 = (a1 & m) | ((h >> 2) & m2) << 4;
    const uint32_t c2 = ((a0 >> 4) & m) | ((h >> 4) & m2) << 4, c3 = ((a1 >> 4) & m) | ((h >> 6) & m2) << 4;
    return _mm_sub_epi8(_mm_set_epi32((int)c3, (int)c2, (int)c1, (int)c0), _mm_set1_epi8(32));
}
#endif

#endif
