/* simd_neon.c - matmul kernels for 64-bit ARM (AArch64 Advanced SIMD):
 * baseline ARMv8-A NEON, and the same kernels built again with the
 * dot-product extension (SDOT), chosen at run time from getauxval(AT_HWCAP).
 *
 * Each kernel computes one weight row against up to four activation
 * vectors at once, so the row's blocks are unpacked once for all four; the
 * arithmetic for one vector is the same whatever the number of vectors, so
 * results do not depend on the batch (kernels.h).
 *
 * Weights unpack to signed bytes holding the level as the scalar reference
 * counts it (Q4_0's q - 8, Q3_K's q with its high bit, Q6_K's q - 32...),
 * so every block's (or sub-block's) integer sum is exactly the scalar
 * path's, and the float arithmetic around it is written in the scalar
 * path's order (C11 mode: no contraction into fused multiply-adds).  The
 * quantized products are therefore bit for bit the scalar path's, with or
 * without SDOT; so are the float ones, whose sixteen partial sums are the
 * lanes of four registers.  The activations use the scalar layouts and
 * quantizers (kernels.h).
 *
 * The file is compiled once by the Makefile and includes itself twice (the
 * part under NEON_VARIANT): once with a dot product built from widening
 * multiplies (SMULL + SADALP), once for ARMv8.2-A with the dot-product
 * extension (`#pragma GCC target`), with SDOT: a CPU that has SDOT
 * implements ARMv8.2-A.  (GCC 12 does not apply a bare "+dotprod" pragma to
 * always_inline functions, hence the named architecture.)  A pragma
 * rather than a build flag: the SDOT copy must be reachable only after the
 * run-time check, and the rest of the file must stay baseline. */
#if defined(__aarch64__)
#ifndef NEON_VARIANT

#include <arm_neon.h>
#include <string.h>
#include <sys/auxv.h>

#include "simd.h"

/* ---------------------------------------------------------------------------
 * Loads and helpers (the common loaders, the tile loop and the table's
 * shape: simd.h)
 * ------------------------------------------------------------------------- */

/* IEEE half at p (any alignment) to float: exact, as the scalar conversion */
ALWAYS float ldh(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

/* x >> n per byte for a shift that may be 0 (the immediate forms take 1-8) */
ALWAYS uint8x16_t shr8(uint8x16_t x, int n) { return vshlq_u8(x, vdupq_n_s8((int8_t)-n)); }

/* Q5_0/Q5_1: 0x10 in byte j where bit j of v is set, j < 16 */
ALWAYS uint8x16_t bit4_of(uint32_t v) {
    static const uint8_t sel[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t b = vcombine_u8(vdup_n_u8((uint8_t)v), vdup_n_u8((uint8_t)(v >> 8)));
    return vandq_u8(vtstq_u8(b, vld1q_u8(sel)), vdupq_n_u8(16));
}

/* sum of mins[s] * bsum pairs for Q4_K/Q5_K: the eight 32-element
 * sub-blocks' activation sums are pairs of the sixteen 16-element ones */
ALWAYS int32_t q4k_min_dot(const uint8_t mn[8], const int16_t *bsum) {
    const int16x8_t pairs = vpaddq_s16(vld1q_s16(bsum), vld1q_s16(bsum + 8));
    const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    return vaddvq_s32(vmlal_high_s16(vmull_s16(vget_low_s16(m), vget_low_s16(pairs)), m, pairs));
}

/* Q2_K: sum of the sixteen mins (high nibbles of the scale bytes) times
 * the 16-element activation sums */
ALWAYS int32_t q2k_min_dot(const uint8_t *scales, const int16_t *bsum) {
    const uint8x16_t s = vshrq_n_u8(vld1q_u8(scales), 4);
    const int16x8_t m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(s)));
    const int16x8_t m1 = vreinterpretq_s16_u16(vmovl_high_u8(s));
    const int16x8_t b0 = vld1q_s16(bsum), b1 = vld1q_s16(bsum + 8);
    int32x4_t acc = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    acc = vmlal_high_s16(acc, m0, b0);
    acc = vmlal_s16(acc, vget_low_s16(m1), vget_low_s16(b1));
    acc = vmlal_high_s16(acc, m1, b1);
    return vaddvq_s32(acc);
}

/* The baseline 16-byte dot product: widening multiplies, pairwise added
 * into the four lanes (which lane gets which products does not matter:
 * the lanes are summed exactly). */
ALWAYS int32x4_t dot_base(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

/* ---------------------------------------------------------------------------
 * Float weights: F32, F16, BF16 times float32 activations.  Sixteen
 * columns a step into four registers whose lanes are the scalar path's
 * sixteen partial sums, multiplied and added separately as it does; the
 * tail and the final sum in its order too.
 * ------------------------------------------------------------------------- */

ALWAYS float32x4_t ld_f32w(const uint8_t *w, int64_t c) { return vreinterpretq_f32_u8(vld1q_u8(w + 4 * c)); }
ALWAYS float32x4_t ld_f16w(const uint8_t *w, int64_t c) {
    return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(w + 2 * c)));
}
ALWAYS float32x4_t ld_bf16w(const uint8_t *w, int64_t c) {
    return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(w + 2 * c)), 16));
}
ALWAYS float el_f32w(const uint8_t *w, int64_t c) { return simd_f32(w + 4 * c); }
ALWAYS float el_f16w(const uint8_t *w, int64_t c) { return ldh(w + 2 * c); }
ALWAYS float el_bf16w(const uint8_t *w, int64_t c) {
    const uint32_t u = (uint32_t)(w[2 * c] | w[2 * c + 1] << 8) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define FLOAT_ROW(name)                                                                                      \
    ALWAYS void row_##name(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, \
                           float *out, size_t ostride) {                                                     \
        float32x4_t acc[4][4];                                                                               \
        const float *x[4];                                                                                   \
        FOR_T(x[t] = (const float *)(const void *)(act + (size_t)t * astride);                               \
              acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = vdupq_n_f32(0.0f););                           \
        int64_t c = 0;                                                                                       \
        for (; c + 16 <= cols; c += 16) {                                                                    \
            const float32x4_t w0 = ld_##name##w(w, c), w1 = ld_##name##w(w, c + 4);                          \
            const float32x4_t w2 = ld_##name##w(w, c + 8), w3 = ld_##name##w(w, c + 12);                     \
            FOR_T(acc[t][0] = vaddq_f32(acc[t][0], vmulq_f32(w0, vld1q_f32(x[t] + c)));                      \
                  acc[t][1] = vaddq_f32(acc[t][1], vmulq_f32(w1, vld1q_f32(x[t] + c + 4)));                  \
                  acc[t][2] = vaddq_f32(acc[t][2], vmulq_f32(w2, vld1q_f32(x[t] + c + 8)));                  \
                  acc[t][3] = vaddq_f32(acc[t][3], vmulq_f32(w3, vld1q_f32(x[t] + c + 12))););               \
        }                                                                                                    \
        FOR_T(float s = 0;                                                                                   \
              for (int64_t i = c; i < cols; i++) s += el_##name##w(w, i) * x[t][i];                          \
              for (int k = 0; k < 4; k++) {                                                                  \
                  float lane[4];                                                                             \
                  vst1q_f32(lane, acc[t][k]);                                                                \
                  s += lane[0]; s += lane[1]; s += lane[2]; s += lane[3];                                    \
              }                                                                                              \
              out[(size_t)t * ostride] = s;);                                                                \
    }

FLOAT_ROW(f32)
FLOAT_ROW(f16)
FLOAT_ROW(bf16)
SIMD_GEMM(gemm_f32, row_f32, 4)
SIMD_GEMM(gemm_f16, row_f16, 4)
SIMD_GEMM(gemm_bf16, row_bf16, 4)

/* ---------------------------------------------------------------------------
 * The quantized kernels, twice
 * ------------------------------------------------------------------------- */

#define NEON_VARIANT 1
#define V(name) name##_base
#define DOT(acc, a, b) dot_base(acc, a, b)
#include "simd_neon.c"
#undef V
#undef DOT

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#define V(name) name##_sdot
#define DOT(acc, a, b) vdotq_s32(acc, a, b)
#include "simd_neon.c"
#pragma GCC pop_options
#undef V
#undef DOT

/* ---------------------------------------------------------------------------
 * The tables and the choice between them
 * ------------------------------------------------------------------------- */

#define NEON_GEMM_BASE(type) gemm_##type##_base
#define NEON_GEMM_SDOT(type) gemm_##type##_sdot
static const smoe_kernels neon_base =
    SIMD_TABLE("neon", smoe_act_q8_bytes, smoe_act_q8_quantize, smoe_act_q8k_bytes, smoe_act_q8k_quantize,
               SIMD_GEMM_NAME, NEON_GEMM_BASE);
static const smoe_kernels neon_sdot =
    SIMD_TABLE("neon", smoe_act_q8_bytes, smoe_act_q8_quantize, smoe_act_q8k_bytes, smoe_act_q8k_quantize,
               SIMD_GEMM_NAME, NEON_GEMM_SDOT);

/* Advanced SIMD is part of every ARMv8-A Linux system, but the kernel
 * says so (HWCAP_ASIMD); SDOT is optional (ARMv8.2, HWCAP_ASIMDDP). */
const smoe_kernels *smoe_kernels_neon(void) {
    const unsigned long hw = getauxval(AT_HWCAP);
    if (!(hw & HWCAP_ASIMD)) return NULL;
    return (hw & HWCAP_ASIMDDP) ? &neon_sdot : &neon_base;
}

#else /* NEON_VARIANT: the quantized kernels, with V() naming and DOT() */

/* ---------------------------------------------------------------------------
 * Blocks of 32 against SMOE_ACT_Q8 (scalar layout: levels, scales, sums).
 * UNPACK sets w0, w1 (the block's 32 levels as signed bytes) and dw (and
 * for the *_1 types mw); TERM is the scalar path's float update of sum[t]
 * from the block's integer dot i, the activation scale da and sum as.
 * ------------------------------------------------------------------------- */

#define Q8_ROW(name, bytes, UNPACK, TERM)                                                                    \
    ALWAYS void V(row_##name)(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act,             \
                              size_t astride, float *out, size_t ostride) {                                 \
        const int64_t nb = cols / 32;                                                                        \
        const int8_t *q[4];                                                                                  \
        const float *d[4];                                                                                   \
        const int32_t *as[4];                                                                                \
        float sum[4] = {0, 0, 0, 0};                                                                         \
        FOR_T(q[t] = (const int8_t *)(act + (size_t)t * astride);                                            \
              d[t] = (const float *)(const void *)(q[t] + cols);                                             \
              as[t] = (const int32_t *)(const void *)(d[t] + nb););                                          \
        (void)as; /* read by the *_1 types only */                                                           \
        for (int64_t b = 0; b < nb; b++, w += bytes) {                                                       \
            UNPACK                                                                                           \
            FOR_T(const int8_t *qa = q[t] + 32 * b;                                                          \
                  const int32x4_t p = DOT(DOT(vdupq_n_s32(0), w0, vld1q_s8(qa)), w1, vld1q_s8(qa + 16));     \
                  const int32_t i = vaddvq_s32(p);                                                           \
                  const float da = d[t][b];                                                                  \
                  TERM);                                                                                     \
        }                                                                                                    \
        FOR_T(out[(size_t)t * ostride] = sum[t];);                                                           \
    }                                                                                                        \
    SIMD_GEMM(V(gemm_##name), V(row_##name), 4)

/* levels of a Q4 block's 16 nibble bytes: low nibbles are elements 0-15 */
#define NIBBLES(qs, off)                                                                                     \
    const uint8x16_t nib = vld1q_u8(qs);                                                                     \
    const int8x16_t w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(nib, vdupq_n_u8(15))), vdupq_n_s8(off));      \
    const int8x16_t w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(nib, 4)), vdupq_n_s8(off));
/* levels of a Q5 block: nibbles plus the fifth bits from qh */
#define FIVE_BITS(qhp, qs, off)                                                                              \
    const uint8x16_t nib = vld1q_u8(qs);                                                                     \
    const uint32_t qh = simd_u32(qhp);                                                                          \
    const uint8x16_t lo = vorrq_u8(vandq_u8(nib, vdupq_n_u8(15)), bit4_of(qh));                              \
    const uint8x16_t hi = vorrq_u8(vshrq_n_u8(nib, 4), bit4_of(qh >> 16));                                   \
    const int8x16_t w0 = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(off));                                 \
    const int8x16_t w1 = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(off));

Q8_ROW(q4_0, 18, const float dw = ldh(w); NIBBLES(w + 2, 8), sum[t] += dw * da * (float)i;)
Q8_ROW(q4_1, 20, const float dw = ldh(w); const float mw = ldh(w + 2); NIBBLES(w + 4, 0),
       sum[t] += dw * da * (float)i + mw * da * (float)as[t][b];)
Q8_ROW(q5_0, 22, const float dw = ldh(w); FIVE_BITS(w + 2, w + 6, 16), sum[t] += dw * da * (float)i;)
Q8_ROW(q5_1, 24, const float dw = ldh(w); const float mw = ldh(w + 2); FIVE_BITS(w + 4, w + 8, 0),
       sum[t] += dw * da * (float)i + mw * da * (float)as[t][b];)
Q8_ROW(q8_0, 34, const float dw = ldh(w); const int8x16_t w0 = vld1q_s8((const int8_t *)(w + 2));
       const int8x16_t w1 = vld1q_s8((const int8_t *)(w + 18));, sum[t] += dw * da * (float)i;)
Q8_ROW(q8_1, 36, const float dw = ldh(w); const int8x16_t w0 = vld1q_s8((const int8_t *)(w + 4));
       const int8x16_t w1 = vld1q_s8((const int8_t *)(w + 20));, sum[t] += dw * da * (float)i;)

/* ---------------------------------------------------------------------------
 * Super-blocks of 256 against SMOE_ACT_Q8K (scalar layout: levels, scales,
 * sums of 16).  Per super-block and vector: an int32x4 of sub-block dots
 * times their integer scales, exact, then the scalar path's float update.
 * ------------------------------------------------------------------------- */

#define K_ROW_BEGIN(name, bytes)                                                                             \
    ALWAYS void V(row_##name)(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act,             \
                              size_t astride, float *out, size_t ostride) {                                 \
        const int64_t nk = cols / 256;                                                                       \
        const int8_t *q[4];                                                                                  \
        const float *d[4];                                                                                   \
        const int16_t *bs[4];                                                                                \
        float sum[4] = {0, 0, 0, 0};                                                                         \
        FOR_T(q[t] = (const int8_t *)(act + (size_t)t * astride);                                            \
              d[t] = (const float *)(const void *)(q[t] + cols);                                             \
              bs[t] = (const int16_t *)(const void *)(d[t] + nk););                                          \
        (void)bs; /* read by the types with mins */                                                          \
        for (int64_t b = 0; b < nk; b++, w += bytes) {                                                       \
            int32x4_t acc[4];                                                                                \
            FOR_T(acc[t] = vdupq_n_s32(0););
#define K_ROW_END(name)                                                                                      \
        }                                                                                                    \
        FOR_T(out[(size_t)t * ostride] = sum[t];);                                                           \
    }                                                                                                        \
    SIMD_GEMM(V(gemm_##name), V(row_##name), 4)

/* acc[t] += sc * (16 levels v . 16 activations at offset k of the block) */
#define K_SUB16(v, k, sc) FOR_T(acc[t] = vmlaq_n_s32(acc[t], DOT(vdupq_n_s32(0), v, vld1q_s8(q[t] + 256 * b + (k))), sc);)
/* the same for 32 levels in two registers */
#define K_SUB32(v0, v1, k, sc)                                                                               \
    FOR_T(const int8_t *qa = q[t] + 256 * b + (k);                                                           \
          acc[t] = vmlaq_n_s32(acc[t], DOT(DOT(vdupq_n_s32(0), v0, vld1q_s8(qa)), v1, vld1q_s8(qa + 16)), sc);)

/* Q2_K: 84 B = scales[16], qs[64], d, dmin; x = d*sc*q - dmin*mn */
K_ROW_BEGIN(q2_k, 84)
for (int h = 0; h < 2; h++) {
    const uint8x16_t p0 = vld1q_u8(w + 16 + 32 * h), p1 = vld1q_u8(w + 32 + 32 * h);
    FOR4(g, const int s = 8 * h + 2 * g;
         const int8x16_t v0 = vreinterpretq_s8_u8(vandq_u8(shr8(p0, 2 * g), vdupq_n_u8(3)));
         const int8x16_t v1 = vreinterpretq_s8_u8(vandq_u8(shr8(p1, 2 * g), vdupq_n_u8(3)));
         K_SUB16(v0, 128 * h + 32 * g, w[s] & 15); K_SUB16(v1, 128 * h + 32 * g + 16, w[s + 1] & 15););
}
FOR_T(const float da = d[t][b]; const int32_t isum = vaddvq_s32(acc[t]);
      const int32_t imin = q2k_min_dot(w, bs[t] + 16 * b);
      sum[t] += ldh(w + 80) * da * (float)isum - ldh(w + 82) * da * (float)imin;);
K_ROW_END(q2_k)

/* Q3_K: 110 B = hmask[32], qs[64], scales[12], d; q = low2 - 4 unless the
 * element's hmask bit is set */
K_ROW_BEGIN(q3_k, 110)
int8_t sc[16];
kb_q3k_scales(w + 96, sc);
const uint8x16_t hm0 = vld1q_u8(w), hm1 = vld1q_u8(w + 16);
for (int h = 0; h < 2; h++) {
    const uint8x16_t p0 = vld1q_u8(w + 32 + 32 * h), p1 = vld1q_u8(w + 48 + 32 * h);
    FOR4(g, const int s = 8 * h + 2 * g;
         const uint8x16_t m = vdupq_n_u8((uint8_t)(1u << (4 * h + g)));
         const uint8x16_t u0 = vorrq_u8(vandq_u8(shr8(p0, 2 * g), vdupq_n_u8(3)), vandq_u8(vtstq_u8(hm0, m), vdupq_n_u8(4)));
         const uint8x16_t u1 = vorrq_u8(vandq_u8(shr8(p1, 2 * g), vdupq_n_u8(3)), vandq_u8(vtstq_u8(hm1, m), vdupq_n_u8(4)));
         const int8x16_t v0 = vsubq_s8(vreinterpretq_s8_u8(u0), vdupq_n_s8(4));
         const int8x16_t v1 = vsubq_s8(vreinterpretq_s8_u8(u1), vdupq_n_s8(4));
         K_SUB16(v0, 128 * h + 32 * g, sc[s]); K_SUB16(v1, 128 * h + 32 * g + 16, sc[s + 1]););
}
FOR_T(const int32_t isum = vaddvq_s32(acc[t]); sum[t] += ldh(w + 108) * d[t][b] * (float)isum;);
K_ROW_END(q3_k)

/* Q4_K: 144 B = d, dmin, scales[12], qs[128]; sub-block s (32 elements) in
 * the low (even s) or high (odd s) nibbles of qs[32*(s/2) ..] */
K_ROW_BEGIN(q4_k, 144)
uint8_t sc[8], mn[8];
kb_q4k_scales(w + 4, sc, mn);
for (int j = 0; j < 4; j++) {
    const uint8x16_t p0 = vld1q_u8(w + 16 + 32 * j), p1 = vld1q_u8(w + 32 + 32 * j);
    const int8x16_t l0 = vreinterpretq_s8_u8(vandq_u8(p0, vdupq_n_u8(15)));
    const int8x16_t l1 = vreinterpretq_s8_u8(vandq_u8(p1, vdupq_n_u8(15)));
    const int8x16_t h0 = vreinterpretq_s8_u8(vshrq_n_u8(p0, 4)), h1 = vreinterpretq_s8_u8(vshrq_n_u8(p1, 4));
    K_SUB32(l0, l1, 64 * j, sc[2 * j]);
    K_SUB32(h0, h1, 64 * j + 32, sc[2 * j + 1]);
}
FOR_T(const float da = d[t][b]; const int32_t isum = vaddvq_s32(acc[t]);
      const int32_t imin = q4k_min_dot(mn, bs[t] + 16 * b);
      sum[t] += ldh(w) * da * (float)isum - ldh(w + 2) * da * (float)imin;);
K_ROW_END(q4_k)

/* Q5_K: 176 B = d, dmin, scales[12], qh[32], qs[128]: Q4_K plus bit s of
 * qh[l] as the fifth bit of element 32s + l */
K_ROW_BEGIN(q5_k, 176)
uint8_t sc[8], mn[8];
kb_q4k_scales(w + 4, sc, mn);
const uint8x16_t qh0 = vld1q_u8(w + 16), qh1 = vld1q_u8(w + 32);
for (int j = 0; j < 4; j++) {
    const uint8x16_t p0 = vld1q_u8(w + 48 + 32 * j), p1 = vld1q_u8(w + 64 + 32 * j);
    const uint8x16_t me = vdupq_n_u8((uint8_t)(1u << (2 * j))), mo = vdupq_n_u8((uint8_t)(2u << (2 * j)));
    const uint8x16_t f = vdupq_n_u8(16);
    const int8x16_t l0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(p0, vdupq_n_u8(15)), vandq_u8(vtstq_u8(qh0, me), f)));
    const int8x16_t l1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(p1, vdupq_n_u8(15)), vandq_u8(vtstq_u8(qh1, me), f)));
    const int8x16_t h0 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(p0, 4), vandq_u8(vtstq_u8(qh0, mo), f)));
    const int8x16_t h1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(p1, 4), vandq_u8(vtstq_u8(qh1, mo), f)));
    K_SUB32(l0, l1, 64 * j, sc[2 * j]);
    K_SUB32(h0, h1, 64 * j + 32, sc[2 * j + 1]);
}
FOR_T(const float da = d[t][b]; const int32_t isum = vaddvq_s32(acc[t]);
      const int32_t imin = q4k_min_dot(mn, bs[t] + 16 * b);
      sum[t] += ldh(w) * da * (float)isum - ldh(w + 2) * da * (float)imin;);
K_ROW_END(q5_k)

/* Q6_K: 210 B = ql[128], qh[64], scales[16] (signed), d; element
 * 128h + 32g + l: low 4 bits in ql[64h + 32(g%2) + l] (high nibble for
 * g >= 2), high 2 bits at bits 2g of qh[32h + l]; q - 32 */
K_ROW_BEGIN(q6_k, 210)
for (int h = 0; h < 2; h++) {
    const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
    const uint8x16_t a0 = vld1q_u8(ql), a1 = vld1q_u8(ql + 16), b0 = vld1q_u8(ql + 32), b1 = vld1q_u8(ql + 48);
    const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
    FOR4(g, const int s = 8 * h + 2 * g;
         const uint8x16_t s0 = (g & 1) ? b0 : a0, s1 = (g & 1) ? b1 : a1;
         const uint8x16_t n0 = g < 2 ? vandq_u8(s0, vdupq_n_u8(15)) : vshrq_n_u8(s0, 4);
         const uint8x16_t n1 = g < 2 ? vandq_u8(s1, vdupq_n_u8(15)) : vshrq_n_u8(s1, 4);
         const uint8x16_t u0 = vorrq_u8(n0, vshlq_n_u8(vandq_u8(shr8(h0, 2 * g), vdupq_n_u8(3)), 4));
         const uint8x16_t u1 = vorrq_u8(n1, vshlq_n_u8(vandq_u8(shr8(h1, 2 * g), vdupq_n_u8(3)), 4));
         const int8x16_t v0 = vsubq_s8(vreinterpretq_s8_u8(u0), vdupq_n_s8(32));
         const int8x16_t v1 = vsubq_s8(vreinterpretq_s8_u8(u1), vdupq_n_s8(32));
         K_SUB16(v0, 128 * h + 32 * g, (int8_t)w[192 + s]); K_SUB16(v1, 128 * h + 32 * g + 16, (int8_t)w[193 + s]););
}
FOR_T(const int32_t isum = vaddvq_s32(acc[t]); sum[t] += ldh(w + 208) * d[t][b] * (float)isum;);
K_ROW_END(q6_k)

/* Q8_K: 292 B = f32 d, i8 qs[256], bsums */
K_ROW_BEGIN(q8_k, 292)
for (int j = 0; j < 256; j += 32) {
    const int8x16_t v0 = vld1q_s8((const int8_t *)(w + 4 + j)), v1 = vld1q_s8((const int8_t *)(w + 20 + j));
    FOR_T(const int8_t *qa = q[t] + 256 * b + j;
          acc[t] = DOT(DOT(acc[t], v0, vld1q_s8(qa)), v1, vld1q_s8(qa + 16)););
}
FOR_T(const int32_t isum = vaddvq_s32(acc[t]); sum[t] += simd_f32(w) * d[t][b] * (float)isum;);
K_ROW_END(q8_k)

#undef Q8_ROW
#undef NIBBLES
#undef FIVE_BITS
#undef K_ROW_BEGIN
#undef K_ROW_END
#undef K_SUB16
#undef K_SUB32

#endif /* NEON_VARIANT */
#endif /* __aarch64__ */
