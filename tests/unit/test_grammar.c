/* test_grammar.c - the grammar engine and the JSON Schema compiler, run
 * directly on bytes (no model): a conformance suite with documents that
 * must be accepted and documents that must be rejected for every supported
 * keyword, bad grammars and schemas, and token masks checked against a
 * brute-force scan of the vocabulary (built-in byte vocabulary, a small
 * vocabulary with multi-byte pieces, and Mistral's when ../shared has it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/common.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/toolcall.h"
#include "model/vocab.h"
#include "tokenizer/tokenizer.h"

/* the case tables leave strict/compact out where they are 0 */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 1 accepted and complete, 0 rejected or incomplete */
static int doc_ok(smoe_grammar *g, const char *doc) {
    char err[SMOE_ERR_SIZE] = "";
    smoe_gmatch *m = smoe_gmatch_new(g, NULL, err);
    assert_non_null(m);
    size_t ok;
    int r = smoe_gmatch_accept_bytes(m, doc, strlen(doc), &ok, err);
    int res = r == 0 && smoe_gmatch_complete(m);
    smoe_gmatch_free(m);
    return res;
}

static smoe_grammar *schema_grammar(const char *schema, const smoe_json_schema_opts *o, char *err) {
    json_error_t je;
    json_t *s = json_loads(schema, JSON_DECODE_ANY, &je);
    if (!s) fail_msg("test schema is not JSON: %s: %s", schema, je.text);
    smoe_grammar *g = smoe_json_schema_compile(s, o, err);
    json_decref(s);
    return g;
}

typedef struct jcase {
    const char *schema;
    const char *good[12];
    const char *bad[12];
    int strict, compact;
} jcase;

static void run_cases(const jcase *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char err[SMOE_ERR_SIZE] = "";
        smoe_json_schema_opts o = {.strict = cases[i].strict, .compact = cases[i].compact};
        smoe_grammar *g = schema_grammar(cases[i].schema, &o, err);
        if (!g) fail_msg("schema %s: %s", cases[i].schema, err);
        for (int k = 0; k < 12 && cases[i].good[k]; k++)
            if (!doc_ok(g, cases[i].good[k])) fail_msg("schema %s should accept %s", cases[i].schema, cases[i].good[k]);
        for (int k = 0; k < 12 && cases[i].bad[k]; k++)
            if (doc_ok(g, cases[i].bad[k])) fail_msg("schema %s should reject %s", cases[i].schema, cases[i].bad[k]);
        smoe_grammar_free(g);
    }
}

/* ---------------------------------------------------------------------------
 * JSON Schema conformance, keyword by keyword
 * ------------------------------------------------------------------------- */

static void test_types(void **state) {
    (void)state;
    static const jcase c[] = {
        {"{\"type\":\"string\"}", {"\"abc\"", "\"\"", "\"a\\\"b\"", "\"\\u00e9\"", "\"\xc3\xa9\xe2\x82\xac\"", "\"\\ud83d\\ude00\"",
                                   "\"\\/\\b\\f\\n\\r\\t\\\\\"", " \"x\""},
         {"abc", "1", "\"\x01\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\q\"", "\"a", "\"\xff\"", "\"\xc3\"", "  \"x\"", "\"x\" "}},
        {"{\"type\":\"integer\"}", {"0", "-5", "123", "-0", "999999999999999999"},
         /* 19 digits: beyond what every JSON parser reads as an integer */
         {"01", "1.0", "1e5", "+1", "--1", "", "0x1", "1000000000000000000"}},
        {"{\"type\":\"number\"}", {"0", "-1.5", "1e10", "2.5E-3", "1E+2", "10"}, {".5", "1.", "01", "1e", "NaN", "-", "Infinity"}},
        {"{\"type\":\"boolean\"}", {"true", "false"}, {"True", "1", "null", "tru"}},
        {"{\"type\":\"null\"}", {"null"}, {"nul", "None", "0"}},
        {"{\"type\":[\"string\",\"null\"]}", {"null", "\"x\""}, {"1", "true", "{}"}},
        {"{\"type\":[\"integer\",\"boolean\"]}", {"1", "true"}, {"1.5", "\"1\""}},
        {"{}", {"1", "\"s\"", "{\"a\":[1,{\"b\":null}]}", "[]", "true", "-2.5e3"}, {"", "{", "[1,]", "{\"a\"}"}},
        {"true", {"null", "[1, 2]"}, {"nul"}},
        {"{\"description\":\"annotations only\",\"title\":\"t\",\"$comment\":\"c\"}", {"1", "{}"}, {"x"}},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_enum_const(void **state) {
    (void)state;
    static const jcase c[] = {
        {"{\"enum\":[1,\"a\",null,{\"k\":[1,2]},2.5,true]}",
         {"1", "\"a\"", "null", "{\"k\": [1, 2]}", "{\"k\":[1,2]}", "2.5", "true"},
         {"2", "\"b\"", "{\"k\":[1]}", "{\"k\":[1,2,3]}", "false", "2.50", "\"A\""}},
        {"{\"const\":\"x\\\"y\\u00e9\\n\"}", {"\"x\\\"y\xc3\xa9\\n\""}, {"\"x\\\"y\\u00e9\\n\"", "\"xy\""}},
        {"{\"type\":\"string\",\"enum\":[\"a\",1,\"b\"]}", {"\"a\"", "\"b\""}, {"1"}},
        {"{\"type\":\"integer\",\"enum\":[1,1.0,2.5]}", {"1", "1.0"}, {"2.5"}},
        {"{\"const\":{\"a\":[]}}", {"{\"a\":[]}", "{\"a\": []}"}, {"{\"a\":[ ]}", "{}"}},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_objects(void **state) {
    (void)state;
    static const jcase c[] = {
        /* required and optional, in schema order; extra keys allowed (not strict) */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"a\"]}",
         {"{\"a\":1}", "{\"a\": 1, \"b\": \"x\"}", "{\"a\":1,\"b\":\"x\",\"c\":[true]}", "{\"a\":1,\"zz\":null}", "{\"a\":1,\"bb\":2}"},
         {"{}", "{\"b\":\"x\"}", "{\"a\":\"1\"}", "{\"b\":\"x\",\"a\":1}", "{\"a\":1,\"b\":2}", "{\"a\":1,\"a\":2}", "{\"a\":1,}",
          "{\"a\":1 }", "{ \"a\":1}"}},
        /* strict: no extra keys */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"a\"]}",
         {"{\"a\":1}", "{\"a\":1,\"b\":\"\"}"}, {"{\"a\":1,\"c\":2}", "{\"a\":1,\"bb\":\"\"}"}, 1, 0},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false}", {"{}", "{\"a\":[1]}"}, {"{\"b\":1}"}},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", {"{}", "{\"x\":1,\"y\":2}"}, {"{\"x\":\"1\"}"}},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"}},\"additionalProperties\":true}", {"{\"b\":1}", "{\"a\":null,\"b\":1}"},
         {"{\"a\":1}"}, 1, 0},
        /* required names that are not properties take additionalProperties */
        {"{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":{\"type\":\"boolean\"}}", {"{\"x\":true}", "{\"x\":false,\"y\":true}"},
         {"{}", "{\"x\":1}", "{\"y\":true}"}},
        /* all optional */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"},\"c\":{\"type\":\"integer\"}}}",
         {"{}", "{\"b\":2}", "{\"a\":1,\"c\":3}", "{\"a\":1,\"b\":2,\"c\":3}"}, {"{,\"b\":2}", "{\"c\":3,\"a\":1}"}, 1, 0},
        /* a property with schema false may not appear */
        {"{\"properties\":{\"a\":false,\"b\":{\"type\":\"integer\"}}}", {"{}", "{\"b\":1}"}, {"{\"a\":1}"}, 1, 0},
        /* Unicode and escaped property names */
        {"{\"properties\":{\"\xc3\xa9t\xc3\xa9\":{\"const\":\"\xc3\xbc\"},\"q\\\"\":{\"type\":\"null\"}},\"required\":[\"\xc3\xa9t\xc3\xa9\"]}",
         {"{\"\xc3\xa9t\xc3\xa9\":\"\xc3\xbc\"}", "{\"\xc3\xa9t\xc3\xa9\":\"\xc3\xbc\",\"q\\\"\":null}"}, {"{\"\\u00e9t\\u00e9\":\"\xc3\xbc\"}"}, 1, 0},
        /* whitespace policy */
        {"{\"properties\":{\"a\":{\"type\":\"array\"}}}", {"{\"a\":[1,2]}", "{\"a\": [1, 2]}", " {\"a\":[]}"},
         {"{\"a\":  []}", "{\"a\" :[]}", "{\"a\":[1 ,2]}", "{\"a\":[1,\n2]}", "\n{}", "{}\n", "  {}"}, 1, 0},
        {"{\"properties\":{\"a\":{\"type\":\"array\"}}}", {"{\"a\":[1,2]}", " {}"}, {"{\"a\": [1,2]}", "{\"a\":[1, 2]}"}, 1, 1},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_arrays(void **state) {
    (void)state;
    static const jcase c[] = {
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", {"[]", "[1]", "[1, 2,3]"}, {"[1,]", "[,]", "[\"a\"]", "[1 ]", "[ 1]"}},
        {"{\"type\":\"array\",\"minItems\":2,\"maxItems\":3}", {"[1,2]", "[1,\"a\",null]"}, {"[]", "[1]", "[1,2,3,4]"}},
        {"{\"type\":\"array\",\"minItems\":1}", {"[1]", "[1,2,3,4,5,6,7]"}, {"[]"}},
        {"{\"type\":\"array\",\"maxItems\":0}", {"[]"}, {"[1]"}},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}",
         {"[]", "[\"a\"]", "[\"a\",1]"}, {"[1]", "[\"a\",\"b\"]", "[\"a\",1,2]"}},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":\"boolean\"},\"minItems\":2}",
         {"[\"a\",true]", "[\"a\",true,false]"}, {"[\"a\"]", "[true,true]", "[\"a\",1]"}},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"null\"},{\"type\":\"null\"},{\"type\":\"null\"}],\"maxItems\":2}",
         {"[]", "[null]", "[null,null]"}, {"[null,null,null]", "[1]"}},
        {"{\"items\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"maxItems\":2}}", {"[[1,2],[],[3.5]]"}, {"[[1,2,3]]", "[1]"}},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_strings(void **state) {
    (void)state;
    static const jcase c[] = {
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
         {"\"ab\"", "\"abc\"", "\"\xc3\xa9\xe2\x82\xac\"", "\"\\ud83d\\ude00a\"", "\"\\n\\t\"", "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\""},
         {"\"a\"", "\"abcd\"", "\"\"", "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""}},
        {"{\"type\":\"string\",\"maxLength\":0}", {"\"\""}, {"\"a\""}},
        {"{\"type\":\"string\",\"pattern\":\"^[a-z]+-[0-9]{2,3}$\"}", {"\"ab-12\"", "\"x-999\""}, {"\"ab-1\"", "\"AB-12\"", "\"ab-1234\"", "\"-12\""}},
        {"{\"pattern\":\"abc\"}", {"\"abc\"", "\"xxabcxx\"", "\"abcabc\"", "\"\\\"abc\\n\""}, {"\"ab\"", "\"acb\""}},
        {"{\"pattern\":\"^(cat|dog)s?$\"}", {"\"cat\"", "\"dogs\""}, {"\"cats!\"", "\"cow\"", "\"catdog\""}},
        {"{\"pattern\":\"^\\\\d+\\\\.\\\\d+$\"}", {"\"3.14\""}, {"\"3,14\"", "\"3.\"", "\"\xd9\xa3.1\""}},
        {"{\"pattern\":\"^a\\\"b\\\\\\\\c$\"}", {"\"a\\\"b\\\\c\""}, {"\"a\\\"bc\""}},
        {"{\"pattern\":\"^[^a-c]{2}$\"}", {"\"de\"", "\"\\n\\\"\"", "\"\xc3\xa9z\""}, {"\"ad\"", "\"d\""}},
        {"{\"pattern\":\"^.{3}$\"}", {"\"abc\"", "\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\""}, {"\"a\\nb\"", "\"ab\""}},
        {"{\"pattern\":\"^\\\\w+@(\\\\w+\\\\.)+[a-z]{2,}$|^x$\"}", {"\"me@host.org\"", "\"x\""}, {"\"me@host\"", "\"xx\""}},
        {"{\"pattern\":\"^(?:ab)*?$\"}", {"\"\"", "\"abab\""}, {"\"aba\""}},
        {"{\"pattern\":\"^[\\\\s]*$\"}", {"\" \\t\\n\""}, {"\"a\""}},
        {"{\"format\":\"date\"}", {"\"2024-02-29\"", "\"2023-12-31\"", "\"2000-02-29\"", "\"0001-01-01\"", "\"2023-04-30\""},
         {"\"2023-02-29\"", "\"1900-02-29\"", "\"2023-13-01\"", "\"0000-01-01\"", "\"2023-04-31\"", "\"2023-1-01\"", "\"2023-00-10\""}},
        {"{\"format\":\"time\"}", {"\"12:30:00Z\"", "\"23:59:59.123+05:30\"", "\"00:00:00-12:00\""},
         {"\"24:00:00Z\"", "\"12:30:00\"", "\"12:60:00Z\"", "\"12:30:00.1234567Z\""}},
        {"{\"format\":\"date-time\"}", {"\"2024-01-15T08:30:00Z\"", "\"2024-01-15T08:30:00.5+01:00\""},
         {"\"2024-01-15 08:30:00Z\"", "\"2024-01-15T08:30:00\""}},
        {"{\"format\":\"uuid\"}", {"\"123e4567-e89b-12d3-a456-426614174000\"", "\"ABCDEF01-2345-6789-abcd-ef0123456789\""},
         {"\"123e4567e89b12d3a456426614174000\"", "\"123e4567-e89b-12d3-a456-42661417400\"", "\"g23e4567-e89b-12d3-a456-426614174000\""}},
        {"{\"format\":\"email\"}", {"\"a@b.co\"", "\"first.last+tag@mail.example.org\""}, {"\"a@b\"", "\"@b.co\"", "\"a..b@c.d\"", "\"a b@c.d\""}},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_numbers(void **state) {
    (void)state;
    static const jcase c[] = {
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":123}", {"5", "9", "10", "99", "100", "123"}, {"4", "124", "1000", "-5", "0", "05"}},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":-3}", {"-2", "0", "1000000"}, {"-3", "-10"}},
        {"{\"type\":\"integer\",\"maximum\":-10}", {"-10", "-11", "-100000"}, {"-9", "0", "10"}},
        {"{\"type\":\"integer\",\"minimum\":1.5,\"exclusiveMaximum\":4}", {"2", "3"}, {"1", "4"}},
        {"{\"type\":\"integer\",\"minimum\":-1000,\"maximum\":1000}", {"-1000", "-999", "-1", "0", "7", "1000"}, {"-1001", "1001", "-0"}},
        {"{\"type\":\"integer\",\"minimum\":0}", {"0", "1", "10", "123456789012345678"}, {"-1", "1234567890123456789"}},
        {"{\"type\":\"number\"}", {"1e99", "-1.5E-12", "123456789012345678.25"}, {"1e100", "1234567890123456789"}},
        {"{\"type\":\"integer\",\"minimum\":1000,\"maximum\":1009}", {"1000", "1005", "1009"}, {"999", "1010", "100"}},
        {"{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", {"0", "0.5", "1", "1.0", "1.000", "0.999"}, {"1.5", "-0.1", "1.01", "2", "1e0"}},
        {"{\"type\":\"number\",\"exclusiveMinimum\":0}", {"0.001", "1", "12.5"}, {"0", "0.0", "-1"}},
        {"{\"type\":\"number\",\"minimum\":-1,\"exclusiveMaximum\":0}", {"-1", "-0.5", "-1.0", "-0.01"}, {"0", "-1.5", "0.5", "-0", "-0.0"}},
        {"{\"type\":\"number\",\"maximum\":-2}", {"-2", "-2.0", "-3.5", "-100"}, {"-1.5", "-1.99", "0", "-2.01x"}},
        {"{\"minimum\":3}", {"3", "3.5", "100"}, {"2.9", "\"3\""}},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_combinators(void **state) {
    (void)state;
    static const jcase c[] = {
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}]}", {"1", "\"a\""}, {"\"ab\"", "1.5"}},
        {"{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"null\"}]}", {"true", "null"}, {"0"}},
        {"{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\"}},\"required\":[\"k\"],"
         "\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"properties\":{\"b\":{\"type\":\"null\"}},\"required\":[\"b\"]}]}",
         {"{\"k\":\"x\",\"a\":1}", "{\"k\":\"x\",\"b\":null}"}, {"{\"k\":\"x\"}", "{\"a\":1}"}, 1, 0},
        {"{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"properties\":{\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}",
         {"{\"a\":1,\"b\":\"x\"}"}, {"{\"a\":1}", "{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\",\"c\":1}"}, 1, 0},
        /* additionalProperties false in one branch forbids the other's keys */
        {"{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":false},{\"properties\":{\"b\":{\"type\":\"string\"}}}]}",
         {"{}", "{\"a\":1}"}, {"{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}"}},
        /* bounds merge to the tighter */
        {"{\"allOf\":[{\"type\":\"integer\",\"minimum\":3},{\"maximum\":5},{\"minimum\":4}]}", {"4", "5"}, {"3", "6"}},
        {"{\"allOf\":[{\"type\":[\"string\",\"integer\"]},{\"type\":[\"integer\",\"null\"]}]}", {"1"}, {"\"a\"", "null"}},
        {"{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}}},{\"properties\":{\"a\":{\"minimum\":10}}}],\"required\":[\"a\"]}",
         {"{\"a\":10}"}, {"{\"a\":9}", "{\"a\":10.5}"}, 1, 0},
        {"{\"$ref\":\"#/$defs/p\",\"$defs\":{\"p\":{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/n\"}},\"required\":[\"x\"]},"
         "\"n\":{\"type\":\"number\"}}}",
         {"{\"x\":1.5}"}, {"{\"x\":\"a\"}", "{}"}, 1, 0},
        {"{\"definitions\":{\"s\":{\"type\":\"string\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/definitions/s\"}}", {"[\"a\"]"}, {"[1]"}},
        /* recursion through $ref */
        {"{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}},\"required\":[\"v\"]}",
         {"{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4,\"kids\":[]}]}]}"}, {"{\"v\":1,\"kids\":[{}]}"}, 1, 0},
        /* $ref with sibling keywords: both apply */
        {"{\"$defs\":{\"i\":{\"type\":\"integer\"}},\"$ref\":\"#/$defs/i\",\"maximum\":3}", {"3", "-1"}, {"4", "\"a\""}},
        /* JSON pointer escapes */
        {"{\"$defs\":{\"a/b\":{\"const\":1},\"c~d\":{\"const\":2}},\"anyOf\":[{\"$ref\":\"#/$defs/a~1b\"},{\"$ref\":\"#/$defs/c~0d\"}]}", {"1", "2"}, {"3"}},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_json_object_mode(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    smoe_json_schema_opts o = {0};
    smoe_grammar *g = smoe_json_schema_compile(NULL, &o, err);
    assert_non_null(g);
    const char *good[] = {"{}", "{\"x\":[1,{\"y\":null}],\"z\":\"\\u0041\"}", " {\"a\": -1.5e3}", "{\"\":{\"\":{\"\":[]}}}"};
    const char *bad[] = {"[]", "1", "\"s\"", "{\"a\":1,}", "{'a':1}", "{\"a\":tru}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) assert_true(doc_ok(g, good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(doc_ok(g, bad[i]));
    smoe_grammar_free(g);
}

/* ---------------------------------------------------------------------------
 * Bad schemas
 * ------------------------------------------------------------------------- */

static void expect_schema_error(const char *schema, const char *words, int strict) {
    char err[SMOE_ERR_SIZE] = "";
    smoe_json_schema_opts o = {.strict = strict};
    double t0 = now_ms();
    smoe_grammar *g = schema_grammar(schema, &o, err);
    double ms = now_ms() - t0;
    if (g) fail_msg("schema %.200s should be refused", schema);
    if (!strstr(err, words)) fail_msg("schema %.200s: error '%s' should mention '%s'", schema, err, words);
    if (ms > 2000) fail_msg("schema %.200s: refusing it took %.0f ms", schema, ms);
}

static void test_bad_schemas(void **state) {
    (void)state;
    /* invalid */
    expect_schema_error("{\"type\":5}", "'type' must be", 0);
    expect_schema_error("{\"type\":\"foo\"}", "unknown type 'foo'", 0);
    expect_schema_error("{\"properties\":[]}", "'properties' must be an object", 0);
    expect_schema_error("{\"minLength\":-1}", "minLength", 0);
    expect_schema_error("\"hello\"", "must be an object or a boolean", 0);
    expect_schema_error("{\"required\":[1]}", "'required' must be an array of strings", 0);
    expect_schema_error("{\"pattern\":\"(ab\"}", "pattern", 0);
    expect_schema_error("{\"$ref\":\"http://example.com/s.json\"}", "only local references", 0);
    expect_schema_error("{\"$ref\":\"#/$defs/missing\"}", "points to nothing", 0);
    expect_schema_error("{\"items\":[{\"type\":\"string\"}]}", "prefixItems", 0);
    /* unsupported keywords are named, never ignored */
    static const char *const unsupported[] = {"uniqueItems", "not", "if", "patternProperties", "multipleOf", "minProperties",
                                              "contains", "propertyNames", "dependentRequired", "nullable", "additionalItems"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
        char s[128], w[64];
        snprintf(s, sizeof s, "{\"type\":\"object\",\"properties\":{\"a\":{\"%s\":true}}}", unsupported[i]);
        snprintf(w, sizeof w, "unsupported keyword '%s'", unsupported[i]);
        expect_schema_error(s, w, 0);
    }
    expect_schema_error("{\"properties\":{\"a\":{\"uniqueItems\":true}}}", "/properties/a", 0);
    expect_schema_error("{\"format\":\"ipv4\"}", "unsupported format 'ipv4'", 0);
    expect_schema_error("{\"type\":\"string\",\"enum\":[\"a\"],\"maxLength\":3}", "enum together with 'maxLength'", 0);
    expect_schema_error("{\"type\":\"number\",\"minimum\":0.5}", "whole numbers", 0);
    expect_schema_error("{\"type\":\"string\",\"pattern\":\"a\",\"maxLength\":3}", "not supported", 0);
    /* unsatisfiable */
    expect_schema_error("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "unsatisfiable", 0);
    expect_schema_error("{\"type\":\"array\",\"prefixItems\":[{}],\"items\":false,\"minItems\":2}", "unsatisfiable", 0);
    expect_schema_error("{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}", "unsatisfiable", 0);
    expect_schema_error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "unsatisfiable", 0);
    expect_schema_error("{\"type\":\"integer\",\"minimum\":4.2,\"maximum\":4.8}", "unsatisfiable", 0);
    expect_schema_error("{\"type\":\"number\",\"exclusiveMinimum\":3,\"maximum\":3}", "unsatisfiable", 0);
    expect_schema_error("{\"enum\":[]}", "unsatisfiable", 0);
    expect_schema_error("{\"type\":\"integer\",\"enum\":[\"a\"]}", "unsatisfiable", 0);
    expect_schema_error("false", "unsatisfiable", 0);
    expect_schema_error("{\"type\":[]}", "no value", 0);
    expect_schema_error("{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}", "unsatisfiable", 0);
    expect_schema_error("{\"type\":\"object\",\"required\":[\"x\"]}", "unsatisfiable", 1);
    expect_schema_error("{\"properties\":{\"a\":false},\"required\":[\"a\"]}", "unsatisfiable", 0);
    expect_schema_error("{\"allOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "unsatisfiable", 0);
    expect_schema_error("{\"anyOf\":[false,false]}", "unsatisfiable", 0);
    /* recursion that never ends: a required child of the same type */
    expect_schema_error("{\"type\":\"object\",\"properties\":{\"c\":{\"$ref\":\"#\"}},\"required\":[\"c\"]}", "unsatisfiable", 1);
    /* allOf of itself: endless inlining is caught by the depth limit */
    expect_schema_error("{\"allOf\":[{\"$ref\":\"#\"}]}", "levels", 0);
}

static void test_deep_nesting(void **state) {
    (void)state;
    /* 1000 levels of nested objects, arrays, anyOf */
    static const char *const open[3] = {"{\"type\":\"object\",\"properties\":{\"a\":", "{\"type\":\"array\",\"items\":", "{\"anyOf\":["};
    static const char *const close[3] = {"}}", "}", "]}"};
    for (int k = 0; k < 3; k++) {
        size_t cap = 1000 * 64 + 64, n = 0;
        char *s = malloc(cap);
        assert_non_null(s);
        for (int i = 0; i < 1000; i++) n += (size_t)sprintf(s + n, "%s", open[k]);
        n += (size_t)sprintf(s + n, "{\"type\":\"integer\"}");
        for (int i = 0; i < 1000; i++) n += (size_t)sprintf(s + n, "%s", close[k]);
        expect_schema_error(s, "nests more than", 0);
        free(s);
    }
    /* 40 levels are fine */
    char s[4096];
    size_t n = 0;
    for (int i = 0; i < 40; i++) n += (size_t)sprintf(s + n, "%s", open[1]);
    n += (size_t)sprintf(s + n, "{\"type\":\"integer\"}");
    for (int i = 0; i < 40; i++) n += (size_t)sprintf(s + n, "}");
    char err[SMOE_ERR_SIZE];
    smoe_json_schema_opts o = {0};
    smoe_grammar *g = schema_grammar(s, &o, err);
    if (!g) fail_msg("%s", err);
    char doc[128];
    memset(doc, '[', 40);
    doc[40] = '7';
    memset(doc + 41, ']', 40);
    doc[81] = 0;
    assert_true(doc_ok(g, doc));
    smoe_grammar_free(g);
}

static void test_pathological_patterns(void **state) {
    (void)state;
    /* nested quantifiers: exponential for a backtracking engine, linear here */
    static const char *const pats[] = {"^(a+)+$", "^(a|a)*$", "^(a|aa)*b$", "^(x+x+)+y$", "^(.*a){12}$"};
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
        char schema[256], err[SMOE_ERR_SIZE];
        json_t *js = json_pack("{s:s}", "pattern", pats[i]);
        smoe_json_schema_opts o = {0};
        double t0 = now_ms();
        smoe_grammar *g = smoe_json_schema_compile(js, &o, err);
        json_decref(js);
        if (!g) fail_msg("%s: %s", pats[i], err);
        size_t len = 5000;
        char *doc = malloc(len + 4);
        doc[0] = '"';
        memset(doc + 1, i == 3 ? 'x' : 'a', len);
        doc[len + 1] = '!';
        doc[len + 2] = '"';
        doc[len + 3] = 0;
        assert_false(doc_ok(g, doc)); /* the '!' can never match */
        free(doc);
        double ms = now_ms() - t0;
        snprintf(schema, sizeof schema, "%s took %.0f ms", pats[i], ms);
        if (ms > 5000) fail_msg("%s", schema);
        smoe_grammar_free(g);
    }
    expect_schema_error("{\"pattern\":\"(a{1000}){1000}\"}", "too large", 0);
    expect_schema_error("{\"pattern\":\"((a{100}){100}){100}\"}", "too large", 0);
    expect_schema_error("{\"pattern\":\"(a)\\\\1\"}", "backreferences", 0);
    expect_schema_error("{\"pattern\":\"a(?=b)\"}", "lookaround", 0);
    expect_schema_error("{\"pattern\":\"\\\\bword\"}", "anchors", 0);
    expect_schema_error("{\"pattern\":\"a^b\"}", "'^'", 0);
    expect_schema_error("{\"pattern\":\"\\\\D\"}", "\\D", 0);
    expect_schema_error("{\"pattern\":\"a*+\"}", "possessive", 0);
    expect_schema_error("{\"pattern\":\"a**\"}", "multiple repeat", 0);
}

/* ---------------------------------------------------------------------------
 * Grammar syntax
 * ------------------------------------------------------------------------- */

static smoe_grammar *gram(const char *text, char *err) { return smoe_grammar_new(text, strlen(text), err); }

static void test_grammar_syntax(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    smoe_grammar *g = gram("# arithmetic\n"
                           "root ::= expr\n"
                           "expr ::= term ((\"+\" | \"-\") term)*\n"
                           "term ::= factor ((\"*\" | \"/\") factor)*\n"
                           "factor ::= num | \"(\" expr \")\" | \"-\" factor\n"
                           "num ::= [0-9]{1,3}\n",
                           err);
    if (!g) fail_msg("%s", err);
    const char *good[] = {"1", "1+2*3", "(1+2)*3", "-(4/2)", "999-1", "((((7))))"};
    const char *bad[] = {"", "1+", "(1", "1)", "1000", "a", "1 + 2"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) assert_true(doc_ok(g, good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(doc_ok(g, bad[i]));
    smoe_grammar_free(g);

    /* classes: ranges, negation, escapes, Unicode; repetition forms */
    g = gram("root ::= [a-c\\x41\\u00e9-\\u00ea] [^a-z\\n] \"\\u20ac\"{2} x{,2} y{2,} z?\n"
             "x ::= \"x\"\ny ::= [\\U0001F600]\nz ::= .\n", err);
    if (!g) fail_msg("%s", err);
    assert_true(doc_ok(g, "bZ\xe2\x82\xac\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
    assert_true(doc_ok(g, "A\xc3\xa9\xe2\x82\xac\xe2\x82\xacxx\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xe4\xb8\xad"));
    assert_true(doc_ok(g, "\xc3\xaa\xc3\xa9\xe2\x82\xac\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
    assert_false(doc_ok(g, "dZ\xe2\x82\xac\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
    assert_false(doc_ok(g, "ba\xe2\x82\xac\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
    assert_false(doc_ok(g, "bZ\xe2\x82\xac\xe2\x82\xacxxx\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
    assert_false(doc_ok(g, "bZ\xe2\x82\xac\xe2\x82\xac\xf0\x9f\x98\x80"));
    assert_false(doc_ok(g, "bZ\xe2\x82\xac\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xed\xa0\x80")); /* surrogate */
    smoe_grammar_free(g);

    /* the matcher: prefixes, completion, remaining distance */
    g = gram("root ::= \"ab\" | \"abcd\"\n", err);
    smoe_gmatch *m = smoe_gmatch_new(g, NULL, err);
    assert_int_equal(smoe_gmatch_min_remaining(m), 2);
    size_t ok;
    assert_int_equal(smoe_gmatch_accept_bytes(m, "ab", 2, &ok, err), 0);
    assert_true(smoe_gmatch_complete(m));
    assert_true(smoe_gmatch_can_continue(m));
    assert_int_equal(smoe_gmatch_accept_bytes(m, "cx", 2, &ok, err), -1);
    assert_int_equal(ok, 1);
    assert_true(smoe_gmatch_complete(m)); /* unchanged after a rejection */
    assert_int_equal(smoe_gmatch_accept_bytes(m, "cd", 2, &ok, err), 0);
    assert_false(smoe_gmatch_can_continue(m));
    smoe_gmatch_reset(m);
    assert_false(smoe_gmatch_complete(m));
    smoe_gmatch_free(m);
    smoe_grammar_free(g);

    /* errors */
    static const struct { const char *text, *words; } bad_g[] = {
        {"root ::= root \"a\" | \"b\"\n", "left-recursive"},
        {"root ::= a\na ::= \"x\"? b\nb ::= a \"y\" | \"z\"\n", "left-recursive"},
        {"root ::= foo\n", "'foo' is used but never defined"},
        {"root ::= \"a\" root\n", "never finish"},
        {"x ::= \"a\"\n", "no rule named 'root'"},
        {"root ::= [z-a]\n", "reversed"},
        {"root ::= \"\\q\"\n", "unknown escape"},
        {"root ::= [^\\x00-\\U0010FFFF]\n", "matches nothing"},
        {"root ::= ((\"a\")\n", "expected ')'"},
        {"root ::= \"a\"**\n", "two repetition"},
        {"root ::= \"a\"{3,2}\n", "m < n"},
        {"root ::= \"a\"{200000}\n", "100000"},
        {"root ::= ((\"a\"{1000}){1000}){1000}\n", "too large"},
        {"root ::= \"a\"\nroot ::= \"b\"\n", "defined twice"},
        {"root ::= \"abc\n", "not closed"},
        {"root ::= \"\\xff\xff\"\n", "invalid UTF-8"},
        {"root ::= []\n", "empty"},
        {"root ::= @\n", "unexpected '@'"},
    };
    for (size_t i = 0; i < sizeof bad_g / sizeof *bad_g; i++) {
        err[0] = 0;
        smoe_grammar *b = gram(bad_g[i].text, err);
        if (b) fail_msg("grammar %s should be refused", bad_g[i].text);
        if (!strstr(err, bad_g[i].words)) fail_msg("grammar %s: '%s' should mention '%s'", bad_g[i].text, err, bad_g[i].words);
    }
}

/* ---------------------------------------------------------------------------
 * Token masks against brute force, and budgets
 * ------------------------------------------------------------------------- */

typedef struct testvocab {
    smoe_vocab v;
    smoe_tokenizer *t;
    smoe_gvocab *gv;
} testvocab;

/* the byte vocabulary plus pieces (▁ written as a space) */
static void make_vocab(testvocab *tv, const char *const *extra, int n_extra) {
    char err[SMOE_ERR_SIZE];
    smoe_vocab base;
    assert_int_equal(smoe_vocab_builtin_bytes(&base, err), 0);
    memset(&tv->v, 0, sizeof tv->v);
    assert_int_equal(smoe_vocab_alloc(&tv->v, base.n_tokens + n_extra, err), 0);
    for (int32_t i = 0; i < base.n_tokens; i++) {
        tv->v.tokens[i] = strdup(base.tokens[i]);
        tv->v.token_len[i] = base.token_len[i];
        tv->v.types[i] = base.types[i];
    }
    for (int i = 0; i < n_extra; i++) {
        char piece[256];
        size_t w = 0;
        for (const char *p = extra[i]; *p; p++) {
            if (*p == ' ') { memcpy(piece + w, "\xe2\x96\x81", 3); w += 3; }
            else piece[w++] = *p;
        }
        piece[w] = 0;
        tv->v.tokens[base.n_tokens + i] = strdup(piece);
        tv->v.token_len[base.n_tokens + i] = (uint32_t)w;
        tv->v.types[base.n_tokens + i] = SMOE_TOKEN_NORMAL;
    }
    tv->v.unk_id = base.unk_id;
    tv->v.bos_id = base.bos_id;
    tv->v.eos_id = base.eos_id;
    tv->v.pad_id = -1;
    tv->v.add_bos = true;
    tv->v.add_space_prefix = true;
    tv->v.byte_fallback = true;
    strcpy(tv->v.model, "llama");
    smoe_vocab_free(&base);
    tv->t = smoe_tokenizer_new(&tv->v, err);
    assert_non_null(tv->t);
    tv->gv = smoe_gvocab_new(tv->t, err);
    assert_non_null(tv->gv);
}

static bool load_shared_vocab(testvocab *tv) {
    const char *shared = getenv("SMOE_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/mistral-v1.model", shared ? shared : "../shared");
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)n);
    assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    char err[SMOE_ERR_SIZE];
    memset(&tv->v, 0, sizeof tv->v);
    assert_int_equal(smoe_vocab_from_spm(&tv->v, data, (size_t)n, err), 0);
    free(data);
    tv->t = smoe_tokenizer_new(&tv->v, err);
    assert_non_null(tv->t);
    tv->gv = smoe_gvocab_new(tv->t, err);
    assert_non_null(tv->gv);
    return true;
}

static void free_vocab(testvocab *tv) {
    smoe_gvocab_free(tv->gv);
    smoe_tokenizer_free(tv->t);
    smoe_vocab_free(&tv->v);
}

static uint64_t rng_next(uint64_t *s) { return smoe_splitmix64(s); }

/* Walk random documents: at every step compare the mask with feeding each
 * token's bytes to a copy of the state (brute force), then move on with a
 * random allowed token.  With a budget, every document must complete. */
static void mask_vs_brute(testvocab *tv, smoe_grammar *g, int docs, int steps, int32_t budget, uint64_t seed, int brute_every) {
    char err[SMOE_ERR_SIZE];
    int32_t V = smoe_gvocab_n_tokens(tv->gv);
    size_t words = smoe_gvocab_mask_words(tv->gv);
    uint64_t *mask = malloc(words * sizeof *mask);
    int32_t *allowed = malloc((size_t)V * sizeof *allowed);
    char *prefix = malloc(1 << 16);
    for (int d = 0; d < docs; d++) {
        smoe_gmatch *m = smoe_gmatch_new(g, tv->gv, err);
        smoe_gmatch *probe = smoe_gmatch_new(g, tv->gv, err);
        assert_non_null(m);
        size_t plen = 0;
        int32_t left = budget;
        for (int s = 0; s < steps; s++) {
            if (smoe_gmatch_complete(m) && !smoe_gmatch_can_continue(m)) break;
            if (budget >= 0 && left == 0) break;
            int32_t n = smoe_gmatch_mask(m, budget >= 0 ? left - 1 : -1, mask, err);
            if (n < 0) fail_msg("mask: %s", err);
            int32_t na = 0;
            for (int32_t t = 0; t < V; t++) if ((mask[t >> 6] >> (t & 63)) & 1) allowed[na++] = t;
            assert_int_equal(na, n);
            if (s % brute_every == 0) {
                for (int32_t t = 0; t < V; t++) {
                    char tb[256];
                    size_t tl = smoe_token_bytes(tv->t, t, tb, sizeof tb);
                    bool expect;
                    int32_t ty = tv->v.types[t];
                    if (t == tv->v.eos_id) expect = smoe_gmatch_complete(m);
                    else if (tl == 0 || ty == SMOE_TOKEN_CONTROL || ty == SMOE_TOKEN_UNKNOWN || ty == SMOE_TOKEN_UNUSED) expect = false;
                    else {
                        smoe_gmatch_reset(probe);
                        expect = smoe_gmatch_accept_bytes(probe, prefix, plen, NULL, err) == 0 &&
                                 smoe_gmatch_accept_bytes(probe, tb, tl, NULL, err) == 0;
                        if (expect && budget >= 0) expect = smoe_gmatch_min_remaining(probe) <= (uint32_t)(left - 1);
                    }
                    bool got = (mask[t >> 6] >> (t & 63)) & 1;
                    if (got != expect)
                        fail_msg("token %d (%.*s) after '%.*s': mask says %d, brute force %d", t, (int)tl, tb, (int)plen, prefix, got, expect);
                }
            }
            if (na == 0) fail_msg("no token allowed after '%.*s'", (int)plen, prefix);
            int32_t t = allowed[rng_next(&seed) % (uint64_t)na];
            if (t == tv->v.eos_id) break;
            assert_int_equal(smoe_gmatch_accept_token(m, t, err), 0);
            plen += smoe_token_bytes(tv->t, t, prefix + plen, 256);
            left--;
            assert_true(plen < (1 << 16) - 300);
        }
        if (budget >= 0 && !smoe_gmatch_complete(m))
            fail_msg("budget %d: the document '%.*s' is not complete", budget, (int)plen, prefix);
        smoe_gmatch_free(m);
        smoe_gmatch_free(probe);
    }
    free(mask);
    free(allowed);
    free(prefix);
}

static const char *const test_schema =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8},"
    "\"n\":{\"type\":\"integer\",\"minimum\":-50,\"maximum\":5000},\"ok\":{\"type\":\"boolean\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",\"\xc3\xa9t\xc3\xa9\"]},\"maxItems\":3},"
    "\"sub\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}}}},"
    "\"required\":[\"name\",\"n\"]}";

static void test_masks_small_vocab(void **state) {
    (void)state;
    static const char *const pieces[] = {"{\"", "\":", "\",\"", "\"}", " \"", "name", "na", "me\"", "true", "tr", "ue}",
                                         "[\"", "\"]", "red", "green", "\xc3\xa9t", "\xc3\xa9", "12", "-5", "00", "}}",
                                         "{\"x\":", "\xe2\x96\x81", " {", "\xe2\x82\xac", "\"\"", ":{", "e1", ".5"};
    testvocab tv;
    make_vocab(&tv, pieces, (int)(sizeof pieces / sizeof *pieces));
    char err[SMOE_ERR_SIZE];
    smoe_json_schema_opts o = {.strict = true};
    smoe_grammar *g = schema_grammar(test_schema, &o, err);
    if (!g) fail_msg("%s", err);
    mask_vs_brute(&tv, g, 30, 60, -1, 1, 1);
    mask_vs_brute(&tv, g, 30, 200, 40, 2, 1);  /* budget: complete within 40 tokens */
    mask_vs_brute(&tv, g, 20, 200, 25, 3, 1);
    smoe_grammar_free(g);
    /* json_object mode, recursive */
    g = smoe_json_schema_compile(NULL, &o, err);
    mask_vs_brute(&tv, g, 20, 200, 60, 4, 1);
    smoe_grammar_free(g);
    /* a grammar file */
    g = gram("root ::= e\ne ::= t ((\"+\" | \"-\") t)*\nt ::= f ((\"*\") f)*\nf ::= [0-9]+ | \"(\" e \")\"\n", err);
    mask_vs_brute(&tv, g, 20, 200, 30, 5, 1);
    smoe_grammar_free(g);
    free_vocab(&tv);
}

static void test_masks_real_vocab(void **state) {
    (void)state;
    testvocab tv;
    if (!load_shared_vocab(&tv)) { skip(); return; }
    char err[SMOE_ERR_SIZE];
    smoe_json_schema_opts o = {0};
    smoe_grammar *g = schema_grammar(test_schema, &o, err);
    if (!g) fail_msg("%s", err);
    mask_vs_brute(&tv, g, 3, 40, -1, 7, 10);
    mask_vs_brute(&tv, g, 20, 100, 30, 8, 1000); /* budget only */
    /* speed: a warm mask is a cached copy, a cold one a pruned trie walk */
    smoe_gmatch *m = smoe_gmatch_new(g, tv.gv, err);
    uint64_t *mask = malloc(smoe_gvocab_mask_words(tv.gv) * sizeof *mask);
    double t0 = now_ms();
    int32_t n = smoe_gmatch_mask(m, -1, mask, err);
    double cold = now_ms() - t0;
    t0 = now_ms();
    for (int i = 0; i < 100; i++) smoe_gmatch_mask(m, -1, mask, err);
    double warm = (now_ms() - t0) / 100;
    print_message("mistral-v1 vocabulary: first mask %.3f ms (%d tokens allowed), cached %.4f ms\n", cold, n, warm);
    free(mask);
    smoe_gmatch_free(m);
    smoe_grammar_free(g);
    free_vocab(&tv);
}

static void test_schema_cache(void **state) {
    (void)state;
    smoe_schema_cache *c = smoe_schema_cache_new(2);
    char err[SMOE_ERR_SIZE];
    json_t *a = json_loads("{\"type\":\"integer\",\"minimum\":1}", 0, NULL);
    json_t *a2 = json_loads("{\"minimum\":1,\"type\":\"integer\"}", 0, NULL); /* same schema, other key order */
    json_t *b = json_loads("{\"type\":\"string\"}", 0, NULL);
    smoe_json_schema_opts o = {0};
    bool hit;
    double ms;
    smoe_grammar *g1 = smoe_schema_cache_get(c, a, &o, &hit, &ms, err);
    assert_non_null(g1);
    assert_false(hit);
    smoe_grammar *g2 = smoe_schema_cache_get(c, a2, &o, &hit, &ms, err);
    assert_true(hit);
    assert_ptr_equal(g1, g2);
    smoe_json_schema_opts strict = {.strict = true};
    smoe_grammar *g3 = smoe_schema_cache_get(c, a, &strict, &hit, &ms, err);
    assert_false(hit);
    smoe_grammar *g4 = smoe_schema_cache_get(c, b, &o, &hit, &ms, err); /* evicts the oldest */
    assert_false(hit);
    assert_true(doc_ok(g2, "5"));
    json_t *bad = json_loads("{\"uniqueItems\":true}", 0, NULL);
    assert_null(smoe_schema_cache_get(c, bad, &o, &hit, &ms, err));
    assert_non_null(strstr(err, "uniqueItems"));
    smoe_grammar_free(g1);
    smoe_grammar_free(g2);
    smoe_grammar_free(g3);
    smoe_grammar_free(g4);
    smoe_schema_cache_free(c);
    json_decref(a);
    json_decref(a2);
    json_decref(b);
    json_decref(bad);
}

/* The builder API a server uses for tool calls: schemas embedded in a
 * bigger grammar. */
static void test_builder(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    smoe_json_schema_opts o = {.strict = true};
    smoe_jsg *b = smoe_jsg_new(&o, err);
    json_t *p1 = json_loads("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}", 0, NULL);
    json_t *p2 = json_loads("{\"type\":\"object\",\"properties\":{}}", 0, NULL);
    const char *n1 = smoe_jsg_add_schema(b, p1, err), *n2 = smoe_jsg_add_schema(b, p2, err);
    assert_non_null(n1);
    assert_non_null(n2);
    char rules[512];
    snprintf(rules, sizeof rules,
             "root ::= \" \"? \"[\" call (\",\" %s call)* \"]\"\n"
             "call ::= \"{\\\"name\\\": \\\"weather\\\", \\\"arguments\\\": \" %s \"}\" | \"{\\\"name\\\": \\\"time\\\", \\\"arguments\\\": \" %s \"}\"\n",
             smoe_jsg_sep(b), n1, n2);
    assert_int_equal(smoe_jsg_add_text(b, rules, err), 0);
    char *text = smoe_jsg_text(b, err);
    smoe_grammar *g = smoe_grammar_new(text, strlen(text), err);
    if (!g) fail_msg("%s\n%s", err, text);
    assert_true(doc_ok(g, " [{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"time\", \"arguments\": {}}]"));
    assert_false(doc_ok(g, "[{\"name\": \"weather\", \"arguments\": {}}]"));
    assert_false(doc_ok(g, "[{\"name\": \"other\", \"arguments\": {}}]"));
    smoe_grammar_free(g);
    free(text);
    smoe_jsg_free(b);
    json_decref(p1);
    json_decref(p2);
}

/* --- tool calls: parsing whole and streamed ----------------------------- */

typedef struct tc_log {
    char text[4096];  /* "B0:name|" "A:<fragment>|" "E0|" "C:<text>|" */
    size_t n;
} tc_log;

static int tc_ev(void *user, smoe_tcs_event ev, int index, const char *name, const char *id, const char *text,
                 size_t len) {
    tc_log *l = user;
    assert_true(id == NULL || smoe_toolcall_id_valid(id));
    int w = 0;
    size_t room = sizeof l->text - l->n;
    if (ev == SMOE_TCS_BEGIN) w = snprintf(l->text + l->n, room, "B%d:%s|", index, name);
    else if (ev == SMOE_TCS_END) w = snprintf(l->text + l->n, room, "E%d|", index);
    else w = snprintf(l->text + l->n, room, "%s%.*s|", ev == SMOE_TCS_ARGS ? "A:" : "C:", (int)len, text);
    l->n += (size_t)w;
    return 0;
}

/* The events of doc pushed in pieces of `step` bytes, fragments joined. */
static int tc_stream(smoe_toolcall_format fmt, const char *doc, size_t step, char *out, size_t cap) {
    tc_log l = {.n = 0};
    smoe_tcstream *s = smoe_tcstream_new(fmt, 7, tc_ev, &l);
    assert_non_null(s);
    int rc = 0;
    size_t n = strlen(doc);
    for (size_t i = 0; i < n && rc == 0; i += step) rc = smoe_tcstream_push(s, doc + i, n - i < step ? n - i : step);
    smoe_tcstream_free(s);
    snprintf(out, cap, "%.*s", (int)l.n, l.text);
    return rc;
}

/* Fragments joined: "B0:f|A:{|A:}|E0|" -> "B0:f{}|E0|", "C:a|C:b|" -> "C:ab|"
 * (how they are cut depends on the piece size; what they add up to must not). */
static void strip_joins(char *s) {
    char *p;
    while ((p = strstr(s, "|A:")) || (p = strstr(s + 1, "|C:"))) memmove(p, p + 3, strlen(p + 3) + 1);
}

static void test_toolcalls(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    json_error_t je;
    json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                               "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, "
                               "\"required\": [\"city\"]}}}, {\"type\": \"function\", \"function\": {\"name\": \"now\"}}]",
                               0, &je);
    assert_non_null(tools);
    smoe_toolset *ts = smoe_toolset_new(tools, err);
    assert_non_null(ts);
    assert_int_equal(smoe_toolset_count(ts), 2);

    /* whole documents: ids kept when valid, generated otherwise */
    const char *doc = " [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\\\"is \\u00e9\"}, \"id\": \"abcDEF123\"}, "
                      "{\"name\":\"now\",\"arguments\":{},\"id\":\"short\"}]";
    uint64_t rng = 1;
    smoe_toolcall_result r;
    assert_int_equal(smoe_toolcall_parse(ts, SMOE_TOOLCALL_V3, doc, strlen(doc), &rng, false, &r, err), 0);
    assert_int_equal(json_array_size(r.tool_calls), 2);
    json_t *c0 = json_array_get(r.tool_calls, 0), *c1 = json_array_get(r.tool_calls, 1);
    assert_string_equal(json_string_value(json_object_get(c0, "id")), "abcDEF123");
    assert_true(smoe_toolcall_id_valid(json_string_value(json_object_get(c1, "id"))));
    assert_string_not_equal(json_string_value(json_object_get(c1, "id")), "short");
    json_t *f0 = json_object_get(c0, "function");
    assert_string_equal(json_string_value(json_object_get(f0, "name")), "get_weather");
    assert_string_equal(json_string_value(json_object_get(f0, "arguments")), "{\"city\":\"Par\\\"is \u00e9\"}");
    smoe_toolcall_result_free(&r);
    /* Ollama: arguments stay an object */
    assert_int_equal(smoe_toolcall_parse(ts, SMOE_TOOLCALL_V3, doc, strlen(doc), &rng, true, &r, err), 0);
    assert_true(json_is_object(json_object_get(json_object_get(json_array_get(r.tool_calls, 0), "function"), "arguments")));
    smoe_toolcall_result_free(&r);
    /* refused: an undeclared tool, not JSON, the wrong shape */
    const char *bad[] = {"[{\"name\": \"rm\", \"arguments\": {}}]", "[{\"name\": ", "{\"name\": \"now\"}",
                         "[{\"arguments\": {}}]", "[{\"name\": \"now\", \"arguments\": 5}]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(smoe_toolcall_parse(ts, SMOE_TOOLCALL_V3, bad[i], strlen(bad[i]), &rng, false, &r, err), -1);
    /* the object form, both answers */
    const char *obj = "{\"content\": \"hi \\ud83d\\ude00\"}";
    assert_int_equal(smoe_toolcall_parse(ts, SMOE_TOOLCALL_OBJECT, obj, strlen(obj), &rng, false, &r, err), 0);
    assert_string_equal(r.content, "hi \xf0\x9f\x98\x80");
    assert_int_equal(json_array_size(r.tool_calls), 0);
    smoe_toolcall_result_free(&r);

    /* streamed: the same events whatever the piece size */
    char want[4096], got[4096];
    for (size_t step = 1; step <= 40; step++) {
        assert_int_equal(tc_stream(SMOE_TOOLCALL_V3, doc, step, got, sizeof got), 0);
        strip_joins(got);
        if (step == 1) strcpy(want, got);
        else assert_string_equal(got, want);
    }
    assert_string_equal(want, "B0:get_weather{\"city\": \"Par\\\"is \\u00e9\"}|E0|B1:now{}|E1|");
    const char *obj2 = " {\"tool_calls\": [{\"name\": \"now\", \"arguments\": {\"a\": [1, {\"b\": \"}]\"}]}}]}";
    for (size_t step = 1; step <= 9; step++) {
        assert_int_equal(tc_stream(SMOE_TOOLCALL_OBJECT, obj2, step, got, sizeof got), 0);
        strip_joins(got);
        assert_string_equal(got, "B0:now{\"a\": [1, {\"b\": \"}]\"}]}|E0|");
    }
    const char *obj3 = "{\"content\": \"a\\nb \\ud83d\\ude00 \\u00e9\\\"\"}";
    for (size_t step = 1; step <= 9; step++) {
        assert_int_equal(tc_stream(SMOE_TOOLCALL_OBJECT, obj3, step, got, sizeof got), 0);
        strip_joins(got);
        assert_string_equal(got, "C:a\nb \xf0\x9f\x98\x80 \xc3\xa9\"|");
    }
    /* malformed streams are refused, not crashed on */
    const char *sbad[] = {"{", "]", "[{\"arguments\": {}}]", "[5, {}]", "[{\"name\": \"now\", \"arguments\": 5}]"};
    for (size_t i = 0; i < sizeof sbad / sizeof *sbad; i++)
        assert_int_equal(tc_stream(SMOE_TOOLCALL_V3, sbad[i], 1, got, sizeof got), -1);

    /* tool_choice */
    smoe_tool_choice ch;
    json_t *named = json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", "now");
    assert_int_equal(smoe_tool_choice_parse(ts, named, json_false(), &ch, err), 0);
    assert_int_equal(ch.kind, SMOE_TOOLS_NAMED);
    assert_int_equal(ch.named, 1);
    assert_false(ch.parallel);
    json_decref(named);
    json_t *bad_choice = json_string("sometimes");
    assert_int_equal(smoe_tool_choice_parse(ts, bad_choice, NULL, &ch, err), -1);
    assert_non_null(strstr(err, "'sometimes'"));
    json_decref(bad_choice);
    smoe_toolset_free(ts);
    json_decref(tools);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_combinators),
        cmocka_unit_test(test_json_object_mode),
        cmocka_unit_test(test_bad_schemas),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_pathological_patterns),
        cmocka_unit_test(test_grammar_syntax),
        cmocka_unit_test(test_masks_small_vocab),
        cmocka_unit_test(test_masks_real_vocab),
        cmocka_unit_test(test_schema_cache),
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_toolcalls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
