/* scheduler.h - continuous batching: many sequences generated together, one
 * batched forward pass per step.
 *
 * The scheduler owns a fixed set of slots.  A slot is one sequence: a KV
 * cache of n_ctx positions and the list of tokens whose keys and values it
 * holds.  A job (one generation) runs in one slot.  Each call of
 * smoe_sched_step() builds ONE batch for smoe_forward():
 *
 *   - one entry for every job that is generating (its last sampled token),
 *   - then prompt tokens of the jobs still prefilling, oldest job first, at
 *     most opts.chunk of them in all, so a long prompt is processed over
 *     several steps while the running jobs keep getting a token every step;
 *
 * then samples the next token of every job whose logits came out (each job
 * has its own sampler and seed), turns tokens into text (streaming
 * detokenizer, stop strings), reports it through the job's callbacks, and
 * retires the jobs that finished.  Jobs join (smoe_sched_submit) and leave
 * (finish, smoe_sched_cancel) between steps.
 *
 * Prefix reuse: a slot keeps its tokens after its job finishes.  A new job
 * takes the free slot whose tokens share the longest prefix with its prompt
 * (ties: the least recently used) and processes only the rest of the prompt
 * (at least its last token, whose logits are needed).
 *
 * Independence: smoe_forward computes every entry on its own (attention reads
 * only the entry's own sequence; each output row of a matrix product is the
 * same dot products whatever the batch), so a job's tokens do not depend on
 * what else is in the batch: the same seed gives the same text alone or
 * batched.
 *
 * Logprobs are computed from the model's raw logits (a log-softmax before
 * logit bias, penalties or temperature), for the chosen token and the top N.
 * The records of the tokens that make up a piece of text are handed over
 * with that text; tokens that produce no text yet (an incomplete UTF-8
 * character, a held-back stop-string prefix) are handed over with the next
 * text, and those swallowed by a stop string are dropped.
 *
 * Not thread-safe: one thread (the server's engine thread) makes every call. */
#ifndef SMOE_SCHEDULER_H
#define SMOE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smoe.h"
#include "../tokenizer/tokenizer.h"
#include "decode.h"
#include "sampler.h"

typedef struct smoe_sched_opts {
    int32_t n_slots;       /* sequences at once (>= 1) */
    int32_t n_ctx;         /* positions per sequence (0: the model's, at most 4096) */
    int32_t chunk;         /* prompt tokens per step over all prefilling jobs (>= 1) */
    smoe_kv_type kv_type;
} smoe_sched_opts;

typedef struct smoe_job_params {
    smoe_sampler_params sampling;   /* the bias array is copied */
    int32_t max_tokens;             /* -1: until the context is full */
    const char *const *stop;        /* stop strings, copied */
    int n_stop;
    int32_t top_logprobs;           /* -1: no logprobs; else 0..SMOE_MAX_TOP_LOGPROBS */
    /* Constrained decoding (src/grammar/grammar.h): the job keeps its own
     * matcher of this grammar (and a reference to it) and decodes under it
     * as decode.h says.  NULL: none. */
    struct smoe_grammar *grammar;
    /* With a grammar: tokens that arm it (a control token such as
     * Mistral's [TOOL_CALLS]), copied; none: constrained from the first
     * token.  See decode.h. */
    const int32_t *grammar_triggers;
    int n_grammar_triggers;
} smoe_job_params;

typedef struct smoe_job_stats {
    int32_t n_prompt;      /* prompt tokens */
    int32_t n_cached;      /* of which reused from the slot's cache */
    int32_t n_processed;   /* of which run through the model (n_prompt - n_cached) */
    int32_t n_generated;   /* tokens sampled (an end-of-sequence token not counted) */
    int32_t slot;
    double t_admit_ms, t_first_ms, t_end_ms;  /* smoe_now_ms(); t_first 0 when no token */
    smoe_finish finish;
} smoe_job_stats;

/* Callbacks, all made on the thread that calls the scheduler. */
typedef struct smoe_job_events {
    /* Text ready for the user (valid UTF-8; stop strings applied) and the
     * logprob records of the tokens it completes (n_lp may be 0; len may be
     * 0 when n_lp is not, at the very end).  May be NULL. */
    void (*text)(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp);
    /* Every generated token, as it is sampled.  May be NULL. */
    void (*token)(void *user, int32_t id);
    /* Exactly once, last; the job is gone afterwards.  err is "" unless
     * finish is SMOE_FINISH_ERROR. */
    void (*done)(void *user, const smoe_job_stats *st, const char *err);
} smoe_job_events;

typedef struct smoe_sched smoe_sched;
typedef struct smoe_sched_job smoe_sched_job;

smoe_sched *smoe_sched_new(const smoe_model *m, const smoe_tokenizer *tok, const smoe_sched_opts *o, char *err);
/* Cancels the jobs still running (their done callbacks run), then frees. */
void smoe_sched_free(smoe_sched *s);

int32_t smoe_sched_n_slots(const smoe_sched *s);
int32_t smoe_sched_n_ctx(const smoe_sched *s);
int32_t smoe_sched_free_slots(const smoe_sched *s);
int32_t smoe_sched_active(const smoe_sched *s);
/* KV positions in use: the cached tokens of every slot (busy or free). */
int64_t smoe_sched_kv_used(const smoe_sched *s);
/* KV positions held by running jobs (a slot without a job is reusable at
 * once: its tokens only serve prefix reuse). */
int64_t smoe_sched_kv_busy(const smoe_sched *s);

/* Check params against the model (sampler ranges, logprobs, stop strings);
 * the message names the parameter. */
int smoe_sched_check_params(const smoe_sched *s, const smoe_job_params *p, char *err);

/* Start a job on the free slot with the longest common prefix.  prompt:
 * n >= 1 tokens, all in the vocabulary, n < n_ctx.  Returns NULL with err
 * when no slot is free, the prompt does not fit or a parameter is bad.  The
 * prompt is copied.  Nothing runs until the next step. */
smoe_sched_job *smoe_sched_submit(smoe_sched *s, const int32_t *prompt, int32_t n, const smoe_job_params *p,
                                  const smoe_job_events *ev, void *user, char *err);

/* Finish a job now (done is called with SMOE_FINISH_CANCEL) and free its slot;
 * the tokens already in its cache stay reusable. */
void smoe_sched_cancel(smoe_sched *s, smoe_sched_job *j);

/* One step (see above).  Returns the number of batch entries run (0 when no
 * job is active).  A failed forward pass finishes the jobs of the batch with
 * SMOE_FINISH_ERROR and returns -1 with err; the scheduler stays usable. */
int smoe_sched_step(smoe_sched *s, char *err);

#endif
