/* run.c - `smoe run`: stream a continuation of a prompt to stdout. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "../base/common.h"
#include "gen_common.h"
#include "grammar_cli.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe run [-m MODEL.gguf] -p TEXT [options]\n"
    "  streams the continuation of TEXT (not TEXT itself) to stdout\n"
    "  -p, --prompt TEXT       the prompt; '-' reads it from standard input\n"
    "  --chat                  wrap the prompt in the model's chat format (an instruction)\n"
    "  --system TEXT           a system prompt (implies --chat)\n";

typedef struct out_state {
    bool broken;   /* stdout was closed: stop quietly */
} out_state;

static int emit_stdout(void *user, const char *text, size_t len) {
    out_state *o = user;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        o->broken = true;
        return 1;
    }
    return 0;
}

/* The prompt as tokens: plain text after BOS, or a one-turn chat. */
static int build_prompt(const cli_loaded *l, const char *text, size_t len, bool chat, const char *system,
                        smoe_tokens *out) {
    char err[SMOE_ERR_SIZE];
    const smoe_vocab *v = &l->model->vocab;
    if (!chat) {
        if (v->add_bos && v->bos_id >= 0 && smoe_tokens_push(out, v->bos_id)) return cli_fail("out of memory");
        if (len && smoe_tokenize(l->tok, text, len, v->add_space_prefix, out, err)) return cli_fail("%s", err);
        if (out->n == 0) return cli_fail("the prompt is empty and the model has no BOS token to start from");
        return 0;
    }
    json_t *req = json_object(), *msgs = json_array();
    json_object_set_new(req, "messages", msgs);
    if (system) json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", system));
    json_t *user = json_object();
    json_object_set_new(user, "role", json_string("user"));
    json_object_set_new(user, "content", json_stringn_nocheck(text, len));
    json_array_append_new(msgs, user);
    int rc = smoe_chat_render(l->tok, (smoe_chat_format)l->chat_format, req, out, err);
    json_decref(req);
    return rc ? cli_fail("%s", err) : 0;
}

int cmd_run(int argc, char **argv) {
    cli_gen g;
    cli_gen_defaults(&g);
    const char *prompt = NULL, *system = NULL;
    bool chat = false;
    cli_grammar gram = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_gen_flag(&g, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        r = cli_grammar_flag(&gram, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf("%s%s%s", help, cli_gen_help, cli_grammar_help); return 0; }
        if (!strcmp(a, "--chat")) chat = true;
        else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(a, "--system") && i + 1 < argc) { system = argv[++i]; chat = true; }
        else return cli_fail("unknown option '%s' (see 'smoe run --help')", a);
    }
    if (!prompt) return cli_fail("no prompt: give -p TEXT (or -p - to read standard input)");
    size_t len = strlen(prompt);
    char *owned = NULL;
    if (!strcmp(prompt, "-")) {
        if (!(owned = cli_read_stream(stdin, &len))) return cli_fail("out of memory reading the prompt");
        prompt = owned;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed stdout shows up as a write error */
    smoe_grammar *grammar = NULL;
    if (cli_grammar_wanted(&gram) && !(grammar = cli_grammar_build(&gram))) { smoe_toolset_free(gram.tools); free(owned); return 1; }
    cli_loaded l;
    if (cli_load(&g, &l)) { smoe_grammar_free(grammar); smoe_toolset_free(gram.tools); free(owned); return 1; }
    smoe_tokens toks = {0};
    smoe_gvocab *gvoc = NULL;
    int rc = 1;
    if (build_prompt(&l, prompt, len, chat, system, &toks)) goto out;
    if (grammar) {
        char gerr[SMOE_ERR_SIZE];
        if (!(gvoc = smoe_gvocab_new(l.tok, gerr)) || !(g.gen.grammar = smoe_gmatch_new(grammar, gvoc, gerr))) {
            cli_fail("%s", gerr);
            goto out;
        }
    }
    out_state o = {false};
    smoe_gen_result res;
    char err[SMOE_ERR_SIZE];
    if (smoe_session_generate(l.session, &toks, &g.gen, emit_stdout, &o, &res, err)) {
        cli_fail("%s", err);
        goto out;
    }
    if (!o.broken) {
        putchar('\n');
        fflush(stdout);
    }
    fprintf(stderr, "\nsmoe: load %.0f ms | prompt %d tokens, %.1f tokens/s | generated %d tokens, %.1f tokens/s | peak memory %.0f MiB\n",
            l.load_ms, res.n_prompt, res.prompt_ms > 0 ? res.n_prompt_processed * 1e3 / res.prompt_ms : 0.0,
            res.n_generated, res.gen_ms > 0 ? res.n_generated * 1e3 / res.gen_ms : 0.0, cli_peak_rss_mib());
    if (grammar) {
        smoe_grammar_info gi;
        smoe_grammar_get_info(grammar, &gi);
        double per_step = res.n_grammar_steps ? res.grammar_ms / res.n_grammar_steps : 0;
        double decode = res.n_generated ? (res.gen_ms - res.grammar_ms) / res.n_generated : 0;
        fprintf(stderr, "smoe: grammar: compile %.2f ms | mask %.4f ms/token = %.2f%% of a decode step | document %s\n",
                gi.compile_ms, per_step, decode > 0 ? 100.0 * per_step / decode : 0.0,
                res.grammar_complete ? "complete" : "INCOMPLETE");
    }
    rc = 0;
out:
    smoe_gmatch_free(g.gen.grammar);
    smoe_gvocab_free(gvoc);
    smoe_grammar_free(grammar);
    smoe_toolset_free(gram.tools);
    smoe_tokens_free(&toks);
    cli_unload(&l);
    free(owned);
    return rc;
}
