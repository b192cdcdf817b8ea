/* json_schema_string.c - literal values (enum, const) in their canonical
 * JSON spelling, and "string" schemas: minLength/maxLength, pattern,
 * format. */
#include "json_schema_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../base/common.h"
#include "../json/pyjson.h"

/* ---------------------------------------------------------------------------
 * Literals
 * ------------------------------------------------------------------------- */

/* The canonical JSON encoding of a string (with its quotes) into o. */
void js_encode_string(smoe_buf *o, const char *s, size_t n) {
    smoe_buf_add(o, "\"", 1);
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
        if (put) smoe_buf_adds(o, put);
        else smoe_buf_add(o, &s[i], 1);
    }
    smoe_buf_add(o, "\"", 1);
}

/* A grammar expression matching exactly the JSON value v. */
int js_emit_value(smoe_jsg *b, smoe_buf *o, const json_t *v, int depth) {
    if (depth > JS_MAX_DEPTH) return js_where_err(b, "an enum/const value nests more than %d levels", JS_MAX_DEPTH);
    smoe_buf t = {0};
    char num[64];
    switch (json_typeof(v)) {
    case JSON_NULL: smoe_buf_adds(o, "\"null\""); return 0;
    case JSON_TRUE: smoe_buf_adds(o, "\"true\""); return 0;
    case JSON_FALSE: smoe_buf_adds(o, "\"false\""); return 0;
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
        smoe_buf_free(&t);
        return 0;
    case JSON_ARRAY: {
        js_need(b, P_SEP);
        smoe_buf_adds(o, "(\"[\"");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            smoe_buf_adds(o, i ? " \",\" j-sep " : " ");
            if (js_emit_value(b, o, e, depth + 1)) return -1;
        }
        smoe_buf_adds(o, " \"]\")");
        return 0;
    }
    case JSON_OBJECT: {
        js_need(b, P_SEP);
        smoe_buf_adds(o, "(\"{\"");
        const char *k;
        json_t *e;
        int i = 0;
        json_object_foreach((json_t *)v, k, e) {
            smoe_buf_adds(o, i++ ? " \",\" j-sep " : " ");
            js_encode_string(&t, k, strlen(k));
            if (t.oom) o->oom = true;
            else gb_lit(o, t.p, t.n);
            t.n = 0;
            smoe_buf_adds(o, " \":\" j-sep ");
            if (js_emit_value(b, o, e, depth + 1)) { smoe_buf_free(&t); return -1; }
        }
        smoe_buf_free(&t);
        smoe_buf_adds(o, " \"}\")");
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

int js_gen_string(smoe_jsg *b, const json_t *s, smoe_buf *o) {
    int64_t mn, mx;
    if (js_count_kw(b, s, "minLength", &mn) || js_count_kw(b, s, "maxLength", &mx)) return -1;
    const json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    if (mn >= 0 && mx >= 0 && mn > mx) return js_where_err(b, "unsatisfiable: minLength %lld is above maxLength %lld", (long long)mn, (long long)mx);
    if ((pat || fmt) && (mn >= 0 || mx >= 0))
        return js_where_err(b, "minLength/maxLength together with %s is not supported", pat ? "pattern" : "format");
    if (pat && fmt) return js_where_err(b, "pattern together with format is not supported");
    if (pat) {
        if (!json_is_string(pat)) return js_where_err(b, "'pattern' must be a string");
        smoe_buf t = {0};
        char e[SMOE_ERR_SIZE];
        if (gr_regex_to_grammar(json_string_value(pat), json_string_length(pat), &t, e)) {
            smoe_buf_free(&t);
            return js_where_err(b, "%s", e);
        }
        smoe_buf_adds(o, "\"\\\"\" ");
        smoe_buf_append(o, &t);
        smoe_buf_adds(o, " \"\\\"\"");
        smoe_buf_free(&t);
        return 0;
    }
    if (fmt) {
        if (!json_is_string(fmt)) return js_where_err(b, "'format' must be a string");
        const char *f = json_string_value(fmt);
        unsigned p = !strcmp(f, "date") ? P_DATE : !strcmp(f, "time") ? P_TIME : !strcmp(f, "date-time") ? P_DATETIME
                   : !strcmp(f, "uuid") ? P_UUID : !strcmp(f, "email") ? P_EMAIL : 0;
        if (!p) return js_where_err(b, "unsupported format '%s' (supported: date, time, date-time, uuid, email)", f);
        js_need(b, p);
        smoe_buf_addf(o, "\"\\\"\" j-%s \"\\\"\"", f);
        return 0;
    }
    js_need(b, P_CHAR);
    if (mn < 0 && mx < 0) smoe_buf_adds(o, "\"\\\"\" j-char* \"\\\"\"");
    else if (mx < 0) smoe_buf_addf(o, "\"\\\"\" j-char{%lld,} \"\\\"\"", (long long)mn);
    else smoe_buf_addf(o, "\"\\\"\" j-char{%lld,%lld} \"\\\"\"", (long long)(mn < 0 ? 0 : mn), (long long)mx);
    return 0;
}
