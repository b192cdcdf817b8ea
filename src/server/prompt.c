/* prompt.c - the prompt tokens of `smoe serve`'s generation requests (see
 * prompt.h): chat messages through the chat renderer of src/chat/, the
 * prompt of /v1/completions, and Ollama's /api/generate prompt. */
#include "prompt.h"

#include <string.h>

#include "../chat/chat.h"
#include "../base/common.h"
#include "params.h"
#include "state.h"

/* ---------------------------------------------------------------------------
 * Chat messages
 * ------------------------------------------------------------------------- */

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

/* ---------------------------------------------------------------------------
 * /v1/completions
 * ------------------------------------------------------------------------- */

/* The prompt of /v1/completions: a string, an array with one string, an
 * array of token ids, or an array with one array of token ids. */
int srv_completion_prompt(srv *s, const json_t *b, smoe_tokens *out, srv_perr *e) {
    const json_t *p = json_object_get(b, "prompt");
    if (!p || json_is_null(p)) return srv_perr_set(e, "prompt", "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    const smoe_vocab *v = smoe_tokenizer_vocab(s->tok);
    if (json_is_string(p)) {
        char err[SMOE_ERR_SIZE];
        if (v->add_bos && v->bos_id >= 0 && smoe_tokens_push(out, v->bos_id))
            return srv_perr_set(e, "prompt", "out of memory");
        if (smoe_tokenize(s->tok, json_string_value(p), json_string_length(p), v->add_space_prefix, out, err))
            return srv_perr_set(e, "prompt", "%s", err);
    } else if (json_is_array(p)) {
        if (json_array_size(p) == 0) return srv_perr_set(e, "prompt", "'prompt' is empty");
        size_t i;
        json_t *t;
        json_array_foreach(p, i, t) {
            if (!json_is_integer(t))
                return srv_perr_set(e, "prompt",
                                    "'prompt' must be a string or an array of token ids (only one prompt per request)");
            json_int_t id = json_integer_value(t);
            if (id < 0 || id >= smoe_model_hparams(s->model)->n_vocab)
                return srv_perr_set(e, "prompt", "prompt token %lld is outside the vocabulary", (long long)id);
            if (smoe_tokens_push(out, (int32_t)id)) return srv_perr_set(e, "prompt", "out of memory");
        }
    } else return srv_perr_set(e, "prompt", "'prompt' must be a string or an array of token ids");
    if (out->n == 0) return srv_perr_set(e, "prompt", "'prompt' is empty (and this vocabulary adds no BOS token)");
    return 0;
}

/* ---------------------------------------------------------------------------
 * /api/generate
 * ------------------------------------------------------------------------- */

int srv_generate_prompt(srv *s, const json_t *prompt, const json_t *system, const json_t *ctx, bool raw,
                        smoe_tokens *out, srv_perr *e) {
    bool has_ctx = ctx != NULL;
    int32_t n_vocab = smoe_model_hparams(s->model)->n_vocab;
    if (has_ctx) {
        size_t i;
        json_t *t;
        json_array_foreach(ctx, i, t) {
            if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= n_vocab) {
                srv_perr_set(e, "context", "context[%zu] is not a token id of this model", i);
                return -1;
            }
            if (smoe_tokens_push(out, (int32_t)json_integer_value(t))) {
                srv_perr_set(e, "context", "out of memory");
                return -1;
            }
        }
    }
    const char *text = json_is_string(prompt) ? json_string_value(prompt) : "";
    char err[SMOE_ERR_SIZE];
    const smoe_vocab *v = smoe_tokenizer_vocab(s->tok);
    if (raw) {
        if (!has_ctx && v->add_bos && v->bos_id >= 0 && smoe_tokens_push(out, v->bos_id)) {
            srv_perr_set(e, "prompt", "out of memory");
            return -1;
        }
        if (smoe_tokenize(s->tok, text, strlen(text), v->add_space_prefix, out, err)) {
            srv_perr_set(e, "prompt", "%s", err);
            return -1;
        }
    } else if (*text) {
        json_t *msgs = json_array(), *m;
        if (json_is_string(system) && *json_string_value(system)) {
            m = json_object();
            json_object_set_new(m, "role", json_string("system"));
            json_object_set(m, "content", (json_t *)system);
            json_array_append_new(msgs, m);
        }
        m = json_object();
        json_object_set_new(m, "role", json_string("user"));
        json_object_set(m, "content", (json_t *)prompt);
        json_array_append_new(msgs, m);
        smoe_tokens chat = {0};
        int rc = srv_render_chat(s, msgs, NULL, &chat, err);
        json_decref(msgs);
        if (rc) {
            smoe_tokens_free(&chat); /* a failed render may have grown it */
            srv_perr_set(e, "prompt", "%s", err);
            return -1;
        }
        /* after a context, the rendered turn goes on without its BOS */
        int32_t from = has_ctx && chat.n && chat.ids[0] == v->bos_id ? 1 : 0;
        for (int32_t i = from; i < chat.n; i++)
            if (smoe_tokens_push(out, chat.ids[i])) rc = -1;
        smoe_tokens_free(&chat);
        if (rc) { srv_perr_set(e, "prompt", "out of memory"); return -1; }
    }
    return 0;
}
