/* main.c - the `smoe` command: dispatch to subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"

#include "cli.h"

static const char usage[] =
    "usage: smoe COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run    [-m MODEL.gguf] -p TEXT    stream a continuation (default model when no -m)\n"
    "  chat   [-m MODEL.gguf]            interactive multi-turn chat\n"
    "  info   -m MODEL.gguf             describe a model file after validating all of it\n"
    "  synth  --preset NAME -o OUT.gguf  write a deterministic synthetic Mixtral model\n"
    "  logits -m MODEL.gguf --tokens IDS -o OUT.f32\n"
    "                                   next-token logits for every position\n"
    "  quantize IN.gguf OUT.gguf TYPE   copy a model with its weight matrices quantized\n"
    "  tokenize -m FILE TEXT            token ids of TEXT (GGUF or SentencePiece .model)\n"
    "  grammar-check --json-schema F    compile a schema/grammar; check or generate documents\n"
    "  serve  [-m MODEL.gguf]            OpenAI- and Ollama-compatible HTTP server\n"
    "  bench  -m MODEL.gguf             prompt and generation speed, memory bandwidth, decode ceiling\n"
    "  perplexity -m MODEL.gguf -f TEXT perplexity over a text; --kl-base BASE.gguf: KL divergence\n"
    "\n"
    "run 'smoe COMMAND --help' for a command's options\n";

int cli_fail(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' '; /* always exactly one line */
    fprintf(stderr, "smoe: %s\n", buf);
    return 1;
}

int cli_int(const char *s, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf || bad) { free(buf); errno = bad ? EIO : ENOMEM; return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    smoe_json_alloc_init();   /* before any JSON: failures inside jansson become visible */
    const char *cmd = argv[1];
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "synth") == 0) return cmd_synth(argc - 1, argv + 1);
    if (strcmp(cmd, "logits") == 0) return cmd_logits(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "chat") == 0) return cmd_chat(argc - 1, argv + 1);
    if (strcmp(cmd, "quantize") == 0) return cmd_quantize(argc - 1, argv + 1);
    if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(argc - 1, argv + 1);
    if (strcmp(cmd, "grammar-check") == 0) return cmd_grammar_check(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "perplexity") == 0) return cmd_perplexity(argc - 1, argv + 1);
    cli_fail("unknown command '%s' (try 'smoe --help')", cmd);
    return 2;
}
