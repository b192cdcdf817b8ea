/* synth_cmd.c - `smoe synth`: write a synthetic test model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "../kernels/types.h"
#include "../model/synth.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe synth [--preset tiny|small|bench] -o OUT.gguf [options]\n"
    "  --preset NAME      tiny (dim 128, 2 layers), small (dim 256, 4 layers),\n"
    "                     bench (dim 1024, 16 layers, vocab 32000); default tiny\n"
    "  --type T           f32, f16 or bf16 weights (default f32)\n"
    "  --layout L         merged (3-D expert tensors, default) or split (one per expert)\n"
    "  --seed N           random seed (default 1)\n"
    "  --vocab FILE       take the vocabulary from a .gguf or SentencePiece .model file\n"
    "  --dim N --layers N --heads N --kv-heads N --ffn N --experts N (0 = dense)\n"
    "  --top-k N --ctx N --vocab-size N --rope-theta X   override the preset\n"
    "  --tied             no output.weight: the LM head reuses the embedding\n"
    "  --identical-experts  every expert gets the same weights\n"
    "  --readable         favour printable ASCII in the LM head (built-in vocabulary)\n"
    "  --name NAME        general.name\n";

typedef struct int_flag {
    const char *flag;
    int32_t *dst;
    long long min, max;
} int_flag;

int cmd_synth(int argc, char **argv) {
    smoe_synth_opts o;
    const char *preset = "tiny", *out = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--preset") == 0) preset = argv[i + 1];
    if (smoe_synth_preset(preset, &o)) return cli_fail("unknown preset '%s' (tiny, small, bench)", preset);
    int_flag ints[] = {
        {"--dim", &o.dim, 2, 65536},          {"--layers", &o.n_layers, 1, 1024},
        {"--heads", &o.n_heads, 1, 1024},     {"--kv-heads", &o.n_kv_heads, 1, 1024},
        {"--ffn", &o.ffn_dim, 1, 1 << 20},    {"--experts", &o.n_experts, 0, 256},
        {"--top-k", &o.n_experts_used, 1, 256}, {"--ctx", &o.n_ctx, 1, 1 << 24},
        {"--vocab-size", &o.vocab_size, 259, 1 << 22},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { fputs(help, stdout); return 0; }
        if (strcmp(a, "--tied") == 0) { o.tied_output = true; continue; }
        if (strcmp(a, "--identical-experts") == 0) { o.identical_experts = true; continue; }
        if (strcmp(a, "--readable") == 0) { o.readable = true; continue; }
        if (!v) return cli_fail("option '%s' needs a value (or is unknown; see 'smoe synth --help')", a);
        i++;
        bool done = false;
        for (size_t j = 0; j < sizeof ints / sizeof *ints && !done; j++) {
            if (strcmp(a, ints[j].flag)) continue;
            long long x;
            if (cli_int(v, ints[j].min, ints[j].max, &x))
                return cli_fail("%s: '%s' is not an integer from %lld to %lld", a, v, ints[j].min, ints[j].max);
            *ints[j].dst = (int32_t)x;
            done = true;
        }
        if (done) continue;
        if (strcmp(a, "--preset") == 0) continue;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) out = v;
        else if (strcmp(a, "--vocab") == 0) o.vocab_path = v;
        else if (strcmp(a, "--name") == 0) o.name = v;
        else if (strcmp(a, "--seed") == 0) {
            long long x;
            if (cli_int(v, 0, (long long)INT64_MAX, &x)) return cli_fail("--seed: '%s' is not a non-negative integer", v);
            o.seed = (uint64_t)x;
        } else if (strcmp(a, "--type") == 0) {
            int t = smoe_type_from_name(v);
            if (t != SMOE_TYPE_F32 && t != SMOE_TYPE_F16 && t != SMOE_TYPE_BF16)
                return cli_fail("--type: '%s' is not one of f32, f16, bf16", v);
            o.type = (uint32_t)t;
        } else if (strcmp(a, "--layout") == 0) {
            if (strcmp(v, "merged") && strcmp(v, "split")) return cli_fail("--layout: '%s' is not merged or split", v);
            o.split_experts = strcmp(v, "split") == 0;
        } else if (strcmp(a, "--rope-theta") == 0) {
            char *end;
            o.rope_theta = strtof(v, &end);
            if (*end || end == v || !(o.rope_theta > 0)) return cli_fail("--rope-theta: '%s' is not a positive number", v);
        } else {
            return cli_fail("unknown option '%s' (see 'smoe synth --help')", a);
        }
    }
    if (!out) return cli_fail("no output file: give -o OUT.gguf");
    if (o.n_experts == 0) o.n_experts_used = 0;
    else if (o.n_experts_used > o.n_experts) return cli_fail("--top-k %d exceeds --experts %d", o.n_experts_used, o.n_experts);
    char err[SMOE_ERR_SIZE];
    if (smoe_synth_write(&o, out, err)) return cli_fail("%s", err);
    return 0;
}
