/* test_kernels.c - the matmul kernels: every SIMD path this CPU runs against
 * the scalar path for every weight type, the scalar path (8-bit
 * activations) against the float product of the dequantized weights, and
 * the driver's promises: results independent of the batch size and the
 * thread count, slicing when the scratch is small, several matrices at
 * once.  Error measure: NSE = sum((a-b)^2) / sum(b^2) over all outputs; the
 * worst per type and path is printed as a TAP comment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/common.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/types.h"

/* a SIMD path against the scalar one: the same integer block sums, only the
 * float sums' order differs */
#define NSE_LIMIT 5e-4
/* the scalar path, with its activations rounded to 8 bits (per block of 32,
 * or of 256 for the K types), against the float product: measured at most
 * about 2e-4 (blocks of 32) and 5e-4 (blocks of 256) with these
 * activations, which have a large feature every 97 elements */
#define QUANT_NSE_LIMIT 1e-3

static const uint32_t types[] = {
    SMOE_TYPE_F32,  SMOE_TYPE_F16,  SMOE_TYPE_BF16, SMOE_TYPE_Q4_0, SMOE_TYPE_Q4_1,
    SMOE_TYPE_Q5_0, SMOE_TYPE_Q5_1, SMOE_TYPE_Q8_0, SMOE_TYPE_Q8_1, SMOE_TYPE_Q2_K,
    SMOE_TYPE_Q3_K, SMOE_TYPE_Q4_K, SMOE_TYPE_Q5_K, SMOE_TYPE_Q6_K, SMOE_TYPE_Q8_K,
};
#define N_TYPES (sizeof types / sizeof *types)

/* rows x cols; rows are not multiples of the driver's row quantum (16),
 * one shape spans several row tiles, and 96 columns is an odd number of
 * 32-blocks (only for the types whose block fits) */
static const int64_t shapes[][2] = {{37, 256}, {19, 4096}, {131, 512}, {150, 4096}, {5, 96}, {3, 32}};
#define N_SHAPES (sizeof shapes / sizeof *shapes)
static const int64_t batch_sizes[] = {1, 3, 16, 67};
#define N_BATCH (sizeof batch_sizes / sizeof *batch_sizes)
#define MAX_N 67

static uint64_t rng_state;
static float uniform(void) { return (float)((smoe_splitmix64(&rng_state) >> 11) * 0x1p-53); }
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += uniform();
    return (s - 2.0f) * 1.7320508f;
}

typedef struct mat {
    uint8_t *data;
    smoe_matrix m;
} mat;

/* Random weights: rows of different scales, quantized into the type. */
static mat make_matrix(uint32_t type, int64_t rows, int64_t cols, uint64_t seed) {
    const smoe_type_info *ti = smoe_type_get(type);
    mat w;
    size_t rb = smoe_type_row_bytes(type, cols);
    w.data = malloc(rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof(float));
    assert_non_null(w.data);
    rng_state = seed;
    for (int64_t r = 0; r < rows; r++) {
        const float scale = 0.02f * (1.0f + 4.0f * uniform());
        for (int64_t c = 0; c < cols; c++) row[c] = scale * gauss();
        ti->from_float(row, w.data + (size_t)r * rb, cols);
    }
    free(row);
    w.m = (smoe_matrix){w.data, type, rows, cols, rb};
    return w;
}

/* Activations with a few large features, as real models have. */
static float *make_x(int64_t n, int64_t cols, uint64_t seed) {
    float *x = malloc((size_t)(n * cols) * sizeof(float));
    assert_non_null(x);
    rng_state = seed;
    for (int64_t i = 0; i < n * cols; i++) x[i] = gauss() * (i % 97 == 5 ? 8.0f : 1.0f);
    return x;
}

static bool type_fits(uint32_t type, int64_t cols) { return cols % smoe_type_get(type)->block_size == 0; }

typedef struct runner {
    smoe_mm mm;
} runner;

static runner runner_new(const smoe_kernels *k, int64_t cols, int64_t n) {
    runner r = {{k, NULL, 0}};
    size_t sb = smoe_mm_scratch_bytes(k, cols, n);
    if (sb) {
        r.mm.scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
        assert_non_null(r.mm.scratch);
        r.mm.scratch_bytes = sb;
    }
    return r;
}

static void runner_free(runner *r) { free(r->mm.scratch); }

static float *matmul(const smoe_kernels *k, const smoe_matrix *w, const float *x, int64_t n) {
    runner r = runner_new(k, w->cols, n);
    float *out = malloc((size_t)(n * w->rows) * sizeof(float));
    assert_non_null(out);
    for (int64_t i = 0; i < n * w->rows; i++) out[i] = NAN;
    smoe_matmul_ex(&r.mm, out, w, x, n);
    runner_free(&r);
    return out;
}

static double nse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : (num > 0 ? INFINITY : 0);
}

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* ---------------------------------------------------------------------------
 * One SIMD path against the scalar path
 * ------------------------------------------------------------------------- */

static void check_path(const char *name) {
    char err[SMOE_ERR_SIZE];
    const smoe_kernels *k = smoe_kernels_by_name(name, err);
    if (!k) {
        printf("# skipping the %s path: %s\n", name, err);
        skip();
    }
    const smoe_kernels *scalar = smoe_kernels_scalar();
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = types[ti];
        double worst = 0;
        int fast = k->w[type].gemm != NULL;
        for (size_t si = 0; si < N_SHAPES; si++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1];
            if (!type_fits(type, cols)) continue;
            mat w = make_matrix(type, rows, cols, 1000 + 17 * ti + si);
            float *x = make_x(MAX_N, cols, 77 + si);
            set_threads(2);
            float *ref = matmul(scalar, &w.m, x, MAX_N);
            float *full = matmul(k, &w.m, x, MAX_N);
            for (size_t bi = 0; bi < N_BATCH; bi++) {
                const int64_t n = batch_sizes[bi];
                float *out = matmul(k, &w.m, x, n);
                const double e = nse(out, ref, (size_t)(n * rows));
                if (!(e <= NSE_LIMIT))
                    printf("# %s %s %lldx%lld n=%lld: NSE %.3e\n", name, smoe_type_get(type)->name, (long long)rows,
                           (long long)cols, (long long)n, e);
                assert_true(e <= NSE_LIMIT);
                worst = e > worst ? e : worst;
                /* each result depends on its row and vector alone */
                assert_memory_equal(out, full, (size_t)(n * rows) * sizeof(float));
                free(out);
            }
            /* and not on the number of threads */
            set_threads(1);
            float *one = matmul(k, &w.m, x, 16);
            assert_memory_equal(one, full, (size_t)(16 * rows) * sizeof(float));
            set_threads(2);
            free(one);
            free(ref);
            free(full);
            free(x);
            free(w.data);
        }
        printf("# %s %-4s vs scalar: worst NSE %.3e%s\n", name, smoe_type_get(type)->name, worst,
               fast ? "" : " (float path: no kernel for this type)");
    }
}

static void test_path_avx2(void **state) {
    (void)state;
    check_path("avx2");
}

static void test_path_avx512(void **state) {
    (void)state;
    check_path("avx512");
}

static void test_path_neon(void **state) {
    (void)state;
    check_path("neon");
}

static void test_path_best(void **state) {
    (void)state;
    printf("# best kernels on this CPU: %s\n", smoe_kernels_best()->name);
    check_path("best");
}

/* ---------------------------------------------------------------------------
 * The scalar path (8-bit activations) against the float product of the
 * dequantized weights (the reference path)
 * ------------------------------------------------------------------------- */

static void test_scalar_vs_float(void **state) {
    (void)state;
    set_threads(2);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = types[ti];
        double worst = 0;
        for (size_t si = 0; si < N_SHAPES; si++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1];
            if (!type_fits(type, cols)) continue;
            mat w = make_matrix(type, rows, cols, 2000 + 13 * ti + si);
            float *x = make_x(16, cols, 99 + si);
            float *a = matmul(smoe_kernels_scalar(), &w.m, x, 16);
            float *b = matmul(smoe_kernels_reference(), &w.m, x, 16);
            float *c = malloc((size_t)(16 * rows) * sizeof(float));
            smoe_matmul(c, &w.m, x, 16); /* the exact path, also without a context */
            assert_memory_equal(b, c, (size_t)(16 * rows) * sizeof(float));
            const double e = nse(a, b, (size_t)(16 * rows));
            assert_true(e <= QUANT_NSE_LIMIT);
            worst = e > worst ? e : worst;
            free(a);
            free(b);
            free(c);
            free(x);
            free(w.data);
        }
        printf("# scalar %-4s vs float product of the dequantized weights: worst NSE %.3e\n",
               smoe_type_get(type)->name, worst);
    }
}

/* ---------------------------------------------------------------------------
 * Activation quantizers of the paths that keep the scalar layout: the same
 * bytes as the scalar quantizers, edge cases included (zero blocks, NaN,
 * infinities, exact ties of rounding)
 * ------------------------------------------------------------------------- */

/* cols >= 96; x holds at least 192 floats */
static void fill_edge_x(float *x, int64_t cols) {
    rng_state = 4242;
    for (int64_t i = 0; i < (cols > 192 ? cols : 192); i++) x[i] = gauss() * (i % 97 == 5 ? 8.0f : 1.0f);
    for (int i = 0; i < 32; i++) x[32 + i] = 0.0f;            /* a block of zeros */
    x[64 + 3] = NAN;                                           /* NaN is no maximum */
    x[96 + 7] = INFINITY;                                      /* scale infinite */
    x[128 + 1] = -0.0f;
    /* max 127: the scale is 1 and every other level is a tie, k + 0.5 */
    for (int i = 0; i < 32; i++) x[160 + i] = i == 0 ? 127.0f : (float)(i - 16) + 0.5f;
}

static void test_act_quantizers(void **state) {
    (void)state;
    const char *names[] = {"avx2", "avx512", "neon"};
    const smoe_kernels *s = smoe_kernels_scalar();
    const int64_t cols_list[] = {256, 96, 4096};
    for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
        const smoe_kernels *k = smoe_kernels_by_name(names[n], NULL);
        if (!k) continue;
        for (int kind = SMOE_ACT_Q8; kind < SMOE_ACT_KINDS; kind++) {
            if (k->act[kind].bytes != s->act[kind].bytes) continue; /* a layout of its own */
            for (size_t c = 0; c < 3; c++) {
                const int64_t cols = cols_list[c];
                if (kind == SMOE_ACT_Q8K && cols % 256) continue;
                const size_t nb = s->act[kind].bytes(cols);
                float *x = malloc(4096 * sizeof(float)); /* the edge cases fill 192 */
                uint8_t *a = aligned_alloc(64, nb), *b = aligned_alloc(64, nb);
                assert_true(x && a && b);
                fill_edge_x(x, cols);
                memset(a, 0x5a, nb);
                memset(b, 0x5a, nb);
                s->act[kind].quantize(x, a, cols);
                k->act[kind].quantize(x, b, cols);
                assert_memory_equal(a, b, nb);
                free(x);
                free(a);
                free(b);
            }
            printf("# %s activation quantizer %d: the scalar bytes\n", k->name, kind);
        }
    }
}

/* ---------------------------------------------------------------------------
 * A path's gemm called directly: every sub-tile (odd row counts, vectors
 * from any position, one at a time) gives the bits of the whole tile
 * ------------------------------------------------------------------------- */

static void check_tiles(const smoe_kernels *k, uint32_t type, int64_t cols) {
    const smoe_weight_kernel *wk = &k->w[type];
    if (!wk->gemm || !type_fits(type, cols)) return;
    enum { R = 11, T = 9 };
    mat w = make_matrix(type, R, cols, 300 + type);
    float *x = make_x(T, cols, 301 + type);
    size_t astride = (size_t)cols * sizeof(float);
    uint8_t *act = (uint8_t *)x, *buf = NULL;
    if (wk->act != SMOE_ACT_F32) {
        astride = k->act[wk->act].bytes(cols);
        buf = aligned_alloc(64, astride * T);
        assert_non_null(buf);
        for (int t = 0; t < T; t++) k->act[wk->act].quantize(x + (size_t)t * cols, buf + (size_t)t * astride, cols);
        act = buf;
    }
    float full[R * T], part[R * T];
    wk->gemm(cols, w.data, w.m.row_bytes, R, act, astride, T, full, R);
    /* splits of rows and vectors at every position */
    const int splits[][4] = {{0, 1, 0, 1}, {3, 5, 2, 3}, {1, 7, 4, 5}, {10, 1, 8, 1}, {0, 11, 1, 7}, {2, 9, 0, 9}};
    for (size_t s = 0; s < sizeof splits / sizeof *splits; s++) {
        const int r0 = splits[s][0], nr = splits[s][1], t0 = splits[s][2], nt = splits[s][3];
        for (int i = 0; i < R * T; i++) part[i] = NAN;
        wk->gemm(cols, w.data + (size_t)r0 * w.m.row_bytes, w.m.row_bytes, nr, act + (size_t)t0 * astride, astride,
                 nt, part + t0 * R + r0, R);
        for (int t = t0; t < t0 + nt; t++)
            for (int r = r0; r < r0 + nr; r++) assert_memory_equal(&part[t * R + r], &full[t * R + r], sizeof(float));
    }
    free(buf);
    free(x);
    free(w.data);
}

static void test_gemm_tiles(void **state) {
    (void)state;
    const char *names[] = {"scalar", "avx2", "avx512", "neon"};
    for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
        const smoe_kernels *k = smoe_kernels_by_name(names[n], NULL);
        if (!k) continue;
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            check_tiles(k, types[ti], 512);
            check_tiles(k, types[ti], 96);
            check_tiles(k, types[ti], 100); /* float types: a tail of columns */
        }
        printf("# %s gemm: sub-tiles give the whole tile's bits\n", k->name);
    }
}

/* ---------------------------------------------------------------------------
 * The driver
 * ------------------------------------------------------------------------- */

/* A scratch for fewer vectors than the batch: done in slices, same bits;
 * no scratch at all: the float path. */
static void test_small_scratch(void **state) {
    (void)state;
    const smoe_kernels *k = smoe_kernels_best();
    const uint32_t tt[] = {SMOE_TYPE_Q4_0, SMOE_TYPE_Q4_K, SMOE_TYPE_F16};
    for (size_t i = 0; i < 3; i++) {
        mat w = make_matrix(tt[i], 40, 512, 5 + i);
        float *x = make_x(16, 512, 6);
        float *full = matmul(k, &w.m, x, 16);
        runner r = runner_new(k, 512, 5);
        float *out = malloc(16 * 40 * sizeof(float));
        smoe_matmul_ex(&r.mm, out, &w.m, x, 16);
        assert_memory_equal(out, full, 16 * 40 * sizeof(float));
        smoe_mm none = {k, NULL, 0};
        smoe_matmul_ex(&none, out, &w.m, x, 16);
        float *exact = matmul(smoe_kernels_reference(), &w.m, x, 16);
        if (tt[i] != SMOE_TYPE_F16) assert_memory_equal(out, exact, 16 * 40 * sizeof(float));
        assert_true(nse(out, full, 16 * 40) <= NSE_LIMIT);
        runner_free(&r);
        free(out);
        free(exact);
        free(full);
        free(x);
        free(w.data);
    }
}

/* Several matrices of different types sharing an input: the same bits as
 * one at a time. */
static void test_multi(void **state) {
    (void)state;
    const smoe_kernels *k = smoe_kernels_best();
    const uint32_t tt[] = {SMOE_TYPE_Q4_0, SMOE_TYPE_Q4_K, SMOE_TYPE_F16, SMOE_TYPE_Q6_K};
    const int64_t rows[] = {64, 8, 33, 200};
    mat w[4];
    const smoe_matrix *m[4];
    float *out[4];
    float *x = make_x(9, 1024, 3);
    for (int i = 0; i < 4; i++) {
        w[i] = make_matrix(tt[i], rows[i], 1024, 40 + i);
        m[i] = &w[i].m;
        out[i] = malloc((size_t)(9 * rows[i]) * sizeof(float));
    }
    for (int n = 1; n <= 9; n += 8) {
        runner r = runner_new(k, 1024, n);
        smoe_matmul_multi(&r.mm, 4, out, m, x, n);
        for (int i = 0; i < 4; i++) {
            float *one = matmul(k, m[i], x, n);
            assert_memory_equal(out[i], one, (size_t)(n * rows[i]) * sizeof(float));
            free(one);
        }
        runner_free(&r);
    }
    for (int i = 0; i < 4; i++) {
        free(out[i]);
        free(w[i].data);
    }
    free(x);
}

static void test_names(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    assert_null(smoe_kernels_by_name("nonesuch", err));
    assert_non_null(strstr(err, "unknown kernels 'nonesuch'"));
    assert_ptr_equal(smoe_kernels_by_name("scalar", err), smoe_kernels_scalar());
    assert_ptr_equal(smoe_kernels_by_name("reference", err), smoe_kernels_reference());
    for (int i = 0; smoe_kernel_names[i]; i++) {
        const smoe_kernels *k = smoe_kernels_by_name(smoe_kernel_names[i], err);
        printf("# kernels %-9s %s\n", smoe_kernel_names[i], k ? "available" : err);
        if (k) assert_string_equal(k->name, smoe_kernel_names[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_scalar_vs_float),
        cmocka_unit_test(test_path_avx2),
        cmocka_unit_test(test_path_avx512),
        cmocka_unit_test(test_path_neon),
        cmocka_unit_test(test_path_best),
        cmocka_unit_test(test_act_quantizers),
        cmocka_unit_test(test_gemm_tiles),
        cmocka_unit_test(test_small_scratch),
        cmocka_unit_test(test_multi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
