/* json_schema_gen.c - one subschema to one grammar rule: the keywords
 * allowed, enum/const literals, strings (lengths, pattern, format), local
 * $ref, and the dispatch by keyword (anyOf/oneOf, allOf, enum) and by type
 * to the number, object and array files. */
#include "json_schema_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "../json/pyjson.h"

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

static bool value_has_type(const json_t *v, int mask) {
    switch (json_typeof(v)) {
    case JSON_NULL: return mask & T_NULL;
    case JSON_TRUE: case JSON_FALSE: return mask & T_BOOL;
    case JSON_OBJECT: return mask & T_OBJECT;
    case JSON_ARRAY: return mask & T_ARRAY;
    case JSON_STRING: return mask & T_STRING;
    case JSON_INTEGER: return mask & (T_NUMBER | T_INTEGER);
    case JSON_REAL: {
        double d = json_real_value(v);
        return (mask & T_NUMBER) || ((mask & T_INTEGER) && d == floor(d) && isfinite(d));
    }
    }
    return false;
}

/* ---------------------------------------------------------------------------
 * Literals
 * ------------------------------------------------------------------------- */

/* The canonical JSON encoding of a string (with its quotes) into o. */
void js_encode_string(gr_buf *o, const char *s, size_t n) {
    gb_put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        char e[8];
        const char *put = NULL;
        switch (c) {
        case '"': put = "\\\""; break;
        case '\\': put = "\\\\"; break;
        case '\b': put = "\\b"; break;
        case '\t': put = "\\t"; break;
        case '\n': put = "\\n"; break;
        case '\f': put = "\\f"; break;
        case '\r': put = "\\r"; break;
        default:
            if (c < 0x20) { snprintf(e, sizeof e, "\\u%04x", c); put = e; }
        }
        if (put) gb_puts(o, put);
        else gb_put(o, &s[i], 1);
    }
    gb_put(o, "\"", 1);
}

/* A grammar expression matching exactly the JSON value v. */
static int emit_value(smoe_jsg *b, gr_buf *o, const json_t *v, int depth) {
    if (depth > JS_MAX_DEPTH) return js_where_err(b, "an enum/const value nests more than %d levels", JS_MAX_DEPTH);
    gr_buf t = {0};
    char num[64];
    switch (json_typeof(v)) {
    case JSON_NULL: gb_puts(o, "\"null\""); return 0;
    case JSON_TRUE: gb_puts(o, "\"true\""); return 0;
    case JSON_FALSE: gb_puts(o, "\"false\""); return 0;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        gb_lit(o, num, strlen(num));
        return 0;
    case JSON_REAL:
        if (!isfinite(json_real_value(v))) return js_where_err(b, "enum/const value is not a finite number");
        smoe_py_float_repr(json_real_value(v), num);
        gb_lit(o, num, strlen(num));
        return 0;
    case JSON_STRING:
        js_encode_string(&t, json_string_value(v), json_string_length(v));
        if (t.oom) o->oom = true; /* else the value would silently become "" */
        else gb_lit(o, t.p, t.n);
        gb_free(&t);
        return 0;
    case JSON_ARRAY: {
        js_need(b, P_SEP);
        gb_puts(o, "(\"[\"");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            gb_puts(o, i ? " \",\" j-sep " : " ");
            if (emit_value(b, o, e, depth + 1)) return -1;
        }
        gb_puts(o, " \"]\")");
        return 0;
    }
    case JSON_OBJECT: {
        js_need(b, P_SEP);
        gb_puts(o, "(\"{\"");
        const char *k;
        json_t *e;
        int i = 0;
        json_object_foreach((json_t *)v, k, e) {
            gb_puts(o, i++ ? " \",\" j-sep " : " ");
            js_encode_string(&t, k, strlen(k));
            if (t.oom) o->oom = true;
            else gb_lit(o, t.p, t.n);
            t.n = 0;
            gb_puts(o, " \":\" j-sep ");
            if (emit_value(b, o, e, depth + 1)) { gb_free(&t); return -1; }
        }
        gb_free(&t);
        gb_puts(o, " \"}\")");
        return 0;
    }
    }
    return js_where_err(b, "unexpected JSON value");
}

/* ---------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------- */

/* A count keyword (minItems...): -1 absent, else the value. */
int js_count_kw(smoe_jsg *b, const json_t *s, const char *k, int64_t *out) {
    const json_t *v = json_object_get(s, k);
    *out = -1;
    if (!v) return 0;
    double d;
    if (json_is_integer(v)) d = (double)json_integer_value(v);
    else if (json_is_real(v)) d = json_real_value(v);
    else return js_where_err(b, "'%s' must be a non-negative integer", k);
    if (!(d >= 0) || d != floor(d)) return js_where_err(b, "'%s' must be a non-negative integer", k);
    if (d > JS_MAX_COUNT) return js_where_err(b, "'%s' %.0f is above the supported %d", k, d, JS_MAX_COUNT);
    *out = (int64_t)d;
    return 0;
}

static int gen_string(smoe_jsg *b, const json_t *s, gr_buf *o) {
    int64_t mn, mx;
    if (js_count_kw(b, s, "minLength", &mn) || js_count_kw(b, s, "maxLength", &mx)) return -1;
    const json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    if (mn >= 0 && mx >= 0 && mn > mx) return js_where_err(b, "unsatisfiable: minLength %lld is above maxLength %lld", (long long)mn, (long long)mx);
    if ((pat || fmt) && (mn >= 0 || mx >= 0))
        return js_where_err(b, "minLength/maxLength together with %s is not supported", pat ? "pattern" : "format");
    if (pat && fmt) return js_where_err(b, "pattern together with format is not supported");
    if (pat) {
        if (!json_is_string(pat)) return js_where_err(b, "'pattern' must be a string");
        gr_buf t = {0};
        char e[SMOE_ERR_SIZE];
        if (gr_regex_to_grammar(json_string_value(pat), json_string_length(pat), &t, e)) {
            gb_free(&t);
            return js_where_err(b, "%s", e);
        }
        gb_puts(o, "\"\\\"\" ");
        gb_append(o, &t);
        gb_puts(o, " \"\\\"\"");
        gb_free(&t);
        return 0;
    }
    if (fmt) {
        if (!json_is_string(fmt)) return js_where_err(b, "'format' must be a string");
        const char *f = json_string_value(fmt);
        unsigned p = !strcmp(f, "date") ? P_DATE : !strcmp(f, "time") ? P_TIME : !strcmp(f, "date-time") ? P_DATETIME
                   : !strcmp(f, "uuid") ? P_UUID : !strcmp(f, "email") ? P_EMAIL : 0;
        if (!p) return js_where_err(b, "unsupported format '%s' (supported: date, time, date-time, uuid, email)", f);
        js_need(b, p);
        gb_printf(o, "\"\\\"\" j-%s \"\\\"\"", f);
        return 0;
    }
    js_need(b, P_CHAR);
    if (mn < 0 && mx < 0) gb_puts(o, "\"\\\"\" j-char* \"\\\"\"");
    else if (mx < 0) gb_printf(o, "\"\\\"\" j-char{%lld,} \"\\\"\"", (long long)mn);
    else gb_printf(o, "\"\\\"\" j-char{%lld,%lld} \"\\\"\"", (long long)(mn < 0 ? 0 : mn), (long long)mx);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Local $ref
 * ------------------------------------------------------------------------- */

static int gen_named(smoe_jsg *b, const json_t *s, int depth, const char *name);

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

static int ref_rule(smoe_jsg *b, const char *ref, int depth, char *name) {
    for (int i = 0; i < b->n_refs; i++) {
        if (b->refs[i].root == b->root && !strcmp(b->refs[i].ref, ref)) {
            strcpy(name, b->refs[i].name);
            return 0;
        }
    }
    const json_t *target = js_resolve_ref(b, ref);
    if (!target) return -1;
    if (b->n_refs == b->cap_refs) {
        int cap = b->cap_refs ? b->cap_refs * 2 : 16;
        jref *nr = realloc(b->refs, (size_t)cap * sizeof *nr);
        if (!nr) return smoe_errf(b->err, "out of memory");
        b->refs = nr;
        b->cap_refs = cap;
    }
    jref *r = &b->refs[b->n_refs];
    r->root = b->root;
    r->ref = strdup(ref);
    if (!r->ref) return smoe_errf(b->err, "out of memory");
    /* the rule exists (by name) before its body is compiled: recursion */
    char saved[sizeof b->path];
    strcpy(saved, b->path);
    snprintf(b->path, sizeof b->path, "%s", ref + 1);
    js_new_name(b, r->name);
    b->n_refs++;
    strcpy(name, r->name);
    char own[NAME_LEN];
    strcpy(own, name);
    int rc = gen_named(b, target, depth + 1, own);
    strcpy(b->path, saved);
    return rc;
}

/* ---------------------------------------------------------------------------
 * One schema
 * ------------------------------------------------------------------------- */

void js_add_rule(smoe_jsg *b, const char *name, const gr_buf *body) {
    gb_puts(&b->rules, name);
    gb_puts(&b->rules, " ::= ");
    gb_put(&b->rules, body->p ? body->p : "\"\"", body->p ? body->n : 2);
    gb_puts(&b->rules, "\n");
    if (body->oom) b->rules.oom = true;
}

static int gen_types(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
    int mask = js_type_mask(b, s);
    if (mask < 0) return -1;
    if (!json_object_get(s, "type")) {
        /* infer from the keywords present */
        static const char *const kobj[] = {"properties", "required", "additionalProperties", NULL};
        static const char *const karr[] = {"items", "prefixItems", "minItems", "maxItems", NULL};
        static const char *const kstr[] = {"minLength", "maxLength", "pattern", "format", NULL};
        static const char *const knum[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
        int inferred = 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)s, k, v) {
            (void)v;
            if (js_in_list(k, kobj)) inferred |= T_OBJECT;
            if (js_in_list(k, karr)) inferred |= T_ARRAY;
            if (js_in_list(k, kstr)) inferred |= T_STRING;
            if (js_in_list(k, knum)) inferred |= T_NUMBER;
        }
        if (!inferred) {
            js_need(b, P_VALUE);
            gb_puts(o, "j-value");
            return 0;
        }
        mask = inferred;
    }
    if (mask & T_NUMBER) mask &= ~T_INTEGER;
    int alts = 0;
    gb_puts(o, "(");
    for (int bit = 1; bit <= T_INTEGER; bit <<= 1) {
        if (!(mask & bit)) continue;
        if (alts++) gb_puts(o, " | ");
        int rc = 0;
        switch (bit) {
        case T_NULL: gb_puts(o, "\"null\""); break;
        case T_BOOL: gb_puts(o, "\"true\" | \"false\""); break;
        case T_OBJECT: rc = js_gen_object(b, s, depth, o); break;
        case T_ARRAY: rc = js_gen_array(b, s, depth, o); break;
        case T_STRING: rc = gen_string(b, s, o); break;
        case T_NUMBER: rc = js_gen_number(b, s, o); break;
        case T_INTEGER: rc = js_gen_integer(b, s, o); break;
        }
        if (rc) return -1;
    }
    gb_puts(o, ")");
    return 0;
}

static int gen_body(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
    if (depth > JS_MAX_DEPTH) return js_where_err(b, "the schema nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s)) { js_need(b, P_VALUE); gb_puts(o, "j-value"); return 0; }
    if (json_is_false(s)) return js_where_err(b, "unsatisfiable: the schema is false");
    if (!json_is_object(s)) return js_where_err(b, "a schema must be an object or a boolean");
    if (js_check_keywords(b, s)) return -1;
    const json_t *ref = json_object_get(s, "$ref"), *all = json_object_get(s, "allOf");
    const json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
    char nm[NAME_LEN];
    if (ref && !json_is_string(ref)) return js_where_err(b, "'$ref' must be a string");
    if (ref && !js_other_validation(s, (const char *const[]){"$ref", NULL})) {
        if (ref_rule(b, json_string_value(ref), depth, nm)) return -1;
        gb_puts(o, nm);
        return 0;
    }
    if (ref || all) {
        json_t *merged;
        if (js_merge_list(b, &s, 1, depth, &merged)) return -1;
        return gen_body(b, merged, depth + 1, o);
    }
    if (any && one) return js_where_err(b, "anyOf together with oneOf is not supported");
    if (any || one) {
        const json_t *list = any ? any : one;
        const char *kw = any ? "anyOf" : "oneOf";
        if (!json_is_array(list) || json_array_size(list) == 0) return js_where_err(b, "'%s' must be a non-empty array", kw);
        static const char *const drop[] = {"anyOf", "oneOf", NULL};
        json_t *siblings = js_keep(b, js_without(s, drop));
        bool has_siblings = js_other_validation(siblings, (const char *const[]){NULL}) != NULL;
        gb_puts(o, "(");
        size_t i;
        json_t *e;
        int alts = 0;
        json_array_foreach(list, i, e) {
            size_t mark = js_path_push_i(b, kw, i);
            const json_t *branch = e;
            int rc = 0;
            if (json_is_false(e)) { js_path_pop(b, mark); continue; } /* never matches */
            if (has_siblings) {
                const json_t *pair[2] = {siblings, e};
                json_t *merged;
                rc = js_merge_list(b, pair, 2, depth, &merged);
                branch = merged;
            }
            if (!rc) rc = js_gen(b, branch, depth + 1, nm);
            js_path_pop(b, mark);
            if (rc) return -1;
            if (alts++) gb_puts(o, " | ");
            gb_puts(o, nm);
        }
        gb_puts(o, ")");
        if (!alts) return js_where_err(b, "unsatisfiable: every %s branch is false", kw);
        return 0;
    }
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (en || cn) {
        const char *other = js_other_validation(s, (const char *const[]){"enum", "const", "type", NULL});
        if (other) return js_where_err(b, "%s together with '%s' is not supported", en ? "enum" : "const", other);
        if (en && (!json_is_array(en))) return js_where_err(b, "'enum' must be an array");
        int mask = js_type_mask(b, s);
        if (mask < 0) return -1;
        int alts = 0;
        gb_puts(o, "(");
        size_t n = en ? json_array_size(en) : 1;
        for (size_t i = 0; i < n; i++) {
            const json_t *v = en ? json_array_get(en, i) : cn;
            if (!value_has_type(v, mask)) continue;
            if (cn && en && !json_equal((json_t *)v, (json_t *)cn)) continue;
            if (alts++) gb_puts(o, " | ");
            if (emit_value(b, o, v, 0)) return -1;
        }
        gb_puts(o, ")");
        if (!alts) return js_where_err(b, "unsatisfiable: %s", en && json_array_size(en) == 0 ? "enum is empty"
                                                               : "no enum/const value has an allowed type");
        return 0;
    }
    return gen_types(b, s, depth, o);
}

static int gen_named(smoe_jsg *b, const json_t *s, int depth, const char *name) {
    gr_buf body = {0};
    int rc = gen_body(b, s, depth, &body);
    if (rc == 0) js_add_rule(b, name, &body);
    gb_free(&body);
    return rc;
}

/* A rule for s; name gets its name. */
int js_gen(smoe_jsg *b, const json_t *s, int depth, char *name) {
    if (depth > JS_MAX_DEPTH) return js_where_err(b, "the schema nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        js_need(b, P_VALUE);
        strcpy(name, "j-value");
        return 0;
    }
    js_new_name(b, name);
    return gen_named(b, s, depth, name);
}
