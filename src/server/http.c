/* http.c - the HTTP side of `smoe serve` on libmicrohttpd: routing, limits,
 * authentication, CORS, and the responses (see server.h for the threads).
 *
 * A request goes through three phases (on_request): accept_request when
 * its headers are in (route, preflight, the checks below that need no
 * body), collect_body for each piece of the body, answer_request once it
 * is whole (JSON checks, the route's handler, the reply or the streamed
 * generation).
 *
 * Limits (flags in serve.c):
 *   - request body: one above --max-body (announced by Content-Length, or a
 *     chunked body that grows past it) is answered 413 without being kept
 *     (a chunked one once it has been read to its end and thrown away);
 *   - an answer decided from the headers alone (413, 401, 404, 503...) waits
 *     until the body has been read and discarded, unless the client waits
 *     for "100 Continue" or the body is over SRV_DISCARD_MAX: a server that
 *     answers and closes while the client is still sending makes the
 *     client's TCP stack receive a reset, and clients then report a
 *     connection error instead of the answer (a "lingering close");
 *   - a request, headers and body, must arrive whole within --read-timeout
 *     seconds of its connection opening or of the previous answer on it
 *     (watchdog.c: MHD's own timeout restarts with every byte, so a client
 *     dripping its headers would otherwise hold its slot for ever); a
 *     connection silent for --timeout seconds is closed (MHD's timeout);
 *   - JSON nesting deeper than --max-depth is refused with 400 before the
 *     parser sees it (jansson has no depth limit of its own); the parser
 *     rejects invalid UTF-8 and \u0000 with 400;
 *   - at most --max-connections connections; more are refused by MHD.
 *
 * Authentication: with --api-key, every route but /, /health, /api/version
 * and CORS preflights needs "Authorization: Bearer KEY", compared in
 * constant time (the time depends only on the configured key's length).
 *
 * Non-streaming generations block their connection thread until the answer
 * is complete (waiting in poll() on the request's eventfd and the client
 * socket), then answer with the right status; streaming generations are
 * MHD callback responses (SSE for OpenAI, NDJSON for Ollama). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

#include "../base/common.h"
#include "../json/jsonmem.h"
#include "metrics.h"
#include "ollama.h"
#include "openai.h"
#include "reply.h"
#include "request.h"
#include "state.h"
#include "tokenize.h"
#include "util.h"
#include "watchdog.h"

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

/* Deepest nesting of arrays and objects in a JSON text (strings skipped). */
static int json_nesting(const char *p, size_t n) {
    int depth = 0, max = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
        } else if (c == '"') in_str = true;
        else if (c == '[' || c == '{') { if (++depth > max) max = depth; }
        else if ((c == ']' || c == '}') && depth > 0) depth--;
    }
    return max;
}

/* Constant-time comparison: the time depends on the key's length only. */
static bool key_equal(const char *key, const char *given, size_t given_len) {
    size_t kl = strlen(key);
    unsigned char d = given_len != kl;
    for (size_t i = 0; i < kl; i++) d |= (unsigned char)(key[i] ^ (i < given_len ? given[i] : 0));
    return d == 0;
}

/* ---------------------------------------------------------------------------
 * Routes
 * ------------------------------------------------------------------------- */

typedef enum { FAM_OPENAI, FAM_OLLAMA, FAM_PLAIN } family;

typedef enum {
    R_ROOT, R_HEALTH, R_METRICS, R_MODELS, R_MODEL, R_CHAT, R_COMPLETIONS, R_GENERATE, R_OCHAT, R_TAGS, R_SHOW,
    R_PS, R_VERSION, R_TOKENIZE, R_DETOKENIZE
} route_id;

typedef struct route {
    const char *method, *path;
    route_id id;
    bool prefix, public, needs_model;
    family fam;
} route;

static const route routes[] = {
    {"GET", "/", R_ROOT, false, true, false, FAM_PLAIN},
    {"GET", "/health", R_HEALTH, false, true, false, FAM_PLAIN},
    {"GET", "/metrics", R_METRICS, false, false, false, FAM_PLAIN},
    {"GET", "/v1/models", R_MODELS, false, false, true, FAM_OPENAI},
    {"GET", "/models", R_MODELS, false, false, true, FAM_OPENAI},
    {"GET", "/v1/models/", R_MODEL, true, false, true, FAM_OPENAI},
    {"POST", "/v1/chat/completions", R_CHAT, false, false, true, FAM_OPENAI},
    {"POST", "/chat/completions", R_CHAT, false, false, true, FAM_OPENAI},
    {"POST", "/v1/completions", R_COMPLETIONS, false, false, true, FAM_OPENAI},
    {"POST", "/completions", R_COMPLETIONS, false, false, true, FAM_OPENAI},
    {"POST", "/api/generate", R_GENERATE, false, false, true, FAM_OLLAMA},
    {"POST", "/api/chat", R_OCHAT, false, false, true, FAM_OLLAMA},
    {"GET", "/api/tags", R_TAGS, false, false, true, FAM_OLLAMA},
    {"POST", "/api/show", R_SHOW, false, false, true, FAM_OLLAMA},
    {"GET", "/api/ps", R_PS, false, false, true, FAM_OLLAMA},
    {"GET", "/api/version", R_VERSION, false, true, false, FAM_OLLAMA},
    {"POST", "/tokenize", R_TOKENIZE, false, false, true, FAM_PLAIN},
    {"POST", "/detokenize", R_DETOKENIZE, false, false, true, FAM_PLAIN},
};

static bool path_match(const route *r, const char *url) {
    size_t n = strlen(r->path);
    if (r->prefix) return strncmp(url, r->path, n) == 0 && url[n] && !strchr(url + n, '/');
    return strcmp(url, r->path) == 0;
}

/* The route for url and method; *path_known tells whether another method
 * would have matched (405 rather than 404). */
static const route *find_route(const char *url, const char *method, bool *path_known) {
    *path_known = false;
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!path_match(&routes[i], url)) continue;
        *path_known = true;
        if (strcmp(routes[i].method, m) == 0) return &routes[i];
    }
    return NULL;
}

static family url_family(const char *url) { return strncmp(url, "/api/", 5) == 0 ? FAM_OLLAMA : FAM_OPENAI; }

/* ---------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------- */

/* Most body bytes announced by Content-Length that are read and thrown away
 * before an early answer (above: the answer goes out at once and the
 * connection is closed). */
#define SRV_DISCARD_MAX ((size_t)64 << 20)

typedef struct conn_ctx {
    const route *rt;
    char endpoint[40];
    smoe_buf body;
    srv_reply early;              /* answer to send once the body is discarded */
    bool has_early;
} conn_ctx;

static void add_common_headers(srv *s, struct MHD_Response *resp) {
    if (s->o.cors) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", s->o.cors);
        if (strcmp(s->o.cors, "*") != 0) MHD_add_response_header(resp, "Vary", "Origin");
    }
}

static enum MHD_Result send_reply(srv *s, struct MHD_Connection *conn, const char *endpoint, srv_reply *rep) {
    /* a reply whose body could not be built ran out of memory */
    const char *body = rep->body;
    if (!body) {
        rep->status = 503;
        rep->retry_after = 1;
        rep->content_type = "application/json";
        body = strncmp(endpoint, "/api/", 5) == 0
                   ? "{\"error\":\"out of memory while building the reply\"}"
                   : "{\"error\":{\"message\":\"out of memory while building the reply\",\"type\":\"server_error\","
                     "\"param\":null,\"code\":\"out_of_memory\"}}";
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, rep->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(rep->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", rep->content_type ? rep->content_type : "application/json");
    add_common_headers(s, resp);
    if (rep->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", rep->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (rep->status == 503) {
        pthread_mutex_lock(&s->mu);
        bool draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        if (draining) MHD_add_response_header(resp, "Connection", "close");
    }
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    srv_metrics_request(&s->metrics, endpoint, rep->status);
    return r;
}

static void family_error(srv_reply *rep, family fam, int status, const char *type, const char *code, const char *msg) {
    if (fam == FAM_OLLAMA) olm_error(rep, status, "%s", msg);
    else oai_error(rep, status, type, NULL, code, "%s", msg);
}

/* An answer decided before the body is read (see the header comment): sent
 * now when no body follows, the client waits for "100 Continue" or the body
 * is too big to discard; otherwise kept until the body has been discarded. */
static enum MHD_Result answer_early(srv *s, struct MHD_Connection *conn, conn_ctx *cx, srv_reply *rep) {
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
    unsigned long long len = 0;
    if (cl) {
        char *end;
        errno = 0;
        len = strtoull(cl, &end, 10);
        if (errno || end == cl) len = ULLONG_MAX;
    }
    bool body = len > 0 || (te && strcasestr(te, "chunked"));
    bool waits = expect && strcasecmp(expect, "100-continue") == 0;
    if (!body || waits || len > SRV_DISCARD_MAX) return send_reply(s, conn, cx->endpoint, rep);
    cx->early = *rep;
    cx->has_early = true;
    smoe_buf_free(&cx->body);
    return MHD_YES;
}

static void too_large_error(srv *s, conn_ctx *cx, srv_reply *rep) {
    char msg[128];
    snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->o.max_body);
    family_error(rep, cx->rt->fam, 413, "invalid_request_error", "request_too_large", msg);
}

/* ---------------------------------------------------------------------------
 * Generation responses
 * ------------------------------------------------------------------------- */

/* Wait until r has output or is finished, or the client is gone (returns
 * false).  MHD's idle timeout is off meanwhile. */
static bool wait_output(srv_request *r, bool whole) {
    if (!r->timeout_off) {
        MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        r->timeout_off = true;
    }
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool ready = r->finished || (!whole && r->out.n > r->out_pos);
        pthread_mutex_unlock(&r->mu);
        if (ready) return true;
        struct pollfd p[2] = {{r->efd, POLLIN, 0}, {r->client_fd, POLLRDHUP, 0}};
        int n = poll(p, r->client_fd >= 0 ? 2 : 1, 1000);
        if (n < 0 && errno != EINTR) return false;
        if (n > 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) return false;
        if (n > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(r->efd, &v, sizeof v) < 0 && errno != EAGAIN) return false;
        }
    }
}

static void timeout_on(srv_request *r) {
    if (r->timeout_off) {
        /* going from 0 to a value restarts MHD's timer */
        MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, r->srv->o.timeout_s);
        r->timeout_off = false;
    }
}

static void client_gone(srv_request *r) {
    if (atomic_load(&r->cancelled)) return;
    srv *s = r->srv;
    /* noted first, for the cancel-lag metric (steps run after this) */
    pthread_mutex_lock(&s->metrics.mu);
    atomic_store(&r->cancel_step, s->metrics.steps);
    pthread_mutex_unlock(&s->metrics.mu);
    if (atomic_exchange(&r->cancelled, true)) return;
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->engine_cv);
    pthread_mutex_unlock(&s->mu);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    srv_request *r = cls;
    if (!wait_output(r, false)) {
        client_gone(r);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    pthread_mutex_lock(&r->mu);
    size_t avail = r->out.n - r->out_pos;
    if (avail == 0 && r->finished) {
        pthread_mutex_unlock(&r->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = avail < max ? avail : max;
    memcpy(buf, r->out.p + r->out_pos, n);
    r->out_pos += n;
    pthread_mutex_unlock(&r->mu);
    timeout_on(r);
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    srv_request *r = cls;
    pthread_mutex_lock(&r->mu);
    bool finished = r->finished && r->out_pos == r->out.n;
    pthread_mutex_unlock(&r->mu);
    if (!finished) client_gone(r);
    srv_request_unref(r);
}

static enum MHD_Result send_generation(srv *s, struct MHD_Connection *conn, const char *endpoint, srv_request *r) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->conn = conn;
    r->client_fd = ci ? ci->connect_fd : -1;
    if (r->stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, r, stream_free);
        if (!resp) {
            client_gone(r);
            srv_request_unref(r);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", r->ops->stream_type);
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        add_common_headers(s, resp);
        enum MHD_Result res = MHD_queue_response(conn, 200, resp);
        MHD_destroy_response(resp); /* the free callback drops our reference */
        srv_metrics_request(&s->metrics, endpoint, 200);
        return res;
    }
    /* not streaming: wait for the whole answer on this connection's thread */
    if (!wait_output(r, true)) {
        client_gone(r);
        srv_request_unref(r);
        srv_metrics_request(&s->metrics, endpoint, 499);
        return MHD_NO;
    }
    timeout_on(r);
    srv_reply rep = {0};
    pthread_mutex_lock(&r->mu);
    rep.status = r->status ? r->status : 200;
    rep.body = r->out.p; /* taken over */
    r->out.p = NULL;
    r->out.n = r->out.cap = r->out_pos = 0;
    pthread_mutex_unlock(&r->mu);
    rep.content_type = "application/json";
    srv_request_unref(r);
    return send_reply(s, conn, endpoint, &rep);
}

/* ---------------------------------------------------------------------------
 * Handlers that answer directly
 * ------------------------------------------------------------------------- */

static void reply_text(srv_reply *rep, int status, const char *ctype, const char *text) {
    rep->status = status;
    rep->content_type = ctype;
    rep->body = strdup(text);
}

static void handle_health(srv *s, srv_reply *rep) {
    pthread_mutex_lock(&s->mu);
    bool ready = s->ready, draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    if (draining) reply_text(rep, 503, "application/json", "{\"status\":\"shutting down\"}");
    else if (ready) reply_text(rep, 200, "application/json", "{\"status\":\"ok\"}");
    else reply_text(rep, 503, "application/json", "{\"status\":\"loading model\"}");
}

static void dispatch(srv *s, struct MHD_Connection *conn, const route *rt, const char *url, json_t *body,
                     srv_reply *rep) {
    (void)conn;
    switch (rt->id) {
    case R_ROOT: reply_text(rep, 200, "text/plain; charset=utf-8", "smoe is running (OpenAI and Ollama APIs)"); break;
    case R_HEALTH: handle_health(s, rep); break;
    case R_METRICS: {
        pthread_mutex_lock(&s->mu);
        bool ready = s->ready;
        pthread_mutex_unlock(&s->mu);
        rep->status = 200;
        rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
        rep->body = srv_metrics_render(&s->metrics, ready);
        break;
    }
    case R_MODELS: oai_models(s, NULL, rep); break;
    case R_MODEL: oai_models(s, url + strlen("/v1/models/"), rep); break;
    case R_CHAT: oai_chat(s, body, rep); break;
    case R_COMPLETIONS: oai_completions(s, body, rep); break;
    case R_GENERATE: olm_generate(s, body, rep); break;
    case R_OCHAT: olm_chat(s, body, rep); break;
    case R_TAGS: olm_tags(s, rep, false); break;
    case R_PS: olm_tags(s, rep, true); break;
    case R_SHOW: olm_show(s, body, rep); break;
    case R_VERSION: reply_text(rep, 200, "application/json", "{\"version\":\"" SRV_VERSION "\"}"); break;
    case R_TOKENIZE: tok_tokenize(s, body, rep); break;
    case R_DETOKENIZE: tok_detokenize(s, body, rep); break;
    }
}

/* ---------------------------------------------------------------------------
 * MHD callbacks
 * ------------------------------------------------------------------------- */

static bool authorized(srv *s, struct MHD_Connection *conn) {
    if (!s->o.api_key) return true;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h);
    while (n && h[n - 1] == ' ') n--;
    return key_equal(s->o.api_key, h, n);
}

/* Phase 1, the headers are in: route, CORS preflight, then the checks
 * decided from the headers alone (method, authentication, draining,
 * loading, Content-Length), each an early answer. */
static enum MHD_Result accept_request(srv *s, struct MHD_Connection *conn, conn_ctx *cx, const char *url,
                                      const char *method) {
    srv_reply rep = {0};
    bool known;
    cx->rt = find_route(url, method, &known);
    snprintf(cx->endpoint, sizeof cx->endpoint, "%s", cx->rt ? cx->rt->path : known ? url : "other");
    if (cx->rt && cx->rt->prefix) snprintf(cx->endpoint, sizeof cx->endpoint, "%s{id}", cx->rt->path);
    if (strcmp(method, "OPTIONS") == 0) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        add_common_headers(s, resp);
        if (s->o.cors) {
            const char *rh = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            MHD_add_response_header(resp, "Access-Control-Allow-Headers", rh ? rh : "Authorization, Content-Type");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        }
        MHD_add_response_header(resp, "Allow", "GET, POST, OPTIONS");
        enum MHD_Result r = MHD_queue_response(conn, 204, resp);
        MHD_destroy_response(resp);
        srv_metrics_request(&s->metrics, "OPTIONS", 204);
        return r;
    }
    if (!cx->rt) {
        if (known) {
            family_error(&rep, url_family(url), 405, "invalid_request_error", "method_not_allowed",
                         "this route does not take this method");
        } else {
            char msg[300];
            snprintf(msg, sizeof msg, "unknown route %s %.200s", method, url);
            family_error(&rep, url_family(url), 404, "invalid_request_error", "unknown_url", msg);
        }
        return answer_early(s, conn, cx, &rep);
    }
    if (!cx->rt->public && !authorized(s, conn)) {
        family_error(&rep, cx->rt->fam, 401, "invalid_request_error", "invalid_api_key",
                     "invalid or missing API key (send Authorization: Bearer KEY)");
        return answer_early(s, conn, cx, &rep);
    }
    pthread_mutex_lock(&s->mu);
    bool draining = s->draining, ready = s->ready;
    pthread_mutex_unlock(&s->mu);
    if (draining && cx->rt->id != R_HEALTH) {
        family_error(&rep, cx->rt->fam, 503, "server_error", "shutting_down", "the server is shutting down");
        return answer_early(s, conn, cx, &rep);
    }
    if (!ready && cx->rt->needs_model) {
        family_error(&rep, cx->rt->fam, 503, "server_error", "loading", "the model is still loading");
        rep.retry_after = 1;
        return answer_early(s, conn, cx, &rep);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno || v > s->o.max_body) {
            too_large_error(s, cx, &rep);
            return answer_early(s, conn, cx, &rep);
        }
    }
    return MHD_YES;
}

/* Phase 2, a piece of the body: kept, or (with an early answer decided, or
 * a chunked body past --max-body, or out of memory) thrown away. */
static enum MHD_Result collect_body(srv *s, conn_ctx *cx, const char *upload, size_t *upload_size) {
    if (!cx->has_early && cx->body.n + *upload_size > s->o.max_body) {
        too_large_error(s, cx, &cx->early);   /* a chunked body grew too big */
        cx->has_early = true;
        smoe_buf_free(&cx->body);
    }
    /* With an early answer the body is thrown away to its end, however
     * long (MHD cannot answer in the middle of a body): --read-timeout
     * bounds a body that never ends. */
    if (!cx->has_early && smoe_buf_add(&cx->body, upload, *upload_size)) {
        family_error(&cx->early, cx->rt->fam, 503, "server_error", "out_of_memory",
                     "out of memory while receiving the request body");
        cx->early.retry_after = 1;
        cx->has_early = true;
        smoe_buf_free(&cx->body);
    }
    *upload_size = 0;
    return MHD_YES;
}

/* Phase 3, the whole request is in: the early answer, or the JSON body
 * checked and parsed, then the route's handler and its reply. */
static enum MHD_Result answer_request(srv *s, struct MHD_Connection *conn, conn_ctx *cx, const char *url) {
    srv_reply rep = {0};
    srv_watch_received(&s->watchdog, conn);
    const route *rt = cx->rt;
    if (cx->has_early) {
        cx->has_early = false;
        return send_reply(s, conn, cx->endpoint, &cx->early);
    }
    json_t *body = NULL;
    if (strcmp(rt->method, "POST") == 0) {
        if (json_nesting(cx->body.p ? cx->body.p : "", cx->body.n) > s->o.max_depth) {
            char msg[128];
            snprintf(msg, sizeof msg, "the JSON body is nested deeper than %d levels", s->o.max_depth);
            family_error(&rep, rt->fam, 400, "invalid_request_error", "too_deep", msg);
            return send_reply(s, conn, cx->endpoint, &rep);
        }
        json_error_t je;
        bool oom;
        body = smoe_json_parse(cx->body.p ? cx->body.p : "", cx->body.n, 0, &je, &oom);
        if (oom) {
            smoe_json_failures_take();
            family_error(&rep, rt->fam, 503, "server_error", "out_of_memory", "out of memory while parsing the request");
            rep.retry_after = 1;
            return send_reply(s, conn, cx->endpoint, &rep);
        }
        if (!body || !json_is_object(body)) {
            char msg[300];
            if (body) snprintf(msg, sizeof msg, "the request body must be a JSON object");
            else snprintf(msg, sizeof msg, "the request body is not valid JSON: %s (at byte %d)", je.text, je.position);
            json_decref(body);
            family_error(&rep, rt->fam, 400, "invalid_request_error", "invalid_json", msg);
            return send_reply(s, conn, cx->endpoint, &rep);
        }
    }
    smoe_json_failures_take();   /* the reply's document starts here: srv_dump checks */
    dispatch(s, conn, rt, url, body, &rep);
    json_decref(body);
    if (rep.gen) {
        enum MHD_Result r = send_generation(s, conn, cx->endpoint, rep.gen);
        return r;
    }
    if (!rep.status) oai_error(&rep, 500, "server_error", NULL, NULL, "no answer (a bug)");
    return send_reply(s, conn, cx->endpoint, &rep);
}

/* MHD calls this once with the headers, once per piece of the body, and
 * once more when the request is whole. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv *s = cls;
    conn_ctx *cx = *con_cls;
    if (!cx) {
        if (!(cx = calloc(1, sizeof *cx))) return MHD_NO;
        *con_cls = cx;
        return accept_request(s, conn, cx, url, method);
    }
    if (*upload_size) return collect_body(s, cx, upload, upload_size);
    return answer_request(s, conn, cx, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    srv *s = cls;
    srv_watch_rearm(&s->watchdog, conn);
    conn_ctx *cx = *con_cls;
    if (!cx) return;
    if (cx->has_early) free(cx->early.body);   /* the connection closed before the body ended */
    smoe_buf_free(&cx->body);
    free(cx);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    srv *s = cls;
    if (s->o.quiet) return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    fprintf(stderr, "smoe serve: http: %s\n", buf);
}

/* ---------------------------------------------------------------------------
 * Listening
 * ------------------------------------------------------------------------- */

int srv_listen(srv *s, char *err) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    int g = getaddrinfo(s->o.host, port, &hints, &ai);
    if (g) return smoe_errf(err, "--host %s: %s", s->o.host, gai_strerror(g));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (!s->watchdog.running && srv_watchdog_start(&s->watchdog, s->o.read_timeout_s, &s->metrics, err)) {
        freeaddrinfo(ai);
        return -1;
    }
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_CONNECTION_LIMIT, s->o.max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, s->o.timeout_s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, srv_watch_notify, &s->watchdog,
                              MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd) return smoe_errf(err, "cannot listen on %s port %d (in use, or not an address of this machine?)", s->o.host, s->o.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    return 0;
}

