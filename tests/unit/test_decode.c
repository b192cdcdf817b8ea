/* test_decode.c - the decode step (src/engine/decode.c) on its own, with
 * logits made by hand over the built-in byte vocabulary (token 3 + b is byte
 * b, 2 is end-of-sequence): what is written and when, the finish reasons,
 * the token budget, stop tokens and strings, grammar triggers, logprobs
 * against a log-softmax computed here, cancellation and errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decode.h"
#include "grammar/grammar.h"
#include "model/vocab.h"

#define V 259
#define TOK(c) (3 + (int32_t)(unsigned char)(c))
#define EOS 2

typedef struct fixture {
    smoe_vocab vocab;
    smoe_tokenizer *tok;
    smoe_gvocab *gv;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    char err[SMOE_ERR_SIZE];
    if (smoe_vocab_builtin_bytes(&fx->vocab, err)) return -1;
    if (!(fx->tok = smoe_tokenizer_new(&fx->vocab, err))) return -1;
    if (!(fx->gv = smoe_gvocab_new(fx->tok, err))) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    smoe_gvocab_free(fx->gv);
    smoe_tokenizer_free(fx->tok);
    smoe_vocab_free(&fx->vocab);
    free(fx);
    return 0;
}

/* What the callbacks saw, in order: "[c]" for a token (its byte), the text
 * as it came; lp records and the count of text calls. */
typedef struct log {
    char s[1024];
    size_t n;
    smoe_token_lp lp[16];
    int n_lp, n_text_calls, cancel_at;
} log_t;

static void put(log_t *l, const char *s, size_t n) {
    assert_true(l->n + n < sizeof l->s);
    memcpy(l->s + l->n, s, n);
    l->n += n;
    l->s[l->n] = 0;
}

static int on_text(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    log_t *l = user;
    put(l, text, len);
    for (int i = 0; i < n_lp; i++) l->lp[l->n_lp++] = lp[i];
    return ++l->n_text_calls == l->cancel_at;
}

static void on_token(void *user, int32_t id) {
    char b[8];
    snprintf(b, sizeof b, "[%c]", id >= 3 ? (char)(id - 3) : '?');
    put(user, b, strlen(b));
}

static const smoe_decode_events events = {on_text, on_token};

static smoe_decode_params greedy(int32_t max_tokens) {
    smoe_decode_params p = {0};
    smoe_sampler_defaults(&p.sampling);
    p.sampling.temperature = 0;
    p.max_tokens = max_tokens;
    p.top_logprobs = -1;
    return p;
}

/* Logits that make t the greedy choice, c the runner-up. */
static float *favour(float *l, int32_t t) {
    for (int i = 0; i < V; i++) l[i] = (float)(i % 7) * 0.01f;
    l[t] = 10;
    return l;
}

static smoe_decoder *make(fixture *fx, const smoe_decode_params *p, log_t *l) {
    char err[SMOE_ERR_SIZE];
    smoe_decoder *d = smoe_decoder_new(fx->tok, V, p, &events, l, err);
    if (!d) fprintf(stderr, "%s\n", err);
    assert_non_null(d);
    return d;
}

/* Step once with logits favouring t; the return and *next checked. */
static void step(smoe_decoder *d, int32_t t, int32_t room, int want_more, int32_t want_next) {
    float l[V];
    int32_t next = 12345;
    assert_int_equal(smoe_decoder_step(d, favour(l, t), room, &next), want_more);
    assert_int_equal(next, want_next);
}

/* ---------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------- */

static void test_tokens_text_and_max_tokens(void **state) {
    fixture *fx = *state;
    log_t l = {0};
    smoe_decode_params p = greedy(3);
    smoe_decoder *d = make(fx, &p, &l);
    step(d, TOK('h'), 100, 1, TOK('h'));
    step(d, TOK('i'), 100, 1, TOK('i'));
    /* the last token: finished, and handed back so a caller keeping the
     * whole conversation in its cache can run it */
    step(d, TOK('!'), 100, 0, TOK('!'));
    assert_string_equal(l.s, "[h]h[i]i[!]!");
    assert_true(smoe_decoder_done(d));
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_LENGTH);
    assert_int_equal(smoe_decoder_stats(d)->n_generated, 3);
    assert_string_equal(smoe_finish_name(SMOE_FINISH_LENGTH), "length");
    step(d, TOK('x'), 100, 0, -1); /* a finished decoder does nothing more */
    assert_string_equal(l.s, "[h]h[i]i[!]!");
    smoe_decoder_free(d);
}

static void test_context_room(void **state) {
    fixture *fx = *state;
    log_t l = {0};
    smoe_decode_params p = greedy(-1);
    smoe_decoder *d = make(fx, &p, &l);
    step(d, TOK('a'), 2, 1, TOK('a'));
    /* room 1: this token is written but cannot be run */
    step(d, TOK('b'), 1, 0, -1);
    assert_string_equal(l.s, "[a]a[b]b");
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_LENGTH);
    smoe_decoder_free(d);
    /* max_tokens 0: finished before drawing anything */
    log_t l0 = {0};
    p = greedy(0);
    d = make(fx, &p, &l0);
    step(d, TOK('a'), 10, 0, -1);
    assert_int_equal(l0.n, 0);
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_LENGTH);
    assert_int_equal(smoe_decoder_stats(d)->n_sampled, 0);
    smoe_decoder_free(d);
}

static void test_end_of_sequence_and_stop_tokens(void **state) {
    fixture *fx = *state;
    log_t l = {0};
    smoe_decode_params p = greedy(10);
    int32_t stop_tok = TOK('z');
    p.stop_tokens = &stop_tok;
    p.n_stop_tokens = 1;
    smoe_decoder *d = make(fx, &p, &l);
    step(d, TOK('a'), 100, 1, TOK('a'));
    step(d, TOK('z'), 100, 0, -1);
    assert_string_equal(l.s, "[a]a"); /* a stop token is neither reported nor shown */
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_STOP);
    assert_int_equal(smoe_decoder_stats(d)->n_generated, 1);
    assert_int_equal(smoe_decoder_stats(d)->n_sampled, 2);
    smoe_decoder_free(d);
    log_t le = {0};
    p = greedy(10);
    d = make(fx, &p, &le);
    step(d, EOS, 100, 0, -1);
    assert_int_equal(le.n, 0);
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_STOP);
    smoe_decoder_free(d);
}

static void test_stop_strings(void **state) {
    fixture *fx = *state;
    log_t l = {0};
    smoe_decode_params p = greedy(20);
    const char *stops[] = {"END"};
    p.stop = stops;
    p.n_stop = 1;
    smoe_decoder *d = make(fx, &p, &l);
    step(d, TOK('o'), 100, 1, TOK('o'));
    step(d, TOK('E'), 100, 1, TOK('E')); /* held back: it may begin END */
    assert_string_equal(l.s, "[o]o[E]");
    step(d, TOK('N'), 100, 1, TOK('N'));
    step(d, TOK('D'), 100, 0, -1);
    assert_string_equal(l.s, "[o]o[E][N][D]");
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_STOP);
    smoe_decoder_free(d);
    /* a prefix held back at the end is shown after all */
    log_t l2 = {0};
    p.max_tokens = 2;
    d = make(fx, &p, &l2);
    step(d, TOK('x'), 100, 1, TOK('x'));
    step(d, TOK('E'), 100, 0, TOK('E'));
    assert_string_equal(l2.s, "[x]x[E]E");
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_LENGTH);
    smoe_decoder_free(d);
}

static void test_cancel_from_the_text_callback(void **state) {
    fixture *fx = *state;
    log_t l = {.cancel_at = 2};
    smoe_decode_params p = greedy(20);
    smoe_decoder *d = make(fx, &p, &l);
    step(d, TOK('a'), 100, 1, TOK('a'));
    step(d, TOK('b'), 100, 0, -1);
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_CANCEL);
    assert_string_equal(smoe_finish_name(smoe_decoder_finish(d)), "cancel");
    smoe_decoder_free(d);
}

/* A trigger arms the grammar: the text held back before it goes out before
 * the trigger is reported, and the grammar decides from the next token on,
 * whatever the logits say. */
static void test_grammar_trigger(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    smoe_grammar *g = smoe_grammar_new("root ::= \"ok\"", 13, err);
    assert_non_null(g);
    smoe_gmatch *m = smoe_gmatch_new(g, fx->gv, err);
    assert_non_null(m);
    log_t l = {0};
    smoe_decode_params p = greedy(20);
    const char *stops[] = {"iz"};
    p.stop = stops;
    p.n_stop = 1;
    int32_t trig = TOK('@');
    p.grammar = m;
    p.grammar_triggers = &trig;
    p.n_grammar_triggers = 1;
    smoe_decoder *d = make(fx, &p, &l);
    step(d, TOK('h'), 100, 1, TOK('h'));
    step(d, TOK('i'), 100, 1, TOK('i')); /* "i" held back: it may begin "iz" */
    assert_false(smoe_decoder_stats(d)->grammar_complete);
    step(d, TOK('@'), 100, 1, TOK('@'));
    step(d, TOK('x'), 100, 1, TOK('o')); /* the logits want x; the grammar says o */
    step(d, TOK('x'), 100, 0, -1);       /* then k: complete, nothing can follow */
    assert_string_equal(l.s, "[h]h[i]i[@]@[o]o[k]k");
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_STOP);
    assert_true(smoe_decoder_stats(d)->grammar_complete);
    assert_int_equal(smoe_decoder_stats(d)->n_grammar_steps, 2);
    smoe_decoder_free(d);
    smoe_gmatch_free(m);
    smoe_grammar_free(g);
}

/* The document is complete within the budget, whatever the logits want. */
static void test_grammar_budget(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    const char *gt = "root ::= [a-z]* \"!\"";
    smoe_grammar *g = smoe_grammar_new(gt, strlen(gt), err);
    assert_non_null(g);
    for (int budget = 1; budget <= 4; budget++) {
        for (int by_room = 0; by_room < 2; by_room++) {
            smoe_gmatch *m = smoe_gmatch_new(g, fx->gv, err);
            assert_non_null(m);
            log_t l = {0};
            smoe_decode_params p = greedy(by_room ? -1 : budget);
            p.grammar = m;
            smoe_decoder *d = make(fx, &p, &l);
            float lg[V];
            int32_t next;
            int steps = 0;
            /* room: the free context positions plus one */
            while (smoe_decoder_step(d, favour(lg, TOK('a')), by_room ? budget - steps : 100, &next)) steps++;
            char want[64] = "";
            for (int i = 0; i < budget - 1; i++) strcat(want, "[a]a");
            strcat(want, "[!]!");
            assert_string_equal(l.s, want);
            assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_STOP);
            smoe_decoder_free(d);
            smoe_gmatch_free(m);
        }
    }
    smoe_grammar_free(g);
}

static void test_grammar_banned_by_bias(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    smoe_grammar *g = smoe_grammar_new("root ::= \"o\"", 12, err);
    smoe_gmatch *m = smoe_gmatch_new(g, fx->gv, err);
    assert_non_null(m);
    log_t l = {0};
    smoe_decode_params p = greedy(5);
    smoe_logit_bias ban = {TOK('o'), -INFINITY};
    p.sampling.bias = &ban;
    p.sampling.n_bias = 1;
    p.grammar = m;
    smoe_decoder *d = make(fx, &p, &l);
    step(d, TOK('x'), 100, 0, -1);
    assert_int_equal(smoe_decoder_finish(d), SMOE_FINISH_ERROR);
    assert_non_null(strstr(smoe_decoder_error(d), "banned by a logit bias"));
    smoe_decoder_free(d);
    smoe_gmatch_free(m);
    smoe_grammar_free(g);
}

/* Logprobs under the raw logits; the records of a character split over two
 * tokens come with the text that completes it. */
static void test_logprobs(void **state) {
    fixture *fx = *state;
    log_t l = {0};
    smoe_decode_params p = greedy(2);
    p.top_logprobs = 3;
    p.sampling.repeat_penalty = 5; /* penalties change the draw's logits (r's), not the reported ones */
    smoe_decoder *d = make(fx, &p, &l);
    int32_t prompt[] = {TOK('r')};
    smoe_decoder_accept(d, prompt, 1);
    float lg[V];
    double ref_chosen[2], ref_top[2][3];
    int32_t ref_top_id[2][3];
    for (int k = 0; k < 2; k++) {
        int32_t t = k == 0 ? TOK(0xC3) : TOK(0xA9); /* U+00E9, two bytes */
        for (int i = 0; i < V; i++) lg[i] = sinf((float)i * 0.37f + (float)k);
        lg[t] = 30;
        lg[TOK('q')] = 29.5f;
        lg[TOK('r')] = 29;
        double mx = 30, s = 0;
        for (int i = 0; i < V; i++) s += exp((double)lg[i] - mx);
        double lse = mx + log(s);
        ref_chosen[k] = lg[t] - lse;
        int32_t ids[3] = {t, TOK('q'), TOK('r')};
        for (int j = 0; j < 3; j++) { ref_top_id[k][j] = ids[j]; ref_top[k][j] = lg[ids[j]] - lse; }
        int32_t next;
        smoe_decoder_step(d, lg, 100, &next);
        if (k == 0) assert_int_equal(l.n_lp, 0); /* half a character: no text yet */
    }
    assert_string_equal(l.s, "[\xc3][\xa9]\xc3\xa9");
    assert_int_equal(l.n_lp, 2);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(l.lp[k].n_top, 3);
        assert_true(fabs(l.lp[k].logprob - ref_chosen[k]) < 1e-5);
        for (int j = 0; j < 3; j++) {
            assert_int_equal(l.lp[k].top[j].id, ref_top_id[k][j]);
            assert_true(fabs(l.lp[k].top[j].logprob - ref_top[k][j]) < 1e-5);
        }
    }
    smoe_decoder_free(d);
}

static void test_bad_params(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    smoe_decode_params p = greedy(-2);
    assert_null(smoe_decoder_new(fx->tok, V, &p, &events, NULL, err));
    assert_non_null(strstr(err, "max_tokens"));
    p = greedy(4);
    p.top_logprobs = SMOE_MAX_TOP_LOGPROBS + 1;
    assert_null(smoe_decoder_new(fx->tok, V, &p, &events, NULL, err));
    assert_non_null(strstr(err, "top_logprobs"));
    p = greedy(4);
    const char *empty[] = {""};
    p.stop = empty;
    p.n_stop = 1;
    assert_null(smoe_decoder_new(fx->tok, V, &p, &events, NULL, err));
    assert_non_null(strstr(err, "stop"));
    p = greedy(4);
    p.sampling.top_p = 0;
    assert_null(smoe_decoder_new(fx->tok, V, &p, &events, NULL, err));
    assert_non_null(strstr(err, "top_p"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_text_and_max_tokens),
        cmocka_unit_test(test_context_room),
        cmocka_unit_test(test_end_of_sequence_and_stop_tokens),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_cancel_from_the_text_callback),
        cmocka_unit_test(test_grammar_trigger),
        cmocka_unit_test(test_grammar_budget),
        cmocka_unit_test(test_grammar_banned_by_bias),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
