/* perplexity.c - `smoe perplexity`: how well a model predicts a text, and
 * (with --kl-base) how far its next-token distributions are from another
 * model's, usually the unquantized original.
 *
 * Windowing (the llama.cpp convention): the text is tokenized once, without
 * BOS, and cut into consecutive, non-overlapping windows of --ctx tokens;
 * each window starts with BOS (when the vocabulary adds one) followed by
 * ctx-1 text tokens, and is run from an empty cache.  Only the second half
 * of each window is scored: the tokens at window positions ctx/2 .. ctx-1,
 * each predicted from the logits of the position before, so every scored
 * token has at least ctx/2 - 1 tokens of context.  A tail shorter than a
 * window is not used.
 *
 *   perplexity = exp(mean over scored tokens of -ln p(token))
 *   KL         = mean over scored tokens of sum_v p_base(v) ln(p_base(v) / p(v))
 *   top-1      = share of scored positions where both models' most likely
 *                token is the same
 *
 * The ± figures are standard errors of the means. */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../base/common.h"
#include "../model/model.h"
#include "../tokenizer/tokenizer.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe perplexity -m MODEL.gguf -f TEXT.txt [options]\n"
    "  perplexity of MODEL over the text: windows of --ctx tokens (BOS + ctx-1 text tokens,\n"
    "  each from an empty cache), the second half of each window scored (positions ctx/2 to\n"
    "  ctx-1, so every scored token sees at least ctx/2-1 tokens before it); the tail shorter\n"
    "  than a window is not used\n"
    "  -c, --ctx N          window length in tokens (default 512)\n"
    "  --chunks N           use at most the first N windows (default: all)\n"
    "  --kl-base BASE.gguf  also: mean KL divergence of MODEL's next-token distribution from\n"
    "                       BASE's (KL(base || model), nats per token), top-1 agreement, and\n"
    "                       BASE's perplexity; BASE must have the same vocabulary\n"
    "  -t, --threads N      threads (default: all cores)\n"
    "  --kv f16|f32         KV-cache type (default f16, as generation uses; f32 is exact)\n"
    "  --json               one JSON object instead of the text report\n";

#define BATCH 256

typedef struct acc {
    double sum, sumsq;
    int64_t n;
} acc;

static void acc_add(acc *a, double x) {
    a->sum += x;
    a->sumsq += x * x;
    a->n++;
}
static double acc_mean(const acc *a) { return a->n ? a->sum / (double)a->n : 0; }
/* standard error of the mean */
static double acc_se(const acc *a) {
    if (a->n < 2) return 0;
    double m = acc_mean(a), var = (a->sumsq - (double)a->n * m * m) / (double)(a->n - 1);
    return var > 0 ? sqrt(var / (double)a->n) : 0;
}

/* log-softmax of x (n values) into out, in double; returns the argmax. */
static int32_t log_softmax(const float *x, int32_t n, double *out) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    double mx = x[best], sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    for (int32_t i = 0; i < n; i++) out[i] = (double)x[i] - lse;
    return best;
}

typedef struct runner {
    smoe_model *m;
    smoe_seq *s;
    smoe_ctx *c;
    float *logits; /* BATCH x n_vocab */
} runner;

static void runner_free(runner *r) {
    smoe_ctx_free(r->c);
    smoe_seq_free(r->s);
    free(r->logits);
    smoe_model_free(r->m);
}

static int runner_open(runner *r, const char *path, int32_t ctx, smoe_kv_type kv) {
    char err[SMOE_ERR_SIZE];
    memset(r, 0, sizeof *r);
    if (!(r->m = smoe_model_load(path, err))) return cli_fail("%s", err);
    if (!(r->s = smoe_seq_new_typed(r->m, ctx, kv, err)) || !(r->c = smoe_ctx_new(r->m, BATCH, err))) {
        runner_free(r);
        return cli_fail("%s", err);
    }
    if (!(r->logits = malloc((size_t)BATCH * (size_t)r->m->hp.n_vocab * sizeof(float)))) {
        runner_free(r);
        return cli_fail("out of memory for logits");
    }
    return 0;
}

int cmd_perplexity(int argc, char **argv) {
    const char *path = NULL, *text_path = NULL, *base_path = NULL;
    long long ctx = 512, chunks = 0, threads = 0;
    bool json = false;
    smoe_kv_type kv = SMOE_KV_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(help, stdout); return 0; }
        if (!strcmp(a, "--json")) { json = true; continue; }
        if (i + 1 >= argc) return cli_fail("option '%s' needs a value (or is unknown; see 'smoe perplexity --help')", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) path = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) text_path = v;
        else if (!strcmp(a, "--kl-base")) base_path = v;
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (cli_int(v, 4, 1 << 20, &ctx)) return cli_fail("%s: '%s' is not an integer from 4 to 1048576", a, v);
        } else if (!strcmp(a, "--chunks")) {
            if (cli_int(v, 1, INT32_MAX, &chunks)) return cli_fail("%s: '%s' is not a positive integer", a, v);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_int(v, 1, 1024, &threads)) return cli_fail("%s: '%s' is not an integer from 1 to 1024", a, v);
        } else if (!strcmp(a, "--kv")) {
            if (!strcmp(v, "f16")) kv = SMOE_KV_F16;
            else if (!strcmp(v, "f32")) kv = SMOE_KV_F32;
            else return cli_fail("--kv: '%s' is not f16 or f32", v);
        } else return cli_fail("unknown option '%s' (see 'smoe perplexity --help')", a);
    }
    if (!path) return cli_fail("no model: give -m MODEL.gguf");
    if (!text_path) return cli_fail("no text: give -f TEXT.txt");
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads((int)threads);
#endif

    char err[SMOE_ERR_SIZE];
    int rc = 1;
    runner mod = {0}, base = {0};
    smoe_tokenizer *tok = NULL;
    smoe_tokens toks = {0};
    double *lp = NULL, *lq = NULL;
    size_t text_len = 0;
    char *text = cli_read_file(text_path, &text_len);
    if (!text) return cli_fail("%s: cannot read", text_path);
    if (runner_open(&mod, path, (int32_t)ctx, kv)) goto out;
    const smoe_vocab *voc = &mod.m->vocab;
    const int32_t V = mod.m->hp.n_vocab;
    if (voc->n_tokens == 0) {
        cli_fail("%s: the model file has no tokenizer (tokenizer.ggml.tokens); it cannot turn text into tokens", path);
        goto out;
    }
    if (!(tok = smoe_tokenizer_new(voc, err))) { cli_fail("%s: %s", path, err); goto out; }
    if (smoe_tokenize(tok, text, text_len, voc->add_space_prefix, &toks, err)) { cli_fail("%s", err); goto out; }
    if (base_path) {
        if (runner_open(&base, base_path, (int32_t)ctx, kv)) goto out;
        if (base.m->hp.n_vocab != V) {
            cli_fail("--kl-base: %s has %d tokens in its vocabulary, %s has %d", base_path, base.m->hp.n_vocab, path, V);
            goto out;
        }
    }

    const int32_t bos = voc->add_bos && voc->bos_id >= 0 ? voc->bos_id : -1;
    const int32_t C = (int32_t)ctx, per_window = C - (bos >= 0), first = C / 2;
    int64_t n_windows = toks.n / per_window;
    if (n_windows < 1) {
        cli_fail("%s: %d tokens, fewer than one window of %d (lower --ctx)", text_path, toks.n, per_window);
        goto out;
    }
    if (chunks && n_windows > chunks) n_windows = chunks;
    lp = malloc((size_t)V * sizeof(double));
    lq = malloc((size_t)V * sizeof(double));
    int32_t *win = malloc((size_t)C * sizeof(int32_t));
    smoe_batch_entry *e = malloc(BATCH * sizeof *e), *eb = malloc(BATCH * sizeof *eb);
    if (!lp || !lq || !win || !e || !eb) {
        free(win); free(e); free(eb);
        cli_fail("out of memory");
        goto out;
    }
    const bool tty = !json && isatty(STDERR_FILENO) == 1;
    acc nll = {0}, base_nll = {0}, kl = {0};
    int64_t agree = 0;
    bool failed = false;
    for (int64_t w = 0; w < n_windows && !failed; w++) {
        int32_t o = 0;
        if (bos >= 0) win[o++] = bos;
        memcpy(win + o, toks.ids + (size_t)w * (size_t)per_window, (size_t)per_window * sizeof(int32_t));
        for (int32_t b0 = 0; b0 < C && !failed; b0 += BATCH) {
            const int32_t cnt = C - b0 < BATCH ? C - b0 : BATCH;
            /* logits at position q predict the token at q + 1: wanted for
             * q + 1 in [first, C) */
            for (int32_t j = 0; j < cnt; j++) {
                const int32_t q = b0 + j;
                const bool want = q + 1 >= first && q + 1 < C;
                e[j] = (smoe_batch_entry){mod.s, q, win[q], want};
                eb[j] = (smoe_batch_entry){base.s, q, win[q], want};
            }
            if (smoe_forward(mod.c, e, cnt, mod.logits, err) ||
                (base_path && smoe_forward(base.c, eb, cnt, base.logits, err))) {
                cli_fail("%s", err);
                failed = true;
                break;
            }
            int32_t row = 0;
            for (int32_t j = 0; j < cnt; j++) {
                if (!e[j].want_logits) continue;
                const int32_t target = win[b0 + j + 1];
                const int32_t top = log_softmax(mod.logits + (size_t)row * V, V, lq);
                acc_add(&nll, -lq[target]);
                if (base_path) {
                    const int32_t btop = log_softmax(base.logits + (size_t)row * V, V, lp);
                    acc_add(&base_nll, -lp[target]);
                    double d = 0;
                    for (int32_t v = 0; v < V; v++) d += exp(lp[v]) * (lp[v] - lq[v]);
                    acc_add(&kl, d > 0 ? d : 0); /* rounding can give -1e-17 */
                    agree += top == btop;
                }
                row++;
            }
        }
        if (tty) {
            fprintf(stderr, "\rperplexity: window %lld/%lld, so far %.4f", (long long)w + 1, (long long)n_windows,
                    exp(acc_mean(&nll)));
            fflush(stderr);
        }
    }
    if (tty) fputs("\r\033[K", stderr);
    free(win);
    free(e);
    free(eb);
    if (failed) goto out;

    const double ppl = exp(acc_mean(&nll));
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "model", json_string(path));
        json_object_set_new(o, "text", json_string(text_path));
        json_object_set_new(o, "ctx", json_integer(C));
        json_object_set_new(o, "kv_type", json_string(kv == SMOE_KV_F16 ? "f16" : "f32"));
        json_object_set_new(o, "text_tokens", json_integer(toks.n));
        json_object_set_new(o, "windows", json_integer(n_windows));
        json_object_set_new(o, "scored", json_integer(nll.n));
        json_object_set_new(o, "perplexity", json_real(ppl));
        json_object_set_new(o, "ln_perplexity", json_real(acc_mean(&nll)));
        json_object_set_new(o, "ln_perplexity_se", json_real(acc_se(&nll)));
        if (base_path) {
            json_object_set_new(o, "base", json_string(base_path));
            json_object_set_new(o, "base_perplexity", json_real(exp(acc_mean(&base_nll))));
            json_object_set_new(o, "kl_mean", json_real(acc_mean(&kl)));
            json_object_set_new(o, "kl_se", json_real(acc_se(&kl)));
            json_object_set_new(o, "top1_agreement", json_real((double)agree / (double)kl.n));
        }
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!line) { cli_fail("out of memory"); goto out; }
        puts(line);
        free(line);
    } else {
        printf("%s: %d text tokens, %lld windows of %d (BOS %s), the last %d of each scored: %lld tokens\n", text_path,
               toks.n, (long long)n_windows, C, bos >= 0 ? "first" : "none", C - first, (long long)nll.n);
        printf("perplexity:      %.4f (ln %.6f ± %.6f)   %s\n", ppl, acc_mean(&nll), acc_se(&nll), path);
        if (base_path) {
            printf("base perplexity: %.4f (ln %.6f ± %.6f)   %s\n", exp(acc_mean(&base_nll)), acc_mean(&base_nll),
                   acc_se(&base_nll), base_path);
            printf("KL divergence:   %.6g ± %.2g nats per token (KL(base || model), mean over scored tokens)\n",
                   acc_mean(&kl), acc_se(&kl));
            printf("top-1 agreement: %.2f%% (%lld of %lld)\n", 100.0 * (double)agree / (double)kl.n, (long long)agree,
                   (long long)kl.n);
        }
    }
    rc = 0;
out:
    free(lp);
    free(lq);
    smoe_tokens_free(&toks);
    smoe_tokenizer_free(tok);
    runner_free(&base);
    runner_free(&mod);
    free(text);
    return rc;
}
