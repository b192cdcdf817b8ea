/* tokenize.c - POST /tokenize and POST /detokenize.
 *
 *   /tokenize   {"content": "text"} -> {"tokens": [ids]}: the text as plain
 *               text (never control tokens), with the vocabulary's dummy
 *               space prefix; "add_special": true puts BOS in front (default
 *               false, as llama.cpp's server); "with_pieces": true gives
 *               [{"id", "piece"}] instead of ids.  Given "messages" (and
 *               "tools") instead of "content": the ids of the chat prompt
 *               that /v1/chat/completions would run, in the model's chat
 *               format.
 *   /detokenize {"tokens": [ids]} -> {"content": "text"}: as the
 *               SentencePiece decoder does it (the dummy-prefix space of the
 *               first piece dropped, control tokens give no text, byte
 *               tokens that do not form UTF-8 become U+FFFD). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenize.h"

#include "../base/common.h"
#include "openai.h"
#include "params.h"
#include "prompt.h"
#include "state.h"
#include "util.h"

static void fail(srv_reply *rep, const char *param, const char *fmt, const char *arg) {
    oai_error(rep, 400, "invalid_request_error", param, "invalid_value", fmt, arg);
}

static json_t *ids_json(srv *s, const smoe_tokens *t, bool pieces) {
    json_t *a = json_array();
    for (int32_t i = 0; i < t->n; i++) {
        if (!pieces) {
            json_array_append_new(a, json_integer(t->ids[i]));
            continue;
        }
        char buf[80];
        size_t n = smoe_token_bytes(s->tok, t->ids[i], buf, sizeof buf);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(t->ids[i]));
        json_object_set_new(o, "piece", srv_json_text(buf, n));
        json_array_append_new(a, o);
    }
    return a;
}

void tok_tokenize(srv *s, json_t *b, srv_reply *rep) {
    srv_perr e = {0};
    bool special = false, pieces = false;
    if (srv_get_bool(b, "add_special", &special, &e) < 0 || srv_get_bool(b, "with_pieces", &pieces, &e) < 0) {
        fail(rep, e.param, "%s", e.msg);
        return;
    }
    smoe_tokens t = {0};
    char err[SMOE_ERR_SIZE];
    const json_t *content = json_object_get(b, "content"), *msgs = json_object_get(b, "messages");
    if (json_is_string(content)) {
        const smoe_vocab *v = smoe_tokenizer_vocab(s->tok);
        if (special && v->bos_id >= 0 && smoe_tokens_push(&t, v->bos_id)) {
            fail(rep, "content", "%s", "out of memory");
            return;
        }
        if (smoe_tokenize(s->tok, json_string_value(content), json_string_length(content), v->add_space_prefix, &t,
                          err)) {
            smoe_tokens_free(&t);
            fail(rep, "content", "%s", err);
            return;
        }
    } else if (json_is_array(msgs)) {
        if (json_array_size(msgs) > (size_t)s->o.max_messages) {
            fail(rep, "messages", "%s", "too many messages");
            return;
        }
        if (srv_render_chat(s, msgs, b, &t, err)) {
            smoe_tokens_free(&t); /* a failed render may have grown it */
            fail(rep, "messages", "%s", err);
            return;
        }
    } else {
        fail(rep, "content", "%s", "give 'content' (a string) or 'messages' (an array)");
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "tokens", ids_json(s, &t, pieces));
    smoe_tokens_free(&t);
    rep->status = 200;
    rep->body = srv_dump(o);
}

void tok_detokenize(srv *s, json_t *b, srv_reply *rep) {
    const json_t *toks = json_object_get(b, "tokens");
    if (!json_is_array(toks)) {
        fail(rep, "tokens", "%s", "'tokens' must be an array of token ids");
        return;
    }
    int32_t n_vocab = smoe_model_hparams(s->model)->n_vocab;
    smoe_detok d;
    smoe_detok_init(&d, s->tok, true);
    size_t cap = smoe_detok_cap(s->tok);
    char *buf = malloc(cap);
    smoe_buf out = {0};
    if (!buf) { oai_error(rep, 500, "server_error", NULL, NULL, "out of memory"); return; }
    size_t i;
    json_t *t;
    json_array_foreach(toks, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= n_vocab) {
            char idx[32];
            snprintf(idx, sizeof idx, "%zu", i);
            free(buf);
            smoe_buf_free(&out);
            fail(rep, "tokens", "tokens[%s] is not a token id of this model", idx);
            return;
        }
        size_t n = smoe_detok_push(&d, (int32_t)json_integer_value(t), buf, cap);
        smoe_buf_add(&out, buf, n);
    }
    size_t n = smoe_detok_flush(&d, buf, cap);
    smoe_buf_add(&out, buf, n);
    free(buf);
    json_t *o = json_object();
    json_object_set_new(o, "content", srv_json_text(out.p ? out.p : "", out.n));
    smoe_buf_free(&out);
    rep->status = 200;
    rep->body = srv_dump(o);
}
