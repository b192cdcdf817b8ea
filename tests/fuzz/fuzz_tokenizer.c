/* fuzz_tokenizer.c - SentencePiece BPE encode and streaming decode on
 * arbitrary bytes, with fixed synthetic vocabularies (tests/fuzz/fuzz_util.c).
 *
 * Input: byte 0 chooses the vocabulary (bits 0-1) and the dummy prefix
 * (bit 2); the rest is the text.  Checked:
 *   - encoding never fails and yields only ids of the vocabulary, never a
 *     control id;
 *   - with byte fallback, decode(encode(s)) == s after the documented
 *     normalisation (each byte that does not begin a well-formed character
 *     becomes U+FFFD, U+2581 becomes a space);
 *   - without UNUSED pieces, the ids equal those of a plain quadratic BPE
 *     written here from the description in tokenizer.c (texts up to 512
 *     bytes), which checks the heap and the word cuts;
 *   - the streaming decoder's output is valid UTF-8 chunk by chunk, and the
 *     same with smoe_detok_cap() bytes of room as with plenty;
 *   - the rest read as 16-bit ids (valid, control, byte, out of range) and
 *     decoded the same way gives valid UTF-8 too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

#define SP "\xe2\x96\x81"

static smoe_tokenizer *tokenizers[FZ_VOCAB_COUNT];

static const smoe_tokenizer *get_tokenizer(int flavor) {
    if (!tokenizers[flavor]) {
        char err[SMOE_ERR_SIZE];
        tokenizers[flavor] = smoe_tokenizer_new(fz_vocab(flavor), err);
        FZ_CHECK(tokenizers[flavor], "smoe_tokenizer_new: %s", err);
    }
    return tokenizers[flavor];
}

/* ---------------------------------------------------------------------------
 * Growable byte buffer
 * ------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* Length of the well-formed UTF-8 character at s (n > 0 bytes), else 0. */
static size_t char_len(const uint8_t *s, size_t n) {
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 :
                 s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    return fz_utf8_valid((const char *)s, len) ? len : 0;
}

/* ---------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

/* Decode ids with a given output room; every chunk must be valid UTF-8. */
static void decode(const smoe_tokenizer *t, const int32_t *ids, int32_t n, bool strip, size_t cap, bytes *out) {
    smoe_detok d;
    smoe_detok_init(&d, t, strip);
    char *buf = malloc(cap);
    if (!buf) abort();
    for (int32_t i = 0; i <= n; i++) {
        size_t w = i < n ? smoe_detok_push(&d, ids[i], buf, cap) : smoe_detok_flush(&d, buf, cap);
        FZ_CHECK(w < cap, "detok wrote %zu bytes with room for %zu", w, cap);
        FZ_CHECK(buf[w] == 0, "detok output not NUL-terminated");
        FZ_CHECK(fz_utf8_valid(buf, w), "detok chunk %d (id %d) is not valid UTF-8", (int)i, i < n ? (int)ids[i] : -1);
        put(out, buf, w);
    }
    free(buf);
}

static void decode_both(const smoe_tokenizer *t, const int32_t *ids, int32_t n, bool strip, bytes *out) {
    bytes big = {0};
    decode(t, ids, n, strip, smoe_detok_cap(t), out);
    decode(t, ids, n, strip, 4096, &big);
    FZ_CHECK(out->n == big.n && (big.n == 0 || memcmp(out->p, big.p, big.n) == 0),
             "output with smoe_detok_cap() room (%zu bytes) differs from output with plenty (%zu bytes)", out->n,
             big.n);
    free(big.p);
    for (int32_t i = 0; i < n; i++) {
        char tb[64];
        size_t w = smoe_token_bytes(t, ids[i], tb, sizeof tb);
        FZ_CHECK(w <= sizeof tb, "smoe_token_bytes overran");
    }
}

/* ---------------------------------------------------------------------------
 * A plain quadratic BPE for comparison (vocabularies without UNUSED pieces)
 * ------------------------------------------------------------------------- */

static bool mergeable(int32_t type) {
    return type == SMOE_TOKEN_NORMAL || type == SMOE_TOKEN_USER_DEFINED || type == SMOE_TOKEN_UNUSED;
}

/* First mergeable piece with exactly these bytes, or -1: a linear scan
 * over the pieces of that length (indexed once per vocabulary). */
#define MAX_LEN 64
typedef struct {
    const smoe_vocab *v;
    int32_t *ids[MAX_LEN + 1]; /* mergeable ids by byte length, in id order */
    int32_t n[MAX_LEN + 1];
    int32_t byte_id[256];
} piece_index;

static const piece_index *get_index(const smoe_vocab *v) {
    static piece_index idx[FZ_VOCAB_COUNT];
    for (int k = 0; k < FZ_VOCAB_COUNT; k++) {
        piece_index *p = &idx[k];
        if (p->v == v) return p;
        if (p->v) continue;
        p->v = v;
        for (int b = 0; b < 256; b++) p->byte_id[b] = -1;
        for (int32_t i = 0; i < v->n_tokens; i++) {
            uint32_t l = v->token_len[i];
            if (v->types[i] == SMOE_TOKEN_BYTE && l == 6 && strncmp(v->tokens[i], "<0x", 3) == 0) {
                int b = (int)strtol(v->tokens[i] + 3, NULL, 16);
                if (p->byte_id[b] < 0) p->byte_id[b] = i;
            }
            if (!mergeable(v->types[i]) || l == 0 || l > MAX_LEN) continue;
            p->ids[l] = realloc(p->ids[l], ((size_t)p->n[l] + 1) * sizeof(int32_t));
            if (!p->ids[l]) abort();
            p->ids[l][p->n[l]++] = i;
        }
        return p;
    }
    abort();
}

static int32_t find(const smoe_vocab *v, const uint8_t *s, size_t n) {
    const piece_index *p = get_index(v);
    if (n == 0 || n > MAX_LEN) return -1;
    for (int32_t k = 0; k < p->n[n]; k++)
        if (memcmp(v->tokens[p->ids[n][k]], s, n) == 0) return p->ids[n][k];
    return -1;
}

typedef struct {
    size_t start, len;
    bool freeze;
    int32_t piece; /* id of the merged pair with the next symbol, -1 if none */
} nsym;

static void naive_pair(const smoe_vocab *v, const uint8_t *text, nsym *s, size_t i, size_t n) {
    s[i].piece = -1;
    if (i + 1 >= n || s[i].freeze || s[i + 1].freeze) return;
    s[i].piece = find(v, text + s[i].start, s[i].len + s[i + 1].len);
}

static void naive_encode(const smoe_vocab *v, const uint8_t *in, size_t len, bool prefix, int32_t **ids_out,
                         int32_t *n_out) {
    /* normalise */
    bytes norm = {0};
    if (prefix && len > 0) put(&norm, SP, 3); /* never for empty text */
    for (size_t i = 0; i < len;) {
        size_t c = char_len(in + i, len - i);
        if (c == 0) put(&norm, "\xef\xbf\xbd", 3), i++;
        else if (in[i] == ' ') put(&norm, SP, 3), i++;
        else put(&norm, in + i, c), i += c;
    }
    const uint8_t *text = (const uint8_t *)norm.p;
    /* symbols */
    nsym *s = malloc((norm.n + 1) * sizeof *s);
    if (!s) abort();
    size_t n = 0;
    for (size_t p = 0; p < norm.n;) {
        size_t best = 0;
        for (int32_t i = 0; i < v->n_tokens; i++)
            if (v->types[i] == SMOE_TOKEN_USER_DEFINED && v->token_len[i] > best && v->token_len[i] <= norm.n - p &&
                memcmp(v->tokens[i], text + p, v->token_len[i]) == 0)
                best = v->token_len[i];
        size_t l = best ? best : char_len(text + p, norm.n - p);
        s[n++] = (nsym){p, l, best > 0, -1};
        p += l;
    }
    for (size_t i = 0; i < n; i++) naive_pair(v, text, s, i, n);
    /* merge the best pair (leftmost on ties) until none is left */
    for (;;) {
        size_t best = n;
        for (size_t i = 0; i + 1 < n; i++)
            if (s[i].piece >= 0 && (best == n || v->scores[s[i].piece] > v->scores[s[best].piece])) best = i;
        if (best == n) break;
        s[best].len += s[best + 1].len;
        memmove(s + best + 1, s + best + 2, (n - best - 2) * sizeof *s);
        n--;
        naive_pair(v, text, s, best, n);
        if (best > 0) naive_pair(v, text, s, best - 1, n);
    }
    /* emit */
    int32_t *ids = malloc((norm.n * 1 + 1) * sizeof *ids);
    if (!ids) abort();
    int32_t k = 0;
    bool prev_unk = false;
    for (size_t i = 0; i < n; i++) {
        int32_t id = find(v, text + s[i].start, s[i].len);
        if (id >= 0) {
            ids[k++] = id;
            prev_unk = false;
        } else if (v->byte_fallback) {
            for (size_t b = 0; b < s[i].len; b++) {
                int32_t bid = get_index(v)->byte_id[text[s[i].start + b]];
                ids[k++] = bid >= 0 ? bid : v->unk_id;
            }
            prev_unk = false;
        } else if (!prev_unk) {
            ids[k++] = v->unk_id;
            prev_unk = true;
        }
    }
    free(s);
    free(norm.p);
    *ids_out = ids;
    *n_out = k;
}

/* ---------------------------------------------------------------------------
 * The target
 * ------------------------------------------------------------------------- */

/* What decode(encode(text)) must give with byte fallback. */
static void expected_text(const uint8_t *in, size_t len, bytes *out) {
    for (size_t i = 0; i < len;) {
        size_t c = char_len(in + i, len - i);
        if (c == 0) put(out, "\xef\xbf\xbd", 3), i++;
        else if (c == 3 && memcmp(in + i, SP, 3) == 0) put(out, " ", 1), i += 3;
        else put(out, in + i, c), i += c;
    }
}

static void check_encode(int flavor, bool prefix, const uint8_t *text, size_t len) {
    const smoe_tokenizer *t = get_tokenizer(flavor);
    const smoe_vocab *v = fz_vocab(flavor);
    char err[SMOE_ERR_SIZE];
    smoe_tokens out = {0};
    FZ_CHECK(smoe_tokens_push(&out, 12345) == 0, "push");
    int rc = smoe_tokenize(t, (const char *)text, len, prefix, &out, err);
    FZ_CHECK(rc == 0, "smoe_tokenize failed: %s", err);
    FZ_CHECK(out.ids[0] == 12345, "earlier ids in the list were changed");
    const int32_t *ids = out.ids + 1;
    int32_t n = out.n - 1;
    FZ_CHECK(len > 0 || n == 0, "empty text gave %d tokens", (int)n);
    for (int32_t i = 0; i < n; i++) {
        FZ_CHECK(ids[i] >= 0 && ids[i] < v->n_tokens, "id %d out of range", (int)ids[i]);
        FZ_CHECK(v->types[ids[i]] != SMOE_TOKEN_CONTROL, "encoding produced control id %d", (int)ids[i]);
    }
    bytes dec = {0};
    decode_both(t, ids, n, prefix, &dec);
    if (v->byte_fallback) {
        bytes want = {0};
        expected_text(text, len, &want);
        FZ_CHECK(dec.n == want.n && (want.n == 0 || memcmp(dec.p, want.p, want.n) == 0),
                 "round trip: %zu bytes in, %zu bytes decoded, %zu expected", len, dec.n, want.n);
        free(want.p);
    }
    if (flavor != FZ_VOCAB_UNUSED && len <= 512) {
        int32_t *nids, nn;
        naive_encode(v, text, len, prefix, &nids, &nn);
        bool same = nn == n;
        for (int32_t i = 0; same && i < n; i++) same = nids[i] == ids[i];
        if (!same) {
            for (int32_t i = 0; i < n || i < nn; i++)
                fprintf(stderr, "%4d: smoe %6d %-12s plain %6d %s\n", (int)i, i < n ? (int)ids[i] : -1,
                        i < n ? v->tokens[ids[i]] : "", i < nn ? (int)nids[i] : -1, i < nn ? v->tokens[nids[i]] : "");
        }
        FZ_CHECK(same, "smoe gives %d tokens, the plain BPE %d (or different ids)", (int)n, (int)nn);
        free(nids);
    }
    free(dec.p);
    smoe_tokens_free(&out);
}

static void check_decode_ids(int flavor, const uint8_t *data, size_t size) {
    const smoe_tokenizer *t = get_tokenizer(flavor);
    const smoe_vocab *v = fz_vocab(flavor);
    int32_t n = (int32_t)(size / 2);
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) abort();
    for (int32_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)data[2 * i] | (uint32_t)data[2 * i + 1] << 8;
        ids[i] = (int32_t)(u % (uint32_t)(v->n_tokens + 8)) - 4; /* a few out of range each side */
    }
    for (int strip = 0; strip < 2; strip++) {
        bytes dec = {0};
        decode_both(t, ids, n, strip, &dec);
        FZ_CHECK(fz_utf8_valid(dec.p ? dec.p : "", dec.n), "decoded stream is not valid UTF-8");
        free(dec.p);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int flavor = (data[0] & 3) % FZ_VOCAB_COUNT;
    bool prefix = (data[0] >> 2) & 1;
    check_encode(flavor, prefix, data + 1, size - 1);
    check_decode_ids(flavor, data + 1, size - 1);
    return 0;
}
