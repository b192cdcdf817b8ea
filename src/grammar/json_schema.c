/* json_schema.c - JSON Schema (jansson value) to grammar text: the builder
 * (errors that name the subschema, rule names), the shared rules "j-..."
 * emitted once, and the public API (json_schema.h).  The supported subset,
 * whitespace policy and formats are documented in json_schema.h.  Every
 * subschema becomes a rule "sN" (json_schema_gen.c and the files it calls
 * per type). */
#define _GNU_SOURCE
#include "json_schema_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common.h"

/* ---------------------------------------------------------------------------
 * Builder
 * ------------------------------------------------------------------------- */

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

/* ---------------------------------------------------------------------------
 * Shared rules
 * ------------------------------------------------------------------------- */

void js_need(smoe_jsg *b, unsigned p) {
    if (b->prims & p) return;
    b->prims |= p;
    gr_buf *o = &b->rules;
    switch (p) {
    case P_SEP:
        gb_puts(o, b->o.compact ? "j-sep ::= \"\"\n" : "j-sep ::= \" \"?\n");
        break;
    case P_VALUE:
        js_need(b, P_OBJECT); js_need(b, P_ARRAY); js_need(b, P_STRING); js_need(b, P_NUMBER);
        gb_puts(o, "j-value ::= j-object | j-array | j-string | j-number | \"true\" | \"false\" | \"null\"\n");
        break;
    case P_OBJECT:
        js_need(b, P_VALUE); js_need(b, P_STRING); js_need(b, P_SEP);
        gb_puts(o, "j-object ::= \"{\" (j-string \":\" j-sep j-value (\",\" j-sep j-string \":\" j-sep j-value)*)? \"}\"\n");
        break;
    case P_ARRAY:
        js_need(b, P_VALUE); js_need(b, P_SEP);
        gb_puts(o, "j-array ::= \"[\" (j-value (\",\" j-sep j-value)*)? \"]\"\n");
        break;
    case P_STRING:
        js_need(b, P_CHAR);
        gb_puts(o, "j-string ::= \"\\\"\" j-char* \"\\\"\"\n");
        break;
    case P_CHAR:
        /* any character, any escape; \u surrogates only as a valid pair */
        gb_puts(o, "j-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" j-u4)\n"
                   "j-u4 ::= [0-9a-cA-Ce-fE-F] j-hex j-hex j-hex | [dD] [0-7] j-hex j-hex"
                   " | [dD] [89abAB] j-hex j-hex \"\\\\u\" [dD] [c-fC-F] j-hex j-hex\n"
                   "j-hex ::= [0-9a-fA-F]\n");
        break;
    case P_KCHAR: {
        /* a character in its canonical encoding: raw, or j-kesc */
        uint32_t raw[8] = {0x20, 0x21, 0x23, 0x5B, 0x5D, 0xD7FF, 0xE000, 0x10FFFF};
        js_need(b, P_KESC);
        gb_puts(o, "j-kchar ::= ");
        gr_emit_json_charset(o, raw, 4);
        gb_puts(o, " | j-kesc\n");
        break;
    }
    case P_KESC: {
        uint32_t spec[6] = {0x00, 0x1F, 0x22, 0x22, 0x5C, 0x5C};
        gb_puts(o, "j-kesc ::= ");
        gr_emit_json_charset(o, spec, 3);
        gb_puts(o, "\n");
        break;
    }
    case P_NUMBER:
        /* at most 18 integer digits and a 2-digit exponent: every JSON
         * parser reads such a number (jansson refuses integers beyond 64
         * bits and reals beyond the double range) */
        gb_puts(o, "j-number ::= \"-\"? j-uint (\".\" [0-9]+)? ([eE] [-+]? [0-9]{1,2})?\n");
        js_need(b, P_INTEGER);
        break;
    case P_INTEGER:
        gb_puts(o, "j-uint ::= \"0\" | [1-9] [0-9]{0,17}\n"
                   "j-integer ::= \"-\"? j-uint\n");
        break;
    case P_FRAC:
        gb_puts(o, "j-frac-any ::= (\".\" [0-9]+)?\n"
                   "j-frac-zero ::= (\".\" \"0\"+)?\n"
                   "j-frac-nonzero ::= \".\" [0-9]* [1-9] [0-9]*\n");
        break;
    case P_DATE:
        gb_puts(o, "j-date ::= j-year \"-\" ((\"01\" | \"03\" | \"05\" | \"07\" | \"08\" | \"10\" | \"12\") \"-\" j-d31"
                   " | (\"04\" | \"06\" | \"09\" | \"11\") \"-\" j-d30 | \"02-\" j-d28) | j-leap \"-02-29\"\n"
                   "j-d28 ::= \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]\n"
                   "j-d30 ::= j-d28 | \"29\" | \"30\"\n"
                   "j-d31 ::= j-d30 | \"31\"\n"
                   "j-year ::= [0-9] [0-9] [0-9] [1-9] | [0-9] [0-9] [1-9] \"0\" | [0-9] [1-9] \"00\" | [1-9] \"000\"\n"
                   "j-leap ::= [0-9] [0-9] j-leap4 | j-leap4 \"00\"\n"
                   "j-leap4 ::= \"0\" [48] | [2468] [048] | [13579] [26]\n");
        break;
    case P_TIME:
        gb_puts(o, "j-time ::= ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})?"
                   " (\"Z\" | [-+] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])\n");
        break;
    case P_DATETIME:
        js_need(b, P_DATE); js_need(b, P_TIME);
        gb_puts(o, "j-date-time ::= j-date \"T\" j-time\n");
        break;
    case P_UUID:
        gb_puts(o, "j-uuid ::= j-hx{8} \"-\" j-hx{4} \"-\" j-hx{4} \"-\" j-hx{4} \"-\" j-hx{12}\n"
                   "j-hx ::= [0-9a-fA-F]\n");
        break;
    case P_EMAIL:
        gb_puts(o, "j-email ::= j-atom (\".\" j-atom)* \"@\" j-label (\".\" j-label)+\n"
                   "j-atom ::= [A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-]+\n"
                   "j-label ::= [A-Za-z0-9] ([A-Za-z0-9\\-]* [A-Za-z0-9])?\n");
        break;
    }
}

/* ---------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------- */

smoe_jsg *smoe_jsg_new(const smoe_json_schema_opts *o, char *err) {
    smoe_jsg *b = calloc(1, sizeof *b);
    if (!b || !(b->owned = json_array())) {
        free(b);
        smoe_errf(err, "out of memory");
        return NULL;
    }
    if (o) b->o = *o;
    return b;
}

void smoe_jsg_free(smoe_jsg *b) {
    if (!b) return;
    gb_free(&b->rules);
    for (int i = 0; i < b->n_refs; i++) free(b->refs[i].ref);
    free(b->refs);
    json_decref(b->owned);
    for (int i = 0; i < b->cap_paths; i++) free(b->rule_paths[i]);
    free(b->rule_paths);
    for (int i = 0; i < b->n_names; i++) free(b->names[i]);
    free(b->names);
    free(b);
}

static const char *keep_name(smoe_jsg *b, const char *name) {
    char **nn = realloc(b->names, (size_t)(b->n_names + 1) * sizeof *nn);
    if (!nn) return NULL;
    b->names = nn;
    if (!(nn[b->n_names] = strdup(name))) return NULL;
    return nn[b->n_names++];
}

const char *smoe_jsg_add_schema(smoe_jsg *b, const json_t *schema, char *err) {
    b->err = err;
    b->root = schema;
    b->path[0] = 0;
    char name[NAME_LEN];
    if (js_gen(b, schema, 0, name)) return NULL;
    if (b->rules.oom) { smoe_errf(err, "out of memory"); return NULL; }
    const char *n = keep_name(b, name);
    if (!n) smoe_errf(err, "out of memory");
    return n;
}

void smoe_jsg_set_strict(smoe_jsg *b, bool strict) { b->o.strict = strict; }

const char *smoe_jsg_any_value(smoe_jsg *b) { js_need(b, P_VALUE); return "j-value"; }
const char *smoe_jsg_any_object(smoe_jsg *b) { js_need(b, P_OBJECT); return "j-object"; }
const char *smoe_jsg_any_string(smoe_jsg *b) { js_need(b, P_STRING); return "j-string"; }
const char *smoe_jsg_sep(smoe_jsg *b) { js_need(b, P_SEP); return "j-sep"; }

int smoe_jsg_add_text(smoe_jsg *b, const char *rules, char *err) {
    gb_puts(&b->rules, rules);
    gb_puts(&b->rules, "\n");
    return b->rules.oom ? smoe_errf(err, "out of memory") : 0;
}

char *smoe_jsg_text(smoe_jsg *b, char *err) {
    if (b->rules.oom) { smoe_errf(err, "out of memory"); return NULL; }
    char *t = strdup(b->rules.p ? b->rules.p : "");
    if (!t) smoe_errf(err, "out of memory");
    return t;
}

static char *schema_text(const json_t *schema, const smoe_json_schema_opts *o, bool any_object, smoe_jsg **bp, char *err) {
    smoe_jsg *b = smoe_jsg_new(o, err);
    if (!b) return NULL;
    *bp = b;
    const char *name = any_object ? smoe_jsg_any_object(b) : smoe_jsg_add_schema(b, schema, err);
    if (!name) return NULL;
    char root[128];
    snprintf(root, sizeof root, "root ::= %s%s", b->o.no_leading_space ? "" : "\" \"? ", name);
    if (smoe_jsg_add_text(b, root, err)) return NULL;
    return smoe_jsg_text(b, err);
}

char *smoe_json_schema_to_grammar(const json_t *schema, const smoe_json_schema_opts *o, char *err) {
    smoe_jsg *b = NULL;
    char *t = schema_text(schema, o, false, &b, err);
    smoe_jsg_free(b);
    return t;
}

char *smoe_json_object_grammar(const smoe_json_schema_opts *o, char *err) {
    smoe_jsg *b = NULL;
    char *t = schema_text(NULL, o, true, &b, err);
    smoe_jsg_free(b);
    return t;
}

smoe_grammar *smoe_json_schema_compile(const json_t *schema, const smoe_json_schema_opts *o, char *err) {
    smoe_jsg *b = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *text = schema_text(schema, o, schema == NULL, &b, err);
    smoe_grammar *g = NULL;
    if (text) {
        char gerr[SMOE_ERR_SIZE];
        g = smoe_grammar_new(text, strlen(text), gerr);
        if (!g) {
            /* name the subschema behind a rule the grammar checks refused */
            const char *p = strstr(gerr, "rule 's");
            int id = p ? atoi(p + 7) : 0;
            if (strstr(gerr, "never finish") || strstr(gerr, "no finite document")) {
                if (id > 0 && id < b->cap_paths && b->rule_paths[id])
                    smoe_errf(err, "schema at %.300s: unsatisfiable: no finite value matches (a required recursion never ends)",
                              b->rule_paths[id]);
                else smoe_errf(err, "schema: unsatisfiable: no finite value matches (a required recursion never ends)");
            } else {
                smoe_errf(err, "schema: %s", gerr);
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (g) g->compile_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    free(text);
    smoe_jsg_free(b);
    return g;
}
