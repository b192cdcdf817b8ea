/* kernels.h - matrix-product kernels for each instruction set, picked at
 * run time.
 *
 * A weight row is multiplied by activation vectors.  Float weights (F32,
 * F16, BF16) take the float32 activations as they are.  Quantized weights
 * take activations quantized once per matmul call to 8-bit blocks, so that
 * the inner products are integer dot products per block:
 *
 *   SMOE_ACT_Q8   blocks of 32 with a float scale each and the sum of the
 *                 block's levels (ggml's Q8_0/Q8_1 quantization: d =
 *                 max|x|/127, level = x*127/max|x| rounded to nearest even)
 *                 for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1
 *   SMOE_ACT_Q8K  blocks of 256 with a float scale each and the sums of
 *                 every 16 levels (ggml's Q8_K) for the K types
 *
 * How a path stores these (the byte layout) is its own business: each
 * kernel table brings the quantizer that writes the layout its kernels read.
 * The scalar path's layout, the one written down below, is the reference.
 *
 * Dispatch: smoe_kernels_best() returns a pointer to one of a few constant
 * tables, chosen from the CPU's features (__builtin_cpu_supports, which
 * reads what libgcc's constructor found, before main).  The caller keeps
 * that pointer: the forward pass holds it in its smoe_ctx, chosen when the
 * context is made (SMOE_KERNELS=name overrides it; see smoe_kernels_select).
 * There is no lazily filled global table, so nothing to race on or reset,
 * and a test can run every path the CPU has side by side in one process,
 * which ifunc/target_clones resolution at load time would not allow.
 *
 * Where things live (src/kernels/):
 *   kernels_scalar.c  the scalar dot products and the "scalar" and
 *                     "reference" tables
 *   act_quant.c       the activation quantizers in the scalar layouts
 *   dispatch.c        smoe_kernels_best / _by_name / _select, the CPU checks
 *   simd.h            what every table is built on: the tile loop that
 *                     makes a gemm from a row kernel, the table's shape,
 *                     the common loaders (and the x86 files' shared helpers)
 *   kblock.h          readers of the GGUF block fields and views of the
 *                     scalar activation layouts, for every path
 *   simd_avx2.c, simd_avx512.c, simd_neon.c
 *                     one instruction set each: its row kernels (block dot
 *                     products), its loaders and quantizers, its table
 *
 * A new instruction set writes a file like those: a row kernel per weight
 * type it speeds up, turned into gemms and a smoe_kernels table through
 * simd.h (a quantizer per activation kind it uses; NULL gemms fall back to
 * the exact float path), and a getter below that dispatch.c calls on that
 * architecture.  Files for other architectures compile to nothing
 * (#if defined(__x86_64__) / defined(__aarch64__) around their contents). */
#ifndef SMOE_KERNELS_H
#define SMOE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

enum smoe_act_kind {
    SMOE_ACT_F32 = 0, /* the float32 vectors themselves, cols*4 bytes apart */
    SMOE_ACT_Q8 = 1,  /* 8-bit blocks of 32 */
    SMOE_ACT_Q8K = 2, /* 8-bit blocks of 256 */
    SMOE_ACT_KINDS = 3,
};

/* Quantized activations of one kind, in a path's own layout. */
typedef struct smoe_act_format {
    /* bytes one vector of cols elements takes: a multiple of 64 */
    size_t (*bytes)(int64_t cols);
    /* quantize cols floats (a multiple of the block, 32 or 256) into dst,
     * which is 64-byte aligned and bytes(cols) long */
    void (*quantize)(const float *x, void *dst, int64_t cols);
} smoe_act_format;

/* A tile of products: out[t*ostride + r] = (row r of the weights) . (vector
 * t of the activations) for r < nr, t < nt.  Row r starts at w + r*wstride
 * (row bytes of the type; rows need not be aligned), vector t at act +
 * t*astride (for SMOE_ACT_F32 a float pointer; else the quantizer's output,
 * astride a multiple of 64).  cols is a whole number of the type's blocks.
 *
 * Every result must depend only on its row and its vector: not on nr, nt,
 * the tile's position or the thread, so that a batch gives bit for bit the
 * logits of the same tokens fed one at a time. */
typedef void (*smoe_gemm_fn)(int64_t cols, const uint8_t *w, size_t wstride, int64_t nr, const void *act,
                             size_t astride, int64_t nt, float *out, size_t ostride);

typedef struct smoe_weight_kernel {
    uint8_t act;       /* enum smoe_act_kind the gemm reads */
    smoe_gemm_fn gemm; /* NULL: the exact float path (dequantize, float dot) */
} smoe_weight_kernel;

typedef struct smoe_kernels {
    const char *name; /* "reference", "scalar", "avx2", "avx512", "neon" */
    smoe_act_format act[SMOE_ACT_KINDS]; /* [SMOE_ACT_F32] unused */
    smoe_weight_kernel w[SMOE_TYPE_COUNT];
} smoe_kernels;

/* The exact path: every type dequantized to float32 and multiplied by the
 * float32 activations (what smoe computed before quantized kernels; the
 * reference tests run it through SMOE_KERNELS=reference). */
const smoe_kernels *smoe_kernels_reference(void);
/* Portable C: integer block dot products, one element at a time. */
const smoe_kernels *smoe_kernels_scalar(void);
/* The fastest table this CPU runs. */
const smoe_kernels *smoe_kernels_best(void);
/* A table by name ("reference", "scalar", "avx2", "avx512", "neon",
 * "best"); NULL when unknown or this CPU lacks it (why goes to err, which
 * may be NULL). */
const smoe_kernels *smoe_kernels_by_name(const char *name, char *err);
/* smoe_kernels_by_name(getenv("SMOE_KERNELS")), or the best when unset. */
const smoe_kernels *smoe_kernels_select(char *err);
/* Names of the tables this build has, whether or not the CPU runs them,
 * NULL-terminated. */
extern const char *const smoe_kernel_names[];

/* Per-instruction-set tables, defined only in builds for their architecture
 * (callers guard with #if defined(__x86_64__) / defined(__aarch64__)).
 * The x86 ones may be called only when the CPU has the features
 * (smoe_kernels_by_name checks). */
const smoe_kernels *smoe_kernels_avx2(void);   /* AVX2, FMA, F16C: simd_avx2.c */
const smoe_kernels *smoe_kernels_avx512(void); /* AVX-512 F/BW/VL/DQ/VNNI/BF16: simd_avx512.c */
/* aarch64: simd_neon.c defines it; it checks the CPU itself (getauxval)
 * and returns NULL when it cannot run there. */
const smoe_kernels *smoe_kernels_neon(void);

/* ---------------------------------------------------------------------------
 * The scalar (reference) layouts and dot products, for other paths to
 * build on (a SIMD path may use these layouts and quantizers as they are):
 * the quantizers in act_quant.c, the dot products in kernels_scalar.c.
 *
 * SMOE_ACT_Q8, nb = cols/32 blocks:
 *   int8 q[cols] at 0, float d[nb] at cols, int32 sum[nb] after d
 * SMOE_ACT_Q8K, nk = cols/256 blocks:
 *   int8 q[cols] at 0, float d[nk] at cols, int16 bsum[cols/16] after d
 * ------------------------------------------------------------------------- */

size_t smoe_act_q8_bytes(int64_t cols);
void smoe_act_q8_quantize(const float *x, void *dst, int64_t cols);
size_t smoe_act_q8k_bytes(int64_t cols);
void smoe_act_q8k_quantize(const float *x, void *dst, int64_t cols);

/* One weight row (cols elements) of the type times one quantized vector in
 * the scalar layout. */
typedef float (*smoe_vec_dot_fn)(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q4_0_q8(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q4_1_q8(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q5_0_q8(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q5_1_q8(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q8_0_q8(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q8_1_q8(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q2_k_q8k(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q3_k_q8k(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q4_k_q8k(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q5_k_q8k(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q6_k_q8k(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_q8_k_q8k(int64_t cols, const uint8_t *w, const void *act);
/* float weights times float32 activations */
float smoe_vec_dot_f32(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_f16(int64_t cols, const uint8_t *w, const void *act);
float smoe_vec_dot_bf16(int64_t cols, const uint8_t *w, const void *act);

#endif
