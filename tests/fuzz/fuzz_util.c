/* fuzz_util.c - checks and synthetic vocabularies for the fuzz targets. */
#include "fuzz_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "model/model.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: fuzz property failed: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

bool fz_utf8_valid(const char *str, size_t n) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1Fu; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0Fu; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07u; }
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

void fz_check_err(const char *err) {
    size_t n = strnlen(err, SMOE_ERR_SIZE);
    FZ_CHECK(n < SMOE_ERR_SIZE, "error message not NUL-terminated");
    FZ_CHECK(n > 0, "empty error message");
    FZ_CHECK(memchr(err, '\n', n) == NULL, "error message spans lines: %s", err);
    /* servers put errors into JSON, which needs valid UTF-8 */
    FZ_CHECK(fz_utf8_valid(err, n), "error message is not valid UTF-8: %s", err);
}

/* ---------------------------------------------------------------------------
 * Any vocabulary through the tokenizer
 * ------------------------------------------------------------------------- */

/* Tokenize some texts, decode the result and arbitrary ids. */
void fz_exercise_tokenizer(const smoe_vocab *v, const uint8_t *extra, size_t extra_len) {
    char err[SMOE_ERR_SIZE];
    smoe_tokenizer *t = smoe_tokenizer_new(v, err);
    if (!t) {
        fz_check_err(err);
        return;
    }
    static const char *const texts[] = {
        "Hello world", " leading  spaces ", "[INST] x [/INST]", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
        "bad \xff\xc3 utf8", "<s></s><unk>", "\xe2\x96\x81\xe2\x96\x81",
    };
    size_t cap = smoe_detok_cap(t);
    char *buf = malloc(cap);
    if (!buf) abort();
    for (size_t k = 0; k <= sizeof texts / sizeof *texts; k++) {
        const char *s = k < sizeof texts / sizeof *texts ? texts[k] : (const char *)extra;
        size_t n = k < sizeof texts / sizeof *texts ? strlen(s) : extra_len;
        for (int prefix = 0; prefix < 2; prefix++) {
            smoe_tokens out = {0};
            if (smoe_tokenize(t, s, n, prefix, &out, err)) {
                fz_check_err(err);
                FZ_CHECK(out.n == 0, "failed encode left %d ids", (int)out.n);
                smoe_tokens_free(&out);
                continue;
            }
            smoe_detok d;
            smoe_detok_init(&d, t, prefix);
            for (int32_t i = 0; i <= out.n; i++) {
                if (i < out.n)
                    FZ_CHECK(out.ids[i] >= 0 && out.ids[i] < v->n_tokens, "id %d out of range", (int)out.ids[i]);
                size_t w = i < out.n ? smoe_detok_push(&d, out.ids[i], buf, cap) : smoe_detok_flush(&d, buf, cap);
                FZ_CHECK(w < cap && fz_utf8_valid(buf, w), "decoded chunk invalid (%zu bytes, room %zu)", w, cap);
            }
            smoe_tokens_free(&out);
        }
    }
    /* every id once, and a few outside the vocabulary */
    smoe_detok d;
    smoe_detok_init(&d, t, true);
    for (int32_t id = -2; id < v->n_tokens + 2; id++) {
        size_t w = smoe_detok_push(&d, id, buf, cap);
        FZ_CHECK(w < cap && fz_utf8_valid(buf, w), "decoding id %d gave invalid text", (int)id);
        char tb[64];
        FZ_CHECK(smoe_token_bytes(t, id, tb, sizeof tb) <= sizeof tb, "smoe_token_bytes overran");
    }
    size_t w = smoe_detok_flush(&d, buf, cap);
    FZ_CHECK(w < cap && fz_utf8_valid(buf, w), "flush gave invalid text");
    free(buf);
    smoe_tokenizer_free(t);
}

/* ---------------------------------------------------------------------------
 * Synthetic vocabularies
 * ------------------------------------------------------------------------- */

#define SP "\xe2\x96\x81" /* U+2581 */

static const char *const control_pieces[] = {
    "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
};

static const char *const user_defined[] = {"[REFERENCE_DOC_0]", "[REFERENCE_DOC_1]", "<|x|>", "@@", SP "@"};

/* Single characters: every one becomes a piece. */
static const char *const chars[] = {
    SP, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t",
    "u", "v", "w", "x", "y", "z", "A", "I", "N", "S", "T", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    "{", "}", "[", "]", "\"", ":", ",", ".", "_", "-", "/", "\\", "(", ")", "!", "?", "\n", "\t",
    "\xc3\xa9" /* é */, "\xc3\xbc" /* ü */, "\xe6\x97\xa5" /* 日 */, "\xe6\x9c\xac" /* 本 */,
    "\xe8\xaa\x9e" /* 語 */, "\xe2\x82\xac" /* € */, "\xf0\x9f\x98\x80" /* 😀 */, "\xef\xbf\xbd" /* U+FFFD */,
};

/* Words: each adds all of its character prefixes, so every piece can be
 * reached by merging two shorter ones, as in a trained BPE model. */
static const char *const words[] = {
    SP "the", SP "and", SP "hello", SP "world", "ing", SP "in", SP "is", SP "it", SP "[", SP "{\"", "\":",
    "\",", SP "\"", "name", SP "name", "arguments", SP "function", "type", "content", SP "user",
    SP "assistant", "tool", SP SP, SP SP SP SP, SP SP SP SP SP SP SP SP, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
    SP "\xc3\xa9t\xc3\xa9", "ll", "he", "ello", "123", "00", "\n\n", "." SP, "," SP, "INST", "/INST",
    SP "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "the",
};

/* Pieces marked UNUSED in FZ_VOCAB_UNUSED. */
static const char *const unused[] = {SP "hello", "ll", "\xe6\x97\xa5\xe6\x9c\xac", SP "in", SP SP SP SP};

typedef struct {
    char **s;
    int n, cap;
} strlist;

static void add(strlist *l, const char *s, size_t len) {
    for (int i = 0; i < l->n; i++)
        if (strlen(l->s[i]) == len && memcmp(l->s[i], s, len) == 0) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->s = realloc(l->s, (size_t)l->cap * sizeof *l->s);
        if (!l->s) abort();
    }
    char *c = malloc(len + 1);
    if (!c) abort();
    memcpy(c, s, len);
    c[len] = 0;
    l->s[l->n++] = c;
}

static size_t n_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((uint8_t)*s & 0xC0) != 0x80;
    return n;
}

static void set(smoe_vocab *v, int32_t id, const char *s, float score, int32_t type) {
    v->tokens[id] = strdup(s);
    if (!v->tokens[id]) abort();
    v->token_len[id] = (uint32_t)strlen(s);
    v->scores[id] = score;
    v->types[id] = type;
}

static void build(smoe_vocab *v, int flavor) {
    strlist merges = {0};
    for (size_t i = 0; i < sizeof chars / sizeof *chars; i++) add(&merges, chars[i], strlen(chars[i]));
    /* longer pieces after shorter ones: lower score, merged later */
    for (size_t len = 2; len <= 8; len++)
        for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
            const char *s = words[w];
            if (n_chars(s) < len) continue;
            size_t k = 0, c = 0;
            while (s[k] && c < len) {
                k++;
                while (((uint8_t)s[k] & 0xC0) == 0x80) k++;
                c++;
            }
            add(&merges, s, k);
        }
    bool bytes = flavor != FZ_VOCAB_NOBYTES;
    size_t n_ctl = sizeof control_pieces / sizeof *control_pieces;
    size_t n_ud = sizeof user_defined / sizeof *user_defined;
    int32_t total = (int32_t)(3 + n_ctl + (bytes ? 256 : 0) + n_ud + (size_t)merges.n + 1);
    char err[SMOE_ERR_SIZE];
    memset(v, 0, sizeof *v);
    if (smoe_vocab_alloc(v, total, err)) abort();
    int32_t id = 0;
    set(v, id++, "<unk>", 0, SMOE_TOKEN_UNKNOWN);
    set(v, id++, "<s>", 0, SMOE_TOKEN_CONTROL);
    set(v, id++, "</s>", 0, SMOE_TOKEN_CONTROL);
    for (size_t i = 0; i < n_ctl; i++) set(v, id++, control_pieces[i], 0, SMOE_TOKEN_CONTROL);
    if (bytes)
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
            set(v, id++, name, 0, SMOE_TOKEN_BYTE);
        }
    for (size_t i = 0; i < n_ud; i++) set(v, id++, user_defined[i], 0, SMOE_TOKEN_USER_DEFINED);
    for (int i = 0; i < merges.n; i++) {
        int32_t type = SMOE_TOKEN_NORMAL;
        if (flavor == FZ_VOCAB_UNUSED)
            for (size_t u = 0; u < sizeof unused / sizeof *unused; u++)
                if (strcmp(merges.s[i], unused[u]) == 0) type = SMOE_TOKEN_UNUSED;
        /* single characters last in score order, as SentencePiece stores them */
        float score = n_chars(merges.s[i]) == 1 ? -10000.0f - (float)i : -(float)i;
        set(v, id++, merges.s[i], score, type);
        free(merges.s[i]);
    }
    free(merges.s);
    /* a duplicate piece: the first one wins in the tokenizer */
    set(v, id++, "the", 5.0f, SMOE_TOKEN_NORMAL);
    if (id != total) abort();
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->pad_id = -1;
    v->add_bos = true;
    v->add_space_prefix = flavor != FZ_VOCAB_NOBYTES;
    v->byte_fallback = bytes;
    snprintf(v->model, sizeof v->model, "llama");
}

const smoe_vocab *fz_vocab(int flavor) {
    static smoe_vocab vocabs[FZ_VOCAB_COUNT];
    static bool built[FZ_VOCAB_COUNT];
    if (flavor < 0 || flavor >= FZ_VOCAB_COUNT) flavor = 0;
    if (!built[flavor]) {
        build(&vocabs[flavor], flavor);
        built[flavor] = true;
    }
    return &vocabs[flavor];
}

/* ---------------------------------------------------------------------------
 * The server targets' model
 * ------------------------------------------------------------------------- */

void fz_tiny_server_model(const char *tag, smoe_model **m, smoe_tokenizer **tok, char *path_out, size_t path_cap) {
    char err[SMOE_ERR_SIZE];
    smoe_synth_opts so;
    FZ_CHECK(smoe_synth_preset("tiny", &so) == 0, "preset");
    so.dim = 32; so.n_layers = 1; so.n_heads = 2; so.n_kv_heads = 1; so.ffn_dim = 64;
    so.n_experts = 2; so.n_experts_used = 1; so.n_ctx = 256;
    char path[96];
    snprintf(path, sizeof path, "/tmp/smoe-fuzz-%s-%d.gguf", tag, (int)getpid());
    FZ_CHECK(smoe_synth_write(&so, path, err) == 0, "synth: %s", err);
    *m = smoe_model_load(path, err);
    FZ_CHECK(*m, "load: %s", err);
    *tok = smoe_tokenizer_new(&(*m)->vocab, err);
    FZ_CHECK(*tok, "tokenizer: %s", err);
    if (path_out) snprintf(path_out, path_cap, "%s", path);
    else unlink(path);
}
