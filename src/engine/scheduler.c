/* scheduler.c - continuous batching over a fixed set of slots (see
 * scheduler.h for the rules). */
#define _GNU_SOURCE
#include "scheduler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common.h"
#include "../grammar/grammar.h"
#include "stopstr.h"

typedef struct slot {
    smoe_seq *seq;
    smoe_tokens toks;        /* tokens whose keys and values are in seq */
    uint64_t last_used;      /* for least-recently-used ties */
    smoe_sched_job *job;     /* NULL when free */
} slot;

struct smoe_sched_job {
    smoe_sched *s;
    int32_t slot;
    uint64_t order;          /* admission order: prefill goes oldest first */
    smoe_job_params p;
    char **stops;
    smoe_sampler *smp;
    smoe_detok dt;
    smoe_stop_filter stop;
    int32_t *prompt;
    int32_t n_prompt, n_fed;  /* n_fed: prompt tokens in the cache */
    bool decoding;            /* prompt done; next_token waits to be fed */
    int32_t next_token;
    smoe_token_lp *pending;   /* logprob records waiting for their text */
    int32_t n_pending, cap_pending;
    smoe_job_events ev;
    void *user;
    smoe_job_stats st;
    smoe_sched_job *prev, *next;
    smoe_gmatch *gm;          /* constrained decoding: the document so far */
    uint64_t *mask;           /* its allowed tokens (n_vocab bits) */
    bool armed;               /* the grammar constrains (no trigger, or the trigger was sampled) */
};

struct smoe_sched {
    const smoe_model *m;
    const smoe_tokenizer *tok;
    smoe_ctx *ctx;
    slot *slots;
    int32_t n_slots, n_ctx, chunk, n_vocab, max_batch;
    smoe_sched_job *head, *tail;   /* active jobs in admission order */
    int32_t n_active;
    uint64_t clock, order;
    smoe_batch_entry *batch;
    smoe_sched_job **batch_job;    /* the job of each batch entry */
    float *logits;                 /* n_slots rows */
    float *raw;                    /* one row: logits before sampling */
    smoe_gvocab *gvocab;           /* the vocabulary trie, made at the first constrained job */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

smoe_sched *smoe_sched_new(const smoe_model *m, const smoe_tokenizer *tok, const smoe_sched_opts *o, char *err) {
    const smoe_hparams *hp = smoe_model_hparams(m);
    if (o->n_slots < 1 || o->n_slots > 4096) {
        smoe_errf(err, "parallel sequences %d out of range (1 to 4096)", o->n_slots);
        return NULL;
    }
    if (o->chunk < 1 || o->chunk > 65536) {
        smoe_errf(err, "prompt chunk %d out of range (1 to 65536)", o->chunk);
        return NULL;
    }
    smoe_sched *s = calloc(1, sizeof *s);
    if (!s) { smoe_errf(err, "out of memory"); return NULL; }
    s->m = m;
    s->tok = tok;
    s->n_slots = o->n_slots;
    s->n_ctx = o->n_ctx ? o->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    s->chunk = o->chunk;
    s->n_vocab = hp->n_vocab;
    s->max_batch = o->n_slots + o->chunk;
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->batch = malloc((size_t)s->max_batch * sizeof *s->batch);
    s->batch_job = malloc((size_t)s->max_batch * sizeof *s->batch_job);
    s->logits = malloc((size_t)s->n_slots * (size_t)s->n_vocab * sizeof(float));
    s->raw = malloc((size_t)s->n_vocab * sizeof(float));
    if (!s->slots || !s->batch || !s->batch_job || !s->logits || !s->raw) {
        smoe_errf(err, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < s->n_slots; i++)
        if (!(s->slots[i].seq = smoe_seq_new_typed(m, s->n_ctx, o->kv_type, err))) goto fail;
    if (!(s->ctx = smoe_ctx_new(m, s->max_batch, err))) goto fail;
    return s;
fail:
    smoe_sched_free(s);
    return NULL;
}

static void finish(smoe_sched *s, smoe_sched_job *j, smoe_job_finish how, const char *err);

void smoe_sched_free(smoe_sched *s) {
    if (!s) return;
    while (s->head) finish(s, s->head, SMOE_JOB_CANCEL, "");
    if (s->slots)
        for (int32_t i = 0; i < s->n_slots; i++) {
            smoe_seq_free(s->slots[i].seq);
            smoe_tokens_free(&s->slots[i].toks);
        }
    smoe_ctx_free(s->ctx);
    smoe_gvocab_free(s->gvocab);
    free(s->slots);
    free(s->batch);
    free(s->batch_job);
    free(s->logits);
    free(s->raw);
    free(s);
}

int32_t smoe_sched_n_slots(const smoe_sched *s) { return s->n_slots; }
int32_t smoe_sched_n_ctx(const smoe_sched *s) { return s->n_ctx; }
int32_t smoe_sched_active(const smoe_sched *s) { return s->n_active; }
int32_t smoe_sched_free_slots(const smoe_sched *s) { return s->n_slots - s->n_active; }

int64_t smoe_sched_kv_used(const smoe_sched *s) {
    int64_t n = 0;
    for (int32_t i = 0; i < s->n_slots; i++) n += s->slots[i].toks.n;
    return n;
}

int64_t smoe_sched_kv_busy(const smoe_sched *s) {
    int64_t n = 0;
    for (int32_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].job) n += s->slots[i].toks.n;
    return n;
}

int smoe_sched_check_params(const smoe_sched *s, const smoe_job_params *p, char *err) {
    if (smoe_sampler_check(&p->sampling, s->n_vocab, err)) return -1;
    if (p->max_tokens < -1) return smoe_errf(err, "max_tokens %d is negative", p->max_tokens);
    if (p->top_logprobs < -1 || p->top_logprobs > SMOE_SCHED_MAX_TOP)
        return smoe_errf(err, "top_logprobs %d is out of range (0 to %d)", p->top_logprobs, SMOE_SCHED_MAX_TOP);
    if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop)) return smoe_errf(err, "bad stop list");
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return smoe_errf(err, "stop: stop strings must not be empty");
    return 0;
}

/* ---------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------- */

static void job_free(smoe_sched_job *j) {
    if (!j) return;
    if (j->stops)
        for (int i = 0; i < j->p.n_stop; i++) free(j->stops[i]);
    free(j->stops);
    smoe_sampler_free(j->smp);
    smoe_stop_free(&j->stop);
    free(j->prompt);
    free(j->pending);
    smoe_gmatch_free(j->gm);
    free(j->mask);
    free(j);
}

static int32_t common_prefix(const smoe_tokens *a, const int32_t *b, int32_t n) {
    int32_t k = 0;
    while (k < a->n && k < n && a->ids[k] == b[k]) k++;
    return k;
}

smoe_sched_job *smoe_sched_submit(smoe_sched *s, const int32_t *prompt, int32_t n, const smoe_job_params *p,
                                  const smoe_job_events *ev, void *user, char *err) {
    if (n < 1) { smoe_errf(err, "the prompt is empty"); return NULL; }
    if (n >= s->n_ctx) {
        smoe_errf(err, "the prompt has %d tokens but a sequence holds %d (leave room for the answer)", n, s->n_ctx);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= s->n_vocab) {
            smoe_errf(err, "prompt token %d is outside the vocabulary (0 to %d)", prompt[i], s->n_vocab - 1);
            return NULL;
        }
    if (smoe_sched_check_params(s, p, err)) return NULL;
    /* the free slot with the longest common prefix, then the least recently used */
    int32_t best = -1, best_k = -1;
    for (int32_t i = 0; i < s->n_slots; i++) {
        if (s->slots[i].job) continue;
        int32_t k = common_prefix(&s->slots[i].toks, prompt, n);
        if (k > best_k || (k == best_k && s->slots[i].last_used < s->slots[best].last_used)) {
            best = i;
            best_k = k;
        }
    }
    if (best < 0) { smoe_errf(err, "no free sequence slot"); return NULL; }

    smoe_sched_job *j = calloc(1, sizeof *j);
    if (!j) { smoe_errf(err, "out of memory"); return NULL; }
    j->p = *p;
    j->prompt = malloc((size_t)n * sizeof *j->prompt);
    j->stops = p->n_stop ? calloc((size_t)p->n_stop, sizeof *j->stops) : NULL;
    if (!j->prompt || (p->n_stop && !j->stops)) goto oom;
    for (int i = 0; i < p->n_stop; i++)
        if (!(j->stops[i] = strdup(p->stop[i]))) goto oom;
    j->p.stop = (const char *const *)j->stops;
    j->p.sampling.bias = NULL; /* the sampler keeps its own copy */
    if (!(j->smp = smoe_sampler_new(&p->sampling, s->n_vocab, err))) { job_free(j); return NULL; }
    j->p.grammar = NULL; /* the matcher holds the reference */
    if (p->grammar) {
        size_t words = ((size_t)s->n_vocab + 63) / 64;
        size_t tw = ((size_t)smoe_tokenizer_vocab(s->tok)->n_tokens + 63) / 64;
        if (!s->gvocab && !(s->gvocab = smoe_gvocab_new(s->tok, err))) { job_free(j); return NULL; }
        if (!(j->mask = calloc(words > tw ? words : tw, sizeof *j->mask))) goto oom;
        if (!(j->gm = smoe_gmatch_new(p->grammar, s->gvocab, err))) { job_free(j); return NULL; }
        j->armed = p->grammar_trigger <= 0;
    }
    memcpy(j->prompt, prompt, (size_t)n * sizeof *prompt);
    for (int32_t i = 0; i < n; i++) smoe_sampler_accept(j->smp, prompt[i]);
    smoe_detok_init(&j->dt, s->tok, false);
    smoe_stop_init(&j->stop, j->p.stop, j->p.n_stop);

    slot *sl = &s->slots[best];
    int32_t keep = best_k == n ? n - 1 : best_k;  /* the last token must run to give logits */
    sl->toks.n = keep;
    sl->job = j;
    sl->last_used = ++s->clock;
    j->s = s;
    j->slot = best;
    j->order = ++s->order;
    j->n_prompt = n;
    j->n_fed = keep;
    j->ev = *ev;
    j->user = user;
    j->st.n_prompt = n;
    j->st.n_cached = keep;
    j->st.n_processed = n - keep;
    j->st.slot = best;
    j->st.t_admit_ms = now_ms();
    j->prev = s->tail;
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    s->n_active++;
    return j;
oom:
    smoe_errf(err, "out of memory");
    job_free(j);
    return NULL;
}

static void finish(smoe_sched *s, smoe_sched_job *j, smoe_job_finish how, const char *err) {
    j->st.finish = how;
    j->st.t_end_ms = now_ms();
    slot *sl = &s->slots[j->slot];
    sl->job = NULL;
    sl->last_used = ++s->clock;
    if (j->prev) j->prev->next = j->next;
    else s->head = j->next;
    if (j->next) j->next->prev = j->prev;
    else s->tail = j->prev;
    s->n_active--;
    if (j->ev.done) j->ev.done(j->user, &j->st, err ? err : "");
    job_free(j);
}

void smoe_sched_cancel(smoe_sched *s, smoe_sched_job *j) { finish(s, j, SMOE_JOB_CANCEL, ""); }

/* ---------------------------------------------------------------------------
 * Sampling and text
 * ------------------------------------------------------------------------- */

static int emit_text(void *user, const char *text, size_t len) {
    smoe_sched_job *j = user;
    if (j->ev.text) j->ev.text(j->user, text, len, j->pending, j->n_pending);
    j->n_pending = 0;
    return 0;
}

/* The chosen token's log-probability and the top n, from raw logits. */
static int record_logprobs(smoe_sched_job *j, const float *raw, int32_t n_vocab, int32_t chosen) {
    if (j->n_pending == j->cap_pending) {
        int32_t cap = j->cap_pending ? j->cap_pending * 2 : 8;
        smoe_token_lp *p = realloc(j->pending, (size_t)cap * sizeof *p);
        if (!p) return -1;
        j->pending = p;
        j->cap_pending = cap;
    }
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) if (raw[i] > mx) mx = raw[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)raw[i] - mx);
    float lse = (float)(mx + log(sum));
    smoe_token_lp *r = &j->pending[j->n_pending++];
    memset(r, 0, sizeof *r);
    r->id = chosen;
    r->logprob = raw[chosen] - lse;
    int32_t k = j->p.top_logprobs;
    /* insertion into a short sorted list: k <= 20 */
    for (int32_t i = 0; i < n_vocab && k > 0; i++) {
        float v = raw[i];
        if (r->n_top == k && v <= r->top[k - 1].logprob) continue;
        int32_t at = r->n_top < k ? r->n_top++ : k - 1;
        while (at > 0 && r->top[at - 1].logprob < v) { r->top[at] = r->top[at - 1]; at--; }
        r->top[at] = (smoe_logprob){i, v};
    }
    for (int32_t i = 0; i < r->n_top; i++) r->top[i].logprob -= lse;
    return 0;
}

/* Flush the detokenizer and the stop filter at the end of generation. */
static int flush_text(smoe_sched_job *j) {
    char text[128];
    size_t n = smoe_detok_flush(&j->dt, text, sizeof text);
    int r = smoe_stop_push(&j->stop, text, n, emit_text, j);
    if (r == 0) r = smoe_stop_flush(&j->stop, emit_text, j);
    if (r >= 0 && j->n_pending && j->ev.text) { /* tokens with no text (control tokens) */
        j->ev.text(j->user, "", 0, j->pending, j->n_pending);
        j->n_pending = 0;
    }
    return r;
}

static bool is_eos(const smoe_sched *s, int32_t t) { return t == smoe_tokenizer_vocab(s->tok)->eos_id; }

/* Sample this job's next token from its logits row; finish it when it is done. */
static void next_token(smoe_sched *s, smoe_sched_job *j, float *row) {
    slot *sl = &s->slots[j->slot];
    if (j->p.max_tokens == 0) { finish(s, j, SMOE_JOB_LENGTH, ""); return; }
    if (j->p.top_logprobs >= 0) memcpy(s->raw, row, (size_t)s->n_vocab * sizeof(float));
    int32_t t;
    if (j->gm && j->armed) {
        /* the document must be complete by the last token this job may write */
        int32_t left = s->n_ctx - sl->toks.n;
        if (j->p.max_tokens >= 0 && j->p.max_tokens - j->st.n_generated < left) left = j->p.max_tokens - j->st.n_generated;
        char gerr[SMOE_ERR_SIZE] = "";
        int32_t n = smoe_gmatch_mask(j->gm, left - 1, j->mask, gerr);
        if (n <= 0) { finish(s, j, SMOE_JOB_ERROR, n < 0 ? gerr : "grammar: no token can continue the document"); return; }
        t = smoe_sampler_sample_masked(j->smp, row, j->mask);
        if (t < 0) { finish(s, j, SMOE_JOB_ERROR, "grammar: every token the grammar allows is banned (logit_bias)"); return; }
        if (!is_eos(s, t) && smoe_gmatch_accept_token(j->gm, t, gerr)) { finish(s, j, SMOE_JOB_ERROR, gerr); return; }
    } else {
        t = smoe_sampler_sample(j->smp, row);
    }
    if (j->st.n_generated == 0) j->st.t_first_ms = now_ms();
    if (is_eos(s, t)) {
        if (flush_text(j) < 0) { finish(s, j, SMOE_JOB_ERROR, "out of memory"); return; }
        finish(s, j, SMOE_JOB_STOP, "");
        return;
    }
    if (j->gm && !j->armed && t == j->p.grammar_trigger) {
        /* the text before the trigger goes out first, so the token callback
         * marks exactly where the constrained document begins */
        if (flush_text(j) < 0) { finish(s, j, SMOE_JOB_ERROR, "out of memory"); return; }
        j->armed = true;
    }
    smoe_sampler_accept(j->smp, t);
    j->st.n_generated++;
    if (j->ev.token) j->ev.token(j->user, t);
    if (j->p.top_logprobs >= 0 && record_logprobs(j, s->raw, s->n_vocab, t)) {
        finish(s, j, SMOE_JOB_ERROR, "out of memory");
        return;
    }
    char text[128];
    size_t n = smoe_detok_push(&j->dt, t, text, sizeof text);
    int r = smoe_stop_push(&j->stop, text, n, emit_text, j);
    if (r < 0) { finish(s, j, SMOE_JOB_ERROR, "out of memory"); return; }
    if (r == 1) {
        j->n_pending = 0; /* tokens inside the stop string */
        finish(s, j, SMOE_JOB_STOP, "");
        return;
    }
    bool full = sl->toks.n >= s->n_ctx;
    if (j->gm && j->armed && smoe_gmatch_complete(j->gm) && !smoe_gmatch_can_continue(j->gm)) {
        /* the document is complete and nothing can follow: stop here */
        r = flush_text(j);
        if (r < 0) finish(s, j, SMOE_JOB_ERROR, "out of memory");
        else finish(s, j, SMOE_JOB_STOP, "");
        return;
    }
    if ((j->p.max_tokens >= 0 && j->st.n_generated >= j->p.max_tokens) || full) {
        r = flush_text(j);
        if (r < 0) finish(s, j, SMOE_JOB_ERROR, "out of memory");
        else finish(s, j, r == 1 ? SMOE_JOB_STOP : SMOE_JOB_LENGTH, "");
        return;
    }
    j->decoding = true;
    j->next_token = t;
}

/* ---------------------------------------------------------------------------
 * One step
 * ------------------------------------------------------------------------- */

int smoe_sched_step(smoe_sched *s, char *err) {
    int32_t n = 0;
    /* one token for every generating job */
    for (smoe_sched_job *j = s->head; j; j = j->next) {
        if (!j->decoding) continue;
        slot *sl = &s->slots[j->slot];
        s->batch[n] = (smoe_batch_entry){sl->seq, sl->toks.n, j->next_token, true};
        s->batch_job[n++] = j;
    }
    /* prompt chunks, oldest job first (the list is in admission order) */
    int32_t budget = s->chunk;
    for (smoe_sched_job *j = s->head; j && budget > 0; j = j->next) {
        if (j->decoding) continue;
        slot *sl = &s->slots[j->slot];
        int32_t cnt = j->n_prompt - j->n_fed < budget ? j->n_prompt - j->n_fed : budget;
        for (int32_t i = 0; i < cnt; i++) {
            int32_t pos = j->n_fed + i;
            s->batch[n] = (smoe_batch_entry){sl->seq, pos, j->prompt[pos], pos == j->n_prompt - 1};
            s->batch_job[n++] = j;
        }
        budget -= cnt;
    }
    if (n == 0) return 0;

    /* the tokens join their slots before the pass, so that a job finished
     * right after it keeps them as a reusable prefix */
    for (int32_t i = 0; i < n; i++) {
        slot *sl = &s->slots[s->batch_job[i]->slot];
        if (smoe_tokens_push(&sl->toks, s->batch[i].token)) {
            smoe_errf(err, "out of memory");
            goto fail;
        }
    }
    if (smoe_forward(s->ctx, s->batch, n, s->logits, err)) goto fail;

    /* sample, in batch order (each logits row belongs to one job) */
    int32_t row = 0;
    for (int32_t i = 0; i < n; i++) {
        smoe_sched_job *j = s->batch_job[i];
        if (!j->decoding) j->n_fed++;
        if (!s->batch[i].want_logits) continue;
        next_token(s, j, s->logits + (size_t)row++ * s->n_vocab); /* may free j */
    }
    return n;

fail:
    /* the caches of these jobs are in an unknown state: forget them */
    for (int32_t i = 0; i < n; i++) {
        smoe_sched_job *j = s->batch_job[i];
        if (!j) continue;
        s->slots[j->slot].toks.n = 0;
        for (int32_t k = i + 1; k < n; k++)
            if (s->batch_job[k] == j) s->batch_job[k] = NULL;
        finish(s, j, SMOE_JOB_ERROR, err);
    }
    return -1;
}
