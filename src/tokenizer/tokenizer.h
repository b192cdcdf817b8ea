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

/* Append the tokens of text[0..len) to out, exactly as the reference
 * SentencePiece library encodes it (see tokenizer.c for the steps).
 * add_space_prefix: prepend the SentencePiece dummy space (normally the
 * vocab's add_space_prefix; chat code encodes segments with it as the
 * reference does); empty text gives no tokens either way.  Invalid UTF-8 is
 * replaced as SentencePiece's normaliser does it: every byte that does not
 * begin a well-formed character (bad lead byte, stray continuation byte,
 * overlong form, surrogate, above U+10FFFF, cut short) becomes one U+FFFD,
 * and the bytes after it are looked at afresh.  NUL bytes are ordinary
 * characters.  USER_DEFINED pieces (Mixtral 8x22B's [REFERENCE_DOC_N]) match
 * as whole tokens wherever they appear, as in the reference; CONTROL pieces
 * never do.  On error (out of memory, text over 256 MiB, a character with
 * neither a byte token nor <unk>) out is left as it was. */
int smoe_tokenize(const smoe_tokenizer *t, const char *text, size_t len, bool add_space_prefix,
                  smoe_tokens *out, char *err);

/* The raw bytes a token stands for: "▁" becomes a space, byte tokens
 * <0xNN> become that byte, control tokens (and ids outside the vocabulary)
 * become nothing, <unk> becomes " \u2047 " (" ⁇ ", SentencePiece's text for
 * it).  Returns the number of bytes written to buf, not NUL-terminated (at
 * most 64 needed for any real token; truncated to cap). */
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
 * cap >= smoe_detok_cap(t) always suffices, and that is at most 80 for any
 * real vocabulary).  Returns the number of bytes written.  Bytes of byte
 * tokens that do not yet form a complete character are kept for the next
 * call; bytes that can never start a valid character are emitted as U+FFFD,
 * one per byte, as soon as that is certain.  Any token that is not a byte
 * token ends a run of byte tokens, so held-back bytes then come out as
 * U+FFFD first (SentencePiece decodes each run of byte tokens on its own).
 * Control tokens and ids outside the vocabulary produce no text, <unk>
 * gives " ⁇ ", and "▁" becomes a space.  The output is always valid UTF-8
 * (given a cap that suffices).  With strip_leading_space, when the first
 * token other than control tokens is a piece starting with "▁", that "▁" is
 * dropped, as SentencePiece's decoder does for the dummy prefix. */
size_t smoe_detok_push(smoe_detok *d, int32_t id, char *out, size_t cap);
/* End of stream: any held-back bytes come out as U+FFFD (one per byte). */
size_t smoe_detok_flush(smoe_detok *d, char *out, size_t cap);
/* An output buffer size that always suffices for smoe_detok_push and
 * smoe_detok_flush with this vocabulary (its longest piece plus 10). */
size_t smoe_detok_cap(const smoe_tokenizer *t);

#endif
