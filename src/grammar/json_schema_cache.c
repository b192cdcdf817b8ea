/* json_schema_cache.c - a thread-safe cache of compiled schemas keyed by
 * the canonical schema text and the options (json_schema.h). */
#include "json_schema.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "gint.h"

typedef struct centry {
    char *key;
    smoe_grammar *g;
    double compile_ms;
    uint64_t used;
} centry;

struct smoe_schema_cache {
    pthread_mutex_t lock;
    centry *e;
    int n, cap;
    uint64_t tick;
};

smoe_schema_cache *smoe_schema_cache_new(int capacity) {
    smoe_schema_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cap = capacity > 0 ? capacity : 64;
    c->e = calloc((size_t)c->cap, sizeof *c->e);
    if (!c->e) { free(c); return NULL; }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void smoe_schema_cache_free(smoe_schema_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        smoe_grammar_free(c->e[i].g);
    }
    free(c->e);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

smoe_grammar *smoe_schema_cache_get(smoe_schema_cache *c, const json_t *schema, const smoe_json_schema_opts *o,
                                    bool *hit, double *compile_ms, char *err) {
    smoe_json_schema_opts op = {0};
    if (o) op = *o;
    char *canon = schema ? json_dumps(schema, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : strdup("json_object");
    if (!canon) { smoe_errf(err, "out of memory (or a schema jansson cannot serialise)"); return NULL; }
    size_t kl = strlen(canon) + 16;
    char *key = malloc(kl);
    if (!key) { free(canon); smoe_errf(err, "out of memory"); return NULL; }
    snprintf(key, kl, "%d%d%d|%s", op.strict, op.compact, op.no_leading_space, canon);
    free(canon);
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n; i++) {
        if (!strcmp(c->e[i].key, key)) {
            c->e[i].used = ++c->tick;
            smoe_grammar *g = smoe_grammar_ref(c->e[i].g);
            if (hit) *hit = true;
            if (compile_ms) *compile_ms = c->e[i].compile_ms;
            pthread_mutex_unlock(&c->lock);
            free(key);
            return g;
        }
    }
    pthread_mutex_unlock(&c->lock);
    /* compile outside the lock: a slow schema does not hold up others */
    smoe_grammar *g = smoe_json_schema_compile(schema, &op, err);
    if (!g) { free(key); return NULL; }
    if (hit) *hit = false;
    if (compile_ms) *compile_ms = g->compile_ms;
    pthread_mutex_lock(&c->lock);
    int slot = c->n;
    if (c->n == c->cap) {
        slot = 0;
        for (int i = 1; i < c->n; i++) if (c->e[i].used < c->e[slot].used) slot = i;
        free(c->e[slot].key);
        smoe_grammar_free(c->e[slot].g);
    } else c->n++;
    c->e[slot] = (centry){key, smoe_grammar_ref(g), g->compile_ms, ++c->tick};
    pthread_mutex_unlock(&c->lock);
    return g;
}
