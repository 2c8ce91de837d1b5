/* A fixed pool of worker threads that run one parallel-for at a time. The calling thread takes
 * part, so a pool of n threads has n - 1 workers.
 *
 * A run is finished when its tasks are done, whoever did them: the caller never waits for a
 * worker that has not started. On a shared CPU the kernel may leave a worker unscheduled for a
 * whole time slice; the caller then claims every task itself, and the late worker, when it wakes,
 * finds the run gone (tasks are claimed against the run's number) and touches nothing. The caller
 * waits only for tasks a worker has claimed and not yet finished, polling about as long as they
 * should take and then sleeping.
 *
 * Threads are used where they pay. When the caller had to sleep for a worker and handing work
 * out has stopped paying over the recent runs, or finds every worker on its own CPU (the kernel
 * puts a process's threads on one CPU when another process keeps the other busy) while it has,
 * it runs the next runs alone, then hands one out again to see whether the CPU is still shared
 * (longer each time it is). A single late run among runs that pay (the process's own other
 * threads taking a core for a moment) does not stop the sharing. A worker on the caller's CPU
 * sleeps instead of polling for the next run, so that it takes no time from the caller.
 *
 * Between runs, workers poll for the next one for spin_us microseconds and then sleep on a
 * condition variable, so an idle pool costs no CPU. Polling pays where runs follow each other
 * within microseconds (the engine's products, the trainer's); where another library's threads
 * run between runs, a short spin_us keeps the pool from stealing their cores. */
#ifndef GPTD_THREAD_POOL_H
#define GPTD_THREAD_POOL_H

#include <stddef.h>

#include "error.h"

typedef struct ThreadPool ThreadPool;

/* fn(ctx, task) for task in [0, n_tasks); tasks must be independent. */
typedef void (*PoolTask)(void *ctx, int task);

/* n_threads >= 1 (1: everything runs on the caller); spin_us >= 0. */
int thread_pool_create(ThreadPool **pool, int n_threads, int spin_us, Error *err);
void thread_pool_destroy(ThreadPool *pool);
int thread_pool_size(const ThreadPool *pool);

/* Runs all tasks and returns when every one has finished, n_tasks < 2^24. One caller at a time. */
void thread_pool_run(ThreadPool *pool, PoolTask fn, void *ctx, int n_tasks);

/* fn(ctx, begin, end) over consecutive ranges that cover [0, n): about `per_thread` ranges a
 * thread, none shorter than min_range (the last excepted), so that a range pays for its hand-off.
 * With one thread, a NULL pool or n <= min_range: one call over [0, n) on the caller. For work
 * whose elements are independent (the results do not depend on the ranges). */
typedef void (*RangeTask)(void *ctx, size_t begin, size_t end);
void thread_pool_run_ranges(ThreadPool *pool, RangeTask fn, void *ctx, size_t n, int per_thread,
                            size_t min_range);

/* Every run is handed out to the workers: the pool never decides to run alone. For measurements
 * of what the threads can do (bench-engine's peak) and tests that need each run to reach the
 * workers. Call before the first run. */
void thread_pool_always_share(ThreadPool *pool);

/* For tests: a worker calls hook(arg) after it has read a new run's description and before it
 * claims any of its tasks, the point where a worker that the kernel leaves unscheduled is late.
 * Set it before the first run. */
void thread_pool_set_worker_hook(ThreadPool *pool, void (*hook)(void *arg), void *arg);

#endif
