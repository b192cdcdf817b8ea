/* tools.h - function calling for `smoe serve` (OpenAI "tools",
 * "tool_choice", "parallel_tool_calls"; Ollama "tools"), on top of
 * src/grammar/toolcall.h.
 *
 * How a request with tools runs (models with Mistral v3 tool tokens):
 *   tool_choice auto       free generation; once the model samples the
 *                          [TOOL_CALLS] control token the scheduler arms the
 *                          tool-call grammar (smoe_job_params.grammar_triggers)
 *                          and the rest is a valid JSON array of calls.  The
 *                          text before the token is the message's content.
 *   required / named       the grammar constrains from the first token; the
 *                          whole output is the call document.
 *   none                   no grammar (the tools are still in the prompt).
 * Text that belongs to the call document never reaches the content: it is
 * parsed into tool_calls at the end, or streamed as tool-call deltas.
 *
 * Models without tool tokens (the v1 chat format): the chat renderer puts
 * smoe_toolcall_object_prompt() in the prompt and the whole answer is
 * constrained, from the first token, to the OBJECT document of toolcall.h:
 * {"tool_calls": [...]} or (tool_choice auto only) {"content": "..."}.
 * The object is parsed at the end into tool_calls or content (handed back
 * in *rest); streamed OpenAI chat gets tool_calls deltas and content deltas
 * as the object is parsed (smoe_tcstream), Ollama's stream gets the calls
 * or the content in one line when the object is complete. */
#ifndef SMOE_SERVER_TOOLS_H
#define SMOE_SERVER_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv srv;
typedef struct srv_request srv_request;
typedef struct srv_choice srv_choice;

typedef struct srv_tools srv_tools;

/* Read "tools", "tool_choice" and "parallel_tool_calls" of body into
 * r->tools, r->params.grammar and r->params.grammar_triggers.  Call after the
 * choices and the seed are set and the prompt is rendered.  No tools (absent,
 * null, []) or tool_choice none: nothing to do.  -1 with err (and the field's
 * name in param) for a 400. */
int srv_tools_setup(srv *s, const json_t *body, srv_request *r, char *param, char *err);
void srv_tools_free(srv_tools *t);

/* History: every tool message's tool_call_id must name a call of the
 * assistant turn before it (the chat renderer only counts them).  -1 with
 * err naming the message. */
int srv_tools_check_history(const json_t *messages, char *err);
/* Ollama's history has no ids: a copy of messages in which calls without
 * an id get one (9 alphanumerics, fixed by their position) and tool
 * messages without tool_call_id get the id of the call they answer (the
 * first unanswered call named by their "tool_name" or "name", else the
 * first unanswered one).  NULL when out of memory. */
json_t *srv_tools_ollama_history(const json_t *messages);

/* Engine side.  A generated token: the trigger opens the call document. */
void srv_tools_on_token(srv_choice *c, int32_t id);
/* Text of a choice: returns false when it is content (not for tools), true
 * when it belongs to the call document.  With stream_deltas, *deltas gets
 * an array (new reference, possibly empty) of OpenAI tool_calls delta items
 * completed by this text, one per chunk to send. */
bool srv_tools_on_text(srv_choice *c, const char *text, size_t len, bool stream_deltas, json_t **deltas);
/* Did this choice start a call document? */
bool srv_tools_called(const srv_choice *c);
/* At the end (non-streaming): the parsed tool_calls (new reference; NULL
 * when the choice made none).  args_object: Ollama's arguments as an
 * object.  A document that does not parse (cut short by max_tokens) is
 * handed back as text in *rest (NULL otherwise). */
json_t *srv_tools_calls(srv_choice *c, bool args_object, const char **rest, size_t *rest_len);

#endif
