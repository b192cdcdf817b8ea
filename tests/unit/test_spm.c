/* test_spm.c - unit tests for the SentencePiece .model reader and the
 * built-in byte vocabulary (src/format/spm.c, src/model/vocab.c).
 *
 * Small models are encoded here with a tiny protobuf writer so that every
 * malformation can be produced exactly; the real Mistral tokenizers are read
 * from ../shared (or $SMOE_SHARED) and the tests skip when it is absent. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/vocab.h"

/* ---------------------------------------------------------------------------
 * A minimal protobuf writer
 * ------------------------------------------------------------------------- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put_bytes(buf *o, const void *p, size_t len) {
    if (o->n + len > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + len) cap *= 2;
        o->b = realloc(o->b, cap);
        assert_non_null(o->b);
        o->cap = cap;
    }
    if (len) memcpy(o->b + o->n, p, len);
    o->n += len;
}

static void buf_free(buf *o) {
    free(o->b);
    memset(o, 0, sizeof *o);
}

static void put_varint(buf *o, uint64_t v) {
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        put_bytes(o, &c, 1);
    } while (v);
}

static void put_tag(buf *o, uint32_t num, int wire) {
    put_varint(o, ((uint64_t)num << 3) | (uint64_t)wire);
}

/* int32/int64/bool/enum fields; negatives become 10-byte varints. */
static void put_int(buf *o, uint32_t num, int64_t v) {
    put_tag(o, num, 0);
    put_varint(o, (uint64_t)v);
}

static void put_len(buf *o, uint32_t num, const void *p, size_t len) {
    put_tag(o, num, 2);
    put_varint(o, len);
    put_bytes(o, p, len);
}

static void put_str(buf *o, uint32_t num, const char *s) { put_len(o, num, s, strlen(s)); }

static void put_msg(buf *o, uint32_t num, const buf *m) { put_len(o, num, m->b, m->n); }

static void put_fixed32(buf *o, uint32_t num, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put_tag(o, num, 5);
    put_bytes(o, le, 4);
}

static void put_float(buf *o, uint32_t num, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_fixed32(o, num, u);
}

static void put_fixed64(buf *o, uint32_t num, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    put_tag(o, num, 1);
    put_bytes(o, le, 8);
}

/* A SentencePiece message; type 0 leaves the type field out (NORMAL). */
static void put_piece(buf *model, const void *text, size_t len, float score, int type) {
    buf p = {0};
    put_len(&p, 1, text, len);
    if (score != 0.0f) put_float(&p, 2, score);
    if (type) put_int(&p, 3, type);
    put_msg(model, 1, &p);
    buf_free(&p);
}

/* ---------------------------------------------------------------------------
 * Test models
 * ------------------------------------------------------------------------- */

/* Seven pieces with pad_id = 6, written trainer/normalizer first and pieces
 * last, so that every strict prefix of the encoding is invalid (too few
 * pieces for pad_id, or a cut field).  Unknown fields of every wire type are
 * sprinkled in to exercise skipping. */
static void build_small(buf *out, int64_t bos_id) {
    buf t = {0}, n = {0}, p = {0};
    put_str(&t, 1, "input.txt");
    put_int(&t, 3, 2); /* BPE */
    put_float(&t, 10, 0.9995f);
    put_int(&t, 35, 1);
    put_int(&t, 40, 0);
    put_int(&t, 41, bos_id);
    put_int(&t, 42, -1);
    put_int(&t, 43, 6);
    put_str(&t, 44, " \xE2\x81\x87 ");

    put_str(&n, 1, "identity");
    put_int(&n, 3, 0); /* add_dummy_prefix = false */
    put_int(&n, 4, 0);

    put_int(out, 50, 7);
    put_fixed64(out, 51, 0x0123456789abcdefULL);
    put_fixed32(out, 52, 42);
    put_str(out, 53, "junk");
    put_msg(out, 2, &t);
    put_msg(out, 3, &n);
    put_piece(out, "<unk>", 5, 0.0f, 2);
    put_piece(out, "<s>", 3, 0.0f, 3);
    put_piece(out, "</s>", 4, 0.0f, 3);
    put_piece(out, "\xE2\x96\x81h", 4, -1.5f, 0);
    put_piece(out, "<0x41>", 6, 0.0f, 6);
    /* piece 5: field 1 twice (last wins), explicit NORMAL, an unknown field */
    put_str(&p, 1, "zz");
    put_str(&p, 1, "\xC3\xA9");
    put_float(&p, 2, 2.25f);
    put_int(&p, 3, 1);
    put_int(&p, 9, 123);
    put_msg(out, 1, &p);
    put_piece(out, "<pad>", 5, 0.0f, 3);
    buf_free(&t);
    buf_free(&n);
    buf_free(&p);
}

/* A one-piece BPE model whose ids are all -1 except unk 0, so the piece
 * itself is the only thing that can be wrong. */
static void build_one_piece(buf *out, const void *text, size_t len, float score, int type) {
    buf t = {0};
    put_int(&t, 3, 2);
    put_int(&t, 40, 0);
    put_int(&t, 41, -1);
    put_int(&t, 42, -1);
    put_msg(out, 2, &t);
    put_piece(out, text, len, score, type);
    buf_free(&t);
}

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

static bool all_zero(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* Parsing must fail with one non-empty line (containing needle when given)
 * and leave v zeroed even though it starts out as garbage. */
static void expect_fail(const uint8_t *data, size_t size, const char *needle) {
    smoe_vocab v;
    char err[SMOE_ERR_SIZE] = "";
    memset(&v, 0xA5, sizeof v);
    assert_int_equal(smoe_vocab_from_spm(&v, data, size, err), -1);
    assert_true(err[0] != '\0');
    assert_null(strchr(err, '\n'));
    assert_true(all_zero(&v, sizeof v));
    if (needle && !strstr(err, needle)) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void expect_fail_buf(buf *b, const char *needle) {
    expect_fail(b->b, b->n, needle);
    buf_free(b);
}

static void expect_fail_piece(const void *text, size_t len, float score, int type,
                              const char *needle) {
    buf b = {0};
    build_one_piece(&b, text, len, score, type);
    expect_fail_buf(&b, needle);
}

static int32_t find_token(const smoe_vocab *v, const char *s) {
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (strcmp(v->tokens[i], s) == 0) return i;
    return -1;
}

static void assert_token(const smoe_vocab *v, int32_t id, const char *s, int type) {
    assert_true(id >= 0 && id < v->n_tokens);
    assert_string_equal(v->tokens[id], s);
    assert_int_equal(v->token_len[id], strlen(s));
    assert_int_equal(v->types[id], type);
}

/* Read <shared>/tokenizers/<name> or skip the test when it is not there. */
static uint8_t *load_shared(const char *name, size_t *size) {
    const char *root = getenv("SMOE_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/%s", root ? root : "../shared", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skipping: %s not found (set SMOE_SHARED or run from the repo root)\n", path);
        skip();
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    uint8_t *data = malloc((size_t)len);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return data;
}

static int count_type(const smoe_vocab *v, int type) {
    int n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) n += v->types[i] == type;
    return n;
}

/* ---------------------------------------------------------------------------
 * Built-in byte vocabulary
 * ------------------------------------------------------------------------- */

static void test_builtin_bytes(void **state) {
    (void)state;
    smoe_vocab v;
    char err[SMOE_ERR_SIZE] = "";
    memset(&v, 0xA5, sizeof v);
    assert_int_equal(smoe_vocab_builtin_bytes(&v, err), 0);
    assert_int_equal(v.n_tokens, 259);
    assert_token(&v, 0, "<unk>", SMOE_TOKEN_UNKNOWN);
    assert_token(&v, 1, "<s>", SMOE_TOKEN_CONTROL);
    assert_token(&v, 2, "</s>", SMOE_TOKEN_CONTROL);
    assert_token(&v, 3, "<0x00>", SMOE_TOKEN_BYTE);
    assert_token(&v, 3 + 0x41, "<0x41>", SMOE_TOKEN_BYTE);
    assert_token(&v, 3 + 0xAB, "<0xAB>", SMOE_TOKEN_BYTE);
    assert_token(&v, 258, "<0xFF>", SMOE_TOKEN_BYTE);
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", (unsigned)b);
        assert_token(&v, 3 + b, want, SMOE_TOKEN_BYTE);
    }
    for (int i = 0; i < v.n_tokens; i++) assert_true(v.scores[i] == 0.0f);
    assert_int_equal(v.unk_id, 0);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, 2);
    assert_int_equal(v.pad_id, -1);
    assert_true(v.add_bos);
    assert_false(v.add_eos);
    assert_true(v.add_space_prefix);
    assert_true(v.byte_fallback);
    assert_string_equal(v.model, "llama");
    smoe_vocab_free(&v);
    assert_true(all_zero(&v, sizeof v));
    smoe_vocab_free(&v); /* freeing a zeroed vocab is a no-op */
}

/* ---------------------------------------------------------------------------
 * Hand-built models
 * ------------------------------------------------------------------------- */

static void test_small_roundtrip(void **state) {
    (void)state;
    buf b = {0};
    build_small(&b, 1);
    smoe_vocab v;
    char err[SMOE_ERR_SIZE] = "";
    if (smoe_vocab_from_spm(&v, b.b, b.n, err) != 0) fail_msg("parse failed: %s", err);
    assert_int_equal(v.n_tokens, 7);
    assert_token(&v, 0, "<unk>", SMOE_TOKEN_UNKNOWN);
    assert_token(&v, 1, "<s>", SMOE_TOKEN_CONTROL);
    assert_token(&v, 2, "</s>", SMOE_TOKEN_CONTROL);
    assert_token(&v, 3, "\xE2\x96\x81h", SMOE_TOKEN_NORMAL);
    assert_token(&v, 4, "<0x41>", SMOE_TOKEN_BYTE);
    assert_token(&v, 5, "\xC3\xA9", SMOE_TOKEN_NORMAL);
    assert_token(&v, 6, "<pad>", SMOE_TOKEN_CONTROL);
    assert_true(v.scores[0] == 0.0f);
    assert_true(v.scores[3] == -1.5f);
    assert_true(v.scores[5] == 2.25f);
    assert_int_equal(v.unk_id, 0);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, -1);
    assert_int_equal(v.pad_id, 6);
    assert_true(v.add_bos);
    assert_false(v.add_eos);
    assert_false(v.add_space_prefix);
    assert_true(v.byte_fallback);
    assert_string_equal(v.model, "llama");
    smoe_vocab_free(&v);
    buf_free(&b);
}

/* No trainer or normalizer spec at all: the proto2 defaults apply. */
static void test_defaults_unigram(void **state) {
    (void)state;
    buf b = {0};
    put_piece(&b, "<unk>", 5, 0.0f, 2);
    put_piece(&b, "<s>", 3, 0.0f, 3);
    put_piece(&b, "</s>", 4, 0.0f, 3);
    smoe_vocab v;
    char err[SMOE_ERR_SIZE] = "";
    if (smoe_vocab_from_spm(&v, b.b, b.n, err) != 0) fail_msg("parse failed: %s", err);
    assert_int_equal(v.n_tokens, 3);
    assert_string_equal(v.model, "spm-unigram");
    assert_false(v.byte_fallback);
    assert_true(v.add_space_prefix);
    assert_int_equal(v.unk_id, 0);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, 2);
    assert_int_equal(v.pad_id, -1);
    smoe_vocab_free(&v);
    buf_free(&b);
}

/* ---------------------------------------------------------------------------
 * Malformed input
 * ------------------------------------------------------------------------- */

static void test_empty(void **state) {
    (void)state;
    uint8_t one = 0;
    expect_fail(NULL, 0, "empty");
    expect_fail(&one, 0, "empty");
}

static void test_truncated_everywhere(void **state) {
    (void)state;
    buf b = {0};
    build_small(&b, 1);
    for (size_t n = 0; n < b.n; n++) {
        /* a fresh copy of exactly n bytes, so ASan sees any overread */
        uint8_t *cut = malloc(n ? n : 1);
        assert_non_null(cut);
        memcpy(cut, b.b, n);
        expect_fail(cut, n, NULL);
        free(cut);
    }
    buf_free(&b);
}

static void test_bad_varints(void **state) {
    (void)state;
    const uint8_t too_long[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    const uint8_t overflow[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02};
    const uint8_t cut[] = {0x80, 0x80};
    expect_fail(too_long, sizeof too_long, "longer than 10 bytes");
    expect_fail(overflow, sizeof overflow, "overflows");
    expect_fail(cut, sizeof cut, "truncated varint");
    /* the same inside a piece's length prefix */
    buf b = {0};
    put_tag(&b, 1, 2);
    put_bytes(&b, too_long, sizeof too_long);
    expect_fail_buf(&b, "longer than 10 bytes");
}

static void test_length_exceeds(void **state) {
    (void)state;
    const uint8_t small[] = {0x0a, 100, 'a', 'b', 'c'};
    expect_fail(small, sizeof small, "exceeds");
    /* a length near 2^64 must not wrap the bounds check */
    buf b = {0};
    put_tag(&b, 1, 2);
    put_varint(&b, UINT64_MAX);
    put_bytes(&b, "abc", 3);
    expect_fail_buf(&b, "exceeds");
    /* a nested piece claiming more than its parent holds */
    buf p = {0};
    put_tag(&p, 1, 2);
    put_varint(&p, 10);
    put_bytes(&p, "ab", 2);
    put_msg(&b, 1, &p);
    expect_fail_buf(&b, "exceeds");
    buf_free(&p);
    const uint8_t fixed[] = {0x15, 0x00, 0x00}; /* field 2 fixed32 with 2 bytes */
    expect_fail(fixed, sizeof fixed, "truncated");
}

static void test_bad_wire_types(void **state) {
    (void)state;
    const uint8_t group_start[] = {0x0b, 0x0c};
    const uint8_t group_end[] = {0x0c};
    const uint8_t wire6[] = {0x0e, 0x00};
    const uint8_t wire7[] = {0x7f, 0x00};
    const uint8_t field0[] = {0x02, 0x00};
    const uint8_t piece_as_varint[] = {0x08, 0x01};
    expect_fail(group_start, sizeof group_start, "group");
    expect_fail(group_end, sizeof group_end, "group");
    expect_fail(wire6, sizeof wire6, "unknown wire type");
    expect_fail(wire7, sizeof wire7, "unknown wire type");
    expect_fail(field0, sizeof field0, "invalid field tag");
    expect_fail(piece_as_varint, sizeof piece_as_varint, "wire type 0, expected 2");
    /* a group inside the trainer spec, and a mistyped known field there */
    buf b = {0}, t = {0};
    put_tag(&t, 7, 3);
    put_msg(&b, 2, &t);
    expect_fail_buf(&b, "group");
    t.n = 0;
    put_fixed32(&t, 41, 1);
    put_msg(&b, 2, &t);
    expect_fail_buf(&b, "expected 0");
    buf_free(&t);
}

static void test_bad_piece_text(void **state) {
    (void)state;
    expect_fail_piece("\xC3\x28", 2, 0.0f, 0, "UTF-8");
    expect_fail_piece("\xC0\x80", 2, 0.0f, 0, "UTF-8");         /* overlong NUL */
    expect_fail_piece("\xE0\x80\xAF", 3, 0.0f, 0, "UTF-8");     /* overlong '/' */
    expect_fail_piece("\xED\xA0\x80", 3, 0.0f, 0, "UTF-8");     /* surrogate */
    expect_fail_piece("\xF4\x90\x80\x80", 4, 0.0f, 0, "UTF-8"); /* > U+10FFFF */
    expect_fail_piece("a\xE2\x82", 3, 0.0f, 0, "UTF-8");        /* cut sequence */
    expect_fail_piece("\xFF", 1, 0.0f, 0, "UTF-8");
    expect_fail_piece("\x80", 1, 0.0f, 0, "UTF-8");
    expect_fail_piece("a\0b", 3, 0.0f, 0, "NUL");
    expect_fail_piece("", 0, 0.0f, 0, "empty");
    size_t big = 65536;
    char *long_piece = malloc(big);
    assert_non_null(long_piece);
    memset(long_piece, 'a', big);
    expect_fail_piece(long_piece, big, 0.0f, 0, "long");
    free(long_piece);
    /* a piece message without a piece string */
    buf b = {0}, t = {0}, p = {0};
    put_int(&t, 41, -1);
    put_int(&t, 42, -1);
    put_msg(&b, 2, &t);
    put_float(&p, 2, 1.0f);
    put_msg(&b, 1, &p);
    expect_fail_buf(&b, "empty");
    buf_free(&t);
    buf_free(&p);
}

static void test_bad_scores_and_types(void **state) {
    (void)state;
    expect_fail_piece("a", 1, NAN, 0, "piece 0 has a non-finite score");
    expect_fail_piece("a", 1, INFINITY, 0, "non-finite");
    expect_fail_piece("a", 1, -INFINITY, 0, "non-finite");
    expect_fail_piece("a", 1, 0.0f, 7, "unknown type 7");
    expect_fail_piece("a", 1, 0.0f, -1, "unknown type -1");
    /* the piece index is named: a NaN piece appended as piece 7 */
    buf b = {0};
    build_small(&b, 1);
    put_piece(&b, "x", 1, NAN, 0);
    expect_fail_buf(&b, "piece 7");
}

static void test_bad_ids(void **state) {
    (void)state;
    buf b = {0};
    build_small(&b, 7);
    expect_fail_buf(&b, "bos_id 7 is out of range");
    build_small(&b, -2);
    expect_fail_buf(&b, "bos_id -2");
    /* int32 fields keep the low 32 bits, as protobuf does: 2^40 reads as 0 */
    build_small(&b, 1LL << 40);
    smoe_vocab v;
    char err[SMOE_ERR_SIZE] = "";
    assert_int_equal(smoe_vocab_from_spm(&v, b.b, b.n, err), 0);
    assert_int_equal(v.bos_id, 0);
    smoe_vocab_free(&v);
    buf_free(&b);
    /* defaults (bos 1, eos 2) are checked too */
    put_piece(&b, "a", 1, 0.0f, 0);
    expect_fail_buf(&b, "bos_id 1");
    /* a model_type outside the enum */
    buf t = {0};
    put_int(&t, 3, 9);
    put_msg(&b, 2, &t);
    put_piece(&b, "a", 1, 0.0f, 0);
    put_piece(&b, "b", 1, 0.0f, 0);
    put_piece(&b, "c", 1, 0.0f, 0);
    expect_fail_buf(&b, "model_type");
    buf_free(&t);
    /* specs alone: no pieces */
    put_msg(&b, 3, &t);
    expect_fail_buf(&b, "no pieces");
}

/* ---------------------------------------------------------------------------
 * The real Mistral tokenizers
 * ------------------------------------------------------------------------- */

static void check_mistral_common(const smoe_vocab *v) {
    assert_string_equal(v->model, "llama");
    assert_true(v->byte_fallback);
    assert_int_equal(v->unk_id, 0);
    assert_int_equal(v->bos_id, 1);
    assert_int_equal(v->eos_id, 2);
    assert_int_equal(v->pad_id, -1);
    assert_true(v->add_space_prefix);
    assert_true(v->add_bos);
    assert_false(v->add_eos);
    assert_token(v, 0, "<unk>", SMOE_TOKEN_UNKNOWN);
    assert_token(v, 1, "<s>", SMOE_TOKEN_CONTROL);
    assert_token(v, 2, "</s>", SMOE_TOKEN_CONTROL);
    assert_int_equal(count_type(v, SMOE_TOKEN_BYTE), 256);
    assert_int_equal(count_type(v, SMOE_TOKEN_NORMAL), 31741);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        assert_int_equal(v->token_len[i], strlen(v->tokens[i]));
        assert_true(isfinite(v->scores[i]));
    }
}

static void test_mistral_v1(void **state) {
    (void)state;
    size_t size;
    uint8_t *data = load_shared("mistral-v1.model", &size);
    smoe_vocab v;
    char err[SMOE_ERR_SIZE] = "";
    if (smoe_vocab_from_spm(&v, data, size, err) != 0) fail_msg("parse failed: %s", err);
    assert_int_equal(v.n_tokens, 32000);
    check_mistral_common(&v);
    assert_int_equal(count_type(&v, SMOE_TOKEN_CONTROL), 2);
    int32_t a = find_token(&v, "<0x41>");
    assert_int_equal(a, 3 + 0x41);
    assert_token(&v, a, "<0x41>", SMOE_TOKEN_BYTE);
    smoe_vocab_free(&v);
    free(data);
}

static void test_mistral_v3(void **state) {
    (void)state;
    static const char *const ctrl[] = {
        "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
        "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]",
    };
    size_t size;
    uint8_t *data = load_shared("mistral-v3.model", &size);
    smoe_vocab v;
    char err[SMOE_ERR_SIZE] = "";
    if (smoe_vocab_from_spm(&v, data, size, err) != 0) fail_msg("parse failed: %s", err);
    assert_int_equal(v.n_tokens, 32768);
    check_mistral_common(&v);
    for (int i = 0; i < 7; i++) assert_token(&v, 3 + i, ctrl[i], SMOE_TOKEN_CONTROL);
    /* 750 control pieces ([INST].. and [control_N]) and 20 user-defined
     * [REFERENCE_DOC_N] pieces precede the byte pieces. */
    assert_int_equal(count_type(&v, SMOE_TOKEN_CONTROL), 750);
    assert_int_equal(count_type(&v, SMOE_TOKEN_USER_DEFINED), 20);
    int32_t a = find_token(&v, "<0x41>");
    assert_int_equal(a, 771 + 0x41);
    assert_token(&v, a, "<0x41>", SMOE_TOKEN_BYTE);
    smoe_vocab_free(&v);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_bytes),
        cmocka_unit_test(test_small_roundtrip),
        cmocka_unit_test(test_defaults_unigram),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_bad_varints),
        cmocka_unit_test(test_length_exceeds),
        cmocka_unit_test(test_bad_wire_types),
        cmocka_unit_test(test_bad_piece_text),
        cmocka_unit_test(test_bad_scores_and_types),
        cmocka_unit_test(test_bad_ids),
        cmocka_unit_test(test_mistral_v1),
        cmocka_unit_test(test_mistral_v3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
