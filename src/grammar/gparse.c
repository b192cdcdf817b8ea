/* gparse.c - grammar text (syntax in grammar.h) to a syntax tree. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "gint.h"

/* ---------------------------------------------------------------------------
 * Grammar literals
 * ------------------------------------------------------------------------- */

void gb_lit(smoe_buf *b, const void *s, size_t n) {
    const uint8_t *p = s;
    smoe_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') { char e[2] = {'\\', (char)c}; smoe_buf_add(b, e, 2); }
        else if (c < 0x20 || c == 0x7F) smoe_buf_addf(b, "\\x%02X", c);
        else smoe_buf_add(b, &c, 1);
    }
    smoe_buf_add(b, "\"", 1);
}

/* ---------------------------------------------------------------------------
 * Parser state
 * ------------------------------------------------------------------------- */

typedef struct parser {
    const char *s;
    size_t n, pos;
    int32_t line;
    gast *ast;
    char *err;
    /* rule name -> index, open addressing */
    int32_t *slots;
    size_t n_slots;
} parser;

static int perr(parser *p, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return smoe_errf(p->err, "grammar line %d: %s", p->line, msg);
}

static int32_t new_node(parser *p, int kind) {
    gast *a = p->ast;
    if (a->n_nodes == a->cap_nodes) {
        int32_t cap = a->cap_nodes ? a->cap_nodes * 2 : 256;
        if (cap > (1 << 26)) return perr(p, "grammar too large", NULL), -1;
        gnode *nn = realloc(a->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return perr(p, "out of memory", NULL), -1;
        a->nodes = nn;
        a->cap_nodes = cap;
    }
    gnode *nd = &a->nodes[a->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->kind = (uint8_t)kind;
    nd->first = nd->next = -1;
    nd->line = p->line;
    return a->n_nodes++;
}

static int push_bytes(parser *p, const uint8_t *b, size_t n) {
    gast *a = p->ast;
    if (a->n_bytes + n > a->cap_bytes) {
        size_t cap = a->cap_bytes ? a->cap_bytes * 2 : 1024;
        while (cap < a->n_bytes + n) cap *= 2;
        uint8_t *nb = realloc(a->bytes, cap);
        if (!nb) return perr(p, "out of memory", NULL);
        a->bytes = nb;
        a->cap_bytes = cap;
    }
    memcpy(a->bytes + a->n_bytes, b, n);
    a->n_bytes += n;
    return 0;
}

static int push_range(parser *p, uint32_t lo, uint32_t hi) {
    gast *a = p->ast;
    if (a->n_ranges + 2 > a->cap_ranges) {
        size_t cap = a->cap_ranges ? a->cap_ranges * 2 : 256;
        uint32_t *nr = realloc(a->ranges, cap * sizeof *nr);
        if (!nr) return perr(p, "out of memory", NULL);
        a->ranges = nr;
        a->cap_ranges = cap;
    }
    a->ranges[a->n_ranges++] = lo;
    a->ranges[a->n_ranges++] = hi;
    return 0;
}

static uint64_t hash_name(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int grow_slots(parser *p) {
    size_t ns = p->n_slots ? p->n_slots * 2 : 64;
    int32_t *sl = malloc(ns * sizeof *sl);
    if (!sl) return -1;
    for (size_t i = 0; i < ns; i++) sl[i] = -1;
    for (int32_t r = 0; r < p->ast->n_rules; r++) {
        const char *nm = p->ast->names[r];
        size_t h = (size_t)hash_name(nm, strlen(nm)) & (ns - 1);
        while (sl[h] >= 0) h = (h + 1) & (ns - 1);
        sl[h] = r;
    }
    free(p->slots);
    p->slots = sl;
    p->n_slots = ns;
    return 0;
}

/* Index of rule `name` (creating an undefined entry when new). */
static int32_t rule_index(parser *p, const char *name, size_t n) {
    gast *a = p->ast;
    if ((size_t)(a->n_rules + 1) * 2 > p->n_slots && grow_slots(p)) return perr(p, "out of memory", NULL), -1;
    size_t h = (size_t)hash_name(name, n) & (p->n_slots - 1);
    while (p->slots[h] >= 0) {
        const char *nm = a->names[p->slots[h]];
        if (strlen(nm) == n && memcmp(nm, name, n) == 0) return p->slots[h];
        h = (h + 1) & (p->n_slots - 1);
    }
    if (a->n_rules == a->cap_rules) {
        int32_t cap = a->cap_rules ? a->cap_rules * 2 : 64;
        char **nn = realloc(a->names, (size_t)cap * sizeof *nn);
        if (nn) a->names = nn;
        int32_t *nb = realloc(a->body, (size_t)cap * sizeof *nb);
        if (nb) a->body = nb;
        int32_t *nl = realloc(a->def_line, (size_t)cap * sizeof *nl);
        if (nl) a->def_line = nl;
        if (!nn || !nb || !nl) return perr(p, "out of memory", NULL), -1;
        a->cap_rules = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return perr(p, "out of memory", NULL), -1;
    memcpy(copy, name, n);
    copy[n] = 0;
    a->names[a->n_rules] = copy;
    a->body[a->n_rules] = -1;
    a->def_line[a->n_rules] = p->line;
    p->slots[h] = a->n_rules;
    return a->n_rules++;
}

/* ---------------------------------------------------------------------------
 * Lexing
 * ------------------------------------------------------------------------- */

static bool name_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static void skip_ws(parser *p) {
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c == '\n') { p->line++; p->pos++; }
        else if (c == ' ' || c == '\t' || c == '\r') p->pos++;
        else if (c == '#') { while (p->pos < p->n && p->s[p->pos] != '\n') p->pos++; }
        else break;
    }
}

static int peek(parser *p) { return p->pos < p->n ? (uint8_t)p->s[p->pos] : -1; }

/* At "name ::=" ? (does not move) */
static bool at_rule_start(parser *p) {
    size_t i = p->pos;
    while (i < p->n && name_char((uint8_t)p->s[i])) i++;
    if (i == p->pos) return false;
    while (i < p->n) {
        char c = p->s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') i++;
        else if (c == '#') { while (i < p->n && p->s[i] != '\n') i++; }
        else break;
    }
    return i + 3 <= p->n && memcmp(p->s + i, "::=", 3) == 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class (escape or UTF-8). */
static int read_char(parser *p, uint32_t *cp) {
    if (p->pos >= p->n) return perr(p, "unexpected end of the grammar inside a literal or class", NULL);
    uint8_t c = (uint8_t)p->s[p->pos];
    if (c == '\n' || c == '\r') return perr(p, "a literal or class is not closed before the end of the line", NULL);
    if (c != '\\') {
        int l = smoe_utf8_decode((const uint8_t *)p->s + p->pos, p->n - p->pos, cp);
        if (!l) return perr(p, "invalid UTF-8", NULL);
        p->pos += (size_t)l;
        return 0;
    }
    p->pos++;
    if (p->pos >= p->n) return perr(p, "unexpected end of the grammar after '\\'", NULL);
    char e = p->s[p->pos++];
    int digits = 0;
    switch (e) {
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 't': *cp = '\t'; return 0;
    case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/':
        *cp = (uint8_t)e;
        return 0;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default: {
        char s[8]; /* the byte as text, or as \xHH when not printable ASCII (messages are UTF-8) */
        if ((uint8_t)e >= 0x20 && (uint8_t)e < 0x7F) snprintf(s, sizeof s, "%c", e);
        else snprintf(s, sizeof s, "x%02X", (uint8_t)e);
        return perr(p, "unknown escape '\\%s'", s);
    }
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = p->pos < p->n ? hexval((uint8_t)p->s[p->pos]) : -1;
        if (h < 0) return perr(p, "bad hexadecimal escape", NULL);
        v = v * 16 + (uint32_t)h;
        p->pos++;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return perr(p, "escape is not a Unicode scalar value", NULL);
    *cp = v;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Classes: normalised, sorted, disjoint code point ranges without surrogates
 * ------------------------------------------------------------------------- */

static int cmp_range(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* ranges: n pairs (in/out); returns the new pair count.  out must hold
 * n + 2 pairs (negation and surrogate removal add at most two). */
static size_t normalise_ranges(uint32_t *r, size_t n, bool negate, uint32_t *out) {
    qsort(r, n, 2 * sizeof *r, cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
            if (r[2 * i + 1] > r[2 * (m - 1) + 1]) r[2 * (m - 1) + 1] = r[2 * i + 1];
        } else {
            r[2 * m] = r[2 * i];
            r[2 * m + 1] = r[2 * i + 1];
            m++;
        }
    }
    /* complement */
    size_t k = 0;
    if (negate) {
        uint32_t next = 0;
        for (size_t i = 0; i < m; i++) {
            if (r[2 * i] > next) { out[2 * k] = next; out[2 * k + 1] = r[2 * i] - 1; k++; }
            next = r[2 * i + 1] + 1;
        }
        if (next <= 0x10FFFF) { out[2 * k] = next; out[2 * k + 1] = 0x10FFFF; k++; }
    } else {
        memcpy(out, r, 2 * m * sizeof *r);
        k = m;
    }
    /* remove surrogates D800..DFFF (may split one range) */
    size_t w = 0;
    uint32_t *buf = malloc((k + 1) * 2 * sizeof *buf);
    if (!buf) return (size_t)-1;
    for (size_t i = 0; i < k; i++) {
        uint32_t lo = out[2 * i], hi = out[2 * i + 1];
        if (hi < 0xD800 || lo > 0xDFFF) { buf[2 * w] = lo; buf[2 * w + 1] = hi; w++; continue; }
        if (lo < 0xD800) { buf[2 * w] = lo; buf[2 * w + 1] = 0xD7FF; w++; }
        if (hi > 0xDFFF) { buf[2 * w] = 0xE000; buf[2 * w + 1] = hi; w++; }
    }
    memcpy(out, buf, 2 * w * sizeof *buf);
    free(buf);
    return w;
}

/* ---------------------------------------------------------------------------
 * Recursive descent
 * ------------------------------------------------------------------------- */

static int32_t parse_alt(parser *p, int depth);

static void add_child(parser *p, int32_t parent, int32_t *last, int32_t child) {
    if (*last < 0) p->ast->nodes[parent].first = child;
    else p->ast->nodes[*last].next = child;
    *last = child;
}

static int32_t parse_literal(parser *p) {
    p->pos++; /* opening quote */
    int32_t nd = new_node(p, GN_LIT);
    if (nd < 0) return -1;
    size_t off = p->ast->n_bytes;
    for (;;) {
        if (p->pos >= p->n) return perr(p, "a literal is not closed", NULL), -1;
        if (p->s[p->pos] == '"') { p->pos++; break; }
        uint32_t cp;
        if (read_char(p, &cp)) return -1;
        uint8_t b[4];
        if (push_bytes(p, b, (size_t)smoe_utf8_encode(cp, b))) return -1;
    }
    if (p->ast->n_bytes - off > (1u << 24)) return perr(p, "literal too long", NULL), -1;
    p->ast->nodes[nd].a = (int32_t)off;
    p->ast->nodes[nd].b = (int32_t)(p->ast->n_bytes - off);
    return nd;
}

static int32_t class_node(parser *p, uint32_t *r, size_t n, bool negate) {
    uint32_t *out = malloc((n + 2) * 2 * sizeof *out);
    if (!out) return perr(p, "out of memory", NULL), -1;
    size_t m = normalise_ranges(r, n, negate, out);
    if (m == (size_t)-1) { free(out); return perr(p, "out of memory", NULL), -1; }
    if (m == 0) { free(out); return perr(p, "character class matches nothing", NULL), -1; }
    int32_t nd = new_node(p, GN_CLASS);
    if (nd < 0) { free(out); return -1; }
    p->ast->nodes[nd].a = (int32_t)(p->ast->n_ranges / 2);
    p->ast->nodes[nd].b = (int32_t)m;
    for (size_t i = 0; i < m; i++)
        if (push_range(p, out[2 * i], out[2 * i + 1])) { free(out); return -1; }
    free(out);
    return nd;
}

static int32_t parse_class(parser *p) {
    p->pos++; /* [ */
    bool negate = false;
    if (peek(p) == '^') { negate = true; p->pos++; }
    size_t cap = 16, n = 0;
    uint32_t *r = malloc(cap * 2 * sizeof *r);
    if (!r) return perr(p, "out of memory", NULL), -1;
    for (;;) {
        if (p->pos >= p->n) { free(r); return perr(p, "a character class is not closed", NULL), -1; }
        if (p->s[p->pos] == ']') { p->pos++; break; }
        uint32_t lo, hi;
        if (read_char(p, &lo)) { free(r); return -1; }
        hi = lo;
        if (p->pos + 1 < p->n && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']') {
            p->pos++;
            if (read_char(p, &hi)) { free(r); return -1; }
            if (hi < lo) { free(r); return perr(p, "character class range is reversed", NULL), -1; }
        }
        if (n == cap) {
            cap *= 2;
            uint32_t *nr = realloc(r, cap * 2 * sizeof *r);
            if (!nr) { free(r); return perr(p, "out of memory", NULL), -1; }
            r = nr;
        }
        r[2 * n] = lo;
        r[2 * n + 1] = hi;
        n++;
    }
    if (n == 0) { free(r); return perr(p, "empty character class", NULL), -1; }
    int32_t nd = class_node(p, r, n, negate);
    free(r);
    return nd;
}

static int parse_uint(parser *p, int32_t *out) {
    size_t start = p->pos;
    int64_t v = 0;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        v = v * 10 + (p->s[p->pos] - '0');
        if (v > GR_MAX_REPEAT) return perr(p, "repetition count above 100000", NULL);
        p->pos++;
    }
    if (p->pos == start) return 1; /* no digits */
    *out = (int32_t)v;
    return 0;
}

static int32_t parse_primary(parser *p, int depth) {
    int c = peek(p);
    if (c == '"') return parse_literal(p);
    if (c == '[') return parse_class(p);
    if (c == '.') {
        p->pos++;
        uint32_t all[2] = {0, 0x10FFFF};
        return class_node(p, all, 1, false);
    }
    if (c == '(') {
        p->pos++;
        int32_t inner = parse_alt(p, depth + 1);
        if (inner < 0) return -1;
        skip_ws(p);
        if (peek(p) != ')') return perr(p, "expected ')'", NULL), -1;
        p->pos++;
        return inner;
    }
    if (c >= 0 && name_char(c)) {
        size_t start = p->pos;
        while (p->pos < p->n && name_char((uint8_t)p->s[p->pos])) p->pos++;
        int32_t r = rule_index(p, p->s + start, p->pos - start);
        if (r < 0) return -1;
        int32_t nd = new_node(p, GN_REF);
        if (nd < 0) return -1;
        p->ast->nodes[nd].a = r;
        return nd;
    }
    if (c < 0) return perr(p, "unexpected end of the grammar", NULL), -1;
    char s[2] = {(char)c, 0};
    if (c < 0x20 || c >= 0x7F) return perr(p, "unexpected character", NULL), -1;
    return perr(p, "unexpected '%s'", s), -1;
}

static int32_t parse_item(parser *p, int depth) {
    int32_t prim = parse_primary(p, depth);
    if (prim < 0) return -1;
    skip_ws(p);
    int c = peek(p);
    int32_t mn, mx;
    if (c == '?') { mn = 0; mx = 1; }
    else if (c == '*') { mn = 0; mx = -1; }
    else if (c == '+') { mn = 1; mx = -1; }
    else if (c == '{') {
        p->pos++;
        skip_ws(p);
        int r = parse_uint(p, &mn);
        if (r < 0) return -1;
        if (r == 1) mn = 0;
        bool had_min = r == 0;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_ws(p);
            r = parse_uint(p, &mx);
            if (r < 0) return -1;
            if (r == 1) {
                if (!had_min) return perr(p, "repetition {,} needs a bound", NULL), -1;
                mx = -1;
            }
        } else {
            if (!had_min) return perr(p, "bad repetition: expected {n}, {n,}, {n,m} or {,m}", NULL), -1;
            mx = mn;
        }
        skip_ws(p);
        if (peek(p) != '}') return perr(p, "bad repetition: expected '}'", NULL), -1;
        if (mx >= 0 && mx < mn) return perr(p, "repetition {n,m} with m < n", NULL), -1;
        /* p->pos is at '}', consumed below like the one-character operators */
    } else {
        return prim;
    }
    p->pos++;
    int32_t nd = new_node(p, GN_REP);
    if (nd < 0) return -1;
    p->ast->nodes[nd].first = prim;
    p->ast->nodes[nd].a = mn;
    p->ast->nodes[nd].b = mx;
    skip_ws(p);
    c = peek(p);
    if (c == '?' || c == '*' || c == '+' || c == '{') return perr(p, "two repetition operators in a row (use parentheses)", NULL), -1;
    return nd;
}

static int32_t parse_seq(parser *p, int depth) {
    int32_t seq = new_node(p, GN_SEQ), last = -1, count = 0;
    if (seq < 0) return -1;
    for (;;) {
        skip_ws(p);
        int c = peek(p);
        if (c < 0 || c == '|' || c == ')') break;
        if (name_char(c) && at_rule_start(p)) break;
        int32_t it = parse_item(p, depth);
        if (it < 0) return -1;
        add_child(p, seq, &last, it);
        count++;
    }
    if (count == 1) return p->ast->nodes[seq].first;
    return seq;
}

static int32_t parse_alt(parser *p, int depth) {
    if (depth > GR_MAX_NEST) return perr(p, "parentheses nest too deeply", NULL), -1;
    int32_t first = parse_seq(p, depth);
    if (first < 0) return -1;
    skip_ws(p);
    if (peek(p) != '|') return first;
    int32_t alt = new_node(p, GN_ALT), last = -1;
    if (alt < 0) return -1;
    add_child(p, alt, &last, first);
    while (peek(p) == '|') {
        p->pos++;
        int32_t s = parse_seq(p, depth);
        if (s < 0) return -1;
        add_child(p, alt, &last, s);
        skip_ws(p);
    }
    return alt;
}

void gr_ast_free(gast *a) {
    for (int32_t i = 0; i < a->n_rules; i++) free(a->names[i]);
    free(a->names);
    free(a->body);
    free(a->def_line);
    free(a->nodes);
    free(a->bytes);
    free(a->ranges);
    memset(a, 0, sizeof *a);
}

int gr_parse(const char *text, size_t len, gast *ast, char *err) {
    memset(ast, 0, sizeof *ast);
    if (len > GR_MAX_TEXT) return smoe_errf(err, "grammar text is larger than 16 MiB");
    parser p = {.s = text, .n = len, .line = 1, .ast = ast, .err = err};
    int rc = -1;
    for (;;) {
        skip_ws(&p);
        if (p.pos >= p.n) break;
        size_t start = p.pos;
        while (p.pos < p.n && name_char((uint8_t)p.s[p.pos])) p.pos++;
        if (p.pos == start) { perr(&p, "expected a rule name", NULL); goto out; }
        int32_t line = p.line;
        int32_t r = rule_index(&p, p.s + start, p.pos - start);
        if (r < 0) goto out;
        skip_ws(&p);
        if (p.pos + 3 > p.n || memcmp(p.s + p.pos, "::=", 3) != 0) {
            perr(&p, "expected '::=' after rule name '%s'", ast->names[r]);
            goto out;
        }
        p.pos += 3;
        if (ast->body[r] >= 0) { perr(&p, "rule '%s' is defined twice", ast->names[r]); goto out; }
        int32_t body = parse_alt(&p, 0);
        if (body < 0) goto out;
        skip_ws(&p);
        if (peek(&p) == ')') { perr(&p, "unbalanced ')'", NULL); goto out; }
        ast->body[r] = body;
        ast->def_line[r] = line;
    }
    for (int32_t r = 0; r < ast->n_rules; r++) {
        if (ast->body[r] < 0) {
            p.line = ast->def_line[r];
            perr(&p, "rule '%s' is used but never defined", ast->names[r]);
            goto out;
        }
    }
    rc = 0;
out:
    free(p.slots);
    if (rc) gr_ast_free(ast);
    return rc;
}
