/* server.h - `smoe serve`: an OpenAI- and Ollama-compatible HTTP server
 * with continuous batching.  This header is the server's life as
 * src/cli/serve.c drives it (server.c); http.h has srv_listen.
 *
 * Files (src/server/), in the order a request meets them:
 *   http.c        MHD callbacks: routes, limits, authentication, CORS, the
 *                 request's phases (accept, body, dispatch), replies and
 *                 streamed generations
 *   watchdog.c    the receive deadline (--read-timeout)
 *   openai.c, ollama.c, tokenize.c   the API families' handlers; openai.c
 *                 and ollama.c also format generations (their srv_api_ops)
 *   params.c      typed getters for request fields
 *   prompt.c      chat messages to prompt tokens
 *   structured.c, tools.c   response formats and function calling (grammars)
 *   request.c     a generation request's lifetime and the waiting queue
 *   worker.c      the engine thread: admission, steps, events to the
 *                 request's srv_api_ops
 *   metrics.c     GET /metrics;  state.c, opts.c, util.c: shared state,
 *                 options, helpers;  server.c: start and shutdown
 *
 * Threads
 *   - libmicrohttpd (MHD) runs a listening thread and one thread per
 *     connection (MHD_USE_THREAD_PER_CONNECTION, at most --max-connections
 *     of them).  A connection thread parses and validates its request
 *     (JSON, chat rendering, tokenization: all read-only on the model) and
 *     queues a generation request for the engine, or answers directly.
 *   - ONE engine thread (worker.c) owns the scheduler (src/engine/
 *     scheduler.c): the KV caches of the --parallel slots and every forward
 *     pass.  It admits queued requests to free slots (first come, first
 *     served; a request with n choices waits for n free slots), steps all
 *     active sequences together, and formats their output (through the
 *     request's srv_api_ops: openai.c, ollama.c) into each request's output
 *     buffer.
 *   - one watchdog thread (watchdog.c) shuts down connections whose
 *     request has not arrived whole within --read-timeout.
 *   - the main thread (serve.c) loads the model after the server is
 *     listening (/health answers 503 meanwhile), then waits for SIGINT or
 *     SIGTERM with sigwait(); the signals are blocked in every thread.
 *
 * Streaming: a generation's response is an MHD callback response.  Its
 * reader (running on the connection thread, which may block) takes bytes
 * from the request's buffer under the request's mutex; when there are none
 * it waits in poll() on the request's eventfd (written by the engine after
 * each append) and on the client socket (POLLRDHUP: the client went away),
 * never busy-waiting.  While it waits for the engine, MHD's idle timeout is
 * off for the connection (a request may queue or prefill for long); while
 * bytes are being sent it is on, so a client that stops reading is dropped
 * after --timeout seconds.
 *
 * Cancellation: when the client disconnects (seen by the reader's poll, or
 * MHD destroying the response early: the free callback), the request is
 * marked cancelled and the engine is woken; before its next step the engine
 * cancels the request's sequences (smoe_sched_cancel), which frees their
 * slots at once.  So a disconnect costs at most the step in progress.
 *
 * Lifetime: a generation request is reference-counted (request.h).
 * Everything hangs off one srv struct (state.h): no global mutable state.
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting connections (MHD_quiesce_daemon),
 * answer new requests on open connections with 503, let the running and
 * queued requests finish for up to --shutdown-timeout seconds (a second
 * signal cuts it short), cancel what is left, wait for the responses to be
 * delivered, stop MHD, free everything, exit 0. */
#ifndef SMOE_SERVER_H
#define SMOE_SERVER_H

#include <stdbool.h>

#include "opts.h"
#include "state.h"

srv *srv_new(const srv_opts *o, char *err);
/* The model is loaded: start the engine.  model and tok stay owned by the caller. */
int srv_set_model(srv *s, const smoe_model *m, const smoe_tokenizer *tok, int chat_format, const char *path,
                  double load_ms, char *err);
/* Stop accepting, finish or cancel in-flight requests, stop everything.
 * second_signal: called to poll for a second signal (returns true: cut the
 * grace period short). */
void srv_shutdown(srv *s, bool (*second_signal)(void *), void *user);
void srv_free(srv *s);

#endif
