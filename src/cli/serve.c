/* serve.c - `smoe serve`: the OpenAI- and Ollama-compatible HTTP server
 * (src/server/, see server.h for its design).
 *
 * Startup: listen first (printing "listening on http://HOST:PORT", with the
 * port really bound when --port 0 asks for any), then load the model (GET
 * /health answers 503 meanwhile), then print "ready".  SIGINT and SIGTERM
 * are blocked in every thread and taken here with sigwait(): the server
 * drains (see srv_shutdown) and the process exits 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/common.h"
#include "../server/http.h"
#include "../server/server.h"
#include "gen_common.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe serve [-m MODEL.gguf] [options]\n"
    "  OpenAI API (/v1/chat/completions, /v1/completions, /v1/models) and Ollama API (/api/generate,\n"
    "  /api/chat, /api/tags, /api/show, /api/ps, /api/version) with streaming and continuous batching;\n"
    "  also /health, /metrics (Prometheus), /tokenize, /detokenize.\n"
    "  -m, --model FILE        GGUF model (default: the built-in synthetic model)\n"
    "  --host ADDR             address to listen on (default 127.0.0.1)\n"
    "  --port N                port (default 8080; 0 = any free port, printed)\n"
    "  --api-key KEY           require 'Authorization: Bearer KEY' (not for /, /health, /api/version)\n"
    "  --api-key-file FILE     the same, the key being the first line of FILE\n"
    "  --cors ORIGIN           send CORS headers allowing ORIGIN ('*' for any); off by default\n"
    "  --alias NAME            the model's id in the APIs (default: the file name without .gguf)\n"
    "  -np, --parallel N       sequences generated at once, each with its own KV cache (default 4)\n"
    "  -c, --ctx-size N        positions per sequence, prompt and answer (default 2048)\n"
    "  --chunk N               prompt tokens per engine step, over all new prompts (default 64)\n"
    "  --queue N               requests waiting for a free sequence; beyond: 503 (default 64)\n"
    "  --kv-type f16|f32       KV cache element type (default f16)\n"
    "  -t, --threads N         threads of the forward pass (default: all cores)\n"
    "  --chat-format v1|v3     override the chat format detected from the model\n"
    "limits:\n"
    "  --max-body BYTES        request body size (default 8388608; larger: 413)\n"
    "  --max-depth N           JSON nesting depth (default 64)\n"
    "  --max-messages N        messages per chat request (default 1024)\n"
    "  --max-tokens N          cap (and chat default) of max_tokens / num_predict (default 2048)\n"
    "  --max-logprobs N        cap of top_logprobs (default 20, at most 20)\n"
    "  --max-n N               cap of n, choices per request (default 8; also at most --parallel)\n"
    "  --max-connections N     open connections (default 128)\n"
    "  --timeout S             close a connection idle for S seconds (default 30)\n"
    "  --read-timeout S        a request, headers and body, must arrive whole within S seconds\n"
    "                          of its connection opening or of the previous answer (default 30)\n"
    "  --shutdown-timeout S    on SIGTERM, let requests finish for up to S seconds (default 30)\n"
    "  --quiet                 no log line per request\n";

static int read_key_file(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return cli_fail("--api-key-file %s: %s", path, strerror(errno));
    if (!fgets(out, (int)cap, f)) out[0] = 0;
    fclose(f);
    size_t n = strcspn(out, "\r\n");
    out[n] = 0;
    if (!*out) return cli_fail("--api-key-file %s: the first line is empty", path);
    return 0;
}

static bool pending_signal(void *user) {
    sigset_t *set = user;
    struct timespec zero = {0, 0};
    return sigtimedwait(set, NULL, &zero) > 0;
}

int cmd_serve(int argc, char **argv) {
    srv_opts o;
    srv_opts_defaults(&o);
    cli_gen g;
    cli_gen_defaults(&g);
    static char key[4096];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(help, stdout); return 0; }
        if (!strcmp(a, "--quiet")) { o.quiet = true; continue; }
        if (i + 1 >= argc) return cli_fail("unknown option '%s' or missing value (see 'smoe serve --help')", a);
        const char *v = argv[++i];
        long long x;
#define INT_FLAG(name, lo, hi, dst)                                                           \
    if (!strcmp(a, name)) {                                                                   \
        if (cli_int(v, lo, hi, &x)) return cli_fail("%s: '%s' is not an integer from %lld to %lld", a, v, \
                                                    (long long)(lo), (long long)(hi));        \
        dst = x;                                                                              \
        continue;                                                                             \
    }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { g.model_path = v; continue; }
        if (!strcmp(a, "--host")) { o.host = v; continue; }
        if (!strcmp(a, "--api-key")) {
            if (!*v) return cli_fail("--api-key: the key is empty");
            o.api_key = v;
            continue;
        }
        if (!strcmp(a, "--api-key-file")) {
            if (read_key_file(v, key, sizeof key)) return 1;
            o.api_key = key;
            continue;
        }
        if (!strcmp(a, "--cors")) { o.cors = v; continue; }
        if (!strcmp(a, "--alias")) { o.alias = v; continue; }
        if (!strcmp(a, "--chat-format")) { g.chat_format = v; continue; }
        if (!strcmp(a, "--kv-type")) {
            if (!strcmp(v, "f16")) o.kv_type = SMOE_KV_F16;
            else if (!strcmp(v, "f32")) o.kv_type = SMOE_KV_F32;
            else return cli_fail("--kv-type: '%s' is not f16 or f32", v);
            continue;
        }
        INT_FLAG("--port", 0, 65535, o.port)
        INT_FLAG("-np", 1, 256, o.parallel)
        INT_FLAG("--parallel", 1, 256, o.parallel)
        INT_FLAG("-c", 16, 1 << 20, o.n_ctx)
        INT_FLAG("--ctx-size", 16, 1 << 20, o.n_ctx)
        INT_FLAG("--chunk", 1, 4096, o.chunk)
        INT_FLAG("--queue", 0, 1 << 20, o.queue)
        INT_FLAG("-t", 1, 1024, g.threads)
        INT_FLAG("--threads", 1, 1024, g.threads)
        INT_FLAG("--max-body", 1, 1ll << 32, o.max_body)
        INT_FLAG("--max-depth", 1, 10000, o.max_depth)
        INT_FLAG("--max-messages", 1, 1 << 20, o.max_messages)
        INT_FLAG("--max-tokens", 1, 1 << 24, o.max_tokens)
        INT_FLAG("--max-logprobs", 0, SMOE_MAX_TOP_LOGPROBS, o.max_logprobs)
        INT_FLAG("--max-n", 1, 256, o.max_n)
        INT_FLAG("--max-connections", 1, 100000, o.max_connections)
        INT_FLAG("--timeout", 1, 86400, o.timeout_s)
        INT_FLAG("--read-timeout", 1, 86400, o.read_timeout_s)
        INT_FLAG("--shutdown-timeout", 0, 86400, o.shutdown_timeout_s)
#undef INT_FLAG
        return cli_fail("unknown option '%s' (see 'smoe serve --help')", a);
    }
    if (!g.model_path && !o.alias) o.alias = "smoe-default";
    o.threads = g.threads;

    /* signals: blocked everywhere (threads inherit the mask), taken by sigwait */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[SMOE_ERR_SIZE];
    srv *s = srv_new(&o, err);
    if (!s) return cli_fail("%s", err);
    if (srv_listen(s, err)) {
        srv_free(s);
        return cli_fail("%s", err);
    }
    const char *h = o.host;
    bool v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "smoe serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", h, v6 ? "]" : "", s->port);

    cli_loaded l;
    g.n_ctx = 16; /* cli_load's own session is not used: keep it tiny */
    int rc = 0;
    if (cli_load(&g, &l)) {
        rc = 1;
        srv_shutdown(s, NULL, NULL);
        srv_free(s);
        return rc;
    }
    smoe_session_free(l.session);
    l.session = NULL;
    const char *path = g.model_path ? g.model_path : "smoe-default";
    if (srv_set_model(s, l.model, l.tok, l.chat_format, path, l.load_ms, err)) {
        cli_fail("%s", err);
        srv_shutdown(s, NULL, NULL);
        srv_free(s);
        cli_unload(&l);
        return 1;
    }
    size_t kv = smoe_kv_bytes_per_pos(l.model, o.kv_type) * (size_t)s->o.n_ctx * (size_t)o.parallel;
    fprintf(stderr, "smoe serve: ready: model '%s' (%s chat format), %d sequences of %d positions (KV cache %.1f MiB), "
                    "load %.0f ms\n",
            s->model_id, l.chat_format == 3 ? "v3" : "v1", o.parallel, s->o.n_ctx, kv / 1048576.0, l.load_ms);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    fprintf(stderr, "smoe serve: %s: shutting down (finishing requests for up to %u s; again to cut short)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", o.shutdown_timeout_s);
    srv_shutdown(s, pending_signal, &sigs);
    srv_free(s);
    cli_unload(&l);
    fprintf(stderr, "smoe serve: stopped\n");
    return rc;
}
