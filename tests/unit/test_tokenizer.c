/* test_tokenizer.c - SentencePiece BPE on hand-built vocabularies (merge
 * order, ties, byte fallback, <unk> runs, user-defined and unused pieces,
 * invalid UTF-8), the heap BPE against a plain quadratic one, the streaming
 * detokenizer's edge cases, and the speed of encoding 1 MB of text with the
 * Mixtral 8x7B vocabulary (from ../shared, or $SMOE_SHARED; skipped when
 * absent). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"
#include "tokenizer/tokenizer.h"

#define SP "\xe2\x96\x81" /* "▁" */
#define FFFD "\xef\xbf\xbd"

/* ---------------------------------------------------------------------------
 * Hand-built vocabularies: <unk> 0, <s> 1, </s> 2, optionally the 256 byte
 * tokens at 3..258, then the given pieces.
 * ------------------------------------------------------------------------- */

typedef struct {
    const char *piece;
    float score;
    int type; /* 0 = NORMAL */
} spec;

static void set_tok(smoe_vocab *v, int32_t id, const char *s, float score, int type) {
    v->tokens[id] = strdup(s);
    assert_non_null(v->tokens[id]);
    v->token_len[id] = (uint32_t)strlen(s);
    v->scores[id] = score;
    v->types[id] = type;
}

static void make_vocab(smoe_vocab *v, const spec *specs, int n, bool bytes) {
    char err[SMOE_ERR_SIZE];
    memset(v, 0, sizeof *v);
    int32_t total = 3 + (bytes ? 256 : 0) + n;
    assert_int_equal(smoe_vocab_alloc(v, total, err), 0);
    set_tok(v, 0, "<unk>", 0, SMOE_TOKEN_UNKNOWN);
    set_tok(v, 1, "<s>", 0, SMOE_TOKEN_CONTROL);
    set_tok(v, 2, "</s>", 0, SMOE_TOKEN_CONTROL);
    int32_t id = 3;
    if (bytes) {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
            set_tok(v, id++, name, 0, SMOE_TOKEN_BYTE);
        }
    }
    for (int i = 0; i < n; i++)
        set_tok(v, id++, specs[i].piece, specs[i].score, specs[i].type ? specs[i].type : SMOE_TOKEN_NORMAL);
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->pad_id = -1;
    v->add_bos = true;
    v->add_space_prefix = true;
    v->byte_fallback = bytes;
    snprintf(v->model, sizeof v->model, "llama");
}

static smoe_tokenizer *new_tok(const smoe_vocab *v) {
    char err[SMOE_ERR_SIZE];
    smoe_tokenizer *t = smoe_tokenizer_new(v, err);
    if (!t) fail_msg("smoe_tokenizer_new: %s", err);
    return t;
}

/* Encode text[0..len) and compare the pieces with the NULL-terminated
 * list want. */
static void expect_n(const smoe_tokenizer *t, const char *text, size_t len, bool prefix, const char *const *want) {
    char err[SMOE_ERR_SIZE];
    smoe_tokens out = {0};
    if (smoe_tokenize(t, text, len, prefix, &out, err)) fail_msg("smoe_tokenize: %s", err);
    const smoe_vocab *v = smoe_tokenizer_vocab(t);
    int n = 0;
    while (want[n]) n++;
    char got[1024] = "";
    for (int32_t i = 0; i < out.n; i++) {
        size_t k = strlen(got);
        snprintf(got + k, sizeof got - k, "%s[%s]", i ? " " : "", v->tokens[out.ids[i]]);
    }
    if (out.n != n) fail_msg("'%s': got %d tokens %s, want %d", text, (int)out.n, got, n);
    for (int i = 0; i < n; i++)
        if (strcmp(v->tokens[out.ids[i]], want[i]) != 0)
            fail_msg("'%s': token %d is '%s', want '%s' (all: %s)", text, i, v->tokens[out.ids[i]], want[i], got);
    smoe_tokens_free(&out);
}

static void expect(const smoe_tokenizer *t, const char *text, bool prefix, const char *const *want) {
    expect_n(t, text, strlen(text), prefix, want);
}

#define PIECES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

/* ---------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------- */

static void test_merge_highest_score_first(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s1[] = {{"a", -10, 0}, {"b", -10, 0}, {"c", -10, 0}, {"ab", -2, 0}, {"bc", -1, 0}};
    make_vocab(&v, s1, 5, false);
    smoe_tokenizer *t = new_tok(&v);
    expect(t, "abc", false, PIECES("a", "bc"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);

    const spec s2[] = {{"a", -10, 0}, {"b", -10, 0}, {"c", -10, 0}, {"ab", -2, 0}, {"bc", -1, 0}, {"abc", -3, 0}};
    make_vocab(&v, s2, 6, false);
    t = new_tok(&v);
    expect(t, "abc", false, PIECES("abc")); /* bc first, then a+bc */
    expect(t, "abcabc", false, PIECES("abc", "abc"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_merge_ties_go_left(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s[] = {{"a", -10, 0}, {"b", -10, 0}, {"c", -10, 0}, {"ab", -1, 0}, {"bc", -1, 0}, {"aa", -1, 0}};
    make_vocab(&v, s, 6, false);
    smoe_tokenizer *t = new_tok(&v);
    expect(t, "abc", false, PIECES("ab", "c"));
    expect(t, "aaa", false, PIECES("aa", "a"));
    expect(t, "aaaa", false, PIECES("aa", "aa"));
    expect(t, "aaaaa", false, PIECES("aa", "aa", "a"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_spaces_and_dummy_prefix(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s[] = {{SP, -10, 0}, {"a", -10, 0}, {"b", -10, 0}, {SP "a", -1, 0}, {SP "b", -2, 0},
                      {SP SP, -1e9f, 0}};
    make_vocab(&v, s, 6, true);
    smoe_tokenizer *t = new_tok(&v);
    expect(t, "a b", true, PIECES(SP "a", SP "b"));
    expect(t, "a b", false, PIECES("a", SP "b"));
    expect(t, "", true, NONE); /* no dummy prefix for empty text */
    expect(t, "", false, NONE);
    expect(t, " ", true, PIECES(SP SP));
    expect(t, " a", true, PIECES(SP, SP "a")); /* ▁a outranks ▁▁ */
    expect(t, "a\n", true, PIECES(SP "a", "<0x0A>"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_byte_fallback(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s[] = {{SP, -10, 0}, {"a", -10, 0}};
    make_vocab(&v, s, 2, true);
    smoe_tokenizer *t = new_tok(&v);
    expect(t, "\xc3\xa9", false, PIECES("<0xC3>", "<0xA9>"));
    expect(t, "a\xf0\x9f\x98\x80", false, PIECES("a", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"));
    expect_n(t, "a\0a", 3, false, PIECES("a", "<0x00>", "a")); /* NUL is an ordinary character */
    expect_n(t, "\0", 1, true, PIECES(SP, "<0x00>"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_unknown_runs_without_bytes(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s[] = {{"a", -10, 0}, {"b", -10, 0}};
    make_vocab(&v, s, 2, false);
    smoe_tokenizer *t = new_tok(&v);
    /* a run of unknown characters is one <unk>, as SentencePiece merges them */
    expect(t, "a\xe2\x98\x83\xe2\x98\x83" "b", false, PIECES("a", "<unk>", "b"));
    expect(t, "\xe2\x98\x83" "a\xe2\x98\x83", false, PIECES("<unk>", "a", "<unk>"));
    smoe_tokenizer_free(t);

    /* no <unk> either: an error, and the list is left as it was */
    v.unk_id = -1;
    t = new_tok(&v);
    char err[SMOE_ERR_SIZE] = "";
    smoe_tokens out = {0};
    assert_int_equal(smoe_tokens_push(&out, 42), 0);
    assert_int_equal(smoe_tokenize(t, "ab\xe2\x98\x83", 5, false, &out, err), -1);
    assert_int_equal(out.n, 1);
    assert_true(strstr(err, "not in the vocabulary") != NULL);
    smoe_tokens_free(&out);
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s[] = {{"a", -10, 0}, {"b", -10, 0}, {FFFD, -5, 0}};
    make_vocab(&v, s, 3, true);
    smoe_tokenizer *t = new_tok(&v);
    /* every byte that does not begin a well-formed character is one U+FFFD */
    expect(t, "a\xff" "b", false, PIECES("a", FFFD, "b"));
    expect(t, "a\xe2\x82", false, PIECES("a", FFFD, FFFD));         /* cut short */
    expect(t, "\xe2\x82" "a", false, PIECES(FFFD, FFFD, "a"));
    expect(t, "\xc0\xaf", false, PIECES(FFFD, FFFD));                /* overlong */
    expect(t, "\xed\xa0\x80", false, PIECES(FFFD, FFFD, FFFD));      /* surrogate */
    expect(t, "\xf4\x90\x80\x80", false, PIECES(FFFD, FFFD, FFFD, FFFD)); /* > U+10FFFF */
    expect(t, "\x80\x80", false, PIECES(FFFD, FFFD));
    expect(t, "\xef\xbf\xbd", false, PIECES(FFFD)); /* a real U+FFFD stays one */
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_control_pieces_never_match(void **state) {
    (void)state;
    smoe_vocab v;
    /* "<s>" exists only as a control token (id 1); "[INST]" only as one too */
    const spec s[] = {{"<", -10, 0}, {"s", -10, 0}, {">", -10, 0}, {"<s", -1, 0},  {"[", -10, 0},
                      {"I", -10, 0}, {"N", -10, 0}, {"S", -10, 0}, {"T", -10, 0}, {"]", -10, 0},
                      {"[INST]", 0, SMOE_TOKEN_CONTROL}, {"IN", -2, 0}, {"INST", -3, 0}, {"ST", -2, 0}};
    make_vocab(&v, s, 14, true);
    smoe_tokenizer *t = new_tok(&v);
    expect(t, "<s>", false, PIECES("<s", ">"));
    expect(t, "[INST]", false, PIECES("[", "INST", "]"));
    expect(t, "<0x41>", false, PIECES("<", "<0x30>", "<0x78>", "<0x34>", "<0x31>", ">"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_user_defined_pieces(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s[] = {{SP, -10, 0}, {"a", -10, 0}, {"x", -10, 0}, {"<", -10, 0}, {">", -10, 0},
                      {"<x>", 0, SMOE_TOKEN_USER_DEFINED}, {"<x>>", 0, SMOE_TOKEN_USER_DEFINED},
                      {"a<", -1, 0}, {SP "a", -2, 0}, {"<x", -1, 0}};
    make_vocab(&v, s, 10, true);
    smoe_tokenizer *t = new_tok(&v);
    /* matched whole, longest first, and never merged with a neighbour */
    expect(t, "a<x>a", true, PIECES(SP "a", "<x>", "a"));
    expect(t, "<x>>", false, PIECES("<x>>"));
    expect(t, "<x><x>", false, PIECES("<x>", "<x>"));
    expect(t, "<xa", false, PIECES("<x", "a"));
    expect(t, "a<a", false, PIECES("a<", "a"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_unused_pieces_are_split_back(void **state) {
    (void)state;
    smoe_vocab v;
    const spec s[] = {{"a", -10, 0}, {"b", -10, 0}, {"c", -10, 0}, {"ab", -2, 0}, {"bc", -5, 0},
                      {"abc", -1, SMOE_TOKEN_UNUSED}, {"abcc", -0.5f, 0}};
    make_vocab(&v, s, 7, false);
    smoe_tokenizer *t = new_tok(&v);
    /* ab, then abc (unused) is formed but undone into its halves */
    expect(t, "abc", false, PIECES("ab", "c"));
    /* an unused piece may still be a step towards a normal one */
    expect(t, "abcc", false, PIECES("abcc"));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

/* ---------------------------------------------------------------------------
 * The heap BPE against a quadratic one on random vocabularies and texts
 * ------------------------------------------------------------------------- */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) { return (uint32_t)(smoe_splitmix64(&rng_state) % n); }

/* Reference: scan every adjacent pair, merge the best, repeat.  Symbols
 * are byte ranges of the normalised text, kept in an array. */
static void naive_bpe(const smoe_vocab *v, const char *text, int32_t *ids, int *n_ids) {
    char norm[256];
    int start[128], len[128], n = 0;
    size_t m = 0;
    memcpy(norm, SP, 3); /* dummy prefix */
    start[n] = 0;
    len[n++] = 3;
    m = 3;
    for (const char *p = text; *p; p++) {
        start[n] = (int)m;
        if (*p == ' ') {
            memcpy(norm + m, SP, 3);
            m += 3;
            len[n++] = 3;
        } else {
            norm[m++] = *p;
            len[n++] = 1;
        }
    }
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (int i = 0; i + 1 < n; i++) {
            size_t cat = (size_t)(len[i] + len[i + 1]);
            for (int32_t id = 0; id < v->n_tokens; id++) {
                if (v->types[id] != SMOE_TOKEN_NORMAL || v->token_len[id] != cat ||
                    memcmp(v->tokens[id], norm + start[i], cat) != 0)
                    continue;
                if (best < 0 || v->scores[id] > best_score) { best = i; best_score = v->scores[id]; }
                break;
            }
        }
        if (best < 0) break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, (size_t)(n - best - 2) * sizeof *start);
        memmove(len + best + 1, len + best + 2, (size_t)(n - best - 2) * sizeof *len);
        n--;
    }
    *n_ids = 0;
    for (int i = 0; i < n; i++) {
        int32_t found = -1;
        for (int32_t id = 0; id < v->n_tokens && found < 0; id++)
            if (v->types[id] == SMOE_TOKEN_NORMAL && v->token_len[id] == (uint32_t)len[i] &&
                memcmp(v->tokens[id], norm + start[i], (size_t)len[i]) == 0)
                found = id;
        if (found >= 0) ids[(*n_ids)++] = found;
        else
            for (int k = 0; k < len[i]; k++) ids[(*n_ids)++] = 3 + (uint8_t)norm[start[i] + k]; /* byte tokens */
    }
}

static void test_heap_matches_quadratic(void **state) {
    (void)state;
    rng_state = 12345;
    const char *alpha[] = {"a", "b", "c", "d", SP};
    for (int round = 0; round < 40; round++) {
        /* random pieces of 2..4 symbols over the alphabet; few distinct
         * scores, so that ties are common */
        spec specs[80];
        char text_store[80][16];
        int n = 0;
        for (int i = 0; i < 4; i++) specs[n++] = (spec){alpha[i], -100, 0};
        while (n < 60) {
            int len = 2 + (int)rnd(3);
            text_store[n][0] = 0;
            for (int k = 0; k < len; k++) strcat(text_store[n], alpha[rnd(5)]);
            bool dup = false;
            for (int j = 0; j < n; j++) dup |= strcmp(specs[j].piece, text_store[n]) == 0;
            if (dup) continue;
            specs[n] = (spec){text_store[n], -(float)rnd(6), 0};
            n++;
        }
        smoe_vocab v;
        make_vocab(&v, specs, n, true);
        smoe_tokenizer *t = new_tok(&v);
        for (int k = 0; k < 50; k++) {
            char text[64];
            int len = (int)rnd(40);
            for (int i = 0; i < len; i++) text[i] = "abcde  "[rnd(7)]; /* 'e' is not a piece */
            text[len] = 0;
            int32_t want[512];
            int n_want;
            naive_bpe(&v, text, want, &n_want);
            char err[SMOE_ERR_SIZE];
            smoe_tokens out = {0};
            assert_int_equal(smoe_tokenize(t, text, (size_t)len, true, &out, err), 0);
            if (len == 0) n_want = 0;
            if (out.n != n_want || (n_want && memcmp(out.ids, want, (size_t)n_want * sizeof *want) != 0))
                fail_msg("round %d text '%s': heap BPE differs from the quadratic one", round, text);
            smoe_tokens_free(&out);
        }
        smoe_tokenizer_free(t);
        smoe_vocab_free(&v);
    }
}

/* ---------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

static bool valid_utf8(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint8_t c = u[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || i + len > n) return false;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1Fu : len == 3 ? c & 0x0Fu : c & 0x07u;
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (u[i + k] & 0x3Fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

typedef struct {
    smoe_vocab v;
    smoe_tokenizer *t;
    int32_t id_a, id_sp_a, id_sp, id_sp_b;
} dfix;

static void dfix_init(dfix *f) {
    const spec s[] = {{"a", -1, 0}, {SP "a", -1, 0}, {SP, -1, 0}, {SP "b" SP "c", -1, 0}};
    make_vocab(&f->v, s, 4, true);
    f->t = new_tok(&f->v);
    f->id_a = 259;
    f->id_sp_a = 260;
    f->id_sp = 261;
    f->id_sp_b = 262;
}

static void dfix_free(dfix *f) {
    smoe_tokenizer_free(f->t);
    smoe_vocab_free(&f->v);
}

/* Feed ids one at a time and compare each push's output with want[i]; the
 * final flush with want[n]. */
static void expect_stream(const dfix *f, bool strip, const int32_t *ids, int n, const char *const *want) {
    smoe_detok d;
    smoe_detok_init(&d, f->t, strip);
    char out[80];
    for (int i = 0; i <= n; i++) {
        size_t k = i < n ? smoe_detok_push(&d, ids[i], out, sizeof out) : smoe_detok_flush(&d, out, sizeof out);
        assert_int_equal(k, strlen(want[i]));
        if (strcmp(out, want[i]) != 0) fail_msg("step %d: got '%s', want '%s'", i, out, want[i]);
        assert_true(valid_utf8(out, k));
    }
}

#define B(x) (3 + (x))
#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (int)(sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

static void test_detok_holds_back_split_characters(void **state) {
    (void)state;
    dfix f;
    dfix_init(&f);
    expect_stream(&f, true, IDS(B(0xF0), B(0x9F), B(0x98), B(0x80)), PIECES("", "", "", "\xf0\x9f\x98\x80", ""));
    expect_stream(&f, true, IDS(B(0xC3), B(0xA9), f.id_a), PIECES("", "\xc3\xa9", "a", ""));
    expect_stream(&f, false, IDS(B(0x41), B(0xE2), B(0x82), B(0xAC), B(0x42)), PIECES("A", "", "", "\xe2\x82\xac", "B", ""));
    dfix_free(&f);
}

static void test_detok_replaces_impossible_bytes(void **state) {
    (void)state;
    dfix f;
    dfix_init(&f);
    /* bytes that can never start a character come out at once */
    expect_stream(&f, true, IDS(B(0xFF), B(0x80), B(0xC0)), PIECES(FFFD, FFFD, FFFD, ""));
    /* a lead byte whose next byte rules it out: one U+FFFD per byte */
    expect_stream(&f, true, IDS(B(0xE0), B(0x80)), PIECES("", FFFD FFFD, ""));          /* overlong */
    expect_stream(&f, true, IDS(B(0xED), B(0xA0), B(0x80)), PIECES("", FFFD FFFD, FFFD, "")); /* surrogate */
    expect_stream(&f, true, IDS(B(0xF4), B(0x90)), PIECES("", FFFD FFFD, ""));          /* > U+10FFFF */
    expect_stream(&f, true, IDS(B(0xE2), B(0x82), B(0x41)), PIECES("", "", FFFD FFFD "A", ""));
    /* a piece or a control token ends the byte run; so does the end */
    expect_stream(&f, true, IDS(B(0xE2), B(0x82), f.id_a), PIECES("", "", FFFD FFFD "a", ""));
    expect_stream(&f, true, IDS(B(0xE2), B(0x82), 2, B(0xAC)), PIECES("", "", FFFD FFFD, FFFD, ""));
    expect_stream(&f, true, IDS(B(0xF0), B(0x9F), B(0x98)), PIECES("", "", "", FFFD FFFD FFFD));
    dfix_free(&f);
}

static void test_detok_leading_space(void **state) {
    (void)state;
    dfix f;
    dfix_init(&f);
    expect_stream(&f, true, IDS(1, f.id_sp_a, f.id_sp_a), PIECES("", "a", " a", ""));
    expect_stream(&f, false, IDS(1, f.id_sp_a, f.id_sp_a), PIECES("", " a", " a", ""));
    expect_stream(&f, true, IDS(f.id_sp, f.id_sp_a), PIECES("", " a", ""));
    expect_stream(&f, true, IDS(f.id_a, f.id_sp_a), PIECES("a", " a", ""));
    expect_stream(&f, true, IDS(B(0x20), f.id_sp_a), PIECES(" ", " a", ""));
    expect_stream(&f, true, IDS(f.id_sp_b, f.id_sp_b), PIECES("b c", " b c", ""));
    expect_stream(&f, true, IDS(0, f.id_sp_a), PIECES(" \xe2\x81\x87 ", " a", "")); /* <unk> */
    expect_stream(&f, true, IDS(-1, 99999, f.id_sp_a), PIECES("", "", "a", ""));   /* bad ids: nothing */
    dfix_free(&f);
}

static void test_detok_random_streams_stay_valid(void **state) {
    (void)state;
    dfix f;
    dfix_init(&f);
    rng_state = 99;
    size_t cap = smoe_detok_cap(f.t);
    assert_true(cap <= 80);
    const uint8_t bytes[] = {0x41, 0x20, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xFF, 0xC0, 0xED, 0xA0, 0xF4, 0x8F, 0x90};
    for (int round = 0; round < 2000; round++) {
        smoe_detok d;
        smoe_detok_init(&d, f.t, round & 1);
        char out[80];
        int n = (int)rnd(16);
        for (int i = 0; i <= n; i++) {
            size_t k;
            if (i == n) k = smoe_detok_flush(&d, out, cap);
            else {
                uint32_t r = rnd(10);
                int32_t id = r < 7 ? B(bytes[rnd(sizeof bytes)]) : r < 8 ? (int32_t)rnd(3) : 259 + (int32_t)rnd(4);
                k = smoe_detok_push(&d, id, out, cap);
            }
            assert_true(k < cap);
            assert_int_equal(strlen(out), k);
            assert_true(valid_utf8(out, k));
        }
        assert_int_equal(d.n_pending, 0);
    }
    dfix_free(&f);
}

static void test_token_bytes(void **state) {
    (void)state;
    dfix f;
    dfix_init(&f);
    char buf[16];
    assert_int_equal(smoe_token_bytes(f.t, f.id_sp_b, buf, sizeof buf), 4);
    assert_memory_equal(buf, " b c", 4);
    assert_int_equal(smoe_token_bytes(f.t, f.id_sp_b, buf, 2), 2); /* truncated */
    assert_memory_equal(buf, " b", 2);
    assert_int_equal(smoe_token_bytes(f.t, B(0x00), buf, sizeof buf), 1);
    assert_int_equal(buf[0], 0);
    assert_int_equal(smoe_token_bytes(f.t, B(0xE2), buf, sizeof buf), 1);
    assert_int_equal((uint8_t)buf[0], 0xE2);
    assert_int_equal(smoe_token_bytes(f.t, 1, buf, sizeof buf), 0);
    assert_int_equal(smoe_token_bytes(f.t, 0, buf, sizeof buf), 5);
    assert_memory_equal(buf, " \xe2\x81\x87 ", 5);
    assert_int_equal(smoe_token_bytes(f.t, -1, buf, sizeof buf), 0);
    assert_int_equal(smoe_token_bytes(f.t, f.v.n_tokens, buf, sizeof buf), 0);
    dfix_free(&f);
}

static void test_refuses_other_vocabularies(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE] = "";
    smoe_vocab v;
    memset(&v, 0, sizeof v);
    assert_null(smoe_tokenizer_new(&v, err));
    assert_true(strstr(err, "empty") != NULL);
    const spec s[] = {{"a", -1, 0}};
    make_vocab(&v, s, 1, false);
    snprintf(v.model, sizeof v.model, "spm-unigram");
    assert_null(smoe_tokenizer_new(&v, err));
    assert_true(strstr(err, "spm-unigram") != NULL);
    smoe_vocab_free(&v);
}

/* ---------------------------------------------------------------------------
 * Real vocabularies from ../shared
 * ------------------------------------------------------------------------- */

static bool load_spm(const char *name, smoe_vocab *v) {
    const char *root = getenv("SMOE_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/%s", root ? root : "../shared", name);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        printf("# skipping: %s not found (set SMOE_SHARED or run from the repo root)\n", path);
        return false;
    }
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long len = ftell(fp);
    assert_true(len > 0);
    rewind(fp);
    uint8_t *data = malloc((size_t)len);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    char err[SMOE_ERR_SIZE];
    int rc = smoe_vocab_from_spm(v, data, (size_t)len, err);
    free(data);
    if (rc) fail_msg("%s: %s", path, err);
    return true;
}

static void test_mistral_v3_pieces(void **state) {
    (void)state;
    smoe_vocab v;
    if (!load_spm("mistral-v3.model", &v)) skip();
    smoe_tokenizer *t = new_tok(&v);
    /* user-defined pieces match as typed; control pieces never do */
    expect(t, "[REFERENCE_DOC_1]", false, PIECES("[REFERENCE_DOC_1]"));
    expect(t, "x[REFERENCE_DOC_12]", false, PIECES("x", "[REFERENCE_DOC_12]"));
    char err[SMOE_ERR_SIZE];
    smoe_tokens out = {0};
    const char *text = "[INST] [/INST][TOOL_CALLS][AVAILABLE_TOOLS][/AVAILABLE_TOOLS][TOOL_RESULTS][/TOOL_RESULTS]<s></s>";
    assert_int_equal(smoe_tokenize(t, text, strlen(text), true, &out, err), 0);
    for (int32_t i = 0; i < out.n; i++) assert_int_not_equal(v.types[out.ids[i]], SMOE_TOKEN_CONTROL);
    smoe_tokens_free(&out);
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

/* About 1 MiB of mixed-language text, the same every run. */
static char *mixed_text(size_t target, size_t *len) {
    static const char *const parts[] = {
        "The quick brown fox jumps over the lazy dog. ",
        "Le c\xc5\x93ur a ses raisons que la raison ne conna\xc3\xaet point. ",
        "\xc3\x9c" "ber allen Gipfeln ist Ruh, in allen Wipfeln sp\xc3\xbcrest du kaum einen Hauch. ",
        "\xc2\xbf" "D\xc3\xb3nde est\xc3\xa1 la biblioteca? El ni\xc3\xb1o comi\xc3\xb3 ma\xc3\xb1" "ana. ",
        "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura. ",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88\xe3\x80\x82 ",
        "Emoji \xf0\x9f\x98\x80\xf0\x9f\x8e\x89 and numbers 3.14159 2024-01-01\n",
        "    if (x) { return y + 1; }\n",
    };
    char *buf = malloc(target + 256);
    assert_non_null(buf);
    size_t n = 0;
    rng_state = 7;
    while (n < target) {
        const char *p = parts[rnd(sizeof parts / sizeof parts[0])];
        size_t k = strlen(p);
        memcpy(buf + n, p, k);
        n += k;
    }
    *len = n;
    return buf;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_speed_1mb_and_round_trip(void **state) {
    (void)state;
    smoe_vocab v;
    if (!load_spm("mistral-v1.model", &v)) skip();
    smoe_tokenizer *t = new_tok(&v);
    size_t len;
    char *text = mixed_text((size_t)1 << 20, &len);
    char err[SMOE_ERR_SIZE];
    smoe_tokens out = {0};
    double t0 = now_ms();
    assert_int_equal(smoe_tokenize(t, text, len, true, &out, err), 0);
    double ms = now_ms() - t0;
    printf("# tokenize 1 MB: %.1f ms (%zu bytes, %d tokens, mistral-v1 vocabulary)\n", ms, len, (int)out.n);

    /* decode it again one token at a time: the text comes back exactly */
    char *back = malloc(len + 1);
    assert_non_null(back);
    size_t n = 0, cap = smoe_detok_cap(t);
    char piece[128];
    assert_true(cap <= sizeof piece);
    smoe_detok d;
    smoe_detok_init(&d, t, true);
    t0 = now_ms();
    for (int32_t i = 0; i < out.n; i++) {
        size_t k = smoe_detok_push(&d, out.ids[i], piece, cap);
        assert_true(n + k <= len);
        memcpy(back + n, piece, k);
        n += k;
    }
    assert_int_equal(smoe_detok_flush(&d, piece, cap), 0);
    printf("# detokenize 1 MB one token at a time: %.1f ms\n", now_ms() - t0);
    assert_int_equal(n, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(text);
    smoe_tokens_free(&out);
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_highest_score_first),
        cmocka_unit_test(test_merge_ties_go_left),
        cmocka_unit_test(test_spaces_and_dummy_prefix),
        cmocka_unit_test(test_byte_fallback),
        cmocka_unit_test(test_unknown_runs_without_bytes),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_control_pieces_never_match),
        cmocka_unit_test(test_user_defined_pieces),
        cmocka_unit_test(test_unused_pieces_are_split_back),
        cmocka_unit_test(test_heap_matches_quadratic),
        cmocka_unit_test(test_detok_holds_back_split_characters),
        cmocka_unit_test(test_detok_replaces_impossible_bytes),
        cmocka_unit_test(test_detok_leading_space),
        cmocka_unit_test(test_detok_random_streams_stay_valid),
        cmocka_unit_test(test_token_bytes),
        cmocka_unit_test(test_refuses_other_vocabularies),
        cmocka_unit_test(test_mistral_v3_pieces),
        cmocka_unit_test(test_speed_1mb_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
