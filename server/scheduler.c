#define _GNU_SOURCE /* pthread_setname_np */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/thread_pool.h"
#include "../model/engine.h"
#include "log.h"

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
    int n_active;     /* requests in slots */
    int slots_in_use; /* their choices: a slot each */
    bool joined; /* the thread has ended (scheduler_stop; only the thread calling it reads it) */
    /* scheduler thread only */
    long steps;        /* engine steps run */
    Request **active;  /* (max_batch) */
    Sequence **seqs;   /* (max_batch) the sequences of a step */
    Request **stepped; /* (max_batch) the requests of a step */
    bool *slot_used;   /* (max_batch) */
};

/* Removes active[i] (its choices' slots become free) and drops the scheduler's reference. */
static void retire(Scheduler *s, int i) {
    Request *r = s->active[i];
    long generated = 0;
    for (int k = 0; k < r->n_choices; k++) {
        Request *c = request_choice(r, k);
        s->slot_used[c->seq.slot] = false;
        generated += c->completion_tokens;
    }
    s->slots_in_use -= r->n_choices;
    metrics_tokens(s->metrics, r->prompt_tokens, generated);
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
            request_finish(r, reason, now);
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
    /* In order: a request of several choices waits at the head until its slots are free. */
    while (s->q_len > 0 &&
           s->slots_in_use + s->queue[s->q_head]->n_choices <= s->config.max_batch) {
        Request *r = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->config.max_queue;
        s->q_len--;
        int slot = 0;
        for (int k = 0; k < r->n_choices; k++) {
            while (s->slot_used[slot]) slot++;
            s->slot_used[slot] = true;
            request_choice(r, k)->seq.slot = slot;
        }
        s->slots_in_use += r->n_choices;
        request_admitted(r, now);
        s->active[s->n_active++] = r;
    }
    metrics_set_queue_depth(s->metrics, s->q_len);
    pthread_mutex_unlock(&s->lock);
}

/* How often a stream's connection may be woken. Each wake costs the event loop about 25 us of
 * CPU (mostly the send and the reader's wake-up in the kernel), taken from the CPUs the engine's
 * threads would use: with n streams woken every step that is n x 25 us a step, a fifth of a
 * batch-64 step here. So the interval grows with the streams, by STREAM_WAKE_PER_STREAM_S each
 * divided by the engine's threads (64 streams on 2 threads: 26 ms, a few tokens a write), which
 * keeps the wakes' cost the same share of the process's CPUs: a replica limited to one CPU with
 * 21 streams wakes them every 17 ms, not 8 (three such replicas on 2 cores: 7% faster in all, in
 * turns). It is never under --stream-interval. 0.8 ms rather than 0.5: at 64 streams on 2 threads
 * of a Zen 3 the readers' CPU fell by 30% and the event loop's by 18% a token. */
#define STREAM_WAKE_PER_STREAM_S 0.0008
static double stream_wake_interval(const Scheduler *s) {
    double by_load =
        s->n_active * STREAM_WAKE_PER_STREAM_S / thread_pool_size(engine_pool(s->engine));
    return by_load > s->config.stream_interval_s ? by_load : s->config.stream_interval_s;
}

/* No choice of r has a token yet: admitted since the last step, or still prefilling its prompt. */
static bool is_new(Request *r) {
    for (int k = 0; k < r->n_choices; k++) {
        const Sequence *q = &request_choice(r, k)->seq;
        if (q->n_generated > 0 || q->finish != FINISH_NONE) return false;
    }
    return true;
}

/* One engine step over the sequences of the active requests (only the new ones' when only_new),
 * then each stepped request's news goes to its channel and the finished retire. Returns the
 * tokens the step ran, or -1 when it failed: a bug, not a user error, so every active request
 * fails and the scheduler keeps serving. */
static long step(Scheduler *s, bool only_new, int prefill_budget) {
    int n_seqs = 0, n_stepped = 0;
    for (int i = 0; i < s->n_active; i++) {
        Request *r = s->active[i];
        if (only_new && !is_new(r)) continue;
        s->stepped[n_stepped++] = r;
        for (int k = 0; k < r->n_choices; k++) s->seqs[n_seqs++] = &request_choice(r, k)->seq;
    }
    Error err;
    if (s->config.step_delay_ms > 0) usleep((useconds_t)s->config.step_delay_ms * 1000);
    double t0 = clock_seconds();
    int ran = ++s->steps == s->config.fail_step
                  ? error_set(&err, "injected fault at step %ld (GPTD_TEST_FAIL_STEP)", s->steps)
                  : batch_step(s->engine, s->seqs, n_seqs, prefill_budget, &s->scratch, &err);
    double t1 = clock_seconds();
    if (ran < 0) {
        log_error("engine step failed: %s", err.message);
        ApiError failure;
        api_error(&failure, 500, "server_error", "generation failed: %s", err.message);
        for (int i = s->n_active - 1; i >= 0; i--) {
            request_fail(s->active[i], &failure, t1);
            retire(s, i);
        }
        metrics_set_active(s->metrics, s->n_active);
        return -1;
    }
    metrics_step(s->metrics, ran, t1 - t0);
    metrics_engine_rows(s->metrics, s->scratch.rows);
    double interval = stream_wake_interval(s);
    for (int j = 0; j < n_stepped; j++) request_publish(s->stepped[j], t1, interval, s->metrics);
    for (int i = s->n_active - 1; i >= 0; i--)
        if (request_all_finished(s->active[i])) retire(s, i);
    metrics_set_active(s->metrics, s->n_active);
    return ran > 0 ? s->scratch.rows : 0;
}

static void *scheduler_main(void *arg) {
    pthread_setname_np(pthread_self(), "gptd-scheduler"); /* for top -H and bench-server */
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
                request_finish(r, reason, now);
                retire(s, i);
            }
        }
        metrics_set_active(s->metrics, s->n_active);
        if (s->n_active == 0) continue;
        /* First tokens first: requests with no token yet (admitted since the last step, or still
         * prefilling) run a short step of their own before everyone's step, so a new request's
         * first token waits for the step in progress, not for one more whole step too. Only while
         * the others are at least as many: with fewer, the extra step costs more than it saves.
         * The two steps share one prefill budget. */
        int n_new = 0, n_old = 0;
        for (int i = 0; i < s->n_active; i++)
            *(is_new(s->active[i]) ? &n_new : &n_old) += s->active[i]->n_choices;
        long used = n_new > 0 && n_old >= n_new ? step(s, true, s->config.prefill_budget) : 0;
        if (used >= 0 && s->n_active > 0) step(s, false, s->config.prefill_budget - (int)used);
    }
    /* Shutdown: whatever is still here ends now, so no HTTP thread waits forever. */
    double now = clock_seconds();
    while (s->n_active > 0) {
        request_finish(s->active[s->n_active - 1], API_FINISH_SHUTDOWN, now);
        retire(s, s->n_active - 1);
    }
    pthread_mutex_lock(&s->lock);
    while (s->q_len > 0) {
        Request *r = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->config.max_queue;
        s->q_len--;
        request_finish(r, API_FINISH_SHUTDOWN, now);
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
    free(s->stepped);
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
    s->stepped = calloc((size_t)c->max_batch, sizeof *s->stepped);
    s->slot_used = calloc((size_t)c->max_batch, sizeof *s->slot_used);
    if (!s->queue || !s->active || !s->seqs || !s->stepped || !s->slot_used ||
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
    request_retain(r);
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
