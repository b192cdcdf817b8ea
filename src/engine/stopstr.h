/* stopstr.h - stop strings over streamed text.
 *
 * Text that could still turn into a stop string is held back, never emitted
 * and then retracted.  When a stop string appears, the text before it is
 * emitted and the rest is dropped. */
#ifndef SMOE_STOPSTR_H
#define SMOE_STOPSTR_H

#include <stddef.h>

#include "../base/buf.h"

/* Receives text ready for the user; returns non-zero to stop generation. */
typedef int (*smoe_emit_fn)(void *user, const char *text, size_t len);

typedef struct smoe_stop_filter {
    const char *const *stops;
    int n_stops;
    smoe_buf held;        /* text that may still become a stop string */
} smoe_stop_filter;

void smoe_stop_init(smoe_stop_filter *f, const char *const *stops, int n_stops);
void smoe_stop_free(smoe_stop_filter *f);

/* Feed text.  Returns 1 when a stop string matched (the text before it has
 * been emitted), 2 when emit asked to stop, -1 when out of memory, else 0. */
int smoe_stop_push(smoe_stop_filter *f, const char *text, size_t len, smoe_emit_fn emit, void *user);

/* End of generation: emit whatever is held.  Same returns as push. */
int smoe_stop_flush(smoe_stop_filter *f, smoe_emit_fn emit, void *user);

#endif
