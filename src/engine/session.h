/* session.h - one conversation on one model: a KV cache, the tokens in it,
 * and the generation loop (the prompt, then decode.h's step until it
 * finishes); what `smoe run` and `smoe chat` generate with.
 *
 * A new prompt that starts with the tokens already in the cache reuses
 * them: only the new suffix is processed.  This is how a chat's earlier
 * turns are never processed again. */
#ifndef SMOE_SESSION_H
#define SMOE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "smoe.h"
#include "../tokenizer/tokenizer.h"
#include "decode.h"
#include "sampler.h"
#include "stopstr.h"

struct smoe_gmatch; /* src/grammar/grammar.h */

typedef struct smoe_gen_params {
    smoe_sampler_params sampling;
    int32_t max_tokens;             /* stop after this many; -1 = until the context is full */
    const char *const *stop;        /* stop strings */
    int n_stop;
    const int32_t *stop_tokens;     /* besides the vocabulary's end-of-sequence */
    int n_stop_tokens;
    /* Constrained decoding: a grammar matcher (reset it before) and its
     * triggers, as in smoe_decode_params (decode.h).  NULL = none. */
    struct smoe_gmatch *grammar;
    const int32_t *grammar_triggers;
    int n_grammar_triggers;
} smoe_gen_params;

typedef struct smoe_gen_result {
    int32_t n_prompt;            /* prompt tokens */
    int32_t n_prompt_processed;  /* of which run through the model (the rest were cached) */
    int32_t n_generated;
    double prompt_ms, gen_ms;
    smoe_finish finish;          /* SMOE_FINISH_CANCEL: emit asked to stop */
    double grammar_ms;           /* of gen_ms: computing token masks and advancing the grammar */
    int32_t n_grammar_steps;     /* constrained steps */
    bool grammar_complete;       /* the constrained document is complete */
} smoe_gen_result;

typedef struct smoe_session smoe_session;

/* n_ctx 0: the model's training context, capped at 4096 to bound memory. */
smoe_session *smoe_session_new(const smoe_model *m, const smoe_tokenizer *tok, int32_t n_ctx, char *err);
void smoe_session_free(smoe_session *s);
int32_t smoe_session_n_ctx(const smoe_session *s);
/* Forget the cache (the next prompt is processed whole). */
void smoe_session_reset(smoe_session *s);
/* The tokens whose keys and values are in the cache. */
const smoe_tokens *smoe_session_tokens(const smoe_session *s);

/* Process prompt (reusing the cached prefix), then generate, streaming the
 * text through emit.  Generated tokens join the cache, so the next prompt
 * can extend this one.  Returns -1 with err on failure (nothing emitted
 * then is retracted). */
int smoe_session_generate(smoe_session *s, const smoe_tokens *prompt, const smoe_gen_params *p,
                          smoe_emit_fn emit, void *user, smoe_gen_result *res, char *err);

#endif
