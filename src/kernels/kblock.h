/* kblock.h - small readers of the GGUF block fields (layouts in quant.h)
 * and views of the scalar activation layouts (kernels.h), shared by the
 * dot-product kernels of every instruction set. */
#ifndef SMOE_KBLOCK_H
#define SMOE_KBLOCK_H

#include <stdint.h>
#include <string.h>

#include "../base/common.h"

static inline uint16_t kb_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t kb_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline float kb_f16(const uint8_t *p) { return smoe_f16_to_f32(kb_u16(p)); }
static inline float kb_f32(const uint8_t *p) {
    uint32_t u = kb_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Q4_K / Q5_K: the eight 6-bit scales and mins of a super-block from its 12
 * scale bytes p. */
static inline void kb_q4k_scales(const uint8_t *p, uint8_t sc[8], uint8_t mn[8]) {
    for (int s = 0; s < 4; s++) {
        sc[s] = p[s] & 63;
        mn[s] = p[s + 4] & 63;
        sc[s + 4] = (uint8_t)((p[s + 8] & 15) | (p[s] >> 6) << 4);
        mn[s + 4] = (uint8_t)((p[s + 8] >> 4) | (p[s + 4] >> 6) << 4);
    }
}

/* Q3_K: the sixteen signed scales (code - 32) of a super-block from its 12
 * scale bytes p. */
static inline void kb_q3k_scales(const uint8_t *p, int8_t sc[16]) {
    for (int s = 0; s < 16; s++) {
        const int low = s < 8 ? p[s] & 15 : p[s - 8] >> 4;
        sc[s] = (int8_t)((low | ((p[8 + (s & 3)] >> (2 * (s >> 2))) & 3) << 4) - 32);
    }
}

/* ---------------------------------------------------------------------------
 * Views of one vector's quantized activations in the scalar layouts
 * (kernels.h): SMOE_ACT_Q8 levels, block scales and block sums, and
 * SMOE_ACT_Q8K levels, super-block scales and sums of 16.  Always inlined:
 * the SIMD kernels call them in their inner loops.
 * ------------------------------------------------------------------------- */

typedef struct q8v {
    const int8_t *q;
    const float *d;
    const int32_t *sum;
} q8v;

static inline __attribute__((always_inline)) q8v kb_q8_at(const void *act, int64_t cols) {
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

static inline __attribute__((always_inline)) q8kv kb_q8k_at(const void *act, int64_t cols) {
    q8kv v;
    v.q = act;
    v.d = (const float *)(const void *)(v.q + cols);
    v.bsum = (const int16_t *)(const void *)(v.d + cols / 256);
    return v;
}

#endif
