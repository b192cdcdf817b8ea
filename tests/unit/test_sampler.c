/* test_sampler.c - samplers and stop strings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"
#include "engine/sampler.h"
#include "engine/stopstr.h"

static smoe_sampler_params params(float temp) {
    smoe_sampler_params p;
    smoe_sampler_defaults(&p);
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    return p;
}

static int32_t sample_once(smoe_sampler *s, const float *logits, int n) {
    float buf[64];
    memcpy(buf, logits, (size_t)n * sizeof *buf);
    return smoe_sampler_sample(s, buf);
}

static void test_greedy(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    smoe_sampler_params p = params(0);
    smoe_sampler *s = smoe_sampler_new(&p, 5, err);
    float l[5] = {0.1f, 3.0f, -1.0f, 2.9f, 0.0f};
    assert_int_equal(sample_once(s, l, 5), 1);
    smoe_sampler_free(s);
}

static void test_seed_reproducible(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    float l[8] = {1, 1.2f, 0.8f, 1.1f, 0.9f, 1.0f, 1.05f, 0.95f};
    int32_t a[64], b[64], c[64];
    for (int run = 0; run < 3; run++) {
        smoe_sampler_params p = params(1.0f);
        p.seed = run == 2 ? 43 : 42;
        smoe_sampler *s = smoe_sampler_new(&p, 8, err);
        int32_t *dst = run == 0 ? a : run == 1 ? b : c;
        for (int i = 0; i < 64; i++) dst[i] = sample_once(s, l, 8);
        smoe_sampler_free(s);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

/* Draw many times and count which tokens appear. */
static void histogram(smoe_sampler_params p, const float *l, int n, int draws, int *count) {
    char err[SMOE_ERR_SIZE];
    smoe_sampler *s = smoe_sampler_new(&p, n, err);
    assert_non_null(s);
    memset(count, 0, (size_t)n * sizeof *count);
    for (int i = 0; i < draws; i++) count[sample_once(s, l, n)]++;
    smoe_sampler_free(s);
}

static void test_truncation(void **state) {
    (void)state;
    /* probabilities about 0.5, 0.3, 0.1, 0.05, 0.05 */
    float l[5] = {logf(0.5f), logf(0.3f), logf(0.1f), logf(0.05f), logf(0.05f)};
    int count[5];
    smoe_sampler_params p = params(1.0f);
    p.top_k = 2;
    histogram(p, l, 5, 2000, count);
    assert_true(count[0] > 0 && count[1] > 0);
    assert_int_equal(count[2] + count[3] + count[4], 0);
    p = params(1.0f);
    p.top_p = 0.85f; /* 0.5 + 0.3 < 0.85 <= 0.9: three tokens */
    histogram(p, l, 5, 2000, count);
    assert_true(count[2] > 0);
    assert_int_equal(count[3] + count[4], 0);
    p = params(1.0f);
    p.min_p = 0.5f; /* keeps p >= 0.25 */
    histogram(p, l, 5, 2000, count);
    assert_true(count[0] > 0 && count[1] > 0);
    assert_int_equal(count[2] + count[3] + count[4], 0);
    p = params(1.0f);
    p.top_k = 1;
    histogram(p, l, 5, 200, count);
    assert_int_equal(count[0], 200);
}

static void test_temperature_matches_softmax(void **state) {
    (void)state;
    float l[4] = {1.0f, 0.5f, 0.0f, -0.5f};
    const float T = 0.7f;
    int count[4];
    smoe_sampler_params p = params(T);
    const int draws = 40000;
    histogram(p, l, 4, draws, count);
    double z = 0;
    for (int i = 0; i < 4; i++) z += exp(l[i] / T);
    for (int i = 0; i < 4; i++) {
        double want = exp(l[i] / T) / z, got = (double)count[i] / draws;
        /* 40000 draws: the standard error is below 0.0025 */
        if (fabs(want - got) > 0.015) fail_msg("token %d: frequency %.4f, softmax %.4f", i, got, want);
    }
}

static void test_penalties_and_bias(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    float l[3] = {2.0f, 1.9f, -5.0f};
    smoe_sampler_params p = params(0);
    p.repeat_penalty = 1.1f; /* 2.0 / 1.1 = 1.82 < 1.9 */
    smoe_sampler *s = smoe_sampler_new(&p, 3, err);
    assert_int_equal(sample_once(s, l, 3), 0);
    smoe_sampler_accept(s, 0);
    assert_int_equal(sample_once(s, l, 3), 1);
    smoe_sampler_reset(s);
    assert_int_equal(sample_once(s, l, 3), 0);
    smoe_sampler_free(s);

    p = params(0);
    p.frequency_penalty = 0.06f; /* one occurrence: 1.94 > 1.9; two: 1.88 < 1.9 */
    s = smoe_sampler_new(&p, 3, err);
    smoe_sampler_accept(s, 0);
    assert_int_equal(sample_once(s, l, 3), 0);
    smoe_sampler_accept(s, 0);
    assert_int_equal(sample_once(s, l, 3), 1);
    smoe_sampler_free(s);

    p = params(0);
    p.presence_penalty = 0.2f;
    p.repeat_last_n = 2; /* the window forgets */
    s = smoe_sampler_new(&p, 3, err);
    smoe_sampler_accept(s, 0);
    assert_int_equal(sample_once(s, l, 3), 1);
    smoe_sampler_accept(s, 2);
    smoe_sampler_accept(s, 2);
    assert_int_equal(sample_once(s, l, 3), 0);
    smoe_sampler_free(s);

    smoe_logit_bias ban[2] = {{0, -INFINITY}, {2, 10.0f}};
    p = params(0);
    p.bias = ban;
    p.n_bias = 1;
    s = smoe_sampler_new(&p, 3, err);
    assert_int_equal(sample_once(s, l, 3), 1);
    smoe_sampler_free(s);
    p.n_bias = 2;
    s = smoe_sampler_new(&p, 3, err);
    assert_int_equal(sample_once(s, l, 3), 2);
    smoe_sampler_free(s);
    /* banned tokens are never drawn at any temperature */
    int count[3];
    p = params(5.0f);
    p.bias = ban;
    p.n_bias = 1;
    histogram(p, l, 3, 500, count);
    assert_int_equal(count[0], 0);
}

static void expect_bad(smoe_sampler_params p, const char *words) {
    char err[SMOE_ERR_SIZE] = "";
    assert_null(smoe_sampler_new(&p, 10, err));
    if (!strstr(err, words)) fail_msg("'%s' lacks '%s'", err, words);
}

static void test_bad_params(void **state) {
    (void)state;
    smoe_sampler_params p = params(-1);
    expect_bad(p, "temperature");
    p = params(1e9f);
    expect_bad(p, "temperature");
    p = params(NAN);
    expect_bad(p, "temperature");
    p = params(1);
    p.top_p = 0;
    expect_bad(p, "top_p");
    p.top_p = 1.5f;
    expect_bad(p, "top_p");
    p = params(1);
    p.top_k = -1;
    expect_bad(p, "top_k");
    p = params(1);
    p.min_p = 2;
    expect_bad(p, "min_p");
    p = params(1);
    p.repeat_penalty = 0;
    expect_bad(p, "repeat_penalty");
    p = params(1);
    p.presence_penalty = 3;
    expect_bad(p, "presence_penalty");
    smoe_logit_bias b = {10, 1.0f};
    p = params(1);
    p.bias = &b;
    p.n_bias = 1;
    expect_bad(p, "logit_bias");
}

/* ---------------------------------------------------------------------------
 * Stop strings
 * ------------------------------------------------------------------------- */

typedef struct sink { char buf[256]; size_t len; int calls; } sink;

static int to_sink(void *user, const char *t, size_t n) {
    sink *s = user;
    memcpy(s->buf + s->len, t, n);
    s->len += n;
    s->buf[s->len] = 0;
    s->calls++;
    return 0;
}

static void test_stop_strings(void **state) {
    (void)state;
    const char *stops[2] = {"</end>", "STOP"};
    smoe_stop_filter f;
    sink s = {0};
    smoe_stop_init(&f, stops, 2);
    assert_int_equal(smoe_stop_push(&f, "hello </", 8, to_sink, &s), 0);
    assert_string_equal(s.buf, "hello "); /* "</" is held back */
    assert_int_equal(smoe_stop_push(&f, "en", 2, to_sink, &s), 0);
    assert_string_equal(s.buf, "hello ");
    assert_int_equal(smoe_stop_push(&f, "d> more", 7, to_sink, &s), 1);
    assert_string_equal(s.buf, "hello ");
    smoe_stop_free(&f);

    /* a held prefix that turns out not to match is released, in order */
    sink t = {0};
    smoe_stop_init(&f, stops, 2);
    assert_int_equal(smoe_stop_push(&f, "ST", 2, to_sink, &t), 0);
    assert_int_equal(t.len, 0);
    assert_int_equal(smoe_stop_push(&f, "OP", 2, to_sink, &t), 1);
    assert_int_equal(t.len, 0);
    smoe_stop_free(&f);
    smoe_stop_init(&f, stops, 2);
    assert_int_equal(smoe_stop_push(&f, "ST", 2, to_sink, &t), 0);
    assert_int_equal(smoe_stop_push(&f, "ART", 3, to_sink, &t), 0);
    assert_string_equal(t.buf, "START");
    assert_int_equal(smoe_stop_push(&f, "</e", 3, to_sink, &t), 0);
    assert_int_equal(smoe_stop_flush(&f, to_sink, &t), 0);
    assert_string_equal(t.buf, "START</e"); /* end of text: held text comes out */
    smoe_stop_free(&f);
}

/* Not a test of speed (nothing is asserted): reports the sampler's cost. */
static void test_report_sampler_cost(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    const int V = 32000, N = 2000;
    float *base = malloc((size_t)V * sizeof *base), *l = malloc((size_t)V * sizeof *l);
    uint64_t x = 1;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        base[i] = (float)((x >> 40) / (double)(1 << 24)) * 8.0f;
    }
    smoe_sampler_params p;
    smoe_sampler_defaults(&p);
    p.repeat_penalty = 1.1f;
    smoe_sampler *s = smoe_sampler_new(&p, V, err);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++) {
        memcpy(l, base, (size_t)V * sizeof *l);
        smoe_sampler_accept(s, smoe_sampler_sample(s, l));
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / N;
    printf("# sampler cost (vocab 32000, top-k 40, top-p 0.95, min-p 0.05, repeat penalty): %.1f us/token\n", us);
    smoe_sampler_free(s);
    free(base);
    free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_temperature_matches_softmax),
        cmocka_unit_test(test_penalties_and_bias),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_report_sampler_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
