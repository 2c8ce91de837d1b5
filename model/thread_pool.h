/* A fixed pool of worker threads that run one parallel-for at a time. The calling thread takes
 * part, so a pool of n threads has n - 1 workers. Idle workers sleep on a condition variable
 * (they never spin), so they do not steal cores from OpenBLAS or the HTTP threads between
 * phases. */
#ifndef GPTD_THREAD_POOL_H
#define GPTD_THREAD_POOL_H

#include "error.h"

typedef struct ThreadPool ThreadPool;

/* fn(ctx, task) for task in [0, n_tasks); tasks must be independent. */
typedef void (*PoolTask)(void *ctx, int task);

/* n_threads >= 1 (1: everything runs on the caller). */
int thread_pool_create(ThreadPool **pool, int n_threads, Error *err);
void thread_pool_destroy(ThreadPool *pool);
int thread_pool_size(const ThreadPool *pool);

/* Runs all tasks and returns when every one has finished. One caller at a time. */
void thread_pool_run(ThreadPool *pool, PoolTask fn, void *ctx, int n_tasks);

#endif
