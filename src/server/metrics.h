/* metrics.h - the counters, gauges and histograms of `smoe serve` and
 * their Prometheus rendering for GET /metrics (metrics.c). */
#ifndef SMOE_SERVER_METRICS_H
#define SMOE_SERVER_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SRV_HIST_BUCKETS 14

typedef struct srv_hist {
    uint64_t counts[SRV_HIST_BUCKETS + 1];   /* last: +Inf */
    double sum;
    uint64_t n;
} srv_hist;

typedef struct srv_req_count {
    char endpoint[40];
    int status;
    uint64_t n;
} srv_req_count;

typedef struct srv_metrics {
    pthread_mutex_t mu;
    srv_req_count reqs[128];
    int n_reqs;
    uint64_t prompt_tokens, prompt_cached, generated, cancelled, steps, step_entries;
    double rate_t[64];                        /* (time, generated) ring for tokens/s */
    uint64_t rate_n[64];
    int rate_pos;
    int32_t active, queued, slots;
    int64_t kv_used, kv_busy, kv_capacity;
    uint64_t cancel_lag_max;                  /* steps run after a client left, at most */
    uint64_t read_timeouts;                   /* connections closed by the receive deadline */
    srv_hist ttft, itl;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, const char *endpoint, int status);
void srv_metrics_observe(srv_hist *h, double seconds);   /* caller holds mu */
/* Prometheus text exposition format; malloc'd. */
char *srv_metrics_render(srv_metrics *m, bool ready);

#endif
