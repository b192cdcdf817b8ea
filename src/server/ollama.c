/* ollama.c - the Ollama API: POST /api/generate, POST /api/chat, GET
 * /api/tags, POST /api/show, GET /api/ps (GET /api/version and GET / are in
 * http.c), with Ollama's shapes: NDJSON streaming by default, errors as
 * {"error": "..."}.
 *
 * Model names: the server's model answers to its id and to "id:latest".
 * /api/generate renders the prompt (and "system") as a one-turn chat in the
 * model's chat format unless "raw" is true (then BOS + the prompt as text);
 * "context" (the ids a previous answer returned) is put in front, without a
 * second BOS.  An empty prompt (or empty messages) is Ollama's "load the
 * model" request: answered at once with done_reason "load".
 *
 * Options: num_predict (-1 and -2: up to --max-tokens), temperature, top_k,
 * top_p, min_p, repeat_penalty, repeat_last_n, presence_penalty,
 * frequency_penalty, seed (absent or negative: random), stop (up to 16).
 * num_ctx, num_thread, num_batch, num_gpu and keep_alive are accepted and
 * ignored: context size and threads are fixed when the server starts.
 * "format" ("json" or a JSON Schema) constrains the output (structured.h);
 * "images" and "suffix" are not supported (400).
 * Defaults are Ollama's: temperature 0.8, top_k 40, top_p 0.9, min_p 0,
 * repeat_penalty 1.1 over 64 tokens.
 *
 * Counts: prompt_eval_count is the number of prompt tokens really run
 * through the model (prompt tokens reused from a slot's cache are not
 * counted), eval_count the tokens generated; durations are nanoseconds:
 * prompt_eval_duration from admission to the first token, eval_duration
 * from there to the end, total_duration from receipt of the request (queue
 * time included), load_duration 0 (the model is loaded once at start). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ollama.h"

#include "../base/common.h"
#include "../json/jsonmem.h"
#include "params.h"
#include "prompt.h"
#include "state.h"
#include "structured.h"
#include "tools.h"
#include "util.h"

static const srv_api_ops generate_ops, chat_ops;

void olm_error(srv_reply *rep, int status, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "error", srv_json_text(msg, strlen(msg)));
    rep->status = status;
    rep->content_type = "application/json";
    rep->body = srv_dump(o);
}

static json_t *timestamp(double wall) {
    time_t t = (time_t)wall;
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64], out[80];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%09ldZ", buf, (long)((wall - (double)t) * 1e9));
    return json_string(out);
}

static json_t *details(srv *s) {
    const smoe_hparams *hp = smoe_model_hparams(s->model);
    json_t *d = json_object(), *fams = json_array();
    char size[32];
    double params = (double)hp->n_layers * hp->dim * (double)hp->ffn_dim * 3 * (hp->n_experts ? hp->n_experts : 1);
    if (params >= 1e9) snprintf(size, sizeof size, "%.1fB", params / 1e9);
    else snprintf(size, sizeof size, "%.0fM", params / 1e6);
    json_object_set_new(d, "parent_model", json_string(""));
    json_object_set_new(d, "format", json_string("gguf"));
    json_object_set_new(d, "family", json_string("llama"));
    json_array_append_new(fams, json_string("llama"));
    json_object_set_new(d, "families", fams);
    json_object_set_new(d, "parameter_size", json_string(size));
    json_object_set_new(d, "quantization_level", json_string("unknown"));
    return d;
}

static json_t *model_entry(srv *s, bool ps) {
    json_t *m = json_object();
    char digest[80];
    uint64_t h = 1469598103934665603ull;
    for (const char *p = s->model_path; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(digest, sizeof digest, "%016llx%016llx", (unsigned long long)h, (unsigned long long)s->model_size);
    json_object_set_new(m, "name", json_string(s->ollama_name));
    json_object_set_new(m, "model", json_string(s->ollama_name));
    if (!ps) json_object_set_new(m, "modified_at", timestamp((double)s->model_mtime));
    json_object_set_new(m, "size", json_integer(s->model_size));
    json_object_set_new(m, "digest", json_string(digest));
    json_object_set_new(m, "details", details(s));
    if (ps) {
        json_object_set_new(m, "expires_at", json_string("2318-01-01T00:00:00Z")); /* never unloaded */
        json_object_set_new(m, "size_vram", json_integer(0));
    }
    return m;
}

void olm_tags(srv *s, srv_reply *rep, bool ps) {
    json_t *o = json_object(), *a = json_array();
    json_array_append_new(a, model_entry(s, ps));
    json_object_set_new(o, "models", a);
    rep->status = 200;
    rep->body = srv_dump(o);
}

static bool check_model(srv *s, const json_t *b, srv_reply *rep, bool required) {
    const json_t *m = json_object_get(b, "model");
    if (!m || json_is_null(m)) {
        if (!required) return true;
        olm_error(rep, 400, "model is required");
        return false;
    }
    if (!json_is_string(m)) { olm_error(rep, 400, "'model' must be a string"); return false; }
    if (!srv_model_matches(s, json_string_value(m))) {
        olm_error(rep, 404, "model '%.200s' not found (this server has '%s')", json_string_value(m), s->ollama_name);
        return false;
    }
    return true;
}

void olm_show(srv *s, json_t *b, srv_reply *rep) {
    const json_t *name = json_object_get(b, "model");
    if (!name || json_is_null(name)) name = json_object_get(b, "name"); /* older clients */
    if (!json_is_string(name)) { olm_error(rep, 400, "model is required"); return; }
    if (!srv_model_matches(s, json_string_value(name))) {
        olm_error(rep, 404, "model '%.200s' not found", json_string_value(name));
        return;
    }
    const smoe_hparams *hp = smoe_model_hparams(s->model);
    json_t *o = json_object(), *info = json_object(), *caps = json_array();
    char params[256];
    snprintf(params, sizeof params, "num_ctx %d", s->o.n_ctx);
    json_object_set_new(o, "modelfile", json_string(""));
    json_object_set_new(o, "parameters", json_string(params));
    json_object_set_new(o, "template", json_string(s->chat_format == 3 ? "mistral v3 (built in)" : "mistral v1 (built in)"));
    json_object_set_new(o, "details", details(s));
    json_object_set_new(info, "general.architecture", json_string("llama"));
    json_object_set_new(info, "llama.block_count", json_integer(hp->n_layers));
    json_object_set_new(info, "llama.context_length", json_integer(hp->n_ctx_train));
    json_object_set_new(info, "llama.embedding_length", json_integer(hp->dim));
    json_object_set_new(info, "llama.feed_forward_length", json_integer(hp->ffn_dim));
    json_object_set_new(info, "llama.attention.head_count", json_integer(hp->n_heads));
    json_object_set_new(info, "llama.attention.head_count_kv", json_integer(hp->n_kv_heads));
    json_object_set_new(info, "llama.expert_count", json_integer(hp->n_experts));
    json_object_set_new(info, "llama.expert_used_count", json_integer(hp->n_experts_used));
    json_object_set_new(info, "llama.vocab_size", json_integer(hp->n_vocab));
    json_object_set_new(o, "model_info", info);
    json_array_append_new(caps, json_string("completion"));
    json_object_set_new(o, "capabilities", caps);
    json_object_set_new(o, "modified_at", timestamp((double)s->model_mtime));
    rep->status = 200;
    rep->body = srv_dump(o);
}

/* ---------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------- */

static int options(srv *s, const json_t *b, srv_request *r, srv_perr *e) {
    smoe_sampler_params *sp = &r->params.sampling;
    smoe_sampler_defaults(sp);
    sp->temperature = 0.8f;
    sp->top_k = 40;
    sp->top_p = 0.9f;
    sp->min_p = 0;
    sp->repeat_penalty = 1.1f;
    sp->repeat_last_n = 64;
    sp->seed = srv_random_seed(s);
    r->params.max_tokens = s->o.max_tokens;
    r->params.top_logprobs = -1;
    const json_t *o = json_object_get(b, "options");
    if (!o || json_is_null(o)) return 0;
    if (!json_is_object(o)) return srv_perr_set(e, "options", "'options' must be an object");
    double x;
    long long i;
    int g;
#define NUM(key, lo, hi, dst)                                                  \
    if ((g = srv_get_num(o, key, lo, hi, &x, e)) < 0) return -1;               \
    if (g) dst = (float)x;
    NUM("temperature", 0, 100, sp->temperature)
    NUM("top_p", 0, 1, sp->top_p)
    NUM("min_p", 0, 1, sp->min_p)
    NUM("repeat_penalty", 0, 10, sp->repeat_penalty)
    NUM("presence_penalty", -2, 2, sp->presence_penalty)
    NUM("frequency_penalty", -2, 2, sp->frequency_penalty)
#undef NUM
    if ((g = srv_get_int(o, "top_k", 0, 1 << 24, &i, e)) < 0) return -1;
    if (g) sp->top_k = (int32_t)i;
    if ((g = srv_get_int(o, "repeat_last_n", -1, 1 << 24, &i, e)) < 0) return -1;
    if (g) sp->repeat_last_n = (int32_t)i;
    if ((g = srv_get_int(o, "seed", INT64_MIN, INT64_MAX, &i, e)) < 0) return -1;
    if (g && i >= 0) sp->seed = (uint64_t)i;
    if ((g = srv_get_int(o, "num_predict", -2, s->o.max_tokens, &i, e)) < 0) return -1;
    if (g && i >= 0) r->params.max_tokens = (int32_t)i;
    long long ignored;
    static const char *const ints[] = {"num_ctx", "num_thread", "num_batch", "num_gpu", "num_keep"};
    for (size_t k = 0; k < sizeof ints / sizeof *ints; k++)
        if (srv_get_int(o, ints[k], -1, 1ll << 40, &ignored, e) < 0) return -1;
    if (srv_get_stops(o, "stop", SRV_MAX_STOPS, r, e) < 0) return -1;
    char err[SMOE_ERR_SIZE];
    if (smoe_sched_check_params(s->sched, &r->params, err)) return srv_perr_set(e, "options", "%s", err);
    return 0;
}

static void load_reply(srv *s, const json_t *b, srv_reply *rep, bool chat) {
    (void)s;
    json_t *o = json_object();
    const json_t *m = json_object_get(b, "model");
    json_object_set_new(o, "model", json_string(json_string_value(m) ? json_string_value(m) : s->ollama_name));
    json_object_set_new(o, "created_at", timestamp(smoe_wall_s()));
    if (chat) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", json_string(""));
        json_object_set_new(o, "message", msg);
    } else json_object_set_new(o, "response", json_string(""));
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string("load"));
    rep->status = 200;
    rep->body = srv_dump(o);
}

static void start(srv *s, const json_t *b, srv_reply *rep, srv_request *r, const char *endpoint) {
    srv_perr e = {0};
    if (srv_get_bool(b, "stream", &r->stream, &e) < 0) {
        olm_error(rep, 400, "%s", e.msg);
        srv_request_unref(r);
        return;
    }
    if (r->prompt.n >= s->o.n_ctx) {
        olm_error(rep, 400, "the prompt has %d tokens; this server's context holds %d per sequence", r->prompt.n,
                  s->o.n_ctx);
        srv_request_unref(r);
        return;
    }
    char ferr[SMOE_ERR_SIZE]; /* "format": a grammar the scheduler enforces (structured.h) */
    if (srv_structured_ollama(b, &r->params.grammar, ferr)) {
        olm_error(rep, 400, "%s", ferr);
        srv_request_unref(r);
        return;
    }
    char tparam[40]; /* "tools": constrained calls (tools.h) */
    if (r->api == API_OLLAMA_CHAT && srv_tools_setup(s, b, r, tparam, ferr)) {
        olm_error(rep, 400, "%s", ferr);
        srv_request_unref(r);
        return;
    }
    const json_t *m = json_object_get(b, "model");
    r->model = strdup(json_string_value(m) ? json_string_value(m) : s->ollama_name);
    if (!r->model) {
        olm_error(rep, 500, "out of memory");
        srv_request_unref(r);
        return;
    }
    snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
    if (smoe_json_failures_take()) {   /* since dispatch (http.c): the request may be incomplete */
        olm_error(rep, 503, "out of memory while reading the request");
        rep->retry_after = 1;
        srv_request_unref(r);
        return;
    }
    if (srv_submit(s, r)) {
        olm_error(rep, 503, "the server is busy (request queue full); retry later");
        rep->retry_after = 1;
        srv_request_unref(r);
        return;
    }
    rep->gen = r;
}

static bool unsupported(const json_t *b, srv_reply *rep) {
    const json_t *im = json_object_get(b, "images");
    if (im && !json_is_null(im) && !(json_is_array(im) && json_array_size(im) == 0)) {
        olm_error(rep, 400, "'images' are not supported by smoe (text models only)");
        return true;
    }
    return false;
}

void olm_generate(srv *s, json_t *b, srv_reply *rep) {
    if (!check_model(s, b, rep, true) || unsupported(b, rep)) return;
    const json_t *prompt = json_object_get(b, "prompt"), *system = json_object_get(b, "system"),
                 *ctx = json_object_get(b, "context"), *suffix = json_object_get(b, "suffix");
    if (prompt && !json_is_null(prompt) && !json_is_string(prompt)) { olm_error(rep, 400, "'prompt' must be a string"); return; }
    if (system && !json_is_null(system) && !json_is_string(system)) { olm_error(rep, 400, "'system' must be a string"); return; }
    if (suffix && json_is_string(suffix) && *json_string_value(suffix)) {
        olm_error(rep, 400, "'suffix' (fill in the middle) is not supported by smoe");
        return;
    }
    if (ctx && !json_is_null(ctx) && !json_is_array(ctx)) { olm_error(rep, 400, "'context' must be an array of token ids"); return; }
    bool has_ctx = json_is_array(ctx) && json_array_size(ctx) > 0;
    if ((!json_is_string(prompt) || !*json_string_value(prompt)) && !has_ctx) {
        load_reply(s, b, rep, false);
        return;
    }
    srv_request *r = srv_request_new(s, &generate_ops, 1);
    if (!r) { olm_error(rep, 500, "out of memory"); return; }
    srv_perr e = {0};
    if (options(s, b, r, &e)) goto bad;
    bool raw = false;
    if (srv_get_bool(b, "raw", &raw, &e) < 0) goto bad;
    if (srv_generate_prompt(s, prompt, system, has_ctx ? ctx : NULL, raw, &r->prompt, &e)) goto bad;
    if (r->prompt.n == 0) { srv_perr_set(&e, "prompt", "the prompt is empty"); goto bad; }
    r->stream = true; /* Ollama's default */
    start(s, b, rep, r, "/api/generate");
    return;
bad:
    olm_error(rep, 400, "%s", e.msg);
    srv_request_unref(r);
}

void olm_chat(srv *s, json_t *b, srv_reply *rep) {
    if (!check_model(s, b, rep, true) || unsupported(b, rep)) return;
    const json_t *msgs = json_object_get(b, "messages");
    if (msgs && !json_is_null(msgs) && !json_is_array(msgs)) { olm_error(rep, 400, "'messages' must be an array"); return; }
    if (!msgs || json_is_null(msgs) || json_array_size(msgs) == 0) {
        load_reply(s, b, rep, true);
        return;
    }
    if (json_array_size(msgs) > (size_t)s->o.max_messages) {
        olm_error(rep, 400, "'messages' has %zu messages; at most %d", json_array_size(msgs), s->o.max_messages);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const json_t *im = json_object_get(m, "images");
        if (im && !json_is_null(im) && !(json_is_array(im) && json_array_size(im) == 0)) {
            olm_error(rep, 400, "messages[%zu]: 'images' are not supported by smoe (text models only)", i);
            return;
        }
    }
    srv_request *r = srv_request_new(s, &chat_ops, 1);
    if (!r) { olm_error(rep, 500, "out of memory"); return; }
    srv_perr e = {0};
    char err[SMOE_ERR_SIZE];
    if (options(s, b, r, &e)) goto bad;
    json_t *hist = srv_tools_ollama_history(msgs); /* ids for calls and results (tools.h) */
    if (!hist) { srv_perr_set(&e, "messages", "out of memory"); goto bad; }
    int rc = srv_tools_check_history(hist, err);
    if (!rc) rc = srv_render_chat(s, hist, b, &r->prompt, err);
    json_decref(hist);
    if (rc) {
        srv_perr_set(&e, "messages", "%s", err);
        goto bad;
    }
    r->stream = true;
    start(s, b, rep, r, "/api/chat");
    return;
bad:
    olm_error(rep, 400, "%s", e.msg);
    srv_request_unref(r);
}

/* ---------------------------------------------------------------------------
 * Responses (engine thread)
 * ------------------------------------------------------------------------- */

static json_t *base(srv_request *r) {
    json_t *o = json_object();
    json_object_set_new(o, "model", srv_json_text(r->model, strlen(r->model)));
    json_object_set_new(o, "created_at", timestamp(smoe_wall_s()));
    return o;
}

static void set_text(srv_request *r, json_t *o, const char *text, size_t len) {
    if (r->api == API_OLLAMA_CHAT) {
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string("assistant"));
        json_object_set_new(m, "content", srv_json_text(text, len));
        json_object_set_new(o, "message", m);
    } else json_object_set_new(o, "response", srv_json_text(text, len));
}

static void write_line(srv_request *r, json_t *o, bool finished) {
    char *s = srv_request_dump(r, o);
    smoe_buf b = {0};
    if (!s || smoe_buf_add(&b, s, strlen(s)) || (r->stream && smoe_buf_add(&b, "\n", 1))) {
        /* out of memory: end the response with an error in Ollama's shape */
        srv_request_fail(r, r->stream ? "{\"error\":\"out of memory while formatting the response\"}\n"
                                      : "{\"error\":\"out of memory while formatting the response\"}");
    } else {
        srv_request_write(r, b.p, b.n, finished);
    }
    free(s);
    smoe_buf_free(&b);
}

void olm_on_text(srv_choice *c, const char *text, size_t len) {
    srv_request *r = c->req;
    if (len == 0) return;
    if (r->tools && srv_tools_on_text(c, text, len, false, NULL)) return; /* the call document */
    if (!r->stream) {
        smoe_buf_add(&c->text, text, len);
        return;
    }
    json_t *o = base(r);
    set_text(r, o, text, len);
    json_object_set_new(o, "done", json_false());
    write_line(r, o, false);
}

void olm_on_done(srv_request *r) {
    srv_choice *c = &r->choices[0];
    const smoe_job_stats *st = &c->st;
    if (st->finish == SMOE_FINISH_ERROR || st->finish == SMOE_FINISH_CANCEL) {
        srv_reply rep = {0};
        if (st->finish == SMOE_FINISH_ERROR) olm_error(&rep, 500, "generation failed (see the server log)");
        else olm_error(&rep, 503, "the server is shutting down");
        if (!r->stream) {
            pthread_mutex_lock(&r->mu);
            r->status = rep.status;
            pthread_mutex_unlock(&r->mu);
        }
        smoe_buf b = {0};
        smoe_buf_add(&b, rep.body ? rep.body : "{}", rep.body ? strlen(rep.body) : 2);
        if (r->stream) smoe_buf_add(&b, "\n", 1);
        srv_request_write(r, b.p, b.n, true);
        smoe_buf_free(&b);
        free(rep.body);
        return;
    }
    const char *rest = NULL;
    size_t rest_len = 0;
    json_t *calls = r->tools ? srv_tools_calls(c, true, &rest, &rest_len) : NULL;
    if (r->stream && (calls || rest)) { /* the calls (or a document cut short) in a line of their own */
        json_t *line = base(r);
        set_text(r, line, rest ? rest : "", rest_len);
        if (calls) json_object_set(json_object_get(line, "message"), "tool_calls", calls);
        json_object_set_new(line, "done", json_false());
        write_line(r, line, false);
    } else if (rest) smoe_buf_add(&c->text, rest, rest_len);
    json_t *o = base(r);
    if (r->stream) set_text(r, o, "", 0);
    else set_text(r, o, c->text.p ? c->text.p : "", c->text.n);
    if (calls && !r->stream) json_object_set(json_object_get(o, "message"), "tool_calls", calls);
    json_decref(calls);
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string(st->finish == SMOE_FINISH_LENGTH ? "length" : "stop"));
    if (r->api == API_OLLAMA_GENERATE) {
        json_t *ctx = json_array();
        for (int32_t i = 0; i < r->prompt.n; i++) json_array_append_new(ctx, json_integer(r->prompt.ids[i]));
        for (int32_t i = 0; i < c->gen_ids.n; i++) json_array_append_new(ctx, json_integer(c->gen_ids.ids[i]));
        json_object_set_new(o, "context", ctx);
    }
    double first = st->t_first_ms > 0 ? st->t_first_ms : st->t_end_ms;
    json_object_set_new(o, "total_duration", json_integer((json_int_t)((st->t_end_ms - r->t_received_ms) * 1e6)));
    json_object_set_new(o, "load_duration", json_integer(0));
    json_object_set_new(o, "prompt_eval_count", json_integer(st->n_processed));
    json_object_set_new(o, "prompt_eval_duration", json_integer((json_int_t)((first - st->t_admit_ms) * 1e6)));
    json_object_set_new(o, "eval_count", json_integer(st->n_generated));
    json_object_set_new(o, "eval_duration", json_integer((json_int_t)((st->t_end_ms - first) * 1e6)));
    write_line(r, o, true);
}

/* ---------------------------------------------------------------------------
 * The engine's callbacks (request.h)
 * ------------------------------------------------------------------------- */

/* /api/generate answers with "context": the prompt and generated ids */
static void on_token(srv_choice *c, int32_t id) { smoe_tokens_push(&c->gen_ids, id); }

static void on_text(srv_choice *c, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    (void)lp, (void)n_lp; /* Ollama reports no logprobs */
    olm_on_text(c, text, len);
}

static const srv_api_ops generate_ops = {API_OLLAMA_GENERATE, "req-", "application/x-ndjson", NULL, on_token,
                                         on_text, NULL, olm_on_done};
static const srv_api_ops chat_ops = {API_OLLAMA_CHAT, "req-", "application/x-ndjson", NULL, NULL,
                                     on_text, NULL, olm_on_done};
