/* test_scheduler.c - continuous batching (src/engine/scheduler.c): admission,
 * prefix reuse, chunked prefill, cancellation, several jobs side by side, and
 * jobs that finish in their first step.
 *
 * The reference for what a job generates is independent of the scheduler
 * and the decoder: a greedy loop written here on smoe_forward and an argmax,
 * and, for sampled jobs, the same job run alone (a job's tokens must not
 * depend on what else is in the batch). */
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

#include "engine/scheduler.h"
#include "model/model.h"
#include "model/synth.h"

#define N_CTX 48
#define MAX_GEN 64

typedef struct fixture {
    char path[64];
    smoe_model *m;
    smoe_tokenizer *tok;
    int32_t V, eos;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    char err[SMOE_ERR_SIZE];
    snprintf(fx->path, sizeof fx->path, "/tmp/smoe-test-sched-%d.gguf", (int)getpid());
    smoe_synth_opts o;
    smoe_synth_preset("tiny", &o);
    o.seed = 11;
    o.n_ctx = 256;
    if (smoe_synth_write(&o, fx->path, err)) { fprintf(stderr, "%s\n", err); return -1; }
    if (!(fx->m = smoe_model_load(fx->path, err))) { fprintf(stderr, "%s\n", err); return -1; }
    if (!(fx->tok = smoe_tokenizer_new(&fx->m->vocab, err))) { fprintf(stderr, "%s\n", err); return -1; }
    fx->V = smoe_model_hparams(fx->m)->n_vocab;
    fx->eos = fx->m->vocab.eos_id;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    smoe_tokenizer_free(fx->tok);
    smoe_model_free(fx->m);
    unlink(fx->path);
    free(fx);
    return 0;
}

/* ---------------------------------------------------------------------------
 * A job's record: what the callbacks saw
 * ------------------------------------------------------------------------- */

typedef struct record {
    int32_t tokens[MAX_GEN];
    int n_tokens;
    char text[4096];
    size_t n_text;
    int n_done;
    smoe_job_stats st;
    char err[SMOE_ERR_SIZE];
} record;

static void on_text(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    (void)lp, (void)n_lp;
    record *r = user;
    assert_true(r->n_text + len < sizeof r->text);
    memcpy(r->text + r->n_text, text, len);
    r->n_text += len;
}

static void on_token(void *user, int32_t id) {
    record *r = user;
    assert_true(r->n_tokens < MAX_GEN);
    r->tokens[r->n_tokens++] = id;
}

static void on_done(void *user, const smoe_job_stats *st, const char *err) {
    record *r = user;
    r->n_done++;
    r->st = *st;
    snprintf(r->err, sizeof r->err, "%s", err);
}

static const smoe_job_events events = {on_text, on_token, on_done};

static smoe_sched *sched_new(fixture *fx, int32_t slots, int32_t chunk) {
    char err[SMOE_ERR_SIZE];
    smoe_sched_opts o = {.n_slots = slots, .n_ctx = N_CTX, .chunk = chunk, .kv_type = SMOE_KV_F32};
    smoe_sched *s = smoe_sched_new(fx->m, fx->tok, &o, err);
    if (!s) fprintf(stderr, "%s\n", err);
    assert_non_null(s);
    return s;
}

/* Greedy, no end-of-sequence, max_tokens n. */
static smoe_job_params greedy(int32_t n, const smoe_logit_bias *no_eos) {
    smoe_job_params p = {0};
    smoe_sampler_defaults(&p.sampling);
    p.sampling.temperature = 0;
    p.sampling.bias = no_eos;
    p.sampling.n_bias = 1;
    p.max_tokens = n;
    p.top_logprobs = -1;
    return p;
}

static smoe_sched_job *submit(smoe_sched *s, const int32_t *prompt, int32_t n, const smoe_job_params *p, record *r) {
    char err[SMOE_ERR_SIZE];
    smoe_sched_job *j = smoe_sched_submit(s, prompt, n, p, &events, r, err);
    if (!j) fprintf(stderr, "%s\n", err);
    assert_non_null(j);
    return j;
}

static int run_all(smoe_sched *s) {
    char err[SMOE_ERR_SIZE];
    int steps = 0;
    while (smoe_sched_active(s) > 0) {
        assert_true(smoe_sched_step(s, err) > 0);
        assert_true(++steps < 1000);
    }
    return steps;
}

static void make_prompt(int32_t *p, int32_t n, int32_t salt, int32_t V) {
    for (int32_t i = 0; i < n; i++) p[i] = (int32_t)((i * 37 + salt * 101 + 3) % (V - 3)) + 3;
}

/* The greedy reference: smoe_forward and an argmax, no eos. */
static void reference_greedy(fixture *fx, const int32_t *prompt, int32_t n, int32_t n_gen, int32_t *out) {
    char err[SMOE_ERR_SIZE];
    smoe_seq *seq = smoe_seq_new_typed(fx->m, N_CTX, SMOE_KV_F32, err);
    smoe_ctx *c = smoe_ctx_new(fx->m, N_CTX, err);
    assert_non_null(seq);
    assert_non_null(c);
    smoe_batch_entry e[N_CTX];
    float *logits = malloc((size_t)fx->V * sizeof *logits);
    for (int32_t i = 0; i < n; i++) e[i] = (smoe_batch_entry){seq, i, prompt[i], i == n - 1};
    assert_int_equal(smoe_forward(c, e, n, logits, err), 0);
    for (int32_t g = 0; g < n_gen; g++) {
        int32_t best = -1;
        for (int32_t t = 0; t < fx->V; t++)
            if (t != fx->eos && (best < 0 || logits[t] > logits[best])) best = t;
        out[g] = best;
        if (g + 1 == n_gen) break;
        e[0] = (smoe_batch_entry){seq, n + g, best, true};
        assert_int_equal(smoe_forward(c, e, 1, logits, err), 0);
    }
    free(logits);
    smoe_ctx_free(c);
    smoe_seq_free(seq);
}

/* ---------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------- */

static void test_one_job_matches_reference(void **state) {
    fixture *fx = *state;
    smoe_logit_bias no_eos = {fx->eos, -INFINITY};
    int32_t prompt[9], ref[12];
    make_prompt(prompt, 9, 1, fx->V);
    reference_greedy(fx, prompt, 9, 12, ref);
    smoe_sched *s = sched_new(fx, 1, 64);
    record r = {0};
    smoe_job_params p = greedy(12, &no_eos);
    submit(s, prompt, 9, &p, &r);
    run_all(s);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.st.finish, SMOE_FINISH_LENGTH);
    assert_int_equal(r.st.n_generated, 12);
    assert_int_equal(r.n_tokens, 12);
    assert_memory_equal(r.tokens, ref, sizeof ref);
    assert_int_equal(r.st.n_prompt, 9);
    assert_int_equal(r.st.n_cached, 0);
    assert_int_equal(r.st.n_processed, 9);
    smoe_sched_free(s);
}

/* Sampled jobs with their own seeds, side by side, under a small prompt
 * chunk: each gives what it gives alone (n > 1 choices are such jobs). */
static void test_batched_jobs_equal_alone(void **state) {
    fixture *fx = *state;
    smoe_logit_bias no_eos = {fx->eos, -INFINITY};
    enum { J = 3 };
    int32_t prompts[J][20], lens[J] = {20, 5, 13};
    smoe_job_params p[J];
    for (int k = 0; k < J; k++) {
        make_prompt(prompts[k], lens[k], k + 2, fx->V);
        p[k] = greedy(10, &no_eos);
        p[k].sampling.temperature = 1.0f;
        p[k].sampling.seed = 100 + (uint64_t)k;
    }
    record alone[J] = {0}, together[J] = {0};
    for (int k = 0; k < J; k++) {
        smoe_sched *s = sched_new(fx, 1, 64);
        submit(s, prompts[k], lens[k], &p[k], &alone[k]);
        run_all(s);
        smoe_sched_free(s);
    }
    smoe_sched *s = sched_new(fx, J, 4);
    for (int k = 0; k < J; k++) submit(s, prompts[k], lens[k], &p[k], &together[k]);
    run_all(s);
    for (int k = 0; k < J; k++) {
        assert_int_equal(together[k].n_done, 1);
        assert_int_equal(together[k].n_tokens, alone[k].n_tokens);
        assert_memory_equal(together[k].tokens, alone[k].tokens, sizeof(int32_t) * (size_t)alone[k].n_tokens);
        assert_int_equal(together[k].n_text, alone[k].n_text);
        assert_memory_equal(together[k].text, alone[k].text, alone[k].n_text);
    }
    /* two seeds, two token sequences (a sampler that ignored the seed would fail) */
    assert_true(memcmp(alone[0].tokens, alone[1].tokens, 10 * sizeof(int32_t)) != 0 || lens[0] == lens[1]);
    smoe_sched_free(s);
}

/* A long prompt goes in chunks while a running job gets a token every step. */
static void test_chunked_prefill_never_stalls(void **state) {
    fixture *fx = *state;
    smoe_logit_bias no_eos = {fx->eos, -INFINITY};
    char err[SMOE_ERR_SIZE];
    int32_t a[4], b[40];
    make_prompt(a, 4, 7, fx->V);
    make_prompt(b, 40, 8, fx->V);
    smoe_sched *s = sched_new(fx, 2, 8);
    record ra = {0}, rb = {0};
    smoe_job_params pa = greedy(30, &no_eos), pb = greedy(3, &no_eos);
    submit(s, a, 4, &pa, &ra);
    assert_int_equal(smoe_sched_step(s, err), 4); /* a's whole prompt */
    assert_int_equal(ra.n_tokens, 1);
    submit(s, b, 40, &pb, &rb);
    for (int step = 0; step < 5; step++) {
        /* a's token plus 8 of b's 40 prompt tokens */
        assert_int_equal(smoe_sched_step(s, err), 1 + 8);
        assert_int_equal(ra.n_tokens, 2 + step);
        assert_int_equal(rb.n_tokens, step == 4 ? 1 : 0);
    }
    run_all(s);
    assert_int_equal(rb.n_done, 1);
    int32_t ref[3];
    reference_greedy(fx, b, 40, 3, ref);
    assert_memory_equal(rb.tokens, ref, sizeof ref);
    smoe_sched_free(s);
}

static void test_prefix_reuse(void **state) {
    fixture *fx = *state;
    smoe_logit_bias no_eos = {fx->eos, -INFINITY};
    int32_t p1[12], p2[30], other[6];
    make_prompt(p1, 12, 3, fx->V);
    make_prompt(other, 6, 9, fx->V);
    smoe_sched *s = sched_new(fx, 2, 64);
    record r1 = {0}, r0 = {0}, r2 = {0}, r3 = {0};
    smoe_job_params p = greedy(5, &no_eos);
    submit(s, other, 6, &p, &r0); /* slot 0, so that p1 lands in slot 1 */
    submit(s, p1, 12, &p, &r1);
    run_all(s);
    assert_int_equal(r1.st.slot, 1);
    /* the slot keeps the prompt and every generated token that was run:
     * all but the last */
    assert_int_equal(smoe_sched_kv_used(s), 6 + 4 + 12 + 4);
    assert_int_equal(smoe_sched_kv_busy(s), 0);
    /* the next turn: p1, the answer, and more */
    memcpy(p2, p1, sizeof p1);
    memcpy(p2 + 12, r1.tokens, 5 * sizeof(int32_t));
    make_prompt(p2 + 17, 13, 4, fx->V);
    submit(s, p2, 30, &p, &r2);
    run_all(s);
    assert_int_equal(r2.st.slot, 1); /* the longest prefix, though slot 0 was used less recently */
    assert_int_equal(r2.st.n_cached, 12 + 4);
    assert_int_equal(r2.st.n_processed, 30 - 16);
    int32_t ref[5];
    reference_greedy(fx, p2, 30, 5, ref);
    assert_memory_equal(r2.tokens, ref, sizeof ref);
    /* the same prompt again: all but its last token is reused */
    submit(s, p2, 30, &p, &r3);
    run_all(s);
    assert_int_equal(r3.st.n_cached, 29);
    assert_memory_equal(r3.tokens, ref, sizeof ref);
    smoe_sched_free(s);
}

static void test_admission_errors(void **state) {
    fixture *fx = *state;
    smoe_logit_bias no_eos = {fx->eos, -INFINITY};
    char err[SMOE_ERR_SIZE];
    int32_t prompt[N_CTX];
    make_prompt(prompt, N_CTX, 5, fx->V);
    smoe_sched *s = sched_new(fx, 1, 64);
    record r = {0};
    smoe_job_params p = greedy(4, &no_eos);
    assert_null(smoe_sched_submit(s, prompt, 0, &p, &events, &r, err));
    assert_non_null(strstr(err, "empty"));
    assert_null(smoe_sched_submit(s, prompt, N_CTX, &p, &events, &r, err));
    assert_non_null(strstr(err, "holds 48"));
    int32_t bad = fx->V;
    assert_null(smoe_sched_submit(s, &bad, 1, &p, &events, &r, err));
    assert_non_null(strstr(err, "outside the vocabulary"));
    smoe_job_params q = p;
    q.sampling.temperature = -1;
    assert_null(smoe_sched_submit(s, prompt, 4, &q, &events, &r, err));
    assert_non_null(strstr(err, "temperature"));
    q = p;
    q.top_logprobs = 21;
    assert_null(smoe_sched_submit(s, prompt, 4, &q, &events, &r, err));
    assert_non_null(strstr(err, "top_logprobs"));
    submit(s, prompt, 4, &p, &r);
    assert_int_equal(smoe_sched_free_slots(s), 0);
    record r2 = {0};
    assert_null(smoe_sched_submit(s, prompt, 4, &p, &events, &r2, err));
    assert_non_null(strstr(err, "no free sequence slot"));
    assert_int_equal(r.n_done + r2.n_done, 0); /* refused jobs never call back */
    run_all(s);
    assert_int_equal(r.n_done, 1);
    smoe_sched_free(s);
}

static void test_cancel(void **state) {
    fixture *fx = *state;
    smoe_logit_bias no_eos = {fx->eos, -INFINITY};
    char err[SMOE_ERR_SIZE];
    int32_t a[6], b[6];
    make_prompt(a, 6, 1, fx->V);
    make_prompt(b, 6, 2, fx->V);
    smoe_sched *s = sched_new(fx, 2, 64);
    record ra = {0}, rb = {0};
    smoe_job_params p = greedy(8, &no_eos);
    smoe_sched_job *ja = submit(s, a, 6, &p, &ra);
    submit(s, b, 6, &p, &rb);
    assert_int_equal(smoe_sched_step(s, err), 12);
    assert_int_equal(smoe_sched_step(s, err), 2);
    smoe_sched_cancel(s, ja);
    assert_int_equal(ra.n_done, 1);
    assert_int_equal(ra.st.finish, SMOE_FINISH_CANCEL);
    assert_int_equal(ra.st.n_generated, 2);
    assert_int_equal(smoe_sched_active(s), 1);
    assert_int_equal(smoe_sched_free_slots(s), 1);
    assert_int_equal(smoe_sched_step(s, err), 1); /* only b is left in the batch */
    run_all(s);
    assert_int_equal(ra.n_done, 1);
    assert_int_equal(rb.n_done, 1);
    assert_int_equal(rb.st.finish, SMOE_FINISH_LENGTH);
    int32_t ref[8];
    reference_greedy(fx, b, 6, 8, ref);
    assert_memory_equal(rb.tokens, ref, sizeof ref);
    /* a cancelled job's cache stays reusable */
    record rc = {0};
    submit(s, a, 6, &p, &rc);
    run_all(s);
    assert_int_equal(rc.st.n_cached, 5);
    /* freeing the scheduler cancels what still runs */
    record rd = {0};
    submit(s, b, 6, &p, &rd);
    assert_int_equal(smoe_sched_step(s, err), 1);
    smoe_sched_free(s);
    assert_int_equal(rd.n_done, 1);
    assert_int_equal(rd.st.finish, SMOE_FINISH_CANCEL);
}

/* Jobs that end at their first step: no token wanted, one token, a stop
 * string that the first token's text completes, the context already full. */
static void test_finish_in_first_step(void **state) {
    fixture *fx = *state;
    smoe_logit_bias no_eos = {fx->eos, -INFINITY};
    char err[SMOE_ERR_SIZE];
    int32_t prompt[N_CTX - 1];
    make_prompt(prompt, N_CTX - 1, 6, fx->V);
    smoe_sched *s = sched_new(fx, 4, 64);
    record r0 = {0}, r1 = {0}, rs = {0}, rf = {0};
    smoe_job_params p0 = greedy(0, &no_eos), p1 = greedy(1, &no_eos), ps = greedy(5, &no_eos);
    submit(s, prompt, 5, &p0, &r0);
    submit(s, prompt, 5, &p1, &r1);
    /* what the first greedy token says, as a stop string */
    int32_t first;
    reference_greedy(fx, prompt, 5, 1, &first);
    char piece[64];
    smoe_detok dt;
    smoe_detok_init(&dt, fx->tok, false);
    size_t n = smoe_detok_push(&dt, first, piece, sizeof piece - 1); /* 0: a partial character, no test */
    piece[n] = 0;
    const char *stops[] = {piece};
    if (n > 0) {
        ps.stop = stops;
        ps.n_stop = 1;
    }
    submit(s, prompt, 5, &ps, &rs);
    smoe_job_params pf = greedy(-1, &no_eos);
    submit(s, prompt, N_CTX - 1, &pf, &rf);
    assert_int_equal(smoe_sched_step(s, err), 5 + 5 + 5 + N_CTX - 1 < 64 ? 5 + 5 + 5 + N_CTX - 1 : 64);
    assert_int_equal(r0.n_done, 1);
    assert_int_equal(r0.st.finish, SMOE_FINISH_LENGTH);
    assert_int_equal(r0.st.n_generated, 0);
    assert_int_equal(r0.n_tokens, 0);
    assert_int_equal(r1.n_done, 1);
    assert_int_equal(r1.st.finish, SMOE_FINISH_LENGTH);
    assert_int_equal(r1.n_tokens, 1);
    assert_int_equal(r1.tokens[0], first);
    if (n > 0) {
        assert_int_equal(rs.n_done, 1);
        assert_int_equal(rs.st.finish, SMOE_FINISH_STOP);
        assert_int_equal(rs.n_text, 0); /* the stop string itself is never shown */
    }
    run_all(s);
    /* a context of 48 with 47 prompt tokens: the 48th position, then one
     * more token written but never run */
    assert_int_equal(rf.st.finish, SMOE_FINISH_LENGTH);
    assert_int_equal(rf.st.n_generated, 2);
    smoe_sched_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_job_matches_reference),
        cmocka_unit_test(test_batched_jobs_equal_alone),
        cmocka_unit_test(test_chunked_prefill_never_stalls),
        cmocka_unit_test(test_prefix_reuse),
        cmocka_unit_test(test_admission_errors),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_finish_in_first_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
