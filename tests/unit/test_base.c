/* test_base.c - src/base: the UTF-8 scanner checked against the definition
 * of well-formed UTF-8 (a byte string is one character exactly when it is
 * the encoding of a scalar value), the growable buffer, the clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/utf8.h"

/* The reference, from the definition: the shortest encoding of cp,
 * written here bit by bit (not with smoe_utf8_encode). */
static int ref_encode(uint32_t cp, uint8_t *o) {
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    int len = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (int i = len - 1; i > 0; i--, cp >>= 6) o[i] = (uint8_t)(0x80 + (cp & 63));
    o[0] = (uint8_t)((0xF00 >> len) | cp);
    return len;
}

static void test_every_scalar_value_round_trips(void **state) {
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        uint8_t want[4], got[4];
        int n = ref_encode(cp, want);
        assert_int_equal(smoe_utf8_encode(cp, got), n);
        assert_memory_equal(got, want, (size_t)n);
        uint32_t back = 0xFFFFFFFF;
        assert_int_equal(smoe_utf8_decode(want, (size_t)n, &back), n);
        assert_int_equal(back, cp);
        assert_int_equal(smoe_utf8_class(want, (size_t)n), n);
        for (int k = 1; k < n; k++) { /* every proper prefix needs more bytes */
            assert_int_equal(smoe_utf8_class(want, (size_t)k), 0);
            assert_int_equal(smoe_utf8_decode(want, (size_t)k, &back), 0);
        }
    }
}

/* Every string of up to three bytes, and four-byte strings over a grid of
 * interesting bytes: well-formed exactly when it re-encodes to itself. */
static void check_bytes(const uint8_t *s, int n) {
    uint32_t cp;
    int len = smoe_utf8_decode(s, (size_t)n, &cp);
    if (len > 0) {
        uint8_t re[4];
        assert_int_equal(ref_encode(cp, re), len);
        assert_memory_equal(re, s, (size_t)len);
        assert_false(cp >= 0xD800 && cp <= 0xDFFF);
        assert_int_equal(smoe_utf8_class(s, (size_t)n), len);
    } else {
        /* no scalar value encodes to any prefix of s */
        for (int k = 1; k <= n; k++) {
            uint32_t v = 0;
            if (k == 1) v = s[0];
            else {
                v = s[0] & (0x7F >> k);
                for (int i = 1; i < k; i++) v = (v << 6) | (s[i] & 63);
            }
            uint8_t re[4];
            bool scalar = v <= 0x10FFFF && !(v >= 0xD800 && v <= 0xDFFF);
            assert_false(scalar && ref_encode(v, re) == k && memcmp(re, s, (size_t)k) == 0);
        }
        assert_true(smoe_utf8_class(s, (size_t)n) <= 0);
    }
}

static void test_all_short_strings(void **state) {
    (void)state;
    uint8_t s[4];
    for (int a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        check_bytes(s, 1);
        for (int b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            check_bytes(s, 2);
            for (int c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                check_bytes(s, 3);
            }
        }
    }
    static const uint8_t grid[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF};
    for (int a = 0xF0; a < 256; a++)
        for (int b = 0; b < 256; b++)
            for (size_t c = 0; c < sizeof grid; c++)
                for (size_t d = 0; d < sizeof grid; d++) {
                    uint8_t t[4] = {(uint8_t)a, (uint8_t)b, grid[c], grid[d]};
                    check_bytes(t, 4);
                }
}

static void test_buf(void **state) {
    (void)state;
    smoe_buf b = {0};
    assert_int_equal(smoe_buf_add(&b, NULL, 0), 0);
    assert_string_equal(b.p, "");
    assert_int_equal(smoe_buf_adds(&b, "ab"), 0);
    assert_int_equal(smoe_buf_addc(&b, 'c'), 0);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(smoe_buf_addf(&b, "<%d|%s>", 42, big), 0); /* longer than the stack buffer */
    assert_int_equal(b.n, 3 + 4 + 2999 + 1);
    assert_memory_equal(b.p, "abc<42|xx", 9);
    assert_int_equal(b.p[b.n - 1], '>');
    assert_int_equal(b.p[b.n], 0);
    smoe_buf t = {0};
    assert_int_equal(smoe_buf_adds(&t, "tail"), 0);
    assert_int_equal(smoe_buf_append(&b, &t), 0);
    assert_string_equal(b.p + b.n - 5, ">tail");
    t.oom = true; /* a failed buffer poisons what it is appended to */
    assert_int_equal(smoe_buf_append(&b, &t), -1);
    assert_true(b.oom);
    size_t n = b.n;
    assert_int_equal(smoe_buf_adds(&b, "more"), -1);
    assert_int_equal(b.n, n);
    smoe_buf_free(&t);
    smoe_buf_free(&b);
    assert_null(b.p);
    assert_false(b.oom);
}

static void test_clock(void **state) {
    (void)state;
    double a = smoe_now_ms(), b = smoe_now_ms();
    assert_true(b >= a);
    assert_true(smoe_wall_s() > 1.7e9); /* after 2023 */
    /* the deadline is 1500 ms after a moment between before and after */
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    struct timespec d = smoe_deadline_ms(1500);
    clock_gettime(CLOCK_MONOTONIC, &after);
    double from_before = (d.tv_sec - before.tv_sec) * 1e3 + (d.tv_nsec - before.tv_nsec) / 1e6;
    double from_after = (d.tv_sec - after.tv_sec) * 1e3 + (d.tv_nsec - after.tv_nsec) / 1e6;
    assert_true(from_before >= 1500 - 1e-3);
    assert_true(from_after <= 1500 + 1e-3);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_scalar_value_round_trips),
        cmocka_unit_test(test_all_short_strings),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
