/* af.h - allocation-failure injection for the sweep in tests/allocfail/.
 *
 * The allocfail build (mk/robust.mk) links everything with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
 * --wrap=strndup,--wrap=aligned_alloc: every call to those functions from
 * code linked statically (libsmoe, the server sources, this driver) goes to
 * the __wrap_ functions of af.c, which count the calls and make the N-th
 * one (counted from af_arm) fail as if memory had run out.  No library
 * source is changed.  jansson is a shared library, so its allocations do not
 * pass through --wrap: af_install installs smoe's own allocator for jansson
 * (smoe_json_alloc_init, as `smoe serve` does), whose malloc call is
 * wrapped.
 *
 * Allocations made inside libc (stdio buffers, qsort) and by the
 * sanitizers are not counted. */
#ifndef SMOE_AF_H
#define SMOE_AF_H

#include <stdbool.h>
#include <stdint.h>

/* Route jansson through the counter (call once, first). */
void af_install(void);
/* Count allocations from now on and fail the n-th (1-based). */
void af_arm(uint64_t n);
/* Stop counting.  Returns true when the armed failure happened. */
bool af_disarm(void);
/* Stop (true) and resume (false) counting, for the driver's own checks. */
void af_pause(bool on);
/* Allocations counted since af_arm. */
uint64_t af_count(void);

#endif
