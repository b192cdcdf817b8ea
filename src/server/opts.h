/* opts.h - the options of `smoe serve` (its flags, set by src/cli/serve.c)
 * and their defaults. */
#ifndef SMOE_SERVER_OPTS_H
#define SMOE_SERVER_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smoe.h"

#define SRV_VERSION "0.1.0"

typedef struct srv_opts {
    const char *host;             /* "127.0.0.1" */
    int port;                     /* 8080; 0 = any free port (printed) */
    const char *api_key;          /* NULL: no authentication */
    const char *cors;             /* NULL: no CORS headers */
    const char *alias;            /* model id; NULL: the file name without .gguf */
    int32_t parallel;             /* slots */
    int32_t n_ctx;                /* positions per slot */
    int32_t chunk;                /* prompt tokens per engine step */
    int32_t queue;                /* waiting requests beyond the slots */
    size_t max_body;              /* bytes */
    int max_depth;                /* JSON nesting */
    int max_messages;
    int32_t max_tokens;           /* cap and default of max_tokens / num_predict */
    int max_logprobs;             /* cap of top_logprobs (at most SMOE_MAX_TOP_LOGPROBS) */
    int max_n;                    /* cap of n (choices per request) */
    unsigned max_connections;
    unsigned timeout_s;           /* idle timeout of a connection */
    unsigned read_timeout_s;      /* time to receive a whole request body */
    unsigned shutdown_timeout_s;  /* grace period for in-flight requests */
    smoe_kv_type kv_type;
    int threads;                  /* OpenMP threads of the engine (0: the default) */
    bool quiet;                   /* no request log lines */
} srv_opts;

void srv_opts_defaults(srv_opts *o);

#endif
