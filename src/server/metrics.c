/* metrics.c - GET /metrics in the Prometheus text exposition format.
 *
 *   smoe_requests_total{endpoint,status}        HTTP requests answered
 *   smoe_prompt_tokens_total                    prompt tokens run through the model
 *   smoe_prompt_tokens_cached_total             prompt tokens reused from a KV cache
 *   smoe_generated_tokens_total                 tokens generated
 *   smoe_sequences_cancelled_total              sequences cancelled (client gone, shutdown)
 *   smoe_cancel_lag_steps_max                   most engine steps a sequence ran after its
 *                                               client was seen gone (at most 1: the step
 *                                               in progress)
 *   smoe_engine_steps_total, smoe_engine_batch_entries_total   forward passes and their entries
 *   smoe_generation_tokens_per_second           generated tokens/s over the last 10 s of steps
 *   smoe_queue_length                           requests waiting for a slot
 *   smoe_active_sequences, smoe_slots           sequences running, slots in all
 *   smoe_kv_cache_used_tokens, smoe_kv_cache_capacity_tokens, smoe_kv_cache_usage_ratio
 *                                               positions held in the slots' caches
 *                                               (a free slot keeps its tokens for reuse)
 *   smoe_kv_cache_busy_tokens                   of which held by running sequences
 *   smoe_time_to_first_token_seconds            histogram, from receipt of the request
 *                                               (queue time included) to the first token
 *   smoe_inter_token_latency_seconds            histogram, between tokens of one sequence
 *   smoe_ready                                  1 when the model is loaded */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

static const double bounds[SRV_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                1, 2.5, 5, 10, 25, 60, 120};

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

void srv_metrics_request(srv_metrics *m, const char *endpoint, int status) {
    pthread_mutex_lock(&m->mu);
    int i;
    for (i = 0; i < m->n_reqs; i++)
        if (m->reqs[i].status == status && strcmp(m->reqs[i].endpoint, endpoint) == 0) break;
    if (i == m->n_reqs) {
        if (m->n_reqs == (int)(sizeof m->reqs / sizeof *m->reqs)) { /* full: lump into "other" */
            for (i = 0; i < m->n_reqs; i++)
                if (m->reqs[i].status == status && strcmp(m->reqs[i].endpoint, "other") == 0) break;
            if (i == m->n_reqs) i = m->n_reqs - 1;
        } else {
            snprintf(m->reqs[i].endpoint, sizeof m->reqs[i].endpoint, "%s", endpoint);
            m->reqs[i].status = status;
            m->n_reqs++;
        }
    }
    m->reqs[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_observe(srv_hist *h, double seconds) {
    int b = 0;
    while (b < SRV_HIST_BUCKETS && seconds > bounds[b]) b++;
    h->counts[b]++;
    h->sum += seconds;
    h->n++;
}

static void hist(smoe_buf *b, const char *name, const char *help, const srv_hist *h) {
    smoe_buf_addf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < SRV_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        smoe_buf_addf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[SRV_HIST_BUCKETS];
    smoe_buf_addf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name,
              h->sum, name, (unsigned long long)h->n);
}

static void counter(smoe_buf *b, const char *name, const char *help, uint64_t v) {
    smoe_buf_addf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void gauge(smoe_buf *b, const char *name, const char *help, double v) {
    smoe_buf_addf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.6g\n", name, help, name, name, v);
}

char *srv_metrics_render(srv_metrics *m, bool ready) {
    smoe_buf b = {0};
    pthread_mutex_lock(&m->mu);
    smoe_buf_addf(&b, "# HELP smoe_requests_total HTTP requests answered, by endpoint and status\n"
                  "# TYPE smoe_requests_total counter\n");
    for (int i = 0; i < m->n_reqs; i++)
        smoe_buf_addf(&b, "smoe_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->reqs[i].endpoint,
                  m->reqs[i].status, (unsigned long long)m->reqs[i].n);
    counter(&b, "smoe_prompt_tokens_total", "prompt tokens run through the model", m->prompt_tokens);
    counter(&b, "smoe_prompt_tokens_cached_total", "prompt tokens reused from a KV cache", m->prompt_cached);
    counter(&b, "smoe_generated_tokens_total", "tokens generated", m->generated);
    counter(&b, "smoe_sequences_cancelled_total", "sequences cancelled (client gone or shutdown)", m->cancelled);
    gauge(&b, "smoe_cancel_lag_steps_max", "most engine steps a sequence ran after its client was seen gone",
          (double)m->cancel_lag_max);
    counter(&b, "smoe_http_read_timeouts_total",
            "connections closed because a request did not arrive whole within --read-timeout", m->read_timeouts);
    counter(&b, "smoe_engine_steps_total", "batched forward passes", m->steps);
    counter(&b, "smoe_engine_batch_entries_total", "tokens run in those passes", m->step_entries);
    /* tokens/s over the steps of the last 10 seconds */
    double now = smoe_now_ms(), rate = 0;
    int cur = m->rate_pos, old = -1;
    for (int k = 1; k < 64; k++) {
        int i = (cur - k + 64) % 64;
        if (m->rate_t[i] <= 0 || now - m->rate_t[i] > 10e3) break;
        old = i;
    }
    if (old >= 0 && m->rate_t[cur] > m->rate_t[old] && now - m->rate_t[cur] < 10e3)
        rate = (double)(m->rate_n[cur] - m->rate_n[old]) * 1e3 / (m->rate_t[cur] - m->rate_t[old]);
    gauge(&b, "smoe_generation_tokens_per_second", "generated tokens per second over the last 10 s", rate);
    gauge(&b, "smoe_queue_length", "requests waiting for a slot", m->queued);
    gauge(&b, "smoe_active_sequences", "sequences being generated", m->active);
    gauge(&b, "smoe_slots", "sequences that can run at once (--parallel)", m->slots);
    gauge(&b, "smoe_kv_cache_used_tokens", "positions held in the KV caches", (double)m->kv_used);
    gauge(&b, "smoe_kv_cache_busy_tokens", "positions held by running sequences", (double)m->kv_busy);
    gauge(&b, "smoe_kv_cache_capacity_tokens", "positions the KV caches can hold", (double)m->kv_capacity);
    gauge(&b, "smoe_kv_cache_usage_ratio", "used / capacity",
          m->kv_capacity ? (double)m->kv_used / (double)m->kv_capacity : 0);
    hist(&b, "smoe_time_to_first_token_seconds", "from receipt of a request to its first token", &m->ttft);
    hist(&b, "smoe_inter_token_latency_seconds", "between two tokens of one sequence", &m->itl);
    gauge(&b, "smoe_ready", "1 when the model is loaded", ready ? 1 : 0);
    pthread_mutex_unlock(&m->mu);
    return b.p ? b.p : strdup("");
}
