/* buf.c - the growable byte buffer (see buf.h). */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the NUL; -1 (oom set) when there is none. */
static int reserve(smoe_buf *b, size_t n) {
    if (b->oom) return -1;
    if (n > SIZE_MAX - b->n - 1) { /* no size_t holds the result */
        b->oom = true;
        return -1;
    }
    size_t need = b->n + n + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int smoe_buf_add(smoe_buf *b, const void *data, size_t n) {
    if (reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int smoe_buf_adds(smoe_buf *b, const char *s) { return smoe_buf_add(b, s, strlen(s)); }

int smoe_buf_addc(smoe_buf *b, char c) { return smoe_buf_add(b, &c, 1); }

int smoe_buf_addf(smoe_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) { /* an encoding error: the text is incomplete, as after out of memory */
        b->oom = true;
        return -1;
    }
    if ((size_t)n < sizeof tmp) return smoe_buf_add(b, tmp, (size_t)n);
    /* too long for the stack: format again into the buffer itself */
    if (reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
    return 0;
}

int smoe_buf_append(smoe_buf *b, const smoe_buf *t) {
    if (t->oom) {
        b->oom = true;
        return -1;
    }
    return smoe_buf_add(b, t->p, t->n);
}

int smoe_buf_read(smoe_buf *b, FILE *fp) {
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
        if (smoe_buf_add(b, chunk, got)) return -1;
    if (ferror(fp)) return -1;
    return smoe_buf_add(b, NULL, 0); /* an empty stream still gives "" */
}

void smoe_buf_free(smoe_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}
