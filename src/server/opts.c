/* opts.c - the defaults of `smoe serve`'s options (see opts.h). */
#include "opts.h"

#include <string.h>

void srv_opts_defaults(srv_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->parallel = 4;
    o->n_ctx = 2048;
    o->chunk = 64;
    o->queue = 64;
    o->max_body = 8u << 20;
    o->max_depth = 64;
    o->max_messages = 1024;
    o->max_tokens = 2048;
    o->max_logprobs = 20;
    o->max_n = 8;
    o->max_connections = 128;
    o->timeout_s = 30;
    o->read_timeout_s = 30;
    o->shutdown_timeout_s = 30;
    o->kv_type = SMOE_KV_F16;
}
