/* state.c - questions asked of the server's state (see state.h): the model's
 * names, random seeds. */
#define _GNU_SOURCE
#include "state.h"

#include <strings.h>

#include "../base/common.h"

bool srv_model_matches(const srv *s, const char *name) {
    return !strcasecmp(name, s->model_id) || !strcasecmp(name, s->ollama_name);
}

uint64_t srv_random_seed(srv *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t v = smoe_splitmix64(&s->seed_state) >> 1; /* fits an int64 when echoed */
    pthread_mutex_unlock(&s->mu);
    return v;
}
