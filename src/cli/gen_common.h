/* gen_common.h - what `smoe run` and `smoe chat` share: loading a model
 * (or the built-in default one), its tokenizer, and the generation flags. */
#ifndef SMOE_CLI_GEN_COMMON_H
#define SMOE_CLI_GEN_COMMON_H

#include <stdbool.h>

#include "../engine/session.h"
#include "../model/model.h"

typedef struct cli_gen {
    const char *model_path;      /* NULL: the built-in default model */
    int32_t n_ctx;
    int threads;
    const char *chat_format;     /* NULL: detect from the model */
    smoe_gen_params gen;
    const char *stops[16];
    smoe_logit_bias bias[64];
} cli_gen;

typedef struct cli_loaded {
    smoe_model *model;
    smoe_tokenizer *tok;
    smoe_session *session;
    int chat_format;
    double load_ms;
} cli_loaded;

void cli_gen_defaults(cli_gen *g);

/* Try to consume argv[*i] (and its value) as a shared flag.  Returns 1 if
 * consumed, 0 if not a shared flag, -1 after printing an error. */
int cli_gen_flag(cli_gen *g, int argc, char **argv, int *i);

/* The shared flags' help text. */
extern const char cli_gen_help[];

/* Load the model (creating the default one on first use), the tokenizer and
 * a session.  Prints the error and returns -1 on failure. */
int cli_load(const cli_gen *g, cli_loaded *out);
void cli_unload(cli_loaded *l);

/* Peak resident memory of this process in MiB. */
double cli_peak_rss_mib(void);

#endif
