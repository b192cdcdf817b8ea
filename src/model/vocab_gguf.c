/* vocab_gguf.c - read a tokenizer vocabulary from GGUF tokenizer.ggml.* keys.
 *
 * Every key's type is checked where it is read: a scores array of int32 is
 * an error, never a reinterpretation. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "model.h"

static int read_special(const gguf_file *f, const char *key, int32_t n, int32_t *out, char *err) {
    int64_t v;
    int r = gguf_get_int(f, key, -1, INT32_MAX, &v, err);
    if (r < 0) return -1;
    if (r == 0) return 0;
    if (v >= n) return smoe_errf(err, "key '%s' is %" PRId64 ", outside the vocabulary of %d tokens", key, v, n);
    *out = (int32_t)v;
    return 0;
}

static int read_tokens(smoe_vocab *v, const gguf_kv *kv, char *err) {
    if (smoe_vocab_alloc(v, v->n_tokens, err)) return -1;
    const uint8_t *cur = kv->arr_data;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        gguf_str s = gguf_next_str(&cur);
        if (s.len > 65535) return smoe_errf(err, "tokenizer.ggml.tokens: token %d is %" PRIu64 " bytes long", i, s.len);
        v->tokens[i] = malloc(s.len + 1);
        if (!v->tokens[i]) return smoe_errf(err, "out of memory");
        memcpy(v->tokens[i], s.p, s.len);
        v->tokens[i][s.len] = 0;
        v->token_len[i] = (uint32_t)s.len;
        v->types[i] = SMOE_TOKEN_NORMAL;
    }
    return 0;
}

static int read_scores_and_types(smoe_vocab *v, const gguf_file *f, char *err) {
    const gguf_kv *kv;
    int r = gguf_get_array(f, "tokenizer.ggml.scores", GGUF_F32, &kv, err);
    if (r < 0) return -1;
    if (r) {
        if (kv->arr_count != (uint64_t)v->n_tokens)
            return smoe_errf(err, "tokenizer.ggml.scores has %" PRIu64 " entries, expected %d (one per token)",
                             kv->arr_count, v->n_tokens);
        for (int32_t i = 0; i < v->n_tokens; i++) {
            v->scores[i] = (float)gguf_arr_f64(kv, (uint64_t)i);
            if (!isfinite(v->scores[i]))
                return smoe_errf(err, "tokenizer.ggml.scores[%d] is not a finite number", i);
        }
    }
    r = gguf_get_array(f, "tokenizer.ggml.token_type", GGUF_I32, &kv, err);
    if (r < 0) return -1;
    if (r) {
        if (kv->arr_count != (uint64_t)v->n_tokens)
            return smoe_errf(err, "tokenizer.ggml.token_type has %" PRIu64 " entries, expected %d (one per token)",
                             kv->arr_count, v->n_tokens);
        for (int32_t i = 0; i < v->n_tokens; i++) {
            int64_t t = gguf_arr_i64(kv, (uint64_t)i);
            if (t < SMOE_TOKEN_NORMAL || t > SMOE_TOKEN_BYTE)
                return smoe_errf(err, "tokenizer.ggml.token_type[%d] is %" PRId64 ", expected 1 to 6", i, t);
            v->types[i] = (int32_t)t;
        }
    }
    return 0;
}

static int read_vocab(smoe_vocab *v, const gguf_file *f, char *err) {
    gguf_str model = {"", 0};
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, err) < 0) return -1;
    snprintf(v->model, sizeof v->model, "%.*s", (int)(model.len < 31 ? model.len : 31), model.p);
    const gguf_kv *kv;
    int r = gguf_get_array(f, "tokenizer.ggml.tokens", GGUF_STRING, &kv, err);
    if (r <= 0) return r;
    if (kv->arr_count == 0 || kv->arr_count > (1u << 22))
        return smoe_errf(err, "tokenizer.ggml.tokens has %" PRIu64 " tokens, expected 1 to 4194304", kv->arr_count);
    v->n_tokens = (int32_t)kv->arr_count;
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
    v->add_bos = true;
    v->add_space_prefix = true;
    if (read_tokens(v, kv, err) || read_scores_and_types(v, f, err) ||
        read_special(f, "tokenizer.ggml.bos_token_id", v->n_tokens, &v->bos_id, err) ||
        read_special(f, "tokenizer.ggml.eos_token_id", v->n_tokens, &v->eos_id, err) ||
        read_special(f, "tokenizer.ggml.unknown_token_id", v->n_tokens, &v->unk_id, err) ||
        read_special(f, "tokenizer.ggml.padding_token_id", v->n_tokens, &v->pad_id, err) ||
        gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos, err) < 0 ||
        gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos, err) < 0 ||
        gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err) < 0)
        return -1;
    for (int32_t i = 0; i < v->n_tokens && !v->byte_fallback; i++)
        v->byte_fallback = v->types[i] == SMOE_TOKEN_BYTE;
    return 0;
}

int smoe_vocab_from_gguf(smoe_vocab *v, const gguf_file *f, char *err) {
    memset(v, 0, sizeof *v);
    if (read_vocab(v, f, err) == 0) return 0;
    smoe_vocab_free(v);
    return -1;
}
