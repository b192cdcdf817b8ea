/* regex.c - JSON Schema "pattern" (a regular-expression subset, see
 * json_schema.h) to a grammar expression over the JSON encoding of the
 * string's content.
 *
 * The pattern is compiled, never backtracked: the automaton runs in time
 * linear in the text whatever the pattern (so "(a+)+$" is harmless), and
 * the size after expanding counted repetitions is capped.  Every character
 * is matched in its canonical JSON encoding: raw UTF-8 except '"', '\' and
 * U+0000..U+001F, which are \" \\ \b \t \n \f \r or \u00XX. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "gint.h"

#define RX_MAX_SIZE 100000  /* characters matched after expanding repetitions */
#define RX_MAX_NEST 64

/* ---------------------------------------------------------------------------
 * Code point sets
 * ------------------------------------------------------------------------- */

typedef struct cset {
    uint32_t *r;   /* lo, hi pairs */
    size_t n, cap;
    bool oom;
} cset;

static void cs_add(cset *s, uint32_t lo, uint32_t hi) {
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        uint32_t *nr = realloc(s->r, cap * 2 * sizeof *nr);
        if (!nr) { s->oom = true; return; }
        s->r = nr;
        s->cap = cap;
    }
    s->r[2 * s->n] = lo;
    s->r[2 * s->n + 1] = hi;
    s->n++;
}

static int cmp_pair(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* sort, merge, optionally complement, drop surrogates */
static void cs_normalise(cset *s, bool negate) {
    if (s->oom) return;
    qsort(s->r, s->n, 2 * sizeof *s->r, cmp_pair);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (m && s->r[2 * i] <= s->r[2 * (m - 1) + 1] + 1) {
            if (s->r[2 * i + 1] > s->r[2 * (m - 1) + 1]) s->r[2 * (m - 1) + 1] = s->r[2 * i + 1];
        } else {
            s->r[2 * m] = s->r[2 * i];
            s->r[2 * m + 1] = s->r[2 * i + 1];
            m++;
        }
    }
    s->n = m;
    cset t = {0};
    if (negate) {
        uint32_t next = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (s->r[2 * i] > next) cs_add(&t, next, s->r[2 * i] - 1);
            next = s->r[2 * i + 1] + 1;
        }
        if (next <= 0x10FFFF) cs_add(&t, next, 0x10FFFF);
    } else {
        for (size_t i = 0; i < s->n; i++) cs_add(&t, s->r[2 * i], s->r[2 * i + 1]);
    }
    cset u = {0};
    for (size_t i = 0; i < t.n; i++) {
        uint32_t lo = t.r[2 * i], hi = t.r[2 * i + 1];
        if (hi < 0xD800 || lo > 0xDFFF) { cs_add(&u, lo, hi); continue; }
        if (lo < 0xD800) cs_add(&u, lo, 0xD7FF);
        if (hi > 0xDFFF) cs_add(&u, 0xE000, hi);
    }
    free(t.r);
    free(s->r);
    bool oom = t.oom || u.oom;
    *s = u;
    s->oom |= oom;
}

static void put_cp_escape(smoe_buf *o, uint32_t cp) {
    if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
        char c = (char)cp;
        smoe_buf_add(o, &c, 1);
    } else if (cp <= 0xFFFF) smoe_buf_addf(o, "\\u%04X", cp);
    else smoe_buf_addf(o, "\\U%08X", cp);
}

void gr_emit_json_charset(smoe_buf *o, const uint32_t *r, size_t n) {
    /* raw part: the set without '"', '\' and controls */
    int alts = 0;
    smoe_buf raw = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = r[2 * i], hi = r[2 * i + 1];
        /* cut out 0x00-0x1F, 0x22, 0x5C */
        static const uint32_t cut[3][2] = {{0x00, 0x1F}, {0x22, 0x22}, {0x5C, 0x5C}};
        uint32_t a = lo;
        for (int k = 0; k < 3 && a <= hi; k++) {
            if (cut[k][1] < a || cut[k][0] > hi) continue;
            if (cut[k][0] > a) {
                put_cp_escape(&raw, a);
                if (cut[k][0] - 1 > a) { smoe_buf_adds(&raw, "-"); put_cp_escape(&raw, cut[k][0] - 1); }
            }
            a = cut[k][1] + 1;
        }
        if (a <= hi) {
            put_cp_escape(&raw, a);
            if (hi > a) { smoe_buf_adds(&raw, "-"); put_cp_escape(&raw, hi); }
        }
    }
    smoe_buf body = {0};
    if (raw.n || raw.oom) {
        smoe_buf_adds(&body, "[");
        smoe_buf_append(&body, &raw);
        smoe_buf_adds(&body, "]");
        alts++;
    }
    smoe_buf_free(&raw);
    for (size_t i = 0; i < n; i++) {
        for (uint32_t c = r[2 * i]; c <= r[2 * i + 1] && c <= 0x5C; c++) {
            if (c >= 0x20 && c != 0x22 && c != 0x5C) {
                if (c > 0x22 && c < 0x5C) c = 0x5B; /* jump ahead */
                continue;
            }
            char e[8];
            switch (c) {
            case '"': strcpy(e, "\\\""); break;
            case '\\': strcpy(e, "\\\\"); break;
            case '\b': strcpy(e, "\\b"); break;
            case '\t': strcpy(e, "\\t"); break;
            case '\n': strcpy(e, "\\n"); break;
            case '\f': strcpy(e, "\\f"); break;
            case '\r': strcpy(e, "\\r"); break;
            default: snprintf(e, sizeof e, "\\u%04x", c); break;
            }
            if (alts++) smoe_buf_adds(&body, " | ");
            gb_lit(&body, e, strlen(e));
        }
    }
    if (alts > 1) smoe_buf_adds(o, "(");
    smoe_buf_append(o, &body);
    if (body.oom) o->oom = true;
    if (alts > 1) smoe_buf_adds(o, ")");
    smoe_buf_free(&body);
}

/* ---------------------------------------------------------------------------
 * Parser / translator
 * ------------------------------------------------------------------------- */

typedef struct rx {
    const char *s;
    size_t n, pos;
    char *err;
} rx;

static int rx_err(rx *r, const char *msg) {
    return smoe_errf(r->err, "pattern: %s (at offset %zu)", msg, r->pos);
}

static int rx_peek(rx *r) { return r->pos < r->n ? (uint8_t)r->s[r->pos] : -1; }

static int64_t cap_add(int64_t a, int64_t b) { return a + b > RX_MAX_SIZE * 4 ? RX_MAX_SIZE * 4 : a + b; }
static int64_t cap_mul(int64_t a, int64_t b) {
    if (a == 0 || b == 0) return 0;
    return a > (RX_MAX_SIZE * 4) / b ? RX_MAX_SIZE * 4 : a * b;
}

static int hexv(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void add_class_d(cset *s) { cs_add(s, '0', '9'); }
static void add_class_w(cset *s) { cs_add(s, '0', '9'); cs_add(s, 'A', 'Z'); cs_add(s, 'a', 'z'); cs_add(s, '_', '_'); }
static void add_class_s(cset *s) { cs_add(s, '\t', '\r'); cs_add(s, ' ', ' '); }

/* After '\': one escape.  Sets *cp for a single character, or adds a class
 * to cls and sets *cp to UINT32_MAX.  in_negated: inside [^...]. */
static int rx_escape(rx *r, uint32_t *cp, cset *cls, bool in_negated) {
    if (r->pos >= r->n) return rx_err(r, "the pattern ends with '\\'");
    char e = r->s[r->pos++];
    int digits = 0;
    switch (e) {
    case 'd': case 'w': case 's':
        if (in_negated)
            return rx_err(r, "\\d, \\w and \\s inside [^...] are not supported (their Unicode meaning differs between regex engines)");
        if (e == 'd') add_class_d(cls);
        else if (e == 'w') add_class_w(cls);
        else add_class_s(cls);
        *cp = UINT32_MAX;
        return 0;
    case 'D': case 'W': case 'S':
        return rx_err(r, "\\D, \\W and \\S are not supported (their Unicode meaning differs between regex engines); use a negated class like [^0-9]");
    case 'b': case 'B': case 'A': case 'Z': case 'z': case 'G':
        return rx_err(r, "anchors and word boundaries other than a leading ^ and a trailing $ are not supported");
    case 'p': case 'P':
        return rx_err(r, "Unicode property classes (\\p{...}) are not supported");
    case 'n': *cp = '\n'; return 0;
    case 't': *cp = '\t'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case '0': *cp = 0; return 0;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    default:
        if (e >= '1' && e <= '9') return rx_err(r, "backreferences are not supported");
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) return rx_err(r, "unknown escape");
        if ((uint8_t)e >= 0x80 || (uint8_t)e < 0x20) return rx_err(r, "bad escape");
        *cp = (uint8_t)e; /* escaped punctuation stands for itself */
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = r->pos < r->n ? hexv((uint8_t)r->s[r->pos]) : -1;
        if (h < 0) return rx_err(r, "bad hexadecimal escape");
        v = v * 16 + (uint32_t)h;
        r->pos++;
    }
    if (v >= 0xD800 && v <= 0xDFFF) return rx_err(r, "surrogate code points are not supported");
    *cp = v;
    return 0;
}

static int rx_char(rx *r, uint32_t *cp) {
    int l = smoe_utf8_decode((const uint8_t *)r->s + r->pos, r->n - r->pos, cp);
    if (!l) return rx_err(r, "invalid UTF-8");
    r->pos += (size_t)l;
    return 0;
}

static int rx_class(rx *r, cset *s) {
    r->pos++; /* [ */
    bool neg = false;
    if (rx_peek(r) == '^') { neg = true; r->pos++; }
    if (rx_peek(r) == ']') return rx_err(r, "']' first in a class is ambiguous: escape it as \\]");
    size_t count = 0;
    for (;;) {
        int c = rx_peek(r);
        if (c < 0) return rx_err(r, "a character class is not closed");
        if (c == ']') { r->pos++; break; }
        if (c == '[') return rx_err(r, "'[' inside a class: escape it as \\[");
        uint32_t lo;
        if (c == '\\') {
            r->pos++;
            if (rx_escape(r, &lo, s, neg)) return -1;
        } else if (rx_char(r, &lo)) return -1;
        count++;
        if (lo == UINT32_MAX) continue; /* a class escape */
        uint32_t hi = lo;
        if (rx_peek(r) == '-' && r->pos + 1 < r->n && r->s[r->pos + 1] != ']') {
            r->pos++;
            int c2 = rx_peek(r);
            if (c2 == '\\') {
                r->pos++;
                if (rx_escape(r, &hi, s, neg)) return -1;
                if (hi == UINT32_MAX) return rx_err(r, "a class escape cannot end a range");
            } else if (rx_char(r, &hi)) return -1;
            if (hi < lo) return rx_err(r, "reversed range in a class");
        }
        cs_add(s, lo, hi);
    }
    if (count == 0) return rx_err(r, "empty character class");
    cs_normalise(s, neg);
    if (s->oom) return smoe_errf(r->err, "out of memory");
    if (s->n == 0) return rx_err(r, "the character class matches nothing");
    return 0;
}

static int rx_alt(rx *r, smoe_buf *o, int depth, bool top, int64_t *size);

/* One atom with its quantifier.  Returns 1 at the end of a branch. */
static int rx_item(rx *r, smoe_buf *o, int depth, bool top, int64_t *size) {
    int c = rx_peek(r);
    if (c < 0 || c == '|' || c == ')') return 1;
    if (c == '$') {
        if (!top) return rx_err(r, "'$' is supported only at the end of the pattern");
        size_t save = r->pos + 1;
        if (save != r->n && r->s[save] != '|') return rx_err(r, "'$' is supported only at the end of the pattern");
        return 1;
    }
    if (c == '^') return rx_err(r, "'^' is supported only at the start of the pattern");
    if (c == '*' || c == '+' || c == '?') return rx_err(r, "nothing to repeat");
    if (c == '{') return rx_err(r, "'{' must be escaped as \\{ when it is not a repetition");
    smoe_buf atom = {0};
    int64_t asize = 1;
    cset s = {0};
    if (c == '(') {
        r->pos++;
        if (rx_peek(r) == '?') {
            r->pos++;
            int k = rx_peek(r);
            if (k == ':') r->pos++;
            else if (k == 'P' && r->pos + 1 < r->n && r->s[r->pos + 1] == '<') {
                r->pos += 2;
                while (r->pos < r->n && r->s[r->pos] != '>') r->pos++;
                if (r->pos >= r->n) { smoe_buf_free(&atom); return rx_err(r, "unterminated group name"); }
                r->pos++;
            } else if (k == '<' && r->pos + 1 < r->n && r->s[r->pos + 1] != '=' && r->s[r->pos + 1] != '!') {
                r->pos++;
                while (r->pos < r->n && r->s[r->pos] != '>') r->pos++;
                if (r->pos >= r->n) { smoe_buf_free(&atom); return rx_err(r, "unterminated group name"); }
                r->pos++;
            } else {
                smoe_buf_free(&atom);
                return rx_err(r, "lookaround, flags and other (?...) groups are not supported");
            }
        }
        smoe_buf_adds(&atom, "(");
        if (rx_alt(r, &atom, depth + 1, false, &asize)) { smoe_buf_free(&atom); return -1; }
        smoe_buf_adds(&atom, ")");
        if (rx_peek(r) != ')') { smoe_buf_free(&atom); return rx_err(r, "missing ')'"); }
        r->pos++;
    } else {
        if (c == '[') {
            if (rx_class(r, &s)) { free(s.r); smoe_buf_free(&atom); return -1; }
        } else if (c == '.') {
            r->pos++;
            /* any character but line terminators (ECMAScript's rule, a
             * subset of Python's) */
            cs_add(&s, '\n', '\n');
            cs_add(&s, '\r', '\r');
            cs_add(&s, 0x2028, 0x2029);
            cs_normalise(&s, true);
        } else {
            uint32_t cp;
            if (c == '\\') {
                r->pos++;
                if (rx_escape(r, &cp, &s, false)) { free(s.r); smoe_buf_free(&atom); return -1; }
                if (cp != UINT32_MAX) cs_add(&s, cp, cp);
            } else {
                if (c == ')') { smoe_buf_free(&atom); return rx_err(r, "unbalanced ')'"); }
                if (rx_char(r, &cp)) { smoe_buf_free(&atom); return -1; }
                cs_add(&s, cp, cp);
            }
            cs_normalise(&s, false);
        }
        if (s.oom) { free(s.r); smoe_buf_free(&atom); return smoe_errf(r->err, "out of memory"); }
        gr_emit_json_charset(&atom, s.r, s.n);
        free(s.r);
    }
    /* quantifier */
    int q = rx_peek(r);
    long mn = 1, mx = 1;
    bool quant = true;
    if (q == '*') { mn = 0; mx = -1; r->pos++; }
    else if (q == '+') { mn = 1; mx = -1; r->pos++; }
    else if (q == '?') { mn = 0; mx = 1; r->pos++; }
    else if (q == '{') {
        size_t p = r->pos + 1;
        long a = -1, b;
        if (p < r->n && r->s[p] >= '0' && r->s[p] <= '9') {
            a = 0;
            while (p < r->n && r->s[p] >= '0' && r->s[p] <= '9') {
                a = a * 10 + (r->s[p++] - '0');
                if (a > RX_MAX_SIZE) { smoe_buf_free(&atom); return rx_err(r, "repetition count too large"); }
            }
        }
        if (p < r->n && r->s[p] == ',') {
            p++;
            if (p < r->n && r->s[p] >= '0' && r->s[p] <= '9') {
                b = 0;
                while (p < r->n && r->s[p] >= '0' && r->s[p] <= '9') {
                    b = b * 10 + (r->s[p++] - '0');
                    if (b > RX_MAX_SIZE) { smoe_buf_free(&atom); return rx_err(r, "repetition count too large"); }
                }
            } else b = -1;
            if (a < 0) a = 0;
        } else b = a;
        if (a < 0 || p >= r->n || r->s[p] != '}') { smoe_buf_free(&atom); return rx_err(r, "bad {m,n} repetition"); }
        if (b >= 0 && b < a) { smoe_buf_free(&atom); return rx_err(r, "repetition {m,n} with n < m"); }
        r->pos = p + 1;
        mn = a;
        mx = b;
    } else quant = false;
    if (quant) {
        if (rx_peek(r) == '?') r->pos++; /* lazy: same language */
        else if (rx_peek(r) == '+') { smoe_buf_free(&atom); return rx_err(r, "possessive quantifiers are not supported"); }
        int nq = rx_peek(r);
        if (nq == '*' || nq == '+' || nq == '?' || nq == '{') { smoe_buf_free(&atom); return rx_err(r, "multiple repeat"); }
    }
    int64_t copies = mx < 0 ? mn + 1 : mx;
    *size = cap_add(*size, cap_mul(asize, copies > 0 ? copies : 1));
    if (*size > RX_MAX_SIZE)
        { smoe_buf_free(&atom); return rx_err(r, "the pattern is too large after expanding its repetitions (limit 100000)"); }
    smoe_buf_adds(o, " ");
    if (!quant) smoe_buf_append(o, &atom);
    else {
        smoe_buf_adds(o, "(");
        smoe_buf_append(o, &atom);
        if (mx < 0 && mn == 0) smoe_buf_adds(o, ")*");
        else if (mx < 0 && mn == 1) smoe_buf_adds(o, ")+");
        else if (mn == 0 && mx == 1) smoe_buf_adds(o, ")?");
        else if (mx < 0) smoe_buf_addf(o, "){%ld,}", mn);
        else smoe_buf_addf(o, "){%ld,%ld}", mn, mx);
    }
    if (atom.oom) o->oom = true;
    smoe_buf_free(&atom);
    return 0;
}

/* Any character (unanchored ends: a search may match anywhere). */
static void any_chars(smoe_buf *o) {
    uint32_t all[4] = {0, 0xD7FF, 0xE000, 0x10FFFF};
    smoe_buf_adds(o, " (");
    gr_emit_json_charset(o, all, 2);
    smoe_buf_adds(o, ")*");
}

static int rx_branch(rx *r, smoe_buf *o, int depth, bool top, int64_t *size) {
    bool anchored_start = false, anchored_end = false;
    if (top && rx_peek(r) == '^') { anchored_start = true; r->pos++; }
    smoe_buf body = {0};
    int rc;
    while ((rc = rx_item(r, &body, depth, top, size)) == 0) {}
    if (rc < 0) { smoe_buf_free(&body); return -1; }
    if (top && rx_peek(r) == '$') { anchored_end = true; r->pos++; }
    smoe_buf_adds(o, "(");
    if (top && !anchored_start) any_chars(o);
    if (body.n || body.oom) smoe_buf_append(o, &body);
    else smoe_buf_adds(o, " \"\"");
    if (top && !anchored_end) any_chars(o);
    smoe_buf_adds(o, " )");
    if (body.oom) o->oom = true;
    smoe_buf_free(&body);
    return 0;
}

static int rx_alt(rx *r, smoe_buf *o, int depth, bool top, int64_t *size) {
    if (depth > RX_MAX_NEST) return rx_err(r, "groups nest too deeply");
    int64_t total = 0;
    for (int i = 0;; i++) {
        int64_t bs = 0;
        if (i) smoe_buf_adds(o, " | ");
        if (rx_branch(r, o, depth, top, &bs)) return -1;
        total = cap_add(total, bs);
        if (total > RX_MAX_SIZE) return rx_err(r, "the pattern is too large after expanding its repetitions (limit 100000)");
        if (rx_peek(r) != '|') break;
        r->pos++;
    }
    *size = cap_add(*size, total);
    return 0;
}

int gr_regex_to_grammar(const char *pat, size_t len, smoe_buf *out, char *err) {
    rx r = {.s = pat, .n = len, .err = err};
    int64_t size = 0;
    smoe_buf_adds(out, "(");
    if (rx_alt(&r, out, 0, true, &size)) return -1;
    if (r.pos != r.n) return rx_err(&r, r.s[r.pos] == ')' ? "unbalanced ')'" : "unexpected character");
    smoe_buf_adds(out, ")");
    if (out->oom) return smoe_errf(err, "out of memory");
    return 0;
}
