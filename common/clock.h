/* The one clock of the project: monotonic time in seconds, for durations and deadlines, and
 * condition variables whose timed waits use the same clock (a step of the wall clock must not
 * stall them). */
#ifndef GPTD_CLOCK_H
#define GPTD_CLOCK_H

#include <pthread.h>
#include <time.h>

static inline double clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The CLOCK_MONOTONIC time `seconds` from now, as pthread_cond_timedwait wants it. */
static inline struct timespec clock_deadline(double seconds) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long ns = t.tv_nsec + (long)(seconds * 1e9);
    t.tv_sec += ns / 1000000000L;
    t.tv_nsec = ns % 1000000000L;
    return t;
}

static inline void clock_cond_init(pthread_cond_t *cond) {
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &monotonic);
    pthread_condattr_destroy(&monotonic);
}

#endif
