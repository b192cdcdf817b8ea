/* test_api.c - the public generation API (include/smoe_gen.h) on a tiny
 * synthetic model: the parts examples/generate.c does not reach (decode,
 * snprintf-style sizes, JSON chat requests, cache reuse, stopping from the
 * callback, checks of the settings).  Uses the public headers only, besides
 * the synthesiser that writes the model. */
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
#include "smoe_gen.h"
#include "model/synth.h"

typedef struct fixture {
    char path[64];
    smoe_model *m;
    smoe_tokenizer *tok;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    char err[SMOE_ERR_SIZE];
    snprintf(fx->path, sizeof fx->path, "/tmp/smoe-test-api-%d.gguf", (int)getpid());
    smoe_synth_opts o;
    smoe_synth_preset("tiny", &o);
    o.seed = 3;
    o.readable = true;
    if (smoe_synth_write(&o, fx->path, err)) { fprintf(stderr, "%s\n", err); return -1; }
    if (!(fx->m = smoe_model_load(fx->path, err)) || !(fx->tok = smoe_tokenizer_from_model(fx->m, err))) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
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

static void test_encode_decode(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    const char *text = "Hello, w\xc3\xb6rld";
    /* the synthetic vocabulary is bytes only: SentencePiece's space mark
     * U+2581 is spelt with three byte tokens, which decode as themselves */
    const char *back = "\xe2\x96\x81Hello,\xe2\x96\x81w\xc3\xb6rld";
    int32_t ids[256];
    int32_t n = smoe_tokenizer_encode(fx->tok, text, strlen(text), true, ids, 256, err);
    assert_true(n > 2);
    assert_int_equal(ids[0], smoe_token_bos(fx->tok));
    assert_true(smoe_token_eos(fx->tok) >= 0);
    /* the count comes back whatever cap is; only cap ids are written */
    int32_t few[2] = {-7, -7};
    assert_int_equal(smoe_tokenizer_encode(fx->tok, text, strlen(text), true, few, 1, err), n);
    assert_int_equal(few[0], ids[0]);
    assert_int_equal(few[1], -7);
    assert_int_equal(smoe_tokenizer_encode(fx->tok, text, strlen(text), false, NULL, 0, err), n - 1);
    assert_int_equal(smoe_tokenizer_encode(fx->tok, "", 0, false, NULL, 0, err), 0);
    /* decode gives the text back (BOS gives none); snprintf-style when
     * buf is short */
    char buf[256];
    size_t len = smoe_tokenizer_decode(fx->tok, ids, n, true, buf, sizeof buf);
    assert_int_equal(len, strlen(back));
    assert_string_equal(buf, back);
    char small[6];
    assert_int_equal(smoe_tokenizer_decode(fx->tok, ids, n, true, small, sizeof small), len);
    assert_string_equal(small, "\xe2\x96\x81He");
    assert_int_equal(smoe_tokenizer_decode(fx->tok, ids, n, true, NULL, 0), len);
    assert_int_equal(smoe_tokenizer_decode(fx->tok, ids + 1, n - 1, false, buf, sizeof buf), len);
    assert_string_equal(buf, back);
}

static void test_chat_prompt(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    const char *fmt = smoe_model_chat_format(fx->m);
    assert_string_equal(fmt, "v1"); /* the built-in vocabulary has no control [INST] */
    smoe_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Why?"}};
    int32_t a[512], b[512];
    int32_t na = smoe_chat_prompt(fx->tok, fmt, msgs, 4, a, 512, err);
    assert_true(na > 10);
    const char *req = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
                      "\"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", "
                      "\"content\": \"Why?\"}], \"model\": \"ignored\"}";
    int32_t nb = smoe_chat_prompt_json(fx->tok, "mistral-v1", req, strlen(req), b, 512, err);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
    assert_int_equal(smoe_chat_prompt(fx->tok, fmt, msgs, 4, NULL, 0, err), na);
    /* errors name what is wrong */
    assert_int_equal(smoe_chat_prompt(fx->tok, "v2", msgs, 4, a, 512, err), -1);
    assert_non_null(strstr(err, "chat format 'v2'"));
    assert_int_equal(smoe_chat_prompt(fx->tok, fmt, msgs, 3, a, 512, err), -1); /* ends with the assistant */
    assert_non_null(strstr(err, "messages"));
    smoe_chat_msg bad[] = {{"robot", "x"}};
    assert_int_equal(smoe_chat_prompt(fx->tok, fmt, bad, 1, a, 512, err), -1);
    assert_non_null(strstr(err, "robot"));
    smoe_chat_msg null_content[] = {{"user", NULL}};
    assert_int_equal(smoe_chat_prompt(fx->tok, fmt, null_content, 1, a, 512, err), -1);
    assert_non_null(strstr(err, "messages[0]"));
    assert_int_equal(smoe_chat_prompt_json(fx->tok, fmt, "{\"messages\": [", 14, a, 512, err), -1);
    assert_non_null(strstr(err, "request"));
}

typedef struct collect {
    char text[4096];
    size_t len;
    int stop_after;   /* pieces; 0 = never stop */
    int pieces;
} collect;

static int on_text(void *user, const char *text, size_t len) {
    collect *c = user;
    if (c->len + len < sizeof c->text) memcpy(c->text + c->len, text, len), c->len += len;
    c->text[c->len] = 0;
    return ++c->pieces == c->stop_after;
}

static void test_generate(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    smoe_session *s = smoe_session_new(fx->m, fx->tok, 0, err);
    assert_non_null(s);
    assert_true(smoe_session_n_ctx(s) > 0);
    smoe_gen_settings set;
    smoe_gen_settings_defaults(&set);
    assert_int_equal(set.max_tokens, 256); /* `smoe run`'s defaults */
    assert_true(set.temperature == 0.8f && set.top_k == 40 && set.top_p == 0.95f && set.min_p == 0.05f);
    assert_true(set.repeat_penalty == 1.0f && set.repeat_last_n == 64 && set.seed == 0);
    int32_t ids[64];
    int32_t n = smoe_tokenizer_encode(fx->tok, "abc", 3, true, ids, 64, err);
    smoe_token_bias no_eos = {smoe_token_eos(fx->tok), -INFINITY};
    set.temperature = 0;
    set.max_tokens = 12;
    set.bias = &no_eos;
    set.n_bias = 1;
    collect c1 = {0}, c2 = {0};
    smoe_gen_stats st;
    assert_int_equal(smoe_generate(s, ids, n, &set, on_text, &c1, &st, err), 0);
    assert_int_equal(st.finish, SMOE_FINISH_LENGTH);
    assert_string_equal(smoe_finish_name(st.finish), "length");
    assert_int_equal(st.n_prompt, n);
    assert_int_equal(st.n_prompt_cached, 0);
    assert_int_equal(st.n_generated, 12);
    assert_true(c1.len > 0);
    /* the same prompt again: all but its last token come from the cache */
    assert_int_equal(smoe_generate(s, ids, n, &set, on_text, &c2, &st, err), 0);
    assert_int_equal(st.n_prompt_cached, n - 1);
    assert_string_equal(c1.text, c2.text);
    /* the callback stops it */
    collect c3 = {.stop_after = 2};
    assert_int_equal(smoe_generate(s, ids, n, &set, on_text, &c3, &st, err), 0);
    assert_int_equal(st.finish, SMOE_FINISH_CANCEL);
    assert_int_equal(c3.pieces, 2);
    /* no callback, no stats: fine */
    smoe_session_reset(s);
    assert_int_equal(smoe_generate(s, ids, n, &set, NULL, NULL, NULL, err), 0);
    /* the first greedy token as a stop token: nothing is generated */
    collect c4 = {0};
    int32_t first = -1;
    for (int32_t t = 0; t < smoe_model_hparams(fx->m)->n_vocab && first < 0; t++) {
        char piece[64];
        int32_t one = t;
        smoe_tokenizer_decode(fx->tok, &one, 1, false, piece, sizeof piece);
        if (*piece && strncmp(piece, c1.text, strlen(piece)) == 0) {
            smoe_gen_settings st1 = set;
            st1.stop_tokens = &one;
            st1.n_stop_tokens = 1;
            assert_int_equal(smoe_generate(s, ids, n, &st1, on_text, &c4, &st, err), 0);
            if (st.n_generated == 0) first = t;
        }
    }
    assert_true(first >= 0);
    assert_int_equal(st.finish, SMOE_FINISH_STOP);
    smoe_session_free(s);
}

static void test_bad_settings(void **state) {
    fixture *fx = *state;
    char err[SMOE_ERR_SIZE];
    smoe_session *s = smoe_session_new(fx->m, fx->tok, 64, err);
    assert_non_null(s);
    int32_t ids[8];
    int32_t n = smoe_tokenizer_encode(fx->tok, "a", 1, true, ids, 8, err);
    smoe_gen_settings set;
    const char *empty[] = {""};
    smoe_token_bias far = {1 << 24, 1.0f};
    /* case i changes one setting; the message must name it */
    const char *words[] = {"temperature", "top_p", "max_tokens", "stop", "logit", "bias"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        smoe_gen_settings_defaults(&set);
        if (i == 0) set.temperature = -1;
        if (i == 1) set.top_p = 0;
        if (i == 2) set.max_tokens = -2;
        if (i == 3) set.stop = empty, set.n_stop = 1;
        if (i == 4) set.bias = &far, set.n_bias = 1;
        if (i == 5) set.n_bias = 3; /* and no array */
        err[0] = 0;
        assert_int_equal(smoe_generate(s, ids, n, &set, NULL, NULL, NULL, err), -1);
        if (!strstr(err, words[i])) fail_msg("case %zu: '%s' lacks '%s'", i, err, words[i]);
    }
    smoe_gen_settings_defaults(&set);
    int32_t out_of_vocab[] = {1, 1 << 30};
    assert_int_equal(smoe_generate(s, out_of_vocab, 2, &set, NULL, NULL, NULL, err), -1);
    assert_non_null(strstr(err, "vocabulary"));
    assert_int_equal(smoe_generate(s, ids, 0, &set, NULL, NULL, NULL, err), -1);
    assert_non_null(strstr(err, "empty"));
    int32_t *longp = calloc(100, sizeof *longp);
    assert_int_equal(smoe_generate(s, longp, 100, &set, NULL, NULL, NULL, err), -1);
    assert_non_null(strstr(err, "context"));
    free(longp);
    /* the session still works after all that */
    set.max_tokens = 3;
    assert_int_equal(smoe_generate(s, ids, n, &set, NULL, NULL, NULL, err), 0);
    smoe_session_free(s);
    /* load errors */
    assert_null(smoe_model_load("/nonexistent/m.gguf", err));
    assert_non_null(strstr(err, "/nonexistent/m.gguf"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_chat_prompt),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
