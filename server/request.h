/* The request channel: one generation request, between the scheduler thread that produces its
 * text and the HTTP thread that sends it.
 *
 * The producer (server/scheduler.c) appends text and events and ends the channel: request_publish
 * after each engine step, request_finish when it ends without the model (cancelled, timed out,
 * shut down), request_fail on an engine error. The consumer (server/http.c) reads with
 * request_snapshot, which copies what is new and returns without a lock held: text and events
 * are only ever appended, into arrays sized for max_tokens at creation, so what a snapshot counts
 * stays as it was read. When there is nothing new the consumer calls request_wait, which either
 * says there is news after all or parks the consumer: its waiter's suspend runs under
 * Request.lock, and the producer (or request_wake, for the HTTP side's own timers) runs its resume
 * under the same lock, so a wake-up can be neither lost nor sent to a consumer that is not parked.
 *
 * Request.lock guards the channel (text, events, done, finish, failed, error), the counts and
 * times after it, and the waiter. It is taken after Scheduler.lock and before Metrics.lock; a
 * waiter's suspend and resume run under it and must not take the scheduler's lock (libmicrohttpd's
 * suspend and resume take only its own internal mutex). Request.cancelled is atomic, so the HTTP
 * side can raise it without waiting for a step. */
#ifndef GPTD_REQUEST_H
#define GPTD_REQUEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../api/finish.h"
#include "../api/request.h"
#include "../api/response.h"
#include "../model/sequence.h"
#include "metrics.h"

typedef struct {
    int offset, len; /* bytes of Request.text */
    int index;       /* index of the last token in this piece */
    float logprob;   /* of that token */
} TokenEvent;

/* How the consumer is parked and woken (for the HTTP side: libmicrohttpd's suspend and resume of
 * the connection). Both run with Request.lock held. */
typedef struct {
    void (*suspend)(void *ctx);
    void (*resume)(void *ctx);
    void *ctx;
} RequestWaiter;

typedef struct Request {
    /* set before submit, read-only afterwards */
    char id[40];
    ApiRequest api;
    double t_arrival;
    double deadline; /* absolute, 0 = none */
    /* A stream's consumer is woken for new text, at most once every SchedulerConfig's
     * stream_interval_s; a whole reply's only at the end. */
    bool wake_each_event;

    Sequence seq; /* built before submit; then the scheduler thread's alone (it sets the slot and
                     runs it); freed with the last reference */
    /* "n" above 1: the other choices, each a Request of its own (its own channel and lock, and a
     * sequence that forks this one's prompt) owned by this one. Set at creation, read-only. Their
     * counts for the group (n_events_published, done_published) are atomics that the producer
     * stores after releasing the choice's lock and reads under this one's. */
    struct Request **choices; /* (n_choices - 1) */
    int n_choices;
    atomic_int n_events_published;
    atomic_bool done_published;

    atomic_bool cancelled; /* the client went away: free the slot at the next step */

    pthread_mutex_t lock; /* guards everything below */
    char *text;           /* (max_tokens * tokenizer_max_text + 1) emitted text */
    int text_len;
    TokenEvent *events; /* (max_tokens + 1) */
    int n_events;
    /* With "attention" or "logprobs": one event per token, and each token's record
     * (api/response.h): the scored prompt tokens (echo), then the generated ones, whose text
     * points into `text`. */
    ApiToken *tokens;        /* (n_scored + max_tokens), n_recorded of them */
    float *attention_values; /* (max_tokens, attention_view_max_values) */
    int *top_ids;            /* (n_scored + max_tokens, top_logprobs) */
    float *top_logprobs;     /* the same */
    int n_scored;            /* prompt tokens with a record */
    int first_recorded;      /* 1 when the prompt's first token has one (echo, no logprob) */
    int n_recorded;          /* records written */
    int event_tokens;        /* generated tokens whose text is out in events */
    bool done;
    ApiFinish finish; /* API_FINISH_NONE until done */
    /* the group (this request and its other choices): events of all, all done */
    int group_events;
    bool group_done;
    bool failed;
    ApiError error;
    int prompt_tokens, completion_tokens, prompt_dropped;
    double t_admit, t_first_token, t_last_token, t_done;
    double t_woken;       /* when the consumer was last woken for new events */
    RequestWaiter waiter; /* valid while `waiting` */
    bool waiting;
    int refs; /* the HTTP side and the scheduler each hold one */
} Request;

/* What request_snapshot copies: the counts of what may be read without the lock (events
 * [0, n_events), text [0, text_len), attention [0, event_tokens)) and the state. */
typedef struct {
    int n_events, text_len, event_tokens;
    bool done, failed;
    int group_events; /* every choice's events */
    bool group_done;  /* every choice has ended */
    ApiFinish finish;
    ApiError error;
    int prompt_tokens, completion_tokens, prompt_dropped;
    double t_arrival, t_admit, t_first_token, t_done;
} RequestSnapshot;

/* Builds a request from a parsed body: tokenizes the prompt into a Sequence, and with api->n > 1
 * makes the other choices (choice i's seed is the request's plus i, and its sequence forks the
 * first's prompt). On a bad prompt returns NULL with a 400 in *e. The caller holds one
 * reference. */
Request *request_create(const char *id, const ApiRequest *api, const Tokenizer *tok,
                        ContextPolicy context, double timeout_s, ApiError *e);
/* Choice i of r (0: r itself; i < r->n_choices). */
Request *request_choice(Request *r, int i);
/* True when every choice's sequence has finished. */
bool request_all_finished(const Request *r);
/* Takes one more reference. */
void request_retain(Request *r);
void request_release(Request *r);

/* ---- producer (the scheduler thread) ---- */

/* Records the time the request got its slot. */
void request_admitted(Request *r, double now);
/* Appends each choice's new text (and records) and, where one finished, ends its channel; wakes a
 * waiting consumer when every choice has ended, and for a stream when `wake_interval_s` has
 * passed since the last wake. Metrics get the first choice's time to first token and per token. */
void request_publish(Request *r, double now, double wake_interval_s, Metrics *metrics);
/* Ends every choice's channel without the model: cancelled, timeout, shutdown. */
void request_finish(Request *r, ApiFinish reason, double now);
/* Ends the channel with an error (*e, e.g. a 500). */
void request_fail(Request *r, const ApiError *e, double now);

/* ---- consumer (the HTTP side) ---- */

void request_snapshot(Request *r, RequestSnapshot *out);
/* Parks the consumer unless the channel already holds news: the end of every choice, an event
 * past `seen_events` (counted over all choices), or a token of the first choice past
 * `seen_tokens` (INT_MAX: do not count that kind). Returns true
 * when there is news (nothing parked), false when w->suspend ran. */
bool request_wait(Request *r, int seen_events, int seen_tokens, const RequestWaiter *w);
/* Wakes the consumer if it is parked (the HTTP side's own reasons: a timer, a closed socket). */
void request_wake(Request *r);
/* The consumer is gone: no waiter is called any more. */
void request_forget_waiter(Request *r);

#endif
