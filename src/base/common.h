/* common.h - small helpers shared by every part of smoe: one-line errors,
 * overflow-checked sizes, the seed generator, half and bfloat16 floats.
 *
 * Errors: functions that can fail take `char *err` pointing to a buffer of
 * SMOE_ERR_SIZE bytes, write one human-readable line into it (no trailing
 * newline) and return -1 (or NULL).  smoe_errf() does both in one step so
 * that error paths stay one line long. */
#ifndef SMOE_COMMON_H
#define SMOE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smoe.h" /* SMOE_ERR_SIZE */

/* Format an error message into err (may be NULL) and return -1. */
int smoe_errf(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Bytes from outside (a file, a request) shown inside an error message:
 * printable ASCII as is, every other byte and the backslash as \xNN, so
 * that the message stays one line of valid UTF-8.  Writes at most cap bytes
 * to buf (cut at a whole escape, NUL-terminated) and returns buf. */
char *smoe_err_bytes(char *buf, size_t cap, const void *bytes, size_t n);

/* Overflow-checked arithmetic: return false when the result does not fit. */
static inline bool smoe_add_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return !__builtin_add_overflow(a, b, r);
}
static inline bool smoe_mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}

/* splitmix64: a tiny, well-mixed generator step (synthetic weights, seeds). */
static inline uint64_t smoe_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* IEEE half and bfloat16 conversions (exact for half->float, round to
 * nearest even for float->half/bf16). */
float smoe_f16_to_f32(uint16_t h);
uint16_t smoe_f32_to_f16(float f);
float smoe_bf16_to_f32(uint16_t h);
uint16_t smoe_f32_to_bf16(float f);

#endif
