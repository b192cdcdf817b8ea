/* act_quant.c - the activation quantizers in the scalar layouts
 * (SMOE_ACT_Q8, SMOE_ACT_Q8K; kernels.h): the bytes every path that uses
 * these layouts must write, and the scalar and NEON tables' quantizers. */
#include <math.h>

#include "kernels.h"

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
