/* logits.c - `smoe logits`: run the model over a token list and write the
 * next-token logits of every position as float32, for comparisons against
 * the reference implementation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "../model/model.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe logits -m MODEL.gguf --tokens 1,2,3 -o OUT.f32 [options]\n"
    "  writes n_tokens x n_vocab little-endian float32 logits, one row per position\n"
    "  --batch N            feed N tokens per forward call (default: all at once;\n"
    "                       1 = one token at a time)\n"
    "  --trace-routing FILE write the experts chosen per layer and position\n"
    "  --kv f32|f16         KV-cache element type (default f32: exact, so the logits\n"
    "                       match the reference to float32 accumulation; f16, what\n"
    "                       generation uses, moves them by about 3e-4 of max |logit|)\n";

static int parse_tokens(const char *s, int32_t **out, int32_t *n) {
    int32_t cap = 16, cnt = 0;
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return cli_fail("out of memory");
    const char *p = s;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            return cli_fail("--tokens: expected comma-separated token ids, got '%.40s'", s);
        }
        if (cnt == cap) {
            int32_t *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!nv) { free(v); return cli_fail("out of memory"); }
            v = nv;
        }
        v[cnt++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (cnt == 0) { free(v); return cli_fail("--tokens: no token ids given"); }
    *out = v;
    *n = cnt;
    return 0;
}

typedef struct trace { FILE *fp; int32_t base; } trace;

static void on_route(void *user, int32_t layer, int32_t entry, const int32_t *experts, const float *w, int32_t k) {
    trace *t = user;
    fprintf(t->fp, "layer %d pos %d experts", layer, t->base + entry);
    for (int32_t i = 0; i < k; i++) fprintf(t->fp, " %d:%.6f", experts[i], w[i]);
    fputc('\n', t->fp);
}

static int run(const char *path, const int32_t *tokens, int32_t n, int32_t batch, const char *out,
               const char *trace_path, smoe_kv_type kv) {
    char err[SMOE_ERR_SIZE];
    int rc = 1;
    smoe_model *m = smoe_model_load(path, err);
    if (!m) return cli_fail("%s", err);
    const int32_t V = m->hp.n_vocab;
    smoe_seq *s = NULL;
    smoe_ctx *c = NULL;
    float *logits = malloc((size_t)n * (size_t)V * sizeof(float));
    smoe_batch_entry *e = malloc((size_t)n * sizeof *e);
    trace tr = {NULL, 0};
    FILE *fp = NULL;
    if (!logits || !e) { cli_fail("out of memory for %d x %d logits", n, V); goto out; }
    if (!(s = smoe_seq_new_typed(m, n > m->hp.n_ctx_train ? n : 0, kv, err)) || !(c = smoe_ctx_new(m, batch, err))) {
        cli_fail("%s", err);
        goto out;
    }
    if (trace_path) {
        if (!(tr.fp = fopen(trace_path, "w"))) { cli_fail("%s: cannot open for writing", trace_path); goto out; }
        smoe_ctx_set_route_trace(c, on_route, &tr);
    }
    for (int32_t i = 0; i < n; i++) e[i] = (smoe_batch_entry){s, i, tokens[i], true};
    for (int32_t i = 0; i < n; i += batch) {
        int32_t cnt = n - i < batch ? n - i : batch;
        tr.base = i;
        if (smoe_forward(c, e + i, cnt, logits + (size_t)i * V, err)) { cli_fail("%s", err); goto out; }
    }
    if (!(fp = fopen(out, "wb"))) { cli_fail("%s: cannot open for writing", out); goto out; }
    if (fwrite(logits, sizeof(float), (size_t)n * V, fp) != (size_t)n * V || fclose(fp) != 0) {
        fp = NULL;
        cli_fail("%s: write failed", out);
        goto out;
    }
    fp = NULL;
    rc = 0;
out:
    if (fp) fclose(fp);
    if (tr.fp) fclose(tr.fp);
    free(logits);
    free(e);
    smoe_ctx_free(c);
    smoe_seq_free(s);
    smoe_model_free(m);
    return rc;
}

int cmd_logits(int argc, char **argv) {
    const char *path = NULL, *tok = NULL, *out = NULL, *trace_path = NULL;
    smoe_kv_type kv = SMOE_KV_F32;
    long long batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { fputs(help, stdout); return 0; }
        if (!v) return cli_fail("option '%s' needs a value (or is unknown; see 'smoe logits --help')", a);
        i++;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) path = v;
        else if (strcmp(a, "--tokens") == 0) tok = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) out = v;
        else if (strcmp(a, "--trace-routing") == 0) trace_path = v;
        else if (strcmp(a, "--kv") == 0) {
            if (strcmp(v, "f32") == 0) kv = SMOE_KV_F32;
            else if (strcmp(v, "f16") == 0) kv = SMOE_KV_F16;
            else return cli_fail("--kv: '%s' is not f32 or f16", v);
        }
        else if (strcmp(a, "--batch") == 0) {
            if (cli_int(v, 1, 65536, &batch)) return cli_fail("--batch: '%s' is not an integer from 1 to 65536", v);
        } else return cli_fail("unknown option '%s' (see 'smoe logits --help')", a);
    }
    if (!path || !tok || !out) return cli_fail("give -m MODEL.gguf, --tokens IDS and -o OUT.f32");
    int32_t *tokens = NULL, n = 0;
    if (parse_tokens(tok, &tokens, &n)) return 1;
    int rc = run(path, tokens, n, batch ? (int32_t)(batch < n ? batch : n) : n, out, trace_path, kv);
    free(tokens);
    return rc;
}
