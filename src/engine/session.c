/* session.c - the generation loop for one sequence: the prompt through
 * the model (reusing the cached prefix), then decode steps. */
#define _GNU_SOURCE
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/common.h"

#define PROMPT_BATCH 256

struct smoe_session {
    const smoe_model *m;
    const smoe_tokenizer *tok;
    smoe_ctx *ctx;
    smoe_seq *seq;
    smoe_tokens cached;
    int32_t n_ctx, n_vocab;
    float *logits;
};

smoe_session *smoe_session_new(const smoe_model *m, const smoe_tokenizer *tok, int32_t n_ctx, char *err) {
    const smoe_hparams *hp = smoe_model_hparams(m);
    if (n_ctx == 0) n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    smoe_session *s = calloc(1, sizeof *s);
    if (!s) { smoe_errf(err, "out of memory"); return NULL; }
    s->m = m;
    s->tok = tok;
    s->n_ctx = n_ctx;
    s->n_vocab = hp->n_vocab;
    s->logits = malloc((size_t)hp->n_vocab * sizeof(float));
    if (!s->logits) { smoe_errf(err, "out of memory"); goto fail; }
    if (!(s->seq = smoe_seq_new(m, n_ctx, err)) || !(s->ctx = smoe_ctx_new(m, PROMPT_BATCH, err))) goto fail;
    return s;
fail:
    smoe_session_free(s);
    return NULL;
}

void smoe_session_free(smoe_session *s) {
    if (!s) return;
    smoe_ctx_free(s->ctx);
    smoe_seq_free(s->seq);
    smoe_tokens_free(&s->cached);
    free(s->logits);
    free(s);
}

int32_t smoe_session_n_ctx(const smoe_session *s) { return s->n_ctx; }
void smoe_session_reset(smoe_session *s) { s->cached.n = 0; }
const smoe_tokens *smoe_session_tokens(const smoe_session *s) { return &s->cached; }

/* Run tokens[from..n) at positions from.., logits of the last one. */
static int feed(smoe_session *s, const int32_t *tokens, int32_t from, int32_t n, char *err) {
    smoe_batch_entry e[PROMPT_BATCH];
    for (int32_t i = from; i < n; i += PROMPT_BATCH) {
        int32_t cnt = n - i < PROMPT_BATCH ? n - i : PROMPT_BATCH;
        for (int32_t j = 0; j < cnt; j++) e[j] = (smoe_batch_entry){s->seq, i + j, tokens[i + j], i + j == n - 1};
        if (smoe_forward(s->ctx, e, cnt, s->logits, err)) return -1;
    }
    return 0;
}

/* Prompt: reuse the longest cached prefix, run the rest. */
static int process_prompt(smoe_session *s, const smoe_tokens *prompt, smoe_gen_result *res, char *err) {
    if (prompt->n == 0) return smoe_errf(err, "the prompt is empty");
    if (prompt->n >= s->n_ctx)
        return smoe_errf(err, "the prompt has %d tokens but the context holds %d (leave room for the answer: raise --ctx)",
                         prompt->n, s->n_ctx);
    int32_t keep = 0;
    while (keep < s->cached.n && keep < prompt->n && s->cached.ids[keep] == prompt->ids[keep]) keep++;
    if (keep == prompt->n) keep--; /* the last token must run to give logits */
    double t0 = smoe_now_ms();
    s->cached.n = keep;
    if (feed(s, prompt->ids, keep, prompt->n, err)) {
        s->cached.n = 0; /* the cache is in an unknown state */
        return -1;
    }
    for (int32_t i = keep; i < prompt->n; i++)
        if (smoe_tokens_push(&s->cached, prompt->ids[i])) return smoe_errf(err, "out of memory");
    res->n_prompt = prompt->n;
    res->n_prompt_processed = prompt->n - keep;
    res->prompt_ms = smoe_now_ms() - t0;
    return 0;
}

/* The decoder's text goes to the caller's emit (logprobs are not kept). */
typedef struct emit_to {
    smoe_emit_fn emit;
    void *user;
} emit_to;

static int on_text(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    (void)lp, (void)n_lp;
    emit_to *e = user;
    return len ? e->emit(e->user, text, len) : 0;
}

/* Run token t at the end of the cache: every cached token has its keys and
 * values computed, so the next turn can extend the conversation. */
static int run_token(smoe_session *s, int32_t t, char *err) {
    int32_t pos = s->cached.n;
    if (smoe_tokens_push(&s->cached, t)) return smoe_errf(err, "out of memory");
    if (feed(s, s->cached.ids, pos, pos + 1, err)) {
        s->cached.n = 0;
        return -1;
    }
    return 0;
}

int smoe_session_generate(smoe_session *s, const smoe_tokens *prompt, const smoe_gen_params *p,
                          smoe_emit_fn emit, void *user, smoe_gen_result *res, char *err) {
    memset(res, 0, sizeof *res);
    smoe_decode_params dp = {
        .sampling = p->sampling,
        .max_tokens = p->max_tokens,
        .stop = p->stop,
        .n_stop = p->n_stop,
        .stop_tokens = p->stop_tokens,
        .n_stop_tokens = p->n_stop_tokens,
        .top_logprobs = -1,
        .grammar = p->grammar,
        .grammar_triggers = p->grammar_triggers,
        .n_grammar_triggers = p->n_grammar_triggers,
    };
    emit_to to = {emit, user};
    smoe_decode_events ev = {.text = on_text};
    smoe_decoder *d = smoe_decoder_new(s->tok, s->n_vocab, &dp, &ev, &to, err);
    if (!d) return -1;
    int rc = process_prompt(s, prompt, res, err);
    if (rc == 0) smoe_decoder_accept(d, prompt->ids, prompt->n);
    double t0 = smoe_now_ms();
    int32_t next;
    while (rc == 0 && smoe_decoder_step(d, s->logits, s->n_ctx - s->cached.n + 1, &next))
        rc = run_token(s, next, err);
    if (rc == 0 && next >= 0) rc = run_token(s, next, err); /* ended at max_tokens: keep the whole answer */
    if (rc == 0 && smoe_decoder_finish(d) == SMOE_FINISH_ERROR) rc = smoe_errf(err, "%s", smoe_decoder_error(d));
    const smoe_decode_stats *st = smoe_decoder_stats(d);
    res->finish = smoe_decoder_finish(d);
    res->n_generated = st->n_generated;
    res->grammar_ms = st->grammar_ms;
    res->n_grammar_steps = st->n_grammar_steps;
    res->grammar_complete = st->grammar_complete;
    res->gen_ms = smoe_now_ms() - t0;
    smoe_decoder_free(d);
    return rc;
}
