/* test_gguf.c - GGUF writer -> reader round trip and typed metadata reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "format/gguf.h"
#include "kernels/types.h"

static int fill_iota(void *user, uint64_t idx, void *dst, size_t nbytes, char *err) {
    (void)user;
    (void)err;
    for (size_t i = 0; i < nbytes; i++) ((uint8_t *)dst)[i] = (uint8_t)(i + idx);
    return 0;
}

static int fill_fail(void *user, uint64_t idx, void *dst, size_t nbytes, char *err) {
    (void)user;
    (void)idx;
    (void)dst;
    (void)nbytes;
    return smoe_errf(err, "generator gave up");
}

static char *tmp_path(void) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/smoe-test-gguf-%d.gguf", (int)getpid());
    return path;
}

static gguf_writer *sample_writer(void) {
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    const char *toks[] = {"a", "bc", "\xe2\x96\x81hello"};
    float scores[] = {0.5f, -1.0f, 2.0f};
    int32_t types[] = {1, 3, 6};
    assert_int_equal(gguf_w_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_w_u32(w, "llama.block_count", 7), 0);
    assert_int_equal(gguf_w_i32(w, "neg", -5), 0);
    assert_int_equal(gguf_w_f32(w, "eps", 1e-5f), 0);
    assert_int_equal(gguf_w_bool(w, "flag", true), 0);
    assert_int_equal(gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 3), 0);
    assert_int_equal(gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, 3), 0);
    assert_int_equal(gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, 3), 0);
    int64_t ne1[2] = {64, 3}, ne2[3] = {32, 2, 2};
    assert_int_equal(gguf_w_tensor(w, "a.weight", SMOE_TYPE_F32, 2, ne1), 0);
    assert_int_equal(gguf_w_tensor(w, "b.weight", SMOE_TYPE_BF16, 3, ne2), 0);
    assert_int_equal(gguf_w_tensor(w, "c.weight", SMOE_TYPE_Q8_0, 1, ne2), 0);
    return w;
}

static void test_round_trip(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    gguf_writer *w = sample_writer();
    assert_int_equal(gguf_w_write(w, tmp_path(), fill_iota, NULL, err), 0);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(tmp_path(), err);
    assert_non_null(f);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_kv, 8);
    assert_int_equal(f->n_tensors, 3);
    int64_t v;
    assert_int_equal(gguf_get_int(f, "llama.block_count", 0, 100, &v, err), 1);
    assert_int_equal(v, 7);
    assert_int_equal(gguf_get_int(f, "neg", -10, 10, &v, err), 1);
    assert_int_equal(v, -5);
    assert_int_equal(gguf_get_int(f, "missing", 0, 10, &v, err), 0);
    double d;
    assert_int_equal(gguf_get_float(f, "eps", &d, err), 1);
    assert_float_equal(d, 1e-5, 1e-12);
    bool b = false;
    assert_int_equal(gguf_get_bool(f, "flag", &b, err), 1);
    assert_true(b);
    const gguf_kv *kv;
    assert_int_equal(gguf_get_array(f, "tokenizer.ggml.tokens", GGUF_STRING, &kv, err), 1);
    const uint8_t *cur = kv->arr_data;
    gguf_str s0 = gguf_next_str(&cur), s1 = gguf_next_str(&cur), s2 = gguf_next_str(&cur);
    assert_true(gguf_str_eq(s0, "a") && gguf_str_eq(s1, "bc") && gguf_str_eq(s2, "\xe2\x96\x81hello"));
    const gguf_tensor *t = gguf_find_tensor(f, "b.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[2], 2);
    assert_int_equal(t->nbytes, 32 * 2 * 2 * 2);
    assert_int_equal(((const uint8_t *)t->data)[5], 5 + 1);
    assert_int_equal(t->offset % f->alignment, 0);
    t = gguf_find_tensor(f, "c.weight");
    assert_int_equal(t->nbytes, 34);
    assert_null(gguf_find_tensor(f, "nope"));
    gguf_close(f);
    unlink(tmp_path());
}

static void test_typed_reads_reject_wrong_types(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    gguf_writer *w = sample_writer();
    assert_int_equal(gguf_w_write(w, tmp_path(), fill_iota, NULL, err), 0);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(tmp_path(), err);
    assert_non_null(f);
    int64_t v;
    const gguf_kv *kv;
    gguf_str s;
    assert_int_equal(gguf_get_int(f, "general.architecture", 0, 10, &v, err), -1);
    assert_non_null(strstr(err, "general.architecture"));
    assert_int_equal(gguf_get_int(f, "llama.block_count", 0, 5, &v, err), -1);
    assert_non_null(strstr(err, "expected 0 to 5"));
    assert_int_equal(gguf_get_str(f, "llama.block_count", &s, err), -1);
    /* scores as int32 must not be reinterpreted */
    assert_int_equal(gguf_get_array(f, "tokenizer.ggml.token_type", GGUF_F32, &kv, err), -1);
    assert_non_null(strstr(err, "array of int32"));
    assert_int_equal(gguf_get_array(f, "eps", GGUF_F32, &kv, err), -1);
    gguf_close(f);
    unlink(tmp_path());
}

static void test_failed_write_leaves_nothing(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    unlink(tmp_path());
    gguf_writer *w = sample_writer();
    assert_int_equal(gguf_w_write(w, tmp_path(), fill_fail, NULL, err), -1);
    assert_non_null(strstr(err, "generator gave up"));
    assert_int_equal(access(tmp_path(), F_OK), -1);
    /* an unwritable destination is a clear error */
    assert_int_equal(gguf_w_write(w, "/nonexistent-dir/x.gguf", fill_iota, NULL, err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.gguf"));
    gguf_writer_free(w);
}

/* Every truncation of a valid file fails cleanly, from memory too. */
static void test_every_truncation_fails(void **state) {
    (void)state;
    char err[SMOE_ERR_SIZE];
    gguf_writer *w = sample_writer();
    assert_int_equal(gguf_w_write(w, tmp_path(), fill_iota, NULL, err), 0);
    gguf_writer_free(w);
    FILE *fp = fopen(tmp_path(), "rb");
    assert_non_null(fp);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    unlink(tmp_path());
    gguf_file *whole = gguf_parse(buf, n, err);
    assert_non_null(whole);
    size_t end = 0; /* the trailing padding after the last tensor is optional */
    for (uint64_t i = 0; i < whole->n_tensors; i++) {
        size_t e = (size_t)(whole->data_offset + whole->tensors[i].offset + whole->tensors[i].nbytes);
        if (e > end) end = e;
    }
    gguf_close(whole);
    assert_true(end > 1000 && end <= n);
    for (size_t len = 0; len < end; len++) {
        /* a fresh heap copy of exactly len bytes lets ASan catch overreads */
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        err[0] = 0;
        gguf_file *f = gguf_parse(p, len, err);
        if (f) fail_msg("truncation at %zu bytes was accepted", len);
        assert_true(strlen(err) > 0);
        free(p);
    }
}

static void test_half_conversions(void **state) {
    (void)state;
    assert_true(smoe_f16_to_f32(0x3c00) == 1.0f);
    assert_true(smoe_f16_to_f32(0xc000) == -2.0f);
    assert_true(smoe_f16_to_f32(0x0001) == 5.9604644775390625e-08f);
    assert_true(smoe_f16_to_f32(0x7bff) == 65504.0f);
    assert_int_equal(smoe_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(smoe_f32_to_f16(65520.0f), 0x7c00); /* rounds to infinity */
    assert_int_equal(smoe_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
    assert_int_equal(smoe_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
    assert_int_equal(smoe_f32_to_f16(5.9604644775390625e-08f), 0x0001);
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN */
        assert_int_equal(smoe_f32_to_f16(smoe_f16_to_f32((uint16_t)h)), h);
    }
    /* the vectorised row conversions agree with the scalar ones, bit for bit */
    static uint16_t all[65536];
    static float row[65536];
    for (uint32_t h = 0; h < 0x10000; h++) all[h] = (uint16_t)h;
    smoe_type_get(SMOE_TYPE_F16)->to_float(all, row, 65536);
    for (uint32_t h = 0; h < 0x10000; h++) {
        float want = smoe_f16_to_f32((uint16_t)h);
        if (memcmp(&want, &row[h], 4)) fail_msg("F16 row conversion of 0x%04x", h);
    }
    smoe_type_get(SMOE_TYPE_BF16)->to_float(all, row, 65536);
    for (uint32_t h = 0; h < 0x10000; h++) {
        float want = smoe_bf16_to_f32((uint16_t)h);
        if (memcmp(&want, &row[h], 4)) fail_msg("BF16 row conversion of 0x%04x", h);
    }
    assert_true(smoe_bf16_to_f32(0x3f80) == 1.0f);
    assert_int_equal(smoe_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(smoe_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80); /* tie to even */
    assert_int_equal(smoe_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_typed_reads_reject_wrong_types),
        cmocka_unit_test(test_failed_write_leaves_nothing),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_half_conversions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
