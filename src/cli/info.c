/* info.c - `smoe info`: what to know about a model file before using it.
 * The file goes through the same validation as loading, so a file that
 * `info` accepts is a file that loads. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../base/common.h"
#include "../kernels/types.h"
#include "../model/model.h"
#include "cli.h"
#include "util.h"

static void human(char *buf, size_t n, double v, const char *unit) {
    const char *pre[] = {"", "K", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) { v /= 1000; i++; }
    snprintf(buf, n, i ? "%.2f %s%s" : "%.0f %s%s", v, pre[i], unit);
}

static void bytes_h(char *buf, size_t n, double v) {
    const char *pre[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1024 && i < 4) { v /= 1024; i++; }
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", v, pre[i]);
}

static void print_str_key(const gguf_file *f, const char *key, const char *label) {
    gguf_str s;
    if (gguf_get_str(f, key, &s, NULL) != 1) return;
    int len = s.len > 200 ? 200 : (int)s.len;
    printf("%-14s %.*s%s\n", label, len, s.p, s.len > 200 ? "..." : "");
}

static void print_types(const gguf_file *f) {
    uint64_t count[SMOE_TYPE_COUNT] = {0}, bytes[SMOE_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        count[f->tensors[i].type]++;
        bytes[f->tensors[i].type] += f->tensors[i].nbytes;
    }
    printf("%-14s %" PRIu64 "\n", "tensors:", f->n_tensors);
    for (int t = 0; t < SMOE_TYPE_COUNT; t++) {
        if (!count[t]) continue;
        char b[32];
        bytes_h(b, sizeof b, (double)bytes[t]);
        printf("  %-6s %6" PRIu64 " tensors  %12s\n", smoe_type_get((uint32_t)t)->name, count[t], b);
    }
}

static void print_tokenizer(const smoe_model *m) {
    const smoe_vocab *v = &m->vocab;
    if (v->n_tokens == 0) {
        printf("%-14s none in this file\n", "tokenizer:");
        return;
    }
    int n_control = 0, n_byte = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        n_control += v->types[i] == SMOE_TOKEN_CONTROL;
        n_byte += v->types[i] == SMOE_TOKEN_BYTE;
    }
    printf("%-14s %s%s, %d tokens (%d control, %d byte), bos %d, eos %d, unk %d%s%s\n", "tokenizer:", v->model,
           strcmp(v->model, "llama") == 0 ? " (SentencePiece BPE)" : "", v->n_tokens, n_control, n_byte, v->bos_id,
           v->eos_id, v->unk_id, v->add_bos ? ", adds bos" : "", v->byte_fallback ? ", byte fallback" : "");
    gguf_str tmpl;
    bool has_tmpl = gguf_get_str(m->file, "tokenizer.chat_template", &tmpl, NULL) == 1;
    printf("%-14s %s\n", "chat template:", has_tmpl ? "present (tokenizer.chat_template)" : "none in file");
}

static void print_model(const char *path, const smoe_model *m) {
    const gguf_file *f = m->file;
    const smoe_hparams *hp = &m->hp;
    char a[32], b[32];
    bytes_h(a, sizeof a, (double)f->size);
    printf("%-14s %s (%s, GGUF version %u)\n", "file:", path, a, f->version);
    print_str_key(f, "general.name", "name:");
    print_str_key(f, "general.basename", "basename:");
    print_str_key(f, "general.size_label", "size label:");
    print_str_key(f, "general.license", "license:");
    print_str_key(f, "general.author", "author:");
    if (hp->n_experts)
        printf("%-14s llama, mixture of experts: %d experts, %d used per token (Mixtral)\n", "architecture:",
               hp->n_experts, hp->n_experts_used);
    else
        printf("%-14s llama, dense (Mistral/Llama)\n", "architecture:");
    printf("%-14s %d\n", "layers:", hp->n_layers);
    printf("%-14s %d\n", "embedding:", hp->dim);
    printf("%-14s %d query, %d key/value (head size %d, %d queries per kv head)\n", "heads:", hp->n_heads,
           hp->n_kv_heads, hp->head_dim, hp->n_heads / hp->n_kv_heads);
    printf("%-14s %d%s\n", "feed-forward:", hp->ffn_dim, hp->n_experts ? " per expert" : "");
    printf("%-14s %d tokens\n", "context:", hp->n_ctx_train);
    printf("%-14s theta %g over %d of %d dims per head\n", "rope:", hp->rope_theta, hp->n_rot, hp->head_dim);
    printf("%-14s %g\n", "rms epsilon:", hp->rms_eps);
    printf("%-14s %d\n", "vocabulary:", hp->n_vocab);
    printf("%-14s %s\n", "output head:", hp->tied_output ? "tied to the token embedding" : "output.weight");
    if (hp->n_experts)
        printf("%-14s %s\n", "expert layout:",
               gguf_find_tensor(f, "blk.0.ffn_gate_exps.weight") ? "merged (ffn_*_exps)" : "one tensor per expert");
    uint64_t total, active;
    smoe_model_param_counts(m, &total, &active);
    human(a, sizeof a, (double)total, "");
    human(b, sizeof b, (double)active, "");
    printf("%-14s %s total, %s active per token\n", "parameters:", a, b);
    double kv_tok = (double)smoe_kv_bytes_per_pos(m, SMOE_KV_F16);
    bytes_h(a, sizeof a, kv_tok);
    bytes_h(b, sizeof b, kv_tok * hp->n_ctx_train);
    printf("%-14s %s per token, %s for the full context (F16; twice that in F32)\n", "kv cache:", a, b);
    print_types(f);
    print_tokenizer(m);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: smoe info -m MODEL.gguf\n");
            return 0;
        }
        if ((strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) && i + 1 < argc) path = argv[++i];
        else return cli_fail("unknown option '%s' (usage: smoe info -m MODEL.gguf)", argv[i]);
    }
    if (!path) return cli_fail("no model: give -m MODEL.gguf");
    char err[SMOE_ERR_SIZE];
    smoe_model *m = smoe_model_load(path, err);
    if (!m) return cli_fail("%s", err);
    print_model(path, m);
    smoe_model_free(m);
    return 0;
}
