/* buf.h - the one growable byte buffer of smoe.
 *
 * Always NUL-terminated once anything was added (p may be NULL before), so
 * text built in it can be used as a C string.  Running out of memory is
 * sticky: the failing call returns -1 and sets oom, and every later call
 * returns -1 without touching the contents, so a builder can append many
 * pieces and check once at the end. */
#ifndef SMOE_BASE_BUF_H
#define SMOE_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct smoe_buf {
    char *p;
    size_t n, cap;   /* bytes used (the NUL not counted), allocated */
    bool oom;
} smoe_buf;

/* Append n bytes (data may be NULL when n is 0); 0, or -1 when out of memory. */
int smoe_buf_add(smoe_buf *b, const void *data, size_t n);
int smoe_buf_adds(smoe_buf *b, const char *s);
int smoe_buf_addc(smoe_buf *b, char c);
int smoe_buf_addf(smoe_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append another buffer (its oom carries over). */
int smoe_buf_append(smoe_buf *b, const smoe_buf *t);
/* Append the rest of stream fp; -1 when out of memory (oom set) or on a
 * read error (ferror(fp)). */
int smoe_buf_read(smoe_buf *b, FILE *fp);
void smoe_buf_free(smoe_buf *b);

#endif
