/* json_schema.c - JSON Schema (jansson value) to grammar text; the
 * supported subset, whitespace policy and formats are documented in
 * json_schema.h.  Every subschema becomes a rule "sN"; shared pieces
 * (strings, numbers, any value, formats) are rules "j-..." emitted once. */
#define _GNU_SOURCE
#include "json_schema.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../json/pyjson.h"
#include "../common.h"
#include "gint.h"

#define JS_MAX_DEPTH 64
#define JS_MAX_COUNT 100000    /* minItems, maxItems, minLength, maxLength */
#define NAME_LEN 24

/* ---------------------------------------------------------------------------
 * Builder
 * ------------------------------------------------------------------------- */

enum {
    P_SEP = 1 << 0, P_VALUE = 1 << 1, P_OBJECT = 1 << 2, P_ARRAY = 1 << 3, P_STRING = 1 << 4, P_CHAR = 1 << 5,
    P_NUMBER = 1 << 6, P_INTEGER = 1 << 7, P_KCHAR = 1 << 8, P_DATE = 1 << 9, P_TIME = 1 << 10,
    P_DATETIME = 1 << 11, P_UUID = 1 << 12, P_EMAIL = 1 << 13, P_FRAC = 1 << 14, P_KESC = 1 << 15,
};

typedef struct jref {
    const json_t *root;
    char *ref;
    char name[NAME_LEN];
} jref;

struct smoe_jsg {
    smoe_json_schema_opts o;
    gr_buf rules;
    unsigned prims;
    int counter;
    jref *refs;
    int n_refs, cap_refs;
    json_t *owned;           /* merged schemas, kept alive until the end */
    const json_t *root;      /* the schema being added, for $ref */
    char path[2048];         /* JSON pointer of the subschema being compiled */
    char **rule_paths;       /* rule_paths[N] = path of rule sN */
    int cap_paths;
    char **names;            /* names returned to the caller */
    int n_names;
    char *err;
};

static int where_err(smoe_jsg *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int where_err(smoe_jsg *b, const char *fmt, ...) {
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

static size_t path_push(smoe_jsg *b, const char *seg) {
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
static size_t path_push_i(smoe_jsg *b, const char *seg, size_t i) {
    char t[64];
    size_t n = path_push(b, seg);
    snprintf(t, sizeof t, "%zu", i);
    path_push(b, t);
    return n;
}
static void path_pop(smoe_jsg *b, size_t n) { b->path[n] = 0; }

static void new_name(smoe_jsg *b, char *name) {
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

static void need(smoe_jsg *b, unsigned p) {
    if (b->prims & p) return;
    b->prims |= p;
    gr_buf *o = &b->rules;
    switch (p) {
    case P_SEP:
        gb_puts(o, b->o.compact ? "j-sep ::= \"\"\n" : "j-sep ::= \" \"?\n");
        break;
    case P_VALUE:
        need(b, P_OBJECT); need(b, P_ARRAY); need(b, P_STRING); need(b, P_NUMBER);
        gb_puts(o, "j-value ::= j-object | j-array | j-string | j-number | \"true\" | \"false\" | \"null\"\n");
        break;
    case P_OBJECT:
        need(b, P_VALUE); need(b, P_STRING); need(b, P_SEP);
        gb_puts(o, "j-object ::= \"{\" (j-string \":\" j-sep j-value (\",\" j-sep j-string \":\" j-sep j-value)*)? \"}\"\n");
        break;
    case P_ARRAY:
        need(b, P_VALUE); need(b, P_SEP);
        gb_puts(o, "j-array ::= \"[\" (j-value (\",\" j-sep j-value)*)? \"]\"\n");
        break;
    case P_STRING:
        need(b, P_CHAR);
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
        need(b, P_KESC);
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
        need(b, P_INTEGER);
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
        need(b, P_DATE); need(b, P_TIME);
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
 * Keywords
 * ------------------------------------------------------------------------- */

static const char *const k_annotation[] = {"title", "description", "default", "examples", "$comment", "$schema",
                                           "$id", "$anchor", "deprecated", "readOnly", "writeOnly", NULL};
static const char *const k_container[] = {"$defs", "definitions", NULL};
static const char *const k_validation[] = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
    "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", NULL};

static bool in_list(const char *k, const char *const *list) {
    for (int i = 0; list[i]; i++) if (!strcmp(k, list[i])) return true;
    return false;
}

static int check_keywords(smoe_jsg *b, const json_t *s) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        (void)v;
        if (!in_list(k, k_annotation) && !in_list(k, k_container) && !in_list(k, k_validation))
            return where_err(b, "unsupported keyword '%s'", k);
    }
    return 0;
}

/* Number of validation keywords other than the listed ones. */
static const char *other_validation(const json_t *s, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        (void)v;
        if (in_list(k, k_validation) && !in_list(k, allowed)) return k;
    }
    return NULL;
}

enum { T_NULL = 1, T_BOOL = 2, T_OBJECT = 4, T_ARRAY = 8, T_STRING = 16, T_NUMBER = 32, T_INTEGER = 64, T_ALL = 127 };

static int type_bit(const char *name) {
    static const char *const names[] = {"null", "boolean", "object", "array", "string", "number", "integer"};
    for (int i = 0; i < 7; i++) if (!strcmp(name, names[i])) return 1 << i;
    return 0;
}

/* The types "type" allows (T_ALL when absent); -1 on a bad value. */
static int type_mask(smoe_jsg *b, const json_t *s) {
    const json_t *t = json_object_get(s, "type");
    if (!t) return T_ALL;
    if (json_is_string(t)) {
        int bit = type_bit(json_string_value(t));
        if (!bit) return where_err(b, "unknown type '%s'", json_string_value(t));
        return bit;
    }
    if (!json_is_array(t)) return where_err(b, "'type' must be a string or an array of strings");
    int m = 0;
    size_t i;
    json_t *e;
    json_array_foreach(t, i, e) {
        if (!json_is_string(e)) return where_err(b, "'type' must be a string or an array of strings");
        int bit = type_bit(json_string_value(e));
        if (!bit) return where_err(b, "unknown type '%s'", json_string_value(e));
        m |= bit;
    }
    if (!m) return where_err(b, "'type' is an empty list: no value can match");
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
static void json_encode_string(gr_buf *o, const char *s, size_t n) {
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
    if (depth > JS_MAX_DEPTH) return where_err(b, "an enum/const value nests more than %d levels", JS_MAX_DEPTH);
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
        if (!isfinite(json_real_value(v))) return where_err(b, "enum/const value is not a finite number");
        smoe_py_float_repr(json_real_value(v), num);
        gb_lit(o, num, strlen(num));
        return 0;
    case JSON_STRING:
        json_encode_string(&t, json_string_value(v), json_string_length(v));
        if (t.oom) o->oom = true; /* else the value would silently become "" */
        else gb_lit(o, t.p, t.n);
        gb_free(&t);
        return 0;
    case JSON_ARRAY: {
        need(b, P_SEP);
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
        need(b, P_SEP);
        gb_puts(o, "(\"{\"");
        const char *k;
        json_t *e;
        int i = 0;
        json_object_foreach((json_t *)v, k, e) {
            gb_puts(o, i++ ? " \",\" j-sep " : " ");
            json_encode_string(&t, k, strlen(k));
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
    return where_err(b, "unexpected JSON value");
}

/* ---------------------------------------------------------------------------
 * Numbers
 * ------------------------------------------------------------------------- */

static bool all_char(const char *s, char c) {
    for (; *s; s++) if (*s != c) return false;
    return true;
}

/* x, y: digit strings of the same length n, x <= y; every string of n
 * digits between them (leading zeros allowed below the first position). */
static void same_len(gr_buf *o, const char *x, const char *y, int n) {
    if (n == 1) { gb_printf(o, "[%c-%c]", x[0], y[0]); return; }
    if (x[0] == y[0]) {
        gb_printf(o, "(\"%c\" ", x[0]);
        same_len(o, x + 1, y + 1, n - 1);
        gb_puts(o, ")");
        return;
    }
    char nines[24], zeros[24];
    memset(nines, '9', (size_t)n - 1);
    nines[n - 1] = 0;
    memset(zeros, '0', (size_t)n - 1);
    zeros[n - 1] = 0;
    char lo = x[0], hi = y[0];
    int alts = 0;
    gb_puts(o, "(");
    if (!all_char(x + 1, '0')) {
        gb_printf(o, "\"%c\" ", x[0]);
        same_len(o, x + 1, nines, n - 1);
        lo++;
        alts++;
    }
    if (!all_char(y + 1, '9')) {
        if (alts++) gb_puts(o, " | ");
        gb_printf(o, "\"%c\" ", y[0]);
        same_len(o, zeros, y + 1, n - 1);
        hi--;
    }
    if (lo <= hi) {
        if (alts++) gb_puts(o, " | ");
        gb_printf(o, "[%c-%c] [0-9]{%d}", lo, hi, n - 1);
    }
    gb_puts(o, ")");
}

static int ndigits(uint64_t v) {
    int n = 1;
    while (v >= 10) { v /= 10; n++; }
    return n;
}

static uint64_t pow10u(int n) {
    uint64_t p = 1;
    while (n-- > 0) p *= 10;
    return p;
}

/* Canonical decimals (no leading zeros) of [a, b], b = infinity when inf. */
static void uint_range(gr_buf *o, uint64_t a, uint64_t b, bool inf) {
    int la = ndigits(a), lb = inf ? la : ndigits(b);
    gb_puts(o, "(");
    int alts = 0;
    for (int L = la; L <= lb; L++) {
        uint64_t lo = L == la ? a : pow10u(L - 1);
        uint64_t hi = (!inf && L == lb) ? b : pow10u(L) - 1; /* L <= 19: fits */
        char xs[24], ys[24];
        snprintf(xs, sizeof xs, "%0*llu", L, (unsigned long long)lo);
        snprintf(ys, sizeof ys, "%0*llu", L, (unsigned long long)hi);
        if (alts++) gb_puts(o, " | ");
        same_len(o, xs, ys, L);
    }
    if (inf && la <= 17) { /* open-ended: up to 18 digits, as j-uint */
        if (alts++) gb_puts(o, " | ");
        gb_printf(o, "[1-9] [0-9]{%d,17}", la);
    }
    gb_puts(o, ")");
}

static uint64_t neg_mag(int64_t v) { return (uint64_t)(-(v + 1)) + 1; } /* |v| for v < 0 */

/* Integers in [lo, hi] (either side open when has_* is false). */
static void int_range(gr_buf *o, bool has_lo, int64_t lo, bool has_hi, int64_t hi) {
    gb_puts(o, "(");
    int alts = 0;
    if (!has_lo || lo < 0) {
        int64_t up = has_hi && hi < -1 ? hi : -1;
        if (alts++) gb_puts(o, " | ");
        gb_puts(o, "\"-\" ");
        uint_range(o, neg_mag(up), has_lo ? neg_mag(lo) : 0, !has_lo);
    }
    if (!has_hi || hi >= 0) {
        uint64_t from = has_lo && lo > 0 ? (uint64_t)lo : 0;
        if (alts++) gb_puts(o, " | ");
        uint_range(o, from, has_hi ? (uint64_t)hi : 0, !has_hi);
    }
    gb_puts(o, ")");
}

typedef struct nbound {
    bool has, excl;
    int64_t v;
} nbound;

/* Plain decimals m >= 0 with a <(=) m <(=) b (a, b whole numbers).
 * Returns the number of alternatives written. */
static int magnitude(gr_buf *o, uint64_t a, bool a_excl, bool b_has, uint64_t b, bool b_excl) {
    int alts = 0;
    gb_puts(o, "(");
    /* whole part strictly inside: any fraction */
    uint64_t ilo = a_excl ? a + 1 : a;
    if (!b_has || (b >= 1 && ilo <= b - 1)) {
        alts++;
        uint_range(o, ilo, b_has ? b - 1 : 0, !b_has);
        gb_puts(o, " j-frac-any");
    }
    char num[24];
    if (a_excl && (!b_has || a < b)) {
        if (alts++) gb_puts(o, " | ");
        snprintf(num, sizeof num, "%llu", (unsigned long long)a);
        gb_lit(o, num, strlen(num));
        gb_puts(o, " j-frac-nonzero");
    }
    if (b_has && !b_excl && (b > a || (b == a && !a_excl))) {
        if (alts++) gb_puts(o, " | ");
        snprintf(num, sizeof num, "%llu", (unsigned long long)b);
        gb_lit(o, num, strlen(num));
        gb_puts(o, " j-frac-zero");
    }
    gb_puts(o, ")");
    return alts;
}

static void number_range(smoe_jsg *b, gr_buf *o, nbound lo, nbound hi) {
    need(b, P_FRAC);
    gb_puts(o, "(");
    int alts = 0;
    /* v >= 0 */
    if (!hi.has || hi.v > 0 || (hi.v == 0 && !hi.excl)) {
        bool lo_in = lo.has && lo.v >= 0;
        gr_buf t = {0};
        if (magnitude(&t, lo_in ? (uint64_t)lo.v : 0, lo_in ? lo.excl : false, hi.has, hi.has ? (uint64_t)hi.v : 0,
                      hi.excl)) {
            alts++;
            gb_append(o, &t);
        }
        gb_free(&t);
    }
    /* v < 0: v = -m with m > 0 */
    if (!lo.has || lo.v < 0) {
        bool hi_neg = hi.has && hi.v < 0;
        gr_buf t = {0};
        if (magnitude(&t, hi_neg ? neg_mag(hi.v) : 0, hi_neg ? hi.excl : true, lo.has, lo.has ? neg_mag(lo.v) : 0,
                      lo.excl)) {
            if (alts++) gb_puts(o, " | ");
            gb_puts(o, "\"-\" ");
            gb_append(o, &t);
        }
        gb_free(&t);
    }
    gb_puts(o, ")");
}

/* A numeric keyword: 0 absent, 1 present (value in *d, *whole tells
 * whether it is a whole number and *iv its value when it fits int64). */
static int num_kw(smoe_jsg *b, const json_t *s, const char *k, double *d, bool *whole, int64_t *iv) {
    const json_t *v = json_object_get(s, k);
    if (!v) return 0;
    if (json_is_boolean(v)) return where_err(b, "'%s' must be a number (draft-4 boolean form is not supported)", k);
    if (json_is_integer(v)) {
        *iv = (int64_t)json_integer_value(v);
        *d = (double)*iv;
        *whole = true;
        return 1;
    }
    if (!json_is_real(v)) return where_err(b, "'%s' must be a number", k);
    *d = json_real_value(v);
    if (!isfinite(*d)) return where_err(b, "'%s' must be finite", k);
    *whole = *d == floor(*d);
    if (fabs(*d) >= 9.2e18) return where_err(b, "'%s' %g is too large", k, *d);
    *iv = (int64_t)*d;
    return 1;
}

static int gen_integer(smoe_jsg *b, const json_t *s, gr_buf *o) {
    bool has_lo = false, has_hi = false;
    int64_t lo = 0, hi = 0;
    static const char *const keys[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++) {
        double d;
        bool whole;
        int64_t iv;
        int r = num_kw(b, s, keys[i], &d, &whole, &iv);
        if (r < 0) return -1;
        if (!r) continue;
        int64_t v;
        if (i < 2) { /* lower bound: smallest integer allowed */
            if (i == 0) v = whole ? iv : (int64_t)ceil(d);
            else {
                if (whole && iv == INT64_MAX) return where_err(b, "exclusiveMinimum leaves no integer");
                v = whole ? iv + 1 : (int64_t)ceil(d);
            }
            if (!has_lo || v > lo) lo = v;
            has_lo = true;
        } else {
            if (i == 2) v = whole ? iv : (int64_t)floor(d);
            else {
                if (whole && iv == INT64_MIN) return where_err(b, "exclusiveMaximum leaves no integer");
                v = whole ? iv - 1 : (int64_t)floor(d);
            }
            if (!has_hi || v < hi) hi = v;
            has_hi = true;
        }
    }
    if (has_lo && has_hi && lo > hi)
        return where_err(b, "unsatisfiable: no integer lies between the minimum and the maximum");
    if (!has_lo && !has_hi) {
        need(b, P_INTEGER);
        gb_puts(o, "j-integer");
        return 0;
    }
    int_range(o, has_lo, lo, has_hi, hi);
    return 0;
}

static int gen_number(smoe_jsg *b, const json_t *s, gr_buf *o) {
    nbound lo = {0}, hi = {0};
    static const char *const keys[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++) {
        double d;
        bool whole;
        int64_t iv;
        int r = num_kw(b, s, keys[i], &d, &whole, &iv);
        if (r < 0) return -1;
        if (!r) continue;
        if (!whole)
            return where_err(b, "'%s' %g: bounds of a \"number\" must be whole numbers (bounds of integers may be any number)",
                             keys[i], d);
        bool excl = i == 1 || i == 3;
        if (i < 2) {
            if (!lo.has || iv > lo.v || (iv == lo.v && excl)) lo = (nbound){true, excl, iv};
        } else {
            if (!hi.has || iv < hi.v || (iv == hi.v && excl)) hi = (nbound){true, excl, iv};
        }
    }
    if (lo.has && hi.has && (lo.v > hi.v || (lo.v == hi.v && (lo.excl || hi.excl))))
        return where_err(b, "unsatisfiable: the minimum is above the maximum");
    if (!lo.has && !hi.has) {
        need(b, P_NUMBER);
        gb_puts(o, "j-number");
        return 0;
    }
    number_range(b, o, lo, hi);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------- */

/* A count keyword (minItems...): -1 absent, else the value. */
static int count_kw(smoe_jsg *b, const json_t *s, const char *k, int64_t *out) {
    const json_t *v = json_object_get(s, k);
    *out = -1;
    if (!v) return 0;
    double d;
    if (json_is_integer(v)) d = (double)json_integer_value(v);
    else if (json_is_real(v)) d = json_real_value(v);
    else return where_err(b, "'%s' must be a non-negative integer", k);
    if (!(d >= 0) || d != floor(d)) return where_err(b, "'%s' must be a non-negative integer", k);
    if (d > JS_MAX_COUNT) return where_err(b, "'%s' %.0f is above the supported %d", k, d, JS_MAX_COUNT);
    *out = (int64_t)d;
    return 0;
}

static int gen_string(smoe_jsg *b, const json_t *s, gr_buf *o) {
    int64_t mn, mx;
    if (count_kw(b, s, "minLength", &mn) || count_kw(b, s, "maxLength", &mx)) return -1;
    const json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    if (mn >= 0 && mx >= 0 && mn > mx) return where_err(b, "unsatisfiable: minLength %lld is above maxLength %lld", (long long)mn, (long long)mx);
    if ((pat || fmt) && (mn >= 0 || mx >= 0))
        return where_err(b, "minLength/maxLength together with %s is not supported", pat ? "pattern" : "format");
    if (pat && fmt) return where_err(b, "pattern together with format is not supported");
    if (pat) {
        if (!json_is_string(pat)) return where_err(b, "'pattern' must be a string");
        gr_buf t = {0};
        char e[SMOE_ERR_SIZE];
        if (gr_regex_to_grammar(json_string_value(pat), json_string_length(pat), &t, e)) {
            gb_free(&t);
            return where_err(b, "%s", e);
        }
        gb_puts(o, "\"\\\"\" ");
        gb_append(o, &t);
        gb_puts(o, " \"\\\"\"");
        gb_free(&t);
        return 0;
    }
    if (fmt) {
        if (!json_is_string(fmt)) return where_err(b, "'format' must be a string");
        const char *f = json_string_value(fmt);
        unsigned p = !strcmp(f, "date") ? P_DATE : !strcmp(f, "time") ? P_TIME : !strcmp(f, "date-time") ? P_DATETIME
                   : !strcmp(f, "uuid") ? P_UUID : !strcmp(f, "email") ? P_EMAIL : 0;
        if (!p) return where_err(b, "unsupported format '%s' (supported: date, time, date-time, uuid, email)", f);
        need(b, p);
        gb_printf(o, "\"\\\"\" j-%s \"\\\"\"", f);
        return 0;
    }
    need(b, P_CHAR);
    if (mn < 0 && mx < 0) gb_puts(o, "\"\\\"\" j-char* \"\\\"\"");
    else if (mx < 0) gb_printf(o, "\"\\\"\" j-char{%lld,} \"\\\"\"", (long long)mn);
    else gb_printf(o, "\"\\\"\" j-char{%lld,%lld} \"\\\"\"", (long long)(mn < 0 ? 0 : mn), (long long)mx);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Schemas
 * ------------------------------------------------------------------------- */

static int gen(smoe_jsg *b, const json_t *s, int depth, char *name);
static int gen_named(smoe_jsg *b, const json_t *s, int depth, const char *name);

static void add_rule(smoe_jsg *b, const char *name, const gr_buf *body) {
    gb_puts(&b->rules, name);
    gb_puts(&b->rules, " ::= ");
    gb_put(&b->rules, body->p ? body->p : "\"\"", body->p ? body->n : 2);
    gb_puts(&b->rules, "\n");
    if (body->oom) b->rules.oom = true;
}

/* Resolve a local reference "#" or "#/a/b" against the current root. */
static const json_t *resolve_ref(smoe_jsg *b, const char *ref) {
    if (ref[0] != '#') {
        where_err(b, "$ref '%.200s': only local references (\"#\", \"#/$defs/...\") are supported", ref);
        return NULL;
    }
    const json_t *cur = b->root;
    const char *p = ref + 1;
    if (*p && *p != '/') {
        where_err(b, "$ref '%.200s': anchors are not supported, only JSON pointers (\"#/$defs/name\")", ref);
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
            where_err(b, "$ref '%.200s' points to nothing", ref);
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
    const json_t *target = resolve_ref(b, ref);
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
    new_name(b, r->name);
    b->n_refs++;
    strcpy(name, r->name);
    char own[NAME_LEN];
    strcpy(own, name);
    int rc = gen_named(b, target, depth + 1, own);
    strcpy(b->path, saved);
    return rc;
}

/* --- allOf: merge a list of schemas into one ----------------------------- */

typedef struct mlist {
    const json_t **v;
    int n, cap;
} mlist;

static int ml_push(mlist *l, const json_t *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        const json_t **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

/* s minus some keys (a new object) */
static json_t *without(const json_t *s, const char *const *keys) {
    json_t *c = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) if (!in_list(k, keys)) json_object_set(c, k, v);
    return c;
}

static json_t *keep(smoe_jsg *b, json_t *v) {
    json_array_append_new(b->owned, v);
    return v;
}

/* Flatten s into plain schemas (no allOf, no $ref with siblings). */
static int flatten(smoe_jsg *b, const json_t *s, mlist *out, int depth) {
    if (depth > JS_MAX_DEPTH) return where_err(b, "allOf/$ref nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s)) return 0;
    if (json_is_false(s)) return where_err(b, "unsatisfiable: allOf contains false");
    if (!json_is_object(s)) return where_err(b, "a schema must be an object or a boolean");
    if (check_keywords(b, s)) return -1;
    const json_t *ref = json_object_get(s, "$ref"), *all = json_object_get(s, "allOf");
    if (ref) {
        if (!json_is_string(ref)) return where_err(b, "'$ref' must be a string");
        const json_t *t = resolve_ref(b, json_string_value(ref));
        if (!t || flatten(b, t, out, depth + 1)) return -1;
    }
    if (all) {
        if (!json_is_array(all) || json_array_size(all) == 0) return where_err(b, "'allOf' must be a non-empty array");
        size_t i;
        json_t *e;
        json_array_foreach(all, i, e) {
            size_t mark = path_push_i(b, "allOf", i);
            int rc = flatten(b, e, out, depth + 1);
            path_pop(b, mark);
            if (rc) return -1;
        }
    }
    if (ref || all) {
        static const char *const drop[] = {"$ref", "allOf", NULL};
        json_t *rest = keep(b, without(s, drop));
        if (other_validation(rest, (const char *const[]){NULL}) && ml_push(out, rest)) return smoe_errf(b->err, "out of memory");
        return 0;
    }
    if (ml_push(out, s)) return smoe_errf(b->err, "out of memory");
    return 0;
}

static json_t *all_of(json_t *list) {
    if (json_array_size(list) == 1) {
        json_t *one = json_incref(json_array_get(list, 0));
        json_decref(list);
        return one;
    }
    return json_pack("{s:o}", "allOf", list);
}

static int merge_list(smoe_jsg *b, const json_t *const *items, int n_items, int depth, json_t **out) {
    mlist l = {0};
    json_t *m = json_object(), *props = json_object(); /* props: key -> array of schemas */
    json_t *required = json_array(), *ap_list = json_array(), *items_list = json_array();
    json_t *enums = NULL;
    bool ap_false = false, have_type = false, have_enum = false;
    int types = T_ALL;
    const json_t *prefix = NULL, *anyof = NULL, *pattern = NULL, *format = NULL;
    int rc = -1;
    json_object_set(m, "required", required);
    for (int i = 0; i < n_items; i++)
        if (flatten(b, items[i], &l, depth + 1)) goto done;
    /* every key any branch knows: properties and required */
    for (int i = 0; i < l.n; i++) {
        const json_t *s = l.v[i];
        const json_t *pr = json_object_get(s, "properties"), *rq = json_object_get(s, "required");
        const char *k;
        json_t *v;
        if (pr && !json_is_object(pr)) { where_err(b, "'properties' must be an object"); goto done; }
        if (pr) json_object_foreach((json_t *)pr, k, v) if (!json_object_get(props, k)) json_object_set_new(props, k, json_array());
        if (rq && !json_is_array(rq)) { where_err(b, "'required' must be an array of strings"); goto done; }
        size_t j;
        json_array_foreach(rq, j, v) {
            if (!json_is_string(v)) { where_err(b, "'required' must be an array of strings"); goto done; }
            if (!json_object_get(props, json_string_value(v))) json_object_set_new(props, json_string_value(v), json_array());
        }
    }
    for (int i = 0; i < l.n; i++) {
        const json_t *s = l.v[i];
        const char *k;
        json_t *v;
        const json_t *pr = json_object_get(s, "properties"), *ap = json_object_get(s, "additionalProperties");
        /* properties, and the other branches' keys under this one's additionalProperties */
        json_object_foreach(props, k, v) {
            const json_t *ps = pr ? json_object_get(pr, k) : NULL;
            if (ps) json_array_append(v, (json_t *)ps);
            else if (ap && !json_is_true(ap)) json_array_append(v, (json_t *)ap);
        }
        if (ap) {
            if (json_is_false(ap)) ap_false = true;
            else if (!json_is_true(ap)) json_array_append(ap_list, (json_t *)ap);
        }
        json_object_foreach((json_t *)s, k, v) {
            if (in_list(k, k_annotation) || in_list(k, k_container) || !strcmp(k, "properties") ||
                !strcmp(k, "additionalProperties"))
                continue;
            if (!strcmp(k, "required")) {
                size_t j;
                json_t *e;
                json_array_foreach(v, j, e) {
                    bool dup = false;
                    size_t x;
                    json_t *f;
                    json_array_foreach(required, x, f) dup |= json_equal(e, f);
                    if (!dup) json_array_append(required, e);
                }
            } else if (!strcmp(k, "type")) {
                int t = type_mask(b, s);
                if (t < 0) goto done;
                types &= t | ((t & T_NUMBER) ? T_INTEGER : 0);
                have_type = true;
            } else if (!strcmp(k, "enum") || !strcmp(k, "const")) {
                json_t *vals = !strcmp(k, "const") ? json_pack("[O]", v) : json_incref(v);
                if (!json_is_array(vals)) { json_decref(vals); where_err(b, "'enum' must be an array"); goto done; }
                if (!have_enum) enums = vals;
                else {
                    json_t *keepv = json_array();
                    size_t x, y;
                    json_t *e, *f;
                    json_array_foreach(enums, x, e) {
                        bool found = false;
                        json_array_foreach(vals, y, f) found |= json_equal(e, f);
                        if (found) json_array_append(keepv, e);
                    }
                    json_decref(enums);
                    json_decref(vals);
                    enums = keepv;
                }
                have_enum = true;
            } else if (!strcmp(k, "items")) {
                json_array_append(items_list, v);
            } else if (!strcmp(k, "prefixItems")) {
                if (prefix) { where_err(b, "allOf: two prefixItems cannot be merged"); goto done; }
                prefix = v;
            } else if (!strcmp(k, "anyOf") || !strcmp(k, "oneOf")) {
                if (anyof) { where_err(b, "allOf: more than one anyOf/oneOf cannot be merged"); goto done; }
                anyof = v;
            } else if (!strcmp(k, "pattern") || !strcmp(k, "format")) {
                const json_t **slot = !strcmp(k, "pattern") ? &pattern : &format;
                if (*slot && !json_equal((json_t *)*slot, v)) { where_err(b, "allOf: two different '%s' values cannot be merged", k); goto done; }
                *slot = v;
            } else if (!strncmp(k, "min", 3) || !strncmp(k, "exclusiveMin", 12) || !strncmp(k, "max", 3) ||
                       !strncmp(k, "exclusiveMax", 12)) {
                if (!json_is_number(v)) { where_err(b, "'%s' must be a number", k); goto done; }
                bool lower = !strncmp(k, "min", 3) || !strncmp(k, "exclusiveMin", 12);
                const json_t *cur = json_object_get(m, k);
                if (!cur || (lower ? json_number_value(v) > json_number_value(cur) : json_number_value(v) < json_number_value(cur)))
                    json_object_set(m, k, v);
            } else {
                where_err(b, "allOf: keyword '%s' cannot be merged", k);
                goto done;
            }
        }
    }
    /* properties */
    json_t *mp = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
        if (json_array_size(v) == 0) json_object_set_new(mp, k, json_true());
        else {
            bool is_false = false;
            size_t j;
            json_t *e;
            json_array_foreach(v, j, e) is_false |= json_is_false(e);
            json_object_set_new(mp, k, is_false ? json_false() : all_of(json_incref(v)));
        }
    }
    if (json_object_size(mp)) json_object_set_new(m, "properties", mp);
    else json_decref(mp);
    if (json_array_size(required) == 0) json_object_del(m, "required");
    if (ap_false) json_object_set_new(m, "additionalProperties", json_false());
    else if (json_array_size(ap_list)) json_object_set_new(m, "additionalProperties", all_of(json_incref(ap_list)));
    if (json_array_size(items_list)) {
        bool is_false = false;
        size_t j;
        json_t *e;
        json_array_foreach(items_list, j, e) is_false |= json_is_false(e);
        json_object_set_new(m, "items", is_false ? json_false() : all_of(json_incref(items_list)));
    }
    if (prefix) json_object_set(m, "prefixItems", (json_t *)prefix);
    if (anyof) json_object_set(m, "anyOf", (json_t *)anyof);
    if (pattern) json_object_set(m, "pattern", (json_t *)pattern);
    if (format) json_object_set(m, "format", (json_t *)format);
    if (have_type) {
        if (!types) { where_err(b, "unsatisfiable: allOf requires types that no value has at once"); goto done; }
        static const char *const names[] = {"null", "boolean", "object", "array", "string", "number", "integer"};
        json_t *ta = json_array();
        if (types & T_NUMBER) types &= ~T_INTEGER;
        for (int i = 0; i < 7; i++) if (types & (1 << i)) json_array_append_new(ta, json_string(names[i]));
        json_object_set_new(m, "type", ta);
    }
    if (have_enum) {
        if (json_array_size(enums) == 0) { where_err(b, "unsatisfiable: the enum/const values of allOf have nothing in common"); goto done; }
        json_object_set(m, "enum", enums);
    }
    *out = keep(b, m);
    m = NULL;
    rc = 0;
done:
    json_decref(enums);
    json_decref(m);
    json_decref(props);
    json_decref(required);
    json_decref(ap_list);
    json_decref(items_list);
    free(l.v);
    return rc;
}

/* --- objects ------------------------------------------------------------- */

typedef struct ktrie {
    uint32_t cp;
    int32_t child, sibling;
    bool terminal;
} ktrie;

/* Remove code point cp from the sorted ranges r[0..2n); r has room for
 * one more range.  Returns the new count. */
static size_t cut_point(uint32_t *r, size_t n, uint32_t cp) {
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = r[2 * i], hi = r[2 * i + 1];
        if (cp < lo || cp > hi) continue;
        if (lo == hi) {
            memmove(r + 2 * i, r + 2 * i + 2, (n - i - 1) * 2 * sizeof *r);
            return n - 1;
        }
        if (cp == lo) { r[2 * i] = cp + 1; return n; }
        if (cp == hi) { r[2 * i + 1] = cp - 1; return n; }
        memmove(r + 2 * i + 2, r + 2 * i, (n - i) * 2 * sizeof *r);
        r[2 * i + 1] = cp - 1;
        r[2 * i + 2] = cp + 1;
        return n + 1;
    }
    return n;
}

/* "string that is none of names" for additional property keys */
static int gen_other_key(smoe_jsg *b, const char **names, int n, char *name) {
    ktrie *t = calloc(1, sizeof *t);
    int32_t nt = 1, cap = 1;
    if (!t) return smoe_errf(b->err, "out of memory");
    t[0] = (ktrie){0, -1, -1, false};
    for (int i = 0; i < n; i++) {
        const uint8_t *s = (const uint8_t *)names[i];
        size_t len = strlen(names[i]), pos = 0;
        int32_t cur = 0;
        while (pos < len) {
            uint32_t cp;
            int l = gr_utf8_decode(s + pos, len - pos, &cp);
            if (!l) { free(t); return where_err(b, "property name is not valid UTF-8"); }
            pos += (size_t)l;
            int32_t c = t[cur].child;
            while (c >= 0 && t[c].cp != cp) c = t[c].sibling;
            if (c < 0) {
                if (nt == cap) {
                    cap *= 2;
                    ktrie *ntr = realloc(t, (size_t)cap * sizeof *ntr);
                    if (!ntr) { free(t); return smoe_errf(b->err, "out of memory"); }
                    t = ntr;
                }
                t[nt] = (ktrie){cp, -1, t[cur].child, false};
                t[cur].child = nt;
                c = nt++;
            }
            cur = c;
        }
        t[cur].terminal = true;
    }
    need(b, P_KCHAR);
    int base = b->counter + 1;
    char nm[NAME_LEN];
    for (int32_t i = 0; i < nt; i++) new_name(b, nm); /* names s<base + i> */
    for (int32_t i = 0; i < nt; i++) {
        gr_buf body = {0};
        int alts = 0;
        if (!t[i].terminal) { gb_puts(&body, "\"\\\"\""); alts++; }
        /* any character other than the children's, then anything */
        uint32_t *r = malloc(((size_t)nt + 6) * 2 * sizeof *r);
        size_t nr = 0;
        if (!r) { free(t); gb_free(&body); return smoe_errf(b->err, "out of memory"); }
        /* children code points, sorted */
        uint32_t *cps = malloc(((size_t)nt + 1) * sizeof *cps);
        size_t nc = 0;
        if (!cps) { free(r); free(t); gb_free(&body); return smoe_errf(b->err, "out of memory"); }
        for (int32_t c = t[i].child; c >= 0; c = t[c].sibling) cps[nc++] = t[c].cp;
        for (size_t x = 1; x < nc; x++)
            for (size_t y = x; y > 0 && cps[y - 1] > cps[y]; y--) { uint32_t tmp = cps[y]; cps[y] = cps[y - 1]; cps[y - 1] = tmp; }
        /* other characters: the raw ones not among the children, and the
         * escaped ones (j-kesc) unless a child is one of them */
        bool special_child = false;
        for (size_t x = 0; x < nc; x++) special_child |= cps[x] < 0x20 || cps[x] == 0x22 || cps[x] == 0x5C;
        uint32_t next = 0;
        for (size_t x = 0; x <= nc; x++) {
            uint32_t stop = x < nc ? cps[x] : 0x110000;
            /* [next, stop) minus surrogates (and minus the specials unless
             * they are emitted here one by one) */
            if (stop > next) {
                uint32_t lo = next, hi = stop - 1;
                if (!special_child && lo < 0x20) lo = 0x20;
                if (lo <= hi) {
                    if (hi < 0xD800 || lo > 0xDFFF) { r[2 * nr] = lo; r[2 * nr + 1] = hi; nr++; }
                    else {
                        if (lo < 0xD800) { r[2 * nr] = lo; r[2 * nr + 1] = 0xD7FF; nr++; }
                        if (hi > 0xDFFF) { r[2 * nr] = 0xE000; r[2 * nr + 1] = hi; nr++; }
                    }
                }
            }
            next = stop + 1;
        }
        if (!special_child) { /* '"' and '\\' come from j-kesc */
            nr = cut_point(r, nr, 0x22);
            nr = cut_point(r, nr, 0x5C);
        }
        if (nr) {
            if (alts++) gb_puts(&body, " | ");
            gb_puts(&body, "(");
            gr_emit_json_charset(&body, r, nr);
            if (!special_child) gb_puts(&body, " | j-kesc");
            gb_puts(&body, ") j-kchar* \"\\\"\"");
        }
        for (int32_t c = t[i].child; c >= 0; c = t[c].sibling) {
            uint8_t u[4];
            int ul = gr_utf8_encode(t[c].cp, u);
            gr_buf enc = {0};
            json_encode_string(&enc, (const char *)u, (size_t)ul);
            if (alts++) gb_puts(&body, " | ");
            if (enc.oom) body.oom = true; /* enc.n - 2 would wrap around */
            else gb_lit(&body, enc.p + 1, enc.n - 2); /* without the quotes */
            gb_printf(&body, " s%d", base + c);
            gb_free(&enc);
        }
        free(r);
        free(cps);
        snprintf(nm, sizeof nm, "s%d", base + i);
        add_rule(b, nm, &body);
        gb_free(&body);
    }
    free(t);
    /* the key with its opening quote */
    gr_buf kb = {0};
    gb_printf(&kb, "\"\\\"\" s%d", base);
    new_name(b, name);
    add_rule(b, name, &kb);
    gb_free(&kb);
    return 0;
}

static int gen_object(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    const json_t *ap = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return where_err(b, "'properties' must be an object");
    if (req && !json_is_array(req)) return where_err(b, "'required' must be an array of strings");
    if (ap && !json_is_boolean(ap) && !json_is_object(ap)) return where_err(b, "'additionalProperties' must be a boolean or a schema");
    bool allow_extra = ap ? !json_is_false(ap) : !b->o.strict;
    size_t n_props = props ? json_object_size(props) : 0, n_req = req ? json_array_size(req) : 0;
    /* entries: properties in order, then required names that are not properties */
    size_t cap = n_props + n_req + 1, n = 0;
    const char **keys = malloc(cap * sizeof *keys);
    const json_t **schemas = malloc(cap * sizeof *schemas);
    bool *required = calloc(cap, sizeof *required);
    char (*vnames)[NAME_LEN] = malloc(cap * sizeof *vnames);
    int rc = -1;
    if (!keys || !schemas || !required || !vnames) { smoe_errf(b->err, "out of memory"); goto out; }
    const char *k;
    json_t *v;
    if (props) json_object_foreach((json_t *)props, k, v) { keys[n] = k; schemas[n] = v; n++; }
    size_t i;
    json_array_foreach(req, i, v) {
        if (!json_is_string(v)) { where_err(b, "'required' must be an array of strings"); goto out; }
        const char *name = json_string_value(v);
        size_t j;
        for (j = 0; j < n && strcmp(keys[j], name); j++) {}
        if (j < n) {
            if (required[j]) { where_err(b, "'required' lists '%s' twice", name); goto out; }
            required[j] = true;
            continue;
        }
        if (!allow_extra) {
            where_err(b, "unsatisfiable: required property '%s' is not in properties and additional properties are not allowed%s",
                      name, ap ? "" : " (strict mode)");
            goto out;
        }
        keys[n] = name;
        schemas[n] = ap ? ap : json_true();
        required[n] = true;
        n++;
    }
    /* value rules (false: the property may not appear) */
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        if (json_is_false(schemas[j])) {
            if (required[j]) { where_err(b, "unsatisfiable: required property '%s' has the schema false", keys[j]); goto out; }
            continue;
        }
        size_t mark = path_push(b, j < n_props ? "properties" : "additionalProperties");
        if (j < n_props) path_push(b, keys[j]);
        int r = gen(b, schemas[j], depth + 1, vnames[m]);
        path_pop(b, mark);
        if (r) goto out;
        keys[m] = keys[j];
        required[m] = required[j];
        m++;
    }
    n = m;
    need(b, P_SEP);
    /* additional properties: key rule and value rule */
    char addk[NAME_LEN] = "", addv[NAME_LEN] = "";
    if (allow_extra) {
        if (gen_other_key(b, keys, (int)n, addk)) goto out;
        size_t mark = path_push(b, "additionalProperties");
        int r = gen(b, ap ? ap : json_true(), depth + 1, addv);
        path_pop(b, mark);
        if (r) goto out;
    }
    /* R_i: what follows once something was written (each entry with a
     * leading comma); F_i: nothing written yet.  Rule names base-r<i>, base-f<i>. */
    char base[NAME_LEN];
    new_name(b, base);
    for (size_t j = n + 1; j-- > 0;) {
        gr_buf r = {0}, f = {0};
        gr_buf key = {0}, lit = {0};
        if (j == n) {
            if (allow_extra) {
                gb_printf(&r, "(\",\" j-sep %s \":\" j-sep %s)*", addk, addv);
                gb_printf(&f, "(%s \":\" j-sep %s %s-r%zu)?", addk, addv, base, n);
            } else {
                gb_puts(&r, "\"\"");
                gb_puts(&f, "\"\"");
            }
        } else {
            json_encode_string(&key, keys[j], strlen(keys[j]));
            gb_lit(&lit, key.p, key.n);
            gr_buf kvb = {0};
            gb_put(&kvb, lit.p, lit.n);
            gb_printf(&kvb, " \":\" j-sep %s", vnames[j]);
            if (key.oom || lit.oom || kvb.oom) { /* add_rule passes r's out-of-memory on */
                r.oom = true;
            } else if (required[j]) {
                gb_printf(&r, "\",\" j-sep %s %s-r%zu", kvb.p, base, j + 1);
                gb_printf(&f, "%s %s-r%zu", kvb.p, base, j + 1);
            } else {
                gb_printf(&r, "(\",\" j-sep %s)? %s-r%zu", kvb.p, base, j + 1);
                gb_printf(&f, "%s %s-r%zu | %s-f%zu", kvb.p, base, j + 1, base, j + 1);
            }
            gb_free(&kvb);
        }
        char rn[NAME_LEN + 40];
        snprintf(rn, sizeof rn, "%s-r%zu", base, j);
        add_rule(b, rn, &r);
        snprintf(rn, sizeof rn, "%s-f%zu", base, j);
        add_rule(b, rn, &f);
        gb_free(&r);
        gb_free(&f);
        gb_free(&key);
        gb_free(&lit);
    }
    gb_printf(o, "\"{\" %s-f0 \"}\"", base);
    rc = 0;
out:
    free(keys);
    free(schemas);
    free(required);
    free(vnames);
    return rc;
}

/* --- arrays -------------------------------------------------------------- */

static int gen_array(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
    const json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
    if (items && json_is_array(items)) return where_err(b, "'items' as an array (draft 7 tuples) is not supported: use prefixItems");
    if (items && !json_is_boolean(items) && !json_is_object(items)) return where_err(b, "'items' must be a schema");
    if (prefix && !json_is_array(prefix)) return where_err(b, "'prefixItems' must be an array of schemas");
    int64_t mn, mx;
    if (count_kw(b, s, "minItems", &mn) || count_kw(b, s, "maxItems", &mx)) return -1;
    if (mn < 0) mn = 0;
    bool inf = mx < 0;
    size_t k = prefix ? json_array_size(prefix) : 0;
    bool rest = !(items && json_is_false(items));
    /* a prefix item that is false caps the length */
    for (size_t j = 0; j < k; j++)
        if (json_is_false(json_array_get(prefix, j))) {
            if (inf || mx > (int64_t)j) { mx = (int64_t)j; inf = false; }
            k = j;
            break;
        }
    if (!rest && (inf || mx > (int64_t)k)) { mx = (int64_t)k; inf = false; }
    if (!inf && mn > mx) return where_err(b, "unsatisfiable: minItems %lld is above maxItems %lld (or what items/prefixItems allow)",
                                         (long long)mn, (long long)mx);
    size_t P = inf || (int64_t)k < mx ? k : (size_t)mx;
    char (*en)[NAME_LEN] = malloc((P + 1) * sizeof *en);
    char restn[NAME_LEN] = "";
    if (!en) return smoe_errf(b->err, "out of memory");
    for (size_t j = 0; j < P; j++) {
        size_t mark = path_push_i(b, "prefixItems", j);
        int r = gen(b, json_array_get(prefix, j), depth + 1, en[j]);
        path_pop(b, mark);
        if (r) { free(en); return -1; }
    }
    bool more = rest && (inf || mx > (int64_t)P);
    if (more) {
        size_t mark = path_push(b, "items");
        int r = gen(b, items ? items : json_true(), depth + 1, restn);
        path_pop(b, mark);
        if (r) { free(en); return -1; }
    }
    need(b, P_SEP);
    char base[NAME_LEN];
    new_name(b, base);
    /* A_i: elements i+1.. once i are written */
    for (size_t i = P + 1; i-- > 0;) {
        gr_buf a = {0};
        const char *sep = i == 0 ? "" : "\",\" j-sep ";
        if (i == P) {
            if (!more) gb_puts(&a, "\"\"");
            else {
                int64_t lo = mn - (int64_t)i > 0 ? mn - (int64_t)i : 0, hi = inf ? -1 : mx - (int64_t)i;
                if (i == 0) {
                    char q[64];
                    if (hi < 0) snprintf(q, sizeof q, "{%lld,}", (long long)(lo > 0 ? lo - 1 : 0));
                    else snprintf(q, sizeof q, "{%lld,%lld}", (long long)(lo > 0 ? lo - 1 : 0), (long long)(hi - 1));
                    if (lo > 0) gb_printf(&a, "%s (\",\" j-sep %s)%s", restn, restn, q);
                    else gb_printf(&a, "(%s (\",\" j-sep %s)%s)?", restn, restn, q);
                } else {
                    if (hi < 0) gb_printf(&a, "(\",\" j-sep %s){%lld,}", restn, (long long)lo);
                    else gb_printf(&a, "(\",\" j-sep %s){%lld,%lld}", restn, (long long)lo, (long long)hi);
                }
            }
        } else if ((int64_t)i < mn) {
            gb_printf(&a, "%s%s %s-a%zu", sep, en[i], base, i + 1);
        } else {
            gb_printf(&a, "(%s%s %s-a%zu)?", sep, en[i], base, i + 1);
        }
        char rn[NAME_LEN + 40];
        snprintf(rn, sizeof rn, "%s-a%zu", base, i);
        add_rule(b, rn, &a);
        gb_free(&a);
    }
    free(en);
    gb_printf(o, "\"[\" %s-a0 \"]\"", base);
    return 0;
}

/* --- one schema ---------------------------------------------------------- */

static int gen_types(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
    int mask = type_mask(b, s);
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
            if (in_list(k, kobj)) inferred |= T_OBJECT;
            if (in_list(k, karr)) inferred |= T_ARRAY;
            if (in_list(k, kstr)) inferred |= T_STRING;
            if (in_list(k, knum)) inferred |= T_NUMBER;
        }
        if (!inferred) {
            need(b, P_VALUE);
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
        case T_OBJECT: rc = gen_object(b, s, depth, o); break;
        case T_ARRAY: rc = gen_array(b, s, depth, o); break;
        case T_STRING: rc = gen_string(b, s, o); break;
        case T_NUMBER: rc = gen_number(b, s, o); break;
        case T_INTEGER: rc = gen_integer(b, s, o); break;
        }
        if (rc) return -1;
    }
    gb_puts(o, ")");
    return 0;
}

static int gen_body(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
    if (depth > JS_MAX_DEPTH) return where_err(b, "the schema nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s)) { need(b, P_VALUE); gb_puts(o, "j-value"); return 0; }
    if (json_is_false(s)) return where_err(b, "unsatisfiable: the schema is false");
    if (!json_is_object(s)) return where_err(b, "a schema must be an object or a boolean");
    if (check_keywords(b, s)) return -1;
    const json_t *ref = json_object_get(s, "$ref"), *all = json_object_get(s, "allOf");
    const json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
    char nm[NAME_LEN];
    if (ref && !json_is_string(ref)) return where_err(b, "'$ref' must be a string");
    if (ref && !other_validation(s, (const char *const[]){"$ref", NULL})) {
        if (ref_rule(b, json_string_value(ref), depth, nm)) return -1;
        gb_puts(o, nm);
        return 0;
    }
    if (ref || all) {
        json_t *merged;
        if (merge_list(b, &s, 1, depth, &merged)) return -1;
        return gen_body(b, merged, depth + 1, o);
    }
    if (any && one) return where_err(b, "anyOf together with oneOf is not supported");
    if (any || one) {
        const json_t *list = any ? any : one;
        const char *kw = any ? "anyOf" : "oneOf";
        if (!json_is_array(list) || json_array_size(list) == 0) return where_err(b, "'%s' must be a non-empty array", kw);
        static const char *const drop[] = {"anyOf", "oneOf", NULL};
        json_t *siblings = keep(b, without(s, drop));
        bool has_siblings = other_validation(siblings, (const char *const[]){NULL}) != NULL;
        gb_puts(o, "(");
        size_t i;
        json_t *e;
        int alts = 0;
        json_array_foreach(list, i, e) {
            size_t mark = path_push_i(b, kw, i);
            const json_t *branch = e;
            int rc = 0;
            if (json_is_false(e)) { path_pop(b, mark); continue; } /* never matches */
            if (has_siblings) {
                const json_t *pair[2] = {siblings, e};
                json_t *merged;
                rc = merge_list(b, pair, 2, depth, &merged);
                branch = merged;
            }
            if (!rc) rc = gen(b, branch, depth + 1, nm);
            path_pop(b, mark);
            if (rc) return -1;
            if (alts++) gb_puts(o, " | ");
            gb_puts(o, nm);
        }
        gb_puts(o, ")");
        if (!alts) return where_err(b, "unsatisfiable: every %s branch is false", kw);
        return 0;
    }
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (en || cn) {
        const char *other = other_validation(s, (const char *const[]){"enum", "const", "type", NULL});
        if (other) return where_err(b, "%s together with '%s' is not supported", en ? "enum" : "const", other);
        if (en && (!json_is_array(en))) return where_err(b, "'enum' must be an array");
        int mask = type_mask(b, s);
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
        if (!alts) return where_err(b, "unsatisfiable: %s", en && json_array_size(en) == 0 ? "enum is empty"
                                                               : "no enum/const value has an allowed type");
        return 0;
    }
    return gen_types(b, s, depth, o);
}

static int gen_named(smoe_jsg *b, const json_t *s, int depth, const char *name) {
    gr_buf body = {0};
    int rc = gen_body(b, s, depth, &body);
    if (rc == 0) add_rule(b, name, &body);
    gb_free(&body);
    return rc;
}

/* A rule for s; name gets its name. */
static int gen(smoe_jsg *b, const json_t *s, int depth, char *name) {
    if (depth > JS_MAX_DEPTH) return where_err(b, "the schema nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        need(b, P_VALUE);
        strcpy(name, "j-value");
        return 0;
    }
    new_name(b, name);
    return gen_named(b, s, depth, name);
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
    if (gen(b, schema, 0, name)) return NULL;
    if (b->rules.oom) { smoe_errf(err, "out of memory"); return NULL; }
    const char *n = keep_name(b, name);
    if (!n) smoe_errf(err, "out of memory");
    return n;
}

void smoe_jsg_set_strict(smoe_jsg *b, bool strict) { b->o.strict = strict; }

const char *smoe_jsg_any_value(smoe_jsg *b) { need(b, P_VALUE); return "j-value"; }
const char *smoe_jsg_any_object(smoe_jsg *b) { need(b, P_OBJECT); return "j-object"; }
const char *smoe_jsg_any_string(smoe_jsg *b) { need(b, P_STRING); return "j-string"; }
const char *smoe_jsg_sep(smoe_jsg *b) { need(b, P_SEP); return "j-sep"; }

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

/* ---------------------------------------------------------------------------
 * Cache
 * ------------------------------------------------------------------------- */

typedef struct centry {
    char *key;
    smoe_grammar *g;
    double compile_ms;
    uint64_t used;
} centry;

struct smoe_schema_cache {
    pthread_mutex_t lock;
    centry *e;
    int n, cap;
    uint64_t tick;
};

smoe_schema_cache *smoe_schema_cache_new(int capacity) {
    smoe_schema_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cap = capacity > 0 ? capacity : 64;
    c->e = calloc((size_t)c->cap, sizeof *c->e);
    if (!c->e) { free(c); return NULL; }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void smoe_schema_cache_free(smoe_schema_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        smoe_grammar_free(c->e[i].g);
    }
    free(c->e);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

smoe_grammar *smoe_schema_cache_get(smoe_schema_cache *c, const json_t *schema, const smoe_json_schema_opts *o,
                                    bool *hit, double *compile_ms, char *err) {
    smoe_json_schema_opts op = {0};
    if (o) op = *o;
    char *canon = schema ? json_dumps(schema, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : strdup("json_object");
    if (!canon) { smoe_errf(err, "out of memory (or a schema jansson cannot serialise)"); return NULL; }
    size_t kl = strlen(canon) + 16;
    char *key = malloc(kl);
    if (!key) { free(canon); smoe_errf(err, "out of memory"); return NULL; }
    snprintf(key, kl, "%d%d%d|%s", op.strict, op.compact, op.no_leading_space, canon);
    free(canon);
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n; i++) {
        if (!strcmp(c->e[i].key, key)) {
            c->e[i].used = ++c->tick;
            smoe_grammar *g = smoe_grammar_ref(c->e[i].g);
            if (hit) *hit = true;
            if (compile_ms) *compile_ms = c->e[i].compile_ms;
            pthread_mutex_unlock(&c->lock);
            free(key);
            return g;
        }
    }
    pthread_mutex_unlock(&c->lock);
    /* compile outside the lock: a slow schema does not hold up others */
    smoe_grammar *g = smoe_json_schema_compile(schema, &op, err);
    if (!g) { free(key); return NULL; }
    if (hit) *hit = false;
    if (compile_ms) *compile_ms = g->compile_ms;
    pthread_mutex_lock(&c->lock);
    int slot = c->n;
    if (c->n == c->cap) {
        slot = 0;
        for (int i = 1; i < c->n; i++) if (c->e[i].used < c->e[slot].used) slot = i;
        free(c->e[slot].key);
        smoe_grammar_free(c->e[slot].g);
    } else c->n++;
    c->e[slot] = (centry){key, smoe_grammar_ref(g), g->compile_ms, ++c->tick};
    pthread_mutex_unlock(&c->lock);
    return g;
}
