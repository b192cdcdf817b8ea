/* clock.c - monotonic and wall-clock time (see clock.h). */
#define _GNU_SOURCE
#include "clock.h"

#include <math.h>

double smoe_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double smoe_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct timespec smoe_deadline_ms(double ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double ns = ts.tv_nsec + fmod(ms, 1e3) * 1e6;
    ts.tv_sec += (time_t)(ms / 1e3) + (time_t)(ns / 1e9);
    ts.tv_nsec = (long)fmod(ns, 1e9);
    return ts;
}
