/* ops.c - reference CPU kernels (portable C, OpenMP across rows). */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "types.h"

/* ---------------------------------------------------------------------------
 * Matrix products
 * ------------------------------------------------------------------------- */

void smoe_matrix_row(const smoe_matrix *w, int64_t r, float *dst) {
    const smoe_type_info *ti = smoe_type_get(w->type);
    ti->to_float((const uint8_t *)w->data + (size_t)r * w->row_bytes, dst, w->cols);
}

/* Sixteen independent partial sums let the compiler vectorise the loop
 * without reassociating floating-point additions. */
static float dot_f32(const float *a, const float *b, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* Weight rows that are not F32 are converted in chunks of this many
 * columns into a stack buffer: no allocation, so no failure path.  A
 * multiple of every block size (32 and 256). */
#define MATMUL_CHUNK 4096

void smoe_matmul(float *out, const smoe_matrix *w, const float *x, int64_t n) {
    const int64_t rows = w->rows, cols = w->cols;
    const smoe_type_info *ti = smoe_type_get(w->type);
    if (w->type == SMOE_TYPE_F32) {
        #pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *wr = (const float *)((const uint8_t *)w->data + (size_t)r * w->row_bytes);
            for (int64_t t = 0; t < n; t++) out[t * rows + r] = dot_f32(wr, x + t * cols, cols);
        }
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float buf[MATMUL_CHUNK];
        const uint8_t *wr = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int64_t t = 0; t < n; t++) out[t * rows + r] = 0;
        for (int64_t c0 = 0; c0 < cols; c0 += MATMUL_CHUNK) {
            int64_t len = cols - c0 < MATMUL_CHUNK ? cols - c0 : MATMUL_CHUNK;
            ti->to_float(wr + c0 / ti->block_size * ti->block_bytes, buf, len);
            for (int64_t t = 0; t < n; t++) out[t * rows + r] += dot_f32(buf, x + t * cols + c0, len);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Element-wise operations
 * ------------------------------------------------------------------------- */

void smoe_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

void smoe_rope(float *v, int32_t n_rot, int32_t pos, float theta) {
    for (int32_t i = 0; i < n_rot / 2; i++) {
        double freq = pow((double)theta, -2.0 * i / n_rot);
        double ang = pos * freq;
        float c = (float)cos(ang), s = (float)sin(ang);
        float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
    }
}

void smoe_softmax(float *x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int64_t i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void smoe_swiglu(float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}
