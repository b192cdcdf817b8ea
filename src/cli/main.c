/* main.c - the `smoe` command: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "../base/common.h"
#include "../json/jsonmem.h"

#include "cli.h"
#include "util.h"

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
