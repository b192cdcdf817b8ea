/* chat_int.h - what the two halves of the chat renderer share: the request
 * is read into a conversation (chat_request.c), which is then encoded
 * (chat_render.c).  Internal to src/chat; the API is chat.h. */
#ifndef SMOE_CHAT_INT_H
#define SMOE_CHAT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../base/buf.h"
#include "../base/common.h"
#include "chat.h"

static inline int oom(char *err) { return smoe_errf(err, "out of memory"); }

/* ------------------------------------------------------------------------
 * A request, checked and normalised
 * ---------------------------------------------------------------------- */

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL };

/* One turn after normalisation. */
typedef struct {
    enum role role;
    size_t first_msg;  /* index in the request's messages, for errors */
    smoe_buf text;         /* user/assistant: joined non-empty texts */
    size_t n_parts;    /* how many non-empty texts went into text */
    json_t *calls;     /* assistant: array of {"name", "arguments", "id"?} */
    json_t *result;    /* tool: {"content": ..., "call_id": ...} */
    const json_t *ids; /* assistant: the ids the model generated for text */
} turn;

typedef struct {
    smoe_chat_format fmt;
    turn *turns;
    size_t n_turns, cap_turns;
    smoe_buf system;       /* system prompts joined */
    size_t n_system;
    json_t *tools;     /* normalised tools array, or NULL when none */
    char *tool_prompt; /* v1 with tools (tool_choice not none): the instruction */
} conv;

/* Check request (the rules are in chat.h) and normalise it into c, whose
 * fmt is set; the first turn is then a user turn.  On error err holds one
 * line; the caller frees c with chat_conv_free() either way. */
int chat_read_request(const json_t *request, conv *c, char *err);
void chat_conv_free(conv *c);

#endif
