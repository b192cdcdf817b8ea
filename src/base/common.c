/* common.c - error formatting and half/bfloat16 conversions (see common.h). */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
