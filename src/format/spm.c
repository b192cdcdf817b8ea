/* spm.c - SentencePiece .model reader: a protobuf ModelProto into a smoe_vocab.
 *
 * The input is untrusted, so this is a small, strict protobuf wire-format
 * walker rather than generated code: every varint, length and fixed-width
 * value is bounds-checked against the bytes that remain, unknown fields are
 * skipped, and anything malformed fails with one line naming the problem and
 * its byte offset in the file.
 *
 * Only the fields smoe needs are read (numbers from SentencePiece's
 * sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece, 2 score (float), 3 type (enum)
 *   TrainerSpec     3 model_type, 35 byte_fallback, 40-43 unk/bos/eos/pad id
 *   NormalizerSpec  3 add_dummy_prefix
 * As in proto2, a scalar field seen twice keeps its last value, and a
 * sub-message seen twice is merged field by field. */
#include "../model/vocab.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/utf8.h"
#include "../base/common.h"

/* Limits far above any real tokenizer, so that hostile counts fail early. */
#define SPM_MAX_PIECES    (1 << 22)
#define SPM_MAX_PIECE_LEN 65535

/* ---------------------------------------------------------------------------
 * Protobuf wire format
 * ------------------------------------------------------------------------- */

enum {
    PB_VARINT = 0,
    PB_FIXED64 = 1,
    PB_LEN = 2,
    PB_GROUP_START = 3,
    PB_GROUP_END = 4,
    PB_FIXED32 = 5,
};

/* A window [pos, end) over the whole input.  Sub-messages share the same
 * data pointer so that every offset in an error message is a file offset. */
typedef struct {
    const uint8_t *data;
    size_t pos, end;
    char ctx[40]; /* which message is being read, for error messages */
} pb_reader;

typedef struct {
    uint32_t num;    /* field number */
    int wire;        /* PB_* wire type */
    uint64_t val;    /* value of a varint, fixed64 or fixed32 field */
    size_t off, len; /* payload of a length-delimited field */
    size_t at;       /* file offset of the tag */
} pb_field;

static pb_reader pb_open(const uint8_t *data, size_t size, const char *ctx) {
    pb_reader r = {data, 0, size, {0}};
    snprintf(r.ctx, sizeof r.ctx, "%s", ctx);
    return r;
}

/* A reader over the payload of a length-delimited field (already checked to
 * lie inside the parent's window). */
static pb_reader pb_sub(const pb_reader *parent, const pb_field *f, const char *ctx) {
    pb_reader r = {parent->data, f->off, f->off + f->len, {0}};
    snprintf(r.ctx, sizeof r.ctx, "%s", ctx);
    return r;
}

/* Base-128 varint, at most 10 bytes; the 10th byte may only carry bit 63. */
static int pb_varint(pb_reader *r, uint64_t *out, char *err) {
    size_t start = r->pos;
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (r->pos >= r->end)
            return smoe_errf(err, "spm: %s: truncated varint at byte %zu", r->ctx, start);
        uint8_t b = r->data[r->pos++];
        if (i == 9 && (b & 0x80))
            return smoe_errf(err, "spm: %s: varint longer than 10 bytes at byte %zu",
                             r->ctx, start);
        if (i == 9 && b > 1)
            return smoe_errf(err, "spm: %s: varint overflows 64 bits at byte %zu",
                             r->ctx, start);
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) break;
    }
    *out = v;
    return 0;
}

/* Little-endian fixed32/fixed64 payload. */
static int pb_fixed(pb_reader *r, pb_field *f, size_t width, char *err) {
    if (r->end - r->pos < width)
        return smoe_errf(err, "spm: %s: field %u: truncated %zu-byte value at byte %zu",
                         r->ctx, (unsigned)f->num, width, r->pos);
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++) v |= (uint64_t)r->data[r->pos + i] << (8 * i);
    r->pos += width;
    f->val = v;
    return 0;
}

/* Length-delimited payload: the length is compared with what remains, never
 * added to pos first, so a huge length cannot wrap around. */
static int pb_len(pb_reader *r, pb_field *f, char *err) {
    uint64_t len;
    if (pb_varint(r, &len, err) < 0) return -1;
    size_t left = r->end - r->pos;
    if (len > left)
        return smoe_errf(err, "spm: %s: field %u: length %llu exceeds the %zu bytes left "
                         "at byte %zu", r->ctx, (unsigned)f->num,
                         (unsigned long long)len, left, r->pos);
    f->off = r->pos;
    f->len = (size_t)len;
    r->pos += (size_t)len;
    return 0;
}

/* Read the next field.  Returns 1 with *f filled, 0 at the end of the
 * window, -1 on malformed input. */
static int pb_next(pb_reader *r, pb_field *f, char *err) {
    if (r->pos >= r->end) return 0;
    memset(f, 0, sizeof *f);
    f->at = r->pos;
    uint64_t tag;
    if (pb_varint(r, &tag, err) < 0) return -1;
    if (tag > UINT32_MAX || (tag >> 3) == 0)
        return smoe_errf(err, "spm: %s: invalid field tag %llu at byte %zu", r->ctx,
                         (unsigned long long)tag, f->at);
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    int rc;
    switch (f->wire) {
    case PB_VARINT: rc = pb_varint(r, &f->val, err); break;
    case PB_FIXED64: rc = pb_fixed(r, f, 8, err); break;
    case PB_LEN: rc = pb_len(r, f, err); break;
    case PB_FIXED32: rc = pb_fixed(r, f, 4, err); break;
    case PB_GROUP_START:
    case PB_GROUP_END:
        /* Deprecated groups never appear in SentencePiece models. */
        return smoe_errf(err, "spm: %s: field %u at byte %zu uses the unsupported "
                         "group wire type %d", r->ctx, (unsigned)f->num, f->at, f->wire);
    default:
        return smoe_errf(err, "spm: %s: field %u at byte %zu has unknown wire type %d",
                         r->ctx, (unsigned)f->num, f->at, f->wire);
    }
    return rc < 0 ? -1 : 1;
}

/* A known field must use the wire type its declaration implies. */
static int pb_expect(const pb_reader *r, const pb_field *f, int wire, char *err) {
    if (f->wire == wire) return 0;
    return smoe_errf(err, "spm: %s: field %u at byte %zu has wire type %d, expected %d",
                     r->ctx, (unsigned)f->num, f->at, f->wire, wire);
}

/* int32 fields keep the low 32 bits of the varint, as protobuf specifies
 * (negative values arrive sign-extended to 10 bytes).  Written without a
 * narrowing cast because that is implementation-defined for negatives. */
static int32_t pb_int32(uint64_t v) {
    uint32_t u = (uint32_t)v;
    if (u <= INT32_MAX) return (int32_t)u;
    return -(int32_t)(UINT32_MAX - u) - 1;
}

static float pb_float(uint64_t bits) {
    uint32_t u = (uint32_t)bits;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---------------------------------------------------------------------------
 * Piece text checks
 * ------------------------------------------------------------------------- */

/* Pieces become NUL-terminated strings and are matched against UTF-8 text,
 * so anything that is not plain, non-empty UTF-8 is rejected up front. */
static int check_piece_text(const uint8_t *s, size_t len, int32_t idx, char *err) {
    if (len == 0) return smoe_errf(err, "spm: piece %d is empty", (int)idx);
    if (len > SPM_MAX_PIECE_LEN)
        return smoe_errf(err, "spm: piece %d is %zu bytes long (limit %d)", (int)idx,
                         len, SPM_MAX_PIECE_LEN);
    for (size_t i = 0; i < len;) {
        if (s[i] == 0)
            return smoe_errf(err, "spm: piece %d contains a NUL byte at offset %zu",
                             (int)idx, i);
        int n = smoe_utf8_class(s + i, len - i); /* -1 malformed, 0 cut short */
        if (n <= 0)
            return smoe_errf(err, "spm: piece %d is not valid UTF-8 (offset %zu)",
                             (int)idx, i);
        i += n;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * TrainerSpec and NormalizerSpec
 * ------------------------------------------------------------------------- */

enum { SPM_UNIGRAM = 1, SPM_BPE = 2, SPM_WORD = 3, SPM_CHAR = 4 };

/* Everything taken from the model besides the pieces themselves. */
typedef struct {
    int32_t n_pieces;
    int32_t model_type;
    bool byte_fallback;
    int32_t unk_id, bos_id, eos_id, pad_id;
    bool add_dummy_prefix;
} spm_meta;

/* proto2 defaults from sentencepiece_model.proto. */
static void meta_defaults(spm_meta *m) {
    memset(m, 0, sizeof *m);
    m->model_type = SPM_UNIGRAM;
    m->byte_fallback = false;
    m->unk_id = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    m->add_dummy_prefix = true;
}

/* Store one TrainerSpec varint field into m (unknown numbers are ignored). */
static void trainer_field(spm_meta *m, const pb_field *f) {
    switch (f->num) {
    case 3: m->model_type = pb_int32(f->val); break;
    case 35: m->byte_fallback = f->val != 0; break;
    case 40: m->unk_id = pb_int32(f->val); break;
    case 41: m->bos_id = pb_int32(f->val); break;
    case 42: m->eos_id = pb_int32(f->val); break;
    case 43: m->pad_id = pb_int32(f->val); break;
    default: break;
    }
}

static bool trainer_field_known(uint32_t num) {
    return num == 3 || num == 35 || (num >= 40 && num <= 43);
}

static int parse_trainer(const pb_reader *top, const pb_field *msg, spm_meta *m,
                         char *err) {
    pb_reader r = pb_sub(top, msg, "trainer_spec");
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f, err)) > 0) {
        if (!trainer_field_known(f.num)) continue;
        if (pb_expect(&r, &f, PB_VARINT, err) < 0) return -1;
        trainer_field(m, &f);
    }
    return rc;
}

static int parse_normalizer(const pb_reader *top, const pb_field *msg, spm_meta *m,
                            char *err) {
    pb_reader r = pb_sub(top, msg, "normalizer_spec");
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f, err)) > 0) {
        if (f.num != 3) continue;
        if (pb_expect(&r, &f, PB_VARINT, err) < 0) return -1;
        m->add_dummy_prefix = f.val != 0;
    }
    return rc;
}

/* ---------------------------------------------------------------------------
 * SentencePiece messages
 * ------------------------------------------------------------------------- */

static int parse_piece(const pb_reader *top, const pb_field *msg, int32_t idx,
                       smoe_vocab *v, char *err) {
    char ctx[32];
    snprintf(ctx, sizeof ctx, "piece %d", (int)idx);
    pb_reader r = pb_sub(top, msg, ctx);
    size_t off = 0, len = 0;
    float score = 0.0f;
    int32_t type = SMOE_TOKEN_NORMAL;
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f, err)) > 0) {
        if (f.num == 1) {
            if (pb_expect(&r, &f, PB_LEN, err) < 0) return -1;
            off = f.off;
            len = f.len;
        } else if (f.num == 2) {
            if (pb_expect(&r, &f, PB_FIXED32, err) < 0) return -1;
            score = pb_float(f.val);
        } else if (f.num == 3) {
            if (pb_expect(&r, &f, PB_VARINT, err) < 0) return -1;
            type = pb_int32(f.val);
        }
    }
    if (rc < 0) return -1;

    if (check_piece_text(r.data + off, len, idx, err) < 0) return -1;
    if (!isfinite(score))
        return smoe_errf(err, "spm: piece %d has a non-finite score (%g)", (int)idx,
                         (double)score);
    if (type < SMOE_TOKEN_NORMAL || type > SMOE_TOKEN_BYTE)
        return smoe_errf(err, "spm: piece %d has unknown type %d", (int)idx, (int)type);

    char *text = malloc(len + 1);
    if (!text) return smoe_errf(err, "spm: out of memory for piece %d", (int)idx);
    memcpy(text, r.data + off, len);
    text[len] = '\0';
    v->tokens[idx] = text;
    v->token_len[idx] = (uint32_t)len;
    v->scores[idx] = score;
    v->types[idx] = type;
    return 0;
}

/* ---------------------------------------------------------------------------
 * ModelProto: pass 1 counts the pieces and reads the specs so the arrays can
 * be allocated once; pass 2 fills the pieces.
 * ------------------------------------------------------------------------- */

static int scan_model(const uint8_t *data, size_t size, spm_meta *m, char *err) {
    pb_reader r = pb_open(data, size, "ModelProto");
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f, err)) > 0) {
        if (f.num > 3) continue;
        if (pb_expect(&r, &f, PB_LEN, err) < 0) return -1;
        if (f.num == 1 && ++m->n_pieces > SPM_MAX_PIECES)
            return smoe_errf(err, "spm: more than %d pieces", SPM_MAX_PIECES);
        if (f.num == 2 && parse_trainer(&r, &f, m, err) < 0) return -1;
        if (f.num == 3 && parse_normalizer(&r, &f, m, err) < 0) return -1;
    }
    return rc;
}

static int check_special(const char *name, int32_t id, int32_t n, char *err) {
    if (id == -1 || (id >= 0 && id < n)) return 0;
    return smoe_errf(err, "spm: %s %d is out of range for %d pieces", name, (int)id,
                     (int)n);
}

/* Run after the pieces are parsed, so that a broken encoding anywhere is
 * reported as such rather than as a consequence (say, a too-small count). */
static int check_meta(const spm_meta *m, char *err) {
    if (m->model_type < SPM_UNIGRAM || m->model_type > SPM_CHAR)
        return smoe_errf(err, "spm: unknown model_type %d", (int)m->model_type);
    if (check_special("unk_id", m->unk_id, m->n_pieces, err) < 0) return -1;
    if (check_special("bos_id", m->bos_id, m->n_pieces, err) < 0) return -1;
    if (check_special("eos_id", m->eos_id, m->n_pieces, err) < 0) return -1;
    return check_special("pad_id", m->pad_id, m->n_pieces, err);
}

static const char *model_name(int32_t model_type) {
    switch (model_type) {
    case SPM_BPE: return "llama"; /* what GGUF calls SentencePiece BPE */
    case SPM_UNIGRAM: return "spm-unigram";
    case SPM_WORD: return "spm-word";
    default: return "spm-char";
    }
}

static int fill_pieces(const uint8_t *data, size_t size, smoe_vocab *v, char *err) {
    pb_reader r = pb_open(data, size, "ModelProto");
    pb_field f;
    int32_t idx = 0;
    int rc;
    while ((rc = pb_next(&r, &f, err)) > 0) {
        if (f.num != 1) continue;
        /* Pass 1 checked the framing, but keep pass 2 safe on its own. */
        if (pb_expect(&r, &f, PB_LEN, err) < 0) return -1;
        if (idx >= v->n_tokens) return smoe_errf(err, "spm: piece count changed");
        if (parse_piece(&r, &f, idx, v, err) < 0) return -1;
        idx++;
    }
    return rc;
}

static int build_vocab(smoe_vocab *v, const uint8_t *data, size_t size, char *err) {
    spm_meta m;
    meta_defaults(&m);
    if (scan_model(data, size, &m, err) < 0) return -1;
    if (m.n_pieces < 1) return smoe_errf(err, "spm: the model has no pieces");
    if (smoe_vocab_alloc(v, m.n_pieces, err) < 0) return -1;
    if (fill_pieces(data, size, v, err) < 0) return -1;
    if (check_meta(&m, err) < 0) return -1;
    v->unk_id = m.unk_id;
    v->bos_id = m.bos_id;
    v->eos_id = m.eos_id;
    v->pad_id = m.pad_id;
    /* SentencePiece itself never adds BOS/EOS; these are the llama-family
     * conventions that Mistral's tokenizers follow. */
    v->add_bos = true;
    v->add_eos = false;
    v->add_space_prefix = m.add_dummy_prefix;
    v->byte_fallback = m.byte_fallback;
    snprintf(v->model, sizeof v->model, "%s", model_name(m.model_type));
    return 0;
}

int smoe_vocab_from_spm(smoe_vocab *v, const uint8_t *data, size_t size, char *err) {
    memset(v, 0, sizeof *v);
    if (!data || size == 0) return smoe_errf(err, "spm: empty input");
    /* Build into a local so that v is either complete or left zeroed. */
    smoe_vocab tmp;
    memset(&tmp, 0, sizeof tmp);
    if (build_vocab(&tmp, data, size, err) < 0) {
        smoe_vocab_free(&tmp);
        return -1;
    }
    *v = tmp;
    return 0;
}
