/* stopstr.c - hold back text that may be the start of a stop string. */
#include "stopstr.h"

#include <stdlib.h>
#include <string.h>

void smoe_stop_init(smoe_stop_filter *f, const char *const *stops, int n_stops) {
    memset(f, 0, sizeof *f);
    f->stops = stops;
    f->n_stops = n_stops;
}

void smoe_stop_free(smoe_stop_filter *f) {
    smoe_buf_free(&f->held);
    memset(f, 0, sizeof *f);
}

static int emit_text(smoe_emit_fn emit, void *user, const char *s, size_t n) {
    if (n == 0) return 0;
    return emit(user, s, n) ? 2 : 0;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of a
 * stop string: that much must be held back. */
static size_t held_suffix(const smoe_stop_filter *f, const char *s, size_t n) {
    size_t best = 0;
    for (int i = 0; i < f->n_stops; i++) {
        size_t sl = strlen(f->stops[i]);
        if (sl == 0) continue;
        size_t max = sl - 1 < n ? sl - 1 : n;
        for (size_t k = max; k > best; k--)
            if (memcmp(s + n - k, f->stops[i], k) == 0) { best = k; break; }
    }
    return best;
}

int smoe_stop_push(smoe_stop_filter *f, const char *text, size_t len, smoe_emit_fn emit, void *user) {
    if (f->n_stops == 0) return emit_text(emit, user, text, len);
    if (smoe_buf_add(&f->held, text, len)) return -1;
    char *held = f->held.p;
    size_t n = f->held.n;
    /* the earliest complete stop string wins */
    size_t first = n;
    for (int i = 0; i < f->n_stops; i++) {
        size_t sl = strlen(f->stops[i]);
        for (size_t at = 0; sl && at + sl <= n && at < first; at++)
            if (memcmp(held + at, f->stops[i], sl) == 0) { first = at; break; }
    }
    if (first < n) {
        int r = emit_text(emit, user, held, first);
        f->held.n = 0;
        return r ? r : 1;
    }
    size_t keep = held_suffix(f, held, n);
    int r = emit_text(emit, user, held, n - keep);
    memmove(held, held + n - keep, keep);
    f->held.n = keep;
    held[keep] = 0;
    return r;
}

int smoe_stop_flush(smoe_stop_filter *f, smoe_emit_fn emit, void *user) {
    int r = emit_text(emit, user, f->held.p, f->held.n);
    f->held.n = 0;
    return r;
}
