/* simd_avx2.c - matmul kernels for AVX2 with FMA and F16C: 8-bit products
 * with VPMADDUBSW (unsigned weight levels times signed activations, pairs
 * summed to 16 bits) and VPMADDWD (pairs to 32 bits, times ones or the
 * sub-block scales), 32 weights per register.
 *
 * Compiled with the AVX2 flags (Makefile) and reached only through
 * smoe_kernels_avx2(), which dispatch.c calls after checking the CPU.
 * The tile loop, the table's shape and the loaders shared with the other
 * paths are in simd.h.
 *
 * Activations use the scalar layouts (kernels.h); the quantizers here are
 * vectorised and write the same bytes as the scalar ones.
 *
 * Each kernel computes one weight row against up to four activation
 * vectors at once (two for the float types): the row's blocks are unpacked
 * once for all of them.  The arithmetic for one vector is the same whatever
 * the number of vectors, so results do not depend on the tile (kernels.h).
 *
 * Integer sums are exact: weights unpack to unsigned levels as stored (Q8
 * weights go through the sign trick), and the offsets (Q4_0's -8, Q6_K's
 * -32, ...) come back through the activations' block sums.  No VPMADDUBSW
 * pair can saturate: the largest is 2 * 63 * 127 (Q6_K) or 2 * 128 * 127
 * (Q8 weights of -128). */
#if defined(__x86_64__)
#include <immintrin.h>

#include "simd.h"

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

ALWAYS int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* unsigned bytes u times signed bytes s, summed in fours to int32 */
ALWAYS __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* signed bytes w times signed bytes a (w may be -128: |w| reads as 128) */
ALWAYS __m256i dot_ss(__m256i w, __m256i a) { return dot_us(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w)); }

/* unsigned bytes u times signed bytes s, pairs summed and scaled by the
 * 16-bit words sc, then summed in pairs to int32 */
ALWAYS __m256i dot_us_scaled(__m256i u, __m256i s, __m256i sc) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc);
}

/* int32 x in lane 0, zeros above */
ALWAYS __m256i lane0(int32_t x) { return _mm256_zextsi128_si256(_mm_cvtsi32_si128(x)); }

/* ---------------------------------------------------------------------------
 * Activation quantizers: the scalar layouts, the same bytes (levels
 * x * (127 / max|x|) rounded to nearest even by VCVTPS2DQ as lrintf rounds,
 * clamped to +-127 first so that NaN gives -127 as in the scalar code).
 * ------------------------------------------------------------------------- */

/* max |x| over n floats (n a multiple of 8); NaN never wins, as in the
 * scalar loop (MAXPS returns its second operand when either is NaN) */
ALWAYS float absmax8n(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* levels of 8 floats at x */
ALWAYS __m256i levels8(const float *x, __m256 id) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), id);
    v = _mm256_max_ps(v, _mm256_set1_ps(-127.0f)); /* NaN -> -127 */
    v = _mm256_min_ps(v, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(v);
}

/* 32 levels of x to q; the int32 sums of elements 0-15 and 16-31 */
ALWAYS void levels32(const float *x, __m256 id, int8_t *q, int32_t *s0, int32_t *s1) {
    const __m256i i0 = levels8(x, id), i1 = levels8(x + 8, id);
    const __m256i i2 = levels8(x + 16, id), i3 = levels8(x + 24, id);
    /* packs work within 128-bit lanes: put the dwords back in order */
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    _mm256_storeu_si256((__m256i *)(void *)q, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    *s0 = hsum_epi32(_mm256_add_epi32(i0, i1));
    *s1 = hsum_epi32(_mm256_add_epi32(i2, i3));
}

static void q8_quantize(const float *x, void *dst, int64_t cols) {
    const int64_t nb = cols / 32;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + cols);
    int32_t *sum = (int32_t *)(void *)(d + nb);
    for (int64_t b = 0; b < nb; b++, x += 32, q += 32) {
        const float amax = absmax8n(x, 32);
        const __m256 id = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        int32_t s0, s1;
        levels32(x, id, q, &s0, &s1);
        d[b] = amax / 127.0f;
        sum[b] = s0 + s1;
    }
}

static void q8k_quantize(const float *x, void *dst, int64_t cols) {
    const int64_t nk = cols / 256;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + cols);
    int16_t *bsum = (int16_t *)(void *)(d + nk);
    for (int64_t b = 0; b < nk; b++, x += 256, q += 256) {
        const float amax = absmax8n(x, 256);
        const __m256 id = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        for (int g = 0; g < 8; g++) {
            int32_t s0, s1;
            levels32(x + 32 * g, id, q + 32 * g, &s0, &s1);
            bsum[16 * b + 2 * g] = (int16_t)s0;
            bsum[16 * b + 2 * g + 1] = (int16_t)s1;
        }
        d[b] = amax / 127.0f;
    }
}

/* ---------------------------------------------------------------------------
 * Float weights: F32, F16, BF16 times float32 activations, 32 columns per
 * step in four accumulators, then 8 at a time, then one at a time.  Two
 * vectors per call (eight accumulators and the weights fill the sixteen
 * registers).
 * ------------------------------------------------------------------------- */

ALWAYS __m256 ld_f32w(const uint8_t *w, int64_t c) { return _mm256_loadu_ps((const float *)(const void *)w + c); }
ALWAYS __m256 ld_f16w(const uint8_t *w, int64_t c) { return _mm256_cvtph_ps(ld128(w + 2 * c)); }
ALWAYS __m256 ld_bf16w(const uint8_t *w, int64_t c) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(ld128(w + 2 * c)), 16));
}
ALWAYS float ld1_f32w(const uint8_t *w, int64_t c) { return simd_f32(w + 4 * c); }
ALWAYS float ld1_f16w(const uint8_t *w, int64_t c) { return ldf16(w + 2 * c); }
ALWAYS float ld1_bf16w(const uint8_t *w, int64_t c) {
    uint16_t h;
    memcpy(&h, w + 2 * c, sizeof h);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define FLOAT_ROW(name)                                                                                      \
    ALWAYS void row_##name(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, \
                           float *out, size_t ostride) {                                                     \
        __m256 acc[4][4];                                                                                    \
        FOR_T(if (t < 2) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm256_setzero_ps(););              \
        int64_t c = 0;                                                                                       \
        for (; c + 32 <= cols; c += 32) {                                                                    \
            const __m256 w0 = ld_##name##w(w, c), w1 = ld_##name##w(w, c + 8);                               \
            const __m256 w2 = ld_##name##w(w, c + 16), w3 = ld_##name##w(w, c + 24);                         \
            FOR_T(if (t < 2) {                                                                               \
                const float *x = (const float *)(const void *)(act + (size_t)t * astride) + c;               \
                acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[t][0]);                              \
                acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc[t][1]);                          \
                acc[t][2] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + 16), acc[t][2]);                         \
                acc[t][3] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + 24), acc[t][3]);                         \
            });                                                                                              \
        }                                                                                                    \
        for (; c + 8 <= cols; c += 8) {                                                                      \
            const __m256 w0 = ld_##name##w(w, c);                                                            \
            FOR_T(if (t < 2) {                                                                               \
                const float *x = (const float *)(const void *)(act + (size_t)t * astride) + c;               \
                acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[t][0]);                              \
            });                                                                                              \
        }                                                                                                    \
        FOR_T(if (t < 2) {                                                                                   \
            const float *x = (const float *)(const void *)(act + (size_t)t * astride);                      \
            const __m256 s = _mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3])); \
            float tail = 0;                                                                                  \
            for (int64_t k = c; k < cols; k++) tail += ld1_##name##w(w, k) * x[k];                           \
            out[(size_t)t * ostride] = hsum_ps(s) + tail;                                                    \
        });                                                                                                  \
    }

FLOAT_ROW(f32)
FLOAT_ROW(f16)
FLOAT_ROW(bf16)
SIMD_GEMM(gemm_f32, row_f32, 2)
SIMD_GEMM(gemm_f16, row_f16, 2)
SIMD_GEMM(gemm_bf16, row_bf16, 2)

/* ---------------------------------------------------------------------------
 * Blocks of 32 (Q4_0 .. Q8_1): per block the exact integer dot in eight
 * lanes, the block's offset taken off lane 0 (offset * the activations'
 * block sum), then scaled into float accumulators: even blocks into one,
 * odd blocks into another, so that consecutive blocks do not wait on each
 * other's multiply-add.  Q4_1 and Q5_1 add m * da * sum per block in a
 * float sum beside.
 * ------------------------------------------------------------------------- */

/* one block's weights: unsigned levels (or signed for Q8), scale, min */
typedef struct blk32 {
    __m256i lv;
    float d, m;
} blk32;

/* 16 bytes of nibbles: low nibbles are elements 0-15, high 16-31 */
ALWAYS __m256i nibbles32(const uint8_t *p) {
    const __m128i v = ld128(p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(15));
}

/* bit j of the u32 at p as 16 in byte j */
ALWAYS __m256i fifth_bits(const uint8_t *p) {
    const __m256i v = _mm256_set1_epi32((int)simd_u32(p));
    const __m256i spread = _mm256_shuffle_epi8(
        v, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
                            3, 3));
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(16));
}

ALWAYS blk32 ld_q4_0(const uint8_t *p) { return (blk32){nibbles32(p + 2), ldf16(p), 0}; }
ALWAYS blk32 ld_q4_1(const uint8_t *p) { return (blk32){nibbles32(p + 4), ldf16(p), ldf16(p + 2)}; }
ALWAYS blk32 ld_q5_0(const uint8_t *p) {
    return (blk32){_mm256_or_si256(nibbles32(p + 6), fifth_bits(p + 2)), ldf16(p), 0};
}
ALWAYS blk32 ld_q5_1(const uint8_t *p) {
    return (blk32){_mm256_or_si256(nibbles32(p + 8), fifth_bits(p + 4)), ldf16(p), ldf16(p + 2)};
}
ALWAYS blk32 ld_q8_0(const uint8_t *p) { return (blk32){ld256(p + 2), ldf16(p), 0}; }
ALWAYS blk32 ld_q8_1(const uint8_t *p) { return (blk32){ld256(p + 4), ldf16(p), 0}; }

/* OFF: the level offset (value = level - OFF); MIN: the type has a min;
 * SIGNED: the levels are signed bytes */
#define ROW32(name, BYTES, OFF, MIN, SIGNED)                                                                 \
    ALWAYS void row32_##name(const int nt, const uint8_t *wb, int64_t b, const q8v *a, __m256 *acc,          \
                             float *accm) {                                                                  \
        const blk32 k = ld_##name(wb);                                                                       \
        FOR_T(                                                                                               \
            const __m256i aq = ld256(a[t].q + 32 * b);                                                       \
            __m256i p = SIGNED ? dot_ss(k.lv, aq) : dot_us(k.lv, aq);                                        \
            if (OFF) p = _mm256_sub_epi32(p, lane0(OFF * a[t].sum[b]));                                      \
            const float da = a[t].d[b];                                                                      \
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(k.d * da), acc[t]);              \
            if (MIN) accm[t] += k.m * da * (float)a[t].sum[b];                                               \
        );                                                                                                   \
    }                                                                                                        \
    ALWAYS void row_##name(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, \
                           float *out, size_t ostride) {                                                     \
        const int64_t nb = cols / 32;                                                                        \
        q8v a[4];                                                                                            \
        __m256 acc0[4], acc1[4];                                                                             \
        float accm0[4], accm1[4];                                                                            \
        FOR_T(a[t] = kb_q8_at(act + (size_t)t * astride, cols); acc0[t] = acc1[t] = _mm256_setzero_ps();        \
              accm0[t] = accm1[t] = 0;);                                                                     \
        int64_t b = 0;                                                                                       \
        for (; b + 2 <= nb; b += 2) {                                                                        \
            row32_##name(nt, w + (size_t)b * BYTES, b, a, acc0, accm0);                                      \
            row32_##name(nt, w + (size_t)(b + 1) * BYTES, b + 1, a, acc1, accm1);                            \
        }                                                                                                    \
        if (b < nb) row32_##name(nt, w + (size_t)b * BYTES, b, a, acc0, accm0);                              \
        FOR_T(out[(size_t)t * ostride] = hsum_ps(_mm256_add_ps(acc0[t], acc1[t])) + (accm0[t] + accm1[t]);); \
    }

ROW32(q4_0, 18, 8, 0, 0)
ROW32(q4_1, 20, 0, 1, 0)
ROW32(q5_0, 22, 16, 0, 0)
ROW32(q5_1, 24, 0, 1, 0)
ROW32(q8_0, 34, 0, 0, 1)
ROW32(q8_1, 36, 0, 0, 1)
SIMD_GEMM(gemm_q4_0, row_q4_0, 4)
SIMD_GEMM(gemm_q4_1, row_q4_1, 4)
SIMD_GEMM(gemm_q5_0, row_q5_0, 4)
SIMD_GEMM(gemm_q5_1, row_q5_1, 4)
SIMD_GEMM(gemm_q8_0, row_q8_0, 4)
SIMD_GEMM(gemm_q8_1, row_q8_1, 4)

/* ---------------------------------------------------------------------------
 * K types: a super-block is eight registers of 32 levels; each register's
 * VPMADDUBSW pairs are scaled by their sub-block's scale (one for 32
 * elements, or one per 128-bit half for sub-blocks of 16) with VPMADDWD
 * and summed into an exact int32 vector per activation vector.  Offsets
 * and mins come from the activations' sums of 16.  The float accumulation
 * is one multiply-add per super-block (two with mins).
 * ------------------------------------------------------------------------- */

/* byte shuffles: word s of a register (both halves) to every word */
static const uint8_t word_ctrl[8][32] __attribute__((aligned(32))) = {
#define W(s) {2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, \
              2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, \
              2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1, 2 * s, 2 * s + 1}
    W(0), W(1), W(2), W(3), W(4), W(5), W(6), W(7),
#undef W
};
/* byte shuffles for 16 byte-scales: bytes 0-7 get scale 2j, 8-15 2j+1 */
static const uint8_t pair_ctrl[8][16] __attribute__((aligned(16))) = {
#define P(j) {2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, \
              2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1}
    P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7),
#undef P
};

/* scale words for the 32 levels of group j of a 16-scale type: sub-block
 * 2j for the low half, 2j+1 for the high half (sc: 16 byte scales) */
ALWAYS __m256i sc16_u(__m128i sc, int j) {
    return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc, _mm_load_si128((const __m128i *)(const void *)pair_ctrl[j])));
}
ALWAYS __m256i sc16_s(__m128i sc, int j) {
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, _mm_load_si128((const __m128i *)(const void *)pair_ctrl[j])));
}
/* word s of sc (the 8 words in both halves) in every word */
ALWAYS __m256i sc32(__m256i sc, int s) {
    return _mm256_shuffle_epi8(sc, _mm256_load_si256((const __m256i *)(const void *)word_ctrl[s]));
}

/* the bytes of v shifted so that bit b of each byte lands at bit to, other
 * bits of the byte left for the caller to mask (16-bit shifts do not carry
 * the wanted bit across bytes for b, to within 0..7) */
ALWAYS __m256i bit_to(__m256i v, int b, int to) {
    return b >= to ? _mm256_srli_epi16(v, b - to) : _mm256_slli_epi16(v, to - b);
}

/* Q4_K and Q5_K rows (Q5: Q5_K's fifth bits at 16, levels at QS) */
#define ROW_K4(name, BYTES, QS, Q5)                                                                          \
    ALWAYS void row_##name(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, \
                           float *out, size_t ostride) {                                                     \
        const int64_t nk = cols / 256;                                                                       \
        const __m256i m4 = _mm256_set1_epi8(15);                                                             \
        __m256 acc[4];                                                                                       \
        FOR_T(acc[t] = _mm256_setzero_ps(););                                                                \
        for (int64_t i = 0; i < nk; i++, w += BYTES) {                                                       \
            const float d = ldf16(w), dmin = ldf16(w + 2);                                                   \
            const __m128i sm = k4_scale_bytes(w + 4);                                                             \
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));                           \
            const __m256i mn = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)); /* each min twice */         \
            __m256i is[4];                                                                                   \
            FOR_T(is[t] = _mm256_setzero_si256(););                                                          \
            FOR4(j, {                                                                                        \
                const __m256i v = ld256(w + QS + 32 * j);                                                    \
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);    \
                if (Q5) {                                                                                    \
                    const __m256i hv = ld256(w + 16), b16 = _mm256_set1_epi8(16);                            \
                    lo = _mm256_or_si256(lo, _mm256_and_si256(bit_to(hv, 2 * j, 4), b16));                   \
                    hi = _mm256_or_si256(hi, _mm256_and_si256(bit_to(hv, 2 * j + 1, 4), b16));               \
                }                                                                                            \
                const __m256i s0 = sc32(sc, 2 * j), s1 = sc32(sc, 2 * j + 1);                                \
                FOR_T(                                                                                       \
                    const int8_t *q = kb_q8k_at(act + (size_t)t * astride, cols).q + 256 * i + 64 * j;          \
                    is[t] = _mm256_add_epi32(is[t], _mm256_add_epi32(dot_us_scaled(lo, ld256(q), s0),        \
                                                                     dot_us_scaled(hi, ld256(q + 32), s1))); \
                );                                                                                           \
            });                                                                                              \
            FOR_T(                                                                                           \
                const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);                                      \
                const float da = a.d[i];                                                                     \
                const __m256i mins = _mm256_madd_epi16(mn, ld256(a.bsum + 16 * i));                          \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_set1_ps(d * da), acc[t]);         \
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin * da), acc[t]);      \
            );                                                                                               \
        }                                                                                                    \
        FOR_T(out[(size_t)t * ostride] = hsum_ps(acc[t]););                                                  \
    }

ROW_K4(q4_k, 144, 16, 0)
ROW_K4(q5_k, 176, 48, 1)
SIMD_GEMM(gemm_q4_k, row_q4_k, 4)
SIMD_GEMM(gemm_q5_k, row_q5_k, 4)

/* Q6_K: ql at 0, qh at 128, int8 scales at 192, d at 208.  Levels are the
 * stored 6 bits (value + 32); the 32 * sum(scale * bsum) comes off after. */
ALWAYS void row_q6_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[4];
    FOR_T(acc[t] = _mm256_setzero_ps(););
    for (int64_t i = 0; i < nk; i++, w += 210) {
        const float d = ldf16(w + 208);
        const __m128i sb = ld128(w + 192);
        __m256i is[4];
        FOR_T(is[t] = _mm256_setzero_si256(););
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = ld256(w + 64 * h), ql1 = ld256(w + 64 * h + 32), qh = ld256(w + 128 + 32 * h);
            FOR4(g, {
                const __m256i ql = g & 1 ? ql1 : ql0;
                const __m256i low = g < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
                const __m256i lv = _mm256_or_si256(low, _mm256_and_si256(bit_to(qh, 2 * g, 4), m30));
                const __m256i s = sc16_s(sb, 4 * h + g);
                FOR_T(
                    const int8_t *q = kb_q8k_at(act + (size_t)t * astride, cols).q + 256 * i + 128 * h + 32 * g;
                    is[t] = _mm256_add_epi32(is[t], dot_us_scaled(lv, ld256(q), s));
                );
            });
        }
        const __m256i s16 = _mm256_cvtepi8_epi16(sb);
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(s16, ld256(a.bsum + 16 * i)), 5);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(is[t], corr)), _mm256_set1_ps(d * a.d[i]),
                                     acc[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = hsum_ps(acc[t]););
}
SIMD_GEMM(gemm_q6_k, row_q6_k, 4)

/* Q3_K: hmask at 0, 2-bit planes at 32, scales at 96, d at 108.  Levels
 * are low2 + 4 * hbit (value + 4); 4 * sum(scale * bsum) comes off after. */
ALWAYS void row_q3_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    const __m256i m3 = _mm256_set1_epi8(3), b4 = _mm256_set1_epi8(4);
    __m256 acc[4];
    FOR_T(acc[t] = _mm256_setzero_ps(););
    for (int64_t i = 0; i < nk; i++, w += 110) {
        const float d = ldf16(w + 108);
        const __m128i sb = k3_scale_bytes(w + 96);
        const __m256i hm = ld256(w);
        __m256i is[4];
        FOR_T(is[t] = _mm256_setzero_si256(););
        for (int h = 0; h < 2; h++) {
            const __m256i pl = ld256(w + 32 + 32 * h);
            FOR4(g, {
                const __m256i low = _mm256_and_si256(_mm256_srli_epi16(pl, 2 * g), m3);
                const __m256i lv = _mm256_or_si256(low, _mm256_and_si256(bit_to(hm, 4 * h + g, 2), b4));
                const __m256i s = sc16_s(sb, 4 * h + g);
                FOR_T(
                    const int8_t *q = kb_q8k_at(act + (size_t)t * astride, cols).q + 256 * i + 128 * h + 32 * g;
                    is[t] = _mm256_add_epi32(is[t], dot_us_scaled(lv, ld256(q), s));
                );
            });
        }
        const __m256i s16 = _mm256_cvtepi8_epi16(sb);
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(s16, ld256(a.bsum + 16 * i)), 2);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(is[t], corr)), _mm256_set1_ps(d * a.d[i]),
                                     acc[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = hsum_ps(acc[t]););
}
SIMD_GEMM(gemm_q3_k, row_q3_k, 4)

/* Q2_K: scales (low nibble) and mins (high nibble) at 0, planes at 16,
 * d at 80, dmin at 82 */
ALWAYS void row_q2_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc[4];
    FOR_T(acc[t] = _mm256_setzero_ps(););
    for (int64_t i = 0; i < nk; i++, w += 84) {
        const float d = ldf16(w + 80), dmin = ldf16(w + 82);
        const __m128i raw = ld128(w), m4 = _mm_set1_epi8(15);
        const __m128i sb = _mm_and_si128(raw, m4);
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        __m256i is[4];
        FOR_T(is[t] = _mm256_setzero_si256(););
        for (int h = 0; h < 2; h++) {
            const __m256i pl = ld256(w + 16 + 32 * h);
            FOR4(g, {
                const __m256i lv = _mm256_and_si256(_mm256_srli_epi16(pl, 2 * g), m3);
                const __m256i s = sc16_u(sb, 4 * h + g);
                FOR_T(
                    const int8_t *q = kb_q8k_at(act + (size_t)t * astride, cols).q + 256 * i + 128 * h + 32 * g;
                    is[t] = _mm256_add_epi32(is[t], dot_us_scaled(lv, ld256(q), s));
                );
            });
        }
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            const float da = a.d[i];
            const __m256i mins = _mm256_madd_epi16(mn, ld256(a.bsum + 16 * i));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_set1_ps(d * da), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin * da), acc[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = hsum_ps(acc[t]););
}
SIMD_GEMM(gemm_q2_k, row_q2_k, 4)

/* Q8_K weights: float d at 0, int8 levels at 4 */
ALWAYS void row_q8_k(const int nt, int64_t cols, const uint8_t *w, const uint8_t *act, size_t astride, float *out,
                     size_t ostride) {
    const int64_t nk = cols / 256;
    __m256 acc[4];
    FOR_T(acc[t] = _mm256_setzero_ps(););
    for (int64_t i = 0; i < nk; i++, w += 292) {
        const float d = simd_f32(w);
        __m256i is[4];
        FOR_T(is[t] = _mm256_setzero_si256(););
        for (int j = 0; j < 8; j++) {
            const __m256i lv = ld256(w + 4 + 32 * j);
            FOR_T(
                const int8_t *q = kb_q8k_at(act + (size_t)t * astride, cols).q + 256 * i + 32 * j;
                is[t] = _mm256_add_epi32(is[t], dot_ss(lv, ld256(q)));
            );
        }
        FOR_T(
            const q8kv a = kb_q8k_at(act + (size_t)t * astride, cols);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_set1_ps(d * a.d[i]), acc[t]);
        );
    }
    FOR_T(out[(size_t)t * ostride] = hsum_ps(acc[t]););
}
SIMD_GEMM(gemm_q8_k, row_q8_k, 4)

/* ---------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------- */

static const smoe_kernels table = SIMD_TABLE("avx2", smoe_act_q8_bytes, q8_quantize, smoe_act_q8k_bytes, q8k_quantize,
                                             SIMD_GEMM_NAME, SIMD_GEMM_NAME);

const smoe_kernels *smoe_kernels_avx2(void) { return &table; }

#endif
