/* tools.c - function calling in `smoe serve` (see tools.h). */
#include "tools.h"

#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "../base/common.h"
#include "../grammar/toolcall.h"
#include "request.h"
#include "state.h"
#include "util.h"

/* ---------------------------------------------------------------------------
 * Per request and per choice state
 * ------------------------------------------------------------------------- */

typedef struct tc_choice {
    bool in_doc;          /* the call document has begun */
    bool broken;          /* the streamed document stopped parsing */
    int n_begun;          /* calls streamed so far */
    smoe_buf doc;         /* the document's text */
    smoe_tcstream *tcs;   /* streaming parser (streamed OpenAI chat only) */
    json_t *deltas;       /* delta items made by the current push */
    uint64_t seed;        /* ids of this choice */
    char *content;        /* OBJECT format: the parsed {"content": ...} */
} tc_choice;

struct srv_tools {
    smoe_toolset *ts;
    smoe_tool_choice choice;
    smoe_toolcall_format fmt;
    int32_t trigger;      /* 0: constrained from the first token */
    int n;
    tc_choice *ch;
};

void srv_tools_free(srv_tools *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        smoe_buf_free(&t->ch[i].doc);
        smoe_tcstream_free(t->ch[i].tcs);
        json_decref(t->ch[i].deltas);
        free(t->ch[i].content);
    }
    free(t->ch);
    smoe_toolset_free(t->ts);
    free(t);
}

static int32_t find_piece(const smoe_vocab *v, const char *piece) {
    size_t len = strlen(piece);
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && v->token_len[i] == len && memcmp(v->tokens[i], piece, len) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------------------
 * Streaming: tcstream events to OpenAI delta items
 * ------------------------------------------------------------------------- */

static int on_event(void *user, smoe_tcs_event ev, int index, const char *name, const char *id, const char *text,
                    size_t len) {
    tc_choice *c = user;
    if (ev == SMOE_TCS_CONTENT) { /* OBJECT format: a JSON string item stands for content */
        if (len) json_array_append_new(c->deltas, srv_json_text(text, len));
        return 0;
    }
    json_t *item = NULL, *fn = json_object();
    if (ev == SMOE_TCS_BEGIN) {
        item = json_object();
        json_object_set_new(item, "index", json_integer(index));
        json_object_set_new(item, "id", json_string(id));
        json_object_set_new(item, "type", json_string("function"));
        json_object_set_new(fn, "name", json_string(name));
        json_object_set_new(fn, "arguments", json_string(""));
        c->n_begun++;
    } else if (ev == SMOE_TCS_ARGS && len) {
        item = json_object();
        json_object_set_new(item, "index", json_integer(index));
        json_object_set_new(fn, "arguments", srv_json_text(text, len));
    }
    if (!item) { json_decref(fn); return 0; }
    json_object_set_new(item, "function", fn);
    json_array_append_new(c->deltas, item);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Setup (connection thread)
 * ------------------------------------------------------------------------- */

int srv_tools_setup(srv *s, const json_t *body, srv_request *r, char *param, char *err) {
    const json_t *tools = json_object_get(body, "tools");
    const json_t *choice = json_object_get(body, "tool_choice");
    const json_t *parallel = json_object_get(body, "parallel_tool_calls");
    strcpy(param, "tools");
    if (!tools || json_is_null(tools) || (json_is_array(tools) && json_array_size(tools) == 0)) {
        if (choice && !json_is_null(choice) && !(json_is_string(choice) && !strcmp(json_string_value(choice), "none")) &&
            !(json_is_string(choice) && !strcmp(json_string_value(choice), "auto"))) {
            strcpy(param, "tool_choice");
            return smoe_errf(err, "'tool_choice' needs 'tools'");
        }
        return 0;
    }
    char e[SMOE_ERR_SIZE];
    smoe_toolset *ts = smoe_toolset_new(tools, e);
    if (!ts) return smoe_errf(err, "%s", e);
    smoe_tool_choice tc;
    if (smoe_tool_choice_parse(ts, choice, parallel, &tc, e)) {
        smoe_toolset_free(ts);
        strcpy(param, parallel && !strstr(e, "tool_choice") ? "parallel_tool_calls" : "tool_choice");
        return smoe_errf(err, "%s", e);
    }
    if (tc.kind == SMOE_TOOLS_NONE) { smoe_toolset_free(ts); return 0; }
    /* v1 (no tool tokens): the whole answer is the JSON object document */
    bool object = s->chat_format == SMOE_CHAT_V1;
    int32_t trig = object ? 0 : find_piece(smoe_tokenizer_vocab(s->tok), "[TOOL_CALLS]");
    if (!object && trig <= 0) {
        smoe_toolset_free(ts);
        return smoe_errf(err, "tools: this model's vocabulary has no [TOOL_CALLS] token");
    }
    if (r->params.grammar) {
        smoe_toolset_free(ts);
        strcpy(param, "response_format");
        return smoe_errf(err, "response_format cannot be combined with tools (unless tool_choice is none)");
    }
    srv_tools *t = calloc(1, sizeof *t);
    if (t) t->ch = calloc((size_t)r->n, sizeof *t->ch);
    if (!t || !t->ch) {
        free(t);
        smoe_toolset_free(ts);
        return smoe_errf(err, "out of memory");
    }
    t->ts = ts;
    t->choice = tc;
    t->fmt = object ? SMOE_TOOLCALL_OBJECT : SMOE_TOOLCALL_V3;
    t->n = r->n;
    t->trigger = tc.kind == SMOE_TOOLS_AUTO && !object ? trig : 0;
    r->tools = t; /* freed with the request from here on */
    r->tools_free = srv_tools_free;
    if (!(r->params.grammar = smoe_toolcall_grammar(ts, &tc, t->fmt, e))) return smoe_errf(err, "%s", e);
    r->params.grammar_triggers = &t->trigger; /* t lives as long as the request */
    r->params.n_grammar_triggers = t->trigger ? 1 : 0;
    for (int i = 0; i < r->n; i++) {
        tc_choice *c = &t->ch[i];
        c->seed = r->params.sampling.seed + (uint64_t)i;
        c->in_doc = t->trigger == 0;
        if (r->stream && r->api == API_OAI_CHAT &&
            (!(c->tcs = smoe_tcstream_new(t->fmt, c->seed, on_event, c)) || !(c->deltas = json_array())))
            return smoe_errf(err, "out of memory");
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * History (connection thread)
 * ------------------------------------------------------------------------- */

static const char *role_of(const json_t *m) { return json_string_value(json_object_get(m, "role")); }

int srv_tools_check_history(const json_t *messages, char *err) {
    const json_t *calls = NULL; /* tool_calls of the last assistant turn */
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = role_of(m);
        if (!role) continue; /* the renderer names the problem */
        if (!strcmp(role, "assistant")) {
            const json_t *tc = json_object_get(m, "tool_calls");
            if (json_is_array(tc) && json_array_size(tc)) calls = tc;
            continue;
        }
        if (strcmp(role, "tool")) { calls = NULL; continue; }
        const char *id = json_string_value(json_object_get(m, "tool_call_id"));
        if (!id || !calls) continue; /* missing id or call: the renderer's error */
        bool any_id = false, found = false;
        size_t k;
        const json_t *c;
        json_array_foreach(calls, k, c) {
            const char *cid = json_string_value(json_object_get(c, "id"));
            if (!cid) continue;
            any_id = true;
            if (!strcmp(cid, id)) found = true;
        }
        if (any_id && !found)
            return smoe_errf(err, "messages[%zu]: tool_call_id '%.64s' matches no tool call of the assistant message before it",
                             i, id);
    }
    return 0;
}

json_t *srv_tools_ollama_history(const json_t *messages) {
    json_t *msgs = json_deep_copy(messages);
    if (!msgs) return NULL;
    json_t *calls = NULL;
    char used[SMOE_MAX_TOOLS * 4] = {0}; /* answered calls of the last assistant turn */
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *role = role_of(m);
        if (!role) continue;
        if (!strcmp(role, "assistant")) {
            json_t *tc = json_object_get(m, "tool_calls");
            if (!json_is_array(tc) || !json_array_size(tc)) continue;
            calls = tc;
            memset(used, 0, sizeof used);
            size_t k;
            json_t *c;
            json_array_foreach(calls, k, c) {
                if (!json_is_object(c) || json_is_string(json_object_get(c, "id"))) continue;
                uint64_t rng = ((uint64_t)i << 20) ^ k ^ 0x6f6c6c616d61ull; /* fixed by position */
                char id[SMOE_TOOL_ID_LEN + 1];
                smoe_toolcall_new_id(&rng, id);
                json_object_set_new(c, "id", json_string(id));
            }
            continue;
        }
        if (strcmp(role, "tool")) { calls = NULL; continue; }
        if (!calls || json_object_get(m, "tool_call_id")) continue;
        const char *want = json_string_value(json_object_get(m, "tool_name"));
        if (!want) want = json_string_value(json_object_get(m, "name"));
        size_t pick = (size_t)-1, k;
        json_t *c;
        json_array_foreach(calls, k, c) {
            if (k >= sizeof used || used[k]) continue;
            const char *name = json_string_value(json_object_get(json_object_get(c, "function"), "name"));
            if (want && (!name || strcmp(name, want))) continue;
            pick = k;
            break;
        }
        if (pick == (size_t)-1) continue; /* the renderer reports the missing id */
        used[pick] = 1;
        json_object_set(m, "tool_call_id", json_object_get(json_array_get(calls, pick), "id"));
    }
    return msgs;
}

/* ---------------------------------------------------------------------------
 * Engine side
 * ------------------------------------------------------------------------- */

static tc_choice *state(const srv_choice *c) {
    srv_tools *t = c->req->tools;
    return t && c->index < t->n ? &t->ch[c->index] : NULL;
}

void srv_tools_on_token(srv_choice *c, int32_t id) {
    tc_choice *tc = state(c);
    if (tc && id == c->req->tools->trigger) tc->in_doc = true;
}

bool srv_tools_on_text(srv_choice *c, const char *text, size_t len, bool stream_deltas, json_t **deltas) {
    tc_choice *tc = state(c);
    if (deltas) *deltas = NULL;
    if (!tc || !tc->in_doc) return false;
    smoe_buf_add(&tc->doc, text, len);
    if (!stream_deltas || !tc->tcs) return true;
    json_array_clear(tc->deltas);
    if (!tc->broken && len && smoe_tcstream_push(tc->tcs, text, len) != 0) tc->broken = true;
    if (deltas) *deltas = json_copy(tc->deltas);
    return true;
}

bool srv_tools_called(const srv_choice *c) {
    tc_choice *tc = state(c);
    if (!tc || !tc->in_doc) return false;
    /* OBJECT: the document may be {"content": ...}; n_begun counts calls
     * streamed, or parsed by srv_tools_calls */
    if (c->req->tools->fmt == SMOE_TOOLCALL_OBJECT) return tc->n_begun > 0;
    return tc->tcs ? tc->n_begun > 0 : tc->doc.n > 0;
}

json_t *srv_tools_calls(srv_choice *c, bool args_object, const char **rest, size_t *rest_len) {
    tc_choice *tc = state(c);
    *rest = NULL;
    *rest_len = 0;
    if (!tc || !tc->in_doc || !tc->doc.n) return NULL;
    char e[SMOE_ERR_SIZE];
    uint64_t rng = tc->seed;
    smoe_toolcall_result res = {0};
    if (smoe_toolcall_parse(c->req->tools->ts, c->req->tools->fmt, tc->doc.p, tc->doc.n, &rng, args_object, &res, e)) {
        *rest = tc->doc.p;
        *rest_len = tc->doc.n;
        return NULL;
    }
    json_t *calls = json_incref(res.tool_calls);
    if (res.content) { /* OBJECT format's answer in words: the caller's text */
        free(tc->content);
        tc->content = res.content;
        res.content = NULL;
        *rest = tc->content;
        *rest_len = strlen(tc->content);
    }
    if (!tc->tcs && calls) tc->n_begun = (int)json_array_size(calls);
    smoe_toolcall_result_free(&res);
    if (calls && json_array_size(calls) == 0) { json_decref(calls); return NULL; }
    return calls;
}
