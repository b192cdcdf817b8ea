/* jsonmem.c - jansson's memory under smoe's control: a counting
 * allocator, failures tied to the document being built, and a parse that
 * survives running out of memory (see jsonmem.h). */
#define _GNU_SOURCE
#include "jsonmem.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

/* ---------------------------------------------------------------------------
 * jansson's allocator (see jsonmem.h).  The state is thread-local because
 * jansson's hooks are process-wide and take no context: it is the only way
 * to tie a failure to the document being built on this thread.  It is the
 * one piece of mutable state outside a context struct in smoe.
 *
 * While smoe_json_parse runs, an allocation that fails is served instead
 * from a reserve mapped beforehand: jansson 2.14's parser does not survive
 * a failed allocation (its lexer goes on with a buffer that could not grow
 * and writes past it), so it must never see one; the failure is still
 * counted, and the document it produces is thrown away.
 * ------------------------------------------------------------------------- */

static _Thread_local unsigned json_failures;
static _Thread_local struct { char *base; size_t size, used; } json_reserve;

static void *json_malloc_counted(size_t n) {
    void *p = malloc(n);
    if (p) return p;
    json_failures++;
    size_t a = (n + 15) & ~(size_t)15;
    if (json_reserve.base && a >= n && a <= json_reserve.size - json_reserve.used) {
        p = json_reserve.base + json_reserve.used;
        json_reserve.used += a;
    }
    return p;
}

static void json_free_counted(void *p) {
    char *c = p;
    if (json_reserve.base && c >= json_reserve.base && c < json_reserve.base + json_reserve.size) return;
    free(p);
}

void smoe_json_alloc_init(void) { json_set_alloc_funcs(json_malloc_counted, json_free_counted); }

void smoe_json_failure_note(void) { json_failures++; }

unsigned smoe_json_failures_take(void) {
    unsigned n = json_failures;
    json_failures = 0;
    return n;
}

/* What jansson may allocate per byte of input, with room to spare: the
 * most measured is 78 (an array of empty objects: "{}," is three bytes
 * for a struct and eight hash buckets), then 46 (arrays of empty arrays);
 * nesting, which costs more per byte, stops at depth 2048, inside the
 * fixed megabyte.  The reserve is address space, touched only after a
 * failure. */
#define JSON_RESERVE_PER_BYTE 256

json_t *smoe_json_parse(const char *buf, size_t len, size_t flags, json_error_t *je, bool *oom) {
    *oom = false;
    if (json_reserve.base) return json_loadb(buf, len, flags, je);   /* nested: the outer reserve serves */
    size_t size = len > (SIZE_MAX - (1u << 20)) / JSON_RESERVE_PER_BYTE ? SIZE_MAX : len * JSON_RESERVE_PER_BYTE + (1u << 20);
    /* address space only: pages are touched (and count) only if used */
    void *base = size == SIZE_MAX ? MAP_FAILED
                                  : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        *oom = true;
        json_failures++;
        if (je) snprintf(je->text, sizeof je->text, "out of memory");
        return NULL;
    }
    json_reserve.base = base;
    json_reserve.size = size;
    json_reserve.used = 0;
    unsigned before = json_failures;
    json_failures = 0;
    json_t *v = json_loadb(buf, len, flags, je);
    if (json_failures) {
        json_decref(v);   /* reserve pointers are not freed, the others are */
        v = NULL;
        *oom = true;
        if (je) snprintf(je->text, sizeof je->text, "out of memory");
    }
    json_failures += before;
    json_reserve.base = NULL;
    munmap(base, size);
    return v;
}

