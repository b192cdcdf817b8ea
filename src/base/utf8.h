/* utf8.h - the one UTF-8 scanner of smoe: well-formed sequences exactly as
 * the Unicode standard's table has them (no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
#ifndef SMOE_BASE_UTF8_H
#define SMOE_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* What the n bytes at s (n > 0) begin with:
 *   > 0  a complete, well-formed character of that many bytes;
 *     0  a proper prefix of a well-formed character (more bytes needed);
 *    -1  s[0] does not begin a well-formed character whatever follows. */
int smoe_utf8_class(const void *s, size_t n);

/* The length of the well-formed character at s (at most n bytes) and its
 * code point in *cp; 0 when there is none (malformed or cut short). */
int smoe_utf8_decode(const void *s, size_t n, uint32_t *cp);

/* Write code point cp (at most U+10FFFF, no surrogate) to out (4 bytes of
 * room); returns its length. */
int smoe_utf8_encode(uint32_t cp, void *out);

#endif
