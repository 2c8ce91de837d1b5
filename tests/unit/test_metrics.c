/* The Prometheus histograms (server/metrics.c) as values, not only as series: every observation
 * is counted in each bucket whose bound it does not exceed, a value exactly at a bound included,
 * the last finite bucket as much as the others; _sum and _count agree with what was observed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../server/metrics.h"

/* The value of the series `name` (a whole line's first field) in text; NAN if absent. */
static double series(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ') return strtod(line + n + 1, NULL);
    return NAN;
}

/* Checks histogram `name` in text against the n observed values: each bucket line's count is the
 * number of values <= its bound; +Inf and _count are n; _sum their sum. Returns the buckets. */
static int check_histogram(const char *text, const char *name, const double *values, int n) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s_bucket{le=\"", name);
    int buckets = 0;
    for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
        const char *le = p + strlen(prefix);
        double bound = strncmp(le, "+Inf", 4) == 0 ? INFINITY : strtod(le, NULL);
        const char *count = strstr(le, "} ");
        assert_non_null(count);
        long got = strtol(count + 2, NULL, 10), want = 0;
        for (int i = 0; i < n; i++) want += values[i] <= bound;
        if (got != want)
            fail_msg("%s: bucket le=%g counts %ld, %ld of the values are <= it", name, bound, got,
                     want);
        buckets++;
    }
    assert_true(buckets >= 3);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += values[i];
    snprintf(prefix, sizeof prefix, "%s_count", name);
    assert_true(series(text, prefix) == n);
    snprintf(prefix, sizeof prefix, "%s_sum", name);
    assert_true(fabs(series(text, prefix) - sum) <= 1e-6 * (1 + sum));
    return buckets;
}

/* Observations at every bound of the time-to-first-token, time-per-token and step histograms,
 * just under and just over each, and past the last: each lands where the reference puts it. */
static void histograms_count_values_by_bound(void **state) {
    (void)state;
    const double ttft[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    const double tpot[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    const double batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    enum { MAX = 64 };
    double v_ttft[MAX], v_tpot[MAX], v_step[MAX], v_batch[MAX];
    int n_ttft = 0, n_tpot = 0, n_step = 0;
    Metrics *m = metrics_create();
    assert_non_null(m);
    for (size_t i = 0; i < sizeof ttft / sizeof *ttft; i++) {
        const double vs[3] = {ttft[i], ttft[i] * 0.999, nextafter(ttft[i], INFINITY)};
        for (int k = 0; k < 3; k++) {
            metrics_time_to_first_token(m, vs[k]);
            v_ttft[n_ttft++] = vs[k];
        }
    }
    metrics_time_to_first_token(m, 60.0);
    v_ttft[n_ttft++] = 60.0;
    for (size_t i = 0; i < sizeof tpot / sizeof *tpot; i++) {
        metrics_time_per_token(m, tpot[i]);
        v_tpot[n_tpot++] = tpot[i];
        metrics_time_per_token(m, tpot[i] * 1.001);
        v_tpot[n_tpot++] = tpot[i] * 1.001;
    }
    /* a step: its batch size and its seconds; batch sizes at every bound and one between */
    for (size_t i = 0; i < sizeof batch / sizeof *batch; i++) {
        int sizes[2] = {(int)batch[i], (int)batch[i] + 1};
        for (int k = 0; k < 2; k++) {
            double seconds = 0.0001 * (double)(n_step + 1);
            metrics_step(m, sizes[k], seconds);
            v_batch[n_step] = sizes[k];
            v_step[n_step++] = seconds;
        }
    }
    char *text = metrics_render(m);
    assert_non_null(text);
    assert_int_equal(check_histogram(text, "gptd_time_to_first_token_seconds", v_ttft, n_ttft), 12);
    assert_int_equal(check_histogram(text, "gptd_time_per_token_seconds", v_tpot, n_tpot), 11);
    assert_int_equal(check_histogram(text, "gptd_batch_size", v_batch, n_step), 10);
    assert_int_equal(check_histogram(text, "gptd_step_duration_seconds", v_step, n_step), 11);
    free(text);
    metrics_destroy(m);
}

/* Counters and gauges hold what they were given. */
static void counters_and_gauges_hold_their_values(void **state) {
    (void)state;
    Metrics *m = metrics_create();
    assert_non_null(m);
    metrics_tokens(m, 7, 11);
    metrics_tokens(m, 3, 4);
    metrics_set_queue_depth(m, 5);
    metrics_set_active(m, 2);
    metrics_request_done(m, "/generate", 200);
    metrics_request_done(m, "/generate", 200);
    metrics_request_done(m, "/generate", 400);
    char *text = metrics_render(m);
    assert_true(series(text, "gptd_prompt_tokens_total") == 10);
    assert_true(series(text, "gptd_generated_tokens_total") == 15);
    assert_true(series(text, "gptd_queue_depth") == 5);
    assert_true(series(text, "gptd_active_sequences") == 2);
    assert_true(series(text, "gptd_requests_total{endpoint=\"/generate\",status=\"200\"}") == 2);
    assert_true(series(text, "gptd_requests_total{endpoint=\"/generate\",status=\"400\"}") == 1);
    free(text);
    metrics_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(histograms_count_values_by_bound),
        cmocka_unit_test(counters_and_gauges_hold_their_values),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
