/* util.h - small helpers shared by the files of `smoe serve`: a growable
 * byte buffer, the clocks, and JSON text out of jansson documents. */
#ifndef SMOE_SERVER_UTIL_H
#define SMOE_SERVER_UTIL_H

#include <jansson.h>
#include <stddef.h>

/* ---------------------------------------------------------------------------
 * Growable byte buffer (always NUL-terminated once it holds anything)
 * ------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

int sbuf_add(sbuf *b, const void *data, size_t n);       /* -1 on out of memory */
int sbuf_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(sbuf *b);

/* ---------------------------------------------------------------------------
 * Clocks
 * ------------------------------------------------------------------------- */

double srv_now_ms(void);                      /* CLOCK_MONOTONIC */
double srv_wall_s(void);                      /* CLOCK_REALTIME */

/* ---------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------- */

/* Compact JSON, steals v; NULL on failure, or when a jansson allocation
 * failed since the thread's last smoe_json_failures_take() (common.h). */
char *srv_dump(json_t *v);
json_t *srv_json_text(const char *s, size_t n);  /* a JSON string from bytes, invalid UTF-8 replaced */

#endif
