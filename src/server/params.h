/* params.h - typed getters for the fields of API requests (params.c).
 * Each returns 1 when the key is present (and valid: stored in *out), 0
 * when absent or null, -1 when the value has the wrong type or range (msg
 * names the field). */
#ifndef SMOE_SERVER_PARAMS_H
#define SMOE_SERVER_PARAMS_H

#include <jansson.h>
#include <stdbool.h>

typedef struct srv_request srv_request;

typedef struct srv_perr {
    char msg[400];
    char param[64];
} srv_perr;

int srv_get_num(const json_t *o, const char *key, double lo, double hi, double *out, srv_perr *e);
int srv_get_int(const json_t *o, const char *key, long long lo, long long hi, long long *out, srv_perr *e);
int srv_get_bool(const json_t *o, const char *key, bool *out, srv_perr *e);
/* stop: a string or an array of at most max non-empty strings; copied into
 * r->stops / r->params. */
int srv_get_stops(const json_t *o, const char *key, int max, srv_request *r, srv_perr *e);
/* Fill e (param may be ""); returns -1. */
int srv_perr_set(srv_perr *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
