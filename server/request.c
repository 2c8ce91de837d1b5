#include "request.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"

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
    r->text[0] = '\0';
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->cancelled, false);
    r->t_arrival = clock_seconds();
    r->deadline = timeout_s > 0 ? r->t_arrival + timeout_s : 0;
    r->prompt_tokens = r->seq.n_prompt;
    r->prompt_dropped = r->seq.prompt_dropped;
    r->refs = 1;
    snprintf(r->id, sizeof r->id, "%s", id);
    return r;
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
    sequence_free(&r->seq);
    free(r->text);
    free(r->events);
    free(r->attention);
    free(r->attention_values);
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

void request_publish(Request *r, double now, double wake_interval_s, Metrics *metrics) {
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
            metrics_time_to_first_token(metrics, now - r->t_arrival);
        } else {
            metrics_time_per_token(metrics, now - r->t_last_token);
        }
        r->t_last_token = now;
        r->completion_tokens = q->n_generated;
    }
    if (q->finish != FINISH_NONE) {
        r->done = true;
        r->finish = q->finish == FINISH_STOP ? API_FINISH_STOP : API_FINISH_LENGTH;
        r->t_done = now;
    }
    if (r->done || (r->wake_each_event && now - r->t_woken >= wake_interval_s)) {
        r->t_woken = now;
        wake_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
}

void request_finish(Request *r, ApiFinish reason, double now) {
    pthread_mutex_lock(&r->lock);
    r->done = true;
    r->finish = reason;
    r->t_done = now;
    wake_locked(r);
    pthread_mutex_unlock(&r->lock);
}

void request_fail(Request *r, const ApiError *e, double now) {
    pthread_mutex_lock(&r->lock);
    r->failed = true;
    r->error = *e;
    r->done = true;
    r->finish = API_FINISH_ERROR;
    r->t_done = now;
    wake_locked(r);
    pthread_mutex_unlock(&r->lock);
}

/* ---- consumer ---------------------------------------------------------------------------- */

void request_snapshot(Request *r, RequestSnapshot *out) {
    pthread_mutex_lock(&r->lock);
    *out = (RequestSnapshot){.n_events = r->n_events,
                             .text_len = r->text_len,
                             .event_tokens = r->event_tokens,
                             .done = r->done,
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
    bool news = r->done || r->n_events > seen_events ||
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
