/* http.c - the HTTP side of `smoe serve` on libmicrohttpd: routing, limits,
 * authentication, CORS, and the responses (see server.h for the threads).
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
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../chat/chat.h"
#include "../common.h"
#include "server.h"

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

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

int sbuf_add(sbuf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int sbuf_addf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof tmp) return sbuf_add(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int r = sbuf_add(b, big, (size_t)n);
    free(big);
    return r;
}

void sbuf_free(sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

double srv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double srv_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

char *srv_dump(json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    /* a jansson allocation failed since the caller's last
     * smoe_json_failures_take() (before the handler, or the engine event)
     * or the previous dump: a member or element of v may be missing, so v
     * is not sent (send_reply answers 503; a stream ends with an error) */
    if (smoe_json_failures_take()) {
        free(s);
        return NULL;
    }
    return s;
}

/* Length of the valid UTF-8 character at s (at most n bytes), 0 if invalid. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

json_t *srv_json_text(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    sbuf b = {0};
    int bad = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char((const unsigned char *)s + i, n - i);
        if (k) { bad |= sbuf_add(&b, s + i, k); i += k; }
        else { bad |= sbuf_add(&b, "\xef\xbf\xbd", 3); i++; }
    }
    j = bad ? NULL : json_stringn(b.p ? b.p : "", b.len);
    sbuf_free(&b);
    if (bad) smoe_json_failure_note();   /* out of memory: the document being built is incomplete */
    return j;
}

bool srv_model_matches(const srv *s, const char *name) {
    return !strcasecmp(name, s->model_id) || !strcasecmp(name, s->ollama_name);
}

int srv_render_chat(srv *s, const json_t *messages, const json_t *body, smoe_tokens *out, char *err) {
    json_t *req = json_object(), *msgs = json_deep_copy(messages);
    if (!req || !msgs) {
        json_decref(req);
        json_decref(msgs);
        return smoe_errf(err, "out of memory");
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
        if (json_is_object(m)) json_object_del(m, SMOE_CHAT_GENERATED_IDS); /* clients may not place raw ids */
    json_object_set_new(req, "messages", msgs);
    static const char *const keys[] = {"tools", "tool_choice", "parallel_tool_calls"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        json_t *v = json_object_get(body, keys[k]);
        if (v) json_object_set(req, keys[k], v);
    }
    int rc = smoe_chat_render(s->tok, (smoe_chat_format)s->chat_format, req, out, err);
    json_decref(req);
    return rc;
}

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
    sbuf body;
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
    sbuf_free(&cx->body);
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
        bool ready = r->finished || (!whole && r->out.len > r->out_pos);
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
    size_t avail = r->out.len - r->out_pos;
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
    bool finished = r->finished && r->out_pos == r->out.len;
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
        bool sse = r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION;
        MHD_add_response_header(resp, "Content-Type", sse ? "text/event-stream" : "application/x-ndjson");
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
    r->out.len = r->out.cap = r->out_pos = 0;
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv *s = cls;
    conn_ctx *cx = *con_cls;
    srv_reply rep = {0};
    if (!cx) {
        if (!(cx = calloc(1, sizeof *cx))) return MHD_NO;
        *con_cls = cx;
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
    if (*upload_size) {
        if (!cx->has_early && cx->body.len + *upload_size > s->o.max_body) {
            too_large_error(s, cx, &cx->early);   /* a chunked body grew too big */
            cx->has_early = true;
            sbuf_free(&cx->body);
        }
        /* With an early answer the body is thrown away to its end, however
         * long (MHD cannot answer in the middle of a body): --read-timeout
         * bounds a body that never ends. */
        if (!cx->has_early && sbuf_add(&cx->body, upload, *upload_size)) {
            family_error(&cx->early, cx->rt->fam, 503, "server_error", "out_of_memory",
                         "out of memory while receiving the request body");
            cx->early.retry_after = 1;
            cx->has_early = true;
            sbuf_free(&cx->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }

    /* the whole request is in */
    srv_watch_received(s, conn);
    const route *rt = cx->rt;
    if (cx->has_early) {
        cx->has_early = false;
        return send_reply(s, conn, cx->endpoint, &cx->early);
    }
    json_t *body = NULL;
    if (strcmp(rt->method, "POST") == 0) {
        if (json_nesting(cx->body.p ? cx->body.p : "", cx->body.len) > s->o.max_depth) {
            char msg[128];
            snprintf(msg, sizeof msg, "the JSON body is nested deeper than %d levels", s->o.max_depth);
            family_error(&rep, rt->fam, 400, "invalid_request_error", "too_deep", msg);
            return send_reply(s, conn, cx->endpoint, &rep);
        }
        json_error_t je;
        bool oom;
        body = smoe_json_parse(cx->body.p ? cx->body.p : "", cx->body.len, 0, &je, &oom);
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    srv_watch_rearm(cls, conn);
    conn_ctx *cx = *con_cls;
    if (!cx) return;
    if (cx->has_early) free(cx->early.body);   /* the connection closed before the body ended */
    sbuf_free(&cx->body);
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
 * Lifecycle
 * ------------------------------------------------------------------------- */

srv *srv_new(const srv_opts *o, char *err) {
    srv *s = calloc(1, sizeof *s);
    if (!s) { smoe_errf(err, "out of memory"); return NULL; }
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->engine_cv, &ca);
    pthread_cond_init(&s->idle_cv, &ca);
    pthread_cond_init(&s->watchdog.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->watchdog.mu, NULL);
    srv_metrics_init(&s->metrics);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->seed_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
    s->started = (int64_t)ts.tv_sec;
    return s;
}

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
    if (!s->watchdog.running && srv_watchdog_start(s, err)) {
        freeaddrinfo(ai);
        return -1;
    }
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_CONNECTION_LIMIT, s->o.max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, s->o.timeout_s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, srv_watch_notify, s,
                              MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd) return smoe_errf(err, "cannot listen on %s port %d (in use, or not an address of this machine?)", s->o.host, s->o.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    return 0;
}

int srv_set_model(srv *s, const smoe_model *m, const smoe_tokenizer *tok, int chat_format, const char *path,
                  double load_ms, char *err) {
    s->model = m;
    s->tok = tok;
    s->chat_format = chat_format;
    s->load_ms = load_ms;
    snprintf(s->model_path, sizeof s->model_path, "%s", path);
    struct stat st;
    if (stat(path, &st) == 0) {
        s->model_size = (int64_t)st.st_size;
        s->model_mtime = (int64_t)st.st_mtime;
    }
    if (s->o.alias) snprintf(s->model_id, sizeof s->model_id, "%s", s->o.alias);
    else {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        snprintf(s->model_id, sizeof s->model_id, "%s", b);
        size_t n = strlen(s->model_id);
        if (n > 5 && strcasecmp(s->model_id + n - 5, ".gguf") == 0) s->model_id[n - 5] = 0;
    }
    snprintf(s->ollama_name, sizeof s->ollama_name, "%s%s", s->model_id, strchr(s->model_id, ':') ? "" : ":latest");
    smoe_sched_opts so = {s->o.parallel, s->o.n_ctx, s->o.chunk, s->o.kv_type};
    if (!(s->sched = smoe_sched_new(m, tok, &so, err))) return -1;
    s->o.n_ctx = smoe_sched_n_ctx(s->sched);
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.kv_capacity = (int64_t)s->o.parallel * s->o.n_ctx;
    s->metrics.slots = s->o.parallel;
    pthread_mutex_unlock(&s->metrics.mu);
    if (srv_engine_start(s, err)) return -1;
    pthread_mutex_lock(&s->mu);
    s->ready = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void deadline_in(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    double ns = ts->tv_nsec + fmod(seconds, 1.0) * 1e9;
    ts->tv_sec += (time_t)seconds + (time_t)(ns / 1e9);
    ts->tv_nsec = (long)fmod(ns, 1e9);
}

void srv_shutdown(srv *s, bool (*second_signal)(void *), void *user) {
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    bool engine = s->engine_running;
    pthread_mutex_unlock(&s->mu);
    if (s->mhd) {
        MHD_socket fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
    if (engine) {
        /* let running and queued requests finish, for a while */
        double end = srv_now_ms() + s->o.shutdown_timeout_s * 1e3;
        pthread_mutex_lock(&s->mu);
        while ((s->n_waiting || s->engine_busy) && srv_now_ms() < end) {
            struct timespec ts;
            deadline_in(&ts, 0.2);
            pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
            if (second_signal && second_signal(user)) break;
        }
        s->force_cancel = true;
        pthread_cond_signal(&s->engine_cv);
        pthread_mutex_unlock(&s->mu);
        srv_engine_stop(s);
    }
    /* let the last responses reach their clients */
    double end = srv_now_ms() + 5e3;
    pthread_mutex_lock(&s->mu);
    while (s->live > 0 && srv_now_ms() < end) {
        struct timespec ts;
        deadline_in(&ts, 0.1);
        pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->mhd) MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    srv_watchdog_stop(s);
}

void srv_free(srv *s) {
    if (!s) return;
    if (s->mhd) MHD_stop_daemon(s->mhd);
    srv_watchdog_stop(s);
    smoe_sched_free(s->sched);
    srv_metrics_destroy(&s->metrics);
    pthread_cond_destroy(&s->engine_cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->watchdog.cv);
    pthread_mutex_destroy(&s->watchdog.mu);
    free(s);
}
