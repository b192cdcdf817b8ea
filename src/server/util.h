/* util.h - small helpers shared by the files of `smoe serve`: JSON text out
 * of jansson documents (the buffer and the clock every file uses come from
 * src/base, included here for them). */
#ifndef SMOE_SERVER_UTIL_H
#define SMOE_SERVER_UTIL_H

#include <jansson.h>
#include <stddef.h>

#include "../base/buf.h"
#include "../base/clock.h"

/* ---------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------- */

/* Compact JSON, steals v; NULL on failure, or when a jansson allocation
 * failed since the thread's last smoe_json_failures_take() (json/jsonmem.h). */
char *srv_dump(json_t *v);
json_t *srv_json_text(const char *s, size_t n);  /* a JSON string from bytes, invalid UTF-8 replaced */

#endif
