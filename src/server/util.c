/* util.c - the shared helpers of `smoe serve` (see util.h): JSON text. */
#define _GNU_SOURCE
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/utf8.h"
#include "../base/common.h"
#include "../json/jsonmem.h"

char *srv_dump(json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    /* a jansson allocation failed since the caller's last
     * smoe_json_failures_take() (before the handler, or the engine event)
     * or the previous dump: a member or element of v may be missing, so v
     * is not sent (send_reply answers 503; a stream ends with an error) */
    if (smoe_json_failures_take()) {
        free(s);
        return NULL;
    }
    return s;
}

json_t *srv_json_text(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    smoe_buf b = {0};
    int bad = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = (size_t)smoe_utf8_decode(s + i, n - i, &cp);
        if (k) { bad |= smoe_buf_add(&b, s + i, k); i += k; }
        else { bad |= smoe_buf_add(&b, "\xef\xbf\xbd", 3); i++; }
    }
    j = bad ? NULL : json_stringn(b.p ? b.p : "", b.n);
    smoe_buf_free(&b);
    if (bad) smoe_json_failure_note();   /* out of memory: the document being built is incomplete */
    return j;
}
