/* bench.c - `smoe bench`: prompt-processing and generation speed of a model,
 * next to the memory bandwidth of this machine and the decode speed that
 * bandwidth allows.
 *
 *   ppN   one sequence, N random tokens in one forward batch (only the last
 *         asks for logits): N / time
 *   tgN   one sequence, N random tokens one forward call each, from an
 *         empty cache, each with logits: N / time
 *
 * Each test runs -r times (after a warm-up that reads every page of the
 * file and runs one token); the figures are mean +- sample standard
 * deviation of the tokens/s of the repetitions.
 *
 * Bandwidth: a streaming read (a sum of 64-bit words, split statically
 * across the same threads) over a buffer far larger than the caches, best
 * of 5.  Bytes read per generated token, from the tensors' sizes in the
 * file: every tensor whole (attention, norms, router, output head) except
 * the experts, of which k of n are read (their share k/n of the expert
 * bytes), and the token embedding, of which one row is read (the whole of
 * it when it doubles as the output head).  KV-cache reads are left out
 * (small at these lengths).  The ceiling is bandwidth / bytes per token;
 * tgN is shown as a percentage of it. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../base/clock.h"
#include "../base/common.h"
#include "../kernels/types.h"
#include "../model/model.h"
#include "gen_common.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe bench -m MODEL.gguf [options]\n"
    "  measures prompt processing (ppN: N tokens in one batch) and generation (tgN: N tokens\n"
    "  one at a time) in tokens/s, mean +- sd over the repetitions; the memory bandwidth\n"
    "  measured on the spot and the decode ceiling it implies (bandwidth / bytes of weights\n"
    "  read per generated token), and tg as a percentage of that ceiling\n"
    "  -r, --reps N       repetitions of each test (default 3)\n"
    "  -t, --threads N    threads (default: all cores)\n"
    "  -p, --n-prompt L   prompt lengths, comma-separated (default 64,512; 0 = none)\n"
    "  -n, --n-gen L      generation lengths, comma-separated (default 128; 0 = none)\n"
    "  --kv f16|f32       KV-cache type (default f16, as generation uses)\n"
    "  --bw-mib N         size of the bandwidth test's buffer in MiB (default 1024;\n"
    "                     0 = skip the bandwidth test)\n"
    "  --json             one JSON object per test on its own line instead of the table\n";

#define MAX_TESTS 16
#define BW_TRIES 5

typedef struct bench_test {
    bool gen; /* tg, else pp */
    int32_t n;
    double *tps; /* tokens/s per repetition */
    double mean, sd;
} bench_test;

static int threads_now(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int parse_list(const char *flag, const char *v, bench_test *tests, int *n_tests, bool gen) {
    const char *p = v;
    while (*p) {
        char num[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof num) return cli_fail("%s: expected comma-separated lengths, got '%s'", flag, v);
        memcpy(num, p, len);
        num[len] = 0;
        long long x;
        if (cli_int(num, 0, 1 << 20, &x)) return cli_fail("%s: '%s' is not an integer from 0 to 1048576", flag, num);
        if (x > 0) {
            if (*n_tests == MAX_TESTS) return cli_fail("at most %d tests", MAX_TESTS);
            tests[(*n_tests)++] = (bench_test){gen, (int32_t)x, NULL, 0, 0};
        }
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Memory bandwidth and bytes per token
 * ------------------------------------------------------------------------- */

/* Best streaming-read bandwidth in bytes/s over `mib` MiB; 0 on failure. */
static double measure_bandwidth(size_t mib) {
    const size_t n = mib * 1048576 / sizeof(uint64_t);
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, n * sizeof(uint64_t))) return 0;
    /* first touch from the threads that will read, so pages sit near them */
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = i;
    double best = 0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < BW_TRIES; r++) {
        uint64_t sum = 0;
        double t0 = (smoe_now_ms() / 1e3);
        #pragma omp parallel for simd schedule(static) reduction(+ : sum)
        for (size_t i = 0; i < n; i++) sum += buf[i];
        double dt = (smoe_now_ms() / 1e3) - t0;
        sink += sum;
        if (dt > 0 && (double)(n * sizeof(uint64_t)) / dt > best) best = (double)(n * sizeof(uint64_t)) / dt;
    }
    (void)sink;
    free(buf);
    return best;
}

/* Is this tensor one expert's FFN weights (merged or per expert)? */
static bool is_expert_tensor(gguf_str name) {
    char n[GGUF_MAX_NAME_LEN + 1];
    snprintf(n, sizeof n, "%.*s", (int)name.len, name.p);
    int L, used = 0;
    if (sscanf(n, "blk.%d.%n", &L, &used) != 1 || used == 0) return false;
    const char *rest = n + used;
    static const char *const kinds[] = {"ffn_gate", "ffn_up", "ffn_down"};
    for (int k = 0; k < 3; k++) {
        size_t kl = strlen(kinds[k]);
        if (strncmp(rest, kinds[k], kl) != 0) continue;
        const char *tail = rest + kl;
        if (strcmp(tail, "_exps.weight") == 0) return true;
        int e, u2 = 0;
        if (sscanf(tail, ".%d.weight%n", &e, &u2) == 1 && u2 > 0 && tail[u2] == 0) return true;
    }
    return false;
}

/* Bytes of weights read to generate one token. */
static double bytes_per_token(const smoe_model *m) {
    const gguf_file *f = m->file;
    const smoe_hparams *hp = &m->hp;
    double total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (gguf_str_eq(t->name, "token_embd.weight") && !hp->tied_output)
            total += (double)t->nbytes / (double)hp->n_vocab; /* one row */
        else if (hp->n_experts && is_expert_tensor(t->name))
            total += (double)t->nbytes * hp->n_experts_used / hp->n_experts;
        else
            total += (double)t->nbytes;
    }
    return total;
}

/* ---------------------------------------------------------------------------
 * The tests
 * ------------------------------------------------------------------------- */

/* Read every page of the file once, so no test pays for page faults. */
static void touch_pages(const gguf_file *f) {
    volatile uint8_t sink = 0;
    uint8_t acc = 0;
    for (size_t off = 0; off < f->size; off += 4096) acc ^= f->data[off];
    sink = acc;
    (void)sink;
}

static int run_test(smoe_ctx *c, smoe_seq *s, const bench_test *t, const int32_t *tokens, smoe_batch_entry *e,
                    float *logits, double *secs, char *err) {
    double t0 = (smoe_now_ms() / 1e3);
    if (!t->gen) {
        for (int32_t i = 0; i < t->n; i++) e[i] = (smoe_batch_entry){s, i, tokens[i], i == t->n - 1};
        if (smoe_forward(c, e, t->n, logits, err)) return -1;
    } else {
        for (int32_t i = 0; i < t->n; i++) {
            e[0] = (smoe_batch_entry){s, i, tokens[i], true};
            if (smoe_forward(c, e, 1, logits, err)) return -1;
        }
    }
    *secs = (smoe_now_ms() / 1e3) - t0;
    return 0;
}

static void stats(bench_test *t, int reps) {
    double sum = 0, ss = 0;
    for (int r = 0; r < reps; r++) sum += t->tps[r];
    t->mean = sum / reps;
    for (int r = 0; r < reps; r++) ss += (t->tps[r] - t->mean) * (t->tps[r] - t->mean);
    t->sd = reps > 1 ? sqrt(ss / (reps - 1)) : 0;
}

static void type_summary(const gguf_file *f, char *buf, size_t cap) {
    uint64_t count[SMOE_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++) count[f->tensors[i].type]++;
    size_t o = 0;
    buf[0] = 0;
    for (int t = 0; t < SMOE_TYPE_COUNT && o < cap; t++)
        if (count[t])
            o += (size_t)snprintf(buf + o, cap - o, "%s%s %" PRIu64, o ? ", " : "", smoe_type_get((uint32_t)t)->name,
                                  count[t]);
}

int cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    long long reps = 3, threads = 0, bw_mib = 1024;
    bool json = false, p_set = false, n_set = false;
    smoe_kv_type kv = SMOE_KV_F16;
    bench_test tests[MAX_TESTS];
    int n_pp = 0, n_tg = 0;
    bench_test pp[MAX_TESTS], tg[MAX_TESTS];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(help, stdout); return 0; }
        if (!strcmp(a, "--json")) { json = true; continue; }
        if (i + 1 >= argc) return cli_fail("option '%s' needs a value (or is unknown; see 'smoe bench --help')", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) path = v;
        else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            if (cli_int(v, 1, 1000, &reps)) return cli_fail("%s: '%s' is not an integer from 1 to 1000", a, v);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_int(v, 1, 1024, &threads)) return cli_fail("%s: '%s' is not an integer from 1 to 1024", a, v);
        } else if (!strcmp(a, "--bw-mib")) {
            if (cli_int(v, 0, 1 << 20, &bw_mib)) return cli_fail("%s: '%s' is not an integer from 0 to 1048576", a, v);
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            n_pp = 0;
            p_set = true;
            if (parse_list(a, v, pp, &n_pp, false)) return 1;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            n_tg = 0;
            n_set = true;
            if (parse_list(a, v, tg, &n_tg, true)) return 1;
        } else if (!strcmp(a, "--kv")) {
            if (!strcmp(v, "f16")) kv = SMOE_KV_F16;
            else if (!strcmp(v, "f32")) kv = SMOE_KV_F32;
            else return cli_fail("--kv: '%s' is not f16 or f32", v);
        } else return cli_fail("unknown option '%s' (see 'smoe bench --help')", a);
    }
    if (!path) return cli_fail("no model: give -m MODEL.gguf");
    if (!p_set) { pp[0] = (bench_test){false, 64, NULL, 0, 0}; pp[1] = (bench_test){false, 512, NULL, 0, 0}; n_pp = 2; }
    if (!n_set) { tg[0] = (bench_test){true, 128, NULL, 0, 0}; n_tg = 1; }
    int n_tests = 0;
    for (int i = 0; i < n_pp; i++) tests[n_tests++] = pp[i];
    for (int i = 0; i < n_tg && n_tests < MAX_TESTS; i++) tests[n_tests++] = tg[i];
    if (n_tests == 0) return cli_fail("nothing to measure: -p and -n are both 0");
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads((int)threads);
#endif
    const int nth = threads_now();

    char err[SMOE_ERR_SIZE];
    smoe_model *m = smoe_model_load(path, err);
    if (!m) return cli_fail("%s", err);
    const smoe_hparams *hp = &m->hp;
    int rc = 1;
    int32_t max_n = 1, max_batch = 1;
    for (int i = 0; i < n_tests; i++) {
        if (tests[i].n > max_n) max_n = tests[i].n;
        if (!tests[i].gen && tests[i].n > max_batch) max_batch = tests[i].n;
    }
    smoe_seq *s = NULL;
    smoe_ctx *c = NULL;
    int32_t *tokens = malloc((size_t)max_n * sizeof *tokens);
    smoe_batch_entry *e = malloc((size_t)max_batch * sizeof *e);
    float *logits = malloc((size_t)hp->n_vocab * sizeof(float));
    double *tps = calloc((size_t)n_tests * (size_t)reps, sizeof(double));
    if (!tokens || !e || !logits || !tps) { cli_fail("out of memory"); goto out; }
    if (!(s = smoe_seq_new_typed(m, max_n, kv, err)) || !(c = smoe_ctx_new(m, max_batch, err))) {
        cli_fail("%s", err);
        goto out;
    }
    uint64_t rng = 0x5eed;
    for (int32_t i = 0; i < max_n; i++) tokens[i] = (int32_t)(smoe_splitmix64(&rng) % (uint64_t)hp->n_vocab);

    /* warm-up: fault in the file, then one token through the model */
    touch_pages(m->file);
    bench_test warm = {true, 1, NULL, 0, 0};
    double secs;
    if (run_test(c, s, &warm, tokens, e, logits, &secs, err)) { cli_fail("%s", err); goto out; }

    for (int i = 0; i < n_tests; i++) {
        tests[i].tps = tps + (size_t)i * (size_t)reps;
        for (int r = 0; r < reps; r++) {
            if (run_test(c, s, &tests[i], tokens, e, logits, &secs, err)) { cli_fail("%s", err); goto out; }
            tests[i].tps[r] = secs > 0 ? tests[i].n / secs : 0;
        }
        stats(&tests[i], (int)reps);
    }
    const double rss = cli_peak_rss_mib();
    smoe_ctx_free(c);
    smoe_seq_free(s);
    c = NULL;
    s = NULL;

    const double bw = bw_mib ? measure_bandwidth((size_t)bw_mib) : 0;
    const double bpt = bytes_per_token(m);
    const double ceiling = bw > 0 ? bw / bpt : 0;
    uint64_t params, active;
    smoe_model_param_counts(m, &params, &active);
    uint64_t data_bytes = 0;
    for (uint64_t i = 0; i < m->file->n_tensors; i++) data_bytes += m->file->tensors[i].nbytes;
    char types[512];
    type_summary(m->file, types, sizeof types);

    if (json) {
        for (int i = 0; i < n_tests; i++) {
            const bench_test *t = &tests[i];
            char name[32];
            snprintf(name, sizeof name, "%s%d", t->gen ? "tg" : "pp", t->n);
            json_t *samples = json_array();
            for (int r = 0; r < reps; r++) json_array_append_new(samples, json_real(t->tps[r]));
            json_t *o = json_object();
            json_object_set_new(o, "model", json_string(path));
            json_object_set_new(o, "model_bytes", json_integer((json_int_t)m->file->size));
            json_object_set_new(o, "tensor_bytes", json_integer((json_int_t)data_bytes));
            json_object_set_new(o, "tensor_types", json_string(types));
            json_object_set_new(o, "params", json_integer((json_int_t)params));
            json_object_set_new(o, "params_active", json_integer((json_int_t)active));
            json_object_set_new(o, "threads", json_integer(nth));
            json_object_set_new(o, "kv_type", json_string(kv == SMOE_KV_F16 ? "f16" : "f32"));
            json_object_set_new(o, "test", json_string(name));
            json_object_set_new(o, "n_prompt", json_integer(t->gen ? 0 : t->n));
            json_object_set_new(o, "n_gen", json_integer(t->gen ? t->n : 0));
            json_object_set_new(o, "reps", json_integer(reps));
            json_object_set_new(o, "tokens_per_s", json_real(t->mean));
            json_object_set_new(o, "tokens_per_s_sd", json_real(t->sd));
            json_object_set_new(o, "samples_tokens_per_s", samples);
            json_object_set_new(o, "bandwidth_bytes_per_s", bw > 0 ? json_real(bw) : json_null());
            json_object_set_new(o, "bytes_per_token", json_real(bpt));
            json_object_set_new(o, "ceiling_tokens_per_s", ceiling > 0 ? json_real(ceiling) : json_null());
            json_object_set_new(o, "percent_of_ceiling",
                                t->gen && ceiling > 0 ? json_real(100.0 * t->mean / ceiling) : json_null());
            json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)(rss * 1048576.0)));
            char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(o);
            if (!line) { cli_fail("out of memory"); goto out; }
            puts(line);
            free(line);
        }
    } else {
        printf("model:       %s\n", path);
        printf("             %.3f B parameters, %.3f B active per token; file %.2f MiB (%s)\n", params / 1e9,
               active / 1e9, (double)m->file->size / 1048576.0, types);
        printf("threads:     %d   repetitions: %lld   kv cache: %s\n", nth, reps, kv == SMOE_KV_F16 ? "F16" : "F32");
        if (bw > 0)
            printf("bandwidth:   %.2f GB/s (streaming read of %lld MiB, %d threads, best of %d)\n", bw / 1e9, bw_mib,
                   nth, BW_TRIES);
        else
            printf("bandwidth:   not measured (--bw-mib 0)\n");
        printf("per token:   %.2f MiB of weights read per generated token (attention, norms, router, output: all;\n"
               "             experts: %d of %d; token embedding: %s)\n",
               bpt / 1048576.0, hp->n_experts ? hp->n_experts_used : 1, hp->n_experts ? hp->n_experts : 1,
               hp->tied_output ? "all, as the output head" : "one row");
        if (ceiling > 0) printf("ceiling:     %.2f tokens/s (bandwidth / bytes per token)\n", ceiling);
        printf("\n%-8s %22s\n", "test", "tokens/s");
        for (int i = 0; i < n_tests; i++) {
            const bench_test *t = &tests[i];
            char name[32], val[64];
            snprintf(name, sizeof name, "%s%d", t->gen ? "tg" : "pp", t->n);
            snprintf(val, sizeof val, "%.2f ± %.2f", t->mean, t->sd);
            printf("%-8s %23s", name, val); /* ± is two bytes */
            if (t->gen && ceiling > 0) printf("   %5.1f%% of the ceiling", 100.0 * t->mean / ceiling);
            putchar('\n');
        }
        printf("\npeak RSS:    %.1f MiB\n", rss);
    }
    rc = 0;
out:
    smoe_ctx_free(c);
    smoe_seq_free(s);
    free(tokens);
    free(e);
    free(logits);
    free(tps);
    smoe_model_free(m);
    return rc;
}
