#include "kernels.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/thread_pool.h"

#if defined(__x86_64__)
#include <cpuid.h>
extern const Kernels kernels_avx512, kernels_avx2;
#elif defined(__aarch64__)
extern const Kernels kernels_neon;
#endif
extern const Kernels kernels_portable;

#if defined(__x86_64__)
/* F16C from cpuid: clang 14's __builtin_cpu_supports does not know the name. */
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

int kernels_available(const Kernels **out, int max) {
    int n = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (n < max && __builtin_cpu_supports("avx512f")) out[n++] = &kernels_avx512;
    if (n < max && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        cpu_has_f16c())
        out[n++] = &kernels_avx2;
#elif defined(__aarch64__)
    if (n < max) out[n++] = &kernels_neon;
#endif
    if (n < max) out[n++] = &kernels_portable;
    return n;
}

int kernels_find(const Kernels **out, const char *name, Error *err) {
    const Kernels *have[4];
    int n = kernels_available(have, 4);
    char list[64] = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(have[i]->name, name) == 0) {
            *out = have[i];
            return 0;
        }
        strcat(list, i ? " " : "");
        strcat(list, have[i]->name);
    }
    return error_set(err, "kernels '%s' are not available on this CPU (it has: %s)", name, list);
}

int kernels_choose(const Kernels **out, Error *err) {
    const char *name = getenv("GPTD_KERNELS");
    if (name && *name) return kernels_find(out, name, err) ? error_wrap(err, "GPTD_KERNELS") : 0;
    kernels_available(out, 1);
    return 0;
}

/* The loop is cut into many short tasks: with one task a thread, the caller could finish its own
 * and take the other before a sleeping worker woke, and two threads would measure as one. */
#define PEAK_TASKS_PER_THREAD 16
typedef struct {
    const Kernels *k;
    double *flops;
} PeakJob;

static void peak_task(void *ctx, int task) {
    PeakJob *j = ctx;
    j->flops[task] = j->k->peak_loop(20000000 / (long)(j->k->panel + 8));
}

double kernels_peak_gflops(const Kernels *k, ThreadPool *pool, int repeats) {
    int tasks = (pool ? thread_pool_size(pool) : 1) * PEAK_TASKS_PER_THREAD;
    double flops_of[256 * PEAK_TASKS_PER_THREAD], best = 0;
    if (tasks > 256 * PEAK_TASKS_PER_THREAD) return 0;
    PeakJob j = {k, flops_of};
    for (int i = -1; i < repeats; i++) { /* the first run only warms up */
        double t0 = clock_seconds();
        if (pool)
            thread_pool_run(pool, peak_task, &j, tasks);
        else
            for (int t = 0; t < tasks; t++) peak_task(&j, t);
        double dt = clock_seconds() - t0, flops = 0;
        for (int t = 0; t < tasks; t++) flops += flops_of[t];
        if (i >= 0 && flops / dt / 1e9 > best) best = flops / dt / 1e9;
    }
    return best;
}
