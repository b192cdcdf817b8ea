/* fuzz_grammar.c - the grammar engine (src/grammar/grammar.h) and the JSON
 * Schema compiler (json_schema.h) on outside text.
 *
 * Input: byte 0 holds options; the rest is SOURCE, then optionally a NUL
 * byte and a CANDIDATE document.
 *   bit 0    SOURCE is a JSON Schema (else GBNF grammar text)
 *   bits 1-3 schema options: strict, compact, no_leading_space
 *   bit 4    also compute token masks (synthetic vocabulary FZ_VOCAB_BYTES)
 * Checked, beyond no crash/leak/UB:
 *   - failures give a one-line error;
 *   - feeding CANDIDATE: a rejection reports n_ok < n, the first n_ok bytes
 *     are then accepted, and a rejection leaves the matcher unchanged (the
 *     same min_remaining / complete as before);
 *   - complete <=> min_remaining == 0; complete after reset only if the
 *     grammar accepts the empty document;
 *   - for schemas: a document the grammar accepts completely is valid JSON
 *     (jansson, NUL allowed) unless jansson refuses a number's magnitude;
 *   - masks: allowed tokens (except end of sequence; the first 48) are
 *     accepted by a fresh copy of the matcher, and tokens the mask refuses
 *     are refused when fed (the first 16), except byte-less
 *     tokens and <unk>, which are accepted as no text when complete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/common.h"
#include "fuzz_util.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "tokenizer/tokenizer.h"

static const smoe_tokenizer *tokenizer(void) {
    static smoe_tokenizer *t;
    if (!t) {
        char err[SMOE_ERR_SIZE];
        t = smoe_tokenizer_new(fz_vocab(FZ_VOCAB_BYTES), err);
        FZ_CHECK(t, "smoe_tokenizer_new: %s", err);
    }
    return t;
}

static const smoe_gvocab *gvocab(void) {
    static smoe_gvocab *v;
    if (!v) {
        char err[SMOE_ERR_SIZE];
        v = smoe_gvocab_new(tokenizer(), err);
        FZ_CHECK(v, "smoe_gvocab_new: %s", err);
    }
    return v;
}

/* The document fed so far, for replaying it into a fresh matcher. */
typedef struct doc {
    const uint8_t *p;
    size_t n;
} doc;

static smoe_gmatch *replay(smoe_grammar *g, const doc *d) {
    char err[SMOE_ERR_SIZE];
    smoe_gmatch *m = smoe_gmatch_new(g, gvocab(), err);
    if (!m) { fz_check_err(err); return NULL; }
    err[0] = 0;
    if (smoe_gmatch_accept_bytes(m, d->p, d->n, NULL, err)) {
        /* only an internal limit may refuse what the first matcher took */
        fz_check_err(err);
        smoe_gmatch_free(m);
        return NULL;
    }
    return m;
}

static void check_masks(smoe_grammar *g, smoe_gmatch *m, const doc *d) {
    const smoe_gvocab *v = gvocab();
    size_t words = smoe_gvocab_mask_words(v);
    uint64_t *bits = calloc(words, sizeof *bits);
    FZ_CHECK(bits, "oom");
    char err[SMOE_ERR_SIZE];
    int32_t n = smoe_gmatch_mask(m, -1, bits, err);
    if (n < 0) { fz_check_err(err); free(bits); return; }
    const smoe_vocab *voc = fz_vocab(FZ_VOCAB_BYTES);
    int32_t count = 0, refused_checked = 0, allowed_checked = 0;
    for (int32_t id = 0; id < smoe_gvocab_n_tokens(v); id++) {
        bool on = (bits[id / 64] >> (id % 64)) & 1;
        count += on;
        if (id == voc->eos_id) {
            FZ_CHECK(on == smoe_gmatch_complete(m), "eos allowed %d but complete %d", on, smoe_gmatch_complete(m));
            continue;
        }
        /* replaying costs a matcher per token: check a sample */
        if (!on && refused_checked >= 16) continue;
        if (on && allowed_checked >= 48) continue;
        if (!on) refused_checked++;
        else allowed_checked++;
        smoe_gmatch *c = replay(g, d);
        if (!c) continue;
        err[0] = 0;
        int rc = smoe_gmatch_accept_token(c, id, err);
        if (on) FZ_CHECK(rc == 0 || err[0], "token %d allowed by the mask but refused", (int)id);
        else if (rc == 0) {
            /* a byte-less token (control) is accepted only when complete */
            char buf[64];
            size_t nb = smoe_token_bytes(tokenizer(), id, buf, sizeof buf);
            FZ_CHECK(nb == 0 || id == voc->unk_id, "token %d refused by the mask but accepted", (int)id);
        }
        smoe_gmatch_free(c);
    }
    FZ_CHECK(count == n, "mask count %d, bits set %d", (int)n, (int)count);
    /* a budget never allows more than no budget */
    uint64_t *b2 = calloc(words, sizeof *b2);
    FZ_CHECK(b2, "oom");
    int32_t n2 = smoe_gmatch_mask(m, 3, b2, err);
    if (n2 >= 0) {
        for (size_t w = 0; w < words; w++) FZ_CHECK((b2[w] & ~bits[w]) == 0, "budget mask allows more");
    } else fz_check_err(err);
    free(b2);
    free(bits);
}

static void run(smoe_grammar *g, const uint8_t *cand, size_t n, bool schema, bool masks) {
    char err[SMOE_ERR_SIZE];
    smoe_gmatch *m = smoe_gmatch_new(g, masks ? gvocab() : NULL, err);
    if (!m) { fz_check_err(err); return; }
    FZ_CHECK(smoe_gmatch_complete(m) == (smoe_gmatch_min_remaining(m) == 0), "complete vs min_remaining at start");
    if (masks) check_masks(g, m, &(doc){cand, 0});

    /* feed the candidate in two halves, so that a refusal in the second
     * half is checked against a non-initial state */
    size_t half = n / 2, fed = 0;
    for (int part = 0; part < 2; part++) {
        size_t len = part == 0 ? half : n - half;
        uint32_t before = smoe_gmatch_min_remaining(m);
        bool before_complete = smoe_gmatch_complete(m);
        size_t n_ok = (size_t)-1;
        err[0] = 0;
        if (smoe_gmatch_accept_bytes(m, cand + fed, len, &n_ok, err)) {
            if (n_ok == (size_t)-1 || n_ok >= len || err[0]) { /* an internal limit */
                fz_check_err(err);
                break;
            }
            FZ_CHECK(smoe_gmatch_min_remaining(m) == before && smoe_gmatch_complete(m) == before_complete,
                     "a refused feed changed the matcher");
            err[0] = 0;
            if (n_ok && smoe_gmatch_accept_bytes(m, cand + fed, n_ok, NULL, err))
                FZ_CHECK(err[0], "the %zu acceptable bytes were refused", n_ok); /* else a limit */
            fed += n_ok;
            break;
        }
        fed += len;
    }
    bool complete = smoe_gmatch_complete(m);
    FZ_CHECK(complete == (smoe_gmatch_min_remaining(m) == 0), "complete vs min_remaining");
    if (!smoe_gmatch_can_continue(m)) FZ_CHECK(complete, "cannot continue but not complete");
    if (schema && complete && fed > 0) {
        json_error_t je;
        json_t *v = json_loadb((const char *)cand, fed, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        FZ_CHECK(v || strstr(je.text, "too big") || strstr(je.text, "overflow"),
                 "the schema grammar accepted invalid JSON (%s): %.*s", je.text, (int)(fed < 300 ? fed : 300),
                 (const char *)cand);
        json_decref(v);
    }
    if (masks && fed <= 64) check_masks(g, m, &(doc){cand, fed});
    smoe_gmatch_reset(m);
    FZ_CHECK(smoe_gmatch_complete(m) == (smoe_gmatch_min_remaining(m) == 0), "complete after reset");
    smoe_gmatch_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t opt = data[0];
    const uint8_t *src = data + 1;
    size_t rest = size - 1;
    const uint8_t *nul = memchr(src, 0, rest);
    size_t src_len = nul ? (size_t)(nul - src) : rest;
    const uint8_t *cand = nul ? nul + 1 : src + rest;
    size_t cand_len = nul ? rest - src_len - 1 : 0;
    bool schema = opt & 1, masks = opt & 16;

    char err[SMOE_ERR_SIZE];
    smoe_grammar *g = NULL;
    if (schema) {
        json_error_t je;
        json_t *js = json_loadb((const char *)src, src_len, JSON_DECODE_ANY, &je);
        if (!js) return 0;
        smoe_json_schema_opts o = {(opt >> 1) & 1, (opt >> 2) & 1, (opt >> 3) & 1};
        char *text = smoe_json_schema_to_grammar(js, &o, err);
        if (!text) {
            fz_check_err(err);
        } else {
            /* the schema compiler's text must be a grammar the engine takes,
             * unless it is too big */
            g = smoe_grammar_new(text, strlen(text), err);
            if (!g) {
                fz_check_err(err);
                FZ_CHECK(strstr(err, "states") || strstr(err, "too") || strstr(err, "limit") || strstr(err, "never"),
                         "the schema compiler wrote a grammar the engine refuses: %s", err);
            }
            free(text);
        }
        json_decref(js);
    } else {
        g = smoe_grammar_new((const char *)src, src_len, err);
        if (!g) fz_check_err(err);
    }
    if (!g) return 0;
    smoe_grammar_info info;
    smoe_grammar_get_info(g, &info);
    FZ_CHECK(info.n_rules > 0 && info.n_states > 0, "empty grammar compiled");
    run(g, cand, cand_len, schema, masks);
    smoe_grammar_free(g);
    return 0;
}
