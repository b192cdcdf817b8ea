/* structured.c - response_format / format to a grammar (see structured.h). */
#include "structured.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../base/common.h"
#include "../grammar/json_schema.h"

/* ---------------------------------------------------------------------------
 * The schema cache: one per process, made on first use (request threads
 * call in concurrently; the cache itself is thread-safe).
 * ------------------------------------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static smoe_schema_cache *cache;

static void make_cache(void) { cache = smoe_schema_cache_new(64); }

static smoe_grammar *compile(const json_t *schema, bool strict, char *err) {
    pthread_once(&once, make_cache);
    smoe_json_schema_opts o = {.strict = strict};
    if (!cache) return smoe_json_schema_compile(schema, &o, err);
    bool hit;
    double ms;
    return smoe_schema_cache_get(cache, schema, &o, &hit, &ms, err);
}

/* ---------------------------------------------------------------------------
 * OpenAI
 * ------------------------------------------------------------------------- */

int srv_structured_openai(const json_t *body, smoe_grammar **out, char *param, char *err) {
    *out = NULL;
    strcpy(param, "response_format");
    const json_t *rf = json_object_get(body, "response_format");
    if (!rf || json_is_null(rf)) return 0;
    if (!json_is_object(rf)) return smoe_errf(err, "'response_format' must be an object");
    const json_t *type = json_object_get(rf, "type");
    const char *t = json_string_value(type);
    if (!t) return smoe_errf(err, "'response_format.type' must be a string: text, json_object or json_schema");
    if (!strcmp(t, "text")) return 0;
    char cerr[SMOE_ERR_SIZE];
    if (!strcmp(t, "json_object")) {
        if (!(*out = compile(NULL, false, cerr))) return smoe_errf(err, "response_format: %s", cerr);
        return 0;
    }
    if (strcmp(t, "json_schema"))
        return smoe_errf(err, "'response_format.type' '%.40s' is not text, json_object or json_schema", t);
    const json_t *js = json_object_get(rf, "json_schema");
    if (!json_is_object(js)) return smoe_errf(err, "'response_format.json_schema' must be an object");
    const json_t *name = json_object_get(js, "name");
    if (name && !json_is_string(name)) return smoe_errf(err, "'response_format.json_schema.name' must be a string");
    const json_t *strict = json_object_get(js, "strict");
    if (strict && !json_is_boolean(strict) && !json_is_null(strict))
        return smoe_errf(err, "'response_format.json_schema.strict' must be a boolean");
    const json_t *schema = json_object_get(js, "schema");
    if (!schema || json_is_null(schema)) {
        /* OpenAI allows leaving it out: any JSON object */
        if (!(*out = compile(NULL, false, cerr))) return smoe_errf(err, "response_format: %s", cerr);
        return 0;
    }
    if (!json_is_object(schema) && !json_is_boolean(schema))
        return smoe_errf(err, "'response_format.json_schema.schema' must be a JSON Schema (an object)");
    if (!(*out = compile(schema, json_is_true(strict), cerr)))
        return smoe_errf(err, "response_format.json_schema.schema: %s", cerr);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Ollama
 * ------------------------------------------------------------------------- */

int srv_structured_ollama(const json_t *body, smoe_grammar **out, char *err) {
    *out = NULL;
    const json_t *f = json_object_get(body, "format");
    if (!f || json_is_null(f) || (json_is_string(f) && !*json_string_value(f))) return 0;
    char cerr[SMOE_ERR_SIZE];
    if (json_is_string(f)) {
        if (strcmp(json_string_value(f), "json"))
            return smoe_errf(err, "'format' must be \"json\" or a JSON Schema object, not '%.40s'", json_string_value(f));
        if (!(*out = compile(NULL, false, cerr))) return smoe_errf(err, "format: %s", cerr);
        return 0;
    }
    if (!json_is_object(f)) return smoe_errf(err, "'format' must be \"json\" or a JSON Schema object");
    if (!(*out = compile(f, false, cerr))) return smoe_errf(err, "format: %s", cerr);
    return 0;
}
