/* openai.h - the OpenAI API of `smoe serve` (openai.c): request handlers
 * (connection threads), OpenAI-shaped errors, and the engine-side event
 * callbacks that format a generation (its srv_api_ops; public too for the
 * fuzz and allocation-failure harnesses, which play the engine's part). */
#ifndef SMOE_SERVER_OPENAI_H
#define SMOE_SERVER_OPENAI_H

#include <jansson.h>
#include <stddef.h>

#include "reply.h"
#include "request.h"

void oai_error(srv_reply *rep, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void oai_chat(srv *s, json_t *body, srv_reply *rep);
void oai_completions(srv *s, json_t *body, srv_reply *rep);
void oai_models(srv *s, const char *id, srv_reply *rep);   /* id NULL: the list */

void oai_on_start(srv_request *r);                           /* admitted */
void oai_on_text(srv_choice *c, const char *text, size_t len, const smoe_token_lp *lp, int n_lp);
void oai_on_choice_done(srv_choice *c);                      /* one choice done */
void oai_on_done(srv_request *r);                            /* every choice done */

#endif
