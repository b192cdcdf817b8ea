/* ollama.h - the Ollama API of `smoe serve` (ollama.c): request handlers
 * (connection threads), Ollama-shaped errors, and the engine-side event
 * callbacks that format a generation (its srv_api_ops; public too for the
 * fuzz and allocation-failure harnesses, which play the engine's part). */
#ifndef SMOE_SERVER_OLLAMA_H
#define SMOE_SERVER_OLLAMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "reply.h"
#include "request.h"

void olm_error(srv_reply *rep, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void olm_generate(srv *s, json_t *body, srv_reply *rep);
void olm_chat(srv *s, json_t *body, srv_reply *rep);
void olm_tags(srv *s, srv_reply *rep, bool ps);
void olm_show(srv *s, json_t *body, srv_reply *rep);

void olm_on_text(srv_choice *c, const char *text, size_t len);
void olm_on_done(srv_request *r);

#endif
