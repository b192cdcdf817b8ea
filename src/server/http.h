/* http.h - the HTTP side of `smoe serve` (http.c): listening on the
 * configured address with libmicrohttpd. */
#ifndef SMOE_SERVER_HTTP_H
#define SMOE_SERVER_HTTP_H

typedef struct srv srv;

/* Binds, starts MHD (and the watchdog); s->port is the bound port. */
int srv_listen(srv *s, char *err);

#endif
