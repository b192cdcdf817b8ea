/* chat_render.c - Mistral chat formats v1 and v3 (see chat.h for the
 * rules): the format of a vocabulary, and a request's turns (read by
 * chat_request.c) encoded segment by segment with control-token ids
 * spliced in between. */
#include <stdio.h>

#include "../json/pyjson.h"
#include "chat_int.h"

/* ------------------------------------------------------------------------
 * Format detection and names
 * ---------------------------------------------------------------------- */

static int32_t find_piece(const smoe_vocab *v, const char *piece) {
    size_t len = strlen(piece);
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && v->token_len[i] == len && memcmp(v->tokens[i], piece, len) == 0) return i;
    return -1;
}

smoe_chat_format smoe_chat_detect(const smoe_vocab *v, const char *chat_template) {
    int32_t bi = find_piece(v, "[INST]"), ei = find_piece(v, "[/INST]");
    if (bi < 0 || ei < 0) return SMOE_CHAT_V1;
    if (v->types && v->types[bi] == SMOE_TOKEN_CONTROL && v->types[ei] == SMOE_TOKEN_CONTROL) return SMOE_CHAT_V3;
    if (chat_template && (strstr(chat_template, "[AVAILABLE_TOOLS]") || strstr(chat_template, "[TOOL_CALLS]") ||
                          strstr(chat_template, "[TOOL_RESULTS]")))
        return SMOE_CHAT_V3;
    return SMOE_CHAT_V1;
}

static bool ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y) return false;
    }
    return *a == *b;
}

int smoe_chat_format_from_name(const char *name) {
    static const char *const v1[] = {"v1", "1", "mistral-v1", "mistral_v1", "mixtral-8x7b"};
    static const char *const v3[] = {"v3", "3", "mistral-v3", "mistral_v3", "mixtral-8x22b"};
    if (!name) return -1;
    for (size_t i = 0; i < sizeof v1 / sizeof *v1; i++)
        if (ieq(name, v1[i])) return SMOE_CHAT_V1;
    for (size_t i = 0; i < sizeof v3 / sizeof *v3; i++)
        if (ieq(name, v3[i])) return SMOE_CHAT_V3;
    return -1;
}

const char *smoe_chat_format_name(smoe_chat_format fmt) {
    return fmt == SMOE_CHAT_V1 ? "v1" : fmt == SMOE_CHAT_V3 ? "v3" : "?";
}

/* ------------------------------------------------------------------------
 * Rendering
 * ---------------------------------------------------------------------- */

typedef struct {
    const smoe_tokenizer *tok;
    const smoe_vocab *v;
    smoe_tokens *out;
    char *err;
} enc;

static int put_id(enc *e, int32_t id) { return smoe_tokens_push(e->out, id) ? oom(e->err) : 0; }

static int put_text(enc *e, const char *s, size_t n) {
    if (n == 0) return 0;
    return smoe_tokenize(e->tok, s, n, e->v->add_space_prefix, e->out, e->err);
}

/* An assistant answer: the ids the model generated when the caller kept
 * them (so a cached conversation stays a prefix), else its text. */
static int put_answer(enc *e, const turn *t, size_t n) {
    if (!t->ids) return put_text(e, t->text.p, n);
    size_t i;
    const json_t *id;
    json_array_foreach(t->ids, i, id) {
        json_int_t v = json_integer_value(id);
        if (!json_is_integer(id) || v < 0 || v >= e->v->n_tokens)
            return smoe_errf(e->err, "%s: entry %zu is not a token id of this vocabulary", SMOE_CHAT_GENERATED_IDS, i);
        if (put_id(e, (int32_t)v)) return -1;
    }
    return 0;
}

static int put_json(enc *e, const json_t *j) {
    size_t n;
    char *s = smoe_json_dumps_py(j, false, &n, e->err);
    if (!s) return -1;
    int rc = put_text(e, s, n);
    free(s);
    return rc;
}

/* One v1 user-side turn: "[INST] " + text + " [/INST]" as one segment. */
static int put_inst(enc *e, const smoe_buf *s) {
    if (s->oom) return oom(e->err);
    return put_text(e, s->p, s->n);
}

/* json.dumps({key: v}) as one text segment (v1 tool turns). */
static int put_json_as(enc *e, const char *key, json_t *v) {
    json_t *o = json_object();
    if (!o || json_object_set(o, key, v)) {
        json_decref(o);
        return oom(e->err);
    }
    int rc = put_json(e, o);
    json_decref(o);
    return rc;
}

static int render_v1(enc *e, const conv *c) {
    size_t first_user = 0;
    while (c->turns[first_user].role != ROLE_USER) first_user++;
    for (size_t k = 0; k < c->n_turns; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_USER) {
            smoe_buf s = {0};
            smoe_buf_adds(&s, "[INST] ");
            if (k == first_user && c->n_system) {
                smoe_buf_add(&s, c->system.p, c->system.n);
                smoe_buf_add(&s, "\n\n", 2);
            }
            if (k == first_user && c->tool_prompt) { /* after the system prompt: both stay on turn 1 */
                smoe_buf_adds(&s, c->tool_prompt);
                smoe_buf_add(&s, "\n\n", 2);
            }
            smoe_buf_add(&s, t->text.p, t->text.n);
            smoe_buf_adds(&s, " [/INST]");
            int rc = put_inst(e, &s);
            smoe_buf_free(&s);
            if (rc) return -1;
        } else if (t->role == ROLE_TOOL) {
            /* consecutive results share one turn: {"tool_results": [...]} */
            json_t *all = json_array();
            if (!all) return oom(e->err);
            for (; k < c->n_turns && c->turns[k].role == ROLE_TOOL; k++)
                if (json_array_append(all, c->turns[k].result)) {
                    json_decref(all);
                    return oom(e->err);
                }
            k--;
            json_t *o = json_object();
            char *js = NULL;
            size_t n = 0;
            if (o && !json_object_set(o, "tool_results", all)) js = smoe_json_dumps_py(o, false, &n, e->err);
            else oom(e->err);
            json_decref(o);
            json_decref(all);
            if (!js) return -1;
            smoe_buf s = {0};
            smoe_buf_adds(&s, "[INST] ");
            smoe_buf_add(&s, js, n);
            smoe_buf_adds(&s, " [/INST]");
            free(js);
            int rc = put_inst(e, &s);
            smoe_buf_free(&s);
            if (rc) return -1;
        } else if (t->calls) { /* what the model writes under the tools grammar */
            if (put_json_as(e, "tool_calls", t->calls) || put_id(e, e->v->eos_id)) return -1;
        } else if (c->tool_prompt) { /* an answer in words is {"content": ...} then */
            json_t *txt = json_stringn_nocheck(t->text.p ? t->text.p : "", t->text.n);
            int rc = txt ? put_json_as(e, "content", txt) : oom(e->err);
            json_decref(txt);
            if (rc || put_id(e, e->v->eos_id)) return -1;
        } else {
            if (put_answer(e, t, t->text.n) || put_id(e, e->v->eos_id)) return -1;
        }
    }
    return 0;
}

typedef struct {
    int32_t inst, end_inst, tool_calls, tools, end_tools, results, end_results;
} v3_ids;

static int need(enc *e, int32_t id, const char *piece) {
    if (id >= 0) return 0;
    return smoe_errf(e->err, "this vocabulary has no '%s' token, which the v3 chat format needs%s", piece,
                     strcmp(piece, "[INST]") == 0 || strcmp(piece, "[/INST]") == 0 ? " (try the v1 format)" :
                     " for tools");
}

static int render_v3(enc *e, const conv *c) {
    v3_ids ids = {find_piece(e->v, "[INST]"), find_piece(e->v, "[/INST]"), find_piece(e->v, "[TOOL_CALLS]"),
                  find_piece(e->v, "[AVAILABLE_TOOLS]"), find_piece(e->v, "[/AVAILABLE_TOOLS]"),
                  find_piece(e->v, "[TOOL_RESULTS]"), find_piece(e->v, "[/TOOL_RESULTS]")};
    if (need(e, ids.inst, "[INST]") || need(e, ids.end_inst, "[/INST]")) return -1;
    if (c->tools && (need(e, ids.tools, "[AVAILABLE_TOOLS]") || need(e, ids.end_tools, "[/AVAILABLE_TOOLS]")))
        return -1;
    size_t last_user = 0;
    for (size_t k = 0; k < c->n_turns; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_USER) last_user = k;
        if (t->calls && need(e, ids.tool_calls, "[TOOL_CALLS]")) return -1;
        if (t->role == ROLE_TOOL &&
            (need(e, ids.results, "[TOOL_RESULTS]") || need(e, ids.end_results, "[/TOOL_RESULTS]")))
            return -1;
    }
    for (size_t k = 0; k < c->n_turns; k++) {
        const turn *t = &c->turns[k];
        if (t->role == ROLE_USER) {
            if (k == last_user && c->tools &&
                (put_id(e, ids.tools) || put_json(e, c->tools) || put_id(e, ids.end_tools)))
                return -1;
            if (put_id(e, ids.inst)) return -1;
            if (k == last_user && c->n_system) {
                smoe_buf s = {0};
                smoe_buf_add(&s, c->system.p, c->system.n);
                smoe_buf_add(&s, "\n\n", 2);
                smoe_buf_add(&s, t->text.p, t->text.n);
                int rc = s.oom ? oom(e->err) : put_text(e, s.p, s.n);
                smoe_buf_free(&s);
                if (rc) return -1;
            } else if (put_text(e, t->text.p, t->text.n)) {
                return -1;
            }
            if (put_id(e, ids.end_inst)) return -1;
        } else if (t->role == ROLE_ASSISTANT) {
            if (t->calls) {
                if (put_id(e, ids.tool_calls) || put_json(e, t->calls)) return -1;
            } else {
                size_t n = t->text.n;
                while (n > 0 && t->text.p[n - 1] == ' ') n--;
                if (put_answer(e, t, n)) return -1;
            }
            if (put_id(e, e->v->eos_id)) return -1;
        } else {
            if (put_id(e, ids.results) || put_json(e, t->result) || put_id(e, ids.end_results)) return -1;
        }
    }
    return 0;
}

int smoe_chat_render(const smoe_tokenizer *tok, smoe_chat_format fmt, const json_t *request, smoe_tokens *out,
                     char *err) {
    if (fmt != SMOE_CHAT_V1 && fmt != SMOE_CHAT_V3) return smoe_errf(err, "unknown chat format %d", (int)fmt);
    const smoe_vocab *v = smoe_tokenizer_vocab(tok);
    if (v->bos_id < 0 || v->bos_id >= v->n_tokens || v->eos_id < 0 || v->eos_id >= v->n_tokens)
        return smoe_errf(err, "the vocabulary has no BOS/EOS token, which chat formats need");
    conv c = {0};
    c.fmt = fmt;
    int32_t n0 = out->n;
    int rc = chat_read_request(request, &c, err);
    if (rc == 0) {
        enc e = {tok, v, out, err};
        rc = put_id(&e, v->bos_id);
        if (rc == 0) rc = fmt == SMOE_CHAT_V1 ? render_v1(&e, &c) : render_v3(&e, &c);
    }
    chat_conv_free(&c);
    if (rc) out->n = n0;
    return rc ? -1 : 0;
}
