/* tokenizer.h - SentencePiece BPE tokenizer (GGUF tokenizer.ggml.model =
 * "llama"), as Mistral and Mixtral use it.
 *
 * Encoding plain text never yields control tokens: "[INST]" typed by a user
 * becomes ordinary text tokens.  Control tokens are spliced in by the chat
 * format code only (see src/chat/).  Decoding is streaming-safe: bytes of an
 * incomplete UTF-8 character are held back until it completes. */
#ifndef SMOE_TOKENIZER_H
#define SMOE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/vocab.h"

typedef struct smoe_tokenizer smoe_tokenizer;

/* Build the lookup structures for v.  v is borrowed and must outlive the
 * tokenizer.  Fails (with err) when v is empty or not a "llama" vocabulary. */
smoe_tokenizer *smoe_tokenizer_new(const smoe_vocab *v, char *err);
void smoe_tokenizer_free(smoe_tokenizer *t);
const smoe_vocab *smoe_tokenizer_vocab(const smoe_tokenizer *t);

/* A growable token list. */
typedef struct smoe_tokens {
    int32_t *ids;
    int32_t n, cap;
} smoe_tokens;
int smoe_tokens_push(smoe_tokens *l, int32_t id);  /* -1 when out of memory */
void smoe_tokens_free(smoe_tokens *l);

/* Append the tokens of text[0..len) to out.  add_space_prefix: prepend the
 * SentencePiece dummy space (normally the vocab's add_space_prefix; chat code
 * encodes segments with it as the reference does).  Invalid UTF-8 is
 * replaced by U+FFFD per invalid sequence (documented in the README); NUL
 * bytes are ordinary characters. */
int smoe_tokenize(const smoe_tokenizer *t, const char *text, size_t len, bool add_space_prefix,
                  smoe_tokens *out, char *err);

/* The raw bytes a token stands for: "▁" becomes a space, byte tokens
 * <0xNN> become that byte, control tokens become nothing.  Returns the
 * number of bytes written to buf (at most 64 needed for any real token;
 * truncated to cap). */
size_t smoe_token_bytes(const smoe_tokenizer *t, int32_t id, char *buf, size_t cap);

/* Streaming detokenizer: feed tokens one at a time, get complete UTF-8. */
typedef struct smoe_detok {
    const smoe_tokenizer *t;
    char pending[8];
    int n_pending;
    bool strip_leading_space; /* drop the dummy-prefix space of the first piece */
    bool at_start;
} smoe_detok;

void smoe_detok_init(smoe_detok *d, const smoe_tokenizer *t, bool strip_leading_space);
/* Append the text of token id to out (NUL-terminated, at most cap-1 bytes;
 * cap >= 80 always suffices).  Returns the number of bytes written.  Bytes
 * that do not yet form a complete character are kept for the next call;
 * sequences that can never become valid are emitted as U+FFFD. */
size_t smoe_detok_push(smoe_detok *d, int32_t id, char *out, size_t cap);
/* End of stream: any held-back bytes come out as U+FFFD. */
size_t smoe_detok_flush(smoe_detok *d, char *out, size_t cap);

#endif
