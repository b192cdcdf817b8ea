/* scheduler.c - continuous batching over a fixed set of slots (see
 * scheduler.h for the rules). */
#define _GNU_SOURCE
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/common.h"
#include "../grammar/grammar.h"

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
    smoe_decoder *dec;       /* sampling, text, stop strings, grammar */
    smoe_gmatch *gm;         /* constrained decoding: the document so far */
    int32_t *prompt;
    int32_t n_prompt, n_fed;  /* n_fed: prompt tokens in the cache */
    bool decoding;            /* prompt done; next_token waits to be fed */
    int32_t next_token;
    smoe_job_events ev;
    void *user;
    smoe_job_stats st;
    smoe_sched_job *prev, *next;
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
    smoe_gvocab *gvocab;           /* the vocabulary trie, made at the first constrained job */
};

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
    if (!s->slots || !s->batch || !s->batch_job || !s->logits) {
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

static void finish(smoe_sched *s, smoe_sched_job *j, smoe_finish how, const char *err);
static int on_text(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp);
static void on_token(void *user, int32_t id);

void smoe_sched_free(smoe_sched *s) {
    if (!s) return;
    while (s->head) finish(s, s->head, SMOE_FINISH_CANCEL, "");
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

/* The decoder's view of a job's parameters. */
static smoe_decode_params decode_params(const smoe_job_params *p) {
    return (smoe_decode_params){
        .sampling = p->sampling,
        .max_tokens = p->max_tokens,
        .stop = p->stop,
        .n_stop = p->n_stop,
        .top_logprobs = p->top_logprobs,
        .grammar_triggers = p->grammar_triggers,
        .n_grammar_triggers = p->n_grammar_triggers,
    };
}

int smoe_sched_check_params(const smoe_sched *s, const smoe_job_params *p, char *err) {
    smoe_decode_params dp = decode_params(p);
    return smoe_decode_check(&dp, s->n_vocab, err);
}

/* ---------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------- */

static void job_free(smoe_sched_job *j) {
    if (!j) return;
    smoe_decoder_free(j->dec);
    smoe_gmatch_free(j->gm);
    free(j->prompt);
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
    if (!(j->prompt = malloc((size_t)n * sizeof *j->prompt))) {
        smoe_errf(err, "out of memory");
        job_free(j);
        return NULL;
    }
    memcpy(j->prompt, prompt, (size_t)n * sizeof *prompt);
    smoe_decode_params dp = decode_params(p);
    if (p->grammar) {
        if (!s->gvocab && !(s->gvocab = smoe_gvocab_new(s->tok, err))) { job_free(j); return NULL; }
        if (!(j->gm = smoe_gmatch_new(p->grammar, s->gvocab, err))) { job_free(j); return NULL; }
        dp.grammar = j->gm;
    }
    smoe_decode_events dev = {.text = on_text, .token = on_token};
    if (!(j->dec = smoe_decoder_new(s->tok, s->n_vocab, &dp, &dev, j, err))) { job_free(j); return NULL; }
    smoe_decoder_accept(j->dec, prompt, n);

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
    j->st.t_admit_ms = smoe_now_ms();
    j->prev = s->tail;
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    s->n_active++;
    return j;
}

static void finish(smoe_sched *s, smoe_sched_job *j, smoe_finish how, const char *err) {
    j->st.finish = how;
    j->st.t_end_ms = smoe_now_ms();
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

void smoe_sched_cancel(smoe_sched *s, smoe_sched_job *j) { finish(s, j, SMOE_FINISH_CANCEL, ""); }

/* ---------------------------------------------------------------------------
 * Decoding: the shared step (decode.h), reported through the job's events
 * ------------------------------------------------------------------------- */

static int on_text(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    smoe_sched_job *j = user;
    if (j->ev.text) j->ev.text(j->user, text, len, lp, n_lp);
    return 0;
}

static void on_token(void *user, int32_t id) {
    smoe_sched_job *j = user;
    if (j->ev.token) j->ev.token(j->user, id);
}

/* This job's next token from its logits row; finish it when it is done. */
static void next_token(smoe_sched *s, smoe_sched_job *j, float *row) {
    slot *sl = &s->slots[j->slot];
    int32_t t;
    int more = smoe_decoder_step(j->dec, row, s->n_ctx - sl->toks.n + 1, &t);
    const smoe_decode_stats *ds = smoe_decoder_stats(j->dec);
    if (ds->n_sampled && !j->st.t_first_ms) j->st.t_first_ms = smoe_now_ms();
    j->st.n_generated = ds->n_generated;
    if (!more) {
        finish(s, j, smoe_decoder_finish(j->dec), smoe_decoder_error(j->dec));
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
        finish(s, j, SMOE_FINISH_ERROR, err);
    }
    return -1;
}
