/* fuzz_util.h - helpers shared by the fuzz targets in tests/fuzz/.
 *
 * The targets are built two ways (see mk/fuzz.mk): with clang and libFuzzer
 * for fuzzing, and with the project's own compiler and flags, linked to
 * replay_main.c, so that `make test` replays the committed corpora and
 * regression inputs without clang. */
#ifndef SMOE_FUZZ_UTIL_H
#define SMOE_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the target checks has failed: print it and abort, which both
 * libFuzzer and the replay driver report as a crash. */
#define FZ_CHECK(cond, ...)                                                                                  \
    do {                                                                                                     \
        if (!(cond)) fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                        \
    } while (0)
_Noreturn void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Strictly well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF); NUL bytes count as characters. */
bool fz_utf8_valid(const char *s, size_t n);

/* An error message as smoe writes them: NUL-terminated within
 * SMOE_ERR_SIZE, one line of valid UTF-8, not empty. */
void fz_check_err(const char *err);

/* Build a tokenizer over v (from a file: anything the loaders accept) and,
 * when it builds, encode a few fixed texts and extra[0..extra_len) with and
 * without the dummy prefix, decode the results and every id of v (and a
 * few outside it) with the streaming decoder: ids in range, output valid
 * UTF-8 within smoe_detok_cap(). */
void fz_exercise_tokenizer(const smoe_vocab *v, const uint8_t *extra, size_t extra_len);

/* Synthetic SentencePiece BPE vocabularies (no files needed):
 *   FZ_VOCAB_BYTES    <unk>, <s>, </s>, the v3 chat control pieces, the 256
 *                     byte tokens, user-defined pieces, and a few hundred
 *                     merge pieces (word prefixes in English, JSON
 *                     punctuation, multi-byte characters, "▁" runs);
 *   FZ_VOCAB_UNUSED   the same with some merge pieces marked UNUSED (which
 *                     turns word cuts off and exercises resegmentation);
 *   FZ_VOCAB_NOBYTES  no byte tokens: unknown characters become <unk>;
 *                     no dummy prefix.
 * Built once on first use and kept for the life of the process. */
enum { FZ_VOCAB_BYTES, FZ_VOCAB_UNUSED, FZ_VOCAB_NOBYTES, FZ_VOCAB_COUNT };
const smoe_vocab *fz_vocab(int flavor);

/* The tiny model of the server targets (dim 32, one layer, two experts
 * routed one at a time, 256 positions, the synthetic vocabulary), written
 * to a temporary file named after tag and loaded; the file is removed once
 * loaded unless *path_out is given (it gets the path; the caller removes
 * it).  Aborts on failure. */
struct smoe_model;
struct smoe_tokenizer;
void fz_tiny_server_model(const char *tag, struct smoe_model **m, struct smoe_tokenizer **tok, char *path_out,
                          size_t path_cap);

#endif
