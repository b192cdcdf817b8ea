/* smoe_gen.h - text generation through the library: what `smoe run` does,
 * for a program that embeds smoe.
 *
 *   smoe_model      the weights (smoe.h): smoe_model_load, smoe_model_free
 *   smoe_tokenizer  text <-> token ids, and chat prompts in the model's format
 *   smoe_session    one conversation: a KV cache and the tokens in it
 *   smoe_generate   a prompt in, text out through a callback, until a stop
 *
 * A minimal program (examples/generate.c is a complete one):
 *
 *   char err[SMOE_ERR_SIZE];
 *   smoe_model *m = smoe_model_load("model.gguf", err);
 *   smoe_tokenizer *tok = smoe_tokenizer_from_model(m, err);
 *   smoe_session *s = smoe_session_new(m, tok, 0, err);
 *   int32_t ids[4096];
 *   int32_t n = smoe_tokenizer_encode(tok, "Once upon", 9, true, ids, 4096, err);
 *   smoe_gen_settings set;
 *   smoe_gen_settings_defaults(&set);          (then change what you need)
 *   smoe_gen_stats st;
 *   smoe_generate(s, ids, n, &set, print_text, NULL, &st, err);
 *   smoe_session_free(s); smoe_tokenizer_free(tok); smoe_model_free(m);
 *
 * Errors: as in smoe.h, a call that can fail takes char err[SMOE_ERR_SIZE],
 * writes one line there and returns -1 (or NULL).  Nothing here prints.
 *
 * Ownership: every handle is freed by its own _free function (NULL is
 * accepted and ignored).  Handles borrow what they were made from: a
 * tokenizer borrows its model, a session its model and tokenizer; free in
 * the reverse order of creation.  Strings and arrays passed in are only read
 * during the call: no pointer to them is kept.
 *
 * Threads: a model and a tokenizer are read-only once made and may be used
 * by any number of threads at once (each with its own sessions).  A session
 * is used by one thread at a time.  One smoe_generate call runs the model
 * with OpenMP threads (all cores; OMP_NUM_THREADS sets how many). */
#ifndef SMOE_GEN_H
#define SMOE_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smoe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct smoe_tokenizer smoe_tokenizer;
typedef struct smoe_session smoe_session;

/* ---------------------------------------------------------------------------
 * Tokenizer
 * ------------------------------------------------------------------------- */

/* The model's SentencePiece tokenizer.  Fails when the file has no
 * vocabulary (tokenizer.ggml.tokens) or one of another kind. */
smoe_tokenizer *smoe_tokenizer_from_model(const smoe_model *m, char *err);
void smoe_tokenizer_free(smoe_tokenizer *t);

/* Special token ids, -1 when the vocabulary has none. */
int32_t smoe_token_bos(const smoe_tokenizer *t);
int32_t smoe_token_eos(const smoe_tokenizer *t);

/* Token ids of text[0..len) (any bytes; invalid UTF-8 becomes U+FFFD), as
 * the reference SentencePiece encodes it.  add_bos: start with the BOS token
 * when the vocabulary asks for one, as `smoe run` does with a plain prompt.
 * Writes at most cap ids to out and returns how many the text has (more
 * than cap: call again with a larger out; out may be NULL when cap is 0),
 * or -1 with err (out of memory, text over 256 MiB). */
int32_t smoe_tokenizer_encode(const smoe_tokenizer *t, const char *text, size_t len, bool add_bos,
                              int32_t *out, int32_t cap, char *err);

/* The text of ids[0..n), as UTF-8 (control tokens give nothing, invalid
 * byte sequences U+FFFD).  text_start: the ids begin a text (as encode
 * gives them), so the space SentencePiece put in front of the first word is
 * dropped; false for a continuation such as generated tokens, whose leading
 * space is real.  Like snprintf: writes at most cap-1 bytes and a NUL to buf
 * (when cap > 0) and returns the length of the whole text (0 and an empty
 * buf when out of memory). */
size_t smoe_tokenizer_decode(const smoe_tokenizer *t, const int32_t *ids, int32_t n, bool text_start,
                             char *buf, size_t cap);

/* ---------------------------------------------------------------------------
 * Chat prompts
 * ------------------------------------------------------------------------- */

/* The model's chat format, "v1" (Mixtral 8x7B Instruct: plain-text
 * [INST] brackets) or "v3" (Mixtral 8x22B: control tokens), detected from
 * its vocabulary and chat template as `smoe run --chat` does. */
const char *smoe_model_chat_format(const smoe_model *m);

typedef struct smoe_chat_msg {
    const char *role;       /* "system", "user", "assistant" */
    const char *content;    /* UTF-8, NUL-terminated */
} smoe_chat_msg;

/* The prompt tokens of a conversation in chat format `format` ("v1", "v3"
 * or another name smoe accepts: "mistral-v3", "mixtral-8x22b", ...; pass
 * smoe_model_chat_format(m) for the model's own), ending ready for the
 * assistant's answer.  The conversation ends with a user message; system
 * messages go where the format puts them.  Returns the count and fills out
 * as smoe_tokenizer_encode does, or -1 with err naming the bad message. */
int32_t smoe_chat_prompt(const smoe_tokenizer *t, const char *format, const smoe_chat_msg *msgs, int n_msgs,
                         int32_t *out, int32_t cap, char *err);

/* The same from an OpenAI-shaped request as JSON text: {"messages": [...],
 * "tools": [...]}, with tool calls and tool results (src/chat/chat.h
 * documents the rendering and every check).  Other keys are ignored. */
int32_t smoe_chat_prompt_json(const smoe_tokenizer *t, const char *format, const char *request, size_t len,
                              int32_t *out, int32_t cap, char *err);

/* ---------------------------------------------------------------------------
 * Sessions and generation
 * ------------------------------------------------------------------------- */

/* A conversation with a KV cache of n_ctx positions (0: the model's
 * training context, at most 4096, as `smoe run` without --ctx). */
smoe_session *smoe_session_new(const smoe_model *m, const smoe_tokenizer *tok, int32_t n_ctx, char *err);
void smoe_session_free(smoe_session *s);
int32_t smoe_session_n_ctx(const smoe_session *s);
/* Forget the cached tokens: the next prompt is processed whole. */
void smoe_session_reset(smoe_session *s);

typedef struct smoe_token_bias {
    int32_t token;
    float bias;             /* added to the token's logit; -INFINITY bans it */
} smoe_token_bias;

/* How to generate.  Always start from smoe_gen_settings_defaults() and
 * change fields: new fields are added with a default that keeps today's
 * behaviour.  The defaults are `smoe run`'s; the ranges are checked by
 * smoe_generate, nothing is clamped silently.  Sampling order: logit bias,
 * penalties, then greedy when temperature is 0, else top-k, top-p, min-p,
 * temperature and one draw.  The same settings and seed give the same text. */
typedef struct smoe_gen_settings {
    int32_t max_tokens;          /* 256; -1 = until the context is full */
    float temperature;           /* 0.8; 0 = greedy; 0..100 */
    int32_t top_k;               /* 40; 0 = off */
    float top_p;                 /* 0.95; 1 = off; (0, 1] */
    float min_p;                 /* 0.05; 0 = off; [0, 1] */
    float repeat_penalty;        /* 1 = off; (0, 10] */
    int32_t repeat_last_n;       /* 64: window of the penalties; 0 = off, -1 = all */
    float presence_penalty;      /* 0; -2..2 */
    float frequency_penalty;     /* 0; -2..2 */
    uint64_t seed;               /* 0 */
    const char *const *stop;     /* n_stop non-empty strings: the text ends before one */
    int n_stop;
    const int32_t *stop_tokens;  /* n_stop_tokens ids that end generation, besides EOS */
    int n_stop_tokens;
    const smoe_token_bias *bias; /* n_bias logit biases */
    int n_bias;
} smoe_gen_settings;

void smoe_gen_settings_defaults(smoe_gen_settings *s);

/* Receives the answer as it is generated: UTF-8 bytes, never any part of
 * a stop string (text that could become one is held back until it cannot).
 * Return non-zero to stop generation (finish SMOE_FINISH_CANCEL). */
typedef int (*smoe_text_fn)(void *user, const char *text, size_t len);

/* How a generation ended: smoe's one list, for the library, the CLI and
 * the server alike. */
typedef enum smoe_finish {
    SMOE_FINISH_STOP,    /* end-of-sequence, a stop token or a stop string (or a constrained document complete) */
    SMOE_FINISH_LENGTH,  /* max_tokens reached, or the context is full */
    SMOE_FINISH_CANCEL,  /* the callback returned non-zero (in the server: the client left) */
    SMOE_FINISH_ERROR,   /* generation failed (smoe_generate returns -1 then) */
} smoe_finish;

/* "stop", "length", "cancel", "error". */
const char *smoe_finish_name(smoe_finish f);

typedef struct smoe_gen_stats {
    smoe_finish finish;
    int32_t n_prompt;            /* prompt tokens */
    int32_t n_prompt_cached;     /* of which reused from the session's cache */
    int32_t n_generated;         /* tokens generated (a final EOS not counted) */
    double prompt_ms, gen_ms;    /* wall time of the prompt and of generation */
} smoe_gen_stats;

/* Run prompt[0..n_prompt) through the model, then sample up to max_tokens
 * tokens, passing their text to fn (may be NULL) as it becomes final.
 * The prompt is taken as given (encode it with add_bos, or render a chat);
 * when it starts with the tokens already in the session's cache, only the
 * rest is processed, and the generated tokens join the cache: a chat that
 * appends turns to the same prompt costs only the new turn.  stats (may be
 * NULL) is filled on success.  Returns 0, or -1 with err: a setting out of
 * range (the message names it), a token outside the vocabulary, a prompt
 * that leaves no room in the context, out of memory. */
int smoe_generate(smoe_session *s, const int32_t *prompt, int32_t n_prompt, const smoe_gen_settings *set,
                  smoe_text_fn fn, void *user, smoe_gen_stats *stats, char *err);

#ifdef __cplusplus
}
#endif

#endif
