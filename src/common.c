/* common.c - error formatting, half/bfloat16 conversions, jansson's
 * allocator and parser. */
#define _GNU_SOURCE
#include "common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int smoe_errf(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, SMOE_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -1;
}

char *smoe_err_bytes(char *buf, size_t cap, const void *bytes, size_t n) {
    const unsigned char *s = bytes;
    size_t o = 0;
    if (!cap) return buf;
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        bool plain = s[i] >= 0x20 && s[i] < 0x7F && s[i] != '\\';
        size_t need = plain ? 1 : 4;
        if (o + need >= cap) break;
        if (plain) buf[o++] = (char)s[i];
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", s[i]);
    }
    buf[o] = 0;
    return buf;
}

/* ---------------------------------------------------------------------------
 * jansson's allocator (see common.h).  The state is thread-local because
 * jansson's hooks are process-wide and take no context: it is the only way
 * to tie a failure to the document being built on this thread.  It is the
 * one piece of mutable state outside a context struct in smoe.
 *
 * While smoe_json_parse runs, an allocation that fails is served instead
 * from a reserve mapped beforehand: jansson 2.14's parser does not survive
 * a failed allocation (its lexer goes on with a buffer that could not grow
 * and writes past it), so it must never see one; the failure is still
 * counted, and the document it produces is thrown away.
 * ------------------------------------------------------------------------- */

static _Thread_local unsigned json_failures;
static _Thread_local struct { char *base; size_t size, used; } json_reserve;

static void *json_malloc_counted(size_t n) {
    void *p = malloc(n);
    if (p) return p;
    json_failures++;
    size_t a = (n + 15) & ~(size_t)15;
    if (json_reserve.base && a >= n && a <= json_reserve.size - json_reserve.used) {
        p = json_reserve.base + json_reserve.used;
        json_reserve.used += a;
    }
    return p;
}

static void json_free_counted(void *p) {
    char *c = p;
    if (json_reserve.base && c >= json_reserve.base && c < json_reserve.base + json_reserve.size) return;
    free(p);
}

void smoe_json_alloc_init(void) { json_set_alloc_funcs(json_malloc_counted, json_free_counted); }

void smoe_json_failure_note(void) { json_failures++; }

unsigned smoe_json_failures_take(void) {
    unsigned n = json_failures;
    json_failures = 0;
    return n;
}

/* What jansson may allocate per byte of input, with room to spare: the
 * most measured is 78 (an array of empty objects: "{}," is three bytes
 * for a struct and eight hash buckets), then 46 (arrays of empty arrays);
 * nesting, which costs more per byte, stops at depth 2048, inside the
 * fixed megabyte.  The reserve is address space, touched only after a
 * failure. */
#define JSON_RESERVE_PER_BYTE 256

json_t *smoe_json_parse(const char *buf, size_t len, size_t flags, json_error_t *je, bool *oom) {
    *oom = false;
    if (json_reserve.base) return json_loadb(buf, len, flags, je);   /* nested: the outer reserve serves */
    size_t size = len > (SIZE_MAX - (1u << 20)) / JSON_RESERVE_PER_BYTE ? SIZE_MAX : len * JSON_RESERVE_PER_BYTE + (1u << 20);
    /* address space only: pages are touched (and count) only if used */
    void *base = size == SIZE_MAX ? MAP_FAILED
                                  : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        *oom = true;
        json_failures++;
        if (je) snprintf(je->text, sizeof je->text, "out of memory");
        return NULL;
    }
    json_reserve.base = base;
    json_reserve.size = size;
    json_reserve.used = 0;
    unsigned before = json_failures;
    json_failures = 0;
    json_t *v = json_loadb(buf, len, flags, je);
    if (json_failures) {
        json_decref(v);   /* reserve pointers are not freed, the others are */
        v = NULL;
        *oom = true;
        if (je) snprintf(je->text, sizeof je->text, "out of memory");
    }
    json_failures += before;
    json_reserve.base = NULL;
    munmap(base, size);
    return v;
}

/* ---------------------------------------------------------------------------
 * IEEE 754 half precision.  Written out bit by bit rather than with _Float16
 * so the result is the same on every compiler and CPU.
 * ------------------------------------------------------------------------- */

static float f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

float smoe_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000 | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: value = man * 2^-24 exactly */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t smoe_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffff;
    if (abs > 0x7f800000) return sign | 0x7e00;            /* NaN */
    if (abs >= 0x477ff000) return sign | 0x7c00;           /* overflow -> inf */
    if (abs < 0x38800000) {                                /* subnormal or 0 */
        /* add 0.5 so the float unit rounds the mantissa to nearest even */
        float v = f32_from_bits(abs) + 0.5f;
        return sign | (uint16_t)(f32_bits(v) - f32_bits(0.5f));
    }
    uint32_t mant_odd = (abs >> 13) & 1;
    abs += 0xc8000fff + mant_odd;   /* rebias exponent and round to even */
    return sign | (uint16_t)(abs >> 13);
}

float smoe_bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t smoe_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
