/* fuzz_server.c - the request parsers and response builders of `smoe serve`
 * (src/server/openai.c, ollama.c, tokenize.c), driven in process: request
 * body in, response out, with a tiny synthetic model and no sockets.
 *
 * Input: byte 0 picks the endpoint (low 3 bits: /v1/chat/completions,
 * /v1/completions, /api/generate, /api/chat, /tokenize, /detokenize,
 * /api/show, /v1/models/{id} with the body as the id), bit 3 the chat
 * format (v1/v3), bits 4-6 how the simulated generation ends (stop,
 * length, cancel, error); the rest is the request body (parsed by jansson
 * as http.c does).
 *
 * The HTTP layer (libmicrohttpd framing, routing, authentication, the body
 * size and nesting limits, streaming to a socket) and the engine thread's
 * scheduling are NOT driven here: a generation request the handler queues
 * is taken off the queue by the target, which plays the engine's part with
 * the same event calls worker.c makes (start, text pieces with logprob
 * records, choice done, done) using text from a fixed list.
 *
 * Checked: every direct reply has a status 200-599 and a body that is one
 * JSON document (errors: an "error" member); a queued generation's whole
 * output is well formed for its API: SSE "data: {json}" events ending with
 * "data: [DONE]" or an error event (OpenAI stream), one JSON object (non-stream), NDJSON
 * lines with "done": true last (Ollama stream); nothing leaks. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/common.h"
#include "json/jsonmem.h"
#include "fuzz_util.h"
#include "model/model.h"
#include "server/ollama.h"
#include "server/openai.h"
#include "server/request.h"
#include "server/server.h"
#include "server/tokenize.h"
#include "server/util.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------------------
 * One server, made on first use and kept (a tiny model written to /tmp)
 * ------------------------------------------------------------------------- */

static srv *server(int chat_format) {
    static srv *s;
    static smoe_model *m;
    static smoe_tokenizer *tok;
    char err[SMOE_ERR_SIZE];
    if (!s) {
        smoe_json_alloc_init();   /* as `smoe` does */
        fz_tiny_server_model("server", &m, &tok, NULL, 0);
        srv_opts o;
        srv_opts_defaults(&o);
        o.alias = "fuzz-model";
        o.parallel = 4;
        o.n_ctx = 128;
        o.quiet = true;
        s = srv_new(&o, err);
        FZ_CHECK(s, "srv_new: %s", err);
        s->model = m;
        s->tok = tok;
        snprintf(s->model_id, sizeof s->model_id, "fuzz-model");
        snprintf(s->ollama_name, sizeof s->ollama_name, "fuzz-model:latest");
        snprintf(s->model_path, sizeof s->model_path, "fuzz-model.gguf");
        smoe_sched_opts sched = {o.parallel, o.n_ctx, o.chunk, o.kv_type};
        s->sched = smoe_sched_new(m, tok, &sched, err);
        FZ_CHECK(s->sched, "sched: %s", err);
        s->o.n_ctx = smoe_sched_n_ctx(s->sched);
        s->ready = true; /* no engine thread: this target plays it */
    }
    s->chat_format = chat_format;
    return s;
}

/* ---------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------- */

static json_t *parse(const char *p, size_t n, const char *what) {
    json_error_t je;
    json_t *v = json_loadb(p, n, JSON_ALLOW_NUL, &je); /* \u0000 is valid JSON */
    FZ_CHECK(v && json_is_object(v), "%s is not a JSON object (%s): %.*s", what, je.text, (int)(n < 400 ? n : 400), p);
    return v;
}

static void check_reply(const srv_reply *rep) {
    FZ_CHECK(rep->status >= 200 && rep->status <= 599, "status %d", rep->status);
    FZ_CHECK(rep->body, "no body");
    json_t *v = parse(rep->body, strlen(rep->body), "reply body");
    if (rep->status >= 400) FZ_CHECK(json_object_get(v, "error"), "error reply without 'error': %s", rep->body);
    json_decref(v);
}

/* One line at a time from [p, end). */
static const char *next_line(const char *p, const char *end, size_t *len) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((nl ? nl : end) - p);
    return nl ? nl + 1 : end;
}

static void check_output(const srv_request *r, bool cancelled) {
    FZ_CHECK(r->finished, "output not finished");
    const char *p = r->out.p ? r->out.p : "", *end = p + r->out.n;
    bool oai = r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION;
    if (cancelled) return; /* the client is gone: whatever was written is not read */
    if (!r->stream) {
        json_t *v = parse(p, r->out.n, "non-stream body");
        if (r->status >= 400) FZ_CHECK(json_object_get(v, "error"), "error without 'error'");
        json_decref(v);
        return;
    }
    bool last_done = false;
    int events = 0;
    while (p < end) {
        size_t len;
        const char *line = p;
        p = next_line(p, end, &len);
        if (oai) {
            if (len == 0) continue;
            FZ_CHECK(len >= 6 && memcmp(line, "data: ", 6) == 0, "SSE line: %.*s", (int)len, line);
            FZ_CHECK(!last_done, "an event after [DONE]");
            if (len == 12 && memcmp(line + 6, "[DONE]", 6) == 0) { last_done = true; continue; }
            json_t *v = parse(line + 6, len - 6, "SSE event");
            last_done = json_object_get(v, "error") != NULL; /* a failed stream ends with its error */
            json_decref(v);
        } else {
            FZ_CHECK(len > 0 || p == end, "empty NDJSON line");
            if (len == 0) continue;
            FZ_CHECK(!last_done, "a line after the last");
            json_t *v = parse(line, len, "NDJSON line");
            last_done = json_is_true(json_object_get(v, "done")) || json_object_get(v, "error");
            json_decref(v);
        }
        events++;
    }
    FZ_CHECK(last_done, "the stream does not end with its final event (%d events)", events);
}

/* ---------------------------------------------------------------------------
 * Playing the engine
 * ------------------------------------------------------------------------- */

static const char *const pieces[] = {"Hello", ", ", "w\xc3\xb6rld", "", "\"quoted\\\" \n", "\xe2\x82\xac", "</s>",
                                     "{\"a\":1}"};

static void play(srv *s, srv_request *r, int ending) {
    pthread_mutex_lock(&s->mu); /* take it off the queue as the engine would */
    FZ_CHECK(s->wait_head == r && r->qnext == NULL, "the request is not alone in the queue");
    s->wait_head = s->wait_tail = NULL;
    s->n_waiting--;
    pthread_mutex_unlock(&s->mu);

    bool oai = r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION;
    smoe_finish fin = ending == 1 ? SMOE_FINISH_LENGTH : ending == 2 ? SMOE_FINISH_CANCEL
                        : ending == 3 ? SMOE_FINISH_ERROR : SMOE_FINISH_STOP;
    bool cancelled = ending == 4; /* the client went away mid-stream */
    if (oai) oai_on_start(r);
    int32_t n_vocab = smoe_model_hparams(s->model)->n_vocab;
    for (int i = 0; i < r->n; i++) {
        srv_choice *c = &r->choices[i];
        int n_text = fin == SMOE_FINISH_CANCEL || fin == SMOE_FINISH_ERROR ? i : 3 + i;
        for (int k = 0; k < n_text; k++) {
            const char *t = pieces[(k + i) % (sizeof pieces / sizeof *pieces)];
            smoe_token_lp lp = {0};
            lp.id = (k * 37 + 5) % n_vocab;
            lp.logprob = -0.25f * (float)k;
            lp.n_top = r->params.top_logprobs > 0 ? r->params.top_logprobs : 0;
            for (int j = 0; j < lp.n_top; j++) lp.top[j] = (smoe_logprob){(j * 11 + k) % n_vocab, -(float)j};
            int n_lp = r->params.top_logprobs >= 0 ? 1 : 0;
            if (r->api == API_OLLAMA_GENERATE) smoe_tokens_push(&c->gen_ids, lp.id);
            if (cancelled && k == 1) atomic_store(&r->cancelled, true);
            if (atomic_load(&r->cancelled)) continue;
            if (oai) oai_on_text(c, t, strlen(t), &lp, n_lp);
            else olm_on_text(c, t, strlen(t));
        }
        smoe_job_stats st = {0};
        st.n_prompt = st.n_processed = r->prompt.n;
        st.n_generated = n_text;
        st.slot = i;
        st.t_admit_ms = smoe_now_ms();
        st.t_first_ms = n_text ? st.t_admit_ms + 1 : 0;
        st.t_end_ms = st.t_admit_ms + 2;
        st.finish = fin;
        c->st = st;
        c->done = true;
        r->n_done++;
        if (!atomic_load(&r->cancelled) && oai) oai_on_choice_done(c);
    }
    pthread_mutex_lock(&s->mu);
    s->claimed -= r->n;
    pthread_mutex_unlock(&s->mu);
    if (atomic_load(&r->cancelled)) srv_request_write(r, "", 0, true);
    else if (oai) oai_on_done(r);
    else olm_on_done(r);
    check_output(r, atomic_load(&r->cancelled));
    srv_request_unref(r); /* the engine's reference */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int ep = data[0] & 7;
    srv *s = server(data[0] & 8 ? 3 : 1);
    int ending = (data[0] >> 4) & 7;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    srv_reply rep = {0};

    if (ep == 7) { /* GET /v1/models/{id}: the id is outside data too */
        char *id = strndup(body, len);
        FZ_CHECK(id, "oom");
        oai_models(s, id, &rep);
        free(id);
        check_reply(&rep);
        free(rep.body);
        return 0;
    }
    json_error_t je;
    json_t *b = json_loadb(body, len, 0, &je);
    if (!b) return 0;
    if (!json_is_object(b)) { /* http.c answers these itself */
        json_decref(b);
        return 0;
    }
    switch (ep) {
    case 0: oai_chat(s, b, &rep); break;
    case 1: oai_completions(s, b, &rep); break;
    case 2: olm_generate(s, b, &rep); break;
    case 3: olm_chat(s, b, &rep); break;
    case 4: tok_tokenize(s, b, &rep); break;
    case 5: tok_detokenize(s, b, &rep); break;
    default: olm_show(s, b, &rep); break;
    }
    json_decref(b);
    if (rep.gen) {
        FZ_CHECK(!rep.body, "a reply with both a body and a generation");
        play(s, rep.gen, ending);
        srv_request_unref(rep.gen); /* the response's reference */
    } else {
        check_reply(&rep);
        free(rep.body);
    }
    pthread_mutex_lock(&s->mu);
    FZ_CHECK(s->live == 0 && s->n_waiting == 0 && s->claimed == 0, "requests left behind: live %d waiting %d claimed %d",
             (int)s->live, (int)s->n_waiting, (int)s->claimed);
    pthread_mutex_unlock(&s->mu);
    return 0;
}
