/* server.c - the life of a `smoe serve` process (see server.h): the
 * server made, the model set (the engine starts), the drain at shutdown,
 * everything freed. */
#define _GNU_SOURCE
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/common.h"
#include "util.h"
#include "worker.h"

srv *srv_new(const srv_opts *o, char *err) {
    srv *s = calloc(1, sizeof *s);
    if (!s) { smoe_errf(err, "out of memory"); return NULL; }
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->engine_cv, &ca);
    pthread_cond_init(&s->idle_cv, &ca);
    pthread_cond_init(&s->watchdog.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->watchdog.mu, NULL);
    srv_metrics_init(&s->metrics);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->seed_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
    s->started = (int64_t)ts.tv_sec;
    return s;
}

int srv_set_model(srv *s, const smoe_model *m, const smoe_tokenizer *tok, int chat_format, const char *path,
                  double load_ms, char *err) {
    s->model = m;
    s->tok = tok;
    s->chat_format = chat_format;
    s->load_ms = load_ms;
    snprintf(s->model_path, sizeof s->model_path, "%s", path);
    struct stat st;
    if (stat(path, &st) == 0) {
        s->model_size = (int64_t)st.st_size;
        s->model_mtime = (int64_t)st.st_mtime;
    }
    if (s->o.alias) snprintf(s->model_id, sizeof s->model_id, "%s", s->o.alias);
    else {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        snprintf(s->model_id, sizeof s->model_id, "%s", b);
        size_t n = strlen(s->model_id);
        if (n > 5 && strcasecmp(s->model_id + n - 5, ".gguf") == 0) s->model_id[n - 5] = 0;
    }
    snprintf(s->ollama_name, sizeof s->ollama_name, "%s%s", s->model_id, strchr(s->model_id, ':') ? "" : ":latest");
    smoe_sched_opts so = {s->o.parallel, s->o.n_ctx, s->o.chunk, s->o.kv_type};
    if (!(s->sched = smoe_sched_new(m, tok, &so, err))) return -1;
    s->o.n_ctx = smoe_sched_n_ctx(s->sched);
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.kv_capacity = (int64_t)s->o.parallel * s->o.n_ctx;
    s->metrics.slots = s->o.parallel;
    pthread_mutex_unlock(&s->metrics.mu);
    if (srv_engine_start(s, err)) return -1;
    pthread_mutex_lock(&s->mu);
    s->ready = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_shutdown(srv *s, bool (*second_signal)(void *), void *user) {
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    bool engine = s->engine_running;
    pthread_mutex_unlock(&s->mu);
    if (s->mhd) {
        MHD_socket fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
    if (engine) {
        /* let running and queued requests finish, for a while */
        double end = smoe_now_ms() + s->o.shutdown_timeout_s * 1e3;
        pthread_mutex_lock(&s->mu);
        while ((s->n_waiting || s->engine_busy) && smoe_now_ms() < end) {
            struct timespec ts;
            ts = smoe_deadline_ms(200);
            pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
            if (second_signal && second_signal(user)) break;
        }
        s->force_cancel = true;
        pthread_cond_signal(&s->engine_cv);
        pthread_mutex_unlock(&s->mu);
        srv_engine_stop(s);
    }
    /* let the last responses reach their clients */
    double end = smoe_now_ms() + 5e3;
    pthread_mutex_lock(&s->mu);
    while (s->live > 0 && smoe_now_ms() < end) {
        struct timespec ts;
        ts = smoe_deadline_ms(100);
        pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->mhd) MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    srv_watchdog_stop(&s->watchdog);
}

void srv_free(srv *s) {
    if (!s) return;
    if (s->mhd) MHD_stop_daemon(s->mhd);
    srv_watchdog_stop(&s->watchdog);
    smoe_sched_free(s->sched);
    srv_metrics_destroy(&s->metrics);
    pthread_cond_destroy(&s->engine_cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->watchdog.cv);
    pthread_mutex_destroy(&s->watchdog.mu);
    free(s);
}
