/* worker.c - the engine thread of `smoe serve`: the waiting queue, admission
 * to slots, one scheduler step after another, cancellation, and the bridge
 * from scheduler events to the API formatters (see server.h).
 *
 * Admission is first come, first served: the oldest waiting request is
 * admitted as soon as the scheduler has as many free slots as it has
 * choices; later requests never overtake it.  Choice i of a request samples
 * with seed + i. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common.h"
#include "server.h"
#include "../grammar/grammar.h"
#include "tools.h"

/* ---------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------- */

srv_request *srv_request_new(srv *s, srv_api api, int n) {
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
    r->api = api;
    r->n = n;
    for (int i = 0; i < n; i++) {
        r->choices[i].req = r;
        r->choices[i].index = i;
    }
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->cancelled, false);
    atomic_init(&r->refs, 1);
    r->client_fd = -1;
    r->t_received_ms = srv_now_ms();
    r->created = (int64_t)srv_wall_s();
    r->params.top_logprobs = -1;
    pthread_mutex_lock(&s->mu);
    uint64_t k = ++s->id_counter;
    uint64_t rnd = smoe_splitmix64(&s->seed_state);
    s->live++;
    pthread_mutex_unlock(&s->mu);
    const char *prefix = api == API_OAI_CHAT ? "chatcmpl-" : api == API_OAI_COMPLETION ? "cmpl-" : "req-";
    snprintf(r->id, sizeof r->id, "%s%08llx%08llx", prefix, (unsigned long long)(rnd & 0xffffffffu),
             (unsigned long long)k);
    return r;
}

void srv_request_unref(srv_request *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    srv *s = r->srv;
    for (int i = 0; i < r->n; i++) {
        sbuf_free(&r->choices[i].text);
        json_decref(r->choices[i].lp);
        smoe_tokens_free(&r->choices[i].gen_ids);
    }
    free(r->choices);
    for (int i = 0; i < SRV_MAX_STOPS; i++) free(r->stops[i]);
    free(r->bias);
    free(r->model);
    smoe_grammar_free(r->params.grammar); /* response_format (structured.h) or tools */
    srv_tools_free(r->tools);
    smoe_tokens_free(&r->prompt);
    sbuf_free(&r->out);
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
    if (sbuf_add(&r->out, data, len) != 0) finished = true; /* out of memory: end the response */
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

/* jansson failures while formatting an event belong to the event's request
 * (srv_request_dump); the count is cleared before, so that another
 * request's failure is not blamed on this one. */
#define JSON_SCOPE(r, call) \
    do { \
        smoe_json_failures_take(); \
        call; \
        if (smoe_json_failures_take()) (r)->json_failed = true; \
    } while (0)

uint64_t srv_random_seed(srv *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t v = smoe_splitmix64(&s->seed_state) >> 1; /* fits an int64 when echoed */
    pthread_mutex_unlock(&s->mu);
    return v;
}

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

/* ---------------------------------------------------------------------------
 * Scheduler events -> API formatting
 * ------------------------------------------------------------------------- */

static void ev_text(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    srv_choice *c = user;
    srv_request *r = c->req;
    if (atomic_load(&r->cancelled)) return;
    if (r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION) JSON_SCOPE(r, oai_on_text(c, text, len, lp, n_lp));
    else JSON_SCOPE(r, olm_on_text(c, text, len));
}

static void ev_token(void *user, int32_t id) {
    srv_choice *c = user;
    srv *s = c->req->srv;
    double now = srv_now_ms();
    if (c->req->api == API_OLLAMA_GENERATE) smoe_tokens_push(&c->gen_ids, id); /* for "context" */
    if (c->req->tools) srv_tools_on_token(c, id); /* [TOOL_CALLS] opens the call document */
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.generated++;
    if (c->t_last_token > 0) srv_metrics_observe(&s->metrics.itl, (now - c->t_last_token) / 1e3);
    else srv_metrics_observe(&s->metrics.ttft, (now - c->req->t_received_ms) / 1e3);
    pthread_mutex_unlock(&s->metrics.mu);
    c->t_last_token = now;
}

static const char *finish_name(smoe_job_finish f) {
    switch (f) {
    case SMOE_JOB_STOP: return "stop";
    case SMOE_JOB_LENGTH: return "length";
    case SMOE_JOB_CANCEL: return "cancelled";
    default: return "error";
    }
}

static void ev_done(void *user, const smoe_job_stats *st, const char *err) {
    srv_choice *c = user;
    srv_request *r = c->req;
    srv *s = r->srv;
    c->st = *st;
    c->done = true;
    c->job = NULL;
    r->n_done++;
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.prompt_tokens += (uint64_t)st->n_processed;
    s->metrics.prompt_cached += (uint64_t)st->n_cached;
    if (st->finish == SMOE_JOB_CANCEL) s->metrics.cancelled++;
    pthread_mutex_unlock(&s->metrics.mu);
    if (st->finish == SMOE_JOB_ERROR)
        fprintf(stderr, "smoe serve: %s choice %d failed: %s\n", r->id, c->index, err);
    if (!s->o.quiet)
        fprintf(stderr, "smoe serve: %s choice %d: slot %d, prompt %d tokens (%d cached), generated %d, %s, %.0f ms\n",
                r->id, c->index, st->slot, st->n_prompt, st->n_cached, st->n_generated, finish_name(st->finish),
                st->t_end_ms - r->t_received_ms);
    if (!atomic_load(&r->cancelled) && (r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION))
        JSON_SCOPE(r, oai_on_choice_done(c));
    if (r->n_done < r->n) return;
    if (atomic_load(&r->cancelled)) {
        srv_request_write(r, "", 0, true);
        return;
    }
    if (r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION) JSON_SCOPE(r, oai_on_done(r));
    else JSON_SCOPE(r, olm_on_done(r));
}

/* ---------------------------------------------------------------------------
 * The engine loop
 * ------------------------------------------------------------------------- */

/* A request that never ran (dropped from the queue): finish its output. */
static void drop_waiting(srv_request *r) {
    for (int i = 0; i < r->n; i++) {
        smoe_job_stats st = {0};
        st.n_prompt = r->prompt.n;
        st.finish = SMOE_JOB_CANCEL;
        st.slot = -1;
        st.t_admit_ms = st.t_end_ms = srv_now_ms();
        ev_done(&r->choices[i], &st, "");
    }
    srv_request_unref(r);
}

static void admit(srv *s, srv_request *r) {
    char err[SMOE_ERR_SIZE];
    static const smoe_job_events ev = {ev_text, ev_token, ev_done};
    if (r->api == API_OAI_CHAT || r->api == API_OAI_COMPLETION) JSON_SCOPE(r, oai_on_start(r));
    for (int i = 0; i < r->n; i++) {
        smoe_job_params p = r->params;
        p.sampling.seed += (uint64_t)i;
        srv_choice *c = &r->choices[i];
        c->job = smoe_sched_submit(s->sched, r->prompt.ids, r->prompt.n, &p, &ev, c, err);
        if (!c->job) {
            smoe_job_stats st = {0};
            st.n_prompt = r->prompt.n;
            st.finish = SMOE_JOB_ERROR;
            st.slot = -1;
            st.t_admit_ms = st.t_end_ms = srv_now_ms();
            ev_done(c, &st, err);
        }
    }
}

static void publish(srv *s) {
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.active = smoe_sched_active(s->sched);
    s->metrics.queued = s->n_waiting; /* read under s->mu by the caller */
    s->metrics.kv_used = smoe_sched_kv_used(s->sched);
    s->metrics.kv_busy = smoe_sched_kv_busy(s->sched);
    pthread_mutex_unlock(&s->metrics.mu);
}

static void *engine_main(void *arg) {
    srv *s = arg;
#ifdef _OPENMP
    /* the thread count is per thread: the main thread's setting does not
     * reach this one */
    if (s->o.threads > 0) omp_set_num_threads(s->o.threads);
#endif
    srv_request *active = NULL; /* engine-private list through qnext */
    char err[SMOE_ERR_SIZE];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* the queue: drop requests whose clients left (or all, when forced) */
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
            drop_waiting(r); /* formats output and takes locks of its own */
            pthread_mutex_lock(&s->mu);
            r = prev ? prev->qnext : s->wait_head;
        }
        bool force = s->force_cancel;
        /* admit, oldest first */
        while (s->wait_head && s->wait_head->n <= smoe_sched_free_slots(s->sched) && !force) {
            srv_request *r = s->wait_head;
            s->wait_head = r->qnext;
            if (!s->wait_head) s->wait_tail = NULL;
            s->n_waiting--;
            s->engine_busy++;
            pthread_mutex_unlock(&s->mu);
            r->qnext = active;
            active = r;
            admit(s, r);
            pthread_mutex_lock(&s->mu);
        }
        publish(s);
        pthread_mutex_unlock(&s->mu);

        /* cancellations (client gone, or shutdown): before the next step,
         * so a client that leaves costs at most the step in progress */
        for (srv_request *r = active; r; r = r->qnext) {
            bool gone = atomic_load(&r->cancelled);
            if (!gone && !force) continue;
            bool had_job = false;
            for (int i = 0; i < r->n; i++)
                if (r->choices[i].job) {
                    had_job = true;
                    smoe_sched_cancel(s->sched, r->choices[i].job);
                }
            if (gone && had_job) {
                pthread_mutex_lock(&s->metrics.mu);
                uint64_t lag = s->metrics.steps - atomic_load(&r->cancel_step);
                if (lag > s->metrics.cancel_lag_max) s->metrics.cancel_lag_max = lag;
                pthread_mutex_unlock(&s->metrics.mu);
            }
        }

        int ran = 0;
        if (smoe_sched_active(s->sched) > 0) {
            ran = smoe_sched_step(s->sched, err);
            if (ran < 0) fprintf(stderr, "smoe serve: engine step failed: %s\n", err);
            pthread_mutex_lock(&s->metrics.mu);
            s->metrics.steps++;
            if (ran > 0) s->metrics.step_entries += (uint64_t)ran;
            int p = s->metrics.rate_pos = (s->metrics.rate_pos + 1) % 64;
            s->metrics.rate_t[p] = srv_now_ms();
            s->metrics.rate_n[p] = s->metrics.generated;
            pthread_mutex_unlock(&s->metrics.mu);
        }

        /* retire the requests whose choices are all done */
        int retired = 0, retired_slots = 0;
        for (srv_request **pp = &active; *pp;) {
            srv_request *r = *pp;
            if (r->n_done < r->n) { pp = &r->qnext; continue; }
            *pp = r->qnext;
            retired_slots += r->n;
            srv_request_unref(r);
            retired++;
        }

        pthread_mutex_lock(&s->mu);
        s->engine_busy -= retired;
        s->claimed -= retired_slots;
        if (retired) pthread_cond_broadcast(&s->idle_cv);
        if (smoe_sched_active(s->sched) == 0 && !active) {
            publish(s);
            if (s->engine_exit && !s->wait_head) break;
            /* Go round again for a queue that has work: a request that fits,
             * or one to drop.  (A request submitted and then cancelled while
             * the engine was stepping has had both its wake-ups already:
             * waiting here would strand it in the queue, holding its slot,
             * until the next request came.) */
            if (s->wait_head && (s->force_cancel || atomic_load(&s->wait_head->cancelled) ||
                                 s->wait_head->n <= smoe_sched_free_slots(s->sched)))
                continue;
            pthread_cond_broadcast(&s->idle_cv);
            pthread_cond_wait(&s->engine_cv, &s->mu);
        }
    }
    publish(s);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int srv_engine_start(srv *s, char *err) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 8u << 20);
    int e = pthread_create(&s->engine, &a, engine_main, s);
    pthread_attr_destroy(&a);
    if (e) return smoe_errf(err, "cannot start the engine thread: %s", strerror(e));
    pthread_mutex_lock(&s->mu);
    s->engine_running = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_engine_stop(srv *s) {
    pthread_mutex_lock(&s->mu);
    bool running = s->engine_running;
    s->engine_exit = true;
    s->force_cancel = true;
    pthread_cond_signal(&s->engine_cv);
    pthread_mutex_unlock(&s->mu);
    if (running) pthread_join(s->engine, NULL);
    pthread_mutex_lock(&s->mu);
    s->engine_running = false;
    pthread_mutex_unlock(&s->mu);
}
