/* fuzz_gguf.c - the GGUF reader (gguf_parse) on arbitrary bytes, and what
 * reads a parsed file's metadata: the typed getters, the tokenizer
 * vocabulary (smoe_vocab_from_gguf) with a tokenizer and the chat formats
 * over it, model binding (smoe_model_from_gguf, with its semantic checks),
 * and the writer copying everything into a new file that must read back
 * the same.
 *
 * Checked: a failed parse gives a one-line error; every key and tensor of
 * a parsed file is found by name; string-array walks, tensor data and every
 * getter stay inside the buffer (ASan sees the exact-size input); the
 * writer's copy parses again with the same metadata and tensor data.
 * fuzz_model.c goes on from binding to a forward pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "chat/chat.h"
#include "base/common.h"
#include "format/gguf.h"
#include "fuzz_util.h"
#include "kernels/types.h"
#include "model/model.h"

static char *cstr(gguf_str s) {
    char *c = malloc(s.len + 1);
    if (!c) abort();
    memcpy(c, s.p, s.len);
    c[s.len] = 0;
    return c;
}

static volatile uint8_t sink;

/* The getters put the caller's key into their messages as given (callers
 * pass literals); a key from the file may hold a newline or bytes that are
 * not UTF-8, and then only NUL termination is checked. */
static bool printable(gguf_str s) {
    for (uint64_t i = 0; i < s.len; i++)
        if ((unsigned char)s.p[i] < 0x20 || s.p[i] == 0x7f) return false;
    return fz_utf8_valid(s.p, (size_t)s.len);
}

static void check_getter_err(const char *err, bool key_printable) {
    if (key_printable) fz_check_err(err);
    else FZ_CHECK(strnlen(err, SMOE_ERR_SIZE) < SMOE_ERR_SIZE, "error message not NUL-terminated");
}

static void check_kvs(const gguf_file *f, const uint8_t *end) {
    char err[SMOE_ERR_SIZE];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        char *key = cstr(kv->key);
        FZ_CHECK(gguf_find_kv(f, key) == kv, "key %llu not found by name", (unsigned long long)i);
        FZ_CHECK(kv->val + kv->val_len <= end, "value past the end");
        bool pk = printable(kv->key);
        int64_t iv;
        double dv;
        bool bv;
        gguf_str sv;
        const gguf_kv *akv;
        if (gguf_get_int(f, key, INT64_MIN, INT64_MAX, &iv, err) < 0) check_getter_err(err, pk);
        if (gguf_get_int(f, key, 0, 100, &iv, err) < 0) check_getter_err(err, pk);
        if (gguf_get_float(f, key, &dv, err) < 0) check_getter_err(err, pk);
        if (gguf_get_bool(f, key, &bv, err) < 0) check_getter_err(err, pk);
        if (gguf_get_str(f, key, &sv, err) < 0) check_getter_err(err, pk);
        else if (kv->type == GGUF_STRING)
            FZ_CHECK((const uint8_t *)sv.p + sv.len <= end, "string value past the end");
        if (kv->type == GGUF_ARRAY) {
            FZ_CHECK(gguf_get_array(f, key, kv->arr_type, &akv, err) == 1 && akv == kv, "array lookup");
            uint64_t n = kv->arr_count < 4096 ? kv->arr_count : 4096;
            if (kv->arr_type == GGUF_STRING) {
                const uint8_t *cur = kv->arr_data;
                for (uint64_t k = 0; k < n; k++) {
                    gguf_str s = gguf_next_str(&cur);
                    FZ_CHECK(cur <= end && (const uint8_t *)s.p + s.len <= end, "string element past the end");
                    if (s.len) sink ^= (uint8_t)s.p[s.len - 1];
                }
            } else if (kv->arr_type != GGUF_ARRAY) {
                for (uint64_t k = 0; k < n; k++) {
                    double x = gguf_arr_f64(kv, k);
                    int64_t y = gguf_arr_i64(kv, k);
                    sink ^= (uint8_t)(x == x) ^ (uint8_t)y;
                }
            }
        } else if (gguf_get_array(f, key, GGUF_U8, &akv, err) < 0) {
            check_getter_err(err, pk);
        }
        free(key);
    }
}

static void check_tensors(const gguf_file *f, const uint8_t *end) {
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char *name = cstr(t->name);
        FZ_CHECK(gguf_find_tensor(f, name) == t, "tensor %llu not found by name", (unsigned long long)i);
        free(name);
        const smoe_type_info *ti = smoe_type_get(t->type);
        FZ_CHECK(ti != NULL, "tensor with unknown type accepted");
        FZ_CHECK(t->nelem % ti->block_size == 0 &&
                     t->nbytes == (uint64_t)(t->nelem / ti->block_size) * (uint64_t)ti->block_bytes,
                 "tensor byte size");
        const uint8_t *d = t->data;
        FZ_CHECK(d >= f->data && d <= end && t->nbytes <= (uint64_t)(end - d), "tensor data outside the file");
        if (t->nbytes) sink ^= d[0] ^ d[t->nbytes - 1];
    }
}

/* The tokenizer and the chat formats over the file's vocabulary. */
static void check_vocab(const gguf_file *f, const uint8_t *data, size_t size) {
    char err[SMOE_ERR_SIZE];
    smoe_vocab v;
    if (smoe_vocab_from_gguf(&v, f, err)) {
        fz_check_err(err);
        return;
    }
    if (v.n_tokens > 0) {
        for (int32_t i = 0; i < v.n_tokens; i++)
            FZ_CHECK(v.tokens[i] && v.types[i] >= SMOE_TOKEN_NORMAL && v.types[i] <= SMOE_TOKEN_BYTE, "token %d",
                     (int)i);
        const int32_t special[] = {v.bos_id, v.eos_id, v.unk_id, v.pad_id};
        for (size_t k = 0; k < 4; k++)
            FZ_CHECK(special[k] >= -1 && special[k] < v.n_tokens, "special id %d out of range", (int)special[k]);
        fz_exercise_tokenizer(&v, data, size > 128 ? 128 : size);
        smoe_tokenizer *t = smoe_tokenizer_new(&v, err);
        if (t) {
            static const char *const req_text =
                "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
                " {\"role\": \"user\", \"content\": \"What is 2+2?\"},"
                " {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"abcdefghi\", \"function\":"
                " {\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 2, \\\"b\\\": 2}\"}}]},"
                " {\"role\": \"tool\", \"tool_call_id\": \"abcdefghi\", \"content\": \"4\"}],"
                " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\"}}]}";
            static const char *const req_v1 =
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi [INST] </s>\"},"
                " {\"role\": \"assistant\", \"content\": \"Hello \"}, {\"role\": \"user\", \"content\": \"\\u00e9\"}]}";
            json_error_t je;
            json_t *r3 = json_loads(req_text, 0, &je), *r1 = json_loads(req_v1, 0, &je);
            FZ_CHECK(r3 && r1, "test request does not parse");
            (void)smoe_chat_detect(&v, NULL);
            for (int k = 0; k < 3; k++) {
                smoe_tokens out = {0};
                int rc = smoe_chat_render(t, k == 2 ? SMOE_CHAT_V1 : SMOE_CHAT_V3, k == 0 ? r3 : r1, &out, err);
                if (rc) fz_check_err(err);
                for (int32_t i = 0; i < out.n; i++)
                    FZ_CHECK(out.ids[i] >= 0 && out.ids[i] < v.n_tokens, "chat id %d out of range", (int)out.ids[i]);
                smoe_tokens_free(&out);
            }
            json_decref(r3);
            json_decref(r1);
            smoe_tokenizer_free(t);
        }
    }
    smoe_vocab_free(&v);
}

/* Copy every key and tensor with the writer (as smoe quantize does, which
 * leaves general.alignment out) and read the copy back. */
static const gguf_file *copy_src;

static int fill(void *user, uint64_t idx, void *dst, size_t nbytes, char *err) {
    (void)user;
    (void)err;
    memcpy(dst, copy_src->tensors[idx].data, nbytes);
    return 0;
}

static void check_copy(const gguf_file *f) {
    static char path[64];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/smoe-fuzz-%ld.gguf", dir, (long)getpid());
    }
    gguf_writer *w = gguf_writer_new();
    if (!w) abort();
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (!gguf_str_eq(f->kv[i].key, "general.alignment")) FZ_CHECK(gguf_w_copy_kv(w, &f->kv[i]) == 0, "copy kv");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char *name = cstr(t->name);
        FZ_CHECK(gguf_w_tensor(w, name, t->type, t->n_dims, t->ne) == 0, "writer refused tensor %s", name);
        free(name);
    }
    char err[SMOE_ERR_SIZE];
    copy_src = f;
    int rc = gguf_w_write(w, path, fill, NULL, err);
    gguf_writer_free(w);
    FZ_CHECK(rc == 0, "gguf_w_write: %s", err);
    gguf_file *g = gguf_open(path, err);
    unlink(path);
    FZ_CHECK(g != NULL, "the writer's copy does not read back: %s", err);
    const gguf_kv *align = gguf_find_kv(f, "general.alignment");
    FZ_CHECK(g->n_kv == f->n_kv - (align != NULL) && g->n_tensors == f->n_tensors, "counts differ in the copy");
    for (uint64_t i = 0, j = 0; i < f->n_kv; i++) {
        const gguf_kv *a = &f->kv[i];
        if (a == align) continue;
        const gguf_kv *b = &g->kv[j++];
        FZ_CHECK(a->key.len == b->key.len && memcmp(a->key.p, b->key.p, a->key.len) == 0 && a->type == b->type &&
                     a->val_len == b->val_len && memcmp(a->val, b->val, a->val_len) == 0,
                 "key %llu differs in the copy", (unsigned long long)i);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *a = &f->tensors[i], *b = &g->tensors[i];
        FZ_CHECK(a->name.len == b->name.len && memcmp(a->name.p, b->name.p, a->name.len) == 0 && a->type == b->type &&
                     a->n_dims == b->n_dims && memcmp(a->ne, b->ne, sizeof a->ne) == 0 && a->nbytes == b->nbytes &&
                     memcmp(a->data, b->data, a->nbytes) == 0,
                 "tensor %llu differs in the copy", (unsigned long long)i);
    }
    gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[SMOE_ERR_SIZE];
    gguf_file *f = gguf_parse(data, size, err);
    if (!f) {
        fz_check_err(err);
        return 0;
    }
    const uint8_t *end = data + size;
    check_kvs(f, end);
    check_tensors(f, end);
    check_vocab(f, data, size);
    check_copy(f);
    smoe_model *m = smoe_model_from_gguf(f, err);
    if (!m) {
        fz_check_err(err);
        gguf_close(f);
        return 0;
    }
    uint64_t total, active;
    smoe_model_param_counts(m, &total, &active);
    FZ_CHECK(active <= total, "active parameters %llu above total %llu", (unsigned long long)active,
             (unsigned long long)total);
    smoe_model_free(m); /* closes f */
    return 0;
}
