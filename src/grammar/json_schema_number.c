/* json_schema_number.c - "integer" and "number" schemas with their
 * bounds (minimum, maximum, exclusive ones) as exact grammar ranges of
 * decimal digits. */
#include "json_schema_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool all_char(const char *s, char c) {
    for (; *s; s++) if (*s != c) return false;
    return true;
}

/* x, y: digit strings of the same length n, x <= y; every string of n
 * digits between them (leading zeros allowed below the first position). */
static void same_len(smoe_buf *o, const char *x, const char *y, int n) {
    if (n == 1) { smoe_buf_addf(o, "[%c-%c]", x[0], y[0]); return; }
    if (x[0] == y[0]) {
        smoe_buf_addf(o, "(\"%c\" ", x[0]);
        same_len(o, x + 1, y + 1, n - 1);
        smoe_buf_adds(o, ")");
        return;
    }
    char nines[24], zeros[24];
    memset(nines, '9', (size_t)n - 1);
    nines[n - 1] = 0;
    memset(zeros, '0', (size_t)n - 1);
    zeros[n - 1] = 0;
    char lo = x[0], hi = y[0];
    int alts = 0;
    smoe_buf_adds(o, "(");
    if (!all_char(x + 1, '0')) {
        smoe_buf_addf(o, "\"%c\" ", x[0]);
        same_len(o, x + 1, nines, n - 1);
        lo++;
        alts++;
    }
    if (!all_char(y + 1, '9')) {
        if (alts++) smoe_buf_adds(o, " | ");
        smoe_buf_addf(o, "\"%c\" ", y[0]);
        same_len(o, zeros, y + 1, n - 1);
        hi--;
    }
    if (lo <= hi) {
        if (alts++) smoe_buf_adds(o, " | ");
        smoe_buf_addf(o, "[%c-%c] [0-9]{%d}", lo, hi, n - 1);
    }
    smoe_buf_adds(o, ")");
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
static void uint_range(smoe_buf *o, uint64_t a, uint64_t b, bool inf) {
    int la = ndigits(a), lb = inf ? la : ndigits(b);
    smoe_buf_adds(o, "(");
    int alts = 0;
    for (int L = la; L <= lb; L++) {
        uint64_t lo = L == la ? a : pow10u(L - 1);
        uint64_t hi = (!inf && L == lb) ? b : pow10u(L) - 1; /* L <= 19: fits */
        char xs[24], ys[24];
        snprintf(xs, sizeof xs, "%0*llu", L, (unsigned long long)lo);
        snprintf(ys, sizeof ys, "%0*llu", L, (unsigned long long)hi);
        if (alts++) smoe_buf_adds(o, " | ");
        same_len(o, xs, ys, L);
    }
    if (inf && la <= 17) { /* open-ended: up to 18 digits, as j-uint */
        if (alts++) smoe_buf_adds(o, " | ");
        smoe_buf_addf(o, "[1-9] [0-9]{%d,17}", la);
    }
    smoe_buf_adds(o, ")");
}

static uint64_t neg_mag(int64_t v) { return (uint64_t)(-(v + 1)) + 1; } /* |v| for v < 0 */

/* Integers in [lo, hi] (either side open when has_* is false). */
static void int_range(smoe_buf *o, bool has_lo, int64_t lo, bool has_hi, int64_t hi) {
    smoe_buf_adds(o, "(");
    int alts = 0;
    if (!has_lo || lo < 0) {
        int64_t up = has_hi && hi < -1 ? hi : -1;
        if (alts++) smoe_buf_adds(o, " | ");
        smoe_buf_adds(o, "\"-\" ");
        uint_range(o, neg_mag(up), has_lo ? neg_mag(lo) : 0, !has_lo);
    }
    if (!has_hi || hi >= 0) {
        uint64_t from = has_lo && lo > 0 ? (uint64_t)lo : 0;
        if (alts++) smoe_buf_adds(o, " | ");
        uint_range(o, from, has_hi ? (uint64_t)hi : 0, !has_hi);
    }
    smoe_buf_adds(o, ")");
}

typedef struct nbound {
    bool has, excl;
    int64_t v;
} nbound;

/* Plain decimals m >= 0 with a <(=) m <(=) b (a, b whole numbers).
 * Returns the number of alternatives written. */
static int magnitude(smoe_buf *o, uint64_t a, bool a_excl, bool b_has, uint64_t b, bool b_excl) {
    int alts = 0;
    smoe_buf_adds(o, "(");
    /* whole part strictly inside: any fraction */
    uint64_t ilo = a_excl ? a + 1 : a;
    if (!b_has || (b >= 1 && ilo <= b - 1)) {
        alts++;
        uint_range(o, ilo, b_has ? b - 1 : 0, !b_has);
        smoe_buf_adds(o, " j-frac-any");
    }
    char num[24];
    if (a_excl && (!b_has || a < b)) {
        if (alts++) smoe_buf_adds(o, " | ");
        snprintf(num, sizeof num, "%llu", (unsigned long long)a);
        gb_lit(o, num, strlen(num));
        smoe_buf_adds(o, " j-frac-nonzero");
    }
    if (b_has && !b_excl && (b > a || (b == a && !a_excl))) {
        if (alts++) smoe_buf_adds(o, " | ");
        snprintf(num, sizeof num, "%llu", (unsigned long long)b);
        gb_lit(o, num, strlen(num));
        smoe_buf_adds(o, " j-frac-zero");
    }
    smoe_buf_adds(o, ")");
    return alts;
}

static void number_range(smoe_jsg *b, smoe_buf *o, nbound lo, nbound hi) {
    js_need(b, P_FRAC);
    smoe_buf_adds(o, "(");
    int alts = 0;
    /* v >= 0 */
    if (!hi.has || hi.v > 0 || (hi.v == 0 && !hi.excl)) {
        bool lo_in = lo.has && lo.v >= 0;
        smoe_buf t = {0};
        if (magnitude(&t, lo_in ? (uint64_t)lo.v : 0, lo_in ? lo.excl : false, hi.has, hi.has ? (uint64_t)hi.v : 0,
                      hi.excl)) {
            alts++;
            smoe_buf_append(o, &t);
        }
        smoe_buf_free(&t);
    }
    /* v < 0: v = -m with m > 0 */
    if (!lo.has || lo.v < 0) {
        bool hi_neg = hi.has && hi.v < 0;
        smoe_buf t = {0};
        if (magnitude(&t, hi_neg ? neg_mag(hi.v) : 0, hi_neg ? hi.excl : true, lo.has, lo.has ? neg_mag(lo.v) : 0,
                      lo.excl)) {
            if (alts++) smoe_buf_adds(o, " | ");
            smoe_buf_adds(o, "\"-\" ");
            smoe_buf_append(o, &t);
        }
        smoe_buf_free(&t);
    }
    smoe_buf_adds(o, ")");
}

/* A numeric keyword: 0 absent, 1 present (value in *d, *whole tells
 * whether it is a whole number and *iv its value when it fits int64). */
static int num_kw(smoe_jsg *b, const json_t *s, const char *k, double *d, bool *whole, int64_t *iv) {
    const json_t *v = json_object_get(s, k);
    if (!v) return 0;
    if (json_is_boolean(v)) return js_where_err(b, "'%s' must be a number (draft-4 boolean form is not supported)", k);
    if (json_is_integer(v)) {
        *iv = (int64_t)json_integer_value(v);
        *d = (double)*iv;
        *whole = true;
        return 1;
    }
    if (!json_is_real(v)) return js_where_err(b, "'%s' must be a number", k);
    *d = json_real_value(v);
    if (!isfinite(*d)) return js_where_err(b, "'%s' must be finite", k);
    *whole = *d == floor(*d);
    if (fabs(*d) >= 9.2e18) return js_where_err(b, "'%s' %g is too large", k, *d);
    *iv = (int64_t)*d;
    return 1;
}

int js_gen_integer(smoe_jsg *b, const json_t *s, smoe_buf *o) {
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
                if (whole && iv == INT64_MAX) return js_where_err(b, "exclusiveMinimum leaves no integer");
                v = whole ? iv + 1 : (int64_t)ceil(d);
            }
            if (!has_lo || v > lo) lo = v;
            has_lo = true;
        } else {
            if (i == 2) v = whole ? iv : (int64_t)floor(d);
            else {
                if (whole && iv == INT64_MIN) return js_where_err(b, "exclusiveMaximum leaves no integer");
                v = whole ? iv - 1 : (int64_t)floor(d);
            }
            if (!has_hi || v < hi) hi = v;
            has_hi = true;
        }
    }
    if (has_lo && has_hi && lo > hi)
        return js_where_err(b, "unsatisfiable: no integer lies between the minimum and the maximum");
    if (!has_lo && !has_hi) {
        js_need(b, P_INTEGER);
        smoe_buf_adds(o, "j-integer");
        return 0;
    }
    int_range(o, has_lo, lo, has_hi, hi);
    return 0;
}

int js_gen_number(smoe_jsg *b, const json_t *s, smoe_buf *o) {
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
            return js_where_err(b, "'%s' %g: bounds of a \"number\" must be whole numbers (bounds of integers may be any number)",
                             keys[i], d);
        bool excl = i == 1 || i == 3;
        if (i < 2) {
            if (!lo.has || iv > lo.v || (iv == lo.v && excl)) lo = (nbound){true, excl, iv};
        } else {
            if (!hi.has || iv < hi.v || (iv == hi.v && excl)) hi = (nbound){true, excl, iv};
        }
    }
    if (lo.has && hi.has && (lo.v > hi.v || (lo.v == hi.v && (lo.excl || hi.excl))))
        return js_where_err(b, "unsatisfiable: the minimum is above the maximum");
    if (!lo.has && !hi.has) {
        js_need(b, P_NUMBER);
        smoe_buf_adds(o, "j-number");
        return 0;
    }
    number_range(b, o, lo, hi);
    return 0;
}
