/* worker.c - the engine thread of `smoe serve`: admission from the waiting
 * queue to slots, one scheduler step after another, cancellation, and the
 * bridge from scheduler events to the request's API callbacks (its
 * srv_api_ops; see server.h for the threads).
 *
 * Admission is first come, first served: the oldest waiting request is
 * admitted as soon as the scheduler has as many free slots as it has
 * choices; later requests never overtake it.  Choice i of a request samples
 * with seed + i. */
#define _GNU_SOURCE
#include "worker.h"

#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../base/common.h"
#include "../json/jsonmem.h"
#include "request.h"
#include "state.h"
#include "tools.h"
#include "util.h"

/* jansson failures while formatting an event belong to the event's request
 * (srv_request_dump); the count is cleared before, so that another
 * request's failure is not blamed on this one. */
#define JSON_SCOPE(r, call) \
    do { \
        smoe_json_failures_take(); \
        call; \
        if (smoe_json_failures_take()) (r)->json_failed = true; \
    } while (0)

/* ---------------------------------------------------------------------------
 * Scheduler events -> API formatting
 * ------------------------------------------------------------------------- */

static void ev_text(void *user, const char *text, size_t len, const smoe_token_lp *lp, int n_lp) {
    srv_choice *c = user;
    srv_request *r = c->req;
    if (atomic_load(&r->cancelled)) return;
    JSON_SCOPE(r, r->ops->text(c, text, len, lp, n_lp));
}

static void ev_token(void *user, int32_t id) {
    srv_choice *c = user;
    srv *s = c->req->srv;
    double now = smoe_now_ms();
    if (c->req->ops->token) c->req->ops->token(c, id);
    if (c->req->tools) srv_tools_on_token(c, id); /* [TOOL_CALLS] opens the call document */
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.generated++;
    if (c->t_last_token > 0) srv_metrics_observe(&s->metrics.itl, (now - c->t_last_token) / 1e3);
    else srv_metrics_observe(&s->metrics.ttft, (now - c->req->t_received_ms) / 1e3);
    pthread_mutex_unlock(&s->metrics.mu);
    c->t_last_token = now;
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
    if (st->finish == SMOE_FINISH_CANCEL) s->metrics.cancelled++;
    pthread_mutex_unlock(&s->metrics.mu);
    if (st->finish == SMOE_FINISH_ERROR)
        fprintf(stderr, "smoe serve: %s choice %d failed: %s\n", r->id, c->index, err);
    if (!s->o.quiet)
        fprintf(stderr, "smoe serve: %s choice %d: slot %d, prompt %d tokens (%d cached), generated %d, %s, %.0f ms\n",
                r->id, c->index, st->slot, st->n_prompt, st->n_cached, st->n_generated, smoe_finish_name(st->finish),
                st->t_end_ms - r->t_received_ms);
    if (!atomic_load(&r->cancelled) && r->ops->choice_done) JSON_SCOPE(r, r->ops->choice_done(c));
    if (r->n_done < r->n) return;
    if (atomic_load(&r->cancelled)) {
        srv_request_write(r, "", 0, true);
        return;
    }
    JSON_SCOPE(r, r->ops->done(r));
}

/* ---------------------------------------------------------------------------
 * The engine loop
 * ------------------------------------------------------------------------- */

/* A request that never ran (dropped from the queue): finish its output. */
static void drop_waiting(srv_request *r) {
    for (int i = 0; i < r->n; i++) {
        smoe_job_stats st = {0};
        st.n_prompt = r->prompt.n;
        st.finish = SMOE_FINISH_CANCEL;
        st.slot = -1;
        st.t_admit_ms = st.t_end_ms = smoe_now_ms();
        ev_done(&r->choices[i], &st, "");
    }
    srv_request_unref(r);
}

static void admit(srv *s, srv_request *r) {
    char err[SMOE_ERR_SIZE];
    static const smoe_job_events ev = {ev_text, ev_token, ev_done};
    if (r->ops->start) JSON_SCOPE(r, r->ops->start(r));
    for (int i = 0; i < r->n; i++) {
        smoe_job_params p = r->params;
        p.sampling.seed += (uint64_t)i;
        srv_choice *c = &r->choices[i];
        c->job = smoe_sched_submit(s->sched, r->prompt.ids, r->prompt.n, &p, &ev, c, err);
        if (!c->job) {
            smoe_job_stats st = {0};
            st.n_prompt = r->prompt.n;
            st.finish = SMOE_FINISH_ERROR;
            st.slot = -1;
            st.t_admit_ms = st.t_end_ms = smoe_now_ms();
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
        srv_queue_drop(s, drop_waiting);
        bool force = s->force_cancel;
        /* admit, oldest first */
        while (s->wait_head && s->wait_head->n <= smoe_sched_free_slots(s->sched) && !force) {
            srv_request *r = srv_queue_pop(s);
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
            s->metrics.rate_t[p] = smoe_now_ms();
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
