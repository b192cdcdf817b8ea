/* util.h - small helpers every `smoe` subcommand uses: one-line errors,
 * strict integer parsing, reading a whole file.  They live apart from
 * main.c so that a subcommand depends on these helpers, not on the
 * dispatcher that calls it. */
#ifndef SMOE_CLI_UTIL_H
#define SMOE_CLI_UTIL_H

#include <stddef.h>
#include <stdio.h>

/* Print "smoe: <message>" on stderr as one line; returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a whole decimal integer within [min, max]; -1 on junk. */
int cli_int(const char *s, long long min, long long max, long long *out);

/* A whole file or stream, NUL-terminated (*len without it); NULL with
 * errno (ENOMEM, EIO, or fopen's). */
char *cli_read_file(const char *path, size_t *len);
char *cli_read_stream(FILE *fp, size_t *len);

#endif
