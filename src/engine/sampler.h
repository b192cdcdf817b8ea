/* sampler.h - turn logits into the next token.
 *
 * Order of operations (as llama.cpp users know it): logit bias, then the
 * repetition / presence / frequency penalties over the last repeat_last_n
 * tokens, then greedy argmax when temperature is 0; otherwise top-k, top-p
 * and min-p cut the candidates, temperature scales what is left and one
 * token is drawn.  Truncation never sorts the whole vocabulary: top-k keeps
 * a heap of k, top-p grows a partial selection until it covers p.
 *
 * The same seed and settings give the same tokens, bit for bit. */
#ifndef SMOE_SAMPLER_H
#define SMOE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct smoe_logit_bias {
    int32_t token;
    float bias;     /* added to the logit; -INFINITY bans the token */
} smoe_logit_bias;

typedef struct smoe_sampler_params {
    float temperature;        /* 0 = greedy; range 0..100 */
    int32_t top_k;            /* 0 = off */
    float top_p;              /* 1 = off; range (0, 1] */
    float min_p;              /* 0 = off; range [0, 1] */
    float repeat_penalty;     /* 1 = off; range (0, 10] */
    int32_t repeat_last_n;    /* window of the penalties; 0 = off, -1 = all */
    float presence_penalty;   /* 0 = off; range -2..2 (OpenAI) */
    float frequency_penalty;  /* 0 = off; range -2..2 */
    uint64_t seed;
    const smoe_logit_bias *bias;
    int32_t n_bias;
} smoe_sampler_params;

/* The defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * repeat penalty 1 over 64 tokens, no presence/frequency penalty, seed 0. */
void smoe_sampler_defaults(smoe_sampler_params *p);

/* Check every value against its documented range; the message names the
 * parameter.  Nothing is clamped silently. */
int smoe_sampler_check(const smoe_sampler_params *p, int32_t n_vocab, char *err);

typedef struct smoe_sampler smoe_sampler;

smoe_sampler *smoe_sampler_new(const smoe_sampler_params *p, int32_t n_vocab, char *err);
void smoe_sampler_free(smoe_sampler *s);

/* Pick a token from logits (n_vocab floats, modified in place). */
int32_t smoe_sampler_sample(smoe_sampler *s, float *logits);

/* The same, drawing only among the tokens whose bit is set in allowed
 * (bit i of allowed[i / 64]; n_vocab bits; NULL = all): the others get
 * -infinity before anything else runs.  Returns -1 when no allowed token
 * is left with a finite logit (a logit bias banned them all). */
int32_t smoe_sampler_sample_masked(smoe_sampler *s, float *logits, const uint64_t *allowed);

/* Record a token of the context (prompt or generated) for the penalties. */
void smoe_sampler_accept(smoe_sampler *s, int32_t token);

/* Forget the recorded tokens (new conversation). */
void smoe_sampler_reset(smoe_sampler *s);

#endif
