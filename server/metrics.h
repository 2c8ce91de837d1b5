/* Prometheus metrics: counters, gauges and histograms with _bucket/_sum/_count, rendered in the
 * text exposition format by GET /metrics. Updated from the HTTP threads and the scheduler. */
#ifndef GPTD_METRICS_H
#define GPTD_METRICS_H

#include <stddef.h>

typedef struct Metrics Metrics;

Metrics *metrics_create(void);
void metrics_destroy(Metrics *m);

void metrics_request_done(Metrics *m, const char *endpoint, int status);
void metrics_tokens(Metrics *m, long prompt_tokens, long generated_tokens);
void metrics_set_queue_depth(Metrics *m, int depth);
void metrics_set_active(Metrics *m, int active);
void metrics_step(Metrics *m, int batch_size, double seconds);
/* Rows one engine step ran (BatchScratch.rows). */
void metrics_engine_rows(Metrics *m, long rows);
void metrics_time_to_first_token(Metrics *m, double seconds);
void metrics_time_per_token(Metrics *m, double seconds);

/* The whole exposition text; caller frees. */
char *metrics_render(Metrics *m);

#endif
