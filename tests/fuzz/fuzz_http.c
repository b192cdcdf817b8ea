/* fuzz_http.c - `smoe serve` over a real socket: raw bytes in as an HTTP
 * client would send them, the server's answer out.  Where fuzz_server
 * calls the request handlers directly, this target drives everything in
 * front of them: libmicrohttpd's framing (request line, headers, chunked and
 * Content-Length bodies, pipelining), routing, methods, authentication, CORS
 * preflights, the body size and JSON nesting limits, early answers with
 * their body thrown away, and the streaming responses through the engine
 * thread with a tiny synthetic model.
 *
 * One server for the whole run (port 0 on 127.0.0.1, --api-key "k", CORS
 * on, small limits: 4 KiB bodies, nesting 16, 8 tokens), started on first
 * use.  Each input is written on a new connection, the client's side is
 * then shut down for writing (so a server waiting for more bytes sees the
 * end at once: no input waits for a timeout), and everything the server
 * sends is read until it closes the connection.  A half-closed connection
 * reads as a departed client to a generation's poll(POLLRDHUP), so most
 * generations are cancelled right after they are queued: the cancellation
 * paths are driven here, whole generations by fuzz_server.
 *
 * Input: the bytes as sent.  A first line "Authorization" is not special:
 * the key is "k", so a seed with "Authorization: Bearer k" reaches the
 * authenticated routes.
 *
 * Checked: the server answers within 20 s of the end of the input (then a
 * hang is reported); every answer it sends starts with "HTTP/1.1 " and a
 * status 100-599; after each input /health still answers 200 on a fresh
 * connection, and no request is left queued or alive. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "json/jsonmem.h"
#include "fuzz_util.h"
#include "model/model.h"
#include "server/http.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------------------
 * One listening server, made on first use and kept
 * ------------------------------------------------------------------------- */

static srv *server(void) {
    static srv *s;
    static smoe_model *m;
    static smoe_tokenizer *tok;
    char err[SMOE_ERR_SIZE];
    if (s) return s;
    smoe_json_alloc_init();   /* as `smoe` does */
    char path[96];
    fz_tiny_server_model("http", &m, &tok, path, sizeof path);
    srv_opts o;
    srv_opts_defaults(&o);
    o.port = 0;
    o.alias = "fuzz-model";
    o.api_key = "k";
    o.cors = "*";
    o.parallel = 2;
    o.n_ctx = 128;
    o.queue = 4;
    o.max_body = 4096;
    o.max_depth = 16;
    o.max_tokens = 8;
    o.quiet = true;
    s = srv_new(&o, err);
    FZ_CHECK(s, "srv_new: %s", err);
    FZ_CHECK(srv_listen(s, err) == 0, "listen: %s", err);
    FZ_CHECK(srv_set_model(s, m, tok, 1, path, 0, err) == 0, "set_model: %s", err);
    unlink(path);
    return s;
}

/* ---------------------------------------------------------------------------
 * A client
 * ------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        /* interrupted by a signal (libFuzzer's timer): the connection goes
         * on by itself; wait until it is made, then read its outcome */
        FZ_CHECK(errno == EINTR, "connect: %s", strerror(errno));
        struct pollfd p = {fd, POLLOUT, 0};
        int r;
        while ((r = poll(&p, 1, 20000)) < 0 && errno == EINTR) {}
        FZ_CHECK(r == 1, "connect: no connection 20 s after an interrupted connect");
        int e = 0;
        socklen_t el = sizeof e;
        FZ_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0, "connect: %s", strerror(e));
    }
    return fd;
}

/* Send data (what the server takes of it: it may answer and close early),
 * shut down writing, read until the server closes.  Returns the bytes read
 * (malloc'd, NUL-terminated) and their count in *n. */
static char *exchange(int port, const uint8_t *data, size_t size, size_t *n) {
    int fd = connect_to(port);
    size_t off = 0, len = 0, cap = 4096;
    char *in = malloc(cap);
    FZ_CHECK(in, "oom");
    double deadline = now_s() + 20;
    bool wr_open = true;
    for (;;) {
        if (wr_open && off == size) {
            shutdown(fd, SHUT_WR);
            wr_open = false;
        }
        struct pollfd p = {fd, (short)(POLLIN | (wr_open ? POLLOUT : 0)), 0};
        int left = (int)((deadline - now_s()) * 1e3);
        FZ_CHECK(left > 0, "no end of the answer 20 s after the input (a hang): %zu bytes so far", len);
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        FZ_CHECK(r >= 0, "poll: %s", strerror(errno));
        if (r == 0) continue;
        if (wr_open && (p.revents & POLLOUT)) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR) wr_open = false; /* reset: the server answered early */
            if (w > 0) off += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (len + 1 >= cap) {
                char *bigger = realloc(in, cap * 2);
                FZ_CHECK(bigger, "oom");
                in = bigger;
                cap *= 2;
            }
            ssize_t got = recv(fd, in + len, cap - 1 - len, 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) break;
            if (got > 0) len += (size_t)got;
        }
    }
    close(fd);
    in[len] = 0;
    *n = len;
    return in;
}

/* Every answer in buf starts "HTTP/1.1 NNN".  Answers are found at the
 * start and after each complete header block whose Content-Length body
 * follows (or right after the header block, for HEAD); chunked or close-delimited answers, and an answer that closes
 * the connection, end the scan (libmicrohttpd 0.9.75's own 400 answer to a
 * malformed Content-Length repeats its status line and headers inside the
 * body it announces: its bug, not smoe's, and nothing follows it). */
static void check_answers(const char *buf, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        const char *a = buf + pos;
        FZ_CHECK(n - pos >= 12 && memcmp(a, "HTTP/1.1 ", 9) == 0, "not an HTTP/1.1 answer at byte %zu: %.60s", pos, a);
        int status = (a[9] - '0') * 100 + (a[10] - '0') * 10 + (a[11] - '0');
        FZ_CHECK(status >= 100 && status <= 599 && a[9] >= '1' && a[9] <= '5', "status %.3s", a + 9);
        const char *end = memmem(a, n - pos, "\r\n\r\n", 4);
        if (!end) return; /* cut short (the server gave up on the client) */
        if (memmem(a, (size_t)(end - a), "\r\nConnection: close\r\n", 21)) return;
        const char *cl = memmem(a, (size_t)(end - a), "\r\nContent-Length: ", 18);
        if (!cl) return;
        /* the next answer follows the body, or the header block itself
         * when the request was HEAD (Content-Length given, no body sent) */
        size_t head_end = (size_t)(end + 4 - buf), body = strtoul(cl + 18, NULL, 10);
        pos = head_end + body;
        if (head_end < n && (pos > n || (pos < n && strncmp(buf + pos, "HTTP/1.1 ", n - pos < 9 ? n - pos : 9))) &&
            strncmp(buf + head_end, "HTTP/1.1 ", n - head_end < 9 ? n - head_end : 9) == 0)
            pos = head_end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srv *s = server();
    size_t n;
    char *got = exchange(s->port, data, size, &n);
    check_answers(got, n);
    free(got);

    /* still serving: /health on a fresh connection */
    static const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    got = exchange(s->port, (const uint8_t *)health, sizeof health - 1, &n);
    FZ_CHECK(n >= 12 && memcmp(got, "HTTP/1.1 200", 12) == 0, "/health after the input: %.80s", got);
    free(got);

    /* nothing left behind: a cancelled generation leaves at the engine's
     * next step, so wait for it (the engine signals idle_cv) */
    double deadline = now_s() + 20;
    pthread_mutex_lock(&s->mu);
    while (s->live > 0 || s->n_waiting > 0) {
        FZ_CHECK(now_s() < deadline, "requests left behind: live %d waiting %d", (int)s->live, (int)s->n_waiting);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}
