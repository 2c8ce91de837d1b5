#include "request.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"

/* The text, events and token records a request's answer needs, sized at creation. */
static int alloc_channel(Request *r, const ApiRequest *api, const Tokenizer *tok) {
    const GenerationParams *p = &api->params;
    int max_tokens = p->max_tokens;
    r->text = malloc((size_t)max_tokens * tokenizer_max_text(tok) + 1);
    r->events = malloc(((size_t)max_tokens + 1) * sizeof *r->events);
    if (!r->text || !r->events) return -1;
    const AttentionView *view = &p->attention;
    bool attention = view->form != ATTENTION_NONE;
    if (!attention && !p->logprobs) return 0;
    size_t records = (size_t)r->seq.n_score + 1 + (size_t)max_tokens;
    r->tokens = calloc(records + 1, sizeof *r->tokens);
    if (!r->tokens) return -1;
    if (attention) {
        r->attention_values =
            malloc((size_t)max_tokens * attention_view_max_values(view) * sizeof(float) + 1);
        if (!r->attention_values) return -1;
    }
    if (p->top_logprobs > 0) {
        size_t top = records * (size_t)p->top_logprobs;
        r->top_ids = malloc(top * sizeof *r->top_ids);
        r->top_logprobs = malloc(top * sizeof *r->top_logprobs);
        if (!r->top_ids || !r->top_logprobs) return -1;
    }
    return 0;
}

static void free_channel(Request *r) {
    free(r->text);
    free(r->events);
    free(r->tokens);
    free(r->attention_values);
    free(r->top_ids);
    free(r->top_logprobs);
}

/* One choice's request: its sequence and channel. */
static Request *create_one(const char *id, const ApiRequest *api, const Tokenizer *tok,
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
    r->api.prompt = NULL; /* the sequence holds the tokens; echo keeps the text (the caller's) */
    if (alloc_channel(r, api, tok)) {
        free_channel(r);
        sequence_free(&r->seq);
        free(r);
        api_error(e, 500, "server_error", "out of memory");
        return NULL;
    }
    if (api->params.score_prompt && api->prompt_len > 0) { /* nothing predicts the first token */
        ApiToken *t = &r->tokens[0];
        *t = (ApiToken){.index = 0, .id = r->seq.tokens[0], .prompt = true, .logprob = NAN};
        t->text = tokenizer_piece(tok, t->id, &t->text_len);
        r->first_recorded = 1;
        r->n_scored = r->n_recorded = 1;
    }
    r->text[0] = '\0';
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->cancelled, false);
    r->t_arrival = clock_seconds();
    r->deadline = timeout_s > 0 ? r->t_arrival + timeout_s : 0;
    r->prompt_tokens = r->seq.n_prompt + r->seq.n_score;
    r->prompt_dropped = r->seq.prompt_dropped;
    r->refs = 1;
    r->n_choices = 1;
    snprintf(r->id, sizeof r->id, "%s", id);
    return r;
}

/* Choice i's seed: the request's plus i, kept within JSON's exact integers. */
static uint64_t choice_seed(uint64_t seed, int i) {
    return (seed + (uint64_t)i) & ((1ull << 53) - 1);
}

Request *request_create(const char *id, const ApiRequest *api, const Tokenizer *tok,
                        ContextPolicy context, double timeout_s, ApiError *e) {
    Request *r = create_one(id, api, tok, context, timeout_s, e);
    if (!r || api->n <= 1) return r;
    r->choices = calloc((size_t)api->n - 1, sizeof *r->choices);
    if (!r->choices) {
        request_release(r);
        api_error(e, 500, "server_error", "out of memory");
        return NULL;
    }
    ApiRequest one = *api;
    for (int i = 1; i < api->n; i++) {
        one.params.seed = choice_seed(api->params.seed, i);
        Request *c = create_one(id, &one, tok, context, timeout_s, e);
        Error err;
        if (c && sequence_fork_from(&c->seq, &r->seq, &err)) {
            api_error(e, 500, "server_error", "%s", err.message);
            request_release(c);
            c = NULL;
        }
        if (!c) {
            request_release(r);
            return NULL;
        }
        c->deadline = r->deadline;
        c->t_arrival = r->t_arrival;
        r->choices[r->n_choices++ - 1] = c;
    }
    return r;
}

Request *request_choice(Request *r, int i) { return i == 0 ? r : r->choices[i - 1]; }

bool request_all_finished(const Request *r) {
    for (int i = 0; i < r->n_choices; i++)
        if (request_choice((Request *)r, i)->seq.finish == FINISH_NONE) return false;
    return true;
}

void request_retain(Request *r) {
    pthread_mutex_lock(&r->lock);
    r->refs++;
    pthread_mutex_unlock(&r->lock);
}

void request_release(Request *r) {
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    int left = --r->refs;
    pthread_mutex_unlock(&r->lock);
    if (left > 0) return;
    for (int i = 1; i < r->n_choices; i++) request_release(r->choices[i - 1]);
    free(r->choices);
    sequence_free(&r->seq);
    free_channel(r);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- producer ---------------------------------------------------------------------------- */

/* Runs the parked consumer's resume. Called with r->lock held. */
static void wake_locked(Request *r) {
    if (!r->waiting) return;
    r->waiting = false;
    r->waiter.resume(r->waiter.ctx);
}

void request_admitted(Request *r, double now) {
    pthread_mutex_lock(&r->lock); /* the HTTP side reads t_admit for the reply's timing */
    r->t_admit = now;
    pthread_mutex_unlock(&r->lock);
}

/* The token the last step reported (a scored prompt token, or a generated one) with its
 * log-probabilities and the weights its query used, as asked. Called with r->lock held. */
static void record_token(Request *r, const Sequence *q) {
    const GenerationParams *p = &q->params;
    int k = r->n_recorded++;
    bool prompt = q->scored + r->first_recorded > r->n_scored;
    ApiToken *t = &r->tokens[k];
    *t = (ApiToken){.index = prompt ? r->n_scored : q->n_generated - 1,
                    .id = q->tokens[q->n_tokens - 1],
                    .prompt = prompt,
                    .logprob = q->last_logprob,
                    .adjusted_logprob = q->last_adjusted_logprob};
    if (prompt) {
        r->n_scored++;
        t->text = tokenizer_piece(q->tok, t->id, &t->text_len); /* raw bytes, as the prompt's */
    }
    if (r->top_ids) {
        size_t at = (size_t)k * (size_t)p->top_logprobs;
        memcpy(r->top_ids + at, q->top_ids, (size_t)q->n_top * sizeof *r->top_ids);
        memcpy(r->top_logprobs + at, q->top_logprobs, (size_t)q->n_top * sizeof(float));
        t->top_ids = r->top_ids + at;
        t->top_logprobs = r->top_logprobs + at;
        t->n_top = q->n_top;
    }
    if (!prompt && p->attention.form != ATTENTION_NONE) {
        int g = q->n_generated - 1, per_token = attention_view_max_values(&p->attention);
        float *values = r->attention_values + (size_t)g * per_token;
        memcpy(values, q->attention, (size_t)q->attention_values * sizeof(float));
        t->position = q->attention_start + q->attention_visible;
        t->start = q->attention_start;
        t->visible = q->attention_visible;
        t->values = values;
        t->n_values = q->attention_values;
    }
}

/* With token records, released text goes out one token per event, each with its record (a
 * piece held back for a stop string is several tokens). Called with r->lock held. */
static void add_token_events(Request *r, const Sequence *q, int offset, int len) {
    int generated = r->n_recorded - r->n_scored;
    while (len > 0 && r->event_tokens < generated) {
        int g = r->event_tokens++;
        size_t piece;
        if (!tokenizer_piece(q->tok, q->tokens[q->n_prompt + g], &piece)) piece = 0;
        int n = (int)piece;
        if (n > len || r->event_tokens == generated) n = len; /* the rest is the last's */
        /* an event holds whole characters, even when a token ends inside one */
        while (n < len && ((unsigned char)r->text[offset + n] & 0xC0) == 0x80) n++;
        ApiToken *t = &r->tokens[r->n_scored + g];
        t->text = r->text + offset;
        t->text_len = (size_t)n;
        r->events[r->n_events++] =
            (TokenEvent){.offset = offset, .len = n, .index = g, .logprob = t->logprob};
        offset += n;
        len -= n;
    }
}

/* Appends one choice's new text and records, and ends its channel when its sequence finished;
 * metrics (NULL for the choices after the first) get its time to first token and per token.
 * Returns whether anything new was appended. */
static bool append_choice(Request *r, double now, Metrics *metrics) {
    Sequence *q = &r->seq;
    const char *text;
    size_t n = sequence_take_text(q, &text);
    pthread_mutex_lock(&r->lock);
    int events_before = r->n_events, tokens_before = r->completion_tokens;
    if (r->tokens && sequence_reported(q) + r->first_recorded > r->n_recorded) record_token(r, q);
    if (n > 0) {
        memcpy(r->text + r->text_len, text, n);
        if (r->tokens) {
            add_token_events(r, q, r->text_len, (int)n);
        } else {
            r->events[r->n_events++] = (TokenEvent){.offset = r->text_len,
                                                    .len = (int)n,
                                                    .index = q->n_generated - 1,
                                                    .logprob = q->last_logprob};
        }
        r->text_len += (int)n;
        r->text[r->text_len] = '\0';
    }
    if (q->n_generated > r->completion_tokens) {
        if (r->completion_tokens == 0) {
            r->t_first_token = now;
            if (metrics) metrics_time_to_first_token(metrics, now - r->t_arrival);
        } else if (metrics) {
            metrics_time_per_token(metrics, now - r->t_last_token);
        }
        r->t_last_token = now;
        r->completion_tokens = q->n_generated;
    }
    if (q->finish != FINISH_NONE && !r->done) {
        r->done = true;
        r->finish = q->finish == FINISH_STOP ? API_FINISH_STOP : API_FINISH_LENGTH;
        r->t_done = now;
    }
    bool news = r->n_events > events_before || r->completion_tokens > tokens_before;
    pthread_mutex_unlock(&r->lock);
    return news;
}

/* The group's counts on the first choice, and a wake-up when they call for one. Called with
 * r->lock held, after every choice's own channel was updated (their locks released). */
static void end_group_step_locked(Request *r, double now, bool news, double wake_interval_s) {
    int events = 0;
    bool done = true;
    for (int i = 0; i < r->n_choices; i++) {
        Request *c = request_choice(r, i);
        events += c == r ? r->n_events : atomic_load(&c->n_events_published);
        done &= c == r ? r->done : atomic_load(&c->done_published);
    }
    r->group_events = events;
    r->group_done = done;
    if (done || (news && r->wake_each_event && now - r->t_woken >= wake_interval_s)) {
        r->t_woken = now;
        wake_locked(r);
    }
}

void request_publish(Request *r, double now, double wake_interval_s, Metrics *metrics) {
    bool news = false;
    for (int i = 1; i < r->n_choices; i++) {
        Request *c = r->choices[i - 1];
        news |= append_choice(c, now, NULL);
        atomic_store(&c->n_events_published, c->n_events);
        atomic_store(&c->done_published, c->done);
    }
    news |= append_choice(r, now, metrics);
    pthread_mutex_lock(&r->lock);
    end_group_step_locked(r, now, news || r->done, wake_interval_s);
    pthread_mutex_unlock(&r->lock);
}

/* Ends one choice's channel (with e, an error) unless it has ended. */
static void end_choice(Request *c, ApiFinish reason, const ApiError *e, double now) {
    pthread_mutex_lock(&c->lock);
    if (e) {
        c->failed = true;
        c->error = *e;
    }
    if (!c->done || e) {
        c->done = true;
        c->finish = reason;
        c->t_done = now;
    }
    pthread_mutex_unlock(&c->lock);
    atomic_store(&c->n_events_published, c->n_events);
    atomic_store(&c->done_published, true);
}

/* Ends every choice's channel, then the group's, and wakes the consumer. */
static void end_all(Request *r, ApiFinish reason, const ApiError *e, double now) {
    for (int i = 1; i < r->n_choices; i++) end_choice(r->choices[i - 1], reason, e, now);
    pthread_mutex_lock(&r->lock);
    if (e) {
        r->failed = true;
        r->error = *e;
    }
    r->done = true;
    r->finish = reason;
    r->t_done = now;
    end_group_step_locked(r, now, true, 0); /* all done: wakes the consumer */
    pthread_mutex_unlock(&r->lock);
}

void request_finish(Request *r, ApiFinish reason, double now) { end_all(r, reason, NULL, now); }

void request_fail(Request *r, const ApiError *e, double now) {
    end_all(r, API_FINISH_ERROR, e, now);
}

/* ---- consumer ---------------------------------------------------------------------------- */

void request_snapshot(Request *r, RequestSnapshot *out) {
    pthread_mutex_lock(&r->lock);
    *out = (RequestSnapshot){.n_events = r->n_events,
                             .text_len = r->text_len,
                             .event_tokens = r->event_tokens,
                             .done = r->done,
                             .group_done = r->group_done,
                             .group_events = r->group_events,
                             .failed = r->failed,
                             .finish = r->finish,
                             .error = r->error,
                             .prompt_tokens = r->prompt_tokens,
                             .completion_tokens = r->completion_tokens,
                             .prompt_dropped = r->prompt_dropped,
                             .t_arrival = r->t_arrival,
                             .t_admit = r->t_admit,
                             .t_first_token = r->t_first_token,
                             .t_done = r->t_done};
    pthread_mutex_unlock(&r->lock);
}

bool request_wait(Request *r, int seen_events, int seen_tokens, const RequestWaiter *w) {
    pthread_mutex_lock(&r->lock);
    bool news = r->group_done || r->group_events > seen_events ||
                (seen_tokens != INT_MAX && r->completion_tokens > seen_tokens);
    if (!news) {
        r->waiter = *w;
        r->waiting = true;
        w->suspend(w->ctx);
    }
    pthread_mutex_unlock(&r->lock);
    return news;
}

void request_wake(Request *r) {
    pthread_mutex_lock(&r->lock);
    wake_locked(r);
    pthread_mutex_unlock(&r->lock);
}

void request_forget_waiter(Request *r) {
    pthread_mutex_lock(&r->lock);
    r->waiting = false;
    pthread_mutex_unlock(&r->lock);
}
