/* pyjson.c - Python's json.dumps() and float repr() (see pyjson.h). */
#include "pyjson.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/buf.h"
#include "../base/utf8.h"
#include "../base/common.h"

/* ------------------------------------------------------------------------
 * repr() of a float
 * ---------------------------------------------------------------------- */

/* Shortest decimal digits of d (d finite, > 0): digits without trailing
 * zeros into dig, returns decpt (value = 0.DIGITS x 10^decpt). */
static int shortest_digits(double d, char *dig) {
    char tmp[48];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        bool ok = strtod(tmp, NULL) == d;
        if (!ok && p > 1) {
            /* The correctly rounded p-digit candidate misses only where the
             * rounding interval is lopsided (d a power of two); then its
             * neighbour one unit up or down may still read back as d. */
            char *e = strchr(tmp, 'e');
            int ex = atoi(e + 1);
            unsigned long long m = 0;
            for (const char *c = tmp; c < e; c++)
                if (*c >= '0' && *c <= '9') m = m * 10 + (unsigned)(*c - '0');
            for (int dir = -1; dir <= 1 && !ok; dir += 2) {
                unsigned long long mm = dir < 0 ? m - 1 : m + 1;
                snprintf(tmp, sizeof tmp, "%llue%d", mm, ex - (p - 1));
                ok = strtod(tmp, NULL) == d;
            }
        }
        if (ok) break;
    }
    /* tmp is now "D[.DDD]e[+-]X" or "MMMMeX" (a neighbour); both read as
     * digits then exponent. */
    char *e = strchr(tmp, 'e');
    int ex = atoi(e + 1);
    int n = 0, int_digits = 0;
    bool seen_dot = false;
    for (const char *c = tmp; c < e; c++) {
        if (*c == '.') seen_dot = true;
        else if (*c >= '0' && *c <= '9') {
            dig[n++] = *c;
            if (!seen_dot) int_digits++;
        }
    }
    /* value = DIGITS x 10^(ex - (n - int_digits)) = 0.DIGITS x 10^(ex + int_digits) */
    int decpt = ex + int_digits;
    /* leading zeros (a neighbour like 0999 cannot occur, but be safe) */
    int lead = 0;
    while (lead < n - 1 && dig[lead] == '0') lead++;
    if (lead) {
        memmove(dig, dig + lead, (size_t)(n - lead));
        n -= lead;
        decpt -= lead;
    }
    while (n > 1 && dig[n - 1] == '0') n--;
    dig[n] = '\0';
    return decpt;
}

size_t smoe_py_float_repr(double d, char *buf) {
    if (isnan(d)) return (size_t)snprintf(buf, 32, "NaN");
    if (isinf(d)) return (size_t)snprintf(buf, 32, d < 0 ? "-Infinity" : "Infinity");
    if (d == 0) return (size_t)snprintf(buf, 32, signbit(d) ? "-0.0" : "0.0");
    char dig[24];
    char *o = buf;
    if (d < 0) {
        *o++ = '-';
        d = -d;
    }
    int decpt = shortest_digits(d, dig);
    int n = (int)strlen(dig);
    int exp10 = decpt - 1;
    if (exp10 < -4 || exp10 >= 16) {
        *o++ = dig[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)(n - 1));
            o += n - 1;
        }
        o += sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++) *o++ = '0';
        memcpy(o, dig, (size_t)n);
        o += n;
    } else if (decpt >= n) {
        memcpy(o, dig, (size_t)n);
        o += n;
        for (int i = 0; i < decpt - n; i++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, dig, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, dig + decpt, (size_t)(n - decpt));
        o += n - decpt;
    }
    *o = '\0';
    return (size_t)(o - buf);
}

/* ------------------------------------------------------------------------
 * json.dumps()
 * ---------------------------------------------------------------------- */

static int dump_string(smoe_buf *b, const char *str, size_t len, bool ascii, char *err) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    smoe_buf_add(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7F) { /* a run of plain ASCII */
            size_t j = i + 1;
            while (j < len && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < 0x7F) j++;
            smoe_buf_add(b, str + i, j - i);
            i = j;
            continue;
        }
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc) {
            smoe_buf_adds(b, esc);
            i++;
            continue;
        }
        uint32_t cp;
        int l = smoe_utf8_decode(s + i, len - i, &cp);
        if (l == 0) return smoe_errf(err, "invalid UTF-8 in a JSON string");
        if (cp >= 0x20 && !ascii) { /* DEL and non-ASCII as themselves */
            smoe_buf_add(b, str + i, (size_t)l);
            i += (size_t)l;
            continue;
        }
        i += (size_t)l;
        uint32_t units[2];
        int nu = 0;
        if (cp >= 0x10000) {
            units[nu++] = 0xD800 + ((cp - 0x10000) >> 10);
            units[nu++] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
        } else {
            units[nu++] = cp;
        }
        for (int k = 0; k < nu; k++) {
            char e[6] = {'\\', 'u', hex[(units[k] >> 12) & 15], hex[(units[k] >> 8) & 15],
                         hex[(units[k] >> 4) & 15], hex[units[k] & 15]};
            smoe_buf_add(b, e, 6);
        }
    }
    smoe_buf_add(b, "\"", 1);
    return 0;
}

#define DUMP_MAX_DEPTH 2048

static int dump_value(smoe_buf *b, const json_t *v, bool ascii, int depth, char *err) {
    if (depth > DUMP_MAX_DEPTH) return smoe_errf(err, "JSON value nested more than %d deep", DUMP_MAX_DEPTH);
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        smoe_buf_add(b, "{", 1);
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
            if (!first) smoe_buf_add(b, ", ", 2);
            first = false;
            if (dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it), ascii, err)) return -1;
            smoe_buf_add(b, ": ", 2);
            if (dump_value(b, json_object_iter_value(it), ascii, depth + 1, err)) return -1;
        }
        smoe_buf_add(b, "}", 1);
        return 0;
    }
    case JSON_ARRAY: {
        smoe_buf_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) smoe_buf_add(b, ", ", 2);
            if (dump_value(b, json_array_get(v, i), ascii, depth + 1, err)) return -1;
        }
        smoe_buf_add(b, "]", 1);
        return 0;
    }
    case JSON_STRING:
        return dump_string(b, json_string_value(v), json_string_length(v), ascii, err);
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        smoe_buf_adds(b, num);
        return 0;
    case JSON_REAL:
        smoe_py_float_repr(json_real_value(v), num);
        smoe_buf_adds(b, num);
        return 0;
    case JSON_TRUE: smoe_buf_adds(b, "true"); return 0;
    case JSON_FALSE: smoe_buf_adds(b, "false"); return 0;
    case JSON_NULL: smoe_buf_adds(b, "null"); return 0;
    }
    return smoe_errf(err, "unknown JSON value type");
}

char *smoe_json_dumps_py(const json_t *v, bool ensure_ascii, size_t *len, char *err) {
    if (!v) {
        smoe_errf(err, "no JSON value");
        return NULL;
    }
    smoe_buf b = {0};
    smoe_buf_add(&b, "", 0);
    if (dump_value(&b, v, ensure_ascii, 0, err)) {
        smoe_buf_free(&b);
        return NULL;
    }
    if (b.oom) {
        smoe_buf_free(&b);
        smoe_errf(err, "out of memory");
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}
