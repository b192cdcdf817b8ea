/* reply.h - what a request handler of `smoe serve` answers: a JSON body
 * with a status, or a generation request to stream.  Handlers run on
 * connection threads; http.c sends the reply. */
#ifndef SMOE_SERVER_REPLY_H
#define SMOE_SERVER_REPLY_H

typedef struct srv_request srv_request;

typedef struct srv_reply {
    int status;
    char *body;                   /* malloc'd */
    const char *content_type;
    srv_request *gen;             /* a queued generation (body NULL) */
    int retry_after;              /* seconds, with 503 */
} srv_reply;

#endif
