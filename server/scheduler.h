/* The scheduler: one thread owns the engine and its slots and runs continuous batching.
 *
 * Threads and locks:
 *   - HTTP threads validate a request, build its Sequence (tokenizing the prompt) and submit
 *     it. They never run the model. They read tokens from the request's channel.
 *   - The scheduler thread, each step: admits queued requests into free slots, drops the
 *     cancelled and timed-out, runs one batch_step (decode rows + a prefill budget), appends
 *     each sequence's new text to its channel, retires finished sequences.
 *   - Scheduler.lock guards the queue, the draining/stopping flags and the counts; the
 *     scheduler thread alone touches the active list and the engine, so a step runs without
 *     holding the lock.
 *   - Request.lock guards the channel (text, events, done, error); Request.cancelled is atomic
 *     so the HTTP side can raise it without waiting for a step.
 * A request is never lost silently: it ends done (with text), failed (with an error), or
 * cancelled because its client went away. */
#ifndef GPTD_SCHEDULER_H
#define GPTD_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../api/finish.h"
#include "../api/request.h"
#include "../model/batch.h"
#include "metrics.h"

typedef struct {
    int offset, len; /* bytes of Request.text */
    int index;       /* index of the last token in this piece */
    float logprob;   /* of that token */
} TokenEvent;

typedef struct Request {
    /* set before submit, read-only afterwards */
    char id[40];
    ApiRequest api;
    Sequence seq; /* owned by the scheduler thread once submitted */
    double t_arrival;
    double deadline; /* absolute, 0 = none */

    atomic_bool cancelled; /* the client went away: free the slot at the next step */

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t changed;
    char *text; /* (max_tokens * 4 + 1) emitted text */
    int text_len;
    TokenEvent *events; /* (max_tokens) */
    int n_events;
    bool done;
    ApiFinish finish; /* API_FINISH_NONE until done */
    bool failed;
    ApiError error;
    int prompt_tokens, completion_tokens, prompt_dropped;
    double t_admit, t_first_token, t_last_token, t_done;
    int refs; /* the HTTP side and the scheduler each hold one */
} Request;

/* Builds a request from a parsed body: tokenizes the prompt into a Sequence. On a bad prompt
 * returns NULL with a 400 in *e. The caller holds one reference. */
Request *request_create(const char *id, const ApiRequest *api, const Tokenizer *tok,
                        ContextPolicy context, double timeout_s, ApiError *e);
void request_release(Request *r);

typedef struct Scheduler Scheduler;

typedef struct {
    int max_batch;      /* slots */
    int max_queue;      /* waiting requests before 503 */
    int prefill_budget; /* prompt tokens per step */
    int vocab_size;
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
/* Ends the thread: what is still running fails with "shutdown". */
void scheduler_destroy(Scheduler *s);

#endif
