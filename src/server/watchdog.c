/* watchdog.c - the receive deadline of `smoe serve`: a request (headers and
 * body) must arrive whole within --read-timeout seconds of its connection
 * opening, or of the previous answer on that connection.
 *
 * Why: libmicrohttpd's own timeout (--timeout) is an idle timeout that
 * restarts with every byte received, and nothing bounds the time spent in
 * the header phase.  A client dripping one header byte a second would hold
 * its connection (a thread and a --max-connections slot) for ever, and as
 * many of them as the limit lock everybody else out ("slowloris").
 *
 * How: MHD tells us when a connection opens and closes (NOTIFY_CONNECTION);
 * each open connection gets a srv_watch with its socket and a deadline.  The
 * access handler stops the clock once the whole request is in (the answer,
 * however long a generation streams, is not timed here); the end of the
 * answer (NOTIFY_COMPLETED) starts it again for the next request.  One
 * thread wakes at the earliest deadline and shuts down the sockets of the
 * connections past theirs; MHD's connection thread then sees the end of its
 * input and closes the connection as usual.
 *
 * The socket of a watch stays valid while the watch is in the list: MHD
 * reports a connection closed before it closes the socket, and the report
 * takes the watch out under the same lock as the shutdown. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "../base/common.h"
#include "util.h"
#include "watchdog.h"

struct srv_watch {
    int fd;
    bool timed;                   /* the clock runs: a request is being received */
    bool expired;                 /* shut down by the watchdog */
    double deadline_ms;           /* smoe_now_ms() clock */
    srv_watch *prev, *next;
};

static void *watchdog_main(void *arg) {
    srv_watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        double now = smoe_now_ms(), next = INFINITY;
        for (srv_watch *c = w->head; c; c = c->next) {
            if (!c->timed || c->expired) continue;
            if (c->deadline_ms <= now) {
                /* SHUT_RDWR: MHD's blocked poll() wakes and reads the end */
                shutdown(c->fd, SHUT_RDWR);
                c->expired = true;
                pthread_mutex_lock(&w->metrics->mu);
                w->metrics->read_timeouts++;
                pthread_mutex_unlock(&w->metrics->mu);
            } else if (c->deadline_ms < next) {
                next = c->deadline_ms;
            }
        }
        if (isinf(next)) {
            pthread_cond_wait(&w->cv, &w->mu);
        } else {
            struct timespec ts;
            ts = smoe_deadline_ms(next - now + 1);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int srv_watchdog_start(srv_watchdog *w, unsigned read_timeout_s, srv_metrics *m, char *err) {
    w->timeout_ms = read_timeout_s * 1e3;
    w->metrics = m;
    int e = pthread_create(&w->thread, NULL, watchdog_main, w);
    if (e) return smoe_errf(err, "cannot start the watchdog thread: %s", strerror(e));
    w->running = true;
    return 0;
}

void srv_watchdog_stop(srv_watchdog *w) {
    if (!w->running) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->running = false;
}

/* MHD_OPTION_NOTIFY_CONNECTION */
void srv_watch_notify(void *cls, struct MHD_Connection *conn, void **socket_context, enum MHD_ConnectionNotificationCode code) {
    srv_watchdog *w = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        srv_watch *c = ci ? calloc(1, sizeof *c) : NULL;
        *socket_context = c;
        /* Without a watch (out of memory) the connection is served with
         * MHD's idle timeout only. */
        if (!c) return;
        c->fd = ci->connect_fd;
        c->timed = true;
        pthread_mutex_lock(&w->mu);
        c->deadline_ms = smoe_now_ms() + w->timeout_ms;
        c->next = w->head;
        if (w->head) w->head->prev = c;
        w->head = c;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_watch *c = *socket_context;
        if (!c) return;
        pthread_mutex_lock(&w->mu);
        if (c->prev) c->prev->next = c->next;
        else w->head = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&w->mu);
        free(c);
        *socket_context = NULL;
    }
}

static srv_watch *watch_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void srv_watch_received(srv_watchdog *w, struct MHD_Connection *conn) {
    srv_watch *c = watch_of(conn);
    if (!c) return;
    pthread_mutex_lock(&w->mu);
    c->timed = false;
    pthread_mutex_unlock(&w->mu);
}

void srv_watch_rearm(srv_watchdog *w, struct MHD_Connection *conn) {
    srv_watch *c = watch_of(conn);
    if (!c) return;
    pthread_mutex_lock(&w->mu);
    c->timed = true;
    c->deadline_ms = smoe_now_ms() + w->timeout_ms;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}
