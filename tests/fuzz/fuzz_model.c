/* fuzz_model.c - model loading through to a forward pass: gguf_parse,
 * smoe_model_from_gguf (hyperparameters, tensor shapes and types, the
 * vocabulary) and, when the model binds and is small, two forward calls on
 * a KV cache of 4 positions (a batch of two entries, then one more).
 *
 * The seeds are tiny valid models (tests/fuzz/make_seeds.py), so mutations
 * land on hyperparameters, shapes, types and weights.  Weights are whatever
 * the bytes say (NaN and infinities included); the point is no crash and no
 * undefined behaviour.  Models whose forward pass would cost more than
 * about 4M multiply-adds are bound but not run, to keep executions fast. */
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "format/gguf.h"
#include "fuzz_util.h"
#include "model/model.h"

#define MAX_MACS 4000000.0

static double forward_cost(const smoe_hparams *hp) {
    double dim = hp->dim, kv = (double)hp->n_kv_heads * hp->head_dim, ffn = hp->ffn_dim;
    double experts = hp->n_experts ? hp->n_experts_used : 1;
    double layer = 2 * dim * dim + 2 * dim * kv + 3 * dim * ffn * experts + dim * hp->n_experts;
    return hp->n_layers * layer + (double)hp->n_vocab * dim;
}

static void run_forward(const smoe_model *m, const uint8_t *data, size_t size) {
    const smoe_hparams *hp = smoe_model_hparams(m);
    char err[SMOE_ERR_SIZE];
    smoe_seq *s = smoe_seq_new(m, 4, err);
    FZ_CHECK(s != NULL, "smoe_seq_new: %s", err);
    smoe_ctx *c = smoe_ctx_new(m, 2, err);
    FZ_CHECK(c != NULL, "smoe_ctx_new: %s", err);
    float *logits = malloc(2 * (size_t)hp->n_vocab * sizeof(float));
    if (!logits) abort();
    int32_t tok[3];
    for (int i = 0; i < 3; i++) tok[i] = size > (size_t)i ? data[size - 1 - (size_t)i] % hp->n_vocab : 0;
    smoe_batch_entry e[2] = {{s, 0, tok[0], true}, {s, 1, tok[1], true}};
    FZ_CHECK(smoe_forward(c, e, 2, logits, err) == 0, "forward: %s", err);
    smoe_batch_entry e2 = {s, 2, tok[2], true};
    FZ_CHECK(smoe_forward(c, &e2, 1, logits, err) == 0, "forward: %s", err);
    /* entries the API must refuse */
    smoe_batch_entry bad[3] = {{s, 9, 0, true}, {s, 0, hp->n_vocab, true}, {s, 0, -1, false}};
    for (int i = 0; i < 3; i++) {
        FZ_CHECK(smoe_forward(c, &bad[i], 1, logits, err) != 0, "bad entry %d accepted", i);
        fz_check_err(err);
    }
    free(logits);
    smoe_ctx_free(c);
    smoe_seq_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[SMOE_ERR_SIZE];
    gguf_file *f = gguf_parse(data, size, err);
    if (!f) {
        fz_check_err(err);
        return 0;
    }
    smoe_model *m = smoe_model_from_gguf(f, err);
    if (!m) {
        fz_check_err(err);
        gguf_close(f);
        return 0;
    }
    const smoe_hparams *hp = smoe_model_hparams(m);
    FZ_CHECK(hp->n_vocab > 0 && hp->dim > 0 && hp->n_layers > 0 && hp->head_dim * hp->n_heads == hp->dim,
             "inconsistent hyperparameters accepted");
    if (forward_cost(hp) <= MAX_MACS) run_forward(m, data, size);
    smoe_model_free(m);
    return 0;
}
