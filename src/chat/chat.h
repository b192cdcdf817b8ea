/* chat.h - Mistral chat formats: an OpenAI-shaped request to prompt tokens.
 *
 * Two formats, named after mistral-common's tokenizer versions:
 *
 *   v1  Mixtral 8x7B Instruct (and Mistral 7B Instruct v0.1/v0.2).  The
 *       brackets are PLAIN TEXT: each user turn is the text
 *       "[INST] " + content + " [/INST]" encoded as one segment (so "[INST]"
 *       becomes the pieces "▁[", "INST", "]"), each assistant turn is its
 *       content encoded on its own followed by the </s> id.
 *         <s>▁[INST]▁u1▁[/INST]▁a1</s>▁[INST]▁u2▁[/INST]
 *       System prompts are joined and put in front of the FIRST user turn:
 *       "[INST] " + system + "\n\n" + content + " [/INST]".
 *       Tools (v1 has no tool tokens; smoe's own form, not mistral-common's):
 *       - with a non-empty "tools" and "tool_choice" other than "none", the
 *         instruction smoe_toolcall_object_prompt() (toolcall.h; it depends
 *         on tool_choice and parallel_tool_calls) goes on the FIRST user turn
 *         after the system prompt: "[INST] " + system + "\n\n" +
 *         instruction + "\n\n" + content + " [/INST]" (system part only
 *         when there is one), and an assistant turn with text is rendered
 *         as the model writes it then: json.dumps({"content": text}) + </s>;
 *       - an assistant turn with tool calls (always, tools or not) is
 *         json.dumps({"tool_calls": [{"name", "arguments", "id"?}, ...]}) +
 *         </s>, the calls normalised as for v3;
 *       - consecutive tool messages make one user turn "[INST] " +
 *         json.dumps({"tool_results": [{"content": C, "call_id": ID}, ...]})
 *         + " [/INST]", C as for v3, "call_id" left out when the message
 *         has no tool_call_id (optional in v1);
 *       so the prefix property below holds with tools too.
 *
 *   v3  Mixtral 8x22B Instruct.  Control tokens are spliced in by id, looked
 *       up by piece name in the vocabulary ([INST] 3, [/INST] 4,
 *       [TOOL_CALLS] 5, [AVAILABLE_TOOLS] 6, [/AVAILABLE_TOOLS] 7,
 *       [TOOL_RESULTS] 8, [/TOOL_RESULTS] 9 in the real vocabulary); every
 *       text segment between them is encoded on its own with the
 *       SentencePiece dummy prefix (hence "[INST]▁What" and "[TOOL_CALLS]▁[{").
 *         <s>[INST]▁u1[/INST]▁a1</s>[TOOL_RESULTS]...
 *       - system prompts are joined with "\n\n" and put in front of the LAST
 *         user turn: system + "\n\n" + content;
 *       - when tools are given, [AVAILABLE_TOOLS] JSON [/AVAILABLE_TOOLS]
 *         comes right before the last [INST]; the JSON is the list of
 *         {"type": "function", "function": {"name", "description" (default
 *         ""), "parameters" (default {})}} in that key order (other keys of
 *         the request's tool objects are dropped, as the reference does);
 *       - an assistant turn with tool calls is [TOOL_CALLS] + JSON list of
 *         {"name", "arguments", "id"} + </s>; "arguments" is the request's
 *         JSON string parsed (an empty or absent string is {}; an object is
 *         taken as it is); "id" is left out when the call has none (or the
 *         id "null", as in the reference);
 *       - an assistant turn with text is the text with trailing spaces
 *         removed (v3 only, as the reference does) + </s>;
 *       - a tool message is [TOOL_RESULTS] {"content": C, "call_id": ID}
 *         [/TOOL_RESULTS] where C is the content parsed as JSON when it
 *         parses ("22" becomes 22) and the content string otherwise; an
 *         empty content becomes {} (the reference's normalisation).
 *
 * The output always starts with <s> and ends ready for the assistant's
 * answer ([/INST] or [/TOOL_RESULTS]).  Encoding plain text never produces
 * control ids, so "[INST]" or "</s>" typed in a message stays text.
 *
 * JSON text is serialised exactly as Python's json.dumps does by default
 * (", " and ": " separators, key order kept, floats in repr style), with
 * ensure_ascii=False: mistral-common calls json.dumps(..., ensure_ascii=False)
 * for tools, tool calls and tool results, so non-ASCII characters go into the
 * prompt as themselves (UTF-8), not as \uXXXX escapes.  Control characters,
 * '"' and '\' are escaped as Python does (smoe_json_dumps_py(),
 * src/json/pyjson.h).
 *
 * Normalisation (as mistral-common does before encoding):
 *   - content is a string or an array of {"type": "text", "text": ...}
 *     parts; the non-empty parts are joined with "\n\n";
 *   - consecutive messages of the same role (user, or assistant) are merged
 *     into one turn, their non-empty texts joined with "\n\n" and their tool
 *     calls concatenated; a system message in between keeps them apart (the
 *     system messages are taken out of the sequence);
 *   - system messages with empty content are ignored;
 *   - when the first turn is not a user turn (the conversation starts with
 *     the assistant), an empty user turn is put in front.
 *
 * Validation (each failure is one line naming the message, e.g.
 * "messages[2]: role 'robot' is not one of system, user, assistant, tool"):
 *   - the request is an object with a non-empty "messages" array; other
 *     top-level keys ("model", "temperature", ...) are ignored;
 *   - roles are system, user, assistant, tool; system, user and tool
 *     messages need content; an assistant message needs either non-empty
 *     content or tool_calls, not both (a merged assistant turn may not mix
 *     them either);
 *   - order, as the reference's validator: after system come user,
 *     assistant or system; after user: assistant, system or user; after
 *     assistant: assistant, user or tool; after tool: assistant or tool;
 *   - every tool call is answered by exactly one tool message, and those
 *     come right after the assistant message that made the calls (the
 *     reference counts them the same way); a tool message with no pending
 *     call is an error;
 *   - the conversation ends with a user or tool message (no "prefix"
 *     continuation of an assistant message);
 *   - tool call: "type", when present, is "function"; function.name
 *     matches [a-zA-Z0-9_-]{1,64} (as the reference); function.arguments is
 *     a string that parses as JSON, an empty string, null/absent (both {}),
 *     or an object; "id", when present, is a string;
 *   - v3: a tool message needs a string tool_call_id.  Ids are rendered as
 *     given: the reference's validator also insists on 9 characters
 *     [a-zA-Z0-9] (what the model was trained on); smoe accepts any string so
 *     that OpenAI-style ids work, and a server may map ids itself;
 *   - "tools": absent, null or an array of {"type": "function", "function":
 *     {"name", "description"?, "parameters"? (an object)}};
 *   - v1 with non-empty "tools": the tools pass smoe_toolset_new() and
 *     "tool_choice" / "parallel_tool_calls" smoe_tool_choice_parse()
 *     (toolcall.h), whose errors are the render's.
 *   - v3 needs the vocabulary's [INST] and [/INST] pieces, and the tool
 *     pieces when the request uses tools;
 *   - a tool message's "name", when present, must be a string (it is not
 *     part of the v3 prompt; the reference also checks its spelling);
 *   - unknown keys anywhere ("model", "refusal", "strict", ...) are ignored.
 *
 * Known differences from Python's json.loads (tool arguments and tool
 * results are parsed with jansson): NaN, Infinity and -Infinity are not
 * JSON to jansson, integers beyond 64 bits and reals beyond the double
 * range do not parse.  Such tool arguments are an error, and such tool
 * results stay strings, where the reference would write a number.
 *
 * Prefix property (for KV-cache reuse by longest common prefix): let R1 be
 * the rendering of a conversation C ending with a user (or tool) message
 * and R2 the rendering of C + [assistant A, user U].
 *   - v1: R2 always starts with R1 + encode(A) + </s>, with or without a
 *     system prompt (the system prompt stays on the first user turn).
 *   - v3 without system prompt and without tools: R2 starts with
 *     R1 + encode(A with trailing spaces removed) + </s>.
 *   - v3 with a system prompt or tools: NO.  Both move to the last user
 *     turn, so R1 and R2 agree only up to and including the [INST] (or
 *     the [AVAILABLE_TOOLS]) of C's last user turn; everything after it
 *     must be recomputed.  That is how the model was trained, so smoe keeps
 *     it rather than pinning the system prompt to the first turn.
 *   encode(A) is the renderer's own encoding of the answer text; tokens the
 *   model sampled may be a different (non-canonical) split of the same text,
 *   in which case the common prefix ends where they differ.
 */
#ifndef SMOE_CHAT_H
#define SMOE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../model/vocab.h"
#include "../tokenizer/tokenizer.h"

typedef enum { SMOE_CHAT_V1 = 1, SMOE_CHAT_V3 = 3 } smoe_chat_format;

/* Pick the chat format for a vocabulary:
 *   1. the vocabulary has "[INST]" and "[/INST]" as CONTROL pieces -> v3;
 *   2. it has both pieces with another type (some converters mark them
 *      USER_DEFINED) and chat_template mentions "[AVAILABLE_TOOLS]",
 *      "[TOOL_CALLS]" or "[TOOL_RESULTS]" -> v3;
 *   3. otherwise -> v1 (its brackets are plain text, so it works with any
 *      SentencePiece vocabulary).
 * A template never turns a vocabulary with control [INST] into v1: Mixtral
 * 8x22B Instruct was first published with a v1-style template on its v3
 * vocabulary, and the control tokens are the better evidence.
 * chat_template may be NULL. */
smoe_chat_format smoe_chat_detect(const smoe_vocab *v, const char *chat_template);

/* "v1", "1", "mistral-v1", "mistral_v1", "mixtral-8x7b" -> SMOE_CHAT_V1;
 * "v3", "3", "mistral-v3", "mistral_v3", "mixtral-8x22b" -> SMOE_CHAT_V3
 * (ASCII case-insensitive); -1 for anything else. */
int smoe_chat_format_from_name(const char *name);

/* "v1" or "v3" ("?" for anything else). */
const char *smoe_chat_format_name(smoe_chat_format fmt);

/* An assistant message may carry this key: an array of the token ids the
 * model generated for its content.  Rendering then uses those ids instead
 * of re-tokenizing the text, so a conversation whose earlier turns are in a
 * KV cache renders to an extension of the cached tokens.  Used by
 * `smoe chat`; a server must remove it from client requests, since it lets
 * the caller place any id (control tokens too) in the prompt. */
#define SMOE_CHAT_GENERATED_IDS "smoe_generated_ids"

/* Validate request (see above) and append the prompt tokens to out.
 * On error out is left as it was and err holds one line. */
int smoe_chat_render(const smoe_tokenizer *tok, smoe_chat_format fmt, const json_t *request,
                     smoe_tokens *out, char *err);

#endif
