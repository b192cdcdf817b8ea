/* request.h - a generation request of `smoe serve`: its choices, its
 * output buffer shared by the engine (producer) and the HTTP response
 * (reader), its lifetime, and the waiting queue it enters (request.c).
 *
 * Lifetime: a request is reference-counted: one reference for the engine
 * (dropped when all its choices are done or it is dropped from the queue),
 * one for the HTTP response (dropped by MHD's free callback).
 *
 * Each API family formats the engine's events its own way: the request
 * carries the family's table of callbacks (srv_api_ops, provided by
 * openai.c and ollama.c), which the engine thread (worker.c) calls. */
#ifndef SMOE_SERVER_REQUEST_H
#define SMOE_SERVER_REQUEST_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smoe.h"
#include "../engine/scheduler.h"
#include "../tokenizer/tokenizer.h"
#include "util.h"

#define SRV_MAX_STOPS 16          /* Ollama's stop lists; OpenAI allows 4 */

typedef enum { API_OAI_CHAT, API_OAI_COMPLETION, API_OLLAMA_GENERATE, API_OLLAMA_CHAT } srv_api;

typedef struct srv srv;
typedef struct srv_request srv_request;
typedef struct srv_choice srv_choice;

/* How one API formats a generation: called on the engine thread, with
 * jansson failures counted against the request (worker.c).  NULL members
 * are skipped. */
typedef struct srv_api_ops {
    srv_api api;
    const char *id_prefix;        /* of the request's id: "chatcmpl-", ... */
    const char *stream_type;      /* Content-Type of a streamed response */
    void (*start)(srv_request *r);                 /* admitted */
    void (*token)(srv_choice *c, int32_t id);      /* a token was generated */
    void (*text)(srv_choice *c, const char *text, size_t len, const smoe_token_lp *lp, int n_lp);
    void (*choice_done)(srv_choice *c);            /* one choice done (not after a cancel) */
    void (*done)(srv_request *r);                  /* every choice done (not after a cancel) */
} srv_api_ops;

struct srv_choice {
    srv_request *req;
    int index;
    smoe_sched_job *job;          /* engine's; NULL before admission and after done */
    bool done;
    smoe_job_stats st;
    smoe_buf text;                /* whole text (non-streaming) */
    json_t *lp;                   /* logprobs gathered (non-streaming) */
    int64_t text_offset;          /* completions logprobs: bytes of text so far */
    smoe_tokens gen_ids;          /* generated ids (Ollama's context) */
    double t_last_token;          /* for inter-token latency */
};

struct srv_request {
    srv *srv;
    srv_api api;
    const srv_api_ops *ops;
    bool stream, include_usage;
    int n;                        /* choices */
    srv_choice *choices;
    int n_done;
    char id[48];
    int64_t created;              /* Unix seconds */
    char *model;                  /* model name as echoed in responses */
    smoe_tokens prompt;
    smoe_job_params params;
    char *stops[SRV_MAX_STOPS];
    smoe_logit_bias *bias;
    bool logprobs;                /* report logprobs (chat: logprobs=true; completions: logprobs given) */
    bool ollama_empty_load;       /* (unused by the engine) */
    double t_received_ms;
    char endpoint[40];
    struct srv_tools *tools;      /* function calling (tools.h); NULL: none */
    void (*tools_free)(struct srv_tools *t);   /* set with tools */

    /* output, shared between the engine (producer) and the response reader */
    pthread_mutex_t mu;
    int efd;                      /* eventfd: written after output is appended */
    smoe_buf out;
    size_t out_pos;
    bool finished;                /* all output is in out */
    int status;                   /* non-streaming: the HTTP status of out (0 = 200) */
    atomic_bool cancelled;        /* the client is gone */
    _Atomic uint64_t cancel_step; /* the engine's step count when it went */
    atomic_int refs;
    bool json_failed;             /* engine: a jansson allocation failed building the output */

    /* connection (reader side only) */
    struct MHD_Connection *conn;
    int client_fd;
    bool timeout_off;

    srv_request *qnext;           /* the waiting queue, or the engine's active list */
};

/* ---------------------------------------------------------------------------
 * Lifetime and output
 * ------------------------------------------------------------------------- */

/* A request of n choices formatted by ops, holding one reference (the
 * response's); NULL when out of memory. */
srv_request *srv_request_new(srv *s, const srv_api_ops *ops, int n);
void srv_request_unref(srv_request *r);
/* Append bytes to the request's output and wake its reader (engine side).
 * Bytes written after the output finished are dropped. */
void srv_request_write(srv_request *r, const char *data, size_t len, bool finished);
/* Engine side: o's compact text for r's output (steals o), or NULL when a
 * jansson allocation failed while r's output was being built (json/jsonmem.h):
 * a member could be missing, so the caller ends the response with
 * srv_request_fail instead. */
char *srv_request_dump(srv_request *r, json_t *o);
/* End r's output with text (an error in the API's shape; for a response not
 * streamed, with status 503) and cancel its sequences at the next step. */
void srv_request_fail(srv_request *r, const char *text);

/* ---------------------------------------------------------------------------
 * The waiting queue (s->wait_head..wait_tail, under s->mu)
 * ------------------------------------------------------------------------- */

/* Queue a request for the engine (takes the engine's reference).  Returns
 * 0, or 503 when the queue is full, the server is draining or the model is
 * not loaded. */
int srv_submit(srv *s, srv_request *r);
/* Engine, holding s->mu: take out every waiting request whose client left
 * (all of them when s->force_cancel) and hand each to drop, which is called
 * without s->mu. */
void srv_queue_drop(srv *s, void (*drop)(srv_request *r));
/* Engine, holding s->mu: take the oldest waiting request out (NULL: none). */
srv_request *srv_queue_pop(srv *s);

#endif
