/* request.c - the lifetime of a generation request of `smoe serve` (made,
 * written to by the engine, failed, released) and the waiting queue it
 * enters (see request.h).
 *
 * Admission is first come, first served: a request that fits the free
 * slots is queued at once, others may wait while fewer than --queue are
 * waiting; the engine (worker.c) takes them out oldest first. */
#define _GNU_SOURCE
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../base/common.h"
#include "../grammar/grammar.h"
#include "state.h"

/* ---------------------------------------------------------------------------
 * Lifetime and output
 * ------------------------------------------------------------------------- */

srv_request *srv_request_new(srv *s, const srv_api_ops *ops, int n) {
    srv_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->choices = calloc((size_t)n, sizeof *r->choices);
    r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!r->choices || r->efd < 0) {
        if (r->efd >= 0) close(r->efd);
        free(r->choices);
        free(r);
        return NULL;
    }
    r->srv = s;
    r->api = ops->api;
    r->ops = ops;
    r->n = n;
    for (int i = 0; i < n; i++) {
        r->choices[i].req = r;
        r->choices[i].index = i;
    }
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->cancelled, false);
    atomic_init(&r->refs, 1);
    r->client_fd = -1;
    r->t_received_ms = smoe_now_ms();
    r->created = (int64_t)smoe_wall_s();
    r->params.top_logprobs = -1;
    pthread_mutex_lock(&s->mu);
    uint64_t k = ++s->id_counter;
    uint64_t rnd = smoe_splitmix64(&s->seed_state);
    s->live++;
    pthread_mutex_unlock(&s->mu);
    snprintf(r->id, sizeof r->id, "%s%08llx%08llx", ops->id_prefix, (unsigned long long)(rnd & 0xffffffffu),
             (unsigned long long)k);
    return r;
}

void srv_request_unref(srv_request *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    srv *s = r->srv;
    for (int i = 0; i < r->n; i++) {
        smoe_buf_free(&r->choices[i].text);
        json_decref(r->choices[i].lp);
        smoe_tokens_free(&r->choices[i].gen_ids);
    }
    free(r->choices);
    for (int i = 0; i < SRV_MAX_STOPS; i++) free(r->stops[i]);
    free(r->bias);
    free(r->model);
    smoe_grammar_free(r->params.grammar); /* response_format (structured.h) or tools */
    if (r->tools) r->tools_free(r->tools);
    smoe_tokens_free(&r->prompt);
    smoe_buf_free(&r->out);
    close(r->efd);
    pthread_mutex_destroy(&r->mu);
    free(r);
    pthread_mutex_lock(&s->mu);
    s->live--;
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
}

void srv_request_write(srv_request *r, const char *data, size_t len, bool finished) {
    pthread_mutex_lock(&r->mu);
    if (r->finished) {   /* ended early (out of memory): nothing may follow */
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (smoe_buf_add(&r->out, data, len) != 0) finished = true; /* out of memory: end the response */
    if (finished) r->finished = true;
    pthread_mutex_unlock(&r->mu);
    uint64_t one = 1;
    if (write(r->efd, &one, sizeof one) < 0) { /* the counter is full: the reader is awake anyway */ }
}

char *srv_request_dump(srv_request *r, json_t *o) {
    if (r->json_failed) {   /* an earlier event of r lost part of its output */
        json_decref(o);
        return NULL;
    }
    char *text = srv_dump(o);   /* checks the failures since the event began */
    if (!text) r->json_failed = true;
    return text;
}

void srv_request_fail(srv_request *r, const char *text) {
    srv *s = r->srv;
    pthread_mutex_lock(&s->metrics.mu);
    atomic_store(&r->cancel_step, s->metrics.steps);
    pthread_mutex_unlock(&s->metrics.mu);
    atomic_store(&r->cancelled, true);   /* this is the engine thread: seen before the next step */
    if (!r->stream) r->status = 503;
    srv_request_write(r, text, strlen(text), true);
}

/* ---------------------------------------------------------------------------
 * The waiting queue
 * ------------------------------------------------------------------------- */

int srv_submit(srv *s, srv_request *r) {
    pthread_mutex_lock(&s->mu);
    /* a request that fits the free slots is admitted at once; others may
     * wait while fewer than --queue are waiting */
    bool fits = s->claimed + r->n <= s->o.parallel;
    if (s->draining || !s->ready || (!fits && s->n_waiting >= s->o.queue)) {
        pthread_mutex_unlock(&s->mu);
        return 503;
    }
    atomic_fetch_add(&r->refs, 1); /* the engine's */
    r->qnext = NULL;
    if (s->wait_tail) s->wait_tail->qnext = r;
    else s->wait_head = r;
    s->wait_tail = r;
    s->n_waiting++;
    s->claimed += r->n;
    pthread_cond_signal(&s->engine_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_queue_drop(srv *s, void (*drop)(srv_request *r)) {
    srv_request *prev = NULL;
    for (srv_request *r = s->wait_head; r;) {
        srv_request *next = r->qnext;
        if (!atomic_load(&r->cancelled) && !s->force_cancel) {
            prev = r;
            r = next;
            continue;
        }
        if (prev) prev->qnext = next;
        else s->wait_head = next;
        if (s->wait_tail == r) s->wait_tail = prev;
        s->n_waiting--;
        s->claimed -= r->n;
        pthread_mutex_unlock(&s->mu);
        drop(r); /* formats output and takes locks of its own */
        pthread_mutex_lock(&s->mu);
        r = prev ? prev->qnext : s->wait_head;
    }
}

srv_request *srv_queue_pop(srv *s) {
    srv_request *r = s->wait_head;
    if (!r) return NULL;
    s->wait_head = r->qnext;
    if (!s->wait_head) s->wait_tail = NULL;
    s->n_waiting--;
    return r;
}
