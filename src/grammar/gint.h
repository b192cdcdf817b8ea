/* gint.h - internals of the grammar engine shared by gparse.c (text ->
 * syntax tree), gcompile.c (syntax tree -> automaton) and gmatch.c (the
 * runtime: lazy DFA over parser configurations, vocabulary trie, masks).
 * Not part of the public API (see grammar.h). */
#ifndef SMOE_GRAMMAR_GINT_H
#define SMOE_GRAMMAR_GINT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/buf.h"  /* smoe_buf: grammar text is built in it */
#include "../base/utf8.h"
#include "grammar.h"

/* Limits that keep hostile grammars from exhausting memory or time. */
#define GR_MAX_TEXT        (16u << 20)  /* grammar text bytes */
#define GR_MAX_NEST        256          /* nesting of parentheses */
#define GR_MAX_REPEAT      100000       /* {m,n} bounds */
#define GR_MAX_STATES      (4 << 20)    /* automaton states after expanding repetitions */
#define GR_MAX_CONFIG      20000        /* parser stacks alive at once (ambiguity) */
#define GR_MAX_GSS         (16 << 20)   /* stack nodes */

/* ---------------------------------------------------------------------------
 * Syntax tree (gparse.c)
 * ------------------------------------------------------------------------- */

enum { GN_ALT, GN_SEQ, GN_LIT, GN_CLASS, GN_REF, GN_REP };

typedef struct gnode {
    uint8_t kind;
    int32_t first;   /* first child (ALT, SEQ, REP) or -1 */
    int32_t next;    /* next sibling or -1 */
    int32_t a, b;    /* LIT: byte offset, length; CLASS: range offset, count;
                        REF: rule index; REP: min, max (-1 = unbounded) */
    int32_t line;
} gnode;

typedef struct gast {
    gnode *nodes;
    int32_t n_nodes, cap_nodes;
    uint8_t *bytes;              /* literal bytes */
    size_t n_bytes, cap_bytes;
    uint32_t *ranges;            /* class code point ranges, lo/hi pairs */
    size_t n_ranges, cap_ranges; /* in uint32 units */
    char **names;                /* rule names */
    int32_t *body;               /* rule bodies (node index, -1 = used, undefined) */
    int32_t *def_line;
    int32_t n_rules, cap_rules;
} gast;

int gr_parse(const char *text, size_t len, gast *ast, char *err);
void gr_ast_free(gast *ast);

/* ---------------------------------------------------------------------------
 * Automaton (gcompile.c)
 *
 * Every rule is a Thompson NFA over bytes whose edges are byte ranges,
 * epsilon moves, or calls of another rule (push the return state, jump to
 * the callee's start).  Reaching the final state of a rule returns to the
 * caller.  Character classes are compiled to UTF-8 byte sequences, so the
 * automaton only ever accepts well-formed UTF-8.
 * ------------------------------------------------------------------------- */

enum { GE_BYTE, GE_EPS, GE_CALL };

typedef struct gedge {
    int32_t target;   /* BYTE/EPS: next state; CALL: return state */
    int32_t rule;     /* CALL: callee */
    uint8_t kind, lo, hi;
} gedge;

enum { GS_BYTES = 1, GS_FINAL = 2 };

typedef struct grule {
    char *name;
    int32_t start, final;
} grule;

struct grt; /* runtime caches, gmatch.c */

struct smoe_grammar {
    atomic_int refs;
    int32_t n_rules, root;
    grule *rules;
    int32_t n_states;
    int32_t *edge_off;    /* n_states + 1: edges of state q are edges[edge_off[q] .. edge_off[q+1]) */
    gedge *edges;
    uint8_t *sflags;      /* GS_* */
    uint32_t *dist;       /* fewest bytes from the state to its rule's final state */
    uint8_t byte_class[256];
    int32_t n_classes;
    uint8_t class_rep[256];
    double compile_ms;
    struct grt *rt;
};

#define GR_INF UINT32_MAX

int gr_compile(const gast *ast, smoe_grammar *g, char *err);

/* s[0..n) as a grammar literal "..." (escapes for '"', '\\' and controls). */
void gb_lit(smoe_buf *b, const void *s, size_t n);

/* Translate a JSON Schema "pattern" (subset, see json_schema.h) into a
 * grammar expression for the JSON-encoded content of matching strings
 * (regex.c). */
int gr_regex_to_grammar(const char *pat, size_t len, smoe_buf *out, char *err);
/* A grammar expression for one JSON string character (its canonical
 * encoding) from the code point set ranges[0..2n) (sorted, disjoint, no
 * surrogates) (regex.c). */
void gr_emit_json_charset(smoe_buf *out, const uint32_t *ranges, size_t n);

/* Runtime caches (gmatch.c): made once the automaton is complete. */
struct grt *gr_rt_new(const smoe_grammar *g, char *err);
void gr_rt_free(struct grt *rt);

#endif
