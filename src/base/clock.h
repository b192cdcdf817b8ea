/* clock.h - the one clock of smoe: milliseconds on CLOCK_MONOTONIC (for
 * durations and deadlines), seconds on CLOCK_REALTIME (for timestamps that
 * leave the process), and an absolute monotonic deadline for condition
 * variables made with pthread_condattr_setclock(CLOCK_MONOTONIC). */
#ifndef SMOE_BASE_CLOCK_H
#define SMOE_BASE_CLOCK_H

#include <time.h>

/* Milliseconds since an arbitrary fixed point; never goes backwards. */
double smoe_now_ms(void);

/* Seconds since the Unix epoch (wall clock: may jump). */
double smoe_wall_s(void);

/* The CLOCK_MONOTONIC time ms milliseconds from now (ms >= 0). */
struct timespec smoe_deadline_ms(double ms);

#endif
