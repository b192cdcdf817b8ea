/* test_forward.c - the public forward API: batches mixing sequences, KV
 * cache rewinding, selective logits, and rejected batches. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smoe.h"
#include "model/synth.h"

typedef struct fixture {
    char path[64];
    smoe_model *m;
    int32_t V;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    char err[SMOE_ERR_SIZE];
    snprintf(fx->path, sizeof fx->path, "/tmp/smoe-test-fwd-%d.gguf", (int)getpid());
    smoe_synth_opts o;
    smoe_synth_preset("tiny", &o);
    o.seed = 5;
    o.n_ctx = 64;
    if (smoe_synth_write(&o, fx->path, err)) { fprintf(stderr, "%s\n", err); return -1; }
    fx->m = smoe_model_load(fx->path, err);
    if (!fx->m) { fprintf(stderr, "%s\n", err); return -1; }
    fx->V = smoe_model_hparams(fx->m)->n_vocab;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    smoe_model_free(fx->m);
    unlink(fx->path);
    free(fx);
    return 0;
}

static float max_diff(const float *a, const float *b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* logits of every position of tokens[0..n), one sequence alone */
static float *run_alone(fixture *fx, const int32_t *tokens, int32_t n) {
    char err[SMOE_ERR_SIZE];
    smoe_seq *s = smoe_seq_new(fx->m, 0, err);
    smoe_ctx *c = smoe_ctx_new(fx->m, n, err);
    assert_non_null(s);
    assert_non_null(c);
    smoe_batch_entry e[16];
    for (int32_t i = 0; i < n; i++) e[i] = (smoe_batch_entry){s, i, tokens[i], true};
    float *out = malloc((size_t)n * (size_t)fx->V * sizeof(float));
    assert_int_equal(smoe_forward(c, e, n, out, err), 0);
    smoe_ctx_free(c);
    smoe_seq_free(s);
    return out;
}

static void test_mixed_sequences_in_one_batch(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    const int32_t a[5] = {1, 40, 41, 42, 200}, b[3] = {1, 7, 99};
    float *ra = run_alone(fx, a, 5), *rb = run_alone(fx, b, 3);
    smoe_seq *sa = smoe_seq_new(fx->m, 32, err), *sb = smoe_seq_new(fx->m, 32, err);
    smoe_ctx *c = smoe_ctx_new(fx->m, 8, err);
    /* interleaved: a0 b0 a1 b1 a2 b2 a3 a4 */
    smoe_batch_entry e[8] = {
        {sa, 0, a[0], true}, {sb, 0, b[0], true}, {sa, 1, a[1], true}, {sb, 1, b[1], true},
        {sa, 2, a[2], true}, {sb, 2, b[2], true}, {sa, 3, a[3], true}, {sa, 4, a[4], true},
    };
    float *out = malloc(8 * (size_t)fx->V * sizeof(float));
    assert_int_equal(smoe_forward(c, e, 8, out, err), 0);
    const int ia[5] = {0, 2, 4, 6, 7}, ib[3] = {1, 3, 5};
    for (int i = 0; i < 5; i++)
        assert_true(max_diff(out + (size_t)ia[i] * fx->V, ra + (size_t)i * fx->V, (size_t)fx->V) < 1e-5f);
    for (int i = 0; i < 3; i++)
        assert_true(max_diff(out + (size_t)ib[i] * fx->V, rb + (size_t)i * fx->V, (size_t)fx->V) < 1e-5f);
    free(out);
    free(ra);
    free(rb);
    smoe_ctx_free(c);
    smoe_seq_free(sa);
    smoe_seq_free(sb);
}

static void test_rewind_and_selective_logits(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    const int32_t first[6] = {1, 10, 11, 12, 13, 14}, second[6] = {1, 10, 11, 50, 51, 52};
    float *want = run_alone(fx, second, 6);
    smoe_seq *s = smoe_seq_new(fx->m, 0, err);
    smoe_ctx *c = smoe_ctx_new(fx->m, 6, err);
    smoe_batch_entry e[6];
    for (int i = 0; i < 6; i++) e[i] = (smoe_batch_entry){s, i, first[i], false};
    float *out = malloc(6 * (size_t)fx->V * sizeof(float));
    out[0] = 12345.0f;
    assert_int_equal(smoe_forward(c, e, 6, out, err), 0);
    assert_true(out[0] == 12345.0f); /* no entry asked for logits */
    /* rewind to position 3 and continue differently; only the last asks */
    for (int i = 3; i < 6; i++) e[i - 3] = (smoe_batch_entry){s, i, second[i], i == 5};
    assert_int_equal(smoe_forward(c, e, 3, out, err), 0);
    assert_true(max_diff(out, want + 5 * (size_t)fx->V, (size_t)fx->V) < 1e-5f);
    free(out);
    free(want);
    smoe_ctx_free(c);
    smoe_seq_free(s);
}

static void expect_error(smoe_ctx *c, smoe_batch_entry *e, int32_t n, float *out, const char *words) {
    char err[SMOE_ERR_SIZE] = "";
    assert_int_equal(smoe_forward(c, e, n, out, err), -1);
    if (!strstr(err, words)) fail_msg("message '%s' lacks '%s'", err, words);
}

static void test_bad_batches_are_rejected(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    smoe_seq *s = smoe_seq_new(fx->m, 8, err);
    smoe_ctx *c = smoe_ctx_new(fx->m, 4, err);
    float *out = malloc(4 * (size_t)fx->V * sizeof(float));
    smoe_batch_entry e[5] = {{s, 0, 1, true}, {s, 1, 2, true}, {s, 2, 3, true}, {s, 3, 4, true}, {s, 4, 5, true}};
    expect_error(c, e, 5, out, "exceeds");
    smoe_batch_entry bad_tok = {s, 0, fx->V, true};
    expect_error(c, &bad_tok, 1, out, "outside the vocabulary");
    smoe_batch_entry neg_tok = {s, 0, -1, true};
    expect_error(c, &neg_tok, 1, out, "outside the vocabulary");
    smoe_batch_entry gap = {s, 2, 1, true};
    expect_error(c, &gap, 1, out, "skips ahead");
    smoe_batch_entry past = {s, 8, 1, true};
    expect_error(c, &past, 1, out, "outside the context");
    smoe_batch_entry no_seq = {NULL, 0, 1, true};
    expect_error(c, &no_seq, 1, out, "no sequence");
    /* the sequence is still usable after rejected batches */
    assert_int_equal(smoe_forward(c, e, 4, out, err), 0);
    assert_null(smoe_seq_new(fx->m, -3, err));
    assert_null(smoe_ctx_new(fx->m, 0, err));
    free(out);
    smoe_ctx_free(c);
    smoe_seq_free(s);
}

/* F16 (the default) and F32 KV caches: sizes, and logits that differ only
 * by the half-precision rounding of the stored keys and values. */
static void test_kv_cache_types(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    const smoe_hparams *hp = smoe_model_hparams(fx->m);
    const size_t elems = 2 * (size_t)hp->n_layers * (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    assert_int_equal(smoe_kv_bytes_per_pos(fx->m, SMOE_KV_F16), elems * 2);
    assert_int_equal(smoe_kv_bytes_per_pos(fx->m, SMOE_KV_F32), elems * 4);
    assert_null(smoe_seq_new_typed(fx->m, 8, (smoe_kv_type)7, err));
    assert_non_null(strstr(err, "KV cache type"));

    const int32_t toks[8] = {1, 72, 101, 108, 108, 111, 33, 200};
    float *out[2];
    const smoe_kv_type types[2] = {SMOE_KV_F16, SMOE_KV_F32};
    for (int k = 0; k < 2; k++) {
        smoe_seq *s = smoe_seq_new_typed(fx->m, 16, types[k], err);
        smoe_ctx *c = smoe_ctx_new(fx->m, 4, err);
        assert_non_null(s);
        assert_non_null(c);
        out[k] = malloc(8 * (size_t)fx->V * sizeof(float));
        /* two batches, so the second reads keys stored by the first */
        smoe_batch_entry e[8];
        for (int32_t i = 0; i < 8; i++) e[i] = (smoe_batch_entry){s, i, toks[i], true};
        assert_int_equal(smoe_forward(c, e, 4, out[k], err), 0);
        assert_int_equal(smoe_forward(c, e + 4, 4, out[k] + 4 * (size_t)fx->V, err), 0);
        smoe_ctx_free(c);
        smoe_seq_free(s);
    }
    float mx = 0;
    for (size_t i = 0; i < 8 * (size_t)fx->V; i++) mx = fmaxf(mx, fabsf(out[1][i]));
    float d = max_diff(out[0], out[1], 8 * (size_t)fx->V);
    assert_true(d > 0);            /* the F16 cache did round */
    assert_true(d < 2e-3f * mx);   /* by about 3e-4 of the largest logit */
    free(out[0]);
    free(out[1]);
}

static void test_load_errors(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    assert_null(smoe_model_load("/nonexistent/model.gguf", err));
    assert_non_null(strstr(err, "cannot open"));
    assert_null(smoe_model_load("/tmp", err));
    assert_non_null(strstr(err, "not a regular file"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_sequences_in_one_batch),
        cmocka_unit_test(test_rewind_and_selective_logits),
        cmocka_unit_test(test_bad_batches_are_rejected),
        cmocka_unit_test(test_kv_cache_types),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
