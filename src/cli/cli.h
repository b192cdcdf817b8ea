/* cli.h - the `smoe` command's subcommands. Each returns the exit code. */
#ifndef SMOE_CLI_H
#define SMOE_CLI_H

int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_grammar_check(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);

/* Print "smoe: <message>" on stderr as one line; returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a whole decimal integer within [min, max]; -1 on junk. */
int cli_int(const char *s, long long min, long long max, long long *out);

/* A whole file, NUL-terminated (*len without it); NULL with errno. */
char *cli_read_file(const char *path, size_t *len);

#endif
