/* jsonmem.h - jansson's memory under smoe's control.
 *
 * Everything smoe reads or writes as JSON goes through jansson; these calls
 * make its allocation failures visible and survivable. */
#ifndef SMOE_JSON_JSONMEM_H
#define SMOE_JSON_JSONMEM_H

#include <stdbool.h>
#include <stddef.h>

/* jansson's allocations, routed through smoe so that their failures can be
 * seen: jansson does not report all of them (json_object_set_new drops the
 * member and its callers rarely check), and its 2.14 parser does not
 * survive one.  smoe_json_alloc_init() installs the counting allocator
 * (process-wide, before any other jansson call: `smoe serve` does it first
 * thing); smoe_json_failures_take() returns how many jansson allocations
 * failed on the calling thread since its previous call, and resets the
 * count.  Take once before building a document and once after: non-zero
 * means the document may be incomplete and must not be used. */
void smoe_json_alloc_init(void);
unsigned smoe_json_failures_take(void);
/* Count a failure of smoe's own while building a JSON document on this
 * thread (an allocation outside jansson), so that the same check sees it. */
void smoe_json_failure_note(void);
/* json_loadb for input from outside, safe when memory runs out: NULL with
 * *oom set (and the failure counted) when an allocation failed during the
 * parse, instead of a crash or a document missing bytes.  Maps a reserve of
 * address space (256 bytes per input byte, touched only after a failure). */
typedef struct json_t json_t;
typedef struct json_error_t json_error_t;
json_t *smoe_json_parse(const char *buf, size_t len, size_t flags, json_error_t *je, bool *oom);

#endif
