/* params.c - typed getters for the fields of API requests: one message
 * naming the field for every wrong type or out-of-range value. */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "request.h"

int srv_perr_set(srv_perr *e, const char *param, const char *fmt, ...) {
    snprintf(e->param, sizeof e->param, "%s", param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int srv_get_num(const json_t *o, const char *key, double lo, double hi, double *out, srv_perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return srv_perr_set(e, key, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return srv_perr_set(e, key, "'%s' is %g; it must be from %g to %g", key, x, lo, hi);
    *out = x;
    return 1;
}

int srv_get_int(const json_t *o, const char *key, long long lo, long long hi, long long *out, srv_perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    long long x;
    if (json_is_integer(v)) x = (long long)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15)
        x = (long long)json_real_value(v); /* 5.0 is an integer to JavaScript clients */
    else return srv_perr_set(e, key, "'%s' must be an integer", key);
    if (x < lo || x > hi) return srv_perr_set(e, key, "'%s' is %lld; it must be from %lld to %lld", key, x, lo, hi);
    *out = x;
    return 1;
}

int srv_get_bool(const json_t *o, const char *key, bool *out, srv_perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return srv_perr_set(e, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 1;
}

int srv_get_stops(const json_t *o, const char *key, int max, srv_request *r, srv_perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    const char *one[1] = {NULL};
    size_t n;
    if (json_is_string(v)) {
        one[0] = json_string_value(v);
        n = 1;
    } else if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > (size_t)max) return srv_perr_set(e, key, "'%s' has %zu strings; at most %d", key, n, max);
    } else return srv_perr_set(e, key, "'%s' must be a string or an array of strings", key);
    for (size_t i = 0; i < n; i++) {
        const char *str = json_is_string(v) ? one[0] : json_string_value(json_array_get(v, i));
        if (!str) return srv_perr_set(e, key, "'%s[%zu]' must be a string", key, i);
        if (!*str) return srv_perr_set(e, key, "'%s' strings must not be empty", key);
        if (!(r->stops[i] = strdup(str))) return srv_perr_set(e, key, "out of memory");
    }
    r->params.stop = (const char *const *)r->stops;
    r->params.n_stop = (int)n;
    return 1;
}
