/* model.h - the Mixtral model as loaded: hyperparameters, bound weights,
 * vocabulary.  Internal; the public face is include/smoe.h. */
#ifndef SMOE_MODEL_H
#define SMOE_MODEL_H

#include "smoe.h"
#include "../format/gguf.h"
#include "../kernels/ops.h"
#include "vocab.h"

typedef struct smoe_layer {
    float *attn_norm, *ffn_norm;       /* dim floats each (converted at load) */
    smoe_matrix wq, wk, wv, wo;
    smoe_matrix router;                /* n_experts x dim; unused when dense */
    smoe_matrix *gate, *up, *down;     /* one per expert, or one when dense */
} smoe_layer;

struct smoe_model {
    gguf_file *file;
    smoe_hparams hp;
    smoe_matrix tok_embd;              /* n_vocab rows of dim */
    float *output_norm;
    smoe_matrix output;                /* n_vocab x dim (tok_embd when tied) */
    smoe_layer *layers;
    smoe_vocab vocab;                  /* n_tokens == 0 when the file has none */
};

/* Bind a model from a validated GGUF file; on success the model owns f. */
smoe_model *smoe_model_from_gguf(gguf_file *f, char *err);

/* Parameter counts: all weights, and those read to produce one token (the
 * selected experts, one embedding row, everything else whole). */
void smoe_model_param_counts(const smoe_model *m, uint64_t *total, uint64_t *active);

/* The routing trace hook used by tests: when set, the forward pass reports
 * each (layer, entry, expert) choice. */
typedef void (*smoe_route_fn)(void *user, int32_t layer, int32_t entry,
                              const int32_t *experts, const float *weights, int32_t k);
void smoe_ctx_set_route_trace(smoe_ctx *c, smoe_route_fn fn, void *user);

#endif
