/* chat_cmd.c - `smoe chat`: interactive multi-turn chat.
 *
 * Each turn renders the whole conversation in the model's chat format; the
 * session reuses the cached prefix, so earlier turns are not processed
 * again.  Ctrl-C stops the current answer and returns to the prompt (at the
 * prompt it ends the chat).  SIGINT is blocked and polled rather than
 * caught, so no handler and no global flag are needed. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../chat/chat.h"
#include "../base/buf.h"
#include "../base/common.h"
#include "gen_common.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe chat [-m MODEL.gguf] [options]\n"
    "  reads one user message per line; commands: /reset, /system TEXT, /exit\n"
    "  --system TEXT           a system prompt\n";

/* ---------------------------------------------------------------------------
 * Signals and input
 * ------------------------------------------------------------------------- */

static bool interrupted(void) {
    sigset_t pend, only;
    sigpending(&pend);
    if (!sigismember(&pend, SIGINT)) return false;
    sigemptyset(&only);
    sigaddset(&only, SIGINT);
    struct timespec zero = {0, 0};
    sigtimedwait(&only, NULL, &zero); /* consume it */
    return true;
}

typedef struct line_reader {
    char buf[65536];
    size_t len;
    bool eof;
} line_reader;

/* Next line (without its newline) into out; 1 = got one, 0 = end of input,
 * -1 = interrupted. */
static int read_line(line_reader *r, char *out, size_t cap) {
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl || r->eof || r->len == sizeof r->buf) {
            if (!nl && r->len == 0) return 0;
            size_t n = nl ? (size_t)(nl - r->buf) : r->len;
            size_t c = n < cap - 1 ? n : cap - 1;
            memcpy(out, r->buf, c);
            out[c] = 0;
            size_t used = nl ? n + 1 : n;
            memmove(r->buf, r->buf + used, r->len - used);
            r->len -= used;
            return 1;
        }
        struct pollfd p = {0, POLLIN, 0};
        int pr = poll(&p, 1, 100);
        if (interrupted()) return -1;
        if (pr <= 0) continue;
        ssize_t got = read(0, r->buf + r->len, sizeof r->buf - r->len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) r->eof = true;
        else r->len += (size_t)got;
    }
}

/* ---------------------------------------------------------------------------
 * The conversation
 * ------------------------------------------------------------------------- */

typedef struct answer {
    smoe_buf text;
    bool broken;
} answer;

static int emit_answer(void *user, const char *text, size_t len) {
    answer *a = user;
    if (smoe_buf_add(&a->text, text, len)) return 1;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) { a->broken = true; return 1; }
    return interrupted() ? 1 : 0;
}

static json_t *message(const char *role, const char *content, size_t len) {
    json_t *m = json_object();
    json_object_set_new(m, "role", json_string(role));
    json_object_set_new(m, "content", json_stringn_nocheck(content, len));
    return m;
}

static json_t *new_conversation(const char *system) {
    json_t *req = json_object(), *msgs = json_array();
    json_object_set_new(req, "messages", msgs);
    if (system) json_array_append_new(msgs, message("system", system, strlen(system)));
    return req;
}

/* One turn: add the user's line, render, generate, keep the answer. */
static int turn(cli_loaded *l, const cli_gen *g, json_t *req, const char *line) {
    char err[SMOE_ERR_SIZE];
    json_t *msgs = json_object_get(req, "messages");
    json_array_append_new(msgs, message("user", line, strlen(line)));
    smoe_tokens toks = {0};
    if (smoe_chat_render(l->tok, (smoe_chat_format)l->chat_format, req, &toks, err)) {
        json_array_remove(msgs, json_array_size(msgs) - 1);
        cli_fail("%s", err);
        return 0; /* the chat goes on */
    }
    answer a = {0};
    smoe_gen_result res;
    int rc = smoe_session_generate(l->session, &toks, &g->gen, emit_answer, &a, &res, err);
    smoe_tokens_free(&toks);
    if (rc) {
        json_array_remove(msgs, json_array_size(msgs) - 1);
        smoe_buf_free(&a.text);
        cli_fail("%s", err);
        return 0;
    }
    if (a.broken) { smoe_buf_free(&a.text); return -1; }
    printf(res.finish == SMOE_FINISH_CANCEL ? " [interrupted]\n" : "\n");
    fflush(stdout);
    json_t *reply = message("assistant", a.text.p ? a.text.p : "", a.text.n);
    /* keep the ids the model produced, so the next turn extends the cache */
    const smoe_tokens *cached = smoe_session_tokens(l->session);
    json_t *ids = json_array();
    for (int32_t i = res.n_prompt; i < cached->n; i++) json_array_append_new(ids, json_integer(cached->ids[i]));
    json_object_set_new(reply, SMOE_CHAT_GENERATED_IDS, ids);
    json_array_append_new(msgs, reply);
    smoe_buf_free(&a.text);
    fprintf(stderr, "[prompt %d tokens, %d processed, %d cached | generated %d tokens, %.1f tokens/s]\n", res.n_prompt,
            res.n_prompt_processed, res.n_prompt - res.n_prompt_processed, res.n_generated,
            res.gen_ms > 0 ? res.n_generated * 1e3 / res.gen_ms : 0.0);
    return 0;
}

int cmd_chat(int argc, char **argv) {
    cli_gen g;
    cli_gen_defaults(&g);
    const char *system = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_gen_flag(&g, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { printf("%s%s", help, cli_gen_help); return 0; }
        if (!strcmp(argv[i], "--system") && i + 1 < argc) system = argv[++i];
        else return cli_fail("unknown option '%s' (see 'smoe chat --help')", argv[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, NULL);
    cli_loaded l;
    if (cli_load(&g, &l)) return 1;
    bool tty = isatty(0) && isatty(1);
    if (tty) fprintf(stderr, "smoe chat: /reset, /system TEXT, /exit; Ctrl-C stops an answer\n");
    json_t *req = new_conversation(system);
    char *sys_owned = NULL;
    line_reader *r = calloc(1, sizeof *r);
    char *line = malloc(65536);
    int rc = 0;
    while (r && line) {
        if (tty) { printf("> "); fflush(stdout); }
        int got = read_line(r, line, 65536);
        if (got <= 0) break; /* end of input, or Ctrl-C at the prompt */
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            json_decref(req);
            req = new_conversation(sys_owned ? sys_owned : system);
            smoe_session_reset(l.session);
            continue;
        }
        if (!strncmp(line, "/system ", 8)) {
            free(sys_owned);
            sys_owned = strdup(line + 8);
            json_decref(req);
            req = new_conversation(sys_owned);
            continue;
        }
        if (line[0] == '/') { fprintf(stderr, "smoe: unknown command '%s' (/reset, /system TEXT, /exit)\n", line); continue; }
        if (!line[0]) continue;
        if (turn(&l, &g, req, line)) break; /* stdout closed */
    }
    if (!r || !line) rc = cli_fail("out of memory");
    free(line);
    free(r);
    free(sys_owned);
    json_decref(req);
    cli_unload(&l);
    return rc;
}
