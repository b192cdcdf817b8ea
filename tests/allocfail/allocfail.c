/* allocfail.c - the allocation-failure sweep, SQLite style: for each
 * operation, for N = 1, 2, 3, ... make the N-th allocation fail and run the
 * operation, until a run completes without reaching an N-th allocation.
 * Built only by `make allocfail` (mk/robust.mk), with ASan + UBSan + LSan
 * and the --wrap'ed allocator of af.c; run by tests/test_allocfail.py.
 *
 *   allocfail [OP...]     every operation, or those named
 *
 * Every run must end in one of two ways: success with the same result as a
 * run without failures (so a failure that was recovered from corrupted
 * nothing), or a clean error: the error return of the API with a one-line
 * message (servers: an error status), nothing leaked (live heap bytes are
 * back to where they were; LSan names the allocation otherwise), no crash.
 * Operations on long-lived objects (a session, a tokenizer) are followed by
 * an unarmed run that must give the reference result, so an injected
 * failure may not leave the object broken.
 *
 * Prints one line per operation ("OP: N failure points, E errors, R
 * recovered") and a total; exit status 1 on the first violation. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "af.h"
#include "chat/chat.h"
#include "base/common.h"
#include "json/jsonmem.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/session.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "model/model.h"
#include "model/synth.h"
#include "server/ollama.h"
#include "server/openai.h"
#include "server/request.h"
#include "server/server.h"
#include "server/tokenize.h"
#include "server/util.h"
#include "smoe.h"
#include "smoe_gen.h"
#include "tokenizer/tokenizer.h"

size_t __sanitizer_get_current_allocated_bytes(void);
int __lsan_do_recoverable_leak_check(void);

/* ---------------------------------------------------------------------------
 * Shared state, built without failures
 * ------------------------------------------------------------------------- */

static char model_path[64];
static smoe_model *model;
static smoe_tokenizer *tok;
static srv *server;

static uint64_t cur_n; /* the failure point being run, for messages */

static _Noreturn void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("allocfail: FAIL (failure point %llu): ", (unsigned long long)cur_n);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    exit(1);
}

#define CHECK(cond, ...) do { if (!(cond)) die(__VA_ARGS__); } while (0)

static void check_err(const char *op, uint64_t n, const char *err) {
    CHECK(err[0] && !strchr(err, '\n') && strlen(err) < SMOE_ERR_SIZE, "%s N=%llu: bad error message '%s'", op,
          (unsigned long long)n, err);
}

/* Each operation returns 0 (result checked against the reference), or -1
 * with err (a clean failure).  A wrong result is a die(). */
typedef int (*op_fn)(char *err);

/* ---------------------------------------------------------------------------
 * Model, tokenizer, generation
 * ------------------------------------------------------------------------- */

static smoe_hparams ref_hp;

static int op_model_load(char *err) {
    smoe_model *m = smoe_model_load(model_path, err);
    if (!m) return -1;
    CHECK(memcmp(smoe_model_hparams(m), &ref_hp, sizeof ref_hp) == 0, "model_load: different hyperparameters");
    smoe_model_free(m);
    return 0;
}

static int op_tokenizer_new(char *err) {
    smoe_tokenizer *t = smoe_tokenizer_new(&model->vocab, err);
    if (!t) return -1;
    smoe_tokenizer_free(t);
    return 0;
}

static const char text[] = "Hello world, this is a test of the tokenizer: caf\xc3\xa9 \xe2\x82\xac 123 \xff end";
static smoe_tokens ref_ids;

static int op_tokenize(char *err) {
    smoe_tokens out = {0};
    if (smoe_tokenize(tok, text, sizeof text - 1, true, &out, err)) {
        CHECK(out.n == 0, "tokenize: a failed call left %d tokens", (int)out.n);
        smoe_tokens_free(&out);
        return -1;
    }
    CHECK(out.n == ref_ids.n && memcmp(out.ids, ref_ids.ids, (size_t)out.n * sizeof *out.ids) == 0,
          "tokenize: different ids");
    smoe_tokens_free(&out);
    return 0;
}

/* A forward pass of 3 tokens on a fresh context and KV cache, then one
 * greedy and one seeded sample. */
static float *ref_logits;
static int32_t ref_greedy, ref_sampled;

static int forward_and_sample(float *logits, int32_t *greedy, int32_t *sampled, char *err) {
    int rc = -1;
    smoe_ctx *c = smoe_ctx_new(model, 4, err);
    smoe_seq *s = c ? smoe_seq_new(model, 16, err) : NULL;
    smoe_sampler *g = NULL, *t = NULL;
    if (!s) goto out;
    smoe_batch_entry e[3] = {{s, 0, 1, false}, {s, 1, 5, false}, {s, 2, 9, true}};
    if (smoe_forward(c, e, 3, logits, err)) goto out;
    int32_t nv = model->hp.n_vocab;
    float *tmp = malloc((size_t)nv * sizeof *tmp);
    if (!tmp) { smoe_errf(err, "out of memory"); goto out; }
    smoe_sampler_params p;
    smoe_sampler_defaults(&p);
    p.temperature = 0;
    if (!(g = smoe_sampler_new(&p, nv, err))) { free(tmp); goto out; }
    memcpy(tmp, logits, (size_t)nv * sizeof *tmp);
    *greedy = smoe_sampler_sample(g, tmp);
    smoe_sampler_defaults(&p);
    p.seed = 42;
    p.repeat_penalty = 1.1f;
    if (!(t = smoe_sampler_new(&p, nv, err))) { free(tmp); goto out; }
    smoe_sampler_accept(t, 5);
    memcpy(tmp, logits, (size_t)nv * sizeof *tmp);
    *sampled = smoe_sampler_sample(t, tmp);
    free(tmp);
    rc = 0;
out:
    smoe_sampler_free(g);
    smoe_sampler_free(t);
    smoe_seq_free(s);
    smoe_ctx_free(c);
    return rc;
}

static int op_forward_sample(char *err) {
    int32_t nv = model->hp.n_vocab, gr = -1, sa = -1;
    float *l = calloc((size_t)nv, sizeof *l);
    if (!l) return smoe_errf(err, "out of memory");
    int rc = forward_and_sample(l, &gr, &sa, err);
    if (rc == 0) {
        CHECK(memcmp(l, ref_logits, (size_t)nv * sizeof *l) == 0, "forward: different logits");
        CHECK(gr == ref_greedy && sa == ref_sampled, "sampler: different tokens");
    }
    free(l);
    return rc;
}

/* Generation through a session (prompt, 4 greedy tokens, streamed text):
 * on a fresh session, and on one long-lived session reset each time. */
typedef struct textbuf { char s[512]; size_t n; } textbuf;
static int emit(void *user, const char *t, size_t len) {
    textbuf *b = user;
    if (b->n + len < sizeof b->s) { memcpy(b->s + b->n, t, len); b->n += len; }
    return 0;
}

static textbuf ref_gen;
static smoe_session *long_session;

static int generate_on(smoe_session *s, textbuf *out, char *err) {
    smoe_gen_params p = {0};
    smoe_sampler_defaults(&p.sampling);
    p.sampling.temperature = 0;
    p.max_tokens = 4;
    smoe_gen_result res;
    memset(out, 0, sizeof *out);
    smoe_tokens prompt = {ref_ids.ids, ref_ids.n < 12 ? ref_ids.n : 12, 0}; /* borrowed */
    return smoe_session_generate(s, &prompt, &p, emit, out, &res, err);
}

static int op_generate(char *err) {
    smoe_session *s = smoe_session_new(model, tok, 64, err);
    if (!s) return -1;
    textbuf b;
    int rc = generate_on(s, &b, err);
    if (rc == 0) CHECK(b.n == ref_gen.n && memcmp(b.s, ref_gen.s, b.n) == 0, "generate: different text");
    smoe_session_free(s);
    return rc;
}

static int op_generate_reused(char *err) {
    smoe_session_reset(long_session);
    textbuf b;
    int rc = generate_on(long_session, &b, err);
    if (rc == 0) CHECK(b.n == ref_gen.n && memcmp(b.s, ref_gen.s, b.n) == 0, "generate (reused): different text");
    return rc;
}

/* after a failure the session must still work */
static void after_generate_reused(void) {
    char err[SMOE_ERR_SIZE];
    smoe_session_reset(long_session);
    textbuf b;
    CHECK(generate_on(long_session, &b, err) == 0, "generate (reused) after a failure: %s", err);
    CHECK(b.n == ref_gen.n && memcmp(b.s, ref_gen.s, b.n) == 0, "generate (reused) after a failure: different text");
}

/* Continuous batching: two jobs side by side through the scheduler (one
 * greedy with logprobs, one sampled with a stop string), their texts
 * against a run without failures. */
typedef struct sched_out { textbuf text; int n_lp; smoe_finish finish; char err[SMOE_ERR_SIZE]; bool done; } sched_out;
static sched_out ref_sched[2];

static void sched_text(void *user, const char *t, size_t len, const smoe_token_lp *lp, int n_lp) {
    sched_out *o = user;
    emit(&o->text, t, len);
    o->n_lp += n_lp;
    (void)lp;
}

static void sched_done(void *user, const smoe_job_stats *st, const char *err) {
    sched_out *o = user;
    o->finish = st->finish;
    o->done = true;
    snprintf(o->err, sizeof o->err, "%s", err);
}

static int run_sched(sched_out out[2], char *err) {
    smoe_sched_opts so = {.n_slots = 2, .n_ctx = 64, .chunk = 8, .kv_type = SMOE_KV_F16};
    smoe_sched *s = smoe_sched_new(model, tok, &so, err);
    if (!s) return -1;
    memset(out, 0, 2 * sizeof *out);
    static const char *const stops[] = {"zzz"};
    smoe_job_params p[2];
    for (int i = 0; i < 2; i++) {
        memset(&p[i], 0, sizeof p[i]);
        smoe_sampler_defaults(&p[i].sampling);
        p[i].max_tokens = 4;
        p[i].top_logprobs = -1;
    }
    p[0].sampling.temperature = 0;
    p[0].top_logprobs = 2;
    p[1].sampling.seed = 7;
    p[1].stop = stops;
    p[1].n_stop = 1;
    smoe_job_events ev = {sched_text, NULL, sched_done};
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        if (!smoe_sched_submit(s, ref_ids.ids, ref_ids.n < 12 ? ref_ids.n - i : 12 - i, &p[i], &ev, &out[i], err)) rc = -1;
    while (rc == 0 && smoe_sched_active(s) > 0)
        if (smoe_sched_step(s, err) < 0) rc = -1;
    smoe_sched_free(s); /* cancels what still runs */
    for (int i = 0; i < 2 && rc == 0; i++)
        if (out[i].finish == SMOE_FINISH_ERROR) rc = smoe_errf(err, "%s", out[i].err);
    return rc;
}

static int op_scheduler(char *err) {
    sched_out out[2];
    int rc = run_sched(out, err);
    for (int i = 0; i < 2 && rc == 0; i++) {
        CHECK(out[i].done && out[i].finish == ref_sched[i].finish, "scheduler: job %d finished differently", i);
        CHECK(out[i].text.n == ref_sched[i].text.n && memcmp(out[i].text.s, ref_sched[i].text.s, out[i].text.n) == 0,
              "scheduler: job %d: different text", i);
        CHECK(out[i].n_lp == ref_sched[i].n_lp, "scheduler: job %d: %d logprob records, not %d", i, out[i].n_lp,
              ref_sched[i].n_lp);
    }
    return rc;
}

/* ---------------------------------------------------------------------------
 * Chat rendering, grammars
 * ------------------------------------------------------------------------- */

static const char chat_req[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"What is the weather?\"}]},"
    " {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"abcdefghi\", \"type\": \"function\","
    "   \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"abcdefghi\", \"content\": \"22\"},"
    " {\"role\": \"user\", \"content\": \"thanks\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\","
    "   \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]}";
/* without tools, for a vocabulary that has no v3 control pieces */
static const char chat_req_plain[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"What is the weather?\"}]},"
    " {\"role\": \"assistant\", \"content\": \"Sunny.\"}, {\"role\": \"user\", \"content\": \"thanks\"}]}";
static const char *chat_text = chat_req;
static smoe_tokens ref_chat;
static int chat_fmt;

/* The request is parsed before the failures are armed, so that every
 * failure point lands in the renderer (parsing is swept by
 * op_request_parse). */
static json_t *chat_json;

static int op_chat_render(char *err) {
    json_t *req = json_incref(chat_json);
    smoe_tokens out = {0};
    int rc = smoe_chat_render(tok, (smoe_chat_format)chat_fmt, req, &out, err);
    json_decref(req);
    if (rc) {
        CHECK(out.n == 0, "chat_render: a failed call left tokens");
    } else {
        CHECK(out.n == ref_chat.n && memcmp(out.ids, ref_chat.ids, (size_t)out.n * sizeof *out.ids) == 0,
              "chat_render: different tokens (%d, reference %d)", (int)out.n, (int)ref_chat.n);
    }
    smoe_tokens_free(&out);
    return rc ? -1 : 0;
}

/* The public API (include/smoe_gen.h): a chat request as JSON to prompt
 * tokens, and text through smoe_generate on a session of its own. */
static textbuf ref_api;

static int api_generate(textbuf *out, char *err) {
    int32_t ids[256];
    const char *fmt = chat_fmt == SMOE_CHAT_V3 ? "v3" : "v1";
    int32_t n = smoe_chat_prompt_json(tok, fmt, chat_text, strlen(chat_text), ids, 256, err);
    if (n < 0) return -1;
    CHECK(n == ref_chat.n && memcmp(ids, ref_chat.ids, (size_t)n * sizeof *ids) == 0, "api: different chat prompt");
    n = smoe_tokenizer_encode(tok, text, sizeof text - 1, false, ids, 256, err);
    if (n < 0) return -1;
    CHECK(n == ref_ids.n && memcmp(ids, ref_ids.ids, (size_t)n * sizeof *ids) == 0, "api: different tokens");
    smoe_session *s = smoe_session_new(model, tok, 64, err);
    if (!s) return -1;
    smoe_gen_settings set;
    smoe_gen_settings_defaults(&set);
    set.temperature = 0;
    set.max_tokens = 4;
    memset(out, 0, sizeof *out);
    smoe_gen_stats st;
    int rc = smoe_generate(s, ids, n < 12 ? n : 12, &set, emit, out, &st, err);
    smoe_session_free(s);
    return rc;
}

static int op_api(char *err) {
    textbuf b;
    int rc = api_generate(&b, err);
    if (rc == 0) CHECK(b.n == ref_api.n && memcmp(b.s, ref_api.s, b.n) == 0, "api: different text");
    return rc;
}

static const char schema_text[] =
    "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"maxLength\": 10},"
    " \"age\": {\"type\": \"integer\", \"minimum\": 0}, \"when\": {\"type\": \"string\", \"format\": \"date\"},"
    " \"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\"]}},"
    " \"code\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{2}-\\\\d+$\"},"
    " \"next\": {\"anyOf\": [{\"$ref\": \"#\"}, {\"type\": \"null\"}]}}, \"required\": [\"name\"]}";
static const char schema_doc[] =
    "{\"name\": \"Bob\", \"age\": 42, \"when\": \"2024-02-29\", \"tags\": [\"a\"], \"code\": \"AB-12\","
    " \"next\": {\"name\": \"x\", \"next\": null}}";
static smoe_gvocab *gvocab;

/* A matcher on g: feed doc (complete), take a mask at the start */
static int match(smoe_grammar *g, const char *doc, char *err) {
    smoe_gmatch *m = smoe_gmatch_new(g, gvocab, err);
    if (!m) return -1;
    int rc = -1;
    size_t words = smoe_gvocab_mask_words(gvocab);
    uint64_t *bits = calloc(words, sizeof *bits);
    if (!bits) { smoe_errf(err, "out of memory"); goto out; }
    if (smoe_gmatch_mask(m, -1, bits, err) < 0) goto out;
    if (smoe_gmatch_accept_bytes(m, doc, strlen(doc), NULL, err)) goto out;
    CHECK(smoe_gmatch_complete(m), "grammar: the document is not complete");
    rc = 0;
out:
    free(bits);
    smoe_gmatch_free(m);
    return rc;
}

static json_t *schema_json;
static char *ref_schema_grammar;

/* The grammar text must be the reference's, byte for byte: a buffer that
 * could not grow may not silently drop a piece of the grammar. */
static int op_schema_text(char *err) {
    smoe_json_schema_opts o = {0};
    char *t = smoe_json_schema_to_grammar(schema_json, &o, err);
    if (!t) return -1;
    CHECK(strcmp(t, ref_schema_grammar) == 0, "json_schema_text: a different grammar:\n%s\nreference:\n%s", t,
          ref_schema_grammar);
    free(t);
    return 0;
}

static int op_schema(char *err) {
    smoe_json_schema_opts o = {0};
    smoe_grammar *g = smoe_json_schema_compile(schema_json, &o, err);
    if (!g) return -1;
    int rc = match(g, schema_doc, err);
    smoe_grammar_free(g);
    return rc;
}

static const char grammar_text[] =
    "root ::= \"[\" items? \"]\"\nitems ::= item (\",\" \" \"? item)*\n"
    "item ::= [a-z]+ | \"'\" [^'\\n]{1,20} \"'\" | num\nnum ::= \"-\"? (\"0\" | [1-9] [0-9]*)\n";

static int op_grammar(char *err) {
    smoe_grammar *g = smoe_grammar_new(grammar_text, sizeof grammar_text - 1, err);
    if (!g) return -1;
    int rc = match(g, "[abc, 'x y', -12,0]", err);
    smoe_grammar_free(g);
    return rc;
}

static int op_gvocab(char *err) {
    smoe_gvocab *v = smoe_gvocab_new(tok, err);
    if (!v) return -1;
    smoe_gvocab_free(v);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Server: request parsing and response building, in process
 * ------------------------------------------------------------------------- */

static const char *const server_bodies[] = {
    "{\"model\": \"af-model\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 8,"
    " \"stop\": [\"x\", \"yy\"], \"logit_bias\": {\"5\": -100}, \"logprobs\": true, \"top_logprobs\": 2}",
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"stream\": true, \"n\": 2,"
    " \"stream_options\": {\"include_usage\": true}}",
    "{\"prompt\": \"Once upon a time\", \"max_tokens\": 4, \"logprobs\": 2, \"stream\": true}",
    "{\"model\": \"af-model\", \"prompt\": \"Why?\", \"stream\": false, \"system\": \"s\", \"options\": {\"num_predict\": 5, \"stop\": [\"a\"]}}",
    "{\"model\": \"af-model:latest\", \"messages\": [{\"role\": \"user\", \"content\": \"hello\"}], \"stream\": true}",
    "{\"content\": \"Hello world\", \"with_pieces\": true}",
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"response_format\": {\"type\": \"json_schema\","
    " \"json_schema\": {\"name\": \"p\", \"schema\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"},"
    " \"b\": {\"enum\": [\"x\", \"y\"]}}, \"required\": [\"a\"]}}}}",
};
static const srv_api server_apis[] = {API_OAI_CHAT, API_OAI_CHAT, API_OAI_COMPLETION, API_OLLAMA_GENERATE,
                                      API_OLLAMA_CHAT, (srv_api)-1, API_OAI_CHAT};
static int server_case;

/* The engine's part (worker.c's event calls), with fixed text. */
static void play(srv_request *r) {
    pthread_mutex_lock(&server->mu);
    server->wait_head = server->wait_tail = NULL;
    server->n_waiting--;
    pthread_mutex_unlock(&server->mu);
    bool oai = r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION;
    if (oai) oai_on_start(r);
    static const char *const pieces[] = {"Hello", ", w\xc3\xb6rld", "\"q\"\n"};
    for (int i = 0; i < r->n; i++) {
        srv_choice *c = &r->choices[i];
        for (int k = 0; k < 3; k++) {
            smoe_token_lp lp = {0};
            lp.id = 5 + k;
            lp.logprob = -0.5f;
            lp.n_top = r->params.top_logprobs > 0 ? r->params.top_logprobs : 0;
            for (int j = 0; j < lp.n_top; j++) lp.top[j] = (smoe_logprob){j + 3, -(float)j};
            if (r->api == API_OLLAMA_GENERATE) smoe_tokens_push(&c->gen_ids, lp.id);
            if (oai) oai_on_text(c, pieces[k], strlen(pieces[k]), &lp, r->params.top_logprobs >= 0);
            else olm_on_text(c, pieces[k], strlen(pieces[k]));
        }
        c->st = (smoe_job_stats){.n_prompt = r->prompt.n, .n_processed = r->prompt.n, .n_generated = 3, .slot = i,
                                 .t_admit_ms = 1, .t_first_ms = 2, .t_end_ms = 3, .finish = SMOE_FINISH_LENGTH};
        c->done = true;
        r->n_done++;
        if (oai) oai_on_choice_done(c);
    }
    pthread_mutex_lock(&server->mu);
    server->claimed -= r->n;
    pthread_mutex_unlock(&server->mu);
    if (oai) oai_on_done(r);
    else olm_on_done(r);
}

static char *ref_out[sizeof server_bodies / sizeof *server_bodies];
/* Successful replies that differ from the reference: a reply built while a
 * jansson allocation failed (json_object_set_new drops the member, and the
 * handlers do not check each call) must be refused by srv_dump, never
 * sent.  Must stay 0. */
static uint64_t degraded;

static json_t *server_json[8];

/* Request parsing as http.c does it (smoe_json_parse): every body of the
 * server sweeps, in turn.  A failure must come back as a clean "out of
 * memory" (jansson's own parser never sees it, see common.c), and a parse
 * that succeeds must give exactly the reference document. */
static int op_request_parse(char *err) {
    for (size_t i = 0; i < sizeof server_bodies / sizeof *server_bodies; i++) {
        json_error_t je;
        bool oom;
        json_t *v = smoe_json_parse(server_bodies[i], strlen(server_bodies[i]), 0, &je, &oom);
        smoe_json_failures_take();
        if (!v) {
            CHECK(oom, "request_parse: body %zu did not parse without a failure: %s", i, je.text);
            return smoe_errf(err, "body %zu: %s", i, je.text);
        }
        bool same = json_equal(v, server_json[i]);
        json_decref(v);
        CHECK(same, "request_parse: body %zu parsed into a different document", i);
    }
    return 0;
}

static int op_server(char *err) {
    srv_api api = server_apis[server_case];
    json_t *b = json_incref(server_json[server_case]);
    srv_reply rep = {0};
    smoe_json_failures_take();   /* as http.c does around a handler */
    switch ((int)api) {
    case API_OAI_CHAT: oai_chat(server, b, &rep); break;
    case API_OAI_COMPLETION: oai_completions(server, b, &rep); break;
    case API_OLLAMA_GENERATE: olm_generate(server, b, &rep); break;
    case API_OLLAMA_CHAT: olm_chat(server, b, &rep); break;
    default: tok_tokenize(server, b, &rep); break;
    }
    json_decref(b);
    if (!rep.gen) {
        /* a reply without a body is sent as a 503 (out of memory) by http.c's send_reply */
        int status = !rep.body ? 503 : rep.status;
        bool ok = status == 200;
        if (ok && (int)api == -1) {
            /* /tokenize answers directly: compare with the reference */
            if (!ref_out[server_case]) ref_out[server_case] = strdup(rep.body);
            else if (strcmp(rep.body, ref_out[server_case]) != 0) degraded++;
        }
        if (!ok) smoe_errf(err, "HTTP %d: %.200s", status, rep.body ? rep.body : "(no body)");
        free(rep.body);
        pthread_mutex_lock(&server->mu);
        CHECK(server->live == 0 && server->n_waiting == 0 && server->claimed == 0,
              "server case %d: a refused request was left behind", server_case);
        pthread_mutex_unlock(&server->mu);
        if (ok) return 0;
        CHECK(status >= 400 && status <= 599, "server case %d: status %d", server_case, status);
        return -1;
    }
    srv_request *r = rep.gen;
    play(r);
    CHECK(r->finished, "server case %d: output not finished", server_case);
    int rc = 0;
    /* A complete response parses: one JSON document, or events / lines
     * that each parse.  An allocation failure while formatting ends the
     * response early (srv_request_write marks it finished): then it need
     * not be complete, and that is the clean error. */
    const char *p = r->out.p ? r->out.p : "";
    bool complete;
    af_pause(true); /* jansson's parser is not the code under test (and crashes on OOM) */
    size_t n = r->out.n;
    if (r->stream) complete = memmem(p, n, "[DONE]", 6) || memmem(p, n, "\"done\":true", 11) || memmem(p, n, "{\"error\":", 9);
    else {
        json_t *v = json_loadb(p, n, JSON_ALLOW_NUL, NULL);
        complete = v != NULL;
        json_decref(v);
    }
    af_pause(false);
    /* a response that ends with an error (out of memory while formatting:
     * srv_request_fail) is a clean error too */
    bool error_end = r->status >= 400 || (r->stream && (memmem(p, n, "data: {\"error\":", 15) ||
                                                       memmem(p, n, "\n{\"error\":", 10) || !strncmp(p, "{\"error\":", 9)));
    if (!complete) rc = smoe_errf(err, "response cut short (%zu bytes)", n);
    else if (error_end) rc = smoe_errf(err, "the response is an error (status %d)", r->status ? r->status : 200);
    srv_request_unref(r);
    srv_request_unref(r);
    /* the server keeps serving: nothing is left queued, claimed or alive */
    pthread_mutex_lock(&server->mu);
    CHECK(server->live == 0 && server->n_waiting == 0 && server->claimed == 0 && !server->wait_head,
          "server case %d: requests left behind (live %d, waiting %d, claimed %d)", server_case, (int)server->live,
          (int)server->n_waiting, (int)server->claimed);
    pthread_mutex_unlock(&server->mu);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The sweep
 * ------------------------------------------------------------------------- */

typedef struct op {
    const char *name;
    op_fn fn;
    void (*after_failure)(void);   /* an unarmed check after each failed run */
} op;

static uint64_t total_points, total_errors;

static void sweep(const char *name, op_fn fn, void (*after)(void)) {
    char err[SMOE_ERR_SIZE];
    /* warm-up: lazily built tables and stdio buffers stay allocated */
    err[0] = 0;
    cur_n = 0;
    CHECK(fn(err) == 0, "%s fails without any injected failure: %s", name, err);
    uint64_t errors = 0, recovered = 0, grown = 0, n;
    for (n = 1;; n++) {
        size_t live = __sanitizer_get_current_allocated_bytes();
        err[0] = 0;
        cur_n = n;
        af_arm(n);
        int rc = fn(err);
        bool fired = af_disarm();
        if (!fired) {
            CHECK(rc == 0, "%s N=%llu: failed without an injected failure: %s", name, (unsigned long long)n, err);
            break;
        }
        if (rc) {
            check_err(name, n, err);
            errors++;
            if (after) after();
        } else recovered++;
        /* more heap in use than before the run: a leak (LSan finds the
         * memory unreachable) fails; memory still reachable is a cache
         * that grew (the server's schema cache after a failed insert, say),
         * counted */
        size_t now = __sanitizer_get_current_allocated_bytes();
        if (now > live) {
            if (__lsan_do_recoverable_leak_check())
                die("%s N=%llu: leaked (%s)", name, (unsigned long long)n, rc ? err : "succeeded");
            grown++;
        }
    }
    printf("%-22s %5llu failure points, %5llu clean errors, %4llu recovered", name, (unsigned long long)(n - 1),
           (unsigned long long)errors, (unsigned long long)recovered);
    if (grown) printf(" (%llu left a cache larger)", (unsigned long long)grown);
    putchar('\n');
    fflush(stdout);
    total_points += n - 1;
    total_errors += errors;
}

/* ---------------------------------------------------------------------------
 * Setup (no failures) and main
 * ------------------------------------------------------------------------- */

static void setup(void) {
    char err[SMOE_ERR_SIZE];
    smoe_synth_opts so;
    CHECK(smoe_synth_preset("tiny", &so) == 0, "preset");
    so.dim = 32; so.n_layers = 2; so.n_heads = 2; so.n_kv_heads = 1; so.ffn_dim = 64;
    so.n_experts = 4; so.n_experts_used = 2; so.n_ctx = 128;
    snprintf(model_path, sizeof model_path, "/tmp/smoe-allocfail-%d.gguf", (int)getpid());
    CHECK(smoe_synth_write(&so, model_path, err) == 0, "synth: %s", err);
    CHECK((model = smoe_model_load(model_path, err)), "load: %s", err);
    ref_hp = *smoe_model_hparams(model);
    CHECK((tok = smoe_tokenizer_new(&model->vocab, err)), "tokenizer: %s", err);
    CHECK(smoe_tokenize(tok, text, sizeof text - 1, true, &ref_ids, err) == 0, "tokenize: %s", err);
    CHECK((ref_logits = calloc((size_t)ref_hp.n_vocab, sizeof *ref_logits)), "oom");
    CHECK(forward_and_sample(ref_logits, &ref_greedy, &ref_sampled, err) == 0, "forward: %s", err);
    CHECK((long_session = smoe_session_new(model, tok, 64, err)), "session: %s", err);
    CHECK(generate_on(long_session, &ref_gen, err) == 0, "generate: %s", err);
    chat_fmt = SMOE_CHAT_V3;
    json_t *req = json_loads(chat_text, 0, NULL);
    if (smoe_chat_render(tok, (smoe_chat_format)chat_fmt, req, &ref_chat, err)) {
        json_decref(req);
        chat_fmt = smoe_chat_detect(&model->vocab, NULL);
        chat_text = chat_req_plain;
        req = json_loads(chat_text, 0, NULL);
        CHECK(req && smoe_chat_render(tok, (smoe_chat_format)chat_fmt, req, &ref_chat, err) == 0, "chat: %s", err);
    }
    chat_json = json_incref(req);
    CHECK(run_sched(ref_sched, err) == 0, "scheduler: %s", err);
    CHECK(api_generate(&ref_api, err) == 0, "api: %s", err);
    for (size_t i = 0; i < sizeof server_bodies / sizeof *server_bodies; i++)
        CHECK((server_json[i] = json_loads(server_bodies[i], 0, NULL)), "server body %zu", i);
    printf("chat format v%d%s\n", chat_fmt, chat_text == chat_req ? " with tools" : " (no tool support in the vocabulary)");
    json_decref(req);
    CHECK((gvocab = smoe_gvocab_new(tok, err)), "gvocab: %s", err);
    CHECK((schema_json = json_loads(schema_text, 0, NULL)), "schema");
    smoe_json_schema_opts so0 = {0};
    CHECK((ref_schema_grammar = smoe_json_schema_to_grammar(schema_json, &so0, err)), "schema: %s", err);

    srv_opts o;
    srv_opts_defaults(&o);
    o.alias = "af-model";
    o.parallel = 2;
    o.n_ctx = 64;
    o.quiet = true;
    CHECK((server = srv_new(&o, err)), "srv_new: %s", err);
    server->model = model;
    server->tok = tok;
    server->chat_format = chat_fmt;
    snprintf(server->model_id, sizeof server->model_id, "af-model");
    snprintf(server->ollama_name, sizeof server->ollama_name, "af-model:latest");
    smoe_sched_opts sched = {o.parallel, o.n_ctx, o.chunk, o.kv_type};
    CHECK((server->sched = smoe_sched_new(model, tok, &sched, err)), "sched: %s", err);
    server->o.n_ctx = smoe_sched_n_ctx(server->sched);
    server->ready = true; /* no engine thread: play() takes its part */
}

static void teardown(void) {
    smoe_sched_free(server->sched);
    server->sched = NULL;
    srv_free(server);
    for (size_t i = 0; i < sizeof ref_out / sizeof *ref_out; i++) free(ref_out[i]);
    smoe_gvocab_free(gvocab);
    json_decref(chat_json);
    json_decref(schema_json);
    free(ref_schema_grammar);
    for (size_t i = 0; i < sizeof server_bodies / sizeof *server_bodies; i++) json_decref(server_json[i]);
    smoe_tokens_free(&ref_chat);
    smoe_session_free(long_session);
    free(ref_logits);
    smoe_tokens_free(&ref_ids);
    smoe_tokenizer_free(tok);
    smoe_model_free(model);
    unlink(model_path);
}

static bool wanted(int argc, char **argv, const char *name) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; i++)
        if (strncmp(name, argv[i], strlen(argv[i])) == 0) return true;
    return false;
}

int main(int argc, char **argv) {
    af_install();
    setup();
    static const op ops[] = {
        {"model_load", op_model_load, NULL},
        {"tokenizer_new", op_tokenizer_new, NULL},
        {"tokenize", op_tokenize, NULL},
        {"forward_sample", op_forward_sample, NULL},
        {"generate", op_generate, NULL},
        {"generate_reused", op_generate_reused, after_generate_reused},
        {"scheduler", op_scheduler, NULL},
        {"chat_render", op_chat_render, NULL},
        {"api_generate", op_api, NULL},
        {"grammar", op_grammar, NULL},
        {"json_schema_text", op_schema_text, NULL},
        {"json_schema", op_schema, NULL},
        {"gvocab", op_gvocab, NULL},
    };
    int n_ops = 0;
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        if (!wanted(argc, argv, ops[i].name)) continue;
        sweep(ops[i].name, ops[i].fn, ops[i].after_failure);
        n_ops++;
    }
    static const char *const server_names[] = {"server_oai_chat", "server_oai_chat_stream", "server_oai_completion",
                                               "server_olm_generate", "server_olm_chat_stream", "server_tokenize",
                                               "server_oai_json_schema"};
    for (int i = 0; i < (int)(sizeof server_names / sizeof *server_names); i++) {
        if (!wanted(argc, argv, server_names[i])) continue;
        server_case = i;
        degraded = 0;
        sweep(server_names[i], op_server, NULL);
        CHECK(degraded == 0, "%s: %llu successful replies differ from the reference", server_names[i],
              (unsigned long long)degraded);
        n_ops++;
    }
    if (wanted(argc, argv, "request_parse")) {
        sweep("request_parse", op_request_parse, NULL);
        n_ops++;
    }
    teardown();
    printf("allocfail: %d operations, %llu failure points, %llu clean errors\n", n_ops,
           (unsigned long long)total_points, (unsigned long long)total_errors);
    return 0;
}
