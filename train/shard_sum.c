#include "shard_sum.h"

#include <string.h>

#include "../common/thread_pool.h"

size_t shard_sum_scratch(size_t n, int shards) {
    int depth = 0;
    for (int s = shards; s > 1; s = s - s / 2) depth++;
    return (size_t)depth * n;
}

static void add_into(float *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = out[i] + x[i];
}

/* out += x over the pool, in ranges (each element its own sum); a few thousand floats take less
 * than a hand-off. */
typedef struct {
    float *out;
    const float *x;
} AddJob;

static void add_range(void *ctx, size_t begin, size_t end) {
    const AddJob *j = ctx;
    add_into(j->out + begin, j->x + begin, end - begin);
}

static void add_over(ThreadPool *pool, float *out, const float *x, size_t n) {
    AddJob j = {out, x};
    thread_pool_run_ranges(pool, add_range, &j, n, 4, 4096);
}

/* out = (add ? out + : ) the sum of shards [lo, hi). Every level below uses the scratch after
 * its own n floats. */
static void sum_range(float *out, size_t n, int lo, int hi, ShardPartial partial, void *ctx,
                      float *scratch, bool add, ThreadPool *pool) {
    if (hi - lo == 1) {
        partial(ctx, lo, out, add);
        return;
    }
    if (hi - lo == 2 && !add) { /* c_lo + c_lo+1: the second chain is added as it is written */
        partial(ctx, lo, out, false);
        partial(ctx, lo + 1, out, true);
        return;
    }
    int mid = lo + (hi - lo) / 2;
    if (add) {
        sum_range(scratch, n, lo, hi, partial, ctx, scratch + n, false, pool);
        add_over(pool, out, scratch, n);
        return;
    }
    sum_range(out, n, lo, mid, partial, ctx, scratch, false, pool);
    sum_range(out, n, mid, hi, partial, ctx, scratch, true, pool);
}

void shard_sum(float *out, size_t n, int shards, ShardPartial partial, void *ctx, float *scratch,
               ThreadPool *pool) {
    sum_range(out, n, 0, shards, partial, ctx, scratch, false, pool);
}

void shard_sum_vectors(float *vectors, size_t n, size_t stride, int count) {
    /* With count a power of two, every node's halves are equal: pairs, then pairs of pairs. */
    for (int width = 1; width < count; width *= 2)
        for (int i = 0; i + width < count; i += 2 * width)
            add_into(vectors + (size_t)i * stride, vectors + (size_t)(i + width) * stride, n);
}
