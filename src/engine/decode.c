/* decode.c - one decode step, shared by the CLI and the server (see
 * decode.h for the rules).  The only place that draws a masked sample and
 * advances a grammar with a generated token. */
#define _GNU_SOURCE
#include "decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/common.h"
#include "../grammar/grammar.h"
#include "stopstr.h"

struct smoe_decoder {
    const smoe_tokenizer *tok;
    int32_t n_vocab, eos;
    int32_t max_tokens, top_logprobs;
    char **stops;                   /* copies of the stop strings */
    int n_stop;
    int32_t *stop_tokens, *triggers;
    int n_stop_tokens, n_triggers;
    smoe_sampler *smp;
    smoe_detok dt;
    smoe_stop_filter stop;
    smoe_gmatch *gm;                /* borrowed */
    uint64_t *mask;                 /* the grammar's allowed tokens */
    bool armed;                     /* the grammar constrains now */
    float *raw;                     /* logits before sampling, for logprobs */
    smoe_token_lp *pending;         /* logprob records waiting for their text */
    int32_t n_pending, cap_pending;
    smoe_decode_events ev;
    void *user;
    bool done;
    smoe_finish finish;
    char err[SMOE_ERR_SIZE];
    smoe_decode_stats st;
};

const char *smoe_finish_name(smoe_finish f) {
    switch (f) {
    case SMOE_FINISH_STOP: return "stop";
    case SMOE_FINISH_LENGTH: return "length";
    case SMOE_FINISH_CANCEL: return "cancel";
    case SMOE_FINISH_ERROR: return "error";
    }
    return "?";
}

/* ---------------------------------------------------------------------------
 * Making and freeing
 * ------------------------------------------------------------------------- */

int smoe_decode_check(const smoe_decode_params *p, int32_t n_vocab, char *err) {
    if (smoe_sampler_check(&p->sampling, n_vocab, err)) return -1;
    if (p->max_tokens < -1) return smoe_errf(err, "max_tokens %d is negative", p->max_tokens);
    if (p->top_logprobs < -1 || p->top_logprobs > SMOE_MAX_TOP_LOGPROBS)
        return smoe_errf(err, "top_logprobs %d is out of range (0 to %d)", p->top_logprobs, SMOE_MAX_TOP_LOGPROBS);
    if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop)) return smoe_errf(err, "bad stop list");
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return smoe_errf(err, "stop: stop strings must not be empty");
    if (p->n_stop_tokens < 0 || (p->n_stop_tokens > 0 && !p->stop_tokens)) return smoe_errf(err, "bad stop token list");
    if (p->n_grammar_triggers < 0 || (p->n_grammar_triggers > 0 && !p->grammar_triggers))
        return smoe_errf(err, "bad grammar trigger list");
    return 0;
}

static int32_t *copy_ids(const int32_t *ids, int n, bool *oom) {
    if (n == 0) return NULL;
    int32_t *c = malloc((size_t)n * sizeof *c);
    if (!c) *oom = true;
    else memcpy(c, ids, (size_t)n * sizeof *c);
    return c;
}

void smoe_decoder_free(smoe_decoder *d) {
    if (!d) return;
    if (d->stops)
        for (int i = 0; i < d->n_stop; i++) free(d->stops[i]);
    free(d->stops);
    free(d->stop_tokens);
    free(d->triggers);
    smoe_sampler_free(d->smp);
    smoe_stop_free(&d->stop);
    free(d->mask);
    free(d->raw);
    free(d->pending);
    free(d);
}

smoe_decoder *smoe_decoder_new(const smoe_tokenizer *tok, int32_t n_vocab, const smoe_decode_params *p,
                               const smoe_decode_events *ev, void *user, char *err) {
    if (smoe_decode_check(p, n_vocab, err)) return NULL;
    smoe_decoder *d = calloc(1, sizeof *d);
    if (!d) { smoe_errf(err, "out of memory"); return NULL; }
    d->tok = tok;
    d->n_vocab = n_vocab;
    d->eos = smoe_tokenizer_vocab(tok)->eos_id;
    d->max_tokens = p->max_tokens;
    d->top_logprobs = p->top_logprobs;
    d->ev = ev ? *ev : (smoe_decode_events){0};
    d->user = user;
    bool oom = false;
    if (p->n_stop && !(d->stops = calloc((size_t)p->n_stop, sizeof *d->stops))) oom = true;
    for (int i = 0; i < p->n_stop && !oom; i++, d->n_stop++)
        if (!(d->stops[i] = strdup(p->stop[i]))) oom = true;
    d->stop_tokens = copy_ids(p->stop_tokens, p->n_stop_tokens, &oom);
    d->n_stop_tokens = oom ? 0 : p->n_stop_tokens;
    d->triggers = copy_ids(p->grammar_triggers, p->n_grammar_triggers, &oom);
    d->n_triggers = oom ? 0 : p->n_grammar_triggers;
    if (p->top_logprobs >= 0 && !(d->raw = malloc((size_t)n_vocab * sizeof *d->raw))) oom = true;
    if (p->grammar && !oom) {
        /* words for the model's vocabulary and for the tokenizer's (the
         * grammar masks the latter; tokens the tokenizer lacks stay 0) */
        size_t words = ((size_t)n_vocab + 63) / 64;
        size_t tw = ((size_t)smoe_tokenizer_vocab(tok)->n_tokens + 63) / 64;
        if (!(d->mask = calloc(words > tw ? words : tw, sizeof *d->mask))) oom = true;
        d->gm = p->grammar;
        d->armed = p->n_grammar_triggers == 0;
        d->st.grammar_complete = d->armed && smoe_gmatch_complete(d->gm);
    }
    if (oom) {
        smoe_errf(err, "out of memory");
        smoe_decoder_free(d);
        return NULL;
    }
    if (!(d->smp = smoe_sampler_new(&p->sampling, n_vocab, err))) { smoe_decoder_free(d); return NULL; }
    smoe_detok_init(&d->dt, tok, false);
    smoe_stop_init(&d->stop, (const char *const *)d->stops, d->n_stop);
    return d;
}

void smoe_decoder_accept(smoe_decoder *d, const int32_t *ids, int32_t n) {
    for (int32_t i = 0; i < n; i++) smoe_sampler_accept(d->smp, ids[i]);
}

bool smoe_decoder_done(const smoe_decoder *d) { return d->done; }
smoe_finish smoe_decoder_finish(const smoe_decoder *d) { return d->finish; }
const char *smoe_decoder_error(const smoe_decoder *d) { return d->err; }

const smoe_decode_stats *smoe_decoder_stats(const smoe_decoder *d) { return &d->st; }

/* ---------------------------------------------------------------------------
 * Text and logprobs
 * ------------------------------------------------------------------------- */

/* The stop filter's output: to the caller, with the records it completes. */
static int emit_text(void *user, const char *text, size_t len) {
    smoe_decoder *d = user;
    int r = d->ev.text ? d->ev.text(d->user, text, len, d->pending, d->n_pending) : 0;
    d->n_pending = 0;
    return r;
}

/* The chosen token's log-probability and the top n, from raw logits. */
static int record_logprobs(smoe_decoder *d, int32_t chosen) {
    if (d->n_pending == d->cap_pending) {
        int32_t cap = d->cap_pending ? d->cap_pending * 2 : 8;
        smoe_token_lp *p = realloc(d->pending, (size_t)cap * sizeof *p);
        if (!p) return -1;
        d->pending = p;
        d->cap_pending = cap;
    }
    const float *raw = d->raw;
    float mx = -INFINITY;
    for (int32_t i = 0; i < d->n_vocab; i++) if (raw[i] > mx) mx = raw[i];
    double sum = 0;
    for (int32_t i = 0; i < d->n_vocab; i++) sum += exp((double)raw[i] - mx);
    float lse = (float)(mx + log(sum));
    smoe_token_lp *r = &d->pending[d->n_pending++];
    memset(r, 0, sizeof *r);
    r->id = chosen;
    r->logprob = raw[chosen] - lse;
    int32_t k = d->top_logprobs;
    /* insertion into a short sorted list: k <= 20 */
    for (int32_t i = 0; i < d->n_vocab && k > 0; i++) {
        float v = raw[i];
        if (r->n_top == k && v <= r->top[k - 1].logprob) continue;
        int32_t at = r->n_top < k ? r->n_top++ : k - 1;
        while (at > 0 && r->top[at - 1].logprob < v) { r->top[at] = r->top[at - 1]; at--; }
        r->top[at] = (smoe_logprob){i, v};
    }
    for (int32_t i = 0; i < r->n_top; i++) r->top[i].logprob -= lse;
    return 0;
}

/* Out with the text held back (an incomplete character, a stop-string
 * prefix) and the records of tokens that made no text (control tokens).
 * Returns 1 when a stop string matched, 2 when the caller cancelled, -1
 * when out of memory, else 0. */
static int flush_text(smoe_decoder *d) {
    char text[128];
    size_t n = smoe_detok_flush(&d->dt, text, sizeof text);
    int r = smoe_stop_push(&d->stop, text, n, emit_text, d);
    if (r == 0) r = smoe_stop_flush(&d->stop, emit_text, d);
    if (r == 0 && d->n_pending && d->ev.text) {
        if (d->ev.text(d->user, "", 0, d->pending, d->n_pending)) r = 2;
        d->n_pending = 0;
    }
    return r;
}

/* ---------------------------------------------------------------------------
 * Finishing
 * ------------------------------------------------------------------------- */

static int fail(smoe_decoder *d, const char *fmt, const char *detail) {
    d->done = true;
    d->finish = SMOE_FINISH_ERROR;
    smoe_errf(d->err, fmt, detail);
    return 0;
}

/* Finish as how after flushing; a stop string found in the held-back text
 * makes it STOP, a cancelling caller CANCEL. */
static int end_flushed(smoe_decoder *d, smoe_finish how) {
    int r = flush_text(d);
    if (r < 0) return fail(d, "%s", "out of memory");
    d->done = true;
    d->finish = r == 1 ? SMOE_FINISH_STOP : r == 2 ? SMOE_FINISH_CANCEL : how;
    return 0;
}

static bool document_done(smoe_decoder *d) {
    return d->gm && d->armed && smoe_gmatch_complete(d->gm) && !smoe_gmatch_can_continue(d->gm);
}

static bool is_stop_token(const smoe_decoder *d, int32_t t) {
    if (t == d->eos) return true;
    for (int i = 0; i < d->n_stop_tokens; i++) if (d->stop_tokens[i] == t) return true;
    return false;
}

static bool is_trigger(const smoe_decoder *d, int32_t t) {
    for (int i = 0; i < d->n_triggers; i++) if (d->triggers[i] == t) return true;
    return false;
}

/* ---------------------------------------------------------------------------
 * The step
 * ------------------------------------------------------------------------- */

/* Draw the next token under the grammar: -1 after fail(). */
static int32_t sample_constrained(smoe_decoder *d, float *logits, int32_t room) {
    /* the document must be complete by the last token this job may write */
    int32_t budget = room;
    if (d->max_tokens >= 0 && d->max_tokens - d->st.n_generated < budget) budget = d->max_tokens - d->st.n_generated;
    double g0 = smoe_now_ms();
    char gerr[SMOE_ERR_SIZE] = "";
    int32_t n = smoe_gmatch_mask(d->gm, budget - 1, d->mask, gerr);
    if (n < 0) return fail(d, "grammar: %s", gerr), -1;
    if (smoe_gmatch_complete(d->gm))
        for (int i = 0; i < d->n_stop_tokens; i++) { /* the stop tokens may end a complete document */
            int32_t t = d->stop_tokens[i];
            if (t >= 0 && t < d->n_vocab && !((d->mask[t >> 6] >> (t & 63)) & 1)) {
                d->mask[t >> 6] |= 1ull << (t & 63);
                n++;
            }
        }
    d->st.grammar_ms += smoe_now_ms() - g0;
    d->st.n_grammar_steps++;
    if (n == 0) return fail(d, "%s", "grammar: no token of this vocabulary can continue the document here"), -1;
    int32_t t = smoe_sampler_sample_masked(d->smp, logits, d->mask);
    if (t < 0) return fail(d, "%s", "grammar: every token the grammar allows here is banned by a logit bias"), -1;
    return t;
}

int smoe_decoder_step(smoe_decoder *d, float *logits, int32_t room, int32_t *next) {
    *next = -1;
    if (d->done) return 0;
    if (d->max_tokens >= 0 && d->st.n_generated >= d->max_tokens) return end_flushed(d, SMOE_FINISH_LENGTH);
    if (document_done(d)) return end_flushed(d, SMOE_FINISH_STOP);
    if (d->raw) memcpy(d->raw, logits, (size_t)d->n_vocab * sizeof *logits);
    int32_t t = d->gm && d->armed ? sample_constrained(d, logits, room) : smoe_sampler_sample(d->smp, logits);
    if (t < 0) return 0;
    d->st.n_sampled++;
    if (is_stop_token(d, t)) return end_flushed(d, SMOE_FINISH_STOP);
    if (d->gm && d->armed) {
        double g0 = smoe_now_ms();
        char gerr[SMOE_ERR_SIZE] = "";
        if (smoe_gmatch_accept_token(d->gm, t, gerr)) return fail(d, "grammar: %s", gerr);
        d->st.grammar_ms += smoe_now_ms() - g0;
        d->st.grammar_complete = smoe_gmatch_complete(d->gm);
    } else if (d->gm && is_trigger(d, t)) {
        /* the text before the trigger goes out first, so the token callback
         * marks exactly where the constrained document begins */
        int r = flush_text(d);
        if (r < 0) return fail(d, "%s", "out of memory");
        if (r) {
            d->done = true;
            d->finish = r == 1 ? SMOE_FINISH_STOP : SMOE_FINISH_CANCEL;
            return 0;
        }
        d->armed = true;
        d->st.grammar_complete = smoe_gmatch_complete(d->gm);
    }
    smoe_sampler_accept(d->smp, t);
    d->st.n_generated++;
    if (d->ev.token) d->ev.token(d->user, t);
    if (d->raw && record_logprobs(d, t)) return fail(d, "%s", "out of memory");
    char text[128];
    size_t n = smoe_detok_push(&d->dt, t, text, sizeof text);
    int r = smoe_stop_push(&d->stop, text, n, emit_text, d);
    if (r < 0) return fail(d, "%s", "out of memory");
    if (r) {
        d->n_pending = 0; /* tokens inside the stop string */
        d->done = true;
        d->finish = r == 1 ? SMOE_FINISH_STOP : SMOE_FINISH_CANCEL;
        return 0;
    }
    if (document_done(d)) return end_flushed(d, SMOE_FINISH_STOP); /* nothing can follow: no need to run the model */
    if (room <= 1) return end_flushed(d, SMOE_FINISH_LENGTH);
    if (d->max_tokens >= 0 && d->st.n_generated >= d->max_tokens) {
        end_flushed(d, SMOE_FINISH_LENGTH);
        if (d->finish == SMOE_FINISH_LENGTH) *next = t;
        return 0;
    }
    *next = t;
    return 1;
}
