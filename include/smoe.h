/* smoe.h - the public API of smoe, a Mixtral-family inference engine.
 *
 * A model is loaded once and is read-only afterwards.  Each sequence being
 * generated owns a KV cache (smoe_seq).  A forward call takes a batch of
 * (sequence, position, token) entries, possibly from many sequences, and
 * returns next-token logits for the entries that ask for them.
 *
 * Every function that can fail takes `char *err` pointing to a buffer of
 * SMOE_ERR_SIZE bytes and writes a one-line message there. */
#ifndef SMOE_H
#define SMOE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMOE_ERR_SIZE 512

typedef struct smoe_model smoe_model;
typedef struct smoe_seq smoe_seq;
typedef struct smoe_ctx smoe_ctx;

/* Hyperparameters as read from the file. */
typedef struct smoe_hparams {
    int32_t n_vocab;
    int32_t dim;          /* embedding length */
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim;     /* dim / n_heads */
    int32_t n_rot;        /* rotary dimensions per head */
    int32_t ffn_dim;      /* hidden size of one expert (or the dense FFN) */
    int32_t n_experts;    /* 0 for a dense model */
    int32_t n_experts_used;
    int32_t n_ctx_train;  /* context length the model was trained for */
    float rms_eps;
    float rope_theta;
    bool tied_output;     /* LM head shares the token embedding */
} smoe_hparams;

/* ---------------------------------------------------------------------------
 * Model
 * ------------------------------------------------------------------------- */

/* Map a GGUF file, validate it completely and bind the weights. */
smoe_model *smoe_model_load(const char *path, char *err);
void smoe_model_free(smoe_model *m);
const smoe_hparams *smoe_model_hparams(const smoe_model *m);

/* ---------------------------------------------------------------------------
 * Sequences: one KV cache each
 * ------------------------------------------------------------------------- */

/* The element type of a KV cache.  Attention converts F16 keys and values
 * to float32 as it reads them; the rounding (a relative 2^-11 per element)
 * moves logits by about 1e-4 of their magnitude. */
typedef enum smoe_kv_type {
    SMOE_KV_F16 = 0,    /* IEEE half: half the memory of F32; the default */
    SMOE_KV_F32 = 1,    /* float32: exact, for comparisons with a reference */
} smoe_kv_type;

/* A KV cache for up to n_ctx positions (0 = the model's training length),
 * in F16. */
smoe_seq *smoe_seq_new(const smoe_model *m, int32_t n_ctx, char *err);
/* The same with the element type chosen. */
smoe_seq *smoe_seq_new_typed(const smoe_model *m, int32_t n_ctx, smoe_kv_type type, char *err);
void smoe_seq_free(smoe_seq *s);
int32_t smoe_seq_n_ctx(const smoe_seq *s);
/* Bytes of KV cache one position takes (keys and values of every layer). */
size_t smoe_kv_bytes_per_pos(const smoe_model *m, smoe_kv_type type);

/* ---------------------------------------------------------------------------
 * Forward pass
 * ------------------------------------------------------------------------- */

typedef struct smoe_batch_entry {
    smoe_seq *seq;
    int32_t pos;        /* position in the sequence, 0-based */
    int32_t token;
    bool want_logits;   /* write this entry's logits */
} smoe_batch_entry;

/* Scratch space for batches of up to max_batch entries. */
smoe_ctx *smoe_ctx_new(const smoe_model *m, int32_t max_batch, char *err);
void smoe_ctx_free(smoe_ctx *c);

/* Run the model on n entries.  Entries of one sequence must appear in
 * increasing position order, and every earlier position of that sequence
 * must already be in its cache or earlier in this batch.  Each entry
 * attends to positions 0..pos of its own sequence.  Logits of the entries
 * with want_logits are written to `logits`, n_vocab floats each, in entry
 * order. */
int smoe_forward(smoe_ctx *c, const smoe_batch_entry *entries, int32_t n,
                 float *logits, char *err);

#ifdef __cplusplus
}
#endif

#endif
