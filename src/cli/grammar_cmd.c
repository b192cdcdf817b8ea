/* grammar_cmd.c - `smoe grammar-check`: compile a grammar or JSON Schema,
 * print it, check documents against it, or generate documents under it
 * with a model (the constrained-decoding test and measurement tool); and
 * the grammar flags shared with `smoe run`. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/buf.h"
#include "../base/clock.h"
#include "../base/common.h"
#include "gen_common.h"
#include "grammar_cli.h"
#include "cli.h"
#include "util.h"

const char cli_grammar_help[] =
    "  --json-schema FILE      constrain the output to JSON valid against the schema in FILE\n"
    "  --json                  constrain the output to any JSON object\n"
    "  --grammar FILE          constrain the output to the grammar in FILE (GBNF-style, see README)\n"
    "  --schema-strict         with --json-schema: objects without additionalProperties get none\n"
    "  --compact-json          no space after ':' and ',' (default: one optional space)\n"
    "  --tools FILE            constrain the output to tool calls of the OpenAI \"tools\" array in FILE\n"
    "                          (Mistral v3 form: [{\"name\": ..., \"arguments\": {...}, \"id\": ...}])\n"
    "  --tool-choice C         with --tools: auto, required (default) or a function name\n"
    "  --no-parallel-tool-calls  with --tools: exactly one call\n"
    "  --tool-format F         with --tools: v3 (default) or object ({\"tool_calls\": [...]}, for v1 models)\n";

int cli_grammar_flag(cli_grammar *c, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--json")) { c->json_any = true; return 1; }
    if (!strcmp(a, "--schema-strict")) { c->opts.strict = true; return 1; }
    if (!strcmp(a, "--compact-json")) { c->opts.compact = true; return 1; }
    if (!strcmp(a, "--no-parallel-tool-calls")) { c->no_parallel = true; return 1; }
    if (strcmp(a, "--json-schema") && strcmp(a, "--grammar") && strcmp(a, "--tools") && strcmp(a, "--tool-choice") &&
        strcmp(a, "--tool-format"))
        return 0;
    if (*i + 1 >= argc) return cli_fail("option '%s' needs a value", a), -1;
    const char *v = argv[++*i];
    if (!strcmp(a, "--grammar")) c->grammar_file = v;
    else if (!strcmp(a, "--tools")) c->tools_file = v;
    else if (!strcmp(a, "--tool-choice")) c->tool_choice = v;
    else if (!strcmp(a, "--tool-format")) {
        if (strcmp(v, "v3") && strcmp(v, "object")) return cli_fail("--tool-format: '%s' is not v3 or object", v), -1;
        c->tool_object = !strcmp(v, "object");
    } else c->schema_file = v;
    return 1;
}

bool cli_grammar_wanted(const cli_grammar *c) { return c->grammar_file || c->schema_file || c->json_any || c->tools_file; }

/* --tools: the toolset (kept in c for parsing the output) and its grammar */
static smoe_grammar *tools_grammar(cli_grammar *c) {
    char err[SMOE_ERR_SIZE];
    json_error_t je;
    json_t *tools = json_load_file(c->tools_file, 0, &je);
    if (!tools) return cli_fail("%s: not JSON: %s (line %d)", c->tools_file, je.text, je.line), NULL;
    c->tools = smoe_toolset_new(tools, err);
    json_decref(tools);
    if (!c->tools) return cli_fail("%s: %s", c->tools_file, err), NULL;
    json_t *choice = NULL;
    const char *tc = c->tool_choice ? c->tool_choice : "required";
    if (!strcmp(tc, "auto") || !strcmp(tc, "required") || !strcmp(tc, "none")) choice = json_string(tc);
    else choice = json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", tc);
    json_t *par = json_boolean(!c->no_parallel);
    smoe_tool_choice ch;
    int r = smoe_tool_choice_parse(c->tools, choice, par, &ch, err);
    json_decref(choice);
    json_decref(par);
    if (r) return cli_fail("--tool-choice: %s", err), NULL;
    smoe_grammar *g = smoe_toolcall_grammar(c->tools, &ch, c->tool_object ? SMOE_TOOLCALL_OBJECT : SMOE_TOOLCALL_V3, err);
    if (!g) cli_fail("%s: %s", c->tools_file, err);
    return g;
}

smoe_grammar *cli_grammar_build(cli_grammar *c) {
    int n = !!c->grammar_file + !!c->schema_file + !!c->json_any + !!c->tools_file;
    if (n > 1) return cli_fail("give only one of --grammar, --json-schema, --json and --tools"), NULL;
    if (c->tools_file) return tools_grammar(c);
    char err[SMOE_ERR_SIZE];
    smoe_grammar *g = NULL;
    if (c->json_any) {
        g = smoe_json_schema_compile(NULL, &c->opts, err);
        if (!g) cli_fail("--json: %s", err);
        return g;
    }
    const char *path = c->grammar_file ? c->grammar_file : c->schema_file;
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text) return cli_fail("%s: %s", path, strerror(errno)), NULL;
    if (c->grammar_file) {
        g = smoe_grammar_new(text, len, err);
        if (!g) cli_fail("%s: %s", path, err);
    } else {
        json_error_t je;
        json_t *schema = json_loadb(text, len, JSON_DECODE_ANY, &je);
        if (!schema) cli_fail("%s: not JSON: %s (line %d)", path, je.text, je.line);
        else {
            g = smoe_json_schema_compile(schema, &c->opts, err);
            if (!g) cli_fail("%s: %s", path, err);
            json_decref(schema);
        }
    }
    free(text);
    return g;
}

/* ---------------------------------------------------------------------------
 * smoe grammar-check
 * ------------------------------------------------------------------------- */

static const char help[] =
    "usage: smoe grammar-check (--grammar FILE | --json-schema FILE | --json | --tools FILE | --schemas FILE.jsonl) [options]\n"
    "  Without --generate: reads documents from standard input, one per line\n"
    "  (--json-lines: each line is a JSON string holding the document), and\n"
    "  prints for each 'accept', 'incomplete' or 'reject N' (N = bytes\n"
    "  accepted before the first that cannot be).  Errors in the grammar or\n"
    "  schema: one line on stderr, exit code 1.\n"
    "  --print                 print the grammar text and exit\n"
    "  --schemas FILE.jsonl    one schema per line (with --generate)\n"
    "  --generate N            generate N documents per schema with the model and print\n"
    "                          JSON lines {\"schema\", \"seed\", \"doc\", \"finish\", \"complete\", \"tokens\"}\n"
    "                          (--tools adds \"tool_calls\" as parsed and \"stream\" as streamed);\n"
    "                          timings go to stderr\n"
    "  -p, --prompt TEXT       prompt for --generate (default: BOS only)\n"
    "  --json-lines            documents on stdin as JSON strings\n";

static int collect(void *user, const char *text, size_t len) {
    return smoe_buf_add(user, text, len) ? 1 : 0;
}

static int check_docs(smoe_grammar *g, bool json_lines) {
    char err[SMOE_ERR_SIZE];
    smoe_gmatch *m = smoe_gmatch_new(g, NULL, err);
    if (!m) return cli_fail("%s", err);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') line[--len] = 0;
        const char *doc = line;
        size_t dlen = len;
        json_t *js = NULL;
        if (json_lines) {
            json_error_t je;
            js = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (!js || !json_is_string(js)) {
                json_decref(js);
                rc = cli_fail("--json-lines: a line is not a JSON string");
                break;
            }
            doc = json_string_value(js);
            dlen = json_string_length(js);
        }
        smoe_gmatch_reset(m);
        size_t ok = 0;
        err[0] = 0;
        int r = smoe_gmatch_accept_bytes(m, doc, dlen, &ok, err);
        if (r && err[0]) printf("error %s\n", err);
        else if (r) printf("reject %zu\n", ok);
        else printf(smoe_gmatch_complete(m) ? "accept\n" : "incomplete\n");
        json_decref(js);
    }
    free(line);
    smoe_gmatch_free(m);
    fflush(stdout);
    return rc;
}

/* --tools: the document parsed whole ("tool_calls", or "content") and
 * streamed ("stream": [{"index", "name", "id", "arguments": fragments
 * joined, "fragments": how many}]), so the tests can check both. */
typedef struct stream_rec {
    json_t *calls;
    json_t *content;
    smoe_buf args;       /* the current call's argument fragments */
    int bad;
} stream_rec;

static int on_stream(void *user, smoe_tcs_event ev, int index, const char *name, const char *id, const char *text,
                     size_t len) {
    stream_rec *r = user;
    json_t *cur = json_array_get(r->calls, (size_t)index);
    if (ev == SMOE_TCS_BEGIN) {
        if (cur) r->bad = 1;
        json_array_append_new(r->calls, json_pack("{s:i,s:s,s:s,s:i}", "index", index, "name", name, "id", id,
                                                   "fragments", 0));
        r->args.n = 0;
    } else if (ev == SMOE_TCS_ARGS) {
        if (!cur) return r->bad = 1, 0;
        if (smoe_buf_add(&r->args, text, len)) return 1;
        json_object_set_new(cur, "fragments", json_integer(json_integer_value(json_object_get(cur, "fragments")) + 1));
    } else if (ev == SMOE_TCS_END) {
        if (!cur) return r->bad = 1, 0;
        json_object_set_new(cur, "arguments", json_stringn(r->args.p ? r->args.p : "", r->args.n));
    } else {
        json_t *c = r->content ? r->content : json_string("");
        size_t old = json_string_length(c);
        char *t = malloc(old + len + 1);
        if (!t) return 1;
        memcpy(t, json_string_value(c), old);
        memcpy(t + old, text, len);
        json_string_setn_nocheck(c, t, old + len);
        free(t);
        r->content = c;
    }
    return 0;
}

/* Adds "tool_calls"/"content" and "stream" (or "parse_error") to line. */
static void tool_fields(const cli_grammar *gc, json_t *line, const char *doc, size_t len, uint64_t seed, bool complete) {
    if (!complete) return;
    smoe_toolcall_format fmt = gc->tool_object ? SMOE_TOOLCALL_OBJECT : SMOE_TOOLCALL_V3;
    uint64_t rng = seed;
    smoe_toolcall_result res;
    char err[SMOE_ERR_SIZE];
    if (smoe_toolcall_parse(gc->tools, fmt, doc, len, &rng, false, &res, err)) {
        json_object_set_new(line, "parse_error", json_string(err));
        return;
    }
    json_object_set(line, "tool_calls", res.tool_calls);
    if (res.content) json_object_set_new(line, "content", json_string(res.content));
    smoe_toolcall_result_free(&res);
    /* streamed in pieces of 3 bytes, the worst case for a byte scanner */
    stream_rec r = {.calls = json_array()};
    smoe_tcstream *st = smoe_tcstream_new(fmt, seed, on_stream, &r);
    int rc = st ? 0 : -1;
    for (size_t i = 0; i < len && rc == 0; i += 3) rc = smoe_tcstream_push(st, doc + i, len - i < 3 ? len - i : 3);
    smoe_tcstream_free(st);
    if (rc || r.bad) json_object_set_new(line, "stream_error", json_true());
    json_object_set_new(line, "stream", r.calls);
    if (r.content) json_object_set_new(line, "stream_content", r.content);
    smoe_buf_free(&r.args);
}

int cmd_grammar_check(int argc, char **argv) {
    cli_gen g;
    cli_gen_defaults(&g);
    cli_grammar gc = {0};
    const char *schemas_file = NULL, *prompt = "";
    bool print = false, json_lines = false;
    long long n_gen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_grammar_flag(&gc, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        r = cli_gen_flag(&g, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf("%s%s%s", help, cli_grammar_help, cli_gen_help); return 0; }
        if (!strcmp(a, "--print")) print = true;
        else if (!strcmp(a, "--json-lines")) json_lines = true;
        else if (!strcmp(a, "--schemas") && i + 1 < argc) schemas_file = argv[++i];
        else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(a, "--generate") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 1000000, &n_gen)) return cli_fail("--generate: '%s' is not a count from 1", argv[i]);
        } else return cli_fail("unknown option '%s' (see 'smoe grammar-check --help')", a);
    }
    if (!schemas_file && !cli_grammar_wanted(&gc)) return cli_fail("give --grammar FILE, --json-schema FILE, --json or --schemas FILE");
    char err[SMOE_ERR_SIZE];

    /* the grammars: one, or one per line of --schemas */
    smoe_grammar **gs = NULL;
    size_t n_g = 0;
    int rc = 1;
    if (schemas_file) {
        size_t len;
        char *text = cli_read_file(schemas_file, &len);
        if (!text) return cli_fail("%s: %s", schemas_file, strerror(errno));
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            json_error_t je;
            json_t *schema = json_loads(line, JSON_DECODE_ANY, &je);
            if (!schema) { cli_fail("%s: line %zu is not JSON: %s", schemas_file, n_g + 1, je.text); free(text); goto out; }
            smoe_grammar **ng = realloc(gs, (n_g + 1) * sizeof *ng);
            if (!ng) { json_decref(schema); free(text); cli_fail("out of memory"); goto out; }
            gs = ng;
            gs[n_g] = smoe_json_schema_compile(schema, &gc.opts, err);
            json_decref(schema);
            if (!gs[n_g]) { cli_fail("%s: schema %zu: %s", schemas_file, n_g + 1, err); free(text); goto out; }
            n_g++;
        }
        free(text);
    } else {
        gs = malloc(sizeof *gs);
        if (!gs || !(gs[0] = cli_grammar_build(&gc))) goto out;
        n_g = 1;
    }
    double compile_total = 0, compile_max = 0;
    for (size_t i = 0; i < n_g; i++) {
        smoe_grammar_info info;
        smoe_grammar_get_info(gs[i], &info);
        compile_total += info.compile_ms;
        if (info.compile_ms > compile_max) compile_max = info.compile_ms;
    }
    if (print) {
        if (gc.grammar_file) {
            size_t len;
            char *t = cli_read_file(gc.grammar_file, &len);
            if (t) fwrite(t, 1, len, stdout);
            free(t);
        } else if (gc.schema_file || gc.json_any) {
            char *t = NULL;
            if (gc.json_any) t = smoe_json_object_grammar(&gc.opts, err);
            else {
                json_error_t je;
                json_t *schema = json_load_file(gc.schema_file, JSON_DECODE_ANY, &je);
                if (schema) t = smoe_json_schema_to_grammar(schema, &gc.opts, err);
                json_decref(schema);
            }
            if (t) fputs(t, stdout);
            free(t);
        }
        rc = 0;
        goto out;
    }
    if (!n_gen) {
        rc = check_docs(gs[0], json_lines) ? 1 : 0;
        goto out;
    }

    /* generation */
    cli_loaded l;
    if (cli_load(&g, &l)) goto out;
    smoe_gvocab *voc = smoe_gvocab_new(l.tok, err);
    if (!voc) { cli_fail("%s", err); cli_unload(&l); goto out; }
    smoe_tokens toks = {0};
    const smoe_vocab *v = &l.model->vocab;
    if (v->add_bos && v->bos_id >= 0) smoe_tokens_push(&toks, v->bos_id);
    if (*prompt && smoe_tokenize(l.tok, prompt, strlen(prompt), v->add_space_prefix, &toks, err)) {
        cli_fail("%s", err);
        goto gen_out;
    }
    if (toks.n == 0) { cli_fail("the prompt is empty and the model has no BOS token"); goto gen_out; }
    double mask_ms = 0, gen_ms = 0, t_start = smoe_now_ms();
    long long steps = 0, tokens = 0, docs = 0, complete = 0;
    uint64_t seed0 = g.gen.sampling.seed;
    for (size_t i = 0; i < n_g; i++) {
        for (long long d = 0; d < n_gen; d++) {
            smoe_gmatch *m = smoe_gmatch_new(gs[i], voc, err);
            if (!m) { cli_fail("%s", err); goto gen_out; }
            smoe_gen_params p = g.gen;
            p.sampling.seed = seed0 + i * 1000003ull + (uint64_t)d;
            p.grammar = m;
            smoe_buf out = {0};
            smoe_gen_result res;
            int r = smoe_session_generate(l.session, &toks, &p, collect, &out, &res, err);
            smoe_gmatch_free(m);
            if (r) { free(out.p); cli_fail("schema %zu: %s", i + 1, err); goto gen_out; }
            json_t *line = json_pack("{s:i,s:I,s:s#,s:s,s:b,s:i}", "schema", (int)i, "seed", (json_int_t)p.sampling.seed,
                                     "doc", out.p ? out.p : "", out.n, "finish", smoe_finish_name(res.finish),
                                     "complete", res.grammar_complete, "tokens", res.n_generated);
            if (line && gc.tools) tool_fields(&gc, line, out.p ? out.p : "", out.n, p.sampling.seed, res.grammar_complete);
            char *s = line ? json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
            if (s) printf("%s\n", s);
            free(s);
            json_decref(line);
            free(out.p);
            fflush(stdout);
            mask_ms += res.grammar_ms;
            gen_ms += res.gen_ms;
            steps += res.n_grammar_steps;
            tokens += res.n_generated;
            docs++;
            complete += res.grammar_complete;
        }
    }
    double per_tok = tokens ? gen_ms / (double)tokens : 0, per_mask = steps ? mask_ms / (double)steps : 0;
    fprintf(stderr,
            "smoe: %lld documents (%lld complete), %lld tokens in %.0f ms | schema compile %.2f ms mean, %.2f ms max | "
            "grammar %.4f ms/token = %.2f%% of a decode step (%.3f ms without it)\n",
            docs, complete, tokens, smoe_now_ms() - t_start, n_g ? compile_total / (double)n_g : 0.0, compile_max, per_mask,
            per_tok - per_mask > 0 ? 100.0 * per_mask / (per_tok - per_mask) : 0.0, per_tok - per_mask);
    rc = 0;
gen_out:
    smoe_tokens_free(&toks);
    smoe_gvocab_free(voc);
    cli_unload(&l);
out:
    for (size_t i = 0; i < n_g; i++) smoe_grammar_free(gs[i]);
    free(gs);
    smoe_toolset_free(gc.tools);
    return rc;
}
