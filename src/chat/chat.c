/* chat.c - Mistral chat formats v1 and v3 (see chat.h for the rules).
 *
 * The request is first checked and normalised into a list of turns (user,
 * assistant, tool), then the turns are encoded segment by segment with
 * control-token ids spliced in between. */
#include "chat.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "../grammar/toolcall.h"

/* ------------------------------------------------------------------------
 * A growable byte string
 * ---------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_free(sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------
 * Python-style JSON serialisation
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

/* Decode one UTF-8 character of s[0..n); returns its length (0 if invalid). */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static int dump_string(sbuf *b, const char *str, size_t len, bool ascii, char *err) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    sb_put(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7F) { /* a run of plain ASCII */
            size_t j = i + 1;
            while (j < len && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < 0x7F) j++;
            sb_put(b, str + i, j - i);
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
            sb_str(b, esc);
            i++;
            continue;
        }
        uint32_t cp;
        int l = utf8_decode(s + i, len - i, &cp);
        if (l == 0) return smoe_errf(err, "invalid UTF-8 in a JSON string");
        if (cp >= 0x20 && !ascii) { /* DEL and non-ASCII as themselves */
            sb_put(b, str + i, (size_t)l);
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
            sb_put(b, e, 6);
        }
    }
    sb_put(b, "\"", 1);
    return 0;
}

#define DUMP_MAX_DEPTH 2048

static int dump_value(sbuf *b, const json_t *v, bool ascii, int depth, char *err) {
    if (depth > DUMP_MAX_DEPTH) return smoe_errf(err, "JSON value nested more than %d deep", DUMP_MAX_DEPTH);
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        sb_put(b, "{", 1);
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
            if (!first) sb_put(b, ", ", 2);
            first = false;
            if (dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it), ascii, err)) return -1;
            sb_put(b, ": ", 2);
            if (dump_value(b, json_object_iter_value(it), ascii, depth + 1, err)) return -1;
        }
        sb_put(b, "}", 1);
        return 0;
    }
    case JSON_ARRAY: {
        sb_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) sb_put(b, ", ", 2);
            if (dump_value(b, json_array_get(v, i), ascii, depth + 1, err)) return -1;
        }
        sb_put(b, "]", 1);
        return 0;
    }
    case JSON_STRING:
        return dump_string(b, json_string_value(v), json_string_length(v), ascii, err);
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_str(b, num);
        return 0;
    case JSON_REAL:
        smoe_py_float_repr(json_real_value(v), num);
        sb_str(b, num);
        return 0;
    case JSON_TRUE: sb_str(b, "true"); return 0;
    case JSON_FALSE: sb_str(b, "false"); return 0;
    case JSON_NULL: sb_str(b, "null"); return 0;
    }
    return smoe_errf(err, "unknown JSON value type");
}

char *smoe_json_dumps_py(const json_t *v, bool ensure_ascii, size_t *len, char *err) {
    if (!v) {
        smoe_errf(err, "no JSON value");
        return NULL;
    }
    sbuf b = {0};
    sb_put(&b, "", 0);
    if (dump_value(&b, v, ensure_ascii, 0, err)) {
        sb_free(&b);
        return NULL;
    }
    if (b.oom) {
        sb_free(&b);
        smoe_errf(err, "out of memory");
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}

/* ------------------------------------------------------------------------
 * Format detection and names
 * ---------------------------------------------------------------------- */

static int32_t find_piece(const smoe_vocab *v, const char *piece) {
    size_t len = strlen(piece);
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && v->token_len[i] == len && memcmp(v->tokens[i], piece, len) == 0) return i;
    return -1;
}

smoe_chat_format smoe_chat_detect(const smoe_vocab *v, const char *chat_template) {
    int32_t bi = find_piece(v, "[INST]"), ei = find_piece(v, "[/INST]");
    if (bi < 0 || ei < 0) return SMOE_CHAT_V1;
    if (v->types && v->types[bi] == SMOE_TOKEN_CONTROL && v->types[ei] == SMOE_TOKEN_CONTROL) return SMOE_CHAT_V3;
    if (chat_template && (strstr(chat_template, "[AVAILABLE_TOOLS]") || strstr(chat_template, "[TOOL_CALLS]") ||
                          strstr(chat_template, "[TOOL_RESULTS]")))
        return SMOE_CHAT_V3;
    return SMOE_CHAT_V1;
}

static bool ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y) return false;
    }
    return *a == *b;
}

int smoe_chat_format_from_name(const char *name) {
    static const char *const v1[] = {"v1", "1", "mistral-v1", "mistral_v1", "mixtral-8x7b"};
    static const char *const v3[] = {"v3", "3", "mistral-v3", "mistral_v3", "mixtral-8x22b"};
    if (!name) return -1;
    for (size_t i = 0; i < sizeof v1 / sizeof *v1; i++)
        if (ieq(name, v1[i])) return SMOE_CHAT_V1;
    for (size_t i = 0; i < sizeof v3 / sizeof *v3; i++)
        if (ieq(name, v3[i])) return SMOE_CHAT_V3;
    return -1;
}

const char *smoe_chat_format_name(smoe_chat_format fmt) {
    return fmt == SMOE_CHAT_V1 ? "v1" : fmt == SMOE_CHAT_V3 ? "v3" : "?";
}

/* ------------------------------------------------------------------------
 * Request checking and normalisation
 * ---------------------------------------------------------------------- */

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL };
static const char *const role_names[] = {"system", "user", "assistant", "tool"};

/* One turn after normalisation. */
typedef struct {
    enum role role;
    size_t first_msg;  /* index in the request's messages, for errors */
    sbuf text;         /* user/assistant: joined non-empty texts */
    size_t n_parts;    /* how many non-empty texts went into text */
    json_t *calls;     /* assistant: array of {"name", "arguments", "id"?} */
    json_t *result;    /* tool: {"content": ..., "call_id": ...} */
    const json_t *ids; /* assistant: the ids the model generated for text */
} turn;

typedef struct {
    smoe_chat_format fmt;
    turn *turns;
    size_t n_turns, cap_turns;
    sbuf system;       /* system prompts joined */
    size_t n_system;
    json_t *tools;     /* normalised tools array, or NULL when none */
    char *tool_prompt; /* v1 with tools (tool_choice not none): the instruction */
} conv;

static void conv_free(conv *c) {
    for (size_t i = 0; i < c->n_turns; i++) {
        sb_free(&c->turns[i].text);
        json_decref(c->turns[i].calls);
        json_decref(c->turns[i].result);
    }
    free(c->turns);
    sb_free(&c->system);
    json_decref(c->tools);
    free(c->tool_prompt);
    memset(c, 0, sizeof *c);
}

static turn *conv_add(conv *c, enum role r, size_t msg) {
    if (c->n_turns == c->cap_turns) {
        size_t cap = c->cap_turns ? c->cap_turns * 2 : 16;
        turn *nt = realloc(c->turns, cap * sizeof *nt);
        if (!nt) return NULL;
        c->turns = nt;
        c->cap_turns = cap;
    }
    turn *t = &c->turns[c->n_turns++];
    memset(t, 0, sizeof *t);
    t->role = r;
    t->first_msg = msg;
    return t;
}

/* A short printable rendering of a user-supplied string for messages. */
static const char *shown(const json_t *s, char *buf, size_t cap) {
    const char *p = json_string_value(s);
    size_t n = json_string_length(s), o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) buf[o++] = (p[i] >= 0x20 && p[i] < 0x7F) ? p[i] : '?';
    if (n > 0 && o + 4 >= cap) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o] = '\0';
    return buf;
}

static bool str_is(const json_t *s, const char *lit) {
    size_t n = strlen(lit);
    return json_is_string(s) && json_string_length(s) == n && memcmp(json_string_value(s), lit, n) == 0;
}

static bool is_absent(const json_t *v) { return !v || json_is_null(v); }

/* Append a text fragment, joining with "\n\n" (empty fragments skipped). */
static void add_text(sbuf *b, size_t *n_parts, const char *s, size_t n) {
    if (n == 0) return;
    if (*n_parts) sb_put(b, "\n\n", 2);
    sb_put(b, s, n);
    (*n_parts)++;
}

/* Read a message's "content" (string or text parts) into b.  *present is
 * false for absent/null content. */
static int read_content(const json_t *m, const char *where, sbuf *b, size_t *n_parts, bool *present, char *err) {
    const json_t *c = json_object_get(m, "content");
    *present = !is_absent(c);
    if (!*present) return 0;
    if (json_is_string(c)) {
        add_text(b, n_parts, json_string_value(c), json_string_length(c));
        return 0;
    }
    if (!json_is_array(c))
        return smoe_errf(err, "%s.content: must be a string or an array of text parts, not %s", where,
                         json_is_object(c) ? "an object" : json_is_boolean(c) ? "a boolean" :
                         json_is_number(c) ? "a number" : "this");
    for (size_t i = 0; i < json_array_size(c); i++) {
        const json_t *part = json_array_get(c, i);
        char tb[48];
        if (!json_is_object(part))
            return smoe_errf(err, "%s.content[%zu]: must be an object {\"type\": \"text\", \"text\": ...}", where, i);
        const json_t *ty = json_object_get(part, "type"), *tx = json_object_get(part, "text");
        if (!json_is_string(ty)) return smoe_errf(err, "%s.content[%zu]: 'type' is missing", where, i);
        if (!str_is(ty, "text"))
            return smoe_errf(err, "%s.content[%zu]: part type '%s' is not supported (only text)", where, i,
                             shown(ty, tb, sizeof tb));
        if (!json_is_string(tx)) return smoe_errf(err, "%s.content[%zu]: 'text' must be a string", where, i);
        add_text(b, n_parts, json_string_value(tx), json_string_length(tx));
    }
    return 0;
}

/* jansson's error text with anything unprintable replaced, for one-line errors. */
static const char *clean(char *text) {
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7F) *p = '?';
    return text;
}

static bool valid_function_name(const json_t *n) {
    if (!json_is_string(n)) return false;
    size_t len = json_string_length(n);
    const char *s = json_string_value(n);
    if (len < 1 || len > 64) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-'))
            return false;
    }
    return true;
}

/* Parse a JSON text (any value); NULL when it does not parse. */
static json_t *parse_json_text(const char *s, size_t n, json_error_t *je) {
    bool oom;   /* counted for the caller's check (common.h) */
    return smoe_json_parse(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, je, &oom);
}

static int oom(char *err) { return smoe_errf(err, "out of memory"); }

/* Check one tool call and append its prepared object to calls. */
static int read_tool_call(const json_t *tc, const char *where, json_t *calls, char *err) {
    char tb[80];
    if (!json_is_object(tc)) return smoe_errf(err, "%s: a tool call must be an object", where);
    const json_t *ty = json_object_get(tc, "type");
    if (!is_absent(ty) && !str_is(ty, "function"))
        return smoe_errf(err, "%s.type: must be \"function\"", where);
    const json_t *fn = json_object_get(tc, "function");
    if (!json_is_object(fn)) return smoe_errf(err, "%s: 'function' (an object with name and arguments) is missing", where);
    const json_t *name = json_object_get(fn, "name");
    if (!json_is_string(name)) return smoe_errf(err, "%s.function.name: missing (must be a string)", where);
    if (!valid_function_name(name))
        return smoe_errf(err, "%s.function.name: '%s' must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'", where,
                         shown(name, tb, sizeof tb));
    const json_t *args = json_object_get(fn, "arguments");
    json_t *parsed;
    if (is_absent(args) || (json_is_string(args) && json_string_length(args) == 0)) {
        parsed = json_object();
    } else if (json_is_string(args)) {
        json_error_t je;
        parsed = parse_json_text(json_string_value(args), json_string_length(args), &je);
        if (!parsed)
            return smoe_errf(err, "%s.function.arguments: not valid JSON (%s at character %d)", where,
                             clean(je.text), je.position);
    } else if (json_is_object(args)) {
        parsed = json_deep_copy(args);
    } else {
        return smoe_errf(err, "%s.function.arguments: must be a JSON string (or an object)", where);
    }
    const json_t *id = json_object_get(tc, "id");
    if (!is_absent(id) && !json_is_string(id)) {
        json_decref(parsed);
        return smoe_errf(err, "%s.id: must be a string", where);
    }
    json_t *o = json_object();
    if (!o) {
        json_decref(parsed);
        return oom(err);
    }
    /* json_*_set_new and append_new take the value even when they fail */
    if (json_object_set_new(o, "name", json_deep_copy(name)) || json_object_set_new(o, "arguments", parsed) ||
        (json_is_string(id) && !str_is(id, "null") && json_string_length(id) > 0 &&
         json_object_set_new(o, "id", json_deep_copy(id)))) {
        json_decref(o);
        return oom(err);
    }
    return json_array_append_new(calls, o) ? oom(err) : 0;
}

/* v1 has no tool tokens: the tools go into the prompt as an instruction
 * (toolcall.h's OBJECT format), which depends on tool_choice; none means no
 * instruction at all. */
static int v1_tool_prompt(const json_t *req, const json_t *tools, conv *c, char *err) {
    char e[SMOE_ERR_SIZE];
    smoe_toolset *ts = smoe_toolset_new(tools, e);
    if (!ts) return smoe_errf(err, "%s", e);
    smoe_tool_choice ch;
    int rc = 0;
    if (smoe_tool_choice_parse(ts, json_object_get(req, "tool_choice"), json_object_get(req, "parallel_tool_calls"), &ch,
                               e))
        rc = smoe_errf(err, "%s", e);
    else if (ch.kind != SMOE_TOOLS_NONE && !(c->tool_prompt = smoe_toolcall_object_prompt(ts, &ch, e)))
        rc = smoe_errf(err, "%s", e);
    smoe_toolset_free(ts);
    return rc;
}

/* tools -> the normalised array (NULL when none). */
static int read_tools(const json_t *req, conv *c, char *err) {
    const json_t *tools = json_object_get(req, "tools");
    if (is_absent(tools)) return 0;
    if (!json_is_array(tools)) return smoe_errf(err, "tools: must be an array");
    if (json_array_size(tools) == 0) return 0;
    if (!(c->tools = json_array())) return oom(err);
    char tb[80];
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *t = json_array_get(tools, i);
        if (!json_is_object(t)) return smoe_errf(err, "tools[%zu]: must be an object", i);
        const json_t *ty = json_object_get(t, "type");
        if (!is_absent(ty) && !str_is(ty, "function")) return smoe_errf(err, "tools[%zu].type: must be \"function\"", i);
        const json_t *fn = json_object_get(t, "function");
        if (!json_is_object(fn)) return smoe_errf(err, "tools[%zu]: 'function' (an object) is missing", i);
        const json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description"),
                     *params = json_object_get(fn, "parameters");
        if (!json_is_string(name)) return smoe_errf(err, "tools[%zu].function.name: missing (must be a string)", i);
        if (!valid_function_name(name))
            return smoe_errf(err, "tools[%zu].function.name: '%s' must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'", i,
                             shown(name, tb, sizeof tb));
        if (!is_absent(desc) && !json_is_string(desc))
            return smoe_errf(err, "tools[%zu].function.description: must be a string", i);
        if (!is_absent(params) && !json_is_object(params))
            return smoe_errf(err, "tools[%zu].function.parameters: must be an object (a JSON schema)", i);
        json_t *f = json_object();
        if (!f) return oom(err);
        if (json_object_set_new(f, "name", json_deep_copy(name)) ||
            json_object_set_new(f, "description", is_absent(desc) ? json_string("") : json_deep_copy(desc)) ||
            json_object_set_new(f, "parameters", is_absent(params) ? json_object() : json_deep_copy(params))) {
            json_decref(f);
            return oom(err);
        }
        json_t *o = json_object();
        if (!o) {
            json_decref(f);
            return oom(err);
        }
        if (json_object_set_new(o, "type", json_string("function"))) {
            json_decref(f);
            json_decref(o);
            return oom(err);
        }
        if (json_object_set_new(o, "function", f)) {
            json_decref(o);
            return oom(err);
        }
        if (json_array_append_new(c->tools, o)) return oom(err);
    }
    return c->fmt == SMOE_CHAT_V1 ? v1_tool_prompt(req, tools, c, err) : 0;
}

/* Which roles may follow which (the reference validator's table). */
static bool may_follow(enum role prev, enum role cur) {
    switch (prev) {
    case ROLE_SYSTEM: return cur == ROLE_USER || cur == ROLE_ASSISTANT || cur == ROLE_SYSTEM;
    case ROLE_USER: return cur == ROLE_ASSISTANT || cur == ROLE_SYSTEM || cur == ROLE_USER;
    case ROLE_ASSISTANT: return cur == ROLE_ASSISTANT || cur == ROLE_USER || cur == ROLE_TOOL;
    case ROLE_TOOL: return cur == ROLE_ASSISTANT || cur == ROLE_TOOL;
    }
    return false;
}

static int read_request(const json_t *req, conv *c, char *err) {
    if (!json_is_object(req)) return smoe_errf(err, "the request must be a JSON object");
    const json_t *msgs = json_object_get(req, "messages");
    if (!msgs) return smoe_errf(err, "the request has no 'messages' array");
    if (!json_is_array(msgs)) return smoe_errf(err, "'messages' must be an array");
    size_t n = json_array_size(msgs);
    if (n == 0) return smoe_errf(err, "'messages' is empty: a conversation needs at least one message");
    if (read_tools(req, c, err)) return -1;

    enum role prev = ROLE_SYSTEM;
    size_t pending_calls = 0, calls_from = 0;
    turn *cur = NULL; /* the turn consecutive messages merge into */
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        char where[48], tb[48];
        snprintf(where, sizeof where, "messages[%zu]", i);
        if (!json_is_object(m)) return smoe_errf(err, "%s: must be an object with 'role' and 'content'", where);
        const json_t *rj = json_object_get(m, "role");
        if (!rj) return smoe_errf(err, "%s: 'role' is missing", where);
        if (!json_is_string(rj)) return smoe_errf(err, "%s: 'role' must be a string", where);
        enum role r;
        if (str_is(rj, "system")) r = ROLE_SYSTEM;
        else if (str_is(rj, "user")) r = ROLE_USER;
        else if (str_is(rj, "assistant")) r = ROLE_ASSISTANT;
        else if (str_is(rj, "tool")) r = ROLE_TOOL;
        else
            return smoe_errf(err, "%s: role '%s' is not one of system, user, assistant, tool", where,
                             shown(rj, tb, sizeof tb));

        if (i > 0 && !may_follow(prev, r))
            return smoe_errf(err, "%s: role '%s' cannot follow role '%s'%s", where, role_names[r],
                             role_names[prev],
                             r == ROLE_TOOL ? " (tool results follow the assistant message that made the calls)" :
                             prev == ROLE_TOOL ? " (after tool results comes an assistant message)" : "");
        if ((r == ROLE_ASSISTANT || r == ROLE_USER) && pending_calls)
            return smoe_errf(err, "%s: messages[%zu] made tool calls that have no tool result (%zu missing)", where,
                             calls_from, pending_calls);
        if (r == ROLE_TOOL && !pending_calls)
            return smoe_errf(err, "%s: a tool result with no tool call to answer (more tool messages than calls)",
                             where);

        sbuf text = {0};
        size_t n_parts = 0;
        bool present;
        if (read_content(m, where, &text, &n_parts, &present, err)) {
            sb_free(&text);
            return -1;
        }
        if (text.oom) { /* the content would be cut short */
            sb_free(&text);
            return oom(err);
        }
        if (!present && r != ROLE_ASSISTANT) {
            sb_free(&text);
            return smoe_errf(err, "%s: content is missing (a %s message needs content)", where, role_names[r]);
        }

        if (r == ROLE_SYSTEM) {
            if (n_parts) add_text(&c->system, &c->n_system, text.p, text.n);
            sb_free(&text);
            cur = NULL;
        } else if (r == ROLE_TOOL) {
            const json_t *id = json_object_get(m, "tool_call_id"), *name = json_object_get(m, "name");
            if (!is_absent(name) && !json_is_string(name)) {
                sb_free(&text);
                return smoe_errf(err, "%s.name: must be a string", where);
            }
            if (!json_is_string(id) && !(c->fmt == SMOE_CHAT_V1 && is_absent(id))) {
                sb_free(&text);
                return smoe_errf(err, "%s: %s (the v3 format names the call each result answers)", where,
                                 is_absent(id) ? "tool_call_id is missing" : "tool_call_id must be a string");
            }
            json_t *val = NULL;
            if (text.n == 0) val = json_object();
            else {
                json_error_t je;
                val = parse_json_text(text.p, text.n, &je);
                if (!val) val = json_stringn_nocheck(text.p, text.n);
            }
            sb_free(&text);
            turn *t = conv_add(c, ROLE_TOOL, i);
            json_t *o = json_object();
            if (!t || !o || !val || json_object_set_new(o, "content", val) ||
                (json_is_string(id) && json_object_set_new(o, "call_id", json_deep_copy(id)))) {
                json_decref(o);
                return oom(err);
            }
            t->result = o;
            pending_calls--;
            cur = NULL;
        } else {
            /* user or assistant: merge into the current turn of that role */
            const json_t *tcs = r == ROLE_ASSISTANT ? json_object_get(m, "tool_calls") : NULL;
            size_t n_calls = 0;
            if (!is_absent(tcs)) {
                if (!json_is_array(tcs)) {
                    sb_free(&text);
                    return smoe_errf(err, "%s.tool_calls: must be an array", where);
                }
                n_calls = json_array_size(tcs);
            }
            if (r == ROLE_ASSISTANT) {
                if (n_calls && n_parts) {
                    sb_free(&text);
                    return smoe_errf(err, "%s: an assistant message has either content or tool_calls, not both",
                                     where);
                }
                if (!n_calls && !n_parts) {
                    sb_free(&text);
                    return smoe_errf(err, "%s: an assistant message needs content or tool_calls (both are empty)",
                                     where);
                }
            }
            if (!cur || cur->role != r) {
                if (!(cur = conv_add(c, r, i))) {
                    sb_free(&text);
                    return oom(err);
                }
            }
            if (n_parts) add_text(&cur->text, &cur->n_parts, text.p, text.n);
            /* generated ids stand for the text only while it is one message */
            const json_t *gen = json_object_get(m, SMOE_CHAT_GENERATED_IDS);
            cur->ids = r == ROLE_ASSISTANT && cur->n_parts == 1 && json_is_array(gen) ? gen : NULL;
            sb_free(&text);
            if (n_calls) {
                if (!cur->calls && !(cur->calls = json_array())) return oom(err);
                for (size_t k = 0; k < n_calls; k++) {
                    char w2[96];
                    snprintf(w2, sizeof w2, "%s.tool_calls[%zu]", where, k);
                    if (read_tool_call(json_array_get(tcs, k), w2, cur->calls, err)) return -1;
                }
                pending_calls = n_calls;
                calls_from = i;
            }
            if (r == ROLE_ASSISTANT && cur->calls && cur->n_parts)
                return smoe_errf(err, "%s: consecutive assistant messages mix content and tool_calls", where);
            if (cur->text.oom) return oom(err);
        }
        if (c->system.oom) return oom(err);
        prev = r;
    }
    if (prev != ROLE_USER && prev != ROLE_TOOL)
        return smoe_errf(err, "the conversation must end with a user or tool message (messages[%zu] is %s)", n - 1,
                         prev == ROLE_ASSISTANT ? "from the assistant" : "a system message");
    if (pending_calls)
        return smoe_errf(err, "messages[%zu] made tool calls that have no tool result (%zu missing)", calls_from,
                         pending_calls);

    /* The first turn must be a user turn. */
    if (c->n_turns == 0 || c->turns[0].role != ROLE_USER) {
        if (!conv_add(c, ROLE_USER, 0)) return oom(err);
        turn t = c->turns[c->n_turns - 1];
        memmove(c->turns + 1, c->turns, (c->n_turns - 1) * sizeof *c->turns);
        c->turns[0] = t;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Rendering
 * ---------------------------------------------------------------------- */

typedef struct {
    const smoe_tokenizer *tok;
    const smoe_vocab *v;
    smoe_tokens *out;
    char *err;
} enc;

static int put_id(enc *e, int32_t id) { return smoe_tokens_push(e->out, id) ? oom(e->err) : 0; }

static int put_text(enc *e, const char *s, size_t n) {
    if (n == 0) return 0;
    return smoe_tokenize(e->tok, s, n, e->v->add_space_prefix, e->out, e->err);
}

/* An assistant answer: the ids the model generated when the caller kept
 * them (so a cached conversation stays a prefix), else its text. */
static int put_answer(enc *e, const turn *t, size_t n) {
    if (!t->ids) return put_text(e, t->text.p, n);
    size_t i;
    const json_t *id;
    json_array_foreach(t->ids, i, id) {
        json_int_t v = json_integer_value(id);
        if (!json_is_integer(id) || v < 0 || v >= e->v->n_tokens)
            return smoe_errf(e->err, "%s: entry %zu is not a token id of this vocabulary", SMOE_CHAT_GENERATED_IDS, i);
        if (put_id(e, (int32_t)v)) return -1;
    }
    return 0;
}

static int put_json(enc *e, const json_t *j) {
    size_t n;
    char *s = smoe_json_dumps_py(j, false, &n, e->err);
    if (!s) return -1;
    int rc = put_text(e, s, n);
    free(s);
    return rc;
}

/* One v1 user-side turn: "[INST] " + text + " [/INST]" as one segment. */
static int put_inst(enc *e, const sbuf *s) {
    if (s->oom) return oom(e->err);
    return put_text(e, s->p, s->n);
}

/* json.dumps({key: v}) as one text segment (v1 tool turns). */
static int put_json_as(enc *e, const char *key, json_t *v) {
    json_t *o = json_object();
    if (!o || json_object_set(o, key, v)) {
        json_decref(o);
        return oom(e->err);
    }
    int rc = put_json(e, o);
    json_decref(o);
    return rc;
}

static int render_v1(enc *e, const conv *c) {
    size_t first_user = 0;
    while (c->turns[first_user].role != ROLE_USER) first_user++;
    for (size_t k = 0; k < c->n_turns; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_USER) {
            sbuf s = {0};
            sb_str(&s, "[INST] ");
            if (k == first_user && c->n_system) {
                sb_put(&s, c->system.p, c->system.n);
                sb_put(&s, "\n\n", 2);
            }
            if (k == first_user && c->tool_prompt) { /* after the system prompt: both stay on turn 1 */
                sb_str(&s, c->tool_prompt);
                sb_put(&s, "\n\n", 2);
            }
            sb_put(&s, t->text.p, t->text.n);
            sb_str(&s, " [/INST]");
            int rc = put_inst(e, &s);
            sb_free(&s);
            if (rc) return -1;
        } else if (t->role == ROLE_TOOL) {
            /* consecutive results share one turn: {"tool_results": [...]} */
            json_t *all = json_array();
            if (!all) return oom(e->err);
            for (; k < c->n_turns && c->turns[k].role == ROLE_TOOL; k++)
                if (json_array_append(all, c->turns[k].result)) {
                    json_decref(all);
                    return oom(e->err);
                }
            k--;
            json_t *o = json_object();
            char *js = NULL;
            size_t n = 0;
            if (o && !json_object_set(o, "tool_results", all)) js = smoe_json_dumps_py(o, false, &n, e->err);
            else oom(e->err);
            json_decref(o);
            json_decref(all);
            if (!js) return -1;
            sbuf s = {0};
            sb_str(&s, "[INST] ");
            sb_put(&s, js, n);
            sb_str(&s, " [/INST]");
            free(js);
            int rc = put_inst(e, &s);
            sb_free(&s);
            if (rc) return -1;
        } else if (t->calls) { /* what the model writes under the tools grammar */
            if (put_json_as(e, "tool_calls", t->calls) || put_id(e, e->v->eos_id)) return -1;
        } else if (c->tool_prompt) { /* an answer in words is {"content": ...} then */
            json_t *txt = json_stringn_nocheck(t->text.p ? t->text.p : "", t->text.n);
            int rc = txt ? put_json_as(e, "content", txt) : oom(e->err);
            json_decref(txt);
            if (rc || put_id(e, e->v->eos_id)) return -1;
        } else {
            if (put_answer(e, t, t->text.n) || put_id(e, e->v->eos_id)) return -1;
        }
    }
    return 0;
}

typedef struct {
    int32_t inst, end_inst, tool_calls, tools, end_tools, results, end_results;
} v3_ids;

static int need(enc *e, int32_t id, const char *piece) {
    if (id >= 0) return 0;
    return smoe_errf(e->err, "this vocabulary has no '%s' token, which the v3 chat format needs%s", piece,
                     strcmp(piece, "[INST]") == 0 || strcmp(piece, "[/INST]") == 0 ? " (try the v1 format)" :
                     " for tools");
}

static int render_v3(enc *e, const conv *c) {
    v3_ids ids = {find_piece(e->v, "[INST]"), find_piece(e->v, "[/INST]"), find_piece(e->v, "[TOOL_CALLS]"),
                  find_piece(e->v, "[AVAILABLE_TOOLS]"), find_piece(e->v, "[/AVAILABLE_TOOLS]"),
                  find_piece(e->v, "[TOOL_RESULTS]"), find_piece(e->v, "[/TOOL_RESULTS]")};
    if (need(e, ids.inst, "[INST]") || need(e, ids.end_inst, "[/INST]")) return -1;
    if (c->tools && (need(e, ids.tools, "[AVAILABLE_TOOLS]") || need(e, ids.end_tools, "[/AVAILABLE_TOOLS]")))
        return -1;
    size_t last_user = 0;
    for (size_t k = 0; k < c->n_turns; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_USER) last_user = k;
        if (t->calls && need(e, ids.tool_calls, "[TOOL_CALLS]")) return -1;
        if (t->role == ROLE_TOOL &&
            (need(e, ids.results, "[TOOL_RESULTS]") || need(e, ids.end_results, "[/TOOL_RESULTS]")))
            return -1;
    }
    for (size_t k = 0; k < c->n_turns; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_USER) {
            if (k == last_user && c->tools &&
                (put_id(e, ids.tools) || put_json(e, c->tools) || put_id(e, ids.end_tools)))
                return -1;
            if (put_id(e, ids.inst)) return -1;
            if (k == last_user && c->n_system) {
                sbuf s = {0};
                sb_put(&s, c->system.p, c->system.n);
                sb_put(&s, "\n\n", 2);
                sb_put(&s, t->text.p, t->text.n);
                int rc = s.oom ? oom(e->err) : put_text(e, s.p, s.n);
                sb_free(&s);
                if (rc) return -1;
            } else if (put_text(e, t->text.p, t->text.n)) {
                return -1;
            }
            if (put_id(e, ids.end_inst)) return -1;
        } else if (t->role == ROLE_ASSISTANT) {
            if (t->calls) {
                if (put_id(e, ids.tool_calls) || put_json(e, t->calls)) return -1;
            } else {
                size_t n = t->text.n;
                while (n > 0 && t->text.p[n - 1] == ' ') n--;
                if (put_answer(e, t, n)) return -1;
            }
            if (put_id(e, e->v->eos_id)) return -1;
        } else {
            if (put_id(e, ids.results) || put_json(e, t->result) || put_id(e, ids.end_results)) return -1;
        }
    }
    return 0;
}

int smoe_chat_render(const smoe_tokenizer *tok, smoe_chat_format fmt, const json_t *request, smoe_tokens *out,
                     char *err) {
    if (fmt != SMOE_CHAT_V1 && fmt != SMOE_CHAT_V3) return smoe_errf(err, "unknown chat format %d", (int)fmt);
    const smoe_vocab *v = smoe_tokenizer_vocab(tok);
    if (v->bos_id < 0 || v->bos_id >= v->n_tokens || v->eos_id < 0 || v->eos_id >= v->n_tokens)
        return smoe_errf(err, "the vocabulary has no BOS/EOS token, which chat formats need");
    conv c = {0};
    c.fmt = fmt;
    int32_t n0 = out->n;
    int rc = read_request(request, &c, err);
    if (rc == 0) {
        enc e = {tok, v, out, err};
        rc = put_id(&e, v->bos_id);
        if (rc == 0) rc = fmt == SMOE_CHAT_V1 ? render_v1(&e, &c) : render_v3(&e, &c);
    }
    conv_free(&c);
    if (rc) out->n = n0;
    return rc ? -1 : 0;
}
