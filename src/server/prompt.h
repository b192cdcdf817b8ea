/* prompt.h - the prompt of a chat request of `smoe serve`: the messages
 * rendered in the model's chat format and tokenized (prompt.c). */
#ifndef SMOE_SERVER_PROMPT_H
#define SMOE_SERVER_PROMPT_H

#include <jansson.h>

#include "../tokenizer/tokenizer.h"

typedef struct srv srv;

/* Strip SMOE_CHAT_GENERATED_IDS (and render): the prompt tokens of an
 * OpenAI-style request with messages (and the body's tools, tool_choice and
 * parallel_tool_calls: the v1 format's tool instruction depends on them;
 * body may be NULL).  Returns 0, or -1 with a message for a 400. */
int srv_render_chat(srv *s, const json_t *messages, const json_t *body, smoe_tokens *out, char *err);

#endif
