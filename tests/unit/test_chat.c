/* test_chat.c - the Python-style JSON serialiser of the chat formats, format
 * detection and names, and the KV-reuse prefix property of rendered chats
 * (with the built-in byte vocabulary, and with Mistral's real vocabularies
 * from ../shared or $SMOE_SHARED when present). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "base/common.h"
#include "json/pyjson.h"

/* ---------------------------------------------------------------------------
 * JSON serialiser
 * ------------------------------------------------------------------------- */

static json_t *parse(const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) fail_msg("bad test JSON: %s", je.text);
    return v;
}

/* dumps(parse(text)) must equal want (want_len bytes). */
static void check_dump(const char *text, bool ascii, const char *want, size_t want_len) {
    char err[SMOE_ERR_SIZE];
    json_t *v = parse(text);
    size_t len = 0;
    char *got = smoe_json_dumps_py(v, ascii, &len, err);
    assert_non_null(got);
    if (len != want_len || memcmp(got, want, len) != 0) fail_msg("dump of %s\n got: %s\nwant: %s", text, got, want);
    assert_int_equal(got[len], '\0');
    free(got);
    json_decref(v);
}
#define CHECK_DUMP(text, ascii, want) check_dump(text, ascii, want, sizeof(want) - 1)

/* The expected texts come from CPython 3.11's json.dumps. */
static const char mixed[] =
    "{\"z\": [1, {\"b\": null, \"a\": true}], \"a\": {}, "
    "\"s\": \"\\u00e9\\ud83d\\ude00\\u0001\\u007f\\u0000\\\\\\\"\\n\\r\\t\\b\\f/\\u2028\", "
    "\"f\": [0.1, 1e-07, 1e16, 5.0, -0.0, 1e-05, 0.0001, 123456789.125, 1.5e300], "
    "\"i\": -9223372036854775808}";

static void test_dump_ensure_ascii(void **state) {
    (void)state;
    CHECK_DUMP(mixed, true,
               "{\"z\": [1, {\"b\": null, \"a\": true}], \"a\": {}, "
               "\"s\": \"\\u00e9\\ud83d\\ude00\\u0001\\u007f\\u0000\\\\\\\"\\n\\r\\t\\b\\f/\\u2028\", "
               "\"f\": [0.1, 1e-07, 1e+16, 5.0, -0.0, 1e-05, 0.0001, 123456789.125, 1.5e+300], "
               "\"i\": -9223372036854775808}");
    /* astral characters: one surrogate pair each, lowercase hex */
    CHECK_DUMP("[\"\\ud834\\udd1e x \\udbff\\udfff\"]", true, "[\"\\ud834\\udd1e x \\udbff\\udfff\"]");
    CHECK_DUMP("\"\\u001f\\u0020~\"", true, "\"\\u001f ~\"");
}

static void test_dump_utf8(void **state) {
    (void)state;
    /* ensure_ascii=False, as mistral-common calls it: only '"', '\' and
     * control characters are escaped; DEL, U+2028 and astral characters
     * are written as UTF-8 */
    CHECK_DUMP(mixed, false,
               "{\"z\": [1, {\"b\": null, \"a\": true}], \"a\": {}, "
               "\"s\": \"\xc3\xa9\xf0\x9f\x98\x80\\u0001\x7f\\u0000\\\\\\\"\\n\\r\\t\\b\\f/\xe2\x80\xa8\", "
               "\"f\": [0.1, 1e-07, 1e+16, 5.0, -0.0, 1e-05, 0.0001, 123456789.125, 1.5e+300], "
               "\"i\": -9223372036854775808}");
    CHECK_DUMP("{\"k\\u00e9y\": \"v\"}", false, "{\"k\xc3\xa9y\": \"v\"}");
    CHECK_DUMP("{\"k\\u00e9y\": \"v\"}", true, "{\"k\\u00e9y\": \"v\"}");
}

static void test_dump_scalars_and_nesting(void **state) {
    (void)state;
    CHECK_DUMP("[]", false, "[]");
    CHECK_DUMP("{}", false, "{}");
    CHECK_DUMP("[[], {}, [[1]], {\"a\": {\"b\": [true, false, null]}}]", false,
               "[[], {}, [[1]], {\"a\": {\"b\": [true, false, null]}}]");
    /* key order is the order in the text, not sorted */
    CHECK_DUMP("{\"b\": 1, \"a\": 2, \"c\": {\"z\": 0, \"y\": 0}}", false, "{\"b\": 1, \"a\": 2, \"c\": {\"z\": 0, \"y\": 0}}");
    CHECK_DUMP("22", false, "22");
    CHECK_DUMP("\"x\"", false, "\"x\"");
    CHECK_DUMP("1E2", false, "100.0");
    CHECK_DUMP("-0", false, "0");
    CHECK_DUMP("{\"ab\": \"c\\u0000d\"}", true, "{\"ab\": \"c\\u0000d\"}");
}

static void test_dump_invalid_utf8(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    json_t *s = json_stringn_nocheck("a\xff", 2);
    assert_null(smoe_json_dumps_py(s, false, NULL, err));
    assert_non_null(strstr(err, "UTF-8"));
    assert_null(smoe_json_dumps_py(s, true, NULL, err));
    json_decref(s);
    json_t *surrogate = json_stringn_nocheck("\xed\xa0\x80", 3); /* U+D800 in UTF-8 form */
    assert_null(smoe_json_dumps_py(surrogate, false, NULL, err));
    json_decref(surrogate);
}

static void check_float(double d, const char *want) {
    char buf[32];
    size_t n = smoe_py_float_repr(d, buf);
    if (strcmp(buf, want) != 0) fail_msg("repr(%.17g): got %s, want %s", d, buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_float_repr(void **state) {
    (void)state;
    check_float(0.1, "0.1");
    check_float(1e-07, "1e-07");
    check_float(1e16, "1e+16");
    check_float(1e15, "1000000000000000.0");
    check_float(5.0, "5.0");
    check_float(-5.0, "-5.0");
    check_float(0.0, "0.0");
    check_float(-0.0, "-0.0");
    check_float(0.0001, "0.0001");
    check_float(0.00001, "1e-05");
    check_float(1.5e-05, "1.5e-05");
    check_float(100.0, "100.0");
    check_float(123456789012345678.0, "1.2345678901234568e+17");
    check_float(0.30000000000000004, "0.30000000000000004");
    check_float(1.0 / 3.0, "0.3333333333333333");
    check_float(2.5, "2.5");
    check_float(5e-324, "5e-324");
    check_float(1.7976931348623157e308, "1.7976931348623157e+308");
    check_float(9007199254740992.0, "9007199254740992.0");
    check_float(1e22, "1e+22");
    check_float(1e23, "1e+23");
    check_float(-1.25e-100, "-1.25e-100");
    check_float(0x1p-1022, "2.2250738585072014e-308");
    check_float(0x1p60, "1.152921504606847e+18");
}

/* ---------------------------------------------------------------------------
 * Names and detection
 * ------------------------------------------------------------------------- */

static void test_format_names(void **state) {
    (void)state;
    assert_int_equal(smoe_chat_format_from_name("v1"), SMOE_CHAT_V1);
    assert_int_equal(smoe_chat_format_from_name("Mistral-V1"), SMOE_CHAT_V1);
    assert_int_equal(smoe_chat_format_from_name("1"), SMOE_CHAT_V1);
    assert_int_equal(smoe_chat_format_from_name("v3"), SMOE_CHAT_V3);
    assert_int_equal(smoe_chat_format_from_name("mistral_v3"), SMOE_CHAT_V3);
    assert_int_equal(smoe_chat_format_from_name("mixtral-8x22b"), SMOE_CHAT_V3);
    assert_int_equal(smoe_chat_format_from_name("v2"), -1);
    assert_int_equal(smoe_chat_format_from_name(""), -1);
    assert_int_equal(smoe_chat_format_from_name("v1 "), -1);
    assert_int_equal(smoe_chat_format_from_name(NULL), -1);
    assert_string_equal(smoe_chat_format_name(SMOE_CHAT_V1), "v1");
    assert_string_equal(smoe_chat_format_name(SMOE_CHAT_V3), "v3");
}

static bool load_spm(const char *name, smoe_vocab *v) {
    const char *root = getenv("SMOE_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/%s", root && *root ? root : "../shared", name);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        printf("# skipping: %s is absent (set SMOE_SHARED)\n", path);
        return false;
    }
    size_t cap = 1 << 20, n = 0, got;
    uint8_t *data = malloc(cap);
    assert_non_null(data);
    while ((got = fread(data + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            data = realloc(data, cap);
            assert_non_null(data);
        }
    }
    fclose(fp);
    char err[SMOE_ERR_SIZE];
    int rc = smoe_vocab_from_spm(v, data, n, err);
    free(data);
    if (rc) fail_msg("%s: %s", path, err);
    return true;
}

static void test_detect(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    smoe_vocab b = {0};
    assert_int_equal(smoe_vocab_builtin_bytes(&b, err), 0);
    assert_int_equal(smoe_chat_detect(&b, NULL), SMOE_CHAT_V1);
    assert_int_equal(smoe_chat_detect(&b, "[AVAILABLE_TOOLS]"), SMOE_CHAT_V1); /* no pieces to splice */
    smoe_vocab_free(&b);

    smoe_vocab v = {0};
    if (load_spm("mistral-v1.model", &v)) {
        assert_int_equal(smoe_chat_detect(&v, NULL), SMOE_CHAT_V1);
        smoe_vocab_free(&v);
    }
    if (!load_spm("mistral-v3.model", &v)) skip();
    assert_int_equal(smoe_chat_detect(&v, NULL), SMOE_CHAT_V3);
    /* a v1-style template does not override control tokens */
    assert_int_equal(smoe_chat_detect(&v, "{{ '[INST] ' + message['content'] + ' [/INST]' }}"), SMOE_CHAT_V3);
    /* [INST] pieces not marked as control: the template decides */
    v.types[3] = SMOE_TOKEN_USER_DEFINED;
    assert_int_equal(smoe_chat_detect(&v, NULL), SMOE_CHAT_V1);
    assert_int_equal(smoe_chat_detect(&v, "{{ '[AVAILABLE_TOOLS] ' }}"), SMOE_CHAT_V3);
    smoe_vocab_free(&v);
}

/* ---------------------------------------------------------------------------
 * Prefix property
 * ------------------------------------------------------------------------- */

static void render(const smoe_tokenizer *t, smoe_chat_format fmt, json_t *req, smoe_tokens *out) {
    char err[SMOE_ERR_SIZE];
    out->n = 0;
    if (smoe_chat_render(t, fmt, req, out, err)) fail_msg("render: %s", err);
}

/* Render [system?] user, assistant, user; then the same plus [assistant
 * answer, user]; return whether the second starts with the first followed
 * by encode(answer) and </s>. */
static bool prefix_holds(const smoe_tokenizer *t, smoe_chat_format fmt, bool system, bool tools) {
    char err[SMOE_ERR_SIZE];
    const smoe_vocab *v = smoe_tokenizer_vocab(t);
    const char *answer = "Sure: 6 x 7 = 42.";
    json_t *msgs = json_array();
    if (system) json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", "Be brief."));
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", "Hi there"));
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", "Hello!"));
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", "What is 6 x 7?"));
    json_t *req = json_pack("{s:O}", "messages", msgs);
    if (tools)
        json_object_set_new(req, "tools", parse("[{\"type\": \"function\", \"function\": {\"name\": \"calc\"}}]"));
    smoe_tokens r1 = {0}, r2 = {0}, want = {0};
    render(t, fmt, req, &r1);

    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", answer));
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", "Thanks"));
    render(t, fmt, req, &r2);

    for (int32_t i = 0; i < r1.n; i++) assert_int_equal(smoe_tokens_push(&want, r1.ids[i]), 0);
    assert_int_equal(smoe_tokenize(t, answer, strlen(answer), v->add_space_prefix, &want, err), 0);
    assert_int_equal(smoe_tokens_push(&want, v->eos_id), 0);
    bool holds = r2.n > want.n && memcmp(r2.ids, want.ids, (size_t)want.n * sizeof *want.ids) == 0;
    /* the rendering always starts with BOS and shares at least that */
    assert_int_equal(r1.ids[0], v->bos_id);
    assert_int_equal(r2.ids[0], v->bos_id);
    smoe_tokens_free(&r1);
    smoe_tokens_free(&r2);
    smoe_tokens_free(&want);
    json_decref(msgs);
    json_decref(req);
    return holds;
}

static smoe_tokenizer *new_tok(const smoe_vocab *v) {
    char err[SMOE_ERR_SIZE];
    smoe_tokenizer *t = smoe_tokenizer_new(v, err);
    if (!t) fail_msg("tokenizer: %s", err);
    return t;
}

static void test_prefix_byte_vocab(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    smoe_vocab v = {0};
    assert_int_equal(smoe_vocab_builtin_bytes(&v, err), 0);
    smoe_tokenizer *t = new_tok(&v);
    assert_true(prefix_holds(t, SMOE_CHAT_V1, false, false));
    assert_true(prefix_holds(t, SMOE_CHAT_V1, true, false));
    /* v3 needs [INST] pieces: a clear error, and out is left as it was */
    json_t *req = parse("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}");
    smoe_tokens out = {0};
    assert_int_equal(smoe_tokens_push(&out, 7), 0);
    assert_int_equal(smoe_chat_render(t, SMOE_CHAT_V3, req, &out, err), -1);
    assert_non_null(strstr(err, "'[INST]'"));
    assert_int_equal(out.n, 1);
    /* and appends after what the list holds */
    assert_int_equal(smoe_chat_render(t, SMOE_CHAT_V1, req, &out, err), 0);
    assert_int_equal(out.ids[0], 7);
    assert_int_equal(out.ids[1], v.bos_id);
    smoe_tokens_free(&out);
    json_decref(req);
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
}

static void test_prefix_mistral(void **state) {
    (void)state;
    smoe_vocab v1 = {0}, v3 = {0};
    if (!load_spm("mistral-v1.model", &v1)) skip();
    smoe_tokenizer *t = new_tok(&v1);
    assert_true(prefix_holds(t, SMOE_CHAT_V1, false, false));
    assert_true(prefix_holds(t, SMOE_CHAT_V1, true, false));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v1);

    if (!load_spm("mistral-v3.model", &v3)) skip();
    t = new_tok(&v3);
    assert_true(prefix_holds(t, SMOE_CHAT_V3, false, false));
    /* system prompt and tools go with the LAST user turn: no prefix */
    assert_false(prefix_holds(t, SMOE_CHAT_V3, true, false));
    assert_false(prefix_holds(t, SMOE_CHAT_V3, false, true));
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_ensure_ascii),
        cmocka_unit_test(test_dump_utf8),
        cmocka_unit_test(test_dump_scalars_and_nesting),
        cmocka_unit_test(test_dump_invalid_utf8),
        cmocka_unit_test(test_float_repr),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_prefix_byte_vocab),
        cmocka_unit_test(test_prefix_mistral),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
