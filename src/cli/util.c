/* util.c - the subcommands' shared helpers: one-line errors, strict
 * integer parsing, reading a whole file. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../base/buf.h"

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

char *cli_read_stream(FILE *fp, size_t *len) {
    smoe_buf b = {0};
    if (smoe_buf_read(&b, fp) == 0) {
        if (len) *len = b.n;
        return b.p;
    }
    errno = b.oom ? ENOMEM : EIO;
    smoe_buf_free(&b);
    return NULL;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *text = cli_read_stream(fp, len);
    int e = errno;
    fclose(fp);
    errno = e;
    return text;
}
