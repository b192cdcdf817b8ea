/* api.c - the public generation API (include/smoe_gen.h): thin wrappers
 * that turn its plain arrays, strings and settings into the engine's own
 * types and check what a caller hands in.  No logic of its own: the
 * tokenizer, the chat renderer and the session loop do the work, exactly as
 * they do for `smoe run`. */
#include "smoe_gen.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "../base/common.h"
#include "../json/jsonmem.h"
#include "../engine/session.h"
#include "../format/gguf.h"
#include "../model/model.h"
#include "../tokenizer/tokenizer.h"

/* Copy a token list into the caller's array, snprintf-style: the count is
 * returned even when it does not fit. */
static int32_t give_tokens(const smoe_tokens *l, int32_t *out, int32_t cap) {
    if (out && cap > 0) memcpy(out, l->ids, (size_t)(l->n < cap ? l->n : cap) * sizeof *out);
    return l->n;
}

/* ---------------------------------------------------------------------------
 * Tokenizer
 * ------------------------------------------------------------------------- */

smoe_tokenizer *smoe_tokenizer_from_model(const smoe_model *m, char *err) {
    if (m->vocab.n_tokens == 0) {
        smoe_errf(err, "the model file has no tokenizer (tokenizer.ggml.tokens); it cannot turn text into tokens");
        return NULL;
    }
    return smoe_tokenizer_new(&m->vocab, err);
}

int32_t smoe_token_bos(const smoe_tokenizer *t) { return smoe_tokenizer_vocab(t)->bos_id; }
int32_t smoe_token_eos(const smoe_tokenizer *t) { return smoe_tokenizer_vocab(t)->eos_id; }

int32_t smoe_tokenizer_encode(const smoe_tokenizer *t, const char *text, size_t len, bool add_bos,
                              int32_t *out, int32_t cap, char *err) {
    const smoe_vocab *v = smoe_tokenizer_vocab(t);
    smoe_tokens l = {0};
    /* the same two steps as `smoe run` without --chat */
    if (add_bos && v->add_bos && v->bos_id >= 0 && smoe_tokens_push(&l, v->bos_id))
        return smoe_errf(err, "out of memory");
    if (len && smoe_tokenize(t, text, len, v->add_space_prefix, &l, err)) { smoe_tokens_free(&l); return -1; }
    int32_t n = give_tokens(&l, out, cap);
    smoe_tokens_free(&l);
    return n;
}

size_t smoe_tokenizer_decode(const smoe_tokenizer *t, const int32_t *ids, int32_t n, bool text_start,
                             char *buf, size_t cap) {
    size_t piece_cap = smoe_detok_cap(t), total = 0;
    char *piece = malloc(piece_cap);
    if (!piece) { if (cap) buf[0] = 0; return 0; }
    smoe_detok d;
    smoe_detok_init(&d, t, text_start);
    for (int32_t i = 0; i <= n; i++) {
        size_t k = i < n ? smoe_detok_push(&d, ids[i], piece, piece_cap) : smoe_detok_flush(&d, piece, piece_cap);
        if (total < cap) memcpy(buf + total, piece, k < cap - total ? k : cap - total);
        total += k;
    }
    free(piece);
    if (cap) buf[total < cap ? total : cap - 1] = 0;
    return total;
}

/* ---------------------------------------------------------------------------
 * Chat prompts
 * ------------------------------------------------------------------------- */

const char *smoe_model_chat_format(const smoe_model *m) {
    /* the template only tips the balance for vocabularies whose [INST] is
     * not a control token; gguf strings are not NUL-terminated */
    gguf_str tmpl;
    char *t = NULL;
    if (gguf_get_str(m->file, "tokenizer.chat_template", &tmpl, NULL) == 1 && (t = malloc(tmpl.len + 1))) {
        memcpy(t, tmpl.p, tmpl.len);
        t[tmpl.len] = 0;
    }
    smoe_chat_format f = smoe_chat_detect(&m->vocab, t);
    free(t);
    return smoe_chat_format_name(f);
}

static int32_t render(const smoe_tokenizer *t, const char *format, const json_t *req, int32_t *out, int32_t cap,
                      char *err) {
    int f = smoe_chat_format_from_name(format);
    if (f < 0) return smoe_errf(err, "chat format '%s' is not v1 or v3", format ? format : "(null)");
    smoe_tokens l = {0};
    if (smoe_chat_render(t, (smoe_chat_format)f, req, &l, err)) {
        smoe_tokens_free(&l); /* a failed render may leave its array allocated */
        return -1;
    }
    int32_t n = give_tokens(&l, out, cap);
    smoe_tokens_free(&l);
    return n;
}

int32_t smoe_chat_prompt(const smoe_tokenizer *t, const char *format, const smoe_chat_msg *msgs, int n_msgs,
                         int32_t *out, int32_t cap, char *err) {
    json_t *req = json_object(), *arr = json_array();
    if (!req || !arr || json_object_set_new(req, "messages", arr)) {
        json_decref(req);
        return smoe_errf(err, "out of memory");
    }
    for (int i = 0; i < n_msgs; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            json_decref(req);
            return smoe_errf(err, "messages[%d]: the %s is NULL", i, msgs[i].role ? "content" : "role");
        }
        /* nocheck: the renderer treats content as bytes, as `smoe run --chat` passes it */
        json_t *m = json_object();
        if (!m || json_array_append_new(arr, m) || json_object_set_new(m, "role", json_string_nocheck(msgs[i].role)) ||
            json_object_set_new(m, "content", json_string_nocheck(msgs[i].content))) {
            json_decref(req);
            return smoe_errf(err, "out of memory");
        }
    }
    int32_t n = render(t, format, req, out, cap, err);
    json_decref(req);
    return n;
}

int32_t smoe_chat_prompt_json(const smoe_tokenizer *t, const char *format, const char *request, size_t len,
                              int32_t *out, int32_t cap, char *err) {
    json_error_t je;
    bool oom = false;
    json_t *req = smoe_json_parse(request, len, 0, &je, &oom);
    if (!req) return oom ? smoe_errf(err, "out of memory") : smoe_errf(err, "request: %s (line %d)", je.text, je.line);
    int32_t n = render(t, format, req, out, cap, err);
    json_decref(req);
    return n;
}

/* ---------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------- */

void smoe_gen_settings_defaults(smoe_gen_settings *s) {
    smoe_sampler_params p;
    smoe_sampler_defaults(&p);
    *s = (smoe_gen_settings){
        .max_tokens = 256, /* `smoe run -n`'s default */
        .temperature = p.temperature,
        .top_k = p.top_k,
        .top_p = p.top_p,
        .min_p = p.min_p,
        .repeat_penalty = p.repeat_penalty,
        .repeat_last_n = p.repeat_last_n,
        .presence_penalty = p.presence_penalty,
        .frequency_penalty = p.frequency_penalty,
        .seed = p.seed,
    };
}

/* The caller's settings as the session's parameters.  The logit biases
 * are copied into *bias (the public and the internal struct are kept
 * apart, so that smoe_gen.h needs no internal header).  The sampler's
 * ranges are checked by the session, before it touches the cache. */
static int to_params(const smoe_gen_settings *set, smoe_gen_params *p, smoe_logit_bias **bias, char *err) {
    if (set->max_tokens < -1)
        return smoe_errf(err, "max_tokens is %d; it must be -1 (no limit) or more", (int)set->max_tokens);
    if (set->n_stop < 0 || (set->n_stop && !set->stop))
        return smoe_errf(err, "stop: n_stop is %d with stop %s", set->n_stop, set->stop ? "set" : "NULL");
    for (int i = 0; i < set->n_stop; i++)
        if (!set->stop[i] || !*set->stop[i])
            return smoe_errf(err, "stop[%d] is %s", i, set->stop[i] ? "empty" : "NULL");
    if (set->n_stop_tokens < 0 || (set->n_stop_tokens && !set->stop_tokens))
        return smoe_errf(err, "stop_tokens: n_stop_tokens is %d with stop_tokens %s", set->n_stop_tokens,
                         set->stop_tokens ? "set" : "NULL");
    if (set->n_bias < 0 || (set->n_bias && !set->bias))
        return smoe_errf(err, "bias: n_bias is %d with bias %s", set->n_bias, set->bias ? "set" : "NULL");
    *p = (smoe_gen_params){
        .sampling = {.temperature = set->temperature, .top_k = set->top_k, .top_p = set->top_p, .min_p = set->min_p,
                     .repeat_penalty = set->repeat_penalty, .repeat_last_n = set->repeat_last_n,
                     .presence_penalty = set->presence_penalty, .frequency_penalty = set->frequency_penalty,
                     .seed = set->seed, .n_bias = set->n_bias},
        .max_tokens = set->max_tokens,
        .stop = set->stop,
        .n_stop = set->n_stop,
        .stop_tokens = set->stop_tokens,
        .n_stop_tokens = set->n_stop_tokens,
    };
    if (set->n_bias) {
        if (!(*bias = malloc((size_t)set->n_bias * sizeof **bias))) return smoe_errf(err, "out of memory");
        for (int i = 0; i < set->n_bias; i++) (*bias)[i] = (smoe_logit_bias){set->bias[i].token, set->bias[i].bias};
        p->sampling.bias = *bias;
    }
    return 0;
}

static int no_text(void *user, const char *text, size_t len) {
    (void)user, (void)text, (void)len;
    return 0;
}

int smoe_generate(smoe_session *s, const int32_t *prompt, int32_t n_prompt, const smoe_gen_settings *set,
                  smoe_text_fn fn, void *user, smoe_gen_stats *stats, char *err) {
    if (n_prompt < 0 || (n_prompt && !prompt))
        return smoe_errf(err, "prompt: n_prompt is %d with prompt %s", (int)n_prompt, prompt ? "set" : "NULL");
    smoe_gen_params p;
    smoe_logit_bias *bias = NULL;
    if (to_params(set, &p, &bias, err)) { free(bias); return -1; }
    /* the session only reads the prompt: a view of the caller's array */
    smoe_tokens pt = {(int32_t *)prompt, n_prompt, n_prompt};
    smoe_gen_result r;
    int rc = smoe_session_generate(s, &pt, &p, fn ? fn : no_text, user, &r, err);
    free(bias);
    if (rc) return -1;
    if (stats) {
        *stats = (smoe_gen_stats){
            .finish = r.finish,
            .n_prompt = r.n_prompt,
            .n_prompt_cached = r.n_prompt - r.n_prompt_processed,
            .n_generated = r.n_generated,
            .prompt_ms = r.prompt_ms,
            .gen_ms = r.gen_ms,
        };
    }
    return 0;
}
