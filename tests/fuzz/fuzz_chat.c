/* fuzz_chat.c - the chat-format renderer (smoe_chat_render) on JSON
 * requests parsed by jansson, with synthetic vocabularies that have the v3
 * control pieces.
 *
 * Input: byte 0 chooses the format (bit 0: v1/v3), JSON_ALLOW_NUL (bit 1)
 * and the vocabulary (bits 2-3); the rest is the request text.  Checked:
 *   - on failure the token list is as it was and the error is one line;
 *   - on success the prompt starts with <s> and holds only ids of the
 *     vocabulary;
 *   - smoe_json_dumps_py() of the parsed value, with and without
 *     ensure_ascii, reads back (jansson) as an equal value, and the
 *     ensure_ascii text is pure ASCII;
 *   - smoe_py_float_repr() of the first 8 bytes as a double reads back as
 *     the same double;
 *   - the request text as a format name or chat template does no harm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat/chat.h"
#include "base/common.h"
#include "fuzz_util.h"
#include "json/pyjson.h"
#include "tokenizer/tokenizer.h"

static const smoe_tokenizer *get_tokenizer(int flavor) {
    static smoe_tokenizer *tok[FZ_VOCAB_COUNT];
    if (!tok[flavor]) {
        char err[SMOE_ERR_SIZE];
        tok[flavor] = smoe_tokenizer_new(fz_vocab(flavor), err);
        FZ_CHECK(tok[flavor], "smoe_tokenizer_new: %s", err);
    }
    return tok[flavor];
}

static void check_dump(const json_t *v) {
    for (int ascii = 0; ascii < 2; ascii++) {
        char err[SMOE_ERR_SIZE];
        size_t len = 0;
        char *s = smoe_json_dumps_py(v, ascii, &len, err);
        if (!s) {
            fz_check_err(err);
            FZ_CHECK(strstr(err, "nested") != NULL, "smoe_json_dumps_py failed: %s", err);
            continue;
        }
        FZ_CHECK(s[len] == 0, "dump not NUL-terminated");
        FZ_CHECK(fz_utf8_valid(s, len), "dump is not valid UTF-8");
        if (ascii)
            for (size_t i = 0; i < len; i++) FZ_CHECK((unsigned char)s[i] < 0x80, "non-ASCII byte in an ASCII dump");
        json_error_t je;
        json_t *back = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        FZ_CHECK(back != NULL, "dump does not parse back (%s at %d): %.200s", je.text, je.position, s);
        FZ_CHECK(json_equal(back, v), "dump parses back to a different value: %.200s", s);
        json_decref(back);
        free(s);
    }
}

static void check_float(const uint8_t *data) {
    double d;
    memcpy(&d, data, sizeof d);
    char buf[32];
    size_t n = smoe_py_float_repr(d, buf);
    FZ_CHECK(n < sizeof buf && buf[n] == 0, "float repr too long");
    if (isfinite(d)) {
        double back = strtod(buf, NULL);
        FZ_CHECK(back == d && signbit(back) == signbit(d), "repr %s of %.17g reads back as %.17g", buf, d, back);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    smoe_chat_format fmt = data[0] & 1 ? SMOE_CHAT_V3 : SMOE_CHAT_V1;
    size_t flags = data[0] & 2 ? JSON_ALLOW_NUL : 0;
    int flavor = ((data[0] >> 2) & 3) % FZ_VOCAB_COUNT;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (size >= 9) check_float(data + 1);

    char *copy = malloc(len + 1); /* NUL-terminated, for the name functions */
    if (!copy) abort();
    memcpy(copy, text, len);
    copy[len] = 0;
    (void)smoe_chat_format_from_name(copy);
    (void)smoe_chat_detect(fz_vocab(flavor), copy);
    free(copy);

    json_error_t je;
    json_t *req = json_loadb(text, len, JSON_DECODE_ANY | flags, &je);
    if (!req) return 0;
    check_dump(req);

    const smoe_tokenizer *t = get_tokenizer(flavor);
    const smoe_vocab *v = fz_vocab(flavor);
    char err[SMOE_ERR_SIZE];
    smoe_tokens out = {0};
    FZ_CHECK(smoe_tokens_push(&out, 777) == 0 && smoe_tokens_push(&out, 778) == 0, "push");
    if (smoe_chat_render(t, fmt, req, &out, err)) {
        fz_check_err(err);
        FZ_CHECK(out.n == 2 && out.ids[0] == 777 && out.ids[1] == 778, "a failed render changed the list");
    } else {
        FZ_CHECK(out.n > 2 && out.ids[2] == v->bos_id, "the prompt does not start with <s>");
        for (int32_t i = 2; i < out.n; i++)
            FZ_CHECK(out.ids[i] >= 0 && out.ids[i] < v->n_tokens, "prompt id %d out of range", (int)out.ids[i]);
    }
    smoe_tokens_free(&out);
    json_decref(req);
    return 0;
}
