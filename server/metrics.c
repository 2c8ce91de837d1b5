#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"

#define MAX_BUCKETS 16
#define MAX_SERIES 64
/* The exposition text of MAX_SERIES series and four histograms fits with room to spare. */
#define METRICS_MAX_TEXT (64u << 10)

typedef struct {
    const char *name, *help;
    int n;
    double bounds[MAX_BUCKETS];
    unsigned long counts[MAX_BUCKETS]; /* per bucket, made cumulative when rendered */
    unsigned long count;
    double sum;
} Histogram;

typedef struct {
    char endpoint[32];
    int status;
    unsigned long count;
} RequestSeries;

struct Metrics {
    pthread_mutex_t lock; /* guards every field below */
    RequestSeries requests[MAX_SERIES];
    int n_requests;
    unsigned long prompt_tokens, generated_tokens, engine_rows;
    int queue_depth, active;
    Histogram batch, ttft, tpot, step;
};

static void histogram_init(Histogram *h, const char *name, const char *help, int n,
                           const double *bounds) {
    memset(h, 0, sizeof *h);
    h->name = name;
    h->help = help;
    h->n = n;
    memcpy(h->bounds, bounds, (size_t)n * sizeof *bounds);
}

static void histogram_observe(Histogram *h, double v) {
    for (int i = 0; i < h->n; i++)
        if (v <= h->bounds[i]) {
            h->counts[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

Metrics *metrics_create(void) {
    Metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->lock, NULL);
    static const double batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    static const double ttft[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static const double tpot[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    histogram_init(&m->batch, "gptd_batch_size", "Sequences advanced per engine step", 9, batch);
    histogram_init(&m->ttft, "gptd_time_to_first_token_seconds",
                   "From request arrival to its first generated token", 11, ttft);
    histogram_init(&m->tpot, "gptd_time_per_token_seconds",
                   "Time between consecutive tokens of a request", 10, tpot);
    histogram_init(&m->step, "gptd_step_duration_seconds", "Duration of one engine step", 10, tpot);
    return m;
}

void metrics_destroy(Metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void metrics_request_done(Metrics *m, const char *endpoint, int status) {
    pthread_mutex_lock(&m->lock);
    int i = 0;
    while (i < m->n_requests &&
           !(m->requests[i].status == status && strcmp(m->requests[i].endpoint, endpoint) == 0))
        i++;
    if (i == m->n_requests && m->n_requests < MAX_SERIES) {
        snprintf(m->requests[i].endpoint, sizeof m->requests[i].endpoint, "%s", endpoint);
        m->requests[i].status = status;
        m->n_requests++;
    }
    if (i < m->n_requests) m->requests[i].count++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_engine_rows(Metrics *m, long rows) {
    pthread_mutex_lock(&m->lock);
    m->engine_rows += (unsigned long)rows;
    pthread_mutex_unlock(&m->lock);
}

void metrics_tokens(Metrics *m, long prompt_tokens, long generated_tokens) {
    pthread_mutex_lock(&m->lock);
    m->prompt_tokens += (unsigned long)prompt_tokens;
    m->generated_tokens += (unsigned long)generated_tokens;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_queue_depth(Metrics *m, int depth) {
    pthread_mutex_lock(&m->lock);
    m->queue_depth = depth;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_active(Metrics *m, int active) {
    pthread_mutex_lock(&m->lock);
    m->active = active;
    pthread_mutex_unlock(&m->lock);
}

void metrics_step(Metrics *m, int batch_size, double seconds) {
    pthread_mutex_lock(&m->lock);
    histogram_observe(&m->batch, batch_size);
    histogram_observe(&m->step, seconds);
    pthread_mutex_unlock(&m->lock);
}

void metrics_time_to_first_token(Metrics *m, double seconds) {
    pthread_mutex_lock(&m->lock);
    histogram_observe(&m->ttft, seconds);
    pthread_mutex_unlock(&m->lock);
}

void metrics_time_per_token(Metrics *m, double seconds) {
    pthread_mutex_lock(&m->lock);
    histogram_observe(&m->tpot, seconds);
    pthread_mutex_unlock(&m->lock);
}

static void render_histogram(Buf *t, const Histogram *h) {
    buf_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    unsigned long cumulative = 0;
    for (int i = 0; i < h->n; i++) {
        cumulative += h->counts[i];
        buf_printf(t, "%s_bucket{le=\"%g\"} %lu\n", h->name, h->bounds[i], cumulative);
    }
    buf_printf(t, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.9g\n%s_count %lu\n", h->name, h->count,
               h->name, h->sum, h->name, h->count);
}

char *metrics_render(Metrics *m) {
    Buf t;
    buf_init(&t, METRICS_MAX_TEXT);
    pthread_mutex_lock(&m->lock);
    buf_printf(&t, "# HELP gptd_requests_total Requests answered, by endpoint and status\n"
                   "# TYPE gptd_requests_total counter\n");
    for (int i = 0; i < m->n_requests; i++)
        buf_printf(&t, "gptd_requests_total{endpoint=\"%s\",status=\"%d\"} %lu\n",
                   m->requests[i].endpoint, m->requests[i].status, m->requests[i].count);
    buf_printf(&t,
               "# HELP gptd_prompt_tokens_total Prompt tokens processed\n"
               "# TYPE gptd_prompt_tokens_total counter\ngptd_prompt_tokens_total %lu\n"
               "# HELP gptd_generated_tokens_total Tokens generated\n"
               "# TYPE gptd_generated_tokens_total counter\ngptd_generated_tokens_total %lu\n"
               "# HELP gptd_engine_rows_total Tokens run through the model (prompt prefills, "
               "re-prefills past the context, decode steps)\n"
               "# TYPE gptd_engine_rows_total counter\ngptd_engine_rows_total %lu\n"
               "# HELP gptd_queue_depth Requests waiting for a slot\n"
               "# TYPE gptd_queue_depth gauge\ngptd_queue_depth %d\n"
               "# HELP gptd_active_sequences Sequences holding a slot\n"
               "# TYPE gptd_active_sequences gauge\ngptd_active_sequences %d\n",
               m->prompt_tokens, m->generated_tokens, m->engine_rows, m->queue_depth, m->active);
    render_histogram(&t, &m->batch);
    render_histogram(&t, &m->ttft);
    render_histogram(&t, &m->tpot);
    render_histogram(&t, &m->step);
    pthread_mutex_unlock(&m->lock);
    return buf_take(&t);
}
