/* watchdog.h - the receive deadline of `smoe serve` (--read-timeout): one
 * thread shuts down connections whose request has not arrived whole in
 * time (watchdog.c says why and how). */
#ifndef SMOE_SERVER_WATCHDOG_H
#define SMOE_SERVER_WATCHDOG_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "metrics.h"

typedef struct srv_watch srv_watch;   /* one per open connection */

typedef struct srv_watchdog {
    pthread_mutex_t mu;           /* guards everything below */
    pthread_cond_t cv;
    srv_watch *head;
    double timeout_ms;            /* --read-timeout */
    bool stop, running;
    pthread_t thread;
    srv_metrics *metrics;         /* read_timeouts is counted there */
} srv_watchdog;

/* mu and cv are initialised by the caller (cv on CLOCK_MONOTONIC). */
int srv_watchdog_start(srv_watchdog *w, unsigned read_timeout_s, srv_metrics *m, char *err);
void srv_watchdog_stop(srv_watchdog *w);        /* after MHD is stopped */
/* MHD_OPTION_NOTIFY_CONNECTION (cls: the srv_watchdog): a connection opened
 * (its clock starts) or closed. */
void srv_watch_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
void srv_watch_received(srv_watchdog *w, struct MHD_Connection *conn);   /* the request is in: stop the clock */
void srv_watch_rearm(srv_watchdog *w, struct MHD_Connection *conn);      /* answered: the next request's clock starts */

#endif
