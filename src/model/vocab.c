/* vocab.c - freeing a vocabulary and the built-in byte-level vocabulary.
 *
 * Ownership contract shared by every producer of a smoe_vocab (the GGUF and
 * SentencePiece loaders, the built-in table): tokens, token_len, scores and
 * types are separate heap arrays of n_tokens entries, and every tokens[i] is
 * its own heap string (or NULL while a vocab is still being filled), so
 * smoe_vocab_free() can release a half-built vocab on an error path. */
#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"

/* ---------------------------------------------------------------------------
 * Freeing
 * ------------------------------------------------------------------------- */

void smoe_vocab_free(smoe_vocab *v) {
    if (!v) return;
    if (v->tokens) {
        for (int32_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    }
    free(v->tokens);
    free(v->token_len);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------------------
 * Built-in byte vocabulary: what a SentencePiece BPE model with byte fallback
 * holds at ids 0..258, so a model without a tokenizer can still run on raw
 * bytes.
 * ------------------------------------------------------------------------- */

enum { BUILTIN_SPECIALS = 3, BUILTIN_TOKENS = BUILTIN_SPECIALS + 256 };

/* Allocate the four per-token arrays; tokens starts all NULL so that a
 * failure part-way leaves something smoe_vocab_free() can release. */
int smoe_vocab_alloc(smoe_vocab *v, int32_t n, char *err) {
    v->n_tokens = n;
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->token_len = calloc((size_t)n, sizeof *v->token_len);
    v->scores = calloc((size_t)n, sizeof *v->scores);
    v->types = calloc((size_t)n, sizeof *v->types);
    if (!v->tokens || !v->token_len || !v->scores || !v->types)
        return smoe_errf(err, "vocab: out of memory for %d tokens", (int)n);
    return 0;
}

static int set_token(smoe_vocab *v, int32_t id, const char *text, int32_t type,
                     char *err) {
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (!copy) return smoe_errf(err, "vocab: out of memory for token %d", (int)id);
    memcpy(copy, text, len + 1);
    v->tokens[id] = copy;
    v->token_len[id] = (uint32_t)len;
    v->types[id] = type;
    v->scores[id] = 0.0f;
    return 0;
}

static int fill_builtin(smoe_vocab *v, char *err) {
    if (smoe_vocab_alloc(v, BUILTIN_TOKENS, err) < 0) return -1;
    if (set_token(v, 0, "<unk>", SMOE_TOKEN_UNKNOWN, err) < 0) return -1;
    if (set_token(v, 1, "<s>", SMOE_TOKEN_CONTROL, err) < 0) return -1;
    if (set_token(v, 2, "</s>", SMOE_TOKEN_CONTROL, err) < 0) return -1;
    for (int b = 0; b < 256; b++) {
        /* SentencePiece spells byte pieces with two uppercase hex digits. */
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
        if (set_token(v, BUILTIN_SPECIALS + b, name, SMOE_TOKEN_BYTE, err) < 0)
            return -1;
    }
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->pad_id = -1;
    v->add_bos = true;
    v->add_eos = false;
    v->add_space_prefix = true;
    v->byte_fallback = true;
    snprintf(v->model, sizeof v->model, "%s", "llama");
    return 0;
}

int smoe_vocab_builtin_bytes(smoe_vocab *v, char *err) {
    /* Build into a local so that v is either complete or zeroed. */
    smoe_vocab tmp;
    memset(&tmp, 0, sizeof tmp);
    memset(v, 0, sizeof *v);
    if (fill_builtin(&tmp, err) < 0) {
        smoe_vocab_free(&tmp);
        return -1;
    }
    *v = tmp;
    return 0;
}
