/* tokenize.c - `smoe tokenize`: text to token ids with a model's (or a
 * SentencePiece file's) vocabulary, and back again with --round-trip.
 *
 * Only the vocabulary is read: a GGUF file goes through gguf_open and
 * smoe_vocab_from_gguf, never smoe_model_load, so a file that holds nothing
 * but a tokenizer (like the conformance vocabularies) works too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../chat/chat.h"
#include "../base/common.h"
#include "../format/gguf.h"
#include "../model/vocab.h"
#include "../tokenizer/tokenizer.h"
#include "cli.h"
#include "util.h"

static const char help[] =
    "usage: smoe tokenize -m FILE [options] (TEXT | - | --file PATH | --chat REQUEST.json)\n"
    "  prints the token ids on one line, separated by spaces\n"
    "  -m FILE        a GGUF file (only its tokenizer is read) or a SentencePiece\n"
    "                 .model file\n"
    "  TEXT           the text to encode; '-' reads standard input; after '--'\n"
    "                 an argument is TEXT even when it starts with '-'\n"
    "  --file PATH    read the text from PATH, byte for byte\n"
    "  --no-bos       no BOS token first (the default when the vocabulary adds none)\n"
    "  --pieces       print one 'id<TAB>piece' line per token instead\n"
    "  --round-trip   encode, decode again one token at a time with the streaming\n"
    "                 decoder, and print the decoded text exactly (no newline)\n"
    "  --chat REQUEST.json  instead of TEXT: the prompt for an OpenAI-style chat\n"
    "                 request (messages, tools) in the model's Mistral chat format\n"
    "  --chat-format v1|v3  the chat format (default: from the vocabulary; v3 when\n"
    "                 it has [INST]/[/INST] control tokens, else v1)\n";

typedef struct {
    const char *model;
    const char *text;      /* TEXT argument ("-" = stdin) */
    const char *file;      /* --file */
    bool no_bos, pieces, round_trip;
    const char *chat;        /* --chat REQUEST.json */
    const char *chat_format; /* --chat-format NAME */
    /* --chat REQUEST.json (chat formats) is added here by the chat-format
     * code: it sets a request path, and encode() below then builds the
     * prompt tokens from the request instead of encoding plain text.  All
     * output modes (ids, --pieces, --round-trip) apply to its tokens. */
} tok_opts;

/* Read all of fp (binary-safe). */
static int read_all(FILE *fp, const char *what, char **out, size_t *len) {
    if (!(*out = cli_read_stream(fp, len))) return cli_fail("%s: %s", what, errno == ENOMEM ? "out of memory" : "read error");
    return 0;
}

static int read_path(const char *path, char **out, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return cli_fail("%s: cannot open", path);
    int rc = read_all(fp, path, out, len);
    fclose(fp);
    return rc;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The vocabulary of a .model file (by extension) or a GGUF file. */
static int load_vocab(const char *path, smoe_vocab *v) {
    char err[SMOE_ERR_SIZE];
    memset(v, 0, sizeof *v);
    if (ends_with(path, ".model")) {
        char *data;
        size_t len;
        if (read_path(path, &data, &len)) return 1;
        int rc = smoe_vocab_from_spm(v, (const uint8_t *)data, len, err);
        free(data);
        return rc ? cli_fail("%s: %s", path, err) : 0;
    }
    gguf_file *f = gguf_open(path, err);
    if (!f) return cli_fail("%s", err);
    int rc = smoe_vocab_from_gguf(v, f, err);
    gguf_close(f);
    if (rc) return cli_fail("%s: %s", path, err);
    if (v->n_tokens == 0) return cli_fail("%s: no tokenizer in this file (tokenizer.ggml.tokens is missing)", path);
    return 0;
}

/* tokenizer.chat_template of a GGUF file (malloc'd), or NULL. */
static char *read_chat_template(const char *path) {
    if (ends_with(path, ".model")) return NULL;
    char err[SMOE_ERR_SIZE];
    gguf_file *f = gguf_open(path, err);
    if (!f) return NULL;
    gguf_str s;
    char *out = NULL;
    if (gguf_get_str(f, "tokenizer.chat_template", &s, NULL) == 1 && (out = malloc(s.len + 1))) {
        memcpy(out, s.p, s.len);
        out[s.len] = '\0';
    }
    gguf_close(f);
    return out;
}

/* The prompt tokens of the chat request in o->chat. */
static int encode_chat(const tok_opts *o, const smoe_tokenizer *t, smoe_tokens *ids) {
    char err[SMOE_ERR_SIZE];
    int fmt;
    if (o->chat_format) {
        fmt = smoe_chat_format_from_name(o->chat_format);
        if (fmt < 0) return cli_fail("--chat-format: unknown format '%s' (v1 or v3)", o->chat_format);
    } else {
        char *tmpl = read_chat_template(o->model);
        fmt = smoe_chat_detect(smoe_tokenizer_vocab(t), tmpl);
        free(tmpl);
    }
    json_error_t je;
    json_t *req = json_load_file(o->chat, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (!req) {
        for (char *c = je.text; *c; c++) /* keep the message on one printable line */
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7F) *c = '?';
        if (je.line < 0) return cli_fail("%s", je.text); /* names the file already */
        return cli_fail("%s: not valid JSON (line %d, column %d): %s", o->chat, je.line, je.column, je.text);
    }
    int rc = smoe_chat_render(t, (smoe_chat_format)fmt, req, ids, err);
    json_decref(req);
    return rc ? cli_fail("%s: %s", o->chat, err) : 0;
}

/* The tokens to print: BOS (unless turned off) and the encoded text, or
 * the rendered chat prompt with --chat. */
static int encode(const tok_opts *o, const smoe_tokenizer *t, const char *text, size_t len, smoe_tokens *ids) {
    char err[SMOE_ERR_SIZE];
    if (o->chat) return encode_chat(o, t, ids);
    const smoe_vocab *v = smoe_tokenizer_vocab(t);
    if (!o->no_bos && v->add_bos && v->bos_id >= 0 && smoe_tokens_push(ids, v->bos_id))
        return cli_fail("out of memory");
    if (smoe_tokenize(t, text, len, v->add_space_prefix, ids, err)) return cli_fail("%s", err);
    return 0;
}

static int print_ids(const smoe_tokens *ids) {
    for (int32_t i = 0; i < ids->n; i++) printf(i ? " %d" : "%d", ids->ids[i]);
    putchar('\n');
    return 0;
}

static int print_pieces(const smoe_tokenizer *t, const smoe_tokens *ids) {
    const smoe_vocab *v = smoe_tokenizer_vocab(t);
    for (int32_t i = 0; i < ids->n; i++) {
        int32_t id = ids->ids[i];
        printf("%d\t", id);
        fwrite(v->tokens[id], 1, v->token_len[id], stdout);
        putchar('\n');
    }
    return 0;
}

/* Decode one token at a time, as generation would. */
static int print_round_trip(const smoe_tokenizer *t, const smoe_tokens *ids) {
    size_t cap = smoe_detok_cap(t);
    char *buf = malloc(cap);
    if (!buf) return cli_fail("out of memory");
    smoe_detok d;
    smoe_detok_init(&d, t, smoe_tokenizer_vocab(t)->add_space_prefix);
    for (int32_t i = 0; i < ids->n; i++) fwrite(buf, 1, smoe_detok_push(&d, ids->ids[i], buf, cap), stdout);
    fwrite(buf, 1, smoe_detok_flush(&d, buf, cap), stdout);
    free(buf);
    return 0;
}

static int parse_args(int argc, char **argv, tok_opts *o) {
    memset(o, 0, sizeof *o);
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!options || a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->text) return cli_fail("tokenize: more than one TEXT argument (quote the text)");
            o->text = a;
        } else if (strcmp(a, "--") == 0) options = false;
        else if (strcmp(a, "--no-bos") == 0) o->no_bos = true;
        else if (strcmp(a, "--pieces") == 0) o->pieces = true;
        else if (strcmp(a, "--round-trip") == 0) o->round_trip = true;
        else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (!has_value) return cli_fail("%s needs a file name", a);
            o->model = argv[++i];
        } else if (strcmp(a, "--chat") == 0) {
            if (!has_value) return cli_fail("--chat needs a request file (JSON)");
            o->chat = argv[++i];
        } else if (strcmp(a, "--chat-format") == 0) {
            if (!has_value) return cli_fail("--chat-format needs a format name (v1 or v3)");
            o->chat_format = argv[++i];
        } else if (strcmp(a, "--file") == 0) {
            if (!has_value) return cli_fail("--file needs a path");
            o->file = argv[++i];
        } else {
            return cli_fail("tokenize: unknown option '%s' (try 'smoe tokenize --help')", a);
        }
    }
    if (!o->model) return cli_fail("tokenize: -m FILE is required (try 'smoe tokenize --help')");
    if (o->chat_format && !o->chat) return cli_fail("tokenize: --chat-format goes with --chat REQUEST.json");
    if (o->chat) {
        if (o->text || o->file) return cli_fail("tokenize: --chat takes no TEXT or --file (the request holds the text)");
        if (o->no_bos) return cli_fail("tokenize: --no-bos does not apply to --chat (the chat prompt starts with BOS)");
    } else if (!o->text == !o->file) {
        return cli_fail("tokenize: give exactly one of TEXT, '-' or --file PATH");
    }
    if (o->pieces && o->round_trip) return cli_fail("tokenize: --pieces and --round-trip do not go together");
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help, stdout);
            return 0;
        }
    tok_opts o;
    if (parse_args(argc, argv, &o)) return 1;

    char *text = NULL;
    size_t len = 0;
    int rc;
    if (o.chat) rc = 0;
    else if (o.file) rc = read_path(o.file, &text, &len);
    else if (strcmp(o.text, "-") == 0) rc = read_all(stdin, "standard input", &text, &len);
    else {
        len = strlen(o.text);
        rc = (text = malloc(len + 1)) ? (memcpy(text, o.text, len + 1), 0) : cli_fail("out of memory");
    }
    if (rc) return 1;

    smoe_vocab v;
    smoe_tokenizer *t = NULL;
    smoe_tokens ids = {0};
    char err[SMOE_ERR_SIZE];
    rc = load_vocab(o.model, &v);
    if (rc == 0 && !(t = smoe_tokenizer_new(&v, err))) rc = cli_fail("%s: %s", o.model, err);
    if (rc == 0) rc = encode(&o, t, text, len, &ids);
    if (rc == 0) {
        if (o.pieces) rc = print_pieces(t, &ids);
        else if (o.round_trip) rc = print_round_trip(t, &ids);
        else rc = print_ids(&ids);
        if (fflush(stdout) != 0) rc = cli_fail("cannot write the output");
    }
    smoe_tokens_free(&ids);
    smoe_tokenizer_free(t);
    smoe_vocab_free(&v);
    free(text);
    return rc ? 1 : 0;
}
