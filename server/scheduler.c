#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "log.h"

Request *request_create(const char *id, const ApiRequest *api, const Tokenizer *tok,
                        ContextPolicy context, double timeout_s, ApiError *e) {
    Request *r = calloc(1, sizeof *r);
    if (!r) {
        api_error(e, 500, "server_error", "out of memory");
        return NULL;
    }
    Error err;
    int rc = sequence_init(&r->seq, tok, context, api->prompt, api->prompt_len, &api->params, &err);
    if (rc) {
        if (rc == SEQUENCE_NO_MEMORY)
            api_error(e, 500, "server_error", "%s", err.message);
        else
            api_error(e, 400, "invalid_request_error", "%s", err.message);
        free(r);
        return NULL;
    }
    r->api = *api;
    r->api.prompt = NULL; /* the sequence holds the tokens; the text is not needed again */
    int max_tokens = api->params.max_tokens;
    r->text = malloc((size_t)max_tokens * tokenizer_max_text(tok) + 1);
    r->events = malloc(((size_t)max_tokens + 1) * sizeof *r->events);
    const AttentionView *view = &api->params.attention;
    bool attention = view->form != ATTENTION_NONE;
    if (attention) {
        r->attention = malloc((size_t)max_tokens * sizeof *r->attention + 1);
        r->attention_values =
            malloc((size_t)max_tokens * attention_view_max_values(view) * sizeof(float) + 1);
    }
    if (!r->text || !r->events || (attention && (!r->attention || !r->attention_values))) {
        sequence_free(&r->seq);
        free(r->text);
        free(r->events);
        free(r->attention);
        free(r->attention_values);
        free(r);
        api_error(e, 500, "server_error", "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    clock_cond_init(&r->changed); /* waited on with CLOCK_MONOTONIC deadlines */
    atomic_init(&r->cancelled, false);
    r->t_arrival = clock_seconds();
    r->deadline = timeout_s > 0 ? r->t_arrival + timeout_s : 0;
    r->prompt_tokens = r->seq.n_prompt;
    r->prompt_dropped = r->seq.prompt_dropped;
    r->refs = 1;
    snprintf(r->id, sizeof r->id, "%s", id);
    return r;
}

void request_release(Request *r) {
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    int left = --r->refs;
    pthread_mutex_unlock(&r->lock);
    if (left > 0) return;
    sequence_free(&r->seq);
    free(r->text);
    free(r->events);
    free(r->attention);
    free(r->attention_values);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->changed);
    free(r);
}

struct Scheduler {
    Engine *engine;
    SchedulerConfig config;
    Metrics *metrics;
    pthread_t thread;
    BatchScratch scratch;
    /* lock guards queue, q_head, q_len, draining, stopping and n_active */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    Request **queue; /* ring of max_queue */
    int q_head, q_len;
    bool draining, stopping;
    int n_active;
    bool joined; /* the thread has ended (scheduler_stop; only the thread calling it reads it) */
    /* scheduler thread only */
    long steps;       /* engine steps run */
    Request **active; /* (max_batch) */
    Sequence **seqs;  /* (max_batch) */
    bool *slot_used;  /* (max_batch) */
};

/* The token just generated and the weights its query used. Called with r->lock held. */
static void record_attention(Request *r, const Sequence *q) {
    int per_token = attention_view_max_values(&q->params.attention);
    ApiTokenAttention *a = &r->attention[r->n_attention];
    float *values = r->attention_values + (size_t)r->n_attention * per_token;
    memcpy(values, q->attention, (size_t)q->attention_values * sizeof(float));
    *a = (ApiTokenAttention){.index = r->n_attention,
                             .logprob = q->last_logprob,
                             .position = q->attention_start + q->attention_visible,
                             .start = q->attention_start,
                             .visible = q->attention_visible,
                             .values = values,
                             .n_values = q->attention_values};
    r->n_attention++;
}

/* With attention, released text goes out one token per event, each with its own weights (a
 * piece held back for a stop string is several tokens). Called with r->lock held. */
static void add_token_events(Request *r, const Sequence *q, int offset, int len) {
    while (len > 0 && r->event_tokens < r->n_attention) {
        int g = r->event_tokens++;
        size_t piece;
        if (!tokenizer_piece(q->tok, q->tokens[q->n_prompt + g], &piece)) piece = 0;
        int n = (int)piece;
        if (n > len || r->event_tokens == r->n_attention) n = len; /* the rest is the last's */
        /* an event holds whole characters, even when a token ends inside one */
        while (n < len && ((unsigned char)r->text[offset + n] & 0xC0) == 0x80) n++;
        ApiTokenAttention *a = &r->attention[g];
        a->text = r->text + offset;
        a->text_len = (size_t)n;
        r->events[r->n_events++] =
            (TokenEvent){.offset = offset, .len = n, .index = g, .logprob = a->logprob};
        offset += n;
        len -= n;
    }
}

/* Appends the sequence's new text to the channel and, if it finished, closes it. Called by
 * the scheduler thread after each step. */
static void publish(Scheduler *s, Request *r, double now) {
    Sequence *q = &r->seq;
    const char *text;
    size_t n = sequence_take_text(q, &text);
    bool attention = q->params.attention.form != ATTENTION_NONE;
    pthread_mutex_lock(&r->lock);
    if (attention && q->n_generated > r->n_attention) record_attention(r, q);
    if (n > 0) {
        memcpy(r->text + r->text_len, text, n);
        if (attention) {
            add_token_events(r, q, r->text_len, (int)n);
        } else {
            TokenEvent *ev = &r->events[r->n_events++];
            ev->offset = r->text_len;
            ev->len = (int)n;
            ev->index = q->n_generated - 1;
            ev->logprob = q->last_logprob;
        }
        r->text_len += (int)n;
        r->text[r->text_len] = '\0';
    }
    if (q->n_generated > r->completion_tokens) {
        if (r->completion_tokens == 0) {
            r->t_first_token = now;
            metrics_time_to_first_token(s->metrics, now - r->t_arrival);
        } else {
            metrics_time_per_token(s->metrics, now - r->t_last_token);
        }
        r->t_last_token = now;
        r->completion_tokens = q->n_generated;
    }
    if (q->finish != FINISH_NONE) {
        r->done = true;
        r->finish = q->finish == FINISH_STOP ? API_FINISH_STOP : API_FINISH_LENGTH;
        r->t_done = now;
    }
    if (r->done || (r->signal_each_event && now - r->t_signalled >= s->config.stream_interval_s)) {
        r->t_signalled = now;
        pthread_cond_broadcast(&r->changed);
    }
    pthread_mutex_unlock(&r->lock);
}

static void finish_early(Request *r, ApiFinish reason, double now) {
    pthread_mutex_lock(&r->lock);
    r->done = true;
    r->finish = reason;
    r->t_done = now;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* Removes active[i] (its slot becomes free) and drops the scheduler's reference. */
static void retire(Scheduler *s, int i) {
    Request *r = s->active[i];
    s->slot_used[r->seq.slot] = false;
    metrics_tokens(s->metrics, r->prompt_tokens, r->completion_tokens);
    s->active[i] = s->active[s->n_active - 1];
    pthread_mutex_lock(&s->lock);
    s->n_active--;
    pthread_mutex_unlock(&s->lock);
    request_release(r);
}

/* Cancelled when the client went away, timeout when the deadline passed, else none. */
static ApiFinish abandoned(Request *r, double now) {
    if (atomic_load(&r->cancelled)) return API_FINISH_CANCELLED;
    return r->deadline > 0 && now > r->deadline ? API_FINISH_TIMEOUT : API_FINISH_NONE;
}

/* Drops queued requests whose client went away or whose deadline passed, keeping the others in
 * order, so they hold no queue place. Called with s->lock held. */
static void drop_abandoned_locked(Scheduler *s, double now) {
    int kept = 0, n = s->q_len, cap = s->config.max_queue;
    for (int i = 0; i < n; i++) {
        Request *r = s->queue[(s->q_head + i) % cap];
        ApiFinish reason = abandoned(r, now);
        if (reason) {
            finish_early(r, reason, now);
            request_release(r);
            continue;
        }
        s->queue[(s->q_head + kept++) % cap] = r;
    }
    s->q_len = kept;
    metrics_set_queue_depth(s->metrics, s->q_len);
}

static void admit(Scheduler *s, double now) {
    pthread_mutex_lock(&s->lock);
    drop_abandoned_locked(s, now);
    while (s->q_len > 0 && s->n_active < s->config.max_batch) {
        Request *r = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->config.max_queue;
        s->q_len--;
        int slot = 0;
        while (s->slot_used[slot]) slot++;
        s->slot_used[slot] = true;
        r->seq.slot = slot;
        pthread_mutex_lock(&r->lock); /* HTTP threads read t_admit for the reply's timing */
        r->t_admit = now;
        pthread_mutex_unlock(&r->lock);
        s->active[s->n_active++] = r;
    }
    metrics_set_queue_depth(s->metrics, s->q_len);
    pthread_mutex_unlock(&s->lock);
}

static void *scheduler_main(void *arg) {
    Scheduler *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->stopping && s->q_len == 0 && s->n_active == 0)
            pthread_cond_wait(&s->wake, &s->lock);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        double now = clock_seconds();
        if (stopping) break;
        admit(s, now);
        /* Abandoned and overdue requests leave before the step: their slots are free now. */
        for (int i = s->n_active - 1; i >= 0; i--) {
            Request *r = s->active[i];
            ApiFinish reason = abandoned(r, now);
            if (reason) {
                finish_early(r, reason, now);
                retire(s, i);
            }
        }
        metrics_set_active(s->metrics, s->n_active);
        if (s->n_active == 0) continue;
        for (int i = 0; i < s->n_active; i++) s->seqs[i] = &s->active[i]->seq;
        Error err;
        if (s->config.step_delay_ms > 0) usleep((useconds_t)s->config.step_delay_ms * 1000);
        double t0 = clock_seconds();
        int ran =
            ++s->steps == s->config.fail_step
                ? error_set(&err, "injected fault at step %ld (GPTD_TEST_FAIL_STEP)", s->steps)
                : batch_step(s->engine, s->seqs, s->n_active, s->config.prefill_budget, &s->scratch,
                             &err);
        double t1 = clock_seconds();
        if (ran < 0) { /* a bug, not a user error: fail the batch, keep serving */
            log_error("engine step failed: %s", err.message);
            for (int i = s->n_active - 1; i >= 0; i--) {
                Request *r = s->active[i];
                pthread_mutex_lock(&r->lock);
                r->failed = true;
                api_error(&r->error, 500, "server_error", "generation failed: %s", err.message);
                pthread_mutex_unlock(&r->lock);
                finish_early(r, API_FINISH_ERROR, t1);
                retire(s, i);
            }
            continue;
        }
        metrics_step(s->metrics, ran, t1 - t0);
        for (int i = s->n_active - 1; i >= 0; i--) {
            Request *r = s->active[i];
            publish(s, r, t1);
            if (r->seq.finish != FINISH_NONE) retire(s, i);
        }
        metrics_set_active(s->metrics, s->n_active);
    }
    /* Shutdown: whatever is still here ends now, so no HTTP thread waits forever. */
    double now = clock_seconds();
    while (s->n_active > 0) {
        finish_early(s->active[s->n_active - 1], API_FINISH_SHUTDOWN, now);
        retire(s, s->n_active - 1);
    }
    pthread_mutex_lock(&s->lock);
    while (s->q_len > 0) {
        Request *r = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->config.max_queue;
        s->q_len--;
        finish_early(r, API_FINISH_SHUTDOWN, now);
        request_release(r);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Releases what scheduler_create allocated (the thread must not be running). */
static void scheduler_free(Scheduler *s) {
    batch_scratch_free(&s->scratch);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    free(s->queue);
    free(s->active);
    free(s->seqs);
    free(s->slot_used);
    free(s);
}

int scheduler_create(Scheduler **out, Engine *engine, const SchedulerConfig *c, Metrics *metrics,
                     Error *err) {
    Scheduler *s = calloc(1, sizeof *s);
    if (!s) return error_set(err, "out of memory");
    s->engine = engine;
    s->config = *c;
    s->metrics = metrics;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    s->queue = calloc((size_t)c->max_queue, sizeof *s->queue);
    s->active = calloc((size_t)c->max_batch, sizeof *s->active);
    s->seqs = calloc((size_t)c->max_batch, sizeof *s->seqs);
    s->slot_used = calloc((size_t)c->max_batch, sizeof *s->slot_used);
    if (!s->queue || !s->active || !s->seqs || !s->slot_used ||
        batch_scratch_init(&s->scratch, c->max_batch, c->vocab_size, err)) {
        scheduler_free(s);
        return error_set(err, "out of memory");
    }
    if (pthread_create(&s->thread, NULL, scheduler_main, s) != 0) {
        scheduler_free(s);
        return error_set(err, "cannot start the scheduler thread");
    }
    *out = s;
    return 0;
}

/* 0 when the queue can take one more request; else -1 with the 503 in *e. Holds s->lock. */
static int check_room_locked(Scheduler *s, ApiError *e) {
    if (s->draining || s->stopping)
        return api_error(e, 503, "unavailable", "the server is shutting down");
    if (s->q_len >= s->config.max_queue) drop_abandoned_locked(s, clock_seconds());
    if (s->q_len >= s->config.max_queue)
        return api_error(e, 503, "overloaded", "the queue is full (%d waiting); retry shortly",
                         s->config.max_queue);
    return 0;
}

int scheduler_submit(Scheduler *s, Request *r, ApiError *e) {
    pthread_mutex_lock(&s->lock);
    if (check_room_locked(s, e)) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    pthread_mutex_lock(&r->lock);
    r->refs++;
    pthread_mutex_unlock(&r->lock);
    s->queue[(s->q_head + s->q_len) % s->config.max_queue] = r;
    s->q_len++;
    metrics_set_queue_depth(s->metrics, s->q_len);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

bool scheduler_has_room(Scheduler *s, ApiError *e) {
    pthread_mutex_lock(&s->lock);
    bool room = check_room_locked(s, e) == 0;
    pthread_mutex_unlock(&s->lock);
    return room;
}

void scheduler_drain(Scheduler *s) {
    pthread_mutex_lock(&s->lock);
    s->draining = true;
    pthread_mutex_unlock(&s->lock);
}

int scheduler_pending(Scheduler *s) {
    pthread_mutex_lock(&s->lock);
    int n = s->q_len + s->n_active;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void scheduler_stop(Scheduler *s) {
    if (!s || s->joined) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    s->joined = true;
}

void scheduler_destroy(Scheduler *s) {
    if (!s) return;
    scheduler_stop(s);
    scheduler_free(s);
}
