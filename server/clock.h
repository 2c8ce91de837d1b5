/* Monotonic time in seconds, for durations and deadlines. */
#ifndef GPTD_CLOCK_H
#define GPTD_CLOCK_H

#include <time.h>

static inline double clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
