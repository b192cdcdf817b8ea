/* server.h - `smoe serve`: an OpenAI- and Ollama-compatible HTTP server
 * with continuous batching.  Internal to src/server/ and src/cli/serve.c.
 *
 * Threads
 *   - libmicrohttpd (MHD) runs a listening thread and one thread per
 *     connection (MHD_USE_THREAD_PER_CONNECTION, at most --max-connections
 *     of them).  A connection thread parses and validates its request
 *     (JSON, chat rendering, tokenization: all read-only on the model) and
 *     queues a generation request for the engine, or answers directly.
 *   - ONE engine thread (worker.c) owns the scheduler (src/engine/
 *     scheduler.c): the KV caches of the --parallel slots and every forward
 *     pass.  It admits queued requests to free slots (first come, first
 *     served; a request with n choices waits for n free slots), steps all
 *     active sequences together, and formats their output (openai.c,
 *     ollama.c) into each request's output buffer.
 *   - one watchdog thread (watchdog.c) shuts down connections whose
 *     request has not arrived whole within --read-timeout.
 *   - the main thread (serve.c) loads the model after the server is
 *     listening (/health answers 503 meanwhile), then waits for SIGINT or
 *     SIGTERM with sigwait(); the signals are blocked in every thread.
 *
 * Streaming: a generation's response is an MHD callback response.  Its
 * reader (running on the connection thread, which may block) takes bytes
 * from the request's buffer under the request's mutex; when there are none
 * it waits in poll() on the request's eventfd (written by the engine after
 * each append) and on the client socket (POLLRDHUP: the client went away),
 * never busy-waiting.  While it waits for the engine, MHD's idle timeout is
 * off for the connection (a request may queue or prefill for long); while
 * bytes are being sent it is on, so a client that stops reading is dropped
 * after --timeout seconds.
 *
 * Cancellation: when the client disconnects (seen by the reader's poll, or
 * MHD destroying the response early: the free callback), the request is
 * marked cancelled and the engine is woken; before its next step the engine
 * cancels the request's sequences (smoe_sched_cancel), which frees their
 * slots at once.  So a disconnect costs at most the step in progress.
 *
 * Lifetime: a generation request is reference-counted: one reference for
 * the engine (dropped when all its choices are done or it is dropped from
 * the queue), one for the HTTP response (dropped by MHD's free callback).
 * Everything hangs off one srv struct: no global mutable state.
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting connections (MHD_quiesce_daemon),
 * answer new requests on open connections with 503, let the running and
 * queued requests finish for up to --shutdown-timeout seconds (a second
 * signal cuts it short), cancel what is left, wait for the responses to be
 * delivered, stop MHD, free everything, exit 0. */
#ifndef SMOE_SERVER_H
#define SMOE_SERVER_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smoe.h"
#include "../engine/scheduler.h"
#include "../tokenizer/tokenizer.h"

#define SRV_VERSION "0.1.0"
#define SRV_MAX_STOPS 16          /* Ollama's stop lists; OpenAI allows 4 */
#define SRV_MAX_BIAS 1024         /* logit_bias entries */

/* ---------------------------------------------------------------------------
 * Options (flags of `smoe serve`)
 * ------------------------------------------------------------------------- */

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
    int max_logprobs;             /* cap of top_logprobs (at most SMOE_SCHED_MAX_TOP) */
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

/* ---------------------------------------------------------------------------
 * Growable byte buffer
 * ------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

int sbuf_add(sbuf *b, const void *data, size_t n);       /* -1 on out of memory */
int sbuf_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(sbuf *b);

/* ---------------------------------------------------------------------------
 * Metrics (metrics.c)
 * ------------------------------------------------------------------------- */

#define SRV_HIST_BUCKETS 14

typedef struct srv_hist {
    uint64_t counts[SRV_HIST_BUCKETS + 1];   /* last: +Inf */
    double sum;
    uint64_t n;
} srv_hist;

typedef struct srv_req_count {
    char endpoint[40];
    int status;
    uint64_t n;
} srv_req_count;

typedef struct srv_metrics {
    pthread_mutex_t mu;
    srv_req_count reqs[128];
    int n_reqs;
    uint64_t prompt_tokens, prompt_cached, generated, cancelled, steps, step_entries;
    double rate_t[64];                        /* (time, generated) ring for tokens/s */
    uint64_t rate_n[64];
    int rate_pos;
    int32_t active, queued, slots;
    int64_t kv_used, kv_busy, kv_capacity;
    uint64_t cancel_lag_max;                  /* steps run after a client left, at most */
    uint64_t read_timeouts;                   /* connections closed by the receive deadline */
    srv_hist ttft, itl;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, const char *endpoint, int status);
void srv_metrics_observe(srv_hist *h, double seconds);   /* caller holds mu */
/* Prometheus text exposition format; malloc'd. */
char *srv_metrics_render(srv_metrics *m, bool ready);

/* ---------------------------------------------------------------------------
 * Generation requests
 * ------------------------------------------------------------------------- */

typedef enum { API_OAI_CHAT, API_OAI_COMPLETION, API_OLLAMA_GENERATE, API_OLLAMA_CHAT } srv_api;

typedef struct srv srv;
typedef struct srv_request srv_request;

typedef struct srv_choice {
    srv_request *req;
    int index;
    smoe_sched_job *job;          /* engine's; NULL before admission and after done */
    bool done;
    smoe_job_stats st;
    sbuf text;                    /* whole text (non-streaming) */
    json_t *lp;                   /* logprobs gathered (non-streaming) */
    int64_t text_offset;          /* completions logprobs: bytes of text so far */
    smoe_tokens gen_ids;          /* generated ids (Ollama's context) */
    double t_last_token;          /* for inter-token latency */
} srv_choice;

struct srv_request {
    srv *srv;
    srv_api api;
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

    /* output, shared between the engine (producer) and the response reader */
    pthread_mutex_t mu;
    int efd;                      /* eventfd: written after output is appended */
    sbuf out;
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
 * Receive deadline (watchdog.c)
 * ------------------------------------------------------------------------- */

typedef struct srv_watch srv_watch;   /* one per open connection */

typedef struct srv_watchdog {
    pthread_mutex_t mu;           /* guards everything below */
    pthread_cond_t cv;
    srv_watch *head;
    double timeout_ms;            /* --read-timeout */
    bool stop, running;
    pthread_t thread;
} srv_watchdog;

int srv_watchdog_start(srv *s, char *err);
void srv_watchdog_stop(srv *s);        /* after MHD is stopped */
/* MHD_OPTION_NOTIFY_CONNECTION: a connection opened (its clock starts) or closed. */
void srv_watch_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
void srv_watch_received(srv *s, struct MHD_Connection *conn);   /* the request is in: stop the clock */
void srv_watch_rearm(srv *s, struct MHD_Connection *conn);      /* answered: the next request's clock starts */

/* ---------------------------------------------------------------------------
 * The server
 * ------------------------------------------------------------------------- */

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
    srv_request *wait_head, *wait_tail;
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

/* http.c */
srv *srv_new(const srv_opts *o, char *err);
int srv_listen(srv *s, char *err);     /* binds, starts MHD; s->port is the bound port */
/* The model is loaded: start the engine.  model and tok stay owned by the caller. */
int srv_set_model(srv *s, const smoe_model *m, const smoe_tokenizer *tok, int chat_format, const char *path,
                  double load_ms, char *err);
/* Stop accepting, finish or cancel in-flight requests, stop everything.
 * wait_signal: called to poll for a second signal (returns true: cut the
 * grace period short). */
void srv_shutdown(srv *s, bool (*second_signal)(void *), void *user);
void srv_free(srv *s);

/* worker.c: the engine thread */
int srv_engine_start(srv *s, char *err);
void srv_engine_stop(srv *s);
/* Queue a request for the engine (takes the engine's reference).  Returns
 * 0, or 503 when the queue is full or the server is draining, 503 with
 * *loading when the model is not loaded. */
int srv_submit(srv *s, srv_request *r);
void srv_request_unref(srv_request *r);
srv_request *srv_request_new(srv *s, srv_api api, int n);
/* Append bytes to the request's output and wake its reader (engine side).
 * Bytes written after the output finished are dropped. */
void srv_request_write(srv_request *r, const char *data, size_t len, bool finished);
/* Engine side: o's compact text for r's output (steals o), or NULL when a
 * jansson allocation failed while r's output was being built (common.h):
 * a member could be missing, so the caller ends the response with
 * srv_request_fail instead. */
char *srv_request_dump(srv_request *r, json_t *o);
/* End r's output with text (an error in the API's shape; for a response not
 * streamed, with status 503) and cancel its sequences at the next step. */
void srv_request_fail(srv_request *r, const char *text);
/* A random seed for a request that has none. */
uint64_t srv_random_seed(srv *s);

/* ---------------------------------------------------------------------------
 * API families.  Request handlers run on connection threads and return a
 * response: either a JSON body with a status, or a generation request to
 * stream (gen != NULL).  Engine-side event handlers run on the engine thread.
 * ------------------------------------------------------------------------- */

typedef struct srv_reply {
    int status;
    char *body;                   /* malloc'd */
    const char *content_type;
    srv_request *gen;             /* a queued generation (body NULL) */
    int retry_after;              /* seconds, with 503 */
} srv_reply;

/* openai.c */
void oai_error(srv_reply *rep, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void oai_chat(srv *s, json_t *body, srv_reply *rep);
void oai_completions(srv *s, json_t *body, srv_reply *rep);
void oai_models(srv *s, const char *id, srv_reply *rep);   /* id NULL: the list */
void oai_on_start(srv_request *r);                           /* admitted */
void oai_on_text(srv_choice *c, const char *text, size_t len, const smoe_token_lp *lp, int n_lp);
void oai_on_choice_done(srv_choice *c);                      /* one choice done */
void oai_on_done(srv_request *r);                            /* every choice done */

/* ollama.c */
void olm_error(srv_reply *rep, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void olm_generate(srv *s, json_t *body, srv_reply *rep);
void olm_chat(srv *s, json_t *body, srv_reply *rep);
void olm_tags(srv *s, srv_reply *rep, bool ps);
void olm_show(srv *s, json_t *body, srv_reply *rep);
void olm_on_text(srv_choice *c, const char *text, size_t len);
void olm_on_done(srv_request *r);

/* tokenize.c: /tokenize and /detokenize */
void tok_tokenize(srv *s, json_t *body, srv_reply *rep);
void tok_detokenize(srv *s, json_t *body, srv_reply *rep);

/* params.c: typed getters for request fields.  Each returns 1 when the key
 * is present (and valid: stored in *out), 0 when absent or null, -1 when
 * the value has the wrong type or range (msg names the field). */
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
int srv_perr_set(srv_perr *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* shared helpers (http.c) */
/* Compact JSON, steals v; NULL on failure, or when a jansson allocation
 * failed since the thread's last smoe_json_failures_take() (common.h). */
char *srv_dump(json_t *v);
json_t *srv_json_text(const char *s, size_t n);  /* a JSON string from bytes, invalid UTF-8 replaced */
double srv_now_ms(void);                      /* CLOCK_MONOTONIC */
double srv_wall_s(void);                      /* CLOCK_REALTIME */
/* Does name refer to this server's model (OpenAI id, Ollama name, or a
 * case-insensitive match of either)? */
bool srv_model_matches(const srv *s, const char *name);
/* Strip SMOE_CHAT_GENERATED_IDS (and render): the prompt tokens of an
 * OpenAI-style request with messages (and the body's tools, tool_choice and
 * parallel_tool_calls: the v1 format's tool instruction depends on them).
 * Returns 0, or -1 with a message for a 400. */
int srv_render_chat(srv *s, const json_t *messages, const json_t *body, smoe_tokens *out, char *err);

#endif
