/* structured.h - structured output for `smoe serve`: OpenAI
 * "response_format" and Ollama "format" turned into a grammar that the
 * scheduler enforces token by token (src/grammar/, smoe_job_params.grammar).
 *
 *   OpenAI  {"type": "text"}                       no constraint
 *           {"type": "json_object"}                any JSON object
 *           {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
 *   Ollama  "json"                                 any JSON object
 *           a JSON Schema object                   that schema
 *
 * An unsupported keyword, an invalid or unsatisfiable schema is a 400 whose
 * message names the problem; a schema is never accepted and then ignored.
 * Compiled schemas are cached (64 of them, by canonical text and options),
 * so a repeated schema costs a lookup. */
#ifndef SMOE_SERVER_STRUCTURED_H
#define SMOE_SERVER_STRUCTURED_H

#include <jansson.h>

#include "../grammar/grammar.h"

/* *out: a new grammar reference or NULL when the request asks for none;
 * -1 with the message in err (and the parameter's name in param). */
int srv_structured_openai(const json_t *body, smoe_grammar **out, char *param, char *err);
int srv_structured_ollama(const json_t *body, smoe_grammar **out, char *err);

#endif
