/* grammar_cli.h - the constrained-decoding flags of `smoe run` and
 * `smoe grammar-check` (--grammar, --json-schema, --json, --schema-strict,
 * --tools). */
#ifndef SMOE_CLI_GRAMMAR_CLI_H
#define SMOE_CLI_GRAMMAR_CLI_H

#include <stdbool.h>

#include "../grammar/grammar.h"
#include "../grammar/json_schema.h"
#include "../grammar/toolcall.h"

typedef struct cli_grammar {
    const char *grammar_file;   /* --grammar FILE */
    const char *schema_file;    /* --json-schema FILE */
    bool json_any;              /* --json */
    smoe_json_schema_opts opts; /* --schema-strict, --compact-json */
    const char *tools_file;     /* --tools FILE: an OpenAI "tools" array */
    const char *tool_choice;    /* --tool-choice auto|required|NAME */
    bool no_parallel;           /* --no-parallel-tool-calls */
    bool tool_object;           /* --tool-format object (v1: {"tool_calls": ...}) */
    smoe_toolset *tools;        /* built by cli_grammar_build with --tools */
} cli_grammar;

extern const char cli_grammar_help[];

/* 1: argv[*i] (and its value) consumed; 0: not ours; -1: error printed. */
int cli_grammar_flag(cli_grammar *c, int argc, char **argv, int *i);
bool cli_grammar_wanted(const cli_grammar *c);
/* Compile what the flags ask for; prints the error and returns NULL. */
smoe_grammar *cli_grammar_build(cli_grammar *c);
#endif
