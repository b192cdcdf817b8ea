/* openai.c - the OpenAI API: POST /v1/chat/completions, POST /v1/completions,
 * GET /v1/models, GET /v1/models/{id}, and OpenAI-shaped errors.
 *
 * Requests: unknown fields are ignored; a field of the wrong type or out of
 * range is a 400 naming it in "param".  Defaults are OpenAI's: temperature
 * 1, top_p 1, no top-k/min-p/repetition penalty; max_tokens defaults to
 * --max-tokens for chat and to 16 for completions (as OpenAI); without a
 * seed each request gets a random one.  n choices run as n sequences side by
 * side, choice i with seed + i.  Extensions: top_k, min_p,
 * repetition_penalty (alias repeat_penalty), repeat_last_n.
 *
 * Usage: prompt_tokens is the length of the prompt (as OpenAI counts it,
 * once for any n); prompt_tokens_details.cached_tokens is how many of them
 * were reused from a slot's KV cache instead of being processed (the
 * smallest figure over the choices), so prompt_tokens - cached_tokens
 * tokens really went through the model per choice; completion_tokens is
 * every token sampled over all choices (an end-of-sequence token is not
 * counted; tokens cut off by a stop string are). */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

#include "../base/common.h"
#include "../json/jsonmem.h"
#include "opts.h"
#include "params.h"
#include "prompt.h"
#include "state.h"
#include "structured.h"
#include "tools.h"
#include "util.h"

#define SRV_MAX_BIAS 1024         /* logit_bias entries */

static const srv_api_ops chat_ops, completion_ops;

void oai_error(srv_reply *rep, int status, const char *type, const char *param, const char *code, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_object();
    json_object_set_new(e, "message", srv_json_text(msg, strlen(msg)));
    json_object_set_new(e, "type", json_string(type ? type : "invalid_request_error"));
    json_object_set_new(e, "param", param && *param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    rep->status = status;
    rep->content_type = "application/json";
    rep->body = srv_dump(o);
}

static void bad(srv_reply *rep, const srv_perr *e) {
    oai_error(rep, 400, "invalid_request_error", e->param, "invalid_value", "%s", e->msg);
}

static json_t *model_object(srv *s) {
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(s->model_id));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(s->model_mtime ? s->model_mtime : s->started));
    json_object_set_new(m, "owned_by", json_string("smoe"));
    return m;
}

void oai_models(srv *s, const char *id, srv_reply *rep) {
    if (id) {
        if (!srv_model_matches(s, id)) {
            oai_error(rep, 404, "invalid_request_error", "model", "model_not_found", "The model '%s' does not exist",
                      id);
            return;
        }
        rep->status = 200;
        rep->body = srv_dump(model_object(s));
        return;
    }
    json_t *o = json_object(), *data = json_array();
    json_array_append_new(data, model_object(s));
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    rep->status = 200;
    rep->body = srv_dump(o);
}

/* ---------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------- */

static int logit_bias(srv *s, const json_t *b, srv_request *r, srv_perr *e) {
    const json_t *lb = json_object_get(b, "logit_bias");
    if (!lb || json_is_null(lb)) return 0;
    if (!json_is_object(lb)) return srv_perr_set(e, "logit_bias", "'logit_bias' must be an object of token id -> bias");
    size_t n = json_object_size(lb);
    if (n > SRV_MAX_BIAS) return srv_perr_set(e, "logit_bias", "'logit_bias' has %zu entries; at most %d", n, SRV_MAX_BIAS);
    if (n == 0) return 0;
    if (!(r->bias = calloc(n, sizeof *r->bias))) return srv_perr_set(e, "logit_bias", "out of memory");
    const char *k;
    json_t *v;
    int i = 0;
    int32_t n_vocab = smoe_model_hparams(s->model)->n_vocab;
    json_object_foreach((json_t *)lb, k, v) {
        char *end;
        long id = strtol(k, &end, 10);
        if (!*k || *end || id < 0 || id >= n_vocab)
            return srv_perr_set(e, "logit_bias", "logit_bias key '%.40s' is not a token id (0 to %d)", k, n_vocab - 1);
        if (!json_is_number(v) || json_number_value(v) < -100 || json_number_value(v) > 100)
            return srv_perr_set(e, "logit_bias", "logit_bias[%s] must be a number from -100 to 100", k);
        r->bias[i].token = (int32_t)id;
        r->bias[i++].bias = (float)json_number_value(v);
    }
    r->params.sampling.bias = r->bias;
    r->params.sampling.n_bias = i;
    return 0;
}

/* Sampling and length fields shared by both endpoints. */
static int sampling(srv *s, const json_t *b, srv_request *r, bool chat, srv_perr *e) {
    smoe_sampler_params *sp = &r->params.sampling;
    smoe_sampler_defaults(sp);
    sp->temperature = 1;
    sp->top_k = 0;
    sp->top_p = 1;
    sp->min_p = 0;
    sp->repeat_penalty = 1;
    sp->repeat_last_n = 64;
    double x;
    long long i;
    int g;
    if ((g = srv_get_num(b, "temperature", 0, 2, &x, e)) < 0) return -1;
    if (g) sp->temperature = (float)x;
    if ((g = srv_get_num(b, "top_p", 0, 1, &x, e)) < 0) return -1;
    if (g) {
        if (x <= 0) return srv_perr_set(e, "top_p", "'top_p' must be above 0 and at most 1");
        sp->top_p = (float)x;
    }
    if ((g = srv_get_num(b, "presence_penalty", -2, 2, &x, e)) < 0) return -1;
    if (g) sp->presence_penalty = (float)x;
    if ((g = srv_get_num(b, "frequency_penalty", -2, 2, &x, e)) < 0) return -1;
    if (g) sp->frequency_penalty = (float)x;
    if ((g = srv_get_int(b, "top_k", 0, 1 << 24, &i, e)) < 0) return -1;
    if (g) sp->top_k = (int32_t)i;
    if ((g = srv_get_num(b, "min_p", 0, 1, &x, e)) < 0) return -1;
    if (g) sp->min_p = (float)x;
    const char *rp = json_object_get(b, "repetition_penalty") ? "repetition_penalty" : "repeat_penalty";
    if ((g = srv_get_num(b, rp, 0, 10, &x, e)) < 0) return -1;
    if (g) {
        if (x <= 0) return srv_perr_set(e, rp, "'%s' must be above 0 and at most 10", rp);
        sp->repeat_penalty = (float)x;
    }
    if ((g = srv_get_int(b, "repeat_last_n", -1, 1 << 24, &i, e)) < 0) return -1;
    if (g) sp->repeat_last_n = (int32_t)i;
    if ((g = srv_get_int(b, "seed", INT64_MIN, INT64_MAX, &i, e)) < 0) return -1;
    sp->seed = g ? (uint64_t)i : srv_random_seed(s);
    if (logit_bias(s, b, r, e)) return -1;
    if (srv_get_stops(b, "stop", 4, r, e) < 0) return -1;

    /* length */
    long long cap = s->o.max_tokens;
    r->params.max_tokens = chat ? (int32_t)cap : (int32_t)(cap < 16 ? cap : 16);
    const char *mt = chat && json_object_get(b, "max_completion_tokens") &&
                             !json_is_null(json_object_get(b, "max_completion_tokens"))
                         ? "max_completion_tokens"
                         : "max_tokens";
    if ((g = srv_get_int(b, mt, 0, cap, &i, e)) < 0) return -1;
    if (g) r->params.max_tokens = (int32_t)i;

    /* choices */
    long long n = 1;
    long long max_n = s->o.max_n < s->o.parallel ? s->o.max_n : s->o.parallel;
    if (srv_get_int(b, "n", 1, max_n, &n, e) < 0) return -1;
    r->n = (int)n;

    /* logprobs */
    if (chat) {
        bool lp = false;
        if (srv_get_bool(b, "logprobs", &lp, e) < 0) return -1;
        if ((g = srv_get_int(b, "top_logprobs", 0, s->o.max_logprobs, &i, e)) < 0) return -1;
        if (g && !lp) return srv_perr_set(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        r->logprobs = lp;
        r->params.top_logprobs = lp ? (int32_t)(g ? i : 0) : -1;
    } else {
        if ((g = srv_get_int(b, "logprobs", 0, s->o.max_logprobs, &i, e)) < 0) return -1;
        r->logprobs = g;
        r->params.top_logprobs = g ? (int32_t)i : -1;
    }

    /* streaming */
    if (srv_get_bool(b, "stream", &r->stream, e) < 0) return -1;
    const json_t *so = json_object_get(b, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return srv_perr_set(e, "stream_options", "'stream_options' must be an object");
        if (srv_get_bool(so, "include_usage", &r->include_usage, e) < 0) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return -1;
        }
    }
    char err[SMOE_ERR_SIZE];
    if (smoe_sched_check_params(s->sched, &r->params, err)) return srv_perr_set(e, "", "%s", err);
    return 0;
}

static void generate(srv *s, json_t *b, srv_reply *rep, const srv_api_ops *ops) {
    srv_perr e = {0};
    const json_t *model = json_object_get(b, "model");
    if (model && !json_is_null(model) && !json_is_string(model)) {
        srv_perr_set(&e, "model", "'model' must be a string");
        bad(rep, &e);
        return;
    }
    if (json_is_string(model) && !srv_model_matches(s, json_string_value(model))) {
        oai_error(rep, 404, "invalid_request_error", "model", "model_not_found",
                  "The model '%.200s' does not exist (this server has '%s')", json_string_value(model), s->model_id);
        return;
    }
    srv_request *r = srv_request_new(s, ops, 1);
    if (!r) { oai_error(rep, 500, "server_error", NULL, NULL, "out of memory"); return; }
    bool chat = ops->api == API_OAI_CHAT;
    /* the choices array was made for n = 1: until it is remade, r->n must
     * stay 1 (srv_request_unref walks r->n choices) */
    if (sampling(s, b, r, chat, &e)) { r->n = 1; goto bad_request; }
    if (r->n > 1) {
        srv_choice *c = calloc((size_t)r->n, sizeof *c);
        if (!c) { r->n = 1; srv_perr_set(&e, "n", "out of memory"); goto bad_request; }
        free(r->choices);
        r->choices = c;
        for (int i = 0; i < r->n; i++) { c[i].req = r; c[i].index = i; }
    }
    if (chat) {
        const json_t *msgs = json_object_get(b, "messages");
        if (!json_is_array(msgs)) {
            srv_perr_set(&e, "messages", msgs ? "'messages' must be an array" : "'messages' is required");
            goto bad_request;
        }
        if (json_array_size(msgs) > (size_t)s->o.max_messages) {
            srv_perr_set(&e, "messages", "'messages' has %zu messages; at most %d", json_array_size(msgs),
                         s->o.max_messages);
            goto bad_request;
        }
        char err[SMOE_ERR_SIZE];
        if (srv_tools_check_history(msgs, err) ||
            srv_render_chat(s, msgs, b, &r->prompt, err)) {
            srv_perr_set(&e, "messages", "%s", err);
            goto bad_request;
        }
    } else if (srv_completion_prompt(s, b, &r->prompt, &e)) goto bad_request;
    { /* response_format: a grammar the scheduler enforces (structured.h) */
        char err[SMOE_ERR_SIZE], param[40];
        if (srv_structured_openai(b, &r->params.grammar, param, err)) {
            srv_perr_set(&e, param, "%s", err);
            goto bad_request;
        }
        /* tools: a grammar too, armed by [TOOL_CALLS] or from the start (tools.h) */
        if (chat && srv_tools_setup(s, b, r, param, err)) {
            srv_perr_set(&e, param, "%s", err);
            goto bad_request;
        }
    }
    if (r->prompt.n >= s->o.n_ctx) {
        oai_error(rep, 400, "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded",
                  "the prompt has %d tokens; this server's context holds %d per sequence (including the answer)",
                  r->prompt.n, s->o.n_ctx);
        srv_request_unref(r);
        return;
    }
    const char *name = json_is_string(model) ? json_string_value(model) : s->model_id;
    r->model = strdup(name);
    if (!r->model) {
        oai_error(rep, 500, "server_error", NULL, NULL, "out of memory");
        srv_request_unref(r);
        return;
    }
    snprintf(r->endpoint, sizeof r->endpoint, "%s", chat ? "/v1/chat/completions" : "/v1/completions");
    if (smoe_json_failures_take()) {   /* since dispatch (http.c): the request may be incomplete */
        oai_error(rep, 503, "server_error", NULL, "out_of_memory", "out of memory while reading the request");
        rep->retry_after = 1;
        srv_request_unref(r);
        return;
    }
    if (srv_submit(s, r)) {
        oai_error(rep, 503, "server_error", NULL, "queue_full", "the server is busy (request queue full); retry later");
        rep->retry_after = 1;
        srv_request_unref(r);
        return;
    }
    rep->gen = r;
    return;
bad_request:
    bad(rep, &e);
    srv_request_unref(r);
}

void oai_chat(srv *s, json_t *body, srv_reply *rep) { generate(s, body, rep, &chat_ops); }
void oai_completions(srv *s, json_t *body, srv_reply *rep) { generate(s, body, rep, &completion_ops); }

/* ---------------------------------------------------------------------------
 * Responses (engine thread)
 * ------------------------------------------------------------------------- */

static bool is_chat(const srv_request *r) { return r->api == API_OAI_CHAT; }

static json_t *base(const srv_request *r, bool chunk) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "object", json_string(is_chat(r) ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                             : "text_completion"));
    json_object_set_new(o, "created", json_integer(r->created));
    json_object_set_new(o, "model", srv_json_text(r->model, strlen(r->model)));
    json_object_set_new(o, "system_fingerprint", json_string("smoe-" SRV_VERSION));
    return o;
}

/* The error that ends a response the engine could not format (out of memory). */
#define OAI_OOM_ERROR "{\"error\":{\"message\":\"out of memory while formatting the response\"," \
                      "\"type\":\"server_error\",\"param\":null,\"code\":\"out_of_memory\"}}"

static void write_event(srv_request *r, json_t *o, bool finished) {
    char *s = srv_request_dump(r, o);
    smoe_buf b = {0};
    if (!s || smoe_buf_add(&b, "data: ", 6) || smoe_buf_add(&b, s, strlen(s)) || smoe_buf_add(&b, "\n\n", 2)) {
        srv_request_fail(r, "data: " OAI_OOM_ERROR "\n\n");
    } else {
        srv_request_write(r, b.p, b.n, finished);
    }
    free(s);
    smoe_buf_free(&b);
}

static json_t *token_text(const srv *s, int32_t id, json_t **bytes) {
    char buf[80];
    size_t n = smoe_token_bytes(s->tok, id, buf, sizeof buf);
    if (bytes) {
        *bytes = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(*bytes, json_integer((unsigned char)buf[i]));
    }
    return srv_json_text(buf, n);
}

/* chat: {"token", "logprob", "bytes", "top_logprobs": [...]} per token */
static json_t *chat_lp(const srv *s, const smoe_token_lp *lp, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *bytes, *o = json_object(), *top = json_array();
        json_object_set_new(o, "token", token_text(s, lp[i].id, &bytes));
        json_object_set_new(o, "logprob", json_real(lp[i].logprob));
        json_object_set_new(o, "bytes", bytes);
        for (int k = 0; k < lp[i].n_top; k++) {
            json_t *t = json_object(), *tb;
            json_object_set_new(t, "token", token_text(s, lp[i].top[k].id, &tb));
            json_object_set_new(t, "logprob", json_real(lp[i].top[k].logprob));
            json_object_set_new(t, "bytes", tb);
            json_array_append_new(top, t);
        }
        json_object_set_new(o, "top_logprobs", top);
        json_array_append_new(a, o);
    }
    return a;
}

/* completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"} */
static json_t *completion_lp_new(void) {
    json_t *o = json_object();
    json_object_set_new(o, "tokens", json_array());
    json_object_set_new(o, "token_logprobs", json_array());
    json_object_set_new(o, "top_logprobs", json_array());
    json_object_set_new(o, "text_offset", json_array());
    return o;
}

static void completion_lp_add(const srv *s, srv_choice *c, json_t *o, const smoe_token_lp *lp, int n) {
    for (int i = 0; i < n; i++) {
        char buf[80];
        size_t len = smoe_token_bytes(s->tok, lp[i].id, buf, sizeof buf);
        json_array_append_new(json_object_get(o, "tokens"), srv_json_text(buf, len));
        json_array_append_new(json_object_get(o, "token_logprobs"), json_real(lp[i].logprob));
        json_t *top = json_object();
        for (int k = 0; k < lp[i].n_top; k++) {
            char tb[80];
            size_t tl = smoe_token_bytes(s->tok, lp[i].top[k].id, tb, sizeof tb);
            json_t *key = srv_json_text(tb, tl);
            if (key) json_object_set_new(top, json_string_value(key), json_real(lp[i].top[k].logprob));
            json_decref(key);
        }
        json_array_append_new(json_object_get(o, "top_logprobs"), top);
        json_array_append_new(json_object_get(o, "text_offset"), json_integer(c->text_offset));
        c->text_offset += (int64_t)len;
    }
}

static json_t *chunk_choice(srv_choice *c, const char *text, size_t len, json_t *lp, const char *finish) {
    srv_request *r = c->req;
    json_t *ch = json_object();
    if (is_chat(r)) {
        json_object_set_new(ch, "index", json_integer(c->index));
        json_t *delta = json_object();
        if (text) json_object_set_new(delta, "content", srv_json_text(text, len));
        json_object_set_new(ch, "delta", delta);
        if (lp) {
            json_t *l = json_object();
            json_object_set_new(l, "content", lp);
            json_object_set_new(l, "refusal", json_null());
            json_object_set_new(ch, "logprobs", l);
        } else json_object_set_new(ch, "logprobs", json_null());
    } else {
        json_object_set_new(ch, "text", srv_json_text(text ? text : "", text ? len : 0));
        json_object_set_new(ch, "index", json_integer(c->index));
        json_object_set_new(ch, "logprobs", lp ? lp : json_null());
    }
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    return ch;
}

static void write_chunk(srv_request *r, json_t *choice) {
    json_t *o = base(r, true), *choices = json_array();
    json_array_append_new(choices, choice);
    json_object_set_new(o, "choices", choices);
    if (r->include_usage) json_object_set_new(o, "usage", json_null());
    write_event(r, o, false);
}

void oai_on_start(srv_request *r) {
    if (!r->stream || !is_chat(r)) return;
    for (int i = 0; i < r->n; i++) {
        json_t *ch = chunk_choice(&r->choices[i], NULL, 0, NULL, NULL), *delta = json_object();
        json_object_set_new(delta, "role", json_string("assistant")); /* role first, as OpenAI sends it */
        json_object_set_new(delta, "content", json_string(""));
        json_object_set_new(ch, "delta", delta);
        write_chunk(r, ch);
    }
}

void oai_on_text(srv_choice *c, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    srv_request *r = c->req;
    srv *s = r->srv;
    if (len == 0 && (n_lp == 0 || !r->logprobs)) return;
    json_t *deltas = NULL;
    if (r->tools && srv_tools_on_text(c, text, len, r->stream, &deltas)) {
        /* the call document: streamed as tool_calls deltas, else parsed at the end */
        size_t i;
        json_t *item;
        json_array_foreach(deltas, i, item) {
            if (json_is_string(item)) { /* v1's {"content": ...} decoded as it streams (tools.c) */
                write_chunk(r, chunk_choice(c, json_string_value(item), json_string_length(item), NULL, NULL));
                continue;
            }
            json_t *ch = chunk_choice(c, NULL, 0, NULL, NULL), *d = json_object(), *a = json_array();
            json_array_append(a, item);
            json_object_set_new(d, "tool_calls", a);
            json_object_set_new(ch, "delta", d);
            write_chunk(r, ch);
        }
        json_decref(deltas);
        return;
    }
    if (r->stream) {
        json_t *l = NULL;
        if (r->logprobs) {
            if (is_chat(r)) l = chat_lp(s, lp, n_lp);
            else {
                l = completion_lp_new();
                completion_lp_add(s, c, l, lp, n_lp);
            }
        }
        write_chunk(r, chunk_choice(c, text, len, l, NULL));
        return;
    }
    smoe_buf_add(&c->text, text, len);
    if (r->logprobs) {
        if (!c->lp) c->lp = is_chat(r) ? json_array() : completion_lp_new();
        if (is_chat(r)) {
            json_t *a = chat_lp(s, lp, n_lp);
            json_array_extend(c->lp, a);
            json_decref(a);
        } else completion_lp_add(s, c, c->lp, lp, n_lp);
    }
}

static const char *finish_reason(const srv_choice *c) {
    if (c->st.finish == SMOE_FINISH_LENGTH) return "length";
    return c->req->tools && srv_tools_called(c) ? "tool_calls" : "stop";
}

void oai_on_choice_done(srv_choice *c) {
    srv_request *r = c->req;
    if (!r->stream || c->st.finish == SMOE_FINISH_ERROR || c->st.finish == SMOE_FINISH_CANCEL) return;
    write_chunk(r, chunk_choice(c, is_chat(r) ? NULL : "", 0, NULL, finish_reason(c)));
}

static json_t *usage(const srv_request *r) {
    int64_t gen = 0;
    int32_t cached = r->prompt.n;
    for (int i = 0; i < r->n; i++) {
        gen += r->choices[i].st.n_generated;
        if (r->choices[i].st.n_cached < cached) cached = r->choices[i].st.n_cached;
    }
    json_t *u = json_object(), *d = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(r->prompt.n));
    json_object_set_new(u, "completion_tokens", json_integer(gen));
    json_object_set_new(u, "total_tokens", json_integer(r->prompt.n + gen));
    json_object_set_new(d, "cached_tokens", json_integer(cached));
    json_object_set_new(u, "prompt_tokens_details", d);
    return u;
}

void oai_on_done(srv_request *r) {
    /* a failed or (at shutdown) cancelled choice fails the request */
    for (int i = 0; i < r->n; i++) {
        smoe_finish f = r->choices[i].st.finish;
        if (f != SMOE_FINISH_ERROR && f != SMOE_FINISH_CANCEL) continue;
        srv_reply rep = {0};
        if (f == SMOE_FINISH_ERROR) oai_error(&rep, 500, "server_error", NULL, NULL, "generation failed (see the server log)");
        else oai_error(&rep, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
        if (r->stream) {
            smoe_buf b = {0};
            smoe_buf_addf(&b, "data: %s\n\n", rep.body ? rep.body : "{}");
            srv_request_write(r, b.p, b.n, true);
            smoe_buf_free(&b);
        } else {
            pthread_mutex_lock(&r->mu);
            r->status = rep.status;
            pthread_mutex_unlock(&r->mu);
            srv_request_write(r, rep.body ? rep.body : "", rep.body ? strlen(rep.body) : 0, true);
        }
        free(rep.body);
        return;
    }
    if (r->stream) {
        if (r->include_usage) {
            json_t *o = base(r, true);
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage", usage(r));
            write_event(r, o, false);
        }
        srv_request_write(r, "data: [DONE]\n\n", 14, true);
        return;
    }
    json_t *o = base(r, false), *choices = json_array();
    for (int i = 0; i < r->n; i++) {
        srv_choice *c = &r->choices[i];
        json_t *ch = json_object();
        json_object_set_new(ch, "index", json_integer(i));
        if (is_chat(r)) {
            json_t *m = json_object();
            const char *rest = NULL;
            size_t rest_len = 0;
            json_t *calls = r->tools ? srv_tools_calls(c, false, &rest, &rest_len) : NULL;
            if (rest) smoe_buf_add(&c->text, rest, rest_len); /* a call document cut short: as text */
            json_object_set_new(m, "role", json_string("assistant"));
            if (calls && !c->text.n) json_object_set_new(m, "content", json_null()); /* only calls */
            else json_object_set_new(m, "content", srv_json_text(c->text.p ? c->text.p : "", c->text.n));
            json_object_set_new(m, "refusal", json_null());
            if (calls) json_object_set_new(m, "tool_calls", calls);
            json_object_set_new(ch, "message", m);
            if (r->logprobs) {
                json_t *l = json_object();
                json_object_set_new(l, "content", c->lp ? json_incref(c->lp) : json_array());
                json_object_set_new(l, "refusal", json_null());
                json_object_set_new(ch, "logprobs", l);
            } else json_object_set_new(ch, "logprobs", json_null());
        } else {
            json_object_set_new(ch, "text", srv_json_text(c->text.p ? c->text.p : "", c->text.n));
            if (r->logprobs) json_object_set(ch, "logprobs", c->lp ? c->lp : json_null());
            else json_object_set_new(ch, "logprobs", json_null());
        }
        const char *fr = finish_reason(c);
        if (is_chat(r) && r->tools && !strcmp(fr, "tool_calls") && !json_object_get(json_object_get(ch, "message"), "tool_calls"))
            fr = "stop"; /* the document did not parse: plain text */
        json_object_set_new(ch, "finish_reason", json_string(fr));
        json_array_append_new(choices, ch);
    }
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage(r));
    char *body = srv_request_dump(r, o);
    if (body) srv_request_write(r, body, strlen(body), true);
    else srv_request_fail(r, OAI_OOM_ERROR);
    free(body);
}

/* The engine's callbacks for the two endpoints (request.h). */
static const srv_api_ops chat_ops = {API_OAI_CHAT, "chatcmpl-", "text/event-stream", oai_on_start, NULL,
                                     oai_on_text, oai_on_choice_done, oai_on_done};
static const srv_api_ops completion_ops = {API_OAI_COMPLETION, "cmpl-", "text/event-stream", oai_on_start, NULL,
                                           oai_on_text, oai_on_choice_done, oai_on_done};
