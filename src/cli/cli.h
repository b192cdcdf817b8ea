/* cli.h - the `smoe` command's subcommands, as main.c dispatches to them.
 * Each takes the arguments after "smoe" (argv[0] is the command's name) and
 * returns the exit code.  main.c calls them; each command's file includes
 * this too, only so that the compiler checks its definition against the
 * prototype: a command needs nothing from the others (their shared helpers
 * are in util.h). */
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

#endif
