/* vocab.h - a tokenizer vocabulary as model files store it.
 *
 * The same structure is filled from a GGUF file (tokenizer.ggml.* keys),
 * from a SentencePiece .model protobuf, or from the built-in byte-level
 * vocabulary.  Token types use SentencePiece's numbering, which GGUF's
 * tokenizer.ggml.token_type shares. */
#ifndef SMOE_VOCAB_H
#define SMOE_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SMOE_TOKEN_NORMAL = 1,
    SMOE_TOKEN_UNKNOWN = 2,
    SMOE_TOKEN_CONTROL = 3,
    SMOE_TOKEN_USER_DEFINED = 4,
    SMOE_TOKEN_UNUSED = 5,
    SMOE_TOKEN_BYTE = 6,
};

typedef struct smoe_vocab {
    int32_t n_tokens;
    char **tokens;        /* n_tokens NUL-terminated pieces ("▁" = space) */
    uint32_t *token_len;  /* byte length of each piece */
    float *scores;        /* n_tokens scores (merge priority for BPE) */
    int32_t *types;       /* n_tokens SMOE_TOKEN_* values */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    bool add_bos, add_eos;
    bool add_space_prefix; /* SentencePiece "add dummy prefix" */
    bool byte_fallback;
    char model[32];       /* tokenizer kind: "llama" for SentencePiece BPE */
} smoe_vocab;

/* Allocate the per-token arrays for n tokens (pieces all NULL), so that a
 * failure part-way leaves something smoe_vocab_free() can release. */
int smoe_vocab_alloc(smoe_vocab *v, int32_t n, char *err);

/* Release everything a vocab owns and zero it (safe on a zeroed vocab). */
void smoe_vocab_free(smoe_vocab *v);

/* Fill v with the built-in byte-level vocabulary: <unk>, <s>, </s> and the
 * 256 byte tokens <0x00>..<0xFF> (259 tokens). */
int smoe_vocab_builtin_bytes(smoe_vocab *v, char *err);

/* Read the tokenizer.ggml.* keys of a GGUF file.  A file without
 * tokenizer.ggml.tokens leaves v empty and returns 0. */
struct gguf_file;
int smoe_vocab_from_gguf(smoe_vocab *v, const struct gguf_file *f, char *err);

/* Parse a SentencePiece ModelProto (.model file contents). */
int smoe_vocab_from_spm(smoe_vocab *v, const uint8_t *data, size_t size, char *err);

#endif
