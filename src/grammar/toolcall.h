/* toolcall.h - function calling on top of constrained decoding: the tools
 * of a request checked and compiled into the grammar of a tool-call
 * document, and that document parsed back into OpenAI-style tool_calls.
 *
 * TWO DOCUMENT FORMATS
 *
 *   SMOE_TOOLCALL_V3 (models with Mistral v3 tool tokens, Mixtral 8x22B):
 *   what follows the [TOOL_CALLS] token, as mistral-common renders past
 *   calls:
 *       ▁[{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "a1B2c3D4e"}]
 *   One optional leading space (the model writes "▁["), a JSON array of
 *   calls whose "name" is one of the declared tools and whose "arguments"
 *   match that tool's parameters schema, each with an optional "id" of 9
 *   alphanumerics.  With parallel_tool_calls false, exactly one call.
 *
 *   SMOE_TOOLCALL_OBJECT (models without tool tokens, the v1 vocabulary of
 *   Mixtral 8x7B): the whole answer is one JSON object, either
 *       {"tool_calls": [ calls as above ]}
 *   or, when the model may also answer in words (tool_choice auto),
 *       {"content": "any text"}
 *   The prompt that asks for this is smoe_toolcall_object_prompt().
 *
 * Spacing is the JSON Schema compiler's (json_schema.h): at most one
 * optional space after ':' and ',', nothing else, so the model can never
 * loop on whitespace.
 *
 * TOOL CHOICE: auto (constrain once the model starts a call: the server
 * arms the grammar on the [TOOL_CALLS] token), none (no grammar, no
 * tools), required (at least one call, constrained from the first token),
 * or a named function (exactly that function, from the first token).
 *
 * CHECKS (each an error naming the problem, for a 400): tools is an array
 * of at most 128 entries; each is {"type": "function", "function": {"name",
 * "description"?, "parameters"?, "strict"?}}; names match
 * ^[a-zA-Z0-9_-]{1,64}$ and are unique; parameters is a supported JSON
 * Schema describing an object (absent: no parameters, arguments {}), and
 * satisfiable; tool_choice names a declared function. */
#ifndef SMOE_GRAMMAR_TOOLCALL_H
#define SMOE_GRAMMAR_TOOLCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "grammar.h"

#define SMOE_MAX_TOOLS 128
#define SMOE_TOOL_ID_LEN 9

typedef enum smoe_toolcall_format { SMOE_TOOLCALL_V3, SMOE_TOOLCALL_OBJECT } smoe_toolcall_format;

typedef enum smoe_tool_choice_kind {
    SMOE_TOOLS_AUTO,
    SMOE_TOOLS_NONE,
    SMOE_TOOLS_REQUIRED,
    SMOE_TOOLS_NAMED,
} smoe_tool_choice_kind;

typedef struct smoe_tool_choice {
    smoe_tool_choice_kind kind;
    int named;      /* SMOE_TOOLS_NAMED: index of the tool */
    bool parallel;  /* parallel_tool_calls (default true) */
} smoe_tool_choice;

typedef struct smoe_toolset smoe_toolset;

/* Check an OpenAI "tools" array (see CHECKS); NULL with err.  The toolset
 * keeps its own reference to tools. */
smoe_toolset *smoe_toolset_new(const json_t *tools, char *err);
void smoe_toolset_free(smoe_toolset *ts);
int smoe_toolset_count(const smoe_toolset *ts);
const char *smoe_toolset_name(const smoe_toolset *ts, int i);
/* Index of the tool called name, or -1. */
int smoe_toolset_find(const smoe_toolset *ts, const char *name);

/* OpenAI "tool_choice" (NULL or absent: auto) and "parallel_tool_calls"
 * (NULL: true) into *out; -1 with err naming the problem. */
int smoe_tool_choice_parse(const smoe_toolset *ts, const json_t *choice, const json_t *parallel,
                           smoe_tool_choice *out, char *err);

/* The grammar of a tool-call document of the given format (compile time in
 * its info).  choice->kind NONE is an error (no grammar is wanted). */
smoe_grammar *smoe_toolcall_grammar(const smoe_toolset *ts, const smoe_tool_choice *choice,
                                    smoe_toolcall_format fmt, char *err);

/* For SMOE_TOOLCALL_OBJECT: the instruction to put in the system prompt
 * (malloc'd): the tools as JSON and the answer format. */
char *smoe_toolcall_object_prompt(const smoe_toolset *ts, const smoe_tool_choice *choice, char *err);

/* A parsed document. */
typedef struct smoe_toolcall_result {
    json_t *tool_calls; /* OpenAI array of {"id", "type": "function", "function":
                           {"name", "arguments"}}; empty when none */
    char *content;      /* OBJECT format {"content": ...}: the text; else NULL */
} smoe_toolcall_result;

/* Parse a complete document.  Ids the model wrote are kept when they are
 * 9 alphanumerics, otherwise generated from *rng (splitmix64 state).
 * arguments_object: "arguments" stays a JSON object (Ollama) instead of a
 * JSON string (OpenAI).  -1 with err when the text is not a document of
 * this format or calls an undeclared tool. */
int smoe_toolcall_parse(const smoe_toolset *ts, smoe_toolcall_format fmt, const char *text, size_t len,
                        uint64_t *rng, bool arguments_object, smoe_toolcall_result *out, char *err);
void smoe_toolcall_result_free(smoe_toolcall_result *r);

/* A fresh id: 9 characters of [a-zA-Z0-9] from *rng, NUL-terminated. */
void smoe_toolcall_new_id(uint64_t *rng, char out[SMOE_TOOL_ID_LEN + 1]);
bool smoe_toolcall_id_valid(const char *id);

/* STREAMING.  Feed the document's text as it is generated; the callback
 * gets, for each call in order: BEGIN once its name is complete (with its
 * index and an id: streaming cannot wait for the model's own id, which
 * comes after the arguments, so the id is generated here), ARGS with each
 * fragment of the arguments' JSON text as it arrives (the fragments
 * concatenate to exactly the "arguments" text), and END.  With the OBJECT
 * format, CONTENT carries the decoded text of {"content": ...}. */
typedef enum smoe_tcs_event { SMOE_TCS_BEGIN, SMOE_TCS_ARGS, SMOE_TCS_END, SMOE_TCS_CONTENT } smoe_tcs_event;
typedef int (*smoe_tcs_fn)(void *user, smoe_tcs_event ev, int index, const char *name, const char *id,
                           const char *text, size_t len);
typedef struct smoe_tcstream smoe_tcstream;
smoe_tcstream *smoe_tcstream_new(smoe_toolcall_format fmt, uint64_t rng_seed, smoe_tcs_fn fn, void *user);
void smoe_tcstream_free(smoe_tcstream *s);
/* 0, the callback's nonzero return, or -1 on malformed input. */
int smoe_tcstream_push(smoe_tcstream *s, const char *text, size_t len);

#endif
