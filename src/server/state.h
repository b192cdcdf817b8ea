/* state.h - the state of one `smoe serve` process: the struct every part of
 * the server reads (options, the model, the waiting queue and its counts,
 * metrics, watchdog), and two small questions asked of it (state.c).
 * Everything hangs off one srv: no global mutable state. */
#ifndef SMOE_SERVER_STATE_H
#define SMOE_SERVER_STATE_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "smoe.h"
#include "../engine/scheduler.h"
#include "../tokenizer/tokenizer.h"
#include "metrics.h"
#include "opts.h"
#include "watchdog.h"

typedef struct srv srv;
typedef struct srv_request srv_request;

struct srv {
    srv_opts o;
    struct MHD_Daemon *mhd;
    int port;

    /* the model, set once by srv_set_model (ready) */
    const smoe_model *model;
    const smoe_tokenizer *tok;
    int chat_format;
    char model_id[256];           /* OpenAI id */
    char ollama_name[272];        /* id + ":latest" unless it has a tag */
    char model_path[4096];
    int64_t model_size;
    int64_t model_mtime;
    double load_ms;
    int64_t started;              /* Unix seconds */
    smoe_sched *sched;            /* engine thread only */

    pthread_mutex_t mu;           /* guards the fields below */
    pthread_cond_t engine_cv;     /* wakes the engine */
    pthread_cond_t idle_cv;       /* the engine went idle / a request was released */
    bool ready, draining, force_cancel, engine_exit, engine_running;
    srv_request *wait_head, *wait_tail;   /* the waiting queue (request.c) */
    int32_t n_waiting;
    int32_t live;                 /* requests not yet released by both sides */
    int32_t engine_busy;          /* requests admitted and not done */
    int32_t claimed;              /* slots held or wanted by admitted and waiting requests */
    pthread_t engine;
    uint64_t seed_state;          /* random seeds for requests without one */
    uint64_t id_counter;

    srv_metrics metrics;
    srv_watchdog watchdog;
};

/* Does name refer to this server's model (OpenAI id, Ollama name, or a
 * case-insensitive match of either)? */
bool srv_model_matches(const srv *s, const char *name);
/* A random seed for a request that has none. */
uint64_t srv_random_seed(srv *s);

#endif
