/* grammar.h - constrained decoding: grammars, the automaton that runs them,
 * and per-step token masks.
 *
 * GRAMMAR SYNTAX (GBNF-style; the JSON Schema compiler in json_schema.h
 * produces this too)
 *
 *   # a comment runs to the end of the line
 *   root   ::= "[" items? "]"            # the document is rule "root"
 *   items  ::= item ("," " "? item)*
 *   item   ::= [a-z]+ | "'" [^'\n]{1,20} "'" | num
 *   num    ::= "-"? ("0" | [1-9] [0-9]*)
 *
 *   name ::= alternatives   a rule; names are [A-Za-z0-9_-]+, each defined
 *                           once; a rule may span lines (it ends where the
 *                           next "name ::=" begins); "root" must exist
 *   a b c                   sequence
 *   a | b                   alternation (lowest precedence)
 *   ( ... )                 group
 *   x?  x*  x+              optional, zero or more, one or more
 *   x{n}  x{n,}  x{n,m}  x{,m}   counted repetition (n, m <= 100000)
 *   "text"                  literal; escapes \n \r \t \\ \" \' \[ \] \-
 *                           \^ \/ \xHH \uHHHH \UHHHHHHHH (code points,
 *                           written as UTF-8); "" is the empty string
 *   [abc] [a-z0-9_] [^"\\]  character class over Unicode code points, with
 *                           ranges and negation ([^...] = every code point
 *                           not listed), the same escapes as literals
 *   .                       any code point
 *   name                    the rule called name (recursion is allowed,
 *                           left recursion is an error)
 *
 * Matching is on UTF-8 bytes: classes and "." match one whole code point
 * (1 to 4 bytes, never a surrogate or anything above U+10FFFF), so every
 * document the grammar accepts is well-formed UTF-8.  Grammars are
 * checked when compiled: undefined or left-recursive rules, rules that
 * can never finish, empty classes, bad escapes or repetition bounds, and
 * grammars that expand to more than 4 million automaton states are errors
 * naming the rule or line.
 *
 * DESIGN.  Each rule becomes a byte-level NFA with call edges (a recursive
 * transition network).  A parser configuration is the set of live stacks
 * (NFA state + a hash-consed return stack), and configurations are
 * interned as states of a DFA that is built lazily, one (state, byte
 * class) transition at a time, and kept for the grammar's lifetime (shared
 * by every matcher of that grammar, under a mutex).  The token mask walks
 * a byte trie of the vocabulary against that DFA, pruning a whole subtree
 * as soon as its prefix fails, and is cached per DFA state: once warm, a
 * step costs one table lookup per trie node visited, and a repeated state
 * (inside a string, for instance) costs a 4 KiB copy.
 *
 * Budgets: each DFA state knows the fewest bytes that complete the
 * document.  Given a token budget, the mask keeps only tokens after which
 * the document can still be completed within the budget (every byte has a
 * byte token in the vocabularies smoe supports), so generation that runs
 * out of tokens still ends with a complete document. */
#ifndef SMOE_GRAMMAR_H
#define SMOE_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../tokenizer/tokenizer.h"

typedef struct smoe_grammar smoe_grammar;

/* Parse and compile grammar text (see above).  The result holds one
 * reference; smoe_grammar_free drops one.  Thread-safe after creation. */
smoe_grammar *smoe_grammar_new(const char *text, size_t len, char *err);
smoe_grammar *smoe_grammar_ref(smoe_grammar *g);
void smoe_grammar_free(smoe_grammar *g);

typedef struct smoe_grammar_info {
    int32_t n_rules, n_states;  /* rules and NFA states */
    int32_t n_classes;          /* byte classes (alphabet of the DFA) */
    double compile_ms;          /* parse + compile time */
    int32_t n_dfa_states;       /* DFA states built so far */
    int64_t n_masks_cached;
} smoe_grammar_info;
void smoe_grammar_get_info(smoe_grammar *g, smoe_grammar_info *out);

/* The vocabulary as a byte trie, built once per tokenizer.  Tokens with no
 * bytes (control tokens) and <unk> never match text; the end-of-sequence
 * token is allowed exactly when the document is complete.  t is borrowed. */
typedef struct smoe_gvocab smoe_gvocab;
smoe_gvocab *smoe_gvocab_new(const smoe_tokenizer *t, char *err);
void smoe_gvocab_free(smoe_gvocab *v);
int32_t smoe_gvocab_n_tokens(const smoe_gvocab *v);
/* Number of uint64_t words of a mask: (n_tokens + 63) / 64. */
size_t smoe_gvocab_mask_words(const smoe_gvocab *v);

/* A matcher: where one document is in the grammar.  v may be NULL for
 * byte-level use only (no masks, no tokens).  Holds a reference to g. */
typedef struct smoe_gmatch smoe_gmatch;
smoe_gmatch *smoe_gmatch_new(smoe_grammar *g, const smoe_gvocab *v, char *err);
void smoe_gmatch_free(smoe_gmatch *m);
/* Back to the start of the document. */
void smoe_gmatch_reset(smoe_gmatch *m);
/* Feed bytes.  Returns 0 when all are a valid continuation; -1 when not (the
 * matcher is then unchanged, and *n_ok, when not NULL, gets how many
 * leading bytes were acceptable) or on an internal limit (err says which). */
int smoe_gmatch_accept_bytes(smoe_gmatch *m, const void *bytes, size_t n, size_t *n_ok, char *err);
/* Feed a token's bytes (its text as smoe_token_bytes gives it).  The end-of-
 * sequence token and tokens without bytes are accepted only when the
 * document is complete, and change nothing.  Returns 0 or -1 as above. */
int smoe_gmatch_accept_token(smoe_gmatch *m, int32_t token, char *err);
/* The bytes so far form a complete document. */
bool smoe_gmatch_complete(smoe_gmatch *m);
/* More bytes could follow (false: the document is complete and closed). */
bool smoe_gmatch_can_continue(smoe_gmatch *m);
/* Fewest bytes that complete the document (0 when complete). */
uint32_t smoe_gmatch_min_remaining(smoe_gmatch *m);

/* The allowed tokens for the next step as a bitset (bit i of word i/64 set
 * = token i allowed; smoe_gvocab_mask_words words).  budget >= 0: only
 * tokens after which the document can be completed within `budget` more
 * tokens (when no token can, those that leave the fewest bytes to write);
 * -1: no budget.  The end-of-sequence token is set when the
 * document is complete.  Returns the number of allowed tokens (0 means the
 * grammar cannot continue with this vocabulary), or -1 with err. */
int32_t smoe_gmatch_mask(smoe_gmatch *m, int32_t budget, uint64_t *bits, char *err);

#endif
