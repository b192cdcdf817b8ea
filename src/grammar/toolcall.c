/* toolcall.c - tools checked and compiled into a tool-call grammar, and
 * tool-call documents parsed back, whole or streamed (see toolcall.h). */
#include "toolcall.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/common.h"
#include "../json/jsonmem.h"
#include "gint.h"
#include "json_schema.h"

struct smoe_toolset {
    json_t *tools;        /* the request's array (a reference) */
    int n;
    const char **names;   /* borrowed from tools */
    json_t **params;      /* parameters schema of each (own references) */
    bool *strict;
};

/* ---------------------------------------------------------------------------
 * Checking the tools
 * ------------------------------------------------------------------------- */

static bool name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The parameters schema as an object schema: "type" absent becomes
 * "object" (a shallow copy, so "#" references still mean this schema);
 * any other type is refused since arguments are always an object. */
static json_t *object_params(const json_t *p, size_t i, char *err) {
    if (!p || json_is_null(p)) {
        /* no parameters: the function takes none (arguments {}) */
        return json_pack("{s:s,s:{},s:b}", "type", "object", "properties", "additionalProperties", 0);
    }
    if (!json_is_object(p)) {
        smoe_errf(err, "tools[%zu].function.parameters: must be a JSON Schema object", i);
        return NULL;
    }
    const json_t *t = json_object_get(p, "type");
    if (t && !(json_is_string(t) && !strcmp(json_string_value(t), "object"))) {
        smoe_errf(err, "tools[%zu].function.parameters: must describe an object (\"type\": \"object\")", i);
        return NULL;
    }
    json_t *c = json_copy((json_t *)p);
    if (c && !t) json_object_set_new(c, "type", json_string("object"));
    if (!c) smoe_errf(err, "out of memory");
    return c;
}

smoe_toolset *smoe_toolset_new(const json_t *tools, char *err) {
    if (!json_is_array(tools)) return smoe_errf(err, "tools: must be an array"), NULL;
    size_t n = json_array_size(tools);
    if (n > SMOE_MAX_TOOLS) return smoe_errf(err, "tools: at most %d tools (got %zu)", SMOE_MAX_TOOLS, n), NULL;
    smoe_toolset *ts = calloc(1, sizeof *ts);
    if (!ts || !(ts->names = calloc(n + 1, sizeof *ts->names)) || !(ts->params = calloc(n + 1, sizeof *ts->params)) ||
        !(ts->strict = calloc(n + 1, sizeof *ts->strict))) {
        smoe_toolset_free(ts);
        return smoe_errf(err, "out of memory"), NULL;
    }
    ts->tools = json_incref((json_t *)tools);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tools, i);
        if (!json_is_object(t)) { smoe_errf(err, "tools[%zu]: must be an object", i); goto fail; }
        const json_t *type = json_object_get(t, "type");
        if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "function"))) {
            smoe_errf(err, "tools[%zu].type: must be \"function\"", i);
            goto fail;
        }
        const json_t *f = json_object_get(t, "function");
        if (!json_is_object(f)) { smoe_errf(err, "tools[%zu].function: must be an object", i); goto fail; }
        const json_t *name = json_object_get(f, "name");
        if (!json_is_string(name)) { smoe_errf(err, "tools[%zu].function.name: must be a string", i); goto fail; }
        const char *nm = json_string_value(name);
        if (!name_ok(nm) || strlen(nm) != json_string_length(name)) {
            smoe_errf(err, "tools[%zu].function.name: '%.80s' must match ^[a-zA-Z0-9_-]{1,64}$", i, nm);
            goto fail;
        }
        if (smoe_toolset_find(ts, nm) >= 0) {
            smoe_errf(err, "tools[%zu].function.name: '%s' is declared twice", i, nm);
            goto fail;
        }
        const json_t *strict = json_object_get(f, "strict");
        if (strict && !json_is_boolean(strict) && !json_is_null(strict)) {
            smoe_errf(err, "tools[%zu].function.strict: must be a boolean", i);
            goto fail;
        }
        ts->strict[i] = json_is_true(strict);
        if (!(ts->params[i] = object_params(json_object_get(f, "parameters"), i, err))) goto fail;
        /* compile it alone: unsupported keywords, bad or unsatisfiable
         * schemas get the schema compiler's message, naming this tool */
        char gerr[SMOE_ERR_SIZE];
        smoe_json_schema_opts o = {.strict = ts->strict[i], .no_leading_space = true};
        smoe_grammar *g = smoe_json_schema_compile(ts->params[i], &o, gerr);
        if (!g) { smoe_errf(err, "tools[%zu].function.parameters: %s", i, gerr); goto fail; }
        smoe_grammar_free(g);
        ts->names[i] = nm;
        ts->n++;
    }
    return ts;
fail:
    smoe_toolset_free(ts);
    return NULL;
}

void smoe_toolset_free(smoe_toolset *ts) {
    if (!ts) return;
    if (ts->params)
        for (int i = 0; ts->params[i]; i++) json_decref(ts->params[i]);
    free(ts->params);
    free(ts->names);
    free(ts->strict);
    json_decref(ts->tools);
    free(ts);
}

int smoe_toolset_count(const smoe_toolset *ts) { return ts->n; }
const char *smoe_toolset_name(const smoe_toolset *ts, int i) { return i >= 0 && i < ts->n ? ts->names[i] : NULL; }

int smoe_toolset_find(const smoe_toolset *ts, const char *name) {
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->names[i], name)) return i;
    return -1;
}

int smoe_tool_choice_parse(const smoe_toolset *ts, const json_t *choice, const json_t *parallel,
                           smoe_tool_choice *out, char *err) {
    memset(out, 0, sizeof *out);
    out->kind = SMOE_TOOLS_AUTO;
    out->parallel = true;
    out->named = -1;
    if (parallel && !json_is_null(parallel)) {
        if (!json_is_boolean(parallel)) return smoe_errf(err, "parallel_tool_calls: must be a boolean");
        out->parallel = json_is_true(parallel);
    }
    if (!choice || json_is_null(choice)) return 0;
    if (json_is_string(choice)) {
        const char *c = json_string_value(choice);
        if (!strcmp(c, "auto")) out->kind = SMOE_TOOLS_AUTO;
        else if (!strcmp(c, "none")) out->kind = SMOE_TOOLS_NONE;
        else if (!strcmp(c, "required")) out->kind = SMOE_TOOLS_REQUIRED;
        else return smoe_errf(err, "tool_choice: '%.60s' is not auto, none, required or {\"type\": \"function\", ...}", c);
    } else if (json_is_object(choice)) {
        const json_t *type = json_object_get(choice, "type");
        const json_t *f = json_object_get(choice, "function");
        const json_t *name = json_is_object(f) ? json_object_get(f, "name") : NULL;
        if (!(json_is_string(type) && !strcmp(json_string_value(type), "function")) || !json_is_string(name))
            return smoe_errf(err, "tool_choice: an object must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
        int i = ts ? smoe_toolset_find(ts, json_string_value(name)) : -1;
        if (i < 0) return smoe_errf(err, "tool_choice: function '%.64s' is not one of the tools", json_string_value(name));
        out->kind = SMOE_TOOLS_NAMED;
        out->named = i;
    } else {
        return smoe_errf(err, "tool_choice: must be a string or an object");
    }
    if ((out->kind == SMOE_TOOLS_REQUIRED || out->kind == SMOE_TOOLS_NAMED) && (!ts || ts->n == 0))
        return smoe_errf(err, "tool_choice: '%s' needs at least one tool", out->kind == SMOE_TOOLS_NAMED ? "function" : "required");
    return 0;
}

/* ---------------------------------------------------------------------------
 * The grammar
 * ------------------------------------------------------------------------- */

smoe_grammar *smoe_toolcall_grammar(const smoe_toolset *ts, const smoe_tool_choice *choice,
                                    smoe_toolcall_format fmt, char *err) {
    if (choice->kind == SMOE_TOOLS_NONE) return smoe_errf(err, "tool_choice none: no tool-call grammar"), NULL;
    if (ts->n == 0) return smoe_errf(err, "tools: no tools to call"), NULL;
    double t0 = smoe_now_ms();
    smoe_json_schema_opts o = {.no_leading_space = true};
    smoe_jsg *b = smoe_jsg_new(&o, err);
    if (!b) return NULL;
    smoe_buf txt = {0};
    char *all = NULL;
    smoe_grammar *g = NULL;
    const char *sep = smoe_jsg_sep(b);
    bool oom = false;
    /* one rule per callable tool: {"name": N, "arguments": A, "id": I} */
    oom |= smoe_buf_addf(&txt, "tc-call ::=") < 0;
    int first = 1;
    for (int i = 0; i < ts->n; i++) {
        if (choice->kind == SMOE_TOOLS_NAMED && i != choice->named) continue;
        oom |= smoe_buf_addf(&txt, "%s tc-c%d", first ? "" : " |", i) < 0;
        first = 0;
    }
    oom |= smoe_buf_addf(&txt, "\ntc-id ::= \",\" %s \"\\\"id\\\":\" %s \"\\\"\" [a-zA-Z0-9]{%d} \"\\\"\"\n", sep, sep,
                         SMOE_TOOL_ID_LEN) < 0;
    for (int i = 0; i < ts->n && !oom; i++) {
        if (choice->kind == SMOE_TOOLS_NAMED && i != choice->named) continue;
        smoe_jsg_set_strict(b, ts->strict[i]);
        char serr[SMOE_ERR_SIZE];
        const char *args = smoe_jsg_add_schema(b, ts->params[i], serr);
        if (!args) { smoe_errf(err, "tools[%d].function.parameters: %s", i, serr); goto out; }
        oom |= smoe_buf_addf(&txt,
                             "tc-c%d ::= \"{\\\"name\\\":\" %s \"\\\"%s\\\"\" \",\" %s \"\\\"arguments\\\":\" %s %s tc-id? \"}\"\n",
                             i, sep, ts->names[i], sep, sep, args) < 0;
    }
    const char *calls = choice->parallel ? "\"[\" tc-call (\",\" %s tc-call)* \"]\"" : "\"[\" tc-call \"]\"%s";
    oom |= smoe_buf_addf(&txt, "tc-calls ::= ") < 0;
    oom |= smoe_buf_addf(&txt, calls, choice->parallel ? sep : "") < 0;
    if (fmt == SMOE_TOOLCALL_V3) {
        oom |= smoe_buf_addf(&txt, "\nroot ::= \" \"? tc-calls\n") < 0;
    } else {
        oom |= smoe_buf_addf(&txt, "\nroot ::= \" \"? \"{\\\"tool_calls\\\":\" %s tc-calls \"}\"", sep) < 0;
        if (choice->kind == SMOE_TOOLS_AUTO)
            oom |= smoe_buf_addf(&txt, " | \" \"? \"{\\\"content\\\":\" %s %s \"}\"", sep, smoe_jsg_any_string(b)) < 0;
        oom |= smoe_buf_addf(&txt, "\n") < 0;
    }
    if (oom || smoe_jsg_add_text(b, txt.p, err)) { if (oom) smoe_errf(err, "out of memory"); goto out; }
    if (!(all = smoe_jsg_text(b, err))) goto out;
    char gerr[SMOE_ERR_SIZE];
    g = smoe_grammar_new(all, strlen(all), gerr);
    if (!g) smoe_errf(err, "tools: %s", gerr);
    else g->compile_ms = smoe_now_ms() - t0;
out:
    smoe_buf_free(&txt);
    free(all);
    smoe_jsg_free(b);
    return g;
}

char *smoe_toolcall_object_prompt(const smoe_toolset *ts, const smoe_tool_choice *choice, char *err) {
    char *tools = json_dumps(ts->tools, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!tools) return smoe_errf(err, "out of memory"), NULL;
    smoe_buf s = {0};
    int bad = smoe_buf_addf(&s, "You can call these functions (JSON Schema of their arguments included):\n%s\n", tools) < 0;
    free(tools);
    if (choice->kind == SMOE_TOOLS_NAMED)
        bad |= smoe_buf_addf(&s, "Call the function %s.\n", ts->names[choice->named]) < 0;
    bad |= smoe_buf_addf(&s,
                         "Answer with one JSON object and nothing else: {\"tool_calls\": [{\"name\": <function name>, "
               "\"arguments\": {<arguments>}}]} to call %s", choice->parallel ? "one or more functions" : "one function") < 0;
    if (choice->kind == SMOE_TOOLS_AUTO)
        bad |= smoe_buf_addf(&s, ", or {\"content\": <your answer as text>} to answer without calling one") < 0;
    bad |= smoe_buf_addf(&s, ".") < 0;
    if (bad) { smoe_buf_free(&s); return smoe_errf(err, "out of memory"), NULL; }
    return s.p;
}

/* ---------------------------------------------------------------------------
 * Parsing a whole document
 * ------------------------------------------------------------------------- */

static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

void smoe_toolcall_new_id(uint64_t *rng, char out[SMOE_TOOL_ID_LEN + 1]) {
    for (int i = 0; i < SMOE_TOOL_ID_LEN; i++) out[i] = ALNUM[smoe_splitmix64(rng) % 62];
    out[SMOE_TOOL_ID_LEN] = 0;
}

bool smoe_toolcall_id_valid(const char *id) {
    if (strlen(id) != SMOE_TOOL_ID_LEN) return false;
    for (int i = 0; i < SMOE_TOOL_ID_LEN; i++)
        if (!strchr(ALNUM, id[i]) || !id[i]) return false;
    return true;
}

static json_t *one_call(const smoe_toolset *ts, const json_t *c, size_t i, uint64_t *rng, bool args_obj, char *err) {
    const json_t *name = json_object_get(c, "name");
    const json_t *args = json_object_get(c, "arguments");
    const json_t *id = json_object_get(c, "id");
    if (!json_is_object(c) || !json_is_string(name) || strlen(json_string_value(name)) != json_string_length(name))
        return smoe_errf(err, "tool call %zu: no function name", i), NULL;
    if (smoe_toolset_find(ts, json_string_value(name)) < 0)
        return smoe_errf(err, "tool call %zu: '%.64s' is not one of the tools", i, json_string_value(name)), NULL;
    if (args && !json_is_object(args)) return smoe_errf(err, "tool call %zu: arguments are not an object", i), NULL;
    char gen[SMOE_TOOL_ID_LEN + 1];
    const char *cid = json_is_string(id) && smoe_toolcall_id_valid(json_string_value(id)) ? json_string_value(id) : NULL;
    if (!cid) { smoe_toolcall_new_id(rng, gen); cid = gen; }
    json_t *a = args ? json_incref((json_t *)args) : json_object();
    json_t *av = a;
    if (!args_obj) {
        char *s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(a);
        av = s ? json_string(s) : NULL;
        free(s);
    }
    json_t *r = av ? json_pack("{s:s,s:s,s:{s:O,s:o}}", "id", cid, "type", "function", "function", "name", name,
                               "arguments", av)
                   : NULL;
    if (!r) smoe_errf(err, "out of memory");
    return r;
}

int smoe_toolcall_parse(const smoe_toolset *ts, smoe_toolcall_format fmt, const char *text, size_t len,
                        uint64_t *rng, bool arguments_object, smoe_toolcall_result *out, char *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    bool oom;
    json_t *doc = smoe_json_parse(text, len, JSON_ALLOW_NUL, &je, &oom);
    if (!doc) return smoe_errf(err, oom ? "tool calls: out of memory" : "tool calls: not JSON: %s", je.text);
    const json_t *arr = doc;
    int rc = -1;
    if (fmt == SMOE_TOOLCALL_OBJECT) {
        const json_t *content = json_object_get(doc, "content");
        arr = json_object_get(doc, "tool_calls");
        if (json_is_string(content) && !arr) {
            out->content = strndup(json_string_value(content), json_string_length(content));
            if (!out->content || !(out->tool_calls = json_array())) { smoe_errf(err, "out of memory"); goto out; }
            rc = 0;
            goto out;
        }
    }
    if (!json_is_array(arr)) { smoe_errf(err, "tool calls: expected a JSON array of calls"); goto out; }
    if (!(out->tool_calls = json_array())) { smoe_errf(err, "out of memory"); goto out; }
    size_t i;
    const json_t *c;
    json_array_foreach(arr, i, c) {
        json_t *call = one_call(ts, c, i, rng, arguments_object, err);
        if (!call || json_array_append_new(out->tool_calls, call)) goto out;
    }
    rc = 0;
out:
    json_decref(doc);
    if (rc) smoe_toolcall_result_free(out);
    return rc;
}

void smoe_toolcall_result_free(smoe_toolcall_result *r) {
    json_decref(r->tool_calls);
    free(r->content);
    memset(r, 0, sizeof *r);
}
