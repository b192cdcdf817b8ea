/* synth.h - deterministic synthetic Mixtral models for tests and benchmarks.
 *
 * Real Mixtral weights cannot be shipped with the project, so tests make
 * their own: the real architecture and tensor names, random weights scaled
 * to keep activations well-conditioned, and a real vocabulary when given. */
#ifndef SMOE_SYNTH_H
#define SMOE_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct smoe_synth_opts {
    int32_t dim, n_layers, n_heads, n_kv_heads, ffn_dim;
    int32_t n_experts;          /* 0 = dense model */
    int32_t n_experts_used;
    int32_t n_ctx;
    int32_t vocab_size;         /* built-in vocabulary only: pad up to this */
    float rope_theta, rms_eps;
    uint32_t type;              /* weight type: F32, F16 or BF16 */
    bool split_experts;         /* blk.N.ffn_X.E.weight instead of merged 3-D */
    bool tied_output;           /* no output.weight: LM head = embedding */
    bool identical_experts;     /* every expert gets expert 0's weights */
    bool readable;              /* built-in vocabulary: favour printable ASCII
                                 * in the LM head so random text is legible */
    uint64_t seed;
    const char *vocab_path;     /* .gguf or SentencePiece .model, or NULL */
    const char *name;
} smoe_synth_opts;

/* Fill o from a preset: "tiny", "small" or "bench".  -1 if unknown. */
int smoe_synth_preset(const char *preset, smoe_synth_opts *o);

/* Write the model to path (atomically). */
int smoe_synth_write(const smoe_synth_opts *o, const char *path, char *err);

#endif
