/* json_schema_int.h - what the files of the JSON Schema compiler share: the
 * builder (struct smoe_jsg), the shared-rule and type bits, and the
 * functions one file calls in another.  Internal to src/grammar; the API
 * is json_schema.h.
 *
 *   json_schema_build.c   the builder, the shared rules "j-...", keywords, $ref
 *   json_schema_string.c  enum/const literals and strings
 *   json_schema_number.c  integer and number ranges
 *   json_schema_allof.c   allOf merged into one schema
 *   json_schema_gen.c     one subschema to a rule: dispatch, objects, arrays
 *   json_schema_api.c     the API of json_schema.h
 *   json_schema_cache.c   the cache of compiled schemas (API only)
 * Each file calls only files above it in this list (objects and arrays,
 * whose parts are schemas again, stay with the dispatch for that reason). */
#ifndef SMOE_JSON_SCHEMA_INT_H
#define SMOE_JSON_SCHEMA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "gint.h"
#include "json_schema.h"

#define JS_MAX_DEPTH 64
#define JS_MAX_COUNT 100000    /* minItems, maxItems, minLength, maxLength */
#define NAME_LEN 24

/* ---------------------------------------------------------------------------
 * The builder, shared rules, keywords (json_schema_build.c)
 * ------------------------------------------------------------------------- */

/* Shared rules, each emitted once when first needed. */
enum {
    P_SEP = 1 << 0, P_VALUE = 1 << 1, P_OBJECT = 1 << 2, P_ARRAY = 1 << 3, P_STRING = 1 << 4, P_CHAR = 1 << 5,
    P_NUMBER = 1 << 6, P_INTEGER = 1 << 7, P_KCHAR = 1 << 8, P_DATE = 1 << 9, P_TIME = 1 << 10,
    P_DATETIME = 1 << 11, P_UUID = 1 << 12, P_EMAIL = 1 << 13, P_FRAC = 1 << 14, P_KESC = 1 << 15,
};

typedef struct jref {
    const json_t *root;
    char *ref;
    char name[NAME_LEN];
} jref;

struct smoe_jsg {
    smoe_json_schema_opts o;
    smoe_buf rules;
    unsigned prims;
    int counter;
    jref *refs;
    int n_refs, cap_refs;
    json_t *owned;           /* merged schemas, kept alive until the end */
    const json_t *root;      /* the schema being added, for $ref */
    char path[2048];         /* JSON pointer of the subschema being compiled */
    char **rule_paths;       /* rule_paths[N] = path of rule sN */
    int cap_paths;
    char **names;            /* names returned to the caller */
    int n_names;
    char *err;
};

/* An error naming the subschema being compiled (b->path); returns -1. */
int js_where_err(smoe_jsg *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append a segment to b->path; returns the length to restore with js_path_pop. */
size_t js_path_push(smoe_jsg *b, const char *seg);
size_t js_path_push_i(smoe_jsg *b, const char *seg, size_t i);
void js_path_pop(smoe_jsg *b, size_t n);
/* A fresh rule name "sN" (remembering the path it was made for). */
void js_new_name(smoe_jsg *b, char *name);
/* Append the rule "name ::= body". */
void js_add_rule(smoe_jsg *b, const char *name, const smoe_buf *body);
/* Emit the shared rule p (one of P_*) unless already there. */
void js_need(smoe_jsg *b, unsigned p);

/* Type bits of "type". */
enum { T_NULL = 1, T_BOOL = 2, T_OBJECT = 4, T_ARRAY = 8, T_STRING = 16, T_NUMBER = 32, T_INTEGER = 64, T_ALL = 127 };

extern const char *const js_k_annotation[];  /* keywords that are ignored */
extern const char *const js_k_container[];   /* $defs, definitions */
bool js_in_list(const char *k, const char *const *list);
/* An error for a keyword outside the supported ones. */
int js_check_keywords(smoe_jsg *b, const json_t *s);
/* A validation keyword of s that is not in allowed, or NULL. */
const char *js_other_validation(const json_t *s, const char *const *allowed);
/* The types "type" allows (T_ALL when absent); -1 on a bad value. */
int js_type_mask(smoe_jsg *b, const json_t *s);
/* Resolve a local reference "#" or "#/a/b" against b->root (NULL with error). */
const json_t *js_resolve_ref(smoe_jsg *b, const char *ref);

/* ---------------------------------------------------------------------------
 * Literals and strings (json_schema_string.c)
 * ------------------------------------------------------------------------- */

/* The canonical JSON encoding of a string (with its quotes) into o. */
void js_encode_string(smoe_buf *o, const char *s, size_t n);
/* A grammar expression matching exactly the JSON value v. */
int js_emit_value(smoe_jsg *b, smoe_buf *o, const json_t *v, int depth);
/* A count keyword (minItems...): *out -1 when absent. */
int js_count_kw(smoe_jsg *b, const json_t *s, const char *k, int64_t *out);
int js_gen_string(smoe_jsg *b, const json_t *s, smoe_buf *o);

/* ---------------------------------------------------------------------------
 * Numbers (json_schema_number.c)
 * ------------------------------------------------------------------------- */

int js_gen_integer(smoe_jsg *b, const json_t *s, smoe_buf *o);
int js_gen_number(smoe_jsg *b, const json_t *s, smoe_buf *o);

/* ---------------------------------------------------------------------------
 * allOf (json_schema_allof.c)
 * ------------------------------------------------------------------------- */

/* Merge items[0..n_items) (allOf, $ref with siblings) into one plain
 * schema *out, owned by b. */
int js_merge_list(smoe_jsg *b, const json_t *const *items, int n_items, int depth, json_t **out);
/* s minus some keys (a new object) */
json_t *js_without(const json_t *s, const char *const *keys);
/* v, kept alive (owned by b) until the builder is freed. */
json_t *js_keep(smoe_jsg *b, json_t *v);

/* ---------------------------------------------------------------------------
 * One schema (json_schema_gen.c)
 * ------------------------------------------------------------------------- */

/* A rule for s; name gets its name ("j-value" for a schema that allows
 * anything). */
int js_gen(smoe_jsg *b, const json_t *s, int depth, char *name);

#endif
