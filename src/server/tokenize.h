/* tokenize.h - POST /tokenize and POST /detokenize of `smoe serve`
 * (tokenize.c). */
#ifndef SMOE_SERVER_TOKENIZE_H
#define SMOE_SERVER_TOKENIZE_H

#include <jansson.h>

#include "reply.h"

typedef struct srv srv;

void tok_tokenize(srv *s, json_t *body, srv_reply *rep);
void tok_detokenize(srv *s, json_t *body, srv_reply *rep);

#endif
