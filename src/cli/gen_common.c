/* gen_common.c - model loading, the default model and generation flags for
 * `smoe run` and `smoe chat`. */
#define _GNU_SOURCE
#include "gen_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../chat/chat.h"
#include "../base/clock.h"
#include "../base/common.h"
#include "../model/synth.h"
#include "smoe_gen.h"
#include "util.h"

const char cli_gen_help[] =
    "  -m, --model FILE        GGUF model (default: the built-in synthetic model)\n"
    "  -n, --n-predict N       tokens to generate (default 256; -1 = until the context is full)\n"
    "  -c, --ctx N             context size in tokens (default: the model's, at most 4096)\n"
    "  -t, --threads N         threads (default: all cores)\n"
    "  --temp X                temperature (default 0.8; 0 = greedy)\n"
    "  --top-k N               keep the N most likely tokens (default 40; 0 = off)\n"
    "  --top-p X               keep the smallest set with probability >= X (default 0.95; 1 = off)\n"
    "  --min-p X               drop tokens below X times the best one's probability (default 0.05)\n"
    "  --repeat-penalty X      penalise the last --repeat-last-n tokens (default 1 = off)\n"
    "  --repeat-last-n N       window of the penalties (default 64; -1 = whole context)\n"
    "  --presence-penalty X    subtract X from tokens already present (default 0)\n"
    "  --frequency-penalty X   subtract X per occurrence (default 0)\n"
    "  --logit-bias ID=X       add X to a token's logit (repeatable; X may be -inf)\n"
    "  --seed N                random seed (default 0); same seed, same output\n"
    "  --stop TEXT             stop before TEXT (repeatable, up to 16)\n"
    "  --chat-format v1|v3     override the chat format detected from the model\n";

void cli_gen_defaults(cli_gen *g) {
    memset(g, 0, sizeof *g);
    smoe_sampler_defaults(&g->gen.sampling);
    g->gen.max_tokens = 256;
    g->gen.stop = g->stops;
    g->gen.sampling.bias = g->bias;
}

static int parse_float(const char *flag, const char *v, float *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || isnan(x)) return cli_fail("%s: '%s' is not a number", flag, v), -1;
    *out = (float)x;
    return 0;
}

static int parse_int(const char *flag, const char *v, long long min, long long max, long long *out) {
    if (cli_int(v, min, max, out)) return cli_fail("%s: '%s' is not an integer from %lld to %lld", flag, v, min, max), -1;
    return 0;
}

int cli_gen_flag(cli_gen *g, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    smoe_sampler_params *s = &g->gen.sampling;
    static const char *const with_value[] = {
        "-m", "--model", "-n", "--n-predict", "-c", "--ctx", "-t", "--threads", "--temp", "--top-k", "--top-p",
        "--min-p", "--repeat-penalty", "--repeat-last-n", "--presence-penalty", "--frequency-penalty",
        "--logit-bias", "--seed", "--stop", "--chat-format"};
    bool known = false;
    for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) known |= strcmp(a, with_value[k]) == 0;
    if (!known) return 0;
    if (*i + 1 >= argc) return cli_fail("option '%s' needs a value", a), -1;
    const char *v = argv[++*i];
    long long x;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) g->model_path = v;
    else if (!strcmp(a, "--chat-format")) g->chat_format = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
        if (parse_int(a, v, -1, 1 << 24, &x)) return -1;
        g->gen.max_tokens = (int32_t)x;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
        if (parse_int(a, v, 16, 1 << 24, &x)) return -1;
        g->n_ctx = (int32_t)x;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (parse_int(a, v, 1, 1024, &x)) return -1;
        g->threads = (int)x;
    } else if (!strcmp(a, "--top-k")) {
        if (parse_int(a, v, 0, 1 << 24, &x)) return -1;
        s->top_k = (int32_t)x;
    } else if (!strcmp(a, "--repeat-last-n")) {
        if (parse_int(a, v, -1, 1 << 24, &x)) return -1;
        s->repeat_last_n = (int32_t)x;
    } else if (!strcmp(a, "--seed")) {
        if (parse_int(a, v, 0, INT64_MAX, &x)) return -1;
        s->seed = (uint64_t)x;
    } else if (!strcmp(a, "--stop")) {
        if (!*v) return cli_fail("--stop: the stop string is empty"), -1;
        if (g->gen.n_stop == 16) return cli_fail("--stop: at most 16 stop strings"), -1;
        g->stops[g->gen.n_stop++] = v;
    } else if (!strcmp(a, "--logit-bias")) {
        const char *eq = strchr(v, '=');
        char id[32];
        if (!eq || eq - v >= (long)sizeof id) return cli_fail("--logit-bias: expected ID=BIAS, got '%s'", v), -1;
        memcpy(id, v, (size_t)(eq - v));
        id[eq - v] = 0;
        if (s->n_bias == 64) return cli_fail("--logit-bias: at most 64"), -1;
        if (parse_int(a, id, 0, INT32_MAX, &x)) return -1;
        g->bias[s->n_bias].token = (int32_t)x;
        if (parse_float(a, eq + 1, &g->bias[s->n_bias].bias)) return -1;
        s->n_bias++;
    } else {
        float *dst = !strcmp(a, "--temp") ? &s->temperature
                     : !strcmp(a, "--top-p") ? &s->top_p
                     : !strcmp(a, "--min-p") ? &s->min_p
                     : !strcmp(a, "--repeat-penalty") ? &s->repeat_penalty
                     : !strcmp(a, "--presence-penalty") ? &s->presence_penalty
                                                        : &s->frequency_penalty;
        if (parse_float(a, v, dst)) return -1;
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * The built-in default model: made once, cached under the user's cache dir.
 * ------------------------------------------------------------------------- */

static int mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int default_model_path(char *out, size_t n) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[4000];
    if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/smoe", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/smoe", home);
    else return cli_fail("cannot place the default model: neither XDG_CACHE_HOME nor HOME is set"), -1;
    if (mkdirs(dir)) return cli_fail("cannot create %s: %s", dir, strerror(errno)), -1;
    snprintf(out, n, "%s/default-tiny-v1.gguf", dir);
    struct stat st;
    if (stat(out, &st) == 0) return 0;
    smoe_synth_opts o;
    smoe_synth_preset("tiny", &o);
    o.seed = 20261122;
    o.readable = true;
    o.name = "smoe default (synthetic, random weights)";
    char err[SMOE_ERR_SIZE];
    fprintf(stderr, "smoe: creating the built-in default model at %s\n", out);
    if (smoe_synth_write(&o, out, err)) return cli_fail("%s", err), -1;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------- */

int cli_load(const cli_gen *g, cli_loaded *out) {
    memset(out, 0, sizeof *out);
    char path[4096], err[SMOE_ERR_SIZE];
    if (g->model_path) snprintf(path, sizeof path, "%s", g->model_path);
    else if (default_model_path(path, sizeof path)) return -1;
#ifdef _OPENMP
    if (g->threads > 0) omp_set_num_threads(g->threads);
#endif
    double t0 = smoe_now_ms();
    if (!(out->model = smoe_model_load(path, err))) return cli_fail("%s", err), -1;
    /* the tokenizer and the chat format as the public API gives them
     * (include/smoe_gen.h), so that a program embedding smoe sees what
     * `smoe run` sees */
    if (!(out->tok = smoe_tokenizer_from_model(out->model, err))) { cli_fail("%s: %s", path, err); goto fail; }
    const char *format = g->chat_format ? g->chat_format : smoe_model_chat_format(out->model);
    out->chat_format = smoe_chat_format_from_name(format);
    if (out->chat_format < 0) { cli_fail("--chat-format: '%s' is not v1 or v3", g->chat_format); goto fail; }
    if (!(out->session = smoe_session_new(out->model, out->tok, g->n_ctx, err))) { cli_fail("%s", err); goto fail; }
    char check[SMOE_ERR_SIZE];
    if (smoe_sampler_check(&g->gen.sampling, out->model->hp.n_vocab, check)) { cli_fail("%s", check); goto fail; }
    out->load_ms = smoe_now_ms() - t0;
    return 0;
fail:
    cli_unload(out);
    return -1;
}

void cli_unload(cli_loaded *l) {
    smoe_session_free(l->session);
    smoe_tokenizer_free(l->tok);
    smoe_model_free(l->model);
    memset(l, 0, sizeof *l);
}

double cli_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}
