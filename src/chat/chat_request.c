/* chat_request.c - an OpenAI-shaped chat request checked and normalised
 * into a list of turns (user, assistant, tool) for chat_render.c; the
 * rules and the error messages are chat.h's "Normalisation" and
 * "Validation". */
#include <stdio.h>

#include "../grammar/toolcall.h"
#include "../json/jsonmem.h"
#include "chat_int.h"

static const char *const role_names[] = {"system", "user", "assistant", "tool"};

/* ------------------------------------------------------------------------
 * The conversation
 * ---------------------------------------------------------------------- */

void chat_conv_free(conv *c) {
    for (size_t i = 0; i < c->n_turns; i++) {
        smoe_buf_free(&c->turns[i].text);
        json_decref(c->turns[i].calls);
        json_decref(c->turns[i].result);
    }
    free(c->turns);
    smoe_buf_free(&c->system);
    json_decref(c->tools);
    free(c->tool_prompt);
    memset(c, 0, sizeof *c);
}

static turn *conv_add(conv *c, enum role r, size_t msg) {
    if (c->n_turns == c->cap_turns) {
        size_t cap = c->cap_turns ? c->cap_turns * 2 : 16;
        turn *nt = realloc(c->turns, cap * sizeof *nt);
        if (!nt) return NULL;
        c->turns = nt;
        c->cap_turns = cap;
    }
    turn *t = &c->turns[c->n_turns++];
    memset(t, 0, sizeof *t);
    t->role = r;
    t->first_msg = msg;
    return t;
}

/* ------------------------------------------------------------------------
 * Message text
 * ---------------------------------------------------------------------- */

/* A short printable rendering of a user-supplied string for messages. */
static const char *shown(const json_t *s, char *buf, size_t cap) {
    const char *p = json_string_value(s);
    size_t n = json_string_length(s), o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) buf[o++] = (p[i] >= 0x20 && p[i] < 0x7F) ? p[i] : '?';
    if (n > 0 && o + 4 >= cap) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o] = '\0';
    return buf;
}

static bool str_is(const json_t *s, const char *lit) {
    size_t n = strlen(lit);
    return json_is_string(s) && json_string_length(s) == n && memcmp(json_string_value(s), lit, n) == 0;
}

static bool is_absent(const json_t *v) { return !v || json_is_null(v); }

/* Append a text fragment, joining with "\n\n" (empty fragments skipped). */
static void add_text(smoe_buf *b, size_t *n_parts, const char *s, size_t n) {
    if (n == 0) return;
    if (*n_parts) smoe_buf_add(b, "\n\n", 2);
    smoe_buf_add(b, s, n);
    (*n_parts)++;
}

/* Read a message's "content" (string or text parts) into b.  *present is
 * false for absent/null content. */
static int read_content(const json_t *m, const char *where, smoe_buf *b, size_t *n_parts, bool *present, char *err) {
    const json_t *c = json_object_get(m, "content");
    *present = !is_absent(c);
    if (!*present) return 0;
    if (json_is_string(c)) {
        add_text(b, n_parts, json_string_value(c), json_string_length(c));
        return 0;
    }
    if (!json_is_array(c))
        return smoe_errf(err, "%s.content: must be a string or an array of text parts, not %s", where,
                         json_is_object(c) ? "an object" : json_is_boolean(c) ? "a boolean" :
                         json_is_number(c) ? "a number" : "this");
    for (size_t i = 0; i < json_array_size(c); i++) {
        const json_t *part = json_array_get(c, i);
        char tb[48];
        if (!json_is_object(part))
            return smoe_errf(err, "%s.content[%zu]: must be an object {\"type\": \"text\", \"text\": ...}", where, i);
        const json_t *ty = json_object_get(part, "type"), *tx = json_object_get(part, "text");
        if (!json_is_string(ty)) return smoe_errf(err, "%s.content[%zu]: 'type' is missing", where, i);
        if (!str_is(ty, "text"))
            return smoe_errf(err, "%s.content[%zu]: part type '%s' is not supported (only text)", where, i,
                             shown(ty, tb, sizeof tb));
        if (!json_is_string(tx)) return smoe_errf(err, "%s.content[%zu]: 'text' must be a string", where, i);
        add_text(b, n_parts, json_string_value(tx), json_string_length(tx));
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Tool calls and tools
 * ---------------------------------------------------------------------- */

/* jansson's error text with anything unprintable replaced, for one-line errors. */
static const char *clean(char *text) {
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7F) *p = '?';
    return text;
}

static bool valid_function_name(const json_t *n) {
    if (!json_is_string(n)) return false;
    size_t len = json_string_length(n);
    const char *s = json_string_value(n);
    if (len < 1 || len > 64) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-'))
            return false;
    }
    return true;
}

/* Parse a JSON text (any value); NULL when it does not parse. */
static json_t *parse_json_text(const char *s, size_t n, json_error_t *je) {
    bool oom;   /* counted for the caller's check (json/jsonmem.h) */
    return smoe_json_parse(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, je, &oom);
}

/* Check one tool call and append its prepared object to calls. */
static int read_tool_call(const json_t *tc, const char *where, json_t *calls, char *err) {
    char tb[80];
    if (!json_is_object(tc)) return smoe_errf(err, "%s: a tool call must be an object", where);
    const json_t *ty = json_object_get(tc, "type");
    if (!is_absent(ty) && !str_is(ty, "function"))
        return smoe_errf(err, "%s.type: must be \"function\"", where);
    const json_t *fn = json_object_get(tc, "function");
    if (!json_is_object(fn)) return smoe_errf(err, "%s: 'function' (an object with name and arguments) is missing", where);
    const json_t *name = json_object_get(fn, "name");
    if (!json_is_string(name)) return smoe_errf(err, "%s.function.name: missing (must be a string)", where);
    if (!valid_function_name(name))
        return smoe_errf(err, "%s.function.name: '%s' must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'", where,
                         shown(name, tb, sizeof tb));
    const json_t *args = json_object_get(fn, "arguments");
    json_t *parsed;
    if (is_absent(args) || (json_is_string(args) && json_string_length(args) == 0)) {
        parsed = json_object();
    } else if (json_is_string(args)) {
        json_error_t je;
        parsed = parse_json_text(json_string_value(args), json_string_length(args), &je);
        if (!parsed)
            return smoe_errf(err, "%s.function.arguments: not valid JSON (%s at character %d)", where,
                             clean(je.text), je.position);
    } else if (json_is_object(args)) {
        parsed = json_deep_copy(args);
    } else {
        return smoe_errf(err, "%s.function.arguments: must be a JSON string (or an object)", where);
    }
    const json_t *id = json_object_get(tc, "id");
    if (!is_absent(id) && !json_is_string(id)) {
        json_decref(parsed);
        return smoe_errf(err, "%s.id: must be a string", where);
    }
    json_t *o = json_object();
    if (!o) {
        json_decref(parsed);
        return oom(err);
    }
    /* json_*_set_new and append_new take the value even when they fail */
    if (json_object_set_new(o, "name", json_deep_copy(name)) || json_object_set_new(o, "arguments", parsed) ||
        (json_is_string(id) && !str_is(id, "null") && json_string_length(id) > 0 &&
         json_object_set_new(o, "id", json_deep_copy(id)))) {
        json_decref(o);
        return oom(err);
    }
    return json_array_append_new(calls, o) ? oom(err) : 0;
}

/* v1 has no tool tokens: the tools go into the prompt as an instruction
 * (toolcall.h's OBJECT format), which depends on tool_choice; none means no
 * instruction at all. */
static int v1_tool_prompt(const json_t *req, const json_t *tools, conv *c, char *err) {
    char e[SMOE_ERR_SIZE];
    smoe_toolset *ts = smoe_toolset_new(tools, e);
    if (!ts) return smoe_errf(err, "%s", e);
    smoe_tool_choice ch;
    int rc = 0;
    if (smoe_tool_choice_parse(ts, json_object_get(req, "tool_choice"), json_object_get(req, "parallel_tool_calls"), &ch,
                               e))
        rc = smoe_errf(err, "%s", e);
    else if (ch.kind != SMOE_TOOLS_NONE && !(c->tool_prompt = smoe_toolcall_object_prompt(ts, &ch, e)))
        rc = smoe_errf(err, "%s", e);
    smoe_toolset_free(ts);
    return rc;
}

/* tools -> the normalised array (NULL when none). */
static int read_tools(const json_t *req, conv *c, char *err) {
    const json_t *tools = json_object_get(req, "tools");
    if (is_absent(tools)) return 0;
    if (!json_is_array(tools)) return smoe_errf(err, "tools: must be an array");
    if (json_array_size(tools) == 0) return 0;
    if (!(c->tools = json_array())) return oom(err);
    char tb[80];
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *t = json_array_get(tools, i);
        if (!json_is_object(t)) return smoe_errf(err, "tools[%zu]: must be an object", i);
        const json_t *ty = json_object_get(t, "type");
        if (!is_absent(ty) && !str_is(ty, "function")) return smoe_errf(err, "tools[%zu].type: must be \"function\"", i);
        const json_t *fn = json_object_get(t, "function");
        if (!json_is_object(fn)) return smoe_errf(err, "tools[%zu]: 'function' (an object) is missing", i);
        const json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description"),
                     *params = json_object_get(fn, "parameters");
        if (!json_is_string(name)) return smoe_errf(err, "tools[%zu].function.name: missing (must be a string)", i);
        if (!valid_function_name(name))
            return smoe_errf(err, "tools[%zu].function.name: '%s' must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'", i,
                             shown(name, tb, sizeof tb));
        if (!is_absent(desc) && !json_is_string(desc))
            return smoe_errf(err, "tools[%zu].function.description: must be a string", i);
        if (!is_absent(params) && !json_is_object(params))
            return smoe_errf(err, "tools[%zu].function.parameters: must be an object (a JSON schema)", i);
        json_t *f = json_object();
        if (!f) return oom(err);
        if (json_object_set_new(f, "name", json_deep_copy(name)) ||
            json_object_set_new(f, "description", is_absent(desc) ? json_string("") : json_deep_copy(desc)) ||
            json_object_set_new(f, "parameters", is_absent(params) ? json_object() : json_deep_copy(params))) {
            json_decref(f);
            return oom(err);
        }
        json_t *o = json_object();
        if (!o) {
            json_decref(f);
            return oom(err);
        }
        if (json_object_set_new(o, "type", json_string("function"))) {
            json_decref(f);
            json_decref(o);
            return oom(err);
        }
        if (json_object_set_new(o, "function", f)) {
            json_decref(o);
            return oom(err);
        }
        if (json_array_append_new(c->tools, o)) return oom(err);
    }
    return c->fmt == SMOE_CHAT_V1 ? v1_tool_prompt(req, tools, c, err) : 0;
}

/* ------------------------------------------------------------------------
 * The request
 * ---------------------------------------------------------------------- */

/* Which roles may follow which (the reference validator's table). */
static bool may_follow(enum role prev, enum role cur) {
    switch (prev) {
    case ROLE_SYSTEM: return cur == ROLE_USER || cur == ROLE_ASSISTANT || cur == ROLE_SYSTEM;
    case ROLE_USER: return cur == ROLE_ASSISTANT || cur == ROLE_SYSTEM || cur == ROLE_USER;
    case ROLE_ASSISTANT: return cur == ROLE_ASSISTANT || cur == ROLE_USER || cur == ROLE_TOOL;
    case ROLE_TOOL: return cur == ROLE_ASSISTANT || cur == ROLE_TOOL;
    }
    return false;
}

int chat_read_request(const json_t *req, conv *c, char *err) {
    if (!json_is_object(req)) return smoe_errf(err, "the request must be a JSON object");
    const json_t *msgs = json_object_get(req, "messages");
    if (!msgs) return smoe_errf(err, "the request has no 'messages' array");
    if (!json_is_array(msgs)) return smoe_errf(err, "'messages' must be an array");
    size_t n = json_array_size(msgs);
    if (n == 0) return smoe_errf(err, "'messages' is empty: a conversation needs at least one message");
    if (read_tools(req, c, err)) return -1;

    enum role prev = ROLE_SYSTEM;
    size_t pending_calls = 0, calls_from = 0;
    turn *cur = NULL; /* the turn consecutive messages merge into */
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        char where[48], tb[48];
        snprintf(where, sizeof where, "messages[%zu]", i);
        if (!json_is_object(m)) return smoe_errf(err, "%s: must be an object with 'role' and 'content'", where);
        const json_t *rj = json_object_get(m, "role");
        if (!rj) return smoe_errf(err, "%s: 'role' is missing", where);
        if (!json_is_string(rj)) return smoe_errf(err, "%s: 'role' must be a string", where);
        enum role r;
        if (str_is(rj, "system")) r = ROLE_SYSTEM;
        else if (str_is(rj, "user")) r = ROLE_USER;
        else if (str_is(rj, "assistant")) r = ROLE_ASSISTANT;
        else if (str_is(rj, "tool")) r = ROLE_TOOL;
        else
            return smoe_errf(err, "%s: role '%s' is not one of system, user, assistant, tool", where,
                             shown(rj, tb, sizeof tb));

        if (i > 0 && !may_follow(prev, r))
            return smoe_errf(err, "%s: role '%s' cannot follow role '%s'%s", where, role_names[r],
                             role_names[prev],
                             r == ROLE_TOOL ? " (tool results follow the assistant message that made the calls)" :
                             prev == ROLE_TOOL ? " (after tool results comes an assistant message)" : "");
        if ((r == ROLE_ASSISTANT || r == ROLE_USER) && pending_calls)
            return smoe_errf(err, "%s: messages[%zu] made tool calls that have no tool result (%zu missing)", where,
                             calls_from, pending_calls);
        if (r == ROLE_TOOL && !pending_calls)
            return smoe_errf(err, "%s: a tool result with no tool call to answer (more tool messages than calls)",
                             where);

        smoe_buf text = {0};
        size_t n_parts = 0;
        bool present;
        if (read_content(m, where, &text, &n_parts, &present, err)) {
            smoe_buf_free(&text);
            return -1;
        }
        if (text.oom) { /* the content would be cut short */
            smoe_buf_free(&text);
            return oom(err);
        }
        if (!present && r != ROLE_ASSISTANT) {
            smoe_buf_free(&text);
            return smoe_errf(err, "%s: content is missing (a %s message needs content)", where, role_names[r]);
        }

        if (r == ROLE_SYSTEM) {
            if (n_parts) add_text(&c->system, &c->n_system, text.p, text.n);
            smoe_buf_free(&text);
            cur = NULL;
        } else if (r == ROLE_TOOL) {
            const json_t *id = json_object_get(m, "tool_call_id"), *name = json_object_get(m, "name");
            if (!is_absent(name) && !json_is_string(name)) {
                smoe_buf_free(&text);
                return smoe_errf(err, "%s.name: must be a string", where);
            }
            if (!json_is_string(id) && !(c->fmt == SMOE_CHAT_V1 && is_absent(id))) {
                smoe_buf_free(&text);
                return smoe_errf(err, "%s: %s (the v3 format names the call each result answers)", where,
                                 is_absent(id) ? "tool_call_id is missing" : "tool_call_id must be a string");
            }
            json_t *val = NULL;
            if (text.n == 0) val = json_object();
            else {
                json_error_t je;
                val = parse_json_text(text.p, text.n, &je);
                if (!val) val = json_stringn_nocheck(text.p, text.n);
            }
            smoe_buf_free(&text);
            turn *t = conv_add(c, ROLE_TOOL, i);
            json_t *o = json_object();
            if (!t || !o || !val || json_object_set_new(o, "content", val) ||
                (json_is_string(id) && json_object_set_new(o, "call_id", json_deep_copy(id)))) {
                json_decref(o);
                return oom(err);
            }
            t->result = o;
            pending_calls--;
            cur = NULL;
        } else {
            /* user or assistant: merge into the current turn of that role */
            const json_t *tcs = r == ROLE_ASSISTANT ? json_object_get(m, "tool_calls") : NULL;
            size_t n_calls = 0;
            if (!is_absent(tcs)) {
                if (!json_is_array(tcs)) {
                    smoe_buf_free(&text);
                    return smoe_errf(err, "%s.tool_calls: must be an array", where);
                }
                n_calls = json_array_size(tcs);
            }
            if (r == ROLE_ASSISTANT) {
                if (n_calls && n_parts) {
                    smoe_buf_free(&text);
                    return smoe_errf(err, "%s: an assistant message has either content or tool_calls, not both",
                                     where);
                }
                if (!n_calls && !n_parts) {
                    smoe_buf_free(&text);
                    return smoe_errf(err, "%s: an assistant message needs content or tool_calls (both are empty)",
                                     where);
                }
            }
            if (!cur || cur->role != r) {
                if (!(cur = conv_add(c, r, i))) {
                    smoe_buf_free(&text);
                    return oom(err);
                }
            }
            if (n_parts) add_text(&cur->text, &cur->n_parts, text.p, text.n);
            /* generated ids stand for the text only while it is one message */
            const json_t *gen = json_object_get(m, SMOE_CHAT_GENERATED_IDS);
            cur->ids = r == ROLE_ASSISTANT && cur->n_parts == 1 && json_is_array(gen) ? gen : NULL;
            smoe_buf_free(&text);
            if (n_calls) {
                if (!cur->calls && !(cur->calls = json_array())) return oom(err);
                for (size_t k = 0; k < n_calls; k++) {
                    char w2[96];
                    snprintf(w2, sizeof w2, "%s.tool_calls[%zu]", where, k);
                    if (read_tool_call(json_array_get(tcs, k), w2, cur->calls, err)) return -1;
                }
                pending_calls = n_calls;
                calls_from = i;
            }
            if (r == ROLE_ASSISTANT && cur->calls && cur->n_parts)
                return smoe_errf(err, "%s: consecutive assistant messages mix content and tool_calls", where);
            if (cur->text.oom) return oom(err);
        }
        if (c->system.oom) return oom(err);
        prev = r;
    }
    if (prev != ROLE_USER && prev != ROLE_TOOL)
        return smoe_errf(err, "the conversation must end with a user or tool message (messages[%zu] is %s)", n - 1,
                         prev == ROLE_ASSISTANT ? "from the assistant" : "a system message");
    if (pending_calls)
        return smoe_errf(err, "messages[%zu] made tool calls that have no tool result (%zu missing)", calls_from,
                         pending_calls);

    /* The first turn must be a user turn. */
    if (c->n_turns == 0 || c->turns[0].role != ROLE_USER) {
        if (!conv_add(c, ROLE_USER, 0)) return oom(err);
        turn t = c->turns[c->n_turns - 1];
        memmove(c->turns + 1, c->turns, (c->n_turns - 1) * sizeof *c->turns);
        c->turns[0] = t;
    }
    return 0;
}

