/* af.c - the --wrap'ed allocation functions (see af.h).
 *
 * Counting is per process and not thread-safe on purpose: the sweep runs
 * every operation on one thread (the build has no OpenMP), so the N-th
 * allocation is the same call on every run. */
#define _GNU_SOURCE
#include "af.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "json/jsonmem.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);

void __sanitizer_print_stack_trace(void);

static bool armed, fired, trace, paused;
static uint64_t fail_at, counted;

/* true: this allocation must fail */
static bool tick(void) {
    if (!armed || paused) return false;
    if (++counted != fail_at) return false;
    fired = true;
    if (trace) __sanitizer_print_stack_trace(); /* AF_TRACE=1: where each failure is injected */
    errno = ENOMEM;
    return true;
}

void *__wrap_malloc(size_t n) { return tick() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return tick() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return tick() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return tick() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return tick() ? NULL : __real_strndup(s, n); }
void *__wrap_aligned_alloc(size_t align, size_t n) { return tick() ? NULL : __real_aligned_alloc(align, n); }

void af_install(void) {
    /* smoe's counting allocator for jansson: its malloc call (in common.c,
     * linked statically) is wrapped like every other */
    smoe_json_alloc_init();
    trace = getenv("AF_TRACE") != NULL;
}

void af_arm(uint64_t n) {
    fail_at = n;
    counted = 0;
    fired = false;
    armed = true;
}

bool af_disarm(void) {
    armed = false;
    return fired;
}

uint64_t af_count(void) { return counted; }

void af_pause(bool on) { paused = on; }
