/* session.c - the generation loop for one sequence. */
#define _GNU_SOURCE
#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common.h"
#include "../grammar/grammar.h"

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

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

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

static bool is_stop_token(const smoe_session *s, const smoe_gen_params *p, int32_t t) {
    if (t == smoe_tokenizer_vocab(s->tok)->eos_id) return true;
    for (int i = 0; i < p->n_stop_tokens; i++) if (p->stop_tokens[i] == t) return true;
    return false;
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
    double t0 = now_ms();
    s->cached.n = keep;
    if (feed(s, prompt->ids, keep, prompt->n, err)) {
        s->cached.n = 0; /* the cache is in an unknown state */
        return -1;
    }
    for (int32_t i = keep; i < prompt->n; i++)
        if (smoe_tokens_push(&s->cached, prompt->ids[i])) return smoe_errf(err, "out of memory");
    res->n_prompt = prompt->n;
    res->n_prompt_processed = prompt->n - keep;
    res->prompt_ms = now_ms() - t0;
    return 0;
}

static bool is_trigger(const smoe_gen_params *p, int32_t t) {
    for (int i = 0; i < p->n_grammar_triggers; i++) if (p->grammar_triggers[i] == t) return true;
    return false;
}

/* The allowed tokens of a constrained step into mask; -1 with err. */
static int grammar_mask(smoe_session *s, const smoe_gen_params *p, int32_t remaining, uint64_t *mask, char *err) {
    char gerr[SMOE_ERR_SIZE] = "";
    int32_t n = smoe_gmatch_mask(p->grammar, remaining - 1, mask, gerr);
    if (n < 0) return smoe_errf(err, "grammar: %s", gerr);
    bool complete = smoe_gmatch_complete(p->grammar);
    if (complete)
        for (int i = 0; i < p->n_stop_tokens; i++) {
            int32_t t = p->stop_tokens[i];
            if (t >= 0 && t < s->n_vocab && !((mask[t >> 6] >> (t & 63)) & 1)) { mask[t >> 6] |= 1ull << (t & 63); n++; }
        }
    if (n == 0) return smoe_errf(err, "grammar: no token of this vocabulary can continue the document here");
    return 0;
}

int smoe_session_generate(smoe_session *s, const smoe_tokens *prompt, const smoe_gen_params *p,
                          smoe_emit_fn emit, void *user, smoe_gen_result *res, char *err) {
    memset(res, 0, sizeof *res);
    smoe_sampler *smp = smoe_sampler_new(&p->sampling, s->n_vocab, err);
    if (!smp) return -1;
    uint64_t *mask = NULL;
    if (p->grammar) {
        /* words for the model's vocabulary; tokens the tokenizer lacks stay 0 */
        size_t words = ((size_t)s->n_vocab + 63) / 64 + 2;
        size_t tw = ((size_t)smoe_tokenizer_vocab(s->tok)->n_tokens + 63) / 64;
        if (tw > words) words = tw;
        if (!(mask = calloc(words, sizeof *mask))) {
            smoe_sampler_free(smp);
            return smoe_errf(err, "out of memory");
        }
    }
    bool constrained = p->grammar && p->n_grammar_triggers == 0;
    int rc = process_prompt(s, prompt, res, err);
    smoe_stop_filter stop;
    smoe_stop_init(&stop, p->stop, p->n_stop);
    smoe_detok dt;
    smoe_detok_init(&dt, s->tok, false);
    for (int32_t i = 0; rc == 0 && i < prompt->n; i++) smoe_sampler_accept(smp, prompt->ids[i]);
    double t0 = now_ms();
    res->finish = SMOE_FINISH_LENGTH;
    bool stopped = false, grammar_done = false;
    while (rc == 0 && (p->max_tokens < 0 || res->n_generated < p->max_tokens)) {
        int32_t t;
        if (constrained) {
            if (smoe_gmatch_complete(p->grammar) && !smoe_gmatch_can_continue(p->grammar)) {
                grammar_done = true;
                break;
            }
            /* tokens left, this one included: the document must be complete
             * by the last of them */
            int32_t remaining = s->n_ctx - s->cached.n + 1;
            if (p->max_tokens >= 0 && p->max_tokens - res->n_generated < remaining) remaining = p->max_tokens - res->n_generated;
            double g0 = now_ms();
            if (grammar_mask(s, p, remaining, mask, err)) { rc = -1; break; }
            res->grammar_ms += now_ms() - g0;
            res->n_grammar_steps++;
            t = smoe_sampler_sample_masked(smp, s->logits, mask);
            if (t < 0) {
                rc = smoe_errf(err, "grammar: every token the grammar allows here is banned (logit bias)");
                break;
            }
        } else {
            t = smoe_sampler_sample(smp, s->logits);
        }
        if (is_stop_token(s, p, t)) { res->finish = SMOE_FINISH_STOP; break; }
        if (constrained) {
            double g0 = now_ms();
            char gerr[SMOE_ERR_SIZE] = "";
            if (smoe_gmatch_accept_token(p->grammar, t, gerr)) { rc = smoe_errf(err, "grammar: %s", gerr); break; }
            res->grammar_ms += now_ms() - g0;
        } else if (p->grammar && is_trigger(p, t)) {
            constrained = true;
        }
        smoe_sampler_accept(smp, t);
        res->n_generated++;
        char text[128];
        size_t n = smoe_detok_push(&dt, t, text, sizeof text);
        int r = smoe_stop_push(&stop, text, n, emit, user);
        if (r < 0) { rc = smoe_errf(err, "out of memory"); break; }
        if (r) { res->finish = r == 1 ? SMOE_FINISH_STOP : SMOE_FINISH_ABORT; stopped = true; }
        /* every cached token has its keys and values computed: run this
         * one now, so the next turn can extend the conversation */
        if (stopped) break;
        if (constrained && smoe_gmatch_complete(p->grammar) && !smoe_gmatch_can_continue(p->grammar)) {
            grammar_done = true; /* nothing can follow: no need to run the model again */
            break;
        }
        if (s->cached.n >= s->n_ctx) { res->finish = SMOE_FINISH_LENGTH; break; }
        int32_t pos = s->cached.n;
        if (smoe_tokens_push(&s->cached, t)) { rc = smoe_errf(err, "out of memory"); break; }
        if (feed(s, s->cached.ids, pos, pos + 1, err)) { s->cached.n = 0; rc = -1; break; }
    }
    if (rc == 0 && !stopped) {
        char text[128];
        size_t n = smoe_detok_flush(&dt, text, sizeof text);
        int r = smoe_stop_push(&stop, text, n, emit, user);
        if (r == 0) r = smoe_stop_flush(&stop, emit, user);
        if (r < 0) rc = smoe_errf(err, "out of memory");
        else if (r == 1) res->finish = SMOE_FINISH_STOP;
        else if (r == 2) res->finish = SMOE_FINISH_ABORT;
        else if (grammar_done) res->finish = SMOE_FINISH_STOP;
    }
    if (p->grammar) res->grammar_complete = constrained && smoe_gmatch_complete(p->grammar);
    res->gen_ms = now_ms() - t0;
    smoe_stop_free(&stop);
    smoe_sampler_free(smp);
    free(mask);
    return rc;
}
