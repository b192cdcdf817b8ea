/* worker.h - the engine thread of `smoe serve` (worker.c): it owns the
 * scheduler and runs every forward pass. */
#ifndef SMOE_SERVER_WORKER_H
#define SMOE_SERVER_WORKER_H

typedef struct srv srv;

int srv_engine_start(srv *s, char *err);
void srv_engine_stop(srv *s);

#endif
