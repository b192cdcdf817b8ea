/* json_schema_api.c - the public API of json_schema.h: the builder's
 * life, whole documents ("root" with its optional leading space), and
 * compiling the grammar text (errors traced back to the subschema). */
#include "json_schema_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/common.h"

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
    smoe_buf_free(&b->rules);
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
    smoe_buf_adds(&b->rules, rules);
    smoe_buf_adds(&b->rules, "\n");
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
    double t0 = smoe_now_ms();
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
    if (g) g->compile_ms = smoe_now_ms() - t0;
    free(text);
    smoe_jsg_free(b);
    return g;
}
