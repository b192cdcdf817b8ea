/* ops.h - the numeric kernels of the forward pass.
 *
 * The model code calls these and nothing lower; parallelism lives here
 * (OpenMP), so the forward pass reads as the model's definition. */
#ifndef SMOE_OPS_H
#define SMOE_OPS_H

#include <stddef.h>
#include <stdint.h>

/* A weight matrix of `rows` output features by `cols` input features,
 * stored row by row in any type of types.h. */
typedef struct smoe_matrix {
    const void *data;
    uint32_t type;
    int64_t rows, cols;
    size_t row_bytes;
} smoe_matrix;

/* out[t][r] = sum_c W[r][c] * x[t][c] for t < n: a batch of n vectors.
 * Each weight row is read once per call, whatever n is. */
void smoe_matmul(float *out, const smoe_matrix *w, const float *x, int64_t n);

/* Dequantize row r of w into dst (w->cols floats). */
void smoe_matrix_row(const smoe_matrix *w, int64_t r, float *dst);

/* out = x / sqrt(mean(x^2) + eps) * weight, over n elements. */
void smoe_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);

/* Rotate adjacent pairs (v[2i], v[2i+1]) of the first n_rot elements of one
 * head by pos * theta^(-2i/n_rot): the layout of GGUF llama files. */
void smoe_rope(float *v, int32_t n_rot, int32_t pos, float theta);

/* In-place softmax over n elements. */
void smoe_softmax(float *x, int64_t n);

/* a[i] = silu(a[i]) * b[i] */
void smoe_swiglu(float *a, const float *b, int64_t n);

#endif
