/* json_schema.h - JSON Schema to grammar (see grammar.h for the grammar
 * engine), and a cache of compiled schemas.
 *
 * WHAT THE DOCUMENTS LOOK LIKE (whitespace policy).  No free whitespace at
 * all: no newlines, no indentation, nothing between tokens except, in the
 * default spacing, ONE OPTIONAL space after each ':' and ',' (so both
 * {"a":1,"b":2} and {"a": 1, "b": 2}, as Python's json.dumps writes it, are
 * accepted) and, unless no_leading_space, one optional space before the
 * document (SentencePiece models start an answer with "▁{").  compact
 * removes the optional spaces after ':' and ','.  A model can therefore
 * never loop on whitespace.  Object properties come in the order the
 * schema lists them (required ones always, optional ones or not), then any
 * additional properties.  Strings in enum/const, property names and
 * pattern/format strings are matched in their canonical encoding (raw
 * UTF-8 except '"', '\' and controls: \" \\ \b \t \n \f \r \u00XX); other
 * strings accept every JSON escape, \uXXXX included (surrogates only as
 * valid pairs, counted as one character as JSON Schema counts them).
 * Numbers: -?(0|[1-9][0-9]{0,17})(.[0-9]+)?([eE][+-]?[0-9]{1,2})?; integers
 * have no fraction or exponent.  At most 18 integer digits where the schema
 * sets no bound, and a 2-digit exponent, so that every JSON parser reads
 * the value (jansson, for one, refuses integers beyond 64 bits and reals
 * beyond the double range); explicit minimum/maximum are exact.
 *
 * SUPPORTED KEYWORDS (Draft 2020-12 meaning):
 *   type (a name or a list), enum, const, properties, required,
 *   additionalProperties (boolean or schema; when absent: true, or false
 *   with opts.strict), items (schema or false), prefixItems, minItems,
 *   maxItems, minLength, maxLength, pattern (below), format (date, time,
 *   date-time, uuid, email; below), minimum, maximum, exclusiveMinimum,
 *   exclusiveMaximum (exact for integers, any numeric bound; for "number"
 *   only whole-number bounds, matched exactly with plain decimals, no
 *   exponent), anyOf, oneOf (compiled as anyOf: keep the branches
 *   disjoint), allOf (merged: properties, required, additionalProperties,
 *   bounds, enum/const, type...), $ref to "#", "#/$defs/..." or
 *   "#/definitions/..." (recursion allowed), $defs, definitions.
 *   Annotations are ignored: title, description, default, examples,
 *   $comment, $schema, $id, $anchor, deprecated, readOnly, writeOnly.
 *   ANY OTHER KEYWORD IS AN ERROR naming it (uniqueItems, minProperties,
 *   patternProperties, if/then/else, not, contains, multipleOf, ...), as
 *   are: enum/const together with validation keywords other than type,
 *   minLength/maxLength together with pattern or format, items given as an
 *   array (use prefixItems), non-local $ref.
 *   Without "type", the type is inferred from the keywords present
 *   (properties -> object, items -> array, minLength -> string, ...;
 *   none -> any JSON value).
 *
 * PATTERN SUBSET (anchors as in JSON Schema: the pattern may match anywhere
 * unless it starts with ^ / ends with $):  literal characters, '.', classes
 * [...] and [^...] with ranges, escapes \d \w \s (ASCII: [0-9],
 * [A-Za-z0-9_], [\t-\r ]), \n \t \r \f \v \0 \xHH \uHHHH and escaped
 * punctuation, groups (...) (?:...) (?P<n>...) (?<n>...), alternation |,
 * quantifiers ? * + {n} {n,} {n,m} {,m} (lazy forms accepted).  Rejected:
 * backreferences, lookaround, \b and other anchors, \D \W \S (and \d \w \s
 * inside [^...]), \p{..}, possessive quantifiers, inline flags, and
 * patterns larger than 100000 characters after expanding repetitions.
 * Matching never backtracks, so no pattern takes exponential time.
 *
 * FORMATS: date YYYY-MM-DD (years 0001-9999, real month lengths, Feb 29 in
 * leap years only); time HH:MM:SS(.f{1,6})?(Z|+HH:MM|-HH:MM) (RFC 3339,
 * no leap second); date-time date "T" time; uuid 8-4-4-4-12 hex digits;
 * email local@domain (dot-atoms, at least one dot in the domain).
 *
 * UNSATISFIABLE schemas are errors: false where a value is needed,
 * minItems > maxItems, minLength > maxLength, empty ranges, empty enum (or
 * none of its values of the allowed types), required properties that
 * additionalProperties: false forbids, schemas whose recursion never
 * ends.  Nesting deeper than 64 levels is an error. */
#ifndef SMOE_JSON_SCHEMA_H
#define SMOE_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "grammar.h"

typedef struct smoe_json_schema_opts {
    bool strict;            /* additionalProperties defaults to false */
    bool compact;           /* no optional space after ':' and ',' */
    bool no_leading_space;  /* no optional space before the document */
} smoe_json_schema_opts;

/* The grammar text for schema (malloc'd, NUL-terminated), or NULL with err. */
char *smoe_json_schema_to_grammar(const json_t *schema, const smoe_json_schema_opts *o, char *err);

/* Any JSON object ({"type": "json_object"} / Ollama "json"). */
char *smoe_json_object_grammar(const smoe_json_schema_opts *o, char *err);

/* Compile schema (NULL: any JSON object) to a grammar. */
smoe_grammar *smoe_json_schema_compile(const json_t *schema, const smoe_json_schema_opts *o, char *err);

/* Building bigger grammars that embed schemas (a tool-call array, say):
 * each added schema becomes a rule whose name is returned (valid until the
 * builder is freed); add the rest, "root" included, as grammar text. */
typedef struct smoe_jsg smoe_jsg;
smoe_jsg *smoe_jsg_new(const smoe_json_schema_opts *o, char *err);
void smoe_jsg_free(smoe_jsg *b);
const char *smoe_jsg_add_schema(smoe_jsg *b, const json_t *schema, char *err);
/* Strict mode for the schemas added from now on (tools that say
 * "strict": true sit next to tools that do not). */
void smoe_jsg_set_strict(smoe_jsg *b, bool strict);
/* Rules for any JSON value / object / string (their rule names). */
const char *smoe_jsg_any_value(smoe_jsg *b);
const char *smoe_jsg_any_object(smoe_jsg *b);
const char *smoe_jsg_any_string(smoe_jsg *b);
/* The separator rule: one optional space (or nothing when compact). */
const char *smoe_jsg_sep(smoe_jsg *b);
int smoe_jsg_add_text(smoe_jsg *b, const char *rules, char *err);
/* The complete grammar text (malloc'd) */
char *smoe_jsg_text(smoe_jsg *b, char *err);

/* A thread-safe cache of compiled schemas, keyed by the canonical schema
 * text (sorted keys, compact) and the options.  capacity entries at most
 * (the oldest go first).  get returns a new reference (free it with
 * smoe_grammar_free); *hit tells whether it came from the cache and
 * *compile_ms what compiling took (then, or when it was first compiled). */
typedef struct smoe_schema_cache smoe_schema_cache;
smoe_schema_cache *smoe_schema_cache_new(int capacity);
void smoe_schema_cache_free(smoe_schema_cache *c);
smoe_grammar *smoe_schema_cache_get(smoe_schema_cache *c, const json_t *schema, const smoe_json_schema_opts *o,
                                    bool *hit, double *compile_ms, char *err);

#endif
