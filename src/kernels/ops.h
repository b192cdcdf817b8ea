/* ops.h - the numeric kernels of the forward pass.
 *
 * The model code calls these and nothing lower; parallelism lives here
 * (OpenMP), so the forward pass reads as the model's definition. */
#ifndef SMOE_OPS_H
#define SMOE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* A weight matrix of `rows` output features by `cols` input features,
 * stored row by row in any type of types.h. */
typedef struct smoe_matrix {
    const void *data;
    uint32_t type;
    int64_t rows, cols;
    size_t row_bytes;
} smoe_matrix;

/* out[t][r] = sum_c W[r][c] * x[t][c] for t < n: a batch of n vectors,
 * on the exact float path (every type dequantized to float32).  Each
 * weight row is read once per call, whatever n is. */
void smoe_matmul(float *out, const smoe_matrix *w, const float *x, int64_t n);

/* What a fast matmul runs with: a kernel table (kernels.h; NULL for the
 * exact float path) and scratch memory for the quantized activations,
 * 64-byte aligned (NULL and 0 are allowed).  A batch that does not fit the
 * scratch is done in slices of as many vectors as fit; when not even one
 * fits, the matrices that need quantized activations take the float path. */
typedef struct smoe_mm {
    const smoe_kernels *k;
    void *scratch;
    size_t scratch_bytes;
} smoe_mm;

/* Scratch that holds max_n vectors of up to max_cols columns for k. */
size_t smoe_mm_scratch_bytes(const smoe_kernels *k, int64_t max_cols, int64_t max_n);

/* smoe_matmul with mm's kernels: out[t*w->rows + r]. */
void smoe_matmul_ex(const smoe_mm *mm, float *out, const smoe_matrix *w, const float *x, int64_t n);

/* Up to SMOE_MATMUL_MAX matrices with the same input (same cols): the
 * activations are quantized once and every thread works on all of them in
 * one parallel region (q, k, v; gate and up). */
#define SMOE_MATMUL_MAX 4
void smoe_matmul_multi(const smoe_mm *mm, int count, float *const out[], const smoe_matrix *const w[],
                       const float *x, int64_t n);

/* Dequantize row r of w into dst (w->cols floats). */
void smoe_matrix_row(const smoe_matrix *w, int64_t r, float *dst);

/* out = x / sqrt(mean(x^2) + eps) * weight, over n elements. */
void smoe_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);

/* Rotate adjacent pairs (v[2i], v[2i+1]) of the first n_rot elements of one
 * head by pos * theta^(-2i/n_rot): the layout of GGUF llama files. */
void smoe_rope(float *v, int32_t n_rot, int32_t pos, float theta);

/* In-place softmax over n elements. */
/* a . b over n floats, in sixteen partial sums (a fixed order, vectorised) */
float smoe_dot_f32(const float *a, const float *b, int64_t n);
void smoe_softmax(float *x, int64_t n);

/* a[i] = silu(a[i]) * b[i] */
void smoe_swiglu(float *a, const float *b, int64_t n);

/* Threads a parallel region may use (OpenMP's setting; 1 without OpenMP). */
int smoe_max_threads(void);

#endif
