/* A fixed pool of worker threads that run one parallel-for at a time. The calling thread takes
 * part, so a pool of n threads has n - 1 workers. After a run, workers poll for the next one for
 * spin_us microseconds and then sleep on a condition variable, so an idle pool costs no CPU; the
 * caller polls the same time for the workers to finish. Polling pays where runs follow each other
 * within microseconds (the engine's products); where another library's threads run between runs
 * (OpenBLAS in the trainer) a short spin_us keeps the pool from stealing their cores. */
#ifndef GPTD_THREAD_POOL_H
#define GPTD_THREAD_POOL_H

#include "error.h"

typedef struct ThreadPool ThreadPool;

/* fn(ctx, task) for task in [0, n_tasks); tasks must be independent. */
typedef void (*PoolTask)(void *ctx, int task);

/* n_threads >= 1 (1: everything runs on the caller); spin_us >= 0. */
int thread_pool_create(ThreadPool **pool, int n_threads, int spin_us, Error *err);
void thread_pool_destroy(ThreadPool *pool);
int thread_pool_size(const ThreadPool *pool);

/* Runs all tasks and returns when every one has finished. One caller at a time. */
void thread_pool_run(ThreadPool *pool, PoolTask fn, void *ctx, int n_tasks);

#endif
