/* simd_avx512.c - matmul kernels for AVX-512 (F, BW, VL, DQ, VNNI): 8-bit
 * products with VPDPBUSD / VPMADDUBSW + VPDPWSSD, 64 weights per register.
 *
 * Compiled with the AVX-512 flags (Makefile) and reached only through
 * smoe_kernels_avx512(), which dispatch.c calls after checking the CPU.
 * The tile loop, the table's shape and the loaders shared with the other
 * paths (the AVX2 helpers too) are in simd.h.
 *
 * Each kernel computes one weight row against up to four activation
 * vectors at once: the row's blocks are unpacked once for all four.  The
 * arithmetic for one vector is the same whatever the number of vectors, so
 * results do not depend on the batch (kernels.h).
 *
 * Weights unpack to unsigned bytes (the 4/5/6-bit levels as stored; Q8
 * weights get +128), the activations are signed, and the offsets come back
 * through the activations' block sums: Q4_0 is d*(q - 8), so its block dot
 * is d*da*(sum q*a - 8*sum a).
 *
 * SMOE_ACT_Q8 has a layout of its own here, in quads of four blocks
 * (q8x_quad below): the levels as VPDPBUSD reads them, and each block's
 * scale and minus its sum once for each of the block's four result lanes
 * (so that minus the sum shifted left by one, in four lanes, is a Q4_0
 * dot's starting value -8 * sum).  SMOE_ACT_Q8K uses the scalar layout. */
#if defined(__x86_64__)
#include <immintrin.h>

#include "simd.h"

ALWAYS __m512i ld512(const void *p) { return _mm512_loadu_si512(p); }
/* 32 bytes at p in both halves of a register */
ALWAYS __m512i bcast256(const void *p) { return _mm512_broadcast_i64x4(ld256(p)); }

/* Index vectors for VPERMW: 32 words from a table of 32 entries. */
typedef struct widx {
    uint16_t w[32];
} widx;

ALWAYS __m512i ldidx(const widx *x) { return _mm512_loadu_si512(x->w); }

/* ---------------------------------------------------------------------------
 * Activations
 * ------------------------------------------------------------------------- */

/* SMOE_ACT_Q8 here: per quad of four blocks (128 elements), 256 bytes:
 * the levels of elements 0-15 of the four blocks, then of elements 16-31,
 * then each block's scale four times and minus its sum four times, as the
 * four result lanes of a block see them.  A short last quad is padded with
 * zeros (zero levels, scales and sums). */
typedef struct q8x_quad {
    int8_t lo[64], hi[64];
    float d[16];
    int32_t ns[16];
} q8x_quad;

/* Levels of 16 floats: v * id rounded to nearest even (VCVTPS2DQ, as the
 * scalar lrintf), clamped to +-127 first so that NaN (an infinite input
 * times a zero scale too) gives -127 as in the scalar quantizer.  The max
 * and min keep the constant when v is NaN (they return their second
 * operand then); for the same reason the absolute maxima above put the
 * running maximum second, so that a NaN input never becomes the maximum. */
ALWAYS __m512i levels16(__m512 v, __m512 id) {
    v = _mm512_max_ps(_mm512_mul_ps(v, id), _mm512_set1_ps(-127.0f));
    return _mm512_cvtps_epi32(_mm512_min_ps(v, _mm512_set1_ps(127.0f)));
}

static size_t q8x_bytes(int64_t cols) { return (size_t)((cols / 32 + 3) / 4) * sizeof(q8x_quad); }

static void q8x_quantize(const float *x, void *dst, int64_t cols) {
    const int64_t nb = cols / 32;
    q8x_quad *qd = dst;
    if (nb % 4) memset(&qd[nb / 4], 0, sizeof *qd);
    for (int64_t b = 0; b < nb; b++) {
        q8x_quad *o = &qd[b / 4];
        const int s = (int)(b % 4);
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const __m512 m = _mm512_max_ps(_mm512_abs_ps(x1), _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps()));
        const float amax = _mm512_reduce_max_ps(m);
        const __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        const __m512i q0 = levels16(x0, id), q1 = levels16(x1, id);
        _mm_storeu_si128((__m128i *)(void *)(o->lo + 16 * s), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(void *)(o->hi + 16 * s), _mm512_cvtsepi32_epi8(q1));
        _mm_storeu_ps(o->d + 4 * s, _mm_set1_ps(amax / 127.0f));
        _mm_storeu_si128((__m128i *)(void *)(o->ns + 4 * s),
                         _mm_set1_epi32(-_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1))));
    }
}

static void q8k_quantize(const float *x, void *dst, int64_t cols) {
    const int64_t nk = cols / 256;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + cols);
    int16_t *bsum = (int16_t *)(void *)(d + nk);
    for (int64_t b = 0; b < nk; b++, x += 256, q += 256) {
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < 16; j++) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * j)), m);
        const float amax = _mm512_reduce_max_ps(m);
        const __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        for (int j = 0; j < 16; j++) {
            const __m512i v = levels16(_mm512_loadu_ps(x + 16 * j), id);
            _mm_storeu_si128((__m128i *)(q + 16 * j), _mm512_cvtsepi32_epi8(v));
            bsum[16 * b + j] = (int16_t)_mm512_reduce_add_epi32(v);
        }
        d[b] = amax / 127.0f;
    }
}

/* ---------------------------------------------------------------------------
 * Float weights: F32, F16, BF16 times float32 activations, 64 columns per
 * step in four accumulators, then 16 at a time, then a masked tail.
 * ------------------------------------------------------------------------- */

ALWAYS __m512 ld_f32w(const uint8_t *w, int64_t c) { return _mm512_loadu_ps((const float *)(const void *)w + c); }
ALWAYS __m512 ld_f16w(const uint8_t *w, int64_t c) { return _mm512_cvtph_ps(ld256(w + 2 * c)); }
ALWAYS __m512 ld_bf16w(const uint8_t *w, int64_t c) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(ld256(w + 2 * c)), 16));
}
ALWAYS __m512 ldm_f32w(const uint8_t *w, int64_t c, __mmask16 k) {
    return _mm512_maskz_loadu_ps(k, (const float *)(const void *)w + c);
}
ALWAYS __m512 ldm_f16w(const uint8_t *w, int64_t c, __mmask16 k) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, w + 2 * c));
}
ALWAYS __m512 ldm_bf16w(const uint8_t *w, int64_t c, __mmask16 k) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, w + 2 * c)), 16));
}

#define FLOAT_ROW(name)                                                                                      \
    ALWAYS void row_##name(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, \
                           float *out, size_t ostride) {                                                     \
        __m512 acc[4][4];                                                                                    \
        FOR_T(acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm512_setzero_ps(););                         \
        int64_t c = 0;                                                                                       \
        for (; c + 64 <= cols; c += 64) {                                                                    \
            const __m512 w0 = ld_##name##w(w, c), w1 = ld_##name##w(w, c + 16);                              \
            const __m512 w2 = ld_##name##w(w, c + 32), w3 = ld_##name##w(w, c + 48);                         \
            FOR_T(const float *x = (const float *)(const void *)(act + (size_t)t * astride) + c;             \
                  acc[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), acc[t][0]);                            \
                  acc[t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), acc[t][1]);                       \
                  acc[t][2] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(x + 32), acc[t][2]);                       \
                  acc[t][3] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(x + 48), acc[t][3]););                     \
        }                                                                                                    \
        for (; c + 16 <= cols; c += 16) {                                                                    \
            const __m512 w0 = ld_##name##w(w, c);                                                            \
            FOR_T(const float *x = (const float *)(const void *)(act + (size_t)t * astride) + c;             \
                  acc[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), acc[t][0]););                          \
        }                                                                                                    \
        if (c < cols) {                                                                                      \
            const __mmask16 k = (__mmask16)((1u << (cols - c)) - 1);                                         \
            const __m512 w0 = ldm_##name##w(w, c, k);                                                        \
            FOR_T(const float *x = (const float *)(const void *)(act + (size_t)t * astride) + c;             \
                  acc[t][1] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(k, x), acc[t][1]););                 \
        }                                                                                                    \
        FOR_T(out[(size_t)t * ostride] = _mm512_reduce_add_ps(                                               \
                  _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]), _mm512_add_ps(acc[t][2], acc[t][3]))););  \
    }

FLOAT_ROW(f32)
FLOAT_ROW(f16)
FLOAT_ROW(bf16)
SIMD_GEMM(gemm_f32, row_f32, 4)
SIMD_GEMM(gemm_f16, row_f16, 4)
SIMD_GEMM(gemm_bf16, row_bf16, 4)

/* ---------------------------------------------------------------------------
 * Blocks of 32, four at a time (a "quad").  The quad's bytes come in as a
 * window of two registers (masked loads: bytes past the row are not read,
 * and a short last quad reads as zeros); VPERMT2W gathers the four blocks'
 * 16 level bytes into one register, whose low nibbles are elements 0-15 of
 * each block and high nibbles elements 16-31 (the activations' quad
 * layout), and gathers the four f16 scales, each repeated for the four
 * result lanes of its block.  Q8_0/Q8_1 (whole bytes) take elements 0-15
 * and 16-31 from two windows 16 bytes apart.
 * ------------------------------------------------------------------------- */

/* words: block s's eight level words (start at word a + s*step), for s < 4 */
#define QWORDS(a, step)                                                                                     \
    {{a, a + 1, a + 2, a + 3, a + 4, a + 5, a + 6, a + 7, a + (step), a + (step) + 1, a + (step) + 2,          \
      a + (step) + 3, a + (step) + 4, a + (step) + 5, a + (step) + 6, a + (step) + 7, a + 2 * (step),          \
      a + 2 * (step) + 1, a + 2 * (step) + 2, a + 2 * (step) + 3, a + 2 * (step) + 4, a + 2 * (step) + 5,      \
      a + 2 * (step) + 6, a + 2 * (step) + 7, a + 3 * (step), a + 3 * (step) + 1, a + 3 * (step) + 2,          \
      a + 3 * (step) + 3, a + 3 * (step) + 4, a + 3 * (step) + 5, a + 3 * (step) + 6, a + 3 * (step) + 7}}
/* words: block s's scale word (a + s*step), four times each */
#define SWORDS(a, step)                                                                                     \
    {{a, a, a, a, a + (step), a + (step), a + (step), a + (step), a + 2 * (step), a + 2 * (step), a + 2 * (step), \
      a + 2 * (step), a + 3 * (step), a + 3 * (step), a + 3 * (step), a + 3 * (step)}}

static const widx q4_0_q = QWORDS(1, 9), q4_0_d = SWORDS(0, 9);
static const widx q4_1_q = QWORDS(2, 10), q4_1_d = SWORDS(0, 10), q4_1_m = SWORDS(1, 10);
static const widx q5_0_q = QWORDS(3, 11), q5_0_d = SWORDS(0, 11);
static const widx q5_1_q = QWORDS(4, 12), q5_1_d = SWORDS(0, 12), q5_1_m = SWORDS(1, 12);
static const widx q8_0_q = QWORDS(1, 17), q8_0_d = SWORDS(0, 17);
static const widx q8_1_q = QWORDS(2, 18), q8_1_d = SWORDS(0, 18);

ALWAYS __mmask64 bytes_mask(int64_t n) {
    return n >= 64 ? ~(__mmask64)0 : n <= 0 ? 0 : ((__mmask64)1 << n) - 1;
}

/* the n bytes at p (n <= 128) as two registers, zeros after */
typedef struct window {
    __m512i a, b;
} window;

ALWAYS window ld_window(const uint8_t *p, int64_t n) {
    window v;
    v.a = _mm512_maskz_loadu_epi8(bytes_mask(n), p);
    v.b = _mm512_maskz_loadu_epi8(bytes_mask(n - 64), p + 64);
    return v;
}

ALWAYS __m512i gather_w(window v, const widx *idx) { return _mm512_permutex2var_epi16(v.a, ldidx(idx), v.b); }

/* four f16 scales, each for four lanes */
ALWAYS __m512 scales16(window v, const widx *idx) {
    return _mm512_cvtph_ps(_mm512_castsi512_si256(gather_w(v, idx)));
}

/* one quad's levels (unsigned bytes, elements 0-15 and 16-31 of each
 * block), scales and, for the min types, mins */
typedef struct quad {
    __m512i lo, hi;
    __m512 d, m;
} quad;

ALWAYS void split_nibbles(quad *q, __m512i x) {
    const __m512i m4 = _mm512_set1_epi8(15);
    q->lo = _mm512_and_si512(x, m4);
    q->hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
}

/* the fifth bits: bit j of block s's qh (a u32 at p + s*B + off) for
 * element j; elements 0-15 go to lo's bytes 16s.., 16-31 to hi's */
ALWAYS void add_fifth_bits(quad *q, const uint8_t *p, int nblk, int B, int off) {
    uint64_t lo = 0, hi = 0;
    for (int s = 0; s < 4; s++) {
        const uint32_t h = s < nblk ? simd_u32(p + s * B + off) : 0;
        lo |= (uint64_t)(h & 0xffff) << (16 * s);
        hi |= (uint64_t)(h >> 16) << (16 * s);
    }
    const __m512i sixteen = _mm512_set1_epi8(16);
    q->lo = _mm512_mask_add_epi8(q->lo, (__mmask64)lo, q->lo, sixteen);
    q->hi = _mm512_mask_add_epi8(q->hi, (__mmask64)hi, q->hi, sixteen);
}

ALWAYS quad ld_q4_0(const uint8_t *p, int nblk) {
    const window v = ld_window(p, 18 * nblk);
    quad q;
    split_nibbles(&q, gather_w(v, &q4_0_q));
    q.d = scales16(v, &q4_0_d);
    return q;
}

ALWAYS quad ld_q4_1(const uint8_t *p, int nblk) {
    const window v = ld_window(p, 20 * nblk);
    quad q;
    split_nibbles(&q, gather_w(v, &q4_1_q));
    q.d = scales16(v, &q4_1_d);
    q.m = scales16(v, &q4_1_m);
    return q;
}

ALWAYS quad ld_q5_0(const uint8_t *p, int nblk) {
    const window v = ld_window(p, 22 * nblk);
    quad q;
    split_nibbles(&q, gather_w(v, &q5_0_q));
    add_fifth_bits(&q, p, nblk, 22, 2);
    q.d = scales16(v, &q5_0_d);
    return q;
}

ALWAYS quad ld_q5_1(const uint8_t *p, int nblk) {
    const window v = ld_window(p, 24 * nblk);
    quad q;
    split_nibbles(&q, gather_w(v, &q5_1_q));
    add_fifth_bits(&q, p, nblk, 24, 4);
    q.d = scales16(v, &q5_1_d);
    q.m = scales16(v, &q5_1_m);
    return q;
}

/* int8 levels + 128: unsigned for VPDPBUSD (the 128 * sum comes off
 * through the activation sums) */
ALWAYS quad ld_q8(const uint8_t *p, int nblk, int B, const widx *qi, const widx *di) {
    const window v = ld_window(p, B * nblk), u = ld_window(p + 16, B * nblk - 16);
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    quad q;
    q.lo = _mm512_xor_si512(gather_w(v, qi), x80);
    q.hi = _mm512_xor_si512(gather_w(u, qi), x80);
    q.d = scales16(v, di);
    return q;
}

ALWAYS quad ld_q8_0(const uint8_t *p, int nblk) { return ld_q8(p, nblk, 34, &q8_0_q, &q8_0_d); }
ALWAYS quad ld_q8_1(const uint8_t *p, int nblk) { return ld_q8(p, nblk, 36, &q8_1_q, &q8_1_d); }

/* Rows of 32-blocks.  SH: the activations' (minus the block sum) lanes
 * shifted left by SH are the offset correction (4 lanes a block: -8*sum
 * is -2*sum a lane, SH 1); MIN: the min types, whose m * da * sum comes
 * from those lanes as floats (4 lanes a block, hence the 1/4).  Quads
 * alternate between two accumulators to shorten the chain of additions. */
#define ROW32(BLOCK, B, SH, MIN)                                                                             \
    ALWAYS void quad_##BLOCK(const int nt, const uint8_t *w, int64_t nb, int64_t j, const uint8_t *act,       \
                             size_t astride, __m512 acc[4][2], __m512 accm[4], const int par) {              \
        const int nblk = nb - 4 * j < 4 ? (int)(nb - 4 * j) : 4;                                             \
        const quad q = ld_##BLOCK(w + (size_t)j * 4 * B, nblk);                                              \
        FOR_T(const q8x_quad *a = (const q8x_quad *)(const void *)(act + (size_t)t * astride) + j;           \
              const __m512 da = _mm512_load_ps(a->d);                                                        \
              const __m512i ns = _mm512_load_si512(a->ns);                                                   \
              __m512i dot = MIN ? _mm512_setzero_si512() : SH ? _mm512_slli_epi32(ns, SH) : ns;              \
              dot = _mm512_dpbusd_epi32(dot, q.lo, _mm512_load_si512(a->lo));                                \
              dot = _mm512_dpbusd_epi32(dot, q.hi, _mm512_load_si512(a->hi));                                \
              acc[t][par] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(q.d, da), acc[t][par]);    \
              if (MIN) accm[t] = _mm512_fmadd_ps(_mm512_mul_ps(q.m, da), _mm512_cvtepi32_ps(ns), accm[t]););  \
    }                                                                                                        \
    ALWAYS void row_##BLOCK(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, \
                            float *out, size_t ostride) {                                                    \
        const int64_t nb = cols / 32, nq = (nb + 3) / 4;                                                     \
        __m512 acc[4][2], accm[4];                                                                           \
        FOR_T(acc[t][0] = acc[t][1] = accm[t] = _mm512_setzero_ps(););                                       \
        int64_t j = 0;                                                                                       \
        for (; j + 2 <= nq; j += 2) {                                                                        \
            quad_##BLOCK(nt, w, nb, j, act, astride, acc, accm, 0);                                          \
            quad_##BLOCK(nt, w, nb, j + 1, act, astride, acc, accm, 1);                                      \
        }                                                                                                    \
        if (j < nq) quad_##BLOCK(nt, w, nb, j, act, astride, acc, accm, 0);                                  \
        FOR_T(float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));                           \
              if (MIN) s -= 0.25f * _mm512_reduce_add_ps(accm[t]);                                           \
              out[(size_t)t * ostride] = s;);                                                                \
    }

ROW32(q4_0, 18, 1, 0)
ROW32(q4_1, 20, 0, 1)
ROW32(q5_0, 22, 2, 0)
ROW32(q5_1, 24, 0, 1)
ROW32(q8_0, 34, 5, 0)
ROW32(q8_1, 36, 5, 0)
SIMD_GEMM(gemm_q4_0, row_q4_0, 4)
SIMD_GEMM(gemm_q4_1, row_q4_1, 4)
SIMD_GEMM(gemm_q5_0, row_q5_0, 4)
SIMD_GEMM(gemm_q5_1, row_q5_1, 4)
SIMD_GEMM(gemm_q8_0, row_q8_0, 4)
SIMD_GEMM(gemm_q8_1, row_q8_1, 4)

/* ---------------------------------------------------------------------------
 * K types against Q8_K activations (scalar layout: q, d per 256, int16
 * sums per 16).  Levels go to unsigned bytes in element order, 64 to a
 * register; VPMADDUBSW makes int16 pairs (at most 63*127*2, no
 * saturation) and VPDPWSSD multiplies them by the sub-block scales, spread
 * over the lanes by VPERMW, into int32 sums per super-block.
 * ------------------------------------------------------------------------- */

/* scales of 16-element sub-blocks: register j (elements 64j..64j+63) pairs
 * word i with sub-block 4j + i/8 */
static const widx sub16_idx[4] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3}},
    {{4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}},
    {{8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11}},
    {{12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15,
      15, 15, 15, 15}},
};
/* scales of 32-element sub-blocks (Q4_K, Q5_K): register g holds
 * sub-blocks 2g and 2g+1 */
static const widx sub32_idx[4] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}},
    {{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}},
    {{6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}},
};
/* the mins (words 8..15) each twice, against the 16 sums of 16 */
static const widx min_dup_idx = {{8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15}};

/* shift counts per 16-bit lane: low half by a, high half by b */
ALWAYS __m512i shifts(short a, short b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(a)), _mm256_set1_epi16(b), 1);
}

/* 2-bit planes (Q2_K, Q3_K): 32 bytes, element 32g + l at bits 2g of byte
 * l; register 0 holds g = 0, 1 and register 1 g = 2, 3 */
ALWAYS void planes2(const uint8_t *p, __m512i *r0, __m512i *r1) {
    const __m512i v = bcast256(p), m3 = _mm512_set1_epi8(3);
    *r0 = _mm512_and_si512(_mm512_srlv_epi16(v, shifts(0, 2)), m3);
    *r1 = _mm512_and_si512(_mm512_srlv_epi16(v, shifts(4, 6)), m3);
}

/* byte mask: bit a of the 32 bytes at p for the low half, bit b for the high */
ALWAYS __mmask64 bits_mask(__m512i v, int a, int b) {
    const __m512i pat = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << a))),
                                           _mm256_set1_epi8((char)(1 << b)), 1);
    return _mm512_test_epi8_mask(v, pat);
}

/* sum over one super-block of the four registers of levels w[] against
 * 256 activations, each pair of products scaled by sc[] */
ALWAYS __m512i kdot(const __m512i *w, const __m512i *sc, const int8_t *q) {
    __m512i i0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(w[0], ld512(q)), sc[0]);
    __m512i i1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(w[1], ld512(q + 64)), sc[1]);
    i0 = _mm512_dpwssd_epi32(i0, _mm512_maddubs_epi16(w[2], ld512(q + 128)), sc[2]);
    i1 = _mm512_dpwssd_epi32(i1, _mm512_maddubs_epi16(w[3], ld512(q + 192)), sc[3]);
    return _mm512_add_epi32(i0, i1);
}

/* Q4_K, Q5_K: the 6-bit scales and mins as words [sc0..7, mn0..7] */
ALWAYS __m256i k4_scales(const uint8_t *p) { return _mm256_cvtepu8_epi16(k4_scale_bytes(p)); }

/* Q4_K and Q5_K rows (QH: Q5_K's fifth bits) */
#define ROW_K4(BLOCK, BYTES, QS, QH)                                                                         \
    ALWAYS void row_##BLOCK(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, \
                            float *out, size_t ostride) {                                                    \
        const int64_t nk = cols / 256;                                                                       \
        const __m512i m4 = _mm512_set1_epi8(15), sh = shifts(0, 4);                                          \
        __m512 acc[4];                                                                                       \
        __m256 accm[4];                                                                                      \
        FOR_T(                                                                                              \
            acc[t] = _mm512_setzero_ps();                                                                    \
            accm[t] = _mm256_setzero_ps();                                                                   \
        );                                                                                                    \
        for (int64_t i = 0; i < nk; i++, w += BYTES) {                                                       \
            const float d = ldf16(w), dmin = ldf16(w + 2);                                                   \
            const __m256i s16 = k4_scales(w + 4);                                                            \
            const __m512i s16z = _mm512_castsi256_si512(s16);                                                \
            const __m256i mn = _mm256_permutexvar_epi16(_mm256_loadu_si256((const __m256i *)min_dup_idx.w), s16); \
            __m512i lv[4], sc[4];                                                                            \
            FOR4(g, lv[g] = _mm512_and_si512(_mm512_srlv_epi16(bcast256(w + QS + 32 * g), sh), m4);          \
                    sc[g] = _mm512_permutexvar_epi16(ldidx(&sub32_idx[g]), s16z););                          \
            if (QH) {                                                                                        \
                const __m512i hv = bcast256(w + 16);                                                         \
                FOR4(g, lv[g] = _mm512_mask_add_epi8(lv[g], bits_mask(hv, 2 * g, 2 * g + 1), lv[g],          \
                                                     _mm512_set1_epi8(16)););                                \
            }                                                                                                \
            FOR_T(                                                                                          \
                const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);                                   \
                const float da = a.d[i];                                                                     \
                const __m512i isum = kdot(lv, sc, a.q + 256 * i);                                            \
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * da), acc[t]);          \
                const __m256i mins = _mm256_madd_epi16(mn, ld256(a.bsum + 16 * i));                          \
                accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin * da), accm[t]);     \
            );                                                                                                \
        }                                                                                                    \
        FOR_T(out[(size_t)t * ostride] = _mm512_reduce_add_ps(acc[t]) - hsum_ps(accm[t]););                    \
    }

ROW_K4(q4_k, 144, 16, 0)
ROW_K4(q5_k, 176, 48, 1)
SIMD_GEMM(gemm_q4_k, row_q4_k, 4)
SIMD_GEMM(gemm_q5_k, row_q5_k, 4)

/* Q6_K: ql at 0, qh at 128, int8 scales at 192, d at 208 */
ALWAYS void row_q6_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    const __m512i sh01 = shifts(0, 2), sh23 = shifts(4, 6);
    __m512 acc[4];
    FOR_T(acc[t] = _mm512_setzero_ps(););
    for (int64_t i = 0; i < nk; i++, w += 210) {
        const float d = ldf16(w + 208);
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
        const __m512i s16z = _mm512_castsi256_si512(s16);
        __m512i lv[4], sc[4];
        FOR4(h, if (h < 2) {
            const __m512i v = ld512(w + 64 * h), hq = bcast256(w + 128 + 32 * h);
            const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            const __m512i h01 = _mm512_slli_epi16(_mm512_srlv_epi16(hq, sh01), 4);
            const __m512i h23 = _mm512_slli_epi16(_mm512_srlv_epi16(hq, sh23), 4);
            lv[2 * h] = _mm512_ternarylogic_epi32(lo, h01, m30, 0xf8); /* lo | (h01 & 0x30) */
            lv[2 * h + 1] = _mm512_ternarylogic_epi32(hi, h23, m30, 0xf8);
        });
        FOR4(j, sc[j] = _mm512_permutexvar_epi16(ldidx(&sub16_idx[j]), s16z););
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            const __m256i corr = _mm256_madd_epi16(s16, ld256(a.bsum + 16 * i)); /* levels are q + 32 */
            const __m512i isum = _mm512_sub_epi32(kdot(lv, sc, a.q + 256 * i),
                                                  _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * a.d[i]), acc[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = _mm512_reduce_add_ps(acc[t]););
}
SIMD_GEMM(gemm_q6_k, row_q6_k, 4)

/* Q3_K: hmask at 0, 2-bit planes at 32, scales at 96, d at 108 */
ALWAYS __m256i k3_scales(const uint8_t *p) { return _mm256_cvtepi8_epi16(k3_scale_bytes(p)); }

ALWAYS void row_q3_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    const __m512i four = _mm512_set1_epi8(4);
    __m512 acc[4];
    FOR_T(acc[t] = _mm512_setzero_ps(););
    for (int64_t i = 0; i < nk; i++, w += 110) {
        const float d = ldf16(w + 108);
        const __m256i s16 = k3_scales(w + 96);
        const __m512i s16z = _mm512_castsi256_si512(s16), hm = bcast256(w);
        __m512i lv[4], sc[4];
        FOR4(h, if (h < 2) {
            planes2(w + 32 + 32 * h, &lv[2 * h], &lv[2 * h + 1]);
            lv[2 * h] = _mm512_mask_add_epi8(lv[2 * h], bits_mask(hm, 4 * h, 4 * h + 1), lv[2 * h], four);
            lv[2 * h + 1] =
                _mm512_mask_add_epi8(lv[2 * h + 1], bits_mask(hm, 4 * h + 2, 4 * h + 3), lv[2 * h + 1], four);
        });
        FOR4(j, sc[j] = _mm512_permutexvar_epi16(ldidx(&sub16_idx[j]), s16z););
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            const __m256i corr = _mm256_madd_epi16(s16, ld256(a.bsum + 16 * i)); /* levels are q + 4 */
            const __m512i isum = _mm512_sub_epi32(kdot(lv, sc, a.q + 256 * i),
                                                  _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 2)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * a.d[i]), acc[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = _mm512_reduce_add_ps(acc[t]););
}
SIMD_GEMM(gemm_q3_k, row_q3_k, 4)

/* Q2_K: scales (low nibble) and mins (high nibble) at 0, planes at 16,
 * d at 80, dmin at 82 */
ALWAYS void row_q2_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    __m512 acc[4];
    __m256 accm[4];
    FOR_T(
        acc[t] = _mm512_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    );
    for (int64_t i = 0; i < nk; i++, w += 84) {
        const float d = ldf16(w + 80), dmin = ldf16(w + 82);
        const __m128i sb = _mm_loadu_si128((const __m128i *)w), m4 = _mm_set1_epi8(15);
        const __m256i s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sb, m4));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4));
        const __m512i s16z = _mm512_castsi256_si512(s16);
        __m512i lv[4], sc[4];
        planes2(w + 16, &lv[0], &lv[1]);
        planes2(w + 48, &lv[2], &lv[3]);
        FOR4(j, sc[j] = _mm512_permutexvar_epi16(ldidx(&sub16_idx[j]), s16z););
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            const float da = a.d[i];
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(kdot(lv, sc, a.q + 256 * i)), _mm512_set1_ps(d * da), acc[t]);
            const __m256i mins = _mm256_madd_epi16(mn16, ld256(a.bsum + 16 * i));
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin * da), accm[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = _mm512_reduce_add_ps(acc[t]) - hsum_ps(accm[t]););
}
SIMD_GEMM(gemm_q2_k, row_q2_k, 4)

/* Q8_K weights: float d at 0, int8 levels at 4 (+128 for VPDPBUSD; the
 * 128 * sum comes off through the activations' sums) */
ALWAYS void row_q8_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    __m512 acc[4];
    FOR_T(acc[t] = _mm512_setzero_ps(););
    for (int64_t i = 0; i < nk; i++, w += 292) {
        const float d = simd_f32(w);
        __m512i lv[4];
        FOR4(j, lv[j] = _mm512_xor_si512(ld512(w + 4 + 64 * j), x80););
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            const int8_t *q = a.q + 256 * i;
            __m512i s = _mm512_sub_epi32(_mm512_setzero_si512(),
                                         _mm512_slli_epi32(_mm512_cvtepi16_epi32(ld256(a.bsum + 16 * i)), 7));
            FOR4(j, s = _mm512_dpbusd_epi32(s, lv[j], ld512(q + 64 * j)););
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * a.d[i]), acc[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = _mm512_reduce_add_ps(acc[t]););
}
SIMD_GEMM(gemm_q8_k, row_q8_k, 4)

/* ---------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------- */

static const smoe_kernels table = SIMD_TABLE("avx512", q8x_bytes, q8x_quantize, smoe_act_q8k_bytes, q8k_quantize,
                                             SIMD_GEMM_NAME, SIMD_GEMM_NAME);

const smoe_kernels *smoe_kernels_avx512(void) { return &table; }

#endif
