/* fuzz_spm.c - the SentencePiece .model reader (smoe_vocab_from_spm) on
 * arbitrary bytes, and, when it accepts them, a tokenizer over the result.
 *
 * Checked: on failure the vocabulary is left zeroed and the error is one
 * line; on success every piece is non-empty, NUL-free, well-formed UTF-8
 * of its recorded length, types, scores and special ids are in range; a
 * "llama" (BPE) vocabulary gives a tokenizer that encodes a few texts into
 * ids of the vocabulary and decodes any id sequence to valid UTF-8. */
#include <math.h>
#include <string.h>

#include "chat/chat.h"
#include "base/common.h"
#include "fuzz_util.h"

static void check_vocab(const smoe_vocab *v) {
    FZ_CHECK(v->n_tokens > 0, "accepted a vocabulary without pieces");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const char *s = v->tokens[i];
        FZ_CHECK(s != NULL, "piece %d missing", (int)i);
        FZ_CHECK(v->token_len[i] > 0 && strlen(s) == v->token_len[i], "piece %d: length %u, strlen %zu", (int)i,
                 v->token_len[i], strlen(s));
        FZ_CHECK(fz_utf8_valid(s, v->token_len[i]), "piece %d is not valid UTF-8", (int)i);
        FZ_CHECK(v->types[i] >= SMOE_TOKEN_NORMAL && v->types[i] <= SMOE_TOKEN_BYTE, "piece %d type %d", (int)i,
                 (int)v->types[i]);
        FZ_CHECK(isfinite(v->scores[i]), "piece %d score not finite", (int)i);
    }
    const int32_t special[] = {v->bos_id, v->eos_id, v->unk_id, v->pad_id};
    for (size_t k = 0; k < 4; k++)
        FZ_CHECK(special[k] >= -1 && special[k] < v->n_tokens, "special id %d out of range", (int)special[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[SMOE_ERR_SIZE];
    smoe_vocab v, zero;
    memset(&v, 0xAB, sizeof v);
    memset(&zero, 0, sizeof zero);
    if (smoe_vocab_from_spm(&v, data, size, err)) {
        fz_check_err(err);
        FZ_CHECK(memcmp(&v, &zero, sizeof v) == 0, "failed parse left the vocabulary non-zero");
        return 0;
    }
    check_vocab(&v);
    (void)smoe_chat_detect(&v, NULL);
    if (strcmp(v.model, "llama") == 0) fz_exercise_tokenizer(&v, data, size > 256 ? 256 : size);
    smoe_vocab_free(&v);
    return 0;
}
