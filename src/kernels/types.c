/* types.c - the type table and row conversions for the float types. */
#include "types.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../base/common.h"
#include "quant.h"

/* ---------------------------------------------------------------------------
 * Row conversion to float32
 * ------------------------------------------------------------------------- */

static void f32_to_float(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* Branch-free so the compiler vectorises the loop: the half's exponent and
 * mantissa, placed in a float's bit positions, are off by a power of two
 * (2^112) that one multiply fixes, subnormals included; infinities and NaNs
 * are patched with a select. */
static void f16_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
        uint32_t em = h & 0x7fff, bits = em << 13, r;
        float f;
        memcpy(&f, &bits, 4);
        f *= 0x1p112f;
        memcpy(&r, &f, 4);
        r = em >= 0x7c00 ? 0x7f800000 | bits : r;
        r |= (h & 0x8000) << 16;
        memcpy(&dst[i], &r, 4);
    }
}

static void bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
        memcpy(&dst[i], &u, 4);
    }
}

/* ---------------------------------------------------------------------------
 * Row conversion from float32 (round to nearest even)
 * ------------------------------------------------------------------------- */

static void f32_from_float(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = smoe_f32_to_f16(src[i]);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

static void bf16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = smoe_f32_to_bf16(src[i]);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

/* ---------------------------------------------------------------------------
 * The table: block geometry from the GGUF specification.
 * ------------------------------------------------------------------------- */

static const smoe_type_info type_table[SMOE_TYPE_COUNT] = {
    [SMOE_TYPE_F32] = {"F32", 1, 4, f32_to_float, f32_from_float},
    [SMOE_TYPE_F16] = {"F16", 1, 2, f16_to_float, f16_from_float},
    [SMOE_TYPE_Q4_0] = {"Q4_0", 32, 18, smoe_dequantize_row_q4_0, smoe_quantize_row_q4_0},
    [SMOE_TYPE_Q4_1] = {"Q4_1", 32, 20, smoe_dequantize_row_q4_1, smoe_quantize_row_q4_1},
    [SMOE_TYPE_Q5_0] = {"Q5_0", 32, 22, smoe_dequantize_row_q5_0, smoe_quantize_row_q5_0},
    [SMOE_TYPE_Q5_1] = {"Q5_1", 32, 24, smoe_dequantize_row_q5_1, smoe_quantize_row_q5_1},
    [SMOE_TYPE_Q8_0] = {"Q8_0", 32, 34, smoe_dequantize_row_q8_0, smoe_quantize_row_q8_0},
    [SMOE_TYPE_Q8_1] = {"Q8_1", 32, 36, smoe_dequantize_row_q8_1, smoe_quantize_row_q8_1},
    [SMOE_TYPE_Q2_K] = {"Q2_K", 256, 84, smoe_dequantize_row_q2_k, smoe_quantize_row_q2_k},
    [SMOE_TYPE_Q3_K] = {"Q3_K", 256, 110, smoe_dequantize_row_q3_k, smoe_quantize_row_q3_k},
    [SMOE_TYPE_Q4_K] = {"Q4_K", 256, 144, smoe_dequantize_row_q4_k, smoe_quantize_row_q4_k},
    [SMOE_TYPE_Q5_K] = {"Q5_K", 256, 176, smoe_dequantize_row_q5_k, smoe_quantize_row_q5_k},
    [SMOE_TYPE_Q6_K] = {"Q6_K", 256, 210, smoe_dequantize_row_q6_k, smoe_quantize_row_q6_k},
    [SMOE_TYPE_Q8_K] = {"Q8_K", 256, 292, smoe_dequantize_row_q8_k, smoe_quantize_row_q8_k},
    [SMOE_TYPE_I8] = {"I8", 1, 1, NULL, NULL},
    [SMOE_TYPE_I16] = {"I16", 1, 2, NULL, NULL},
    [SMOE_TYPE_I32] = {"I32", 1, 4, NULL, NULL},
    [SMOE_TYPE_I64] = {"I64", 1, 8, NULL, NULL},
    [SMOE_TYPE_F64] = {"F64", 1, 8, NULL, NULL},
    [SMOE_TYPE_BF16] = {"BF16", 1, 2, bf16_to_float, bf16_from_float},
};

const smoe_type_info *smoe_type_get(uint32_t type) {
    if (type >= SMOE_TYPE_COUNT || !type_table[type].name) return NULL;
    return &type_table[type];
}

const char *smoe_type_name(uint32_t type, char buf[32]) {
    const smoe_type_info *t = smoe_type_get(type);
    if (t) return t->name;
    snprintf(buf, 32, "unknown(%u)", type);
    return buf;
}

int smoe_type_from_name(const char *name) {
    for (int i = 0; i < SMOE_TYPE_COUNT; i++)
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0) return i;
    return -1;
}

size_t smoe_type_row_bytes(uint32_t type, int64_t n) {
    const smoe_type_info *t = smoe_type_get(type);
    if (!t || n < 0 || n % t->block_size) return 0;
    return (size_t)(n / t->block_size * t->block_bytes);
}
