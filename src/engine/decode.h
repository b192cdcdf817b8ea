/* decode.h - one decode step: a job's logits in, its next token and text out.
 *
 * Everything that happens between two forward passes of one sequence lives
 * here, once, for the CLI (session.c) and the server (scheduler.c) alike:
 *
 *   grammar mask -> sample -> end-of-sequence / stop tokens -> grammar accept
 *   or trigger -> penalties' history -> logprobs -> detokenize -> stop strings
 *   -> the finish checks (document complete, max_tokens, context full)
 *
 * The caller owns the model side: it runs the forward pass, keeps the KV
 * cache and says how much room is left in it.  A decoder is one generation:
 * made with its parameters, fed the prompt for the penalties, then stepped
 * with the logits of the last token run until it says it is finished.
 *
 * Text reaches the caller through ev.text (valid UTF-8, stop strings
 * applied), with the logprob records of the tokens it completes; text that
 * could still become a stop string is held back.  A non-zero return from
 * ev.text cancels the generation (a closed stdout, Ctrl-C).
 *
 * Constrained decoding: with a grammar matcher every token is drawn from
 * those the grammar allows within the token budget (max_tokens and the
 * room in the context), so the document is complete when the budget runs
 * out; generation stops once it is complete and nothing can follow.  With
 * triggers, generation is free until one of them is sampled (Mistral's
 * [TOOL_CALLS]): the text before it is flushed, held-back bytes and
 * stop-string prefixes included, before ev.token reports the trigger, and
 * the grammar constrains from the next token on. */
#ifndef SMOE_DECODE_H
#define SMOE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smoe_gen.h" /* smoe_finish: how a generation ended */
#include "../tokenizer/tokenizer.h"
#include "sampler.h"

struct smoe_gmatch; /* src/grammar/grammar.h */

#define SMOE_MAX_TOP_LOGPROBS 20 /* most top logprobs per token */

typedef struct smoe_decode_params {
    smoe_sampler_params sampling;   /* the bias array is copied */
    int32_t max_tokens;             /* -1: until the context is full */
    const char *const *stop;        /* stop strings (non-empty), copied */
    int n_stop;
    const int32_t *stop_tokens;     /* besides end-of-sequence; copied */
    int n_stop_tokens;
    int32_t top_logprobs;           /* -1: no logprobs; else 0..SMOE_MAX_TOP_LOGPROBS */
    /* Constrained decoding: a matcher reset by the caller, borrowed for the
     * decoder's life and advanced with each token.  NULL: none. */
    struct smoe_gmatch *grammar;
    const int32_t *grammar_triggers; /* none: constrained from the first token; copied */
    int n_grammar_triggers;
} smoe_decode_params;

typedef struct smoe_logprob {
    int32_t id;
    float logprob;
} smoe_logprob;

/* A generated token's log-probability under the model's raw logits (before
 * logit bias, penalties and temperature) and the n_top most likely tokens. */
typedef struct smoe_token_lp {
    int32_t id;
    float logprob;
    int32_t n_top;
    smoe_logprob top[SMOE_MAX_TOP_LOGPROBS];   /* most likely first */
} smoe_token_lp;

typedef struct smoe_decode_events {
    /* Text ready for the user and the logprob records of the tokens it
     * completes (n_lp may be 0; len may be 0 when n_lp is not, at the very
     * end).  Non-zero cancels.  May be NULL. */
    int (*text)(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp);
    /* Every generated token, as it is sampled.  May be NULL. */
    void (*token)(void *user, int32_t id);
} smoe_decode_events;

typedef struct smoe_decode_stats {
    int32_t n_sampled;          /* tokens drawn, an end-of-sequence token included */
    int32_t n_generated;        /* tokens that joined the output (end-of-sequence not counted) */
    int32_t n_grammar_steps;    /* constrained steps */
    double grammar_ms;          /* spent computing masks and advancing the grammar */
    bool grammar_complete;      /* constrained, and the document is complete */
} smoe_decode_stats;

typedef struct smoe_decoder smoe_decoder;

/* Check params against a vocabulary of n_vocab tokens (sampler ranges,
 * max_tokens, logprobs, stop strings); the message names the parameter. */
int smoe_decode_check(const smoe_decode_params *p, int32_t n_vocab, char *err);

/* A decoder for one generation (checks p first); NULL with err. */
smoe_decoder *smoe_decoder_new(const smoe_tokenizer *tok, int32_t n_vocab, const smoe_decode_params *p,
                               const smoe_decode_events *ev, void *user, char *err);
void smoe_decoder_free(smoe_decoder *d);

/* Record context tokens (the prompt) for the penalties. */
void smoe_decoder_accept(smoe_decoder *d, const int32_t *ids, int32_t n);

/* One step with the logits of the last token run (n_vocab floats, changed
 * in place).  room: tokens this sequence may still write, this one
 * included: the free positions of its context plus one (the last token is
 * written but never run).  Returns 1 when *next must be run through the
 * model and its logits stepped next; 0 when the generation is finished
 * (smoe_decoder_finish says how), with *next the last token when it ended
 * at max_tokens with room to run it (a caller that keeps the whole
 * conversation in its cache runs it), else -1. */
int smoe_decoder_step(smoe_decoder *d, float *logits, int32_t room, int32_t *next);

bool smoe_decoder_done(const smoe_decoder *d);
smoe_finish smoe_decoder_finish(const smoe_decoder *d);
const char *smoe_decoder_error(const smoe_decoder *d);   /* "" unless SMOE_FINISH_ERROR */
const smoe_decode_stats *smoe_decoder_stats(const smoe_decoder *d);

#endif
