/* ops.c - the matmul driver (threads, tiles, activation quantization; the
 * kernels are in kernels_scalar.c and simd_*.c, listed in kernels.h) and
 * the element-wise operations. */
#include "ops.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

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
float smoe_dot_f32(const float *a, const float *b, int64_t n) {
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

/* The exact float path for rows [r0, r1) and n vectors (out[t*rows + r]). */
static void float_rows(const smoe_matrix *w, int64_t r0, int64_t r1, const float *x, int64_t n, float *out) {
    const int64_t rows = w->rows, cols = w->cols;
    const smoe_type_info *ti = smoe_type_get(w->type);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        if (w->type == SMOE_TYPE_F32) {
            for (int64_t t = 0; t < n; t++) out[t * rows + r] = smoe_dot_f32((const float *)(const void *)wr, x + t * cols, cols);
            continue;
        }
        float buf[MATMUL_CHUNK];
        for (int64_t t = 0; t < n; t++) out[t * rows + r] = 0;
        for (int64_t c0 = 0; c0 < cols; c0 += MATMUL_CHUNK) {
            int64_t len = cols - c0 < MATMUL_CHUNK ? cols - c0 : MATMUL_CHUNK;
            ti->to_float(wr + c0 / ti->block_size * ti->block_bytes, buf, len);
            for (int64_t t = 0; t < n; t++) out[t * rows + r] += smoe_dot_f32(buf, x + t * cols + c0, len);
        }
    }
}

void smoe_matmul(float *out, const smoe_matrix *w, const float *x, int64_t n) {
    smoe_matmul_ex(NULL, out, w, x, n);
}

/* ---------------------------------------------------------------------------
 * The matmul driver: quantize the activations once, then split the rows
 * (or, for matrices of few rows, the vectors) evenly over the threads.
 * Each thread walks its rows in tiles of about TILE_BYTES of weights, and a
 * kernel goes over a tile once per group of a few vectors, so that the
 * tile stays in the core's L2 cache while the vectors go by: the weights
 * come from memory once per call.
 * ------------------------------------------------------------------------- */

#define TILE_BYTES (128 * 1024)
/* Less work than this (weight bytes times vectors) runs on one thread: a
 * parallel region costs a few microseconds. */
#define PARALLEL_MIN_WORK (96 * 1024)
/* Rows of a thread's share are a multiple of this (cache lines of output). */
#define ROW_QUANTUM 16

static size_t act_bytes(const smoe_kernels *k, int kind, int64_t cols) {
    return kind == SMOE_ACT_F32 ? 0 : k->act[kind].bytes(cols);
}

size_t smoe_mm_scratch_bytes(const smoe_kernels *k, int64_t max_cols, int64_t max_n) {
    if (!k || max_cols < 1 || max_n < 1) return 0;
    const int64_t c32 = (max_cols + 31) / 32 * 32, c256 = (max_cols + 255) / 256 * 256;
    size_t per = 0;
    if (k->act[SMOE_ACT_Q8].bytes) per += k->act[SMOE_ACT_Q8].bytes(c32);
    if (k->act[SMOE_ACT_Q8K].bytes) per += k->act[SMOE_ACT_Q8K].bytes(c256);
    return per * (size_t)max_n;
}

typedef struct mm_job {
    const smoe_kernels *k;
    int count;
    const smoe_matrix *const *w;
    float *const *out;
    const float *x;          /* the slice's first vector */
    int64_t cols, nt;        /* vectors in this slice */
    int64_t out_t0;          /* the slice's first vector in the outputs */
    const uint8_t *act[SMOE_ACT_KINDS];
    size_t astride[SMOE_ACT_KINDS];
    bool fast[SMOE_MATMUL_MAX]; /* matrix i runs its kernel (else the float path) */
} mm_job;

/* Matrix i, rows [r0, r1), the slice's vectors [ta, tb). */
static void mm_part(const mm_job *j, int i, int64_t r0, int64_t r1, int64_t ta, int64_t tb) {
    const smoe_matrix *w = j->w[i];
    float *out = j->out[i] + (j->out_t0 + ta) * w->rows;
    if (r0 >= r1 || ta >= tb) return;
    if (!j->fast[i]) {
        float_rows(w, r0, r1, j->x + ta * j->cols, tb - ta, out);
        return;
    }
    const smoe_weight_kernel *wk = &j->k->w[w->type];
    const uint8_t *act;
    size_t astride;
    if (wk->act == SMOE_ACT_F32) {
        act = (const uint8_t *)(j->x + ta * j->cols);
        astride = (size_t)j->cols * sizeof(float);
    } else {
        act = j->act[wk->act] + (size_t)ta * j->astride[wk->act];
        astride = j->astride[wk->act];
    }
    int64_t tile = (int64_t)(TILE_BYTES / w->row_bytes);
    if (tile < 1) tile = 1;
    for (int64_t r = r0; r < r1; r += tile) {
        const int64_t nr = r1 - r < tile ? r1 - r : tile;
        wk->gemm(j->cols, (const uint8_t *)w->data + (size_t)r * w->row_bytes, w->row_bytes, nr, act, astride,
                 tb - ta, out + r, (size_t)w->rows);
    }
}

/* Thread ith of nth: quantize its share of the vectors, wait for all, then
 * compute its share of every matrix. */
static void mm_thread(const mm_job *j, uint8_t *const act[SMOE_ACT_KINDS], int ith, int nth) {
    int kinds[SMOE_ACT_KINDS], nk = 0;
    for (int a = 1; a < SMOE_ACT_KINDS; a++)
        if (act[a]) kinds[nk++] = a;
    const int64_t nq = nk * j->nt;
    for (int64_t q = (int64_t)ith * nq / nth; q < (int64_t)(ith + 1) * nq / nth; q++) {
        const int a = kinds[q / j->nt];
        const int64_t t = q % j->nt;
        j->k->act[a].quantize(j->x + t * j->cols, act[a] + (size_t)t * j->astride[a], j->cols);
    }
    if (nq && nth > 1) {
        #pragma omp barrier
    }
    for (int i = 0; i < j->count; i++) {
        const int64_t rows = j->w[i]->rows;
        if (rows >= (int64_t)ROW_QUANTUM * nth || j->nt < nth) {
            /* rows: even shares in whole quanta */
            const int64_t q = (rows + ROW_QUANTUM - 1) / ROW_QUANTUM;
            int64_t r0 = (int64_t)ith * q / nth * ROW_QUANTUM, r1 = (int64_t)(ith + 1) * q / nth * ROW_QUANTUM;
            if (r1 > rows) r1 = rows;
            mm_part(j, i, r0 < rows ? r0 : rows, r1, 0, j->nt);
        } else {
            /* few rows, several vectors: split the vectors */
            mm_part(j, i, 0, rows, (int64_t)ith * j->nt / nth, (int64_t)(ith + 1) * j->nt / nth);
        }
    }
}

int smoe_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void smoe_matmul_multi(const smoe_mm *mm, int count, float *const out[], const smoe_matrix *const w[],
                       const float *x, int64_t n) {
    if (count < 1 || n < 1) return;
    const smoe_kernels *k = mm && mm->k ? mm->k : smoe_kernels_reference();
    const int64_t cols = w[0]->cols;
    mm_job j = {.k = k, .count = count, .w = w, .out = out, .cols = cols};
    /* the activation kinds the kernels want, and their bytes per vector */
    bool need[SMOE_ACT_KINDS] = {false};
    size_t per = 0, work = 0;
    for (int i = 0; i < count; i++) {
        const smoe_weight_kernel *wk = &k->w[w[i]->type];
        j.fast[i] = wk->gemm != NULL;
        if (j.fast[i] && wk->act != SMOE_ACT_F32 && !need[wk->act]) {
            need[wk->act] = true;
            j.astride[wk->act] = act_bytes(k, wk->act, cols);
            per += j.astride[wk->act];
        }
        work += (size_t)w[i]->rows * w[i]->row_bytes;
    }
    uint8_t *scratch = mm ? mm->scratch : NULL;
    int64_t slice = n;
    if (per) {
        const size_t fit = scratch ? mm->scratch_bytes / per : 0;
        if (fit == 0) { /* no room: the float path for the quantized ones */
            for (int i = 0; i < count; i++)
                if (j.fast[i] && k->w[w[i]->type].act != SMOE_ACT_F32) j.fast[i] = false;
            for (int a = 0; a < SMOE_ACT_KINDS; a++) need[a] = false;
        } else if ((size_t)slice > fit) {
            slice = (int64_t)fit;
        }
    }
    uint8_t *act[SMOE_ACT_KINDS] = {NULL};
    size_t off = 0;
    for (int a = 1; a < SMOE_ACT_KINDS; a++)
        if (need[a]) {
            act[a] = scratch + off;
            j.act[a] = act[a];
            off += j.astride[a] * (size_t)slice;
        }
    for (int64_t t0 = 0; t0 < n; t0 += slice) {
        j.nt = n - t0 < slice ? n - t0 : slice;
        j.x = x + t0 * cols;
        j.out_t0 = t0;
        const int nth = work * (size_t)j.nt >= PARALLEL_MIN_WORK ? smoe_max_threads() : 1;
        if (nth <= 1) {
            mm_thread(&j, act, 0, 1);
            continue;
        }
        #pragma omp parallel num_threads(nth)
        {
#ifdef _OPENMP
            mm_thread(&j, act, omp_get_thread_num(), omp_get_num_threads());
#endif
        }
    }
}

void smoe_matmul_ex(const smoe_mm *mm, float *out, const smoe_matrix *w, const float *x, int64_t n) {
    float *const o[1] = {out};
    const smoe_matrix *const m[1] = {w};
    smoe_matmul_multi(mm, 1, o, m, x, n);
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
