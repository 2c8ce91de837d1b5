#define _GNU_SOURCE /* sched_getaffinity */
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* A hint to the core while polling: lets a sibling hyperthread run, saves power. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

struct ThreadPool {
    int n_threads;
    double spin_s; /* immutable: how long a thread polls before sleeping */
    pthread_t *workers;
    /* lock guards stop, fn, ctx and n_tasks, and every change of generation and running; both
     * are atomic so that threads can also poll them without the lock. */
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
    int stop;
    PoolTask fn;
    void *ctx;
    int n_tasks;
    atomic_int running; /* workers still inside the current run */
    atomic_int next_task;
    atomic_ulong generation; /* bumped for each run (and at stop); workers wait for a new one */
};

/* Polls until done(arg) or spin_s have passed; returns whether done. Sleeping and being woken
 * costs tens of microseconds on a virtual machine (a cross-CPU interrupt each way), longer than
 * many whole products at batch 1, so a thread that expects work soon looks for it first. */
static int poll_until(int (*done)(ThreadPool *, unsigned long), ThreadPool *p, unsigned long arg) {
    double deadline = 0;
    for (int i = 0;; i++) {
        if (done(p, arg)) return 1;
        if ((i & 63) == 0) {
            double t = clock_seconds();
            if (i == 0) deadline = t + p->spin_s;
            if (t >= deadline) return 0;
        }
        cpu_relax();
    }
}

static int new_generation(ThreadPool *p, unsigned long seen) {
    return atomic_load_explicit(&p->generation, memory_order_acquire) != seen;
}

static int workers_finished(ThreadPool *p, unsigned long unused) {
    (void)unused;
    return atomic_load_explicit(&p->running, memory_order_acquire) == 0;
}

/* Threads claim tasks a few at a time: each claim moves the counter's cache line between cores
 * (a few hundred nanoseconds on a VM), while eight claims per thread still even out tasks of
 * different sizes. */
static void run_tasks(ThreadPool *p, PoolTask fn, void *ctx, int n_tasks) {
    int chunk = n_tasks / (8 * p->n_threads);
    if (chunk < 1) chunk = 1;
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, chunk);
        if (t >= n_tasks) return;
        int end = t + chunk < n_tasks ? t + chunk : n_tasks;
        for (; t < end; t++) fn(ctx, t);
    }
}

static void *worker_main(void *arg) {
    ThreadPool *p = arg;
    unsigned long seen = 0;
    for (;;) {
        poll_until(new_generation, p, seen);
        pthread_mutex_lock(&p->lock);
        while (!p->stop && atomic_load(&p->generation) == seen)
            pthread_cond_wait(&p->work_ready, &p->lock);
        if (p->stop) break;
        seen = atomic_load(&p->generation);
        PoolTask fn = p->fn;
        void *ctx = p->ctx;
        int n = p->n_tasks;
        pthread_mutex_unlock(&p->lock);
        run_tasks(p, fn, ctx, n);
        pthread_mutex_lock(&p->lock);
        if (atomic_fetch_sub(&p->running, 1) == 1) pthread_cond_signal(&p->work_done);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int thread_pool_create(ThreadPool **out, int n_threads, int spin_us, Error *err) {
    if (n_threads < 1) return error_set(err, "thread pool needs at least 1 thread");
    if (spin_us < 0) return error_set(err, "thread pool spin time must be >= 0");
    ThreadPool *p = calloc(1, sizeof *p);
    if (!p) return error_set(err, "out of memory");
    p->n_threads = n_threads;
    p->spin_s = spin_us * 1e-6;
    /* With more threads than CPUs to run on, a polling thread takes the CPU from the very thread
     * it waits for (4 threads on 2 CPUs ran 3x slower): then sleep at once. */
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0 && n_threads > CPU_COUNT(&cpus))
        p->spin_s = 0;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return error_set(err, "out of memory");
    }
    for (int i = 0; i < n_threads - 1; i++)
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
            p->n_threads = i + 1; /* destroy joins only the ones started */
            thread_pool_destroy(p);
            return error_set(err, "cannot start worker thread %d", i);
        }
    *out = p;
    return 0;
}

void thread_pool_destroy(ThreadPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    atomic_fetch_add(&p->generation, 1); /* ends any polling */
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work_ready);
    pthread_cond_destroy(&p->work_done);
    free(p->workers);
    free(p);
}

int thread_pool_size(const ThreadPool *p) { return p->n_threads; }

void thread_pool_run(ThreadPool *p, PoolTask fn, void *ctx, int n_tasks) {
    if (p->n_threads == 1 || n_tasks <= 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->running, p->n_threads - 1);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    run_tasks(p, fn, ctx, n_tasks);
    if (poll_until(workers_finished, p, 0)) return;
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->running) > 0) pthread_cond_wait(&p->work_done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
