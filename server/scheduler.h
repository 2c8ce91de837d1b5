/* The scheduler: one thread owns the engine and its slots and runs continuous batching.
 *
 * The threads of gptd, what each owns, and the locks (the one map of them; the files named keep
 * the details):
 *   - The main thread (server/main.c) parses the configuration, starts the HTTP server, loads the
 *     model, builds the engine and starts the scheduler, then waits in sigwait. On SIGTERM or
 *     SIGINT it drains: closes the generation endpoints, stops admission, waits for the
 *     requests in flight, and destroys the scheduler, the HTTP server and the engine in turn.
 *     It owns the model and the tokenizer, which every other thread only reads.
 *   - libmicrohttpd's event loop (server/http.c): one thread (epoll) serves every connection.
 *     It reads and parses each request, builds its Sequence (tokenizing the prompt), submits it,
 *     and writes what the request's channel holds (JSON or server-sent events) from callbacks.
 *     A connection whose request has nothing new is suspended (request_wait) and costs nothing
 *     until the scheduler or the idle watch resumes it. It owns every Conn. It never runs the
 *     model. One request's path through these threads, hop by hop: docs/server.md.
 *   - The idle watch thread (server/idle_watch.c) waits on the sockets of all suspended
 *     connections and on the earliest stream keep-alive, and resumes a connection whose client
 *     left or whose stream needs a keep-alive. IdleWatch.lock guards its entries.
 *   - The watchdog thread (server/receive_deadline.c, only with --receive-timeout > 0) shuts
 *     down the sockets of connections that did not send a request in time, or too slowly.
 *     ReceiveDeadline.lock guards its list; it takes no other lock.
 *   - The scheduler thread (this file), each round: admits queued requests into free slots,
 *     drops the cancelled and timed-out, runs a batch_step (decode rows + a prefill budget; new
 *     requests may get a short one of their own first), appends each sequence's new text to its
 *     channel, retires finished sequences. It alone
 *     touches the engine, the active list, the slots and, once a request is submitted, its
 *     Sequence (Request.seq). A step runs without holding any lock.
 *   - The engine's pool workers (common/thread_pool.c, --threads minus one): they run the tasks
 *     of the products and of attention inside engine_forward, only while the scheduler thread
 *     is in thread_pool_run (taking tasks too), each writing its own part of the engine's
 *     scratch and reading the packed weights and the KV cache. ThreadPool.lock is the pool's
 *     own and is never held with another lock.
 *
 * Locks, taken in this order and never the other way: IdleWatch.lock, then Scheduler.lock, then
 * Request.lock, then libmicrohttpd's own mutex (its suspend and resume) or Metrics.lock.
 *   - Scheduler.lock guards the queue, the draining/stopping flags and n_active (the event loop
 *     submits and asks for room under it; the scheduler thread admits under it, and releases the
 *     requests it drops from the queue while holding it).
 *   - Request.lock (server/request.h, which has the channel's rules) guards the channel, the
 *     counts and times, and the parked consumer; the consumer's suspend and the producer's
 *     resume both run under it, so a wake-up is never lost. Request.cancelled is atomic, so the
 *     HTTP side can raise it without waiting for a step.
 *   - IdleWatch.lock is held while the watch wakes a connection (request_wake takes
 *     Request.lock), so the HTTP side adds and removes entries only without Request.lock.
 *   - Metrics.lock (server/metrics.c) guards the counters; it is taken last, under either of
 *     the others, and nothing is locked under it.
 * A request is never lost silently: it ends done (with text), failed (with an error), or
 * cancelled because its client went away. */
#ifndef GPTD_SCHEDULER_H
#define GPTD_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../model/batch.h"
#include "metrics.h"
#include "request.h"

typedef struct Scheduler Scheduler;

typedef struct {
    int max_batch;      /* slots */
    int max_queue;      /* waiting requests before 503 */
    int prefill_budget; /* prompt tokens per step */
    int vocab_size;
    /* A stream's connection is woken at most once in this time (and at the end): on a machine
     * whose cores all run the engine, each wake-up takes a core from a step, and at thousands of
     * tokens a second that cost a lone stream about a sixth of its rate. */
    double stream_interval_s;
    long fail_step;    /* tests only (GPTD_TEST_FAIL_STEP): engine step n fails as a bug would; 0 =
                          never */
    int step_delay_ms; /* tests only (GPTD_TEST_STEP_DELAY_MS): a pause before every step, to make
                          a stream fall silent */
} SchedulerConfig;

int scheduler_create(Scheduler **s, Engine *engine, const SchedulerConfig *c, Metrics *metrics,
                     Error *err);
/* Queues r (taking a reference). Returns 0, or -1 when the queue is full or the server is
 * draining (then *e holds a 503 and r is untouched). */
int scheduler_submit(Scheduler *s, Request *r, ApiError *e);
/* False (with the 503 submit would give in *e) when submit would refuse now; lets a request be
 * refused before its body is read. Submit still decides. */
bool scheduler_has_room(Scheduler *s, ApiError *e);
/* Stops admitting; requests already accepted go on. */
void scheduler_drain(Scheduler *s);
/* Requests queued or running. */
int scheduler_pending(Scheduler *s);
/* Ends the thread: what is still running or queued fails with "shutdown", and every later submit
 * is refused with a 503. The scheduler stays valid for HTTP threads still holding it; free it
 * with scheduler_destroy once none can reach it (after http_server_stop). Idempotent. */
void scheduler_stop(Scheduler *s);
/* scheduler_stop, then frees the scheduler. */
void scheduler_destroy(Scheduler *s);

#endif
