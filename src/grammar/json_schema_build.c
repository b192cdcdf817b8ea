/* json_schema_build.c - what every part of the JSON Schema compiler builds
 * on: the builder's errors (naming the subschema) and rule names, the
 * shared rules "j-..." emitted once, the keywords allowed, local $ref
 * resolution.  The supported subset, whitespace policy and formats are
 * documented in json_schema.h. */
#include "json_schema_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"

/* ---------------------------------------------------------------------------
 * Builder
 * ------------------------------------------------------------------------- */

int js_where_err(smoe_jsg *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int js_where_err(smoe_jsg *b, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->path[0]) smoe_errf(b->err, "schema at %.300s: %s", b->path, msg);
    else smoe_errf(b->err, "schema: %s", msg);
    /* schema strings (names, types, paths) may hold control characters:
     * the message stays one line */
    for (char *c = b->err; c && *c; c++)
        if ((unsigned char)*c < 0x20) *c = ' ';
    return -1;
}

size_t js_path_push(smoe_jsg *b, const char *seg) {
    size_t n = strlen(b->path);
    size_t room = sizeof b->path - n;
    if (room > 2) {
        b->path[n] = '/';
        size_t w = 1;
        for (const char *p = seg; *p && w + 3 < room; p++) {
            if (*p == '~') { b->path[n + w++] = '~'; b->path[n + w++] = '0'; }
            else if (*p == '/') { b->path[n + w++] = '~'; b->path[n + w++] = '1'; }
            else b->path[n + w++] = *p;
        }
        b->path[n + w] = 0;
    }
    return n;
}
size_t js_path_push_i(smoe_jsg *b, const char *seg, size_t i) {
    char t[64];
    size_t n = js_path_push(b, seg);
    snprintf(t, sizeof t, "%zu", i);
    js_path_push(b, t);
    return n;
}
void js_path_pop(smoe_jsg *b, size_t n) { b->path[n] = 0; }

void js_new_name(smoe_jsg *b, char *name) {
    int id = ++b->counter;
    snprintf(name, NAME_LEN, "s%d", id);
    if (id >= b->cap_paths) {
        int cap = b->cap_paths ? b->cap_paths * 2 : 64;
        while (cap <= id) cap *= 2;
        char **np = realloc(b->rule_paths, (size_t)cap * sizeof *np);
        if (!np) return;
        for (int i = b->cap_paths; i < cap; i++) np[i] = NULL;
        b->rule_paths = np;
        b->cap_paths = cap;
    }
    b->rule_paths[id] = strdup(b->path[0] ? b->path : "/");
}

void js_add_rule(smoe_jsg *b, const char *name, const smoe_buf *body) {
    smoe_buf_adds(&b->rules, name);
    smoe_buf_adds(&b->rules, " ::= ");
    smoe_buf_add(&b->rules, body->p ? body->p : "\"\"", body->p ? body->n : 2);
    smoe_buf_adds(&b->rules, "\n");
    if (body->oom) b->rules.oom = true;
}

/* ---------------------------------------------------------------------------
 * Shared rules
 * ------------------------------------------------------------------------- */

void js_need(smoe_jsg *b, unsigned p) {
    if (b->prims & p) return;
    b->prims |= p;
    smoe_buf *o = &b->rules;
    switch (p) {
    case P_SEP:
        smoe_buf_adds(o, b->o.compact ? "j-sep ::= \"\"\n" : "j-sep ::= \" \"?\n");
        break;
    case P_VALUE:
        js_need(b, P_OBJECT); js_need(b, P_ARRAY); js_need(b, P_STRING); js_need(b, P_NUMBER);
        smoe_buf_adds(o, "j-value ::= j-object | j-array | j-string | j-number | \"true\" | \"false\" | \"null\"\n");
        break;
    case P_OBJECT:
        js_need(b, P_VALUE); js_need(b, P_STRING); js_need(b, P_SEP);
        smoe_buf_adds(o, "j-object ::= \"{\" (j-string \":\" j-sep j-value (\",\" j-sep j-string \":\" j-sep j-value)*)? \"}\"\n");
        break;
    case P_ARRAY:
        js_need(b, P_VALUE); js_need(b, P_SEP);
        smoe_buf_adds(o, "j-array ::= \"[\" (j-value (\",\" j-sep j-value)*)? \"]\"\n");
        break;
    case P_STRING:
        js_need(b, P_CHAR);
        smoe_buf_adds(o, "j-string ::= \"\\\"\" j-char* \"\\\"\"\n");
        break;
    case P_CHAR:
        /* any character, any escape; \u surrogates only as a valid pair */
        smoe_buf_adds(o, "j-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" j-u4)\n"
                   "j-u4 ::= [0-9a-cA-Ce-fE-F] j-hex j-hex j-hex | [dD] [0-7] j-hex j-hex"
                   " | [dD] [89abAB] j-hex j-hex \"\\\\u\" [dD] [c-fC-F] j-hex j-hex\n"
                   "j-hex ::= [0-9a-fA-F]\n");
        break;
    case P_KCHAR: {
        /* a character in its canonical encoding: raw, or j-kesc */
        uint32_t raw[8] = {0x20, 0x21, 0x23, 0x5B, 0x5D, 0xD7FF, 0xE000, 0x10FFFF};
        js_need(b, P_KESC);
        smoe_buf_adds(o, "j-kchar ::= ");
        gr_emit_json_charset(o, raw, 4);
        smoe_buf_adds(o, " | j-kesc\n");
        break;
    }
    case P_KESC: {
        uint32_t spec[6] = {0x00, 0x1F, 0x22, 0x22, 0x5C, 0x5C};
        smoe_buf_adds(o, "j-kesc ::= ");
        gr_emit_json_charset(o, spec, 3);
        smoe_buf_adds(o, "\n");
        break;
    }
    case P_NUMBER:
        /* at most 18 integer digits and a 2-digit exponent: every JSON
         * parser reads such a number (jansson refuses integers beyond 64
         * bits and reals beyond the double range) */
        smoe_buf_adds(o, "j-number ::= \"-\"? j-uint (\".\" [0-9]+)? ([eE] [-+]? [0-9]{1,2})?\n");
        js_need(b, P_INTEGER);
        break;
    case P_INTEGER:
        smoe_buf_adds(o, "j-uint ::= \"0\" | [1-9] [0-9]{0,17}\n"
                   "j-integer ::= \"-\"? j-uint\n");
        break;
    case P_FRAC:
        smoe_buf_adds(o, "j-frac-any ::= (\".\" [0-9]+)?\n"
                   "j-frac-zero ::= (\".\" \"0\"+)?\n"
                   "j-frac-nonzero ::= \".\" [0-9]* [1-9] [0-9]*\n");
        break;
    case P_DATE:
        smoe_buf_adds(o, "j-date ::= j-year \"-\" ((\"01\" | \"03\" | \"05\" | \"07\" | \"08\" | \"10\" | \"12\") \"-\" j-d31"
                   " | (\"04\" | \"06\" | \"09\" | \"11\") \"-\" j-d30 | \"02-\" j-d28) | j-leap \"-02-29\"\n"
                   "j-d28 ::= \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]\n"
                   "j-d30 ::= j-d28 | \"29\" | \"30\"\n"
                   "j-d31 ::= j-d30 | \"31\"\n"
                   "j-year ::= [0-9] [0-9] [0-9] [1-9] | [0-9] [0-9] [1-9] \"0\" | [0-9] [1-9] \"00\" | [1-9] \"000\"\n"
                   "j-leap ::= [0-9] [0-9] j-leap4 | j-leap4 \"00\"\n"
                   "j-leap4 ::= \"0\" [48] | [2468] [048] | [13579] [26]\n");
        break;
    case P_TIME:
        smoe_buf_adds(o, "j-time ::= ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})?"
                   " (\"Z\" | [-+] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])\n");
        break;
    case P_DATETIME:
        js_need(b, P_DATE); js_need(b, P_TIME);
        smoe_buf_adds(o, "j-date-time ::= j-date \"T\" j-time\n");
        break;
    case P_UUID:
        smoe_buf_adds(o, "j-uuid ::= j-hx{8} \"-\" j-hx{4} \"-\" j-hx{4} \"-\" j-hx{4} \"-\" j-hx{12}\n"
                   "j-hx ::= [0-9a-fA-F]\n");
        break;
    case P_EMAIL:
        smoe_buf_adds(o, "j-email ::= j-atom (\".\" j-atom)* \"@\" j-label (\".\" j-label)+\n"
                   "j-atom ::= [A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-]+\n"
                   "j-label ::= [A-Za-z0-9] ([A-Za-z0-9\\-]* [A-Za-z0-9])?\n");
        break;
    }
}

/* ---------------------------------------------------------------------------
 * Keywords
 * ------------------------------------------------------------------------- */

const char *const js_k_annotation[] = {"title", "description", "default", "examples", "$comment", "$schema",
                                          "$id", "$anchor", "deprecated", "readOnly", "writeOnly", NULL};
const char *const js_k_container[] = {"$defs", "definitions", NULL};
static const char *const k_validation[] = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
    "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", NULL};

bool js_in_list(const char *k, const char *const *list) {
    for (int i = 0; list[i]; i++) if (!strcmp(k, list[i])) return true;
    return false;
}

int js_check_keywords(smoe_jsg *b, const json_t *s) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        (void)v;
        if (!js_in_list(k, js_k_annotation) && !js_in_list(k, js_k_container) && !js_in_list(k, k_validation))
            return js_where_err(b, "unsupported keyword '%s'", k);
    }
    return 0;
}

/* Number of validation keywords other than the listed ones. */
const char *js_other_validation(const json_t *s, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        (void)v;
        if (js_in_list(k, k_validation) && !js_in_list(k, allowed)) return k;
    }
    return NULL;
}

static int type_bit(const char *name) {
    static const char *const names[] = {"null", "boolean", "object", "array", "string", "number", "integer"};
    for (int i = 0; i < 7; i++) if (!strcmp(name, names[i])) return 1 << i;
    return 0;
}

/* The types "type" allows (T_ALL when absent); -1 on a bad value. */
int js_type_mask(smoe_jsg *b, const json_t *s) {
    const json_t *t = json_object_get(s, "type");
    if (!t) return T_ALL;
    if (json_is_string(t)) {
        int bit = type_bit(json_string_value(t));
        if (!bit) return js_where_err(b, "unknown type '%s'", json_string_value(t));
        return bit;
    }
    if (!json_is_array(t)) return js_where_err(b, "'type' must be a string or an array of strings");
    int m = 0;
    size_t i;
    json_t *e;
    json_array_foreach(t, i, e) {
        if (!json_is_string(e)) return js_where_err(b, "'type' must be a string or an array of strings");
        int bit = type_bit(json_string_value(e));
        if (!bit) return js_where_err(b, "unknown type '%s'", json_string_value(e));
        m |= bit;
    }
    if (!m) return js_where_err(b, "'type' is an empty list: no value can match");
    return m;
}

/* ---------------------------------------------------------------------------
 * Local $ref resolution
 * ------------------------------------------------------------------------- */

/* Resolve a local reference "#" or "#/a/b" against the current root. */
const json_t *js_resolve_ref(smoe_jsg *b, const char *ref) {
    if (ref[0] != '#') {
        js_where_err(b, "$ref '%.200s': only local references (\"#\", \"#/$defs/...\") are supported", ref);
        return NULL;
    }
    const json_t *cur = b->root;
    const char *p = ref + 1;
    if (*p && *p != '/') {
        js_where_err(b, "$ref '%.200s': anchors are not supported, only JSON pointers (\"#/$defs/name\")", ref);
        return NULL;
    }
    while (*p == '/') {
        p++;
        char seg[512];
        size_t n = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '~' && (*p == '0' || *p == '1')) c = *p++ == '0' ? '~' : '/';
            else if (c == '%' && isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1])) {
                char hx[3] = {p[0], p[1], 0};
                c = (char)strtol(hx, NULL, 16);
                p += 2;
            }
            if (n + 1 < sizeof seg) seg[n++] = c;
        }
        seg[n] = 0;
        if (json_is_object(cur)) cur = json_object_get(cur, seg);
        else if (json_is_array(cur)) {
            char *end;
            long i = strtol(seg, &end, 10);
            cur = (*end || n == 0 || i < 0) ? NULL : json_array_get(cur, (size_t)i);
        } else cur = NULL;
        if (!cur) {
            js_where_err(b, "$ref '%.200s' points to nothing", ref);
            return NULL;
        }
    }
    return cur;
}
