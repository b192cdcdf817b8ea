/* tcstream.c - tool-call documents parsed as they stream in (see the
 * STREAMING part of toolcall.h).  A byte-level JSON scanner that only
 * tracks nesting, strings and the keys at the levels that matter: the
 * call objects ({"name", "arguments", "id"}) and, for the OBJECT format,
 * the top object ({"tool_calls"} or {"content"}). */
#include <stdlib.h>
#include <string.h>

#include "../base/utf8.h"
#include "../base/common.h"
#include "toolcall.h"

enum { R_NONE, R_KEY, R_NAME, R_CONTENT };

struct smoe_tcstream {
    smoe_toolcall_format fmt;
    uint64_t rng;
    smoe_tcs_fn fn;
    void *user;
    int depth;            /* open { and [ */
    int call_level;       /* depth inside a call object */
    bool in_str, esc, expect_value, failed;
    int role;             /* what the current string is (R_*) */
    char key[16];         /* the last key at the call or top level (truncated) */
    size_t key_n;
    char name[72];        /* the call's function name */
    size_t name_n;
    int index;            /* calls begun so far */
    bool begun;           /* the current call had its BEGIN */
    char id[SMOE_TOOL_ID_LEN + 1];
    bool in_args;         /* inside the arguments value */
    /* content decoding (OBJECT format): a pending \uXXXX and surrogate */
    char hex[4];
    int n_hex;            /* -1: not in a \u escape */
    uint32_t hi;          /* pending high surrogate, 0 = none */
    char out[256];        /* decoded content waiting to be emitted */
    size_t n_out;
};

smoe_tcstream *smoe_tcstream_new(smoe_toolcall_format fmt, uint64_t rng_seed, smoe_tcs_fn fn, void *user) {
    smoe_tcstream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->fmt = fmt;
    s->rng = rng_seed;
    s->fn = fn;
    s->user = user;
    s->call_level = fmt == SMOE_TOOLCALL_V3 ? 2 : 3;
    s->n_hex = -1;
    return s;
}

void smoe_tcstream_free(smoe_tcstream *s) { free(s); }

/* --- content: JSON string escapes decoded to UTF-8 ----------------------- */

static int flush_out(smoe_tcstream *s) {
    if (!s->n_out) return 0;
    int r = s->fn(s->user, SMOE_TCS_CONTENT, 0, NULL, NULL, s->out, s->n_out);
    s->n_out = 0;
    return r;
}

static int put_cp(smoe_tcstream *s, uint32_t cp) {
    char u[4];
    size_t n = (size_t)smoe_utf8_encode(cp, u);
    if (s->n_out + n > sizeof s->out) {
        int r = flush_out(s);
        if (r) return r;
    }
    memcpy(s->out + s->n_out, u, n);
    s->n_out += n;
    return 0;
}

static int content_byte(smoe_tcstream *s, unsigned char c, bool escaped) {
    if (s->n_hex >= 0) {
        s->hex[s->n_hex++] = (char)c;
        if (s->n_hex < 4) return 0;
        char h[5] = {s->hex[0], s->hex[1], s->hex[2], s->hex[3], 0};
        uint32_t cp = (uint32_t)strtoul(h, NULL, 16);
        s->n_hex = -1;
        if (cp >= 0xD800 && cp < 0xDC00) { s->hi = cp; return 0; }
        if (cp >= 0xDC00 && cp < 0xE000) {
            if (!s->hi) return put_cp(s, 0xFFFD);
            cp = 0x10000 + ((s->hi - 0xD800) << 10) + (cp - 0xDC00);
            s->hi = 0;
            return put_cp(s, cp);
        }
        if (s->hi) { s->hi = 0; int r = put_cp(s, 0xFFFD); if (r) return r; }
        return put_cp(s, cp);
    }
    /* a high surrogate not followed by \u (which may be its low half) */
    if (s->hi && !(escaped && c == 'u')) { s->hi = 0; int r = put_cp(s, 0xFFFD); if (r) return r; }
    if (!escaped) {
        if (s->n_out + 1 > sizeof s->out) { int r = flush_out(s); if (r) return r; }
        s->out[s->n_out++] = (char)c;
        return 0;
    }
    switch (c) {
    case 'n': return put_cp(s, '\n');
    case 't': return put_cp(s, '\t');
    case 'r': return put_cp(s, '\r');
    case 'b': return put_cp(s, '\b');
    case 'f': return put_cp(s, '\f');
    case 'u': s->n_hex = 0; return 0;
    default: return put_cp(s, c); /* \" \\ \/ */
    }
}

/* --- the scanner ------------------------------------------------------- */

static bool key_is(const smoe_tcstream *s, const char *k) { return s->key_n == strlen(k) && !memcmp(s->key, k, s->key_n); }

/* A string ended: act on what it was. */
static int string_done(smoe_tcstream *s) {
    int r = 0;
    if (s->role == R_NAME) {
        s->name[s->name_n] = 0;
        smoe_toolcall_new_id(&s->rng, s->id);
        s->begun = true;
        r = s->fn(s->user, SMOE_TCS_BEGIN, s->index, s->name, s->id, NULL, 0);
    } else if (s->role == R_CONTENT) {
        r = flush_out(s);
    }
    s->role = R_NONE;
    return r;
}

static int scan_byte(smoe_tcstream *s, unsigned char c) {
    if (s->in_str) {
        bool escaped = s->esc;
        if (s->esc) s->esc = false;
        else if (c == '\\') { s->esc = true; return 0; }
        else if (c == '"') { s->in_str = false; return string_done(s); }
        if (s->role == R_KEY) {
            if (s->key_n < sizeof s->key) s->key[s->key_n++] = (char)c;
        } else if (s->role == R_NAME) {
            if (s->name_n + 1 < sizeof s->name) s->name[s->name_n++] = (char)c;
        } else if (s->role == R_CONTENT) {
            return content_byte(s, c, escaped);
        }
        return 0;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 0;
    int level = s->depth; /* the level this byte sits at, before it opens or closes */
    bool top = s->fmt == SMOE_TOOLCALL_OBJECT && level == 1;
    bool at_call = level == s->call_level;
    if ((at_call || top) && s->expect_value) {
        s->expect_value = false;
        if (at_call && key_is(s, "arguments")) {
            if (c != '{' || !s->begun) return -1;
            s->in_args = true;
        } else if (c == '"') {
            s->in_str = true;
            s->role = at_call && key_is(s, "name") ? R_NAME : top && key_is(s, "content") ? R_CONTENT : R_NONE;
            s->name_n = 0;
            return 0;
        } else if (top && key_is(s, "tool_calls") && c != '[') {
            return -1;
        }
    }
    switch (c) {
    case '"':
        s->in_str = true;
        s->role = at_call || top ? R_KEY : R_NONE;
        if (s->role == R_KEY) s->key_n = 0;
        return 0;
    case ':':
        if (at_call || top) s->expect_value = true;
        return 0;
    case '{':
    case '[':
        if (s->depth == 0 && (s->fmt == SMOE_TOOLCALL_V3 ? c != '[' : c != '{')) return -1;
        if (++s->depth > 100000) return -1;
        if (s->depth == s->call_level && !s->in_args) {
            if (c != '{') return -1;
            s->begun = false;
        }
        return 0;
    case '}':
    case ']':
        if (s->depth == 0) return -1;
        s->depth--;
        if (s->in_args && s->depth == s->call_level) s->in_args = false; /* the arguments object closed */
        else if (s->depth == s->call_level - 1 && c == '}' && !s->in_args) {
            if (!s->begun) return -1; /* a call without a name */
            s->begun = false;
            return s->fn(s->user, SMOE_TCS_END, s->index++, s->name, s->id, NULL, 0);
        }
        return 0;
    default:
        return 0;
    }
}

int smoe_tcstream_push(smoe_tcstream *s, const char *text, size_t len) {
    if (s->failed) return -1;
    size_t args_from = 0;
    bool args_open = s->in_args;
    for (size_t i = 0; i < len; i++) {
        bool was = s->in_args;
        int r = scan_byte(s, (unsigned char)text[i]);
        if (r) {
            s->failed = r < 0;
            return r;
        }
        if (!was && s->in_args) { args_from = i; args_open = true; }
        if (was && !s->in_args) {
            /* the arguments ended with this byte: emit up to it */
            r = s->fn(s->user, SMOE_TCS_ARGS, s->index, s->name, s->id, text + args_from, i + 1 - args_from);
            if (r) return r;
            args_open = false;
        }
    }
    if (args_open && s->in_args && len > args_from)
        return s->fn(s->user, SMOE_TCS_ARGS, s->index, s->name, s->id, text + args_from, len - args_from);
    if (s->role == R_CONTENT) return flush_out(s);
    return 0;
}
