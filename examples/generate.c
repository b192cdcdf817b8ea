/* generate.c - smoe as a library: load a model, turn a prompt (or a
 * one-turn chat) into tokens, and stream a continuation to stdout, as
 * `smoe run` does.  Only the public headers are needed:
 *
 *   cc -std=c11 -Iinclude examples/generate.c build/libsmoe.a -fopenmp -ljansson -lm
 *   ./a.out -m model.gguf -p "Once upon a time" [--chat] [--system TEXT]
 *           [-n N] [--temp X] [--top-k N] [--top-p X] [--seed N] [--stop TEXT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smoe.h"
#include "smoe_gen.h"

/* Called with each piece of the answer; non-zero would stop generation. */
static int print_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    return fflush(stdout) != 0;
}

static int fail(const char *msg) {
    fprintf(stderr, "generate: %s\n", msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *system = NULL, *stop[8];
    int chat = 0;
    smoe_gen_settings set;
    smoe_gen_settings_defaults(&set); /* `smoe run`'s defaults */
    set.stop = stop;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--chat")) { chat = 1; continue; }
        if (!v) { fprintf(stderr, "generate: option '%s' needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "--system")) system = v, chat = 1;
        else if (!strcmp(a, "-n")) set.max_tokens = atoi(v);
        else if (!strcmp(a, "--temp")) set.temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-k")) set.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) set.top_p = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) set.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--stop") && set.n_stop < 8) stop[set.n_stop++] = v;
        else { fprintf(stderr, "generate: unknown option '%s'\n", a); return 2; }
    }
    if (!model_path || !prompt) return fail("usage: generate -m MODEL.gguf -p TEXT [options]");

    char err[SMOE_ERR_SIZE];
    smoe_model *model = NULL;
    smoe_tokenizer *tok = NULL;
    smoe_session *session = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    if (!(model = smoe_model_load(model_path, err)) || !(tok = smoe_tokenizer_from_model(model, err)) ||
        !(session = smoe_session_new(model, tok, 0, err))) {
        fail(err);
        goto out;
    }

    /* The prompt's tokens: ask for the count first, then fill the array. */
    smoe_chat_msg msgs[2] = {{"system", system}, {"user", prompt}};
    const smoe_chat_msg *first = system ? msgs : msgs + 1;
    int n_msgs = system ? 2 : 1;
    const char *format = smoe_model_chat_format(model); /* as `smoe run --chat` detects it */
    int32_t n = chat ? smoe_chat_prompt(tok, format, first, n_msgs, NULL, 0, err)
                     : smoe_tokenizer_encode(tok, prompt, strlen(prompt), true, NULL, 0, err);
    if (n < 0 || !(ids = malloc((size_t)(n ? n : 1) * sizeof *ids))) {
        fail(n < 0 ? err : "out of memory");
        goto out;
    }
    if (chat) smoe_chat_prompt(tok, format, first, n_msgs, ids, n, err);
    else smoe_tokenizer_encode(tok, prompt, strlen(prompt), true, ids, n, err);

    smoe_gen_stats st;
    if (smoe_generate(session, ids, n, &set, print_text, NULL, &st, err)) {
        fail(err);
        goto out;
    }
    putchar('\n');
    fprintf(stderr, "generate: %d prompt tokens, %d generated, finish: %s\n", st.n_prompt, st.n_generated,
            smoe_finish_name(st.finish));
    rc = 0;
out:
    free(ids);
    smoe_session_free(session);
    smoe_tokenizer_free(tok);
    smoe_model_free(model);
    return rc;
}
