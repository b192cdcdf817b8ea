/* prompt.h - the prompt tokens of `smoe serve`'s generation requests
 * (prompt.c): chat messages rendered in the model's chat format, the
 * prompt of /v1/completions, the prompt of Ollama's /api/generate. */
#ifndef SMOE_SERVER_PROMPT_H
#define SMOE_SERVER_PROMPT_H

#include <jansson.h>
#include <stdbool.h>

#include "../tokenizer/tokenizer.h"

typedef struct srv srv;
typedef struct srv_perr srv_perr;

/* Strip SMOE_CHAT_GENERATED_IDS (and render): the prompt tokens of an
 * OpenAI-style request with messages (and the body's tools, tool_choice and
 * parallel_tool_calls: the v1 format's tool instruction depends on them;
 * body may be NULL).  Returns 0, or -1 with a message for a 400. */
int srv_render_chat(srv *s, const json_t *messages, const json_t *body, smoe_tokens *out, char *err);
/* The prompt of /v1/completions (body's "prompt"): a string, an array with
 * one string, an array of token ids, or an array with one array of token
 * ids.  -1 with e set for a 400. */
int srv_completion_prompt(srv *s, const json_t *body, smoe_tokens *out, srv_perr *e);
/* The prompt of /api/generate: the context ids (ctx: a non-empty array, or
 * NULL), then the prompt string (and system) rendered as a one-turn chat,
 * or with raw the prompt as text after BOS (no BOS after a context).  -1
 * with e set for a 400. */
int srv_generate_prompt(srv *s, const json_t *prompt, const json_t *system, const json_t *ctx, bool raw,
                        smoe_tokens *out, srv_perr *e);

#endif
