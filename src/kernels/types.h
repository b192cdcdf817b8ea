/* types.h - tensor element types, the one place where weight formats live.
 *
 * Type ids are GGUF's (ggml's) numbering so files map directly.  The table
 * knows the block geometry of every type the format defines, so the GGUF
 * reader can validate any file; `to_float` (and `from_float`, its inverse
 * for writing) is set for the types this build can compute with.  The
 * quantized formats' code lives in quant.c; this table points at it. */
#ifndef SMOE_TYPES_H
#define SMOE_TYPES_H

#include <stddef.h>
#include <stdint.h>

enum smoe_type {
    SMOE_TYPE_F32 = 0,
    SMOE_TYPE_F16 = 1,
    SMOE_TYPE_Q4_0 = 2,
    SMOE_TYPE_Q4_1 = 3,
    SMOE_TYPE_Q5_0 = 6,
    SMOE_TYPE_Q5_1 = 7,
    SMOE_TYPE_Q8_0 = 8,
    SMOE_TYPE_Q8_1 = 9,
    SMOE_TYPE_Q2_K = 10,
    SMOE_TYPE_Q3_K = 11,
    SMOE_TYPE_Q4_K = 12,
    SMOE_TYPE_Q5_K = 13,
    SMOE_TYPE_Q6_K = 14,
    SMOE_TYPE_Q8_K = 15,
    SMOE_TYPE_I8 = 24,
    SMOE_TYPE_I16 = 25,
    SMOE_TYPE_I32 = 26,
    SMOE_TYPE_I64 = 27,
    SMOE_TYPE_F64 = 28,
    SMOE_TYPE_BF16 = 30,
    SMOE_TYPE_COUNT = 40,
};

typedef void (*smoe_to_float_fn)(const void *src, float *dst, int64_t n);
/* Convert (quantize) n floats, n a multiple of the block size. */
typedef void (*smoe_from_float_fn)(const float *src, void *dst, int64_t n);

typedef struct smoe_type_info {
    const char *name;     /* NULL for ids that are not a known type */
    int64_t block_size;   /* elements per block */
    int64_t block_bytes;  /* bytes per block */
    smoe_to_float_fn to_float; /* NULL when this build cannot compute with it */
    smoe_from_float_fn from_float; /* NULL exactly when to_float is */
} smoe_type_info;

/* Info for a type id, or NULL when the id is unknown. */
const smoe_type_info *smoe_type_get(uint32_t type);

/* Type name for messages: "F16", or "unknown(77)" written into buf. */
const char *smoe_type_name(uint32_t type, char buf[32]);

/* Parse a type name ("f32", "F16", "bf16", ...); -1 when unknown. */
int smoe_type_from_name(const char *name);

/* Bytes for one row of n elements; 0 if n is not a whole number of blocks. */
size_t smoe_type_row_bytes(uint32_t type, int64_t n);

#endif
