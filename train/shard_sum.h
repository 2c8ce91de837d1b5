/* Gradients summed over a batch in one fixed order, so that the sum does not depend on how the
 * batch was split: over threads, or over the ranks of a data-parallel run (data_parallel.h).
 *
 * A batch's sequences are its shards. A gradient is the sum of one partial per shard (each a chain
 * over that sequence's rows in order), added in a binary tree that halves the range of shards:
 * [lo, hi) is [lo, mid) + [mid, hi), mid = lo + (hi - lo) / 2. When R ranks, R a power of two
 * dividing the shards, each take a contiguous R-th, each rank's share is a node of that tree, and
 * adding the ranks' sums in the same tree over R gives the whole batch's sum, bit for bit. */
#ifndef GPTD_SHARD_SUM_H
#define GPTD_SHARD_SUM_H

#include <stdbool.h>
#include <stddef.h>

/* Writes shard s's partial (n floats) into out, or adds it to what out holds when add: the
 * partial is computed whole and rounded, then added. */
typedef void (*ShardPartial)(void *ctx, int shard, float *out, bool add);

/* Floats of scratch shard_sum needs for n-float partials over `shards` shards. */
size_t shard_sum_scratch(size_t n, int shards);

struct ThreadPool;
/* out (n) = the tree sum of the partials of shards [0, shards). The sums of two nodes run over
 * the pool (NULL: the caller alone), in ranges of elements. */
void shard_sum(float *out, size_t n, int shards, ShardPartial partial, void *ctx, float *scratch,
               struct ThreadPool *pool);

/* The top of the same tree: vectors[i] (n floats, stride apart) holds the sum of the i-th of
 * `count` equal runs of shards (count a power of two); leaves the sum of all in vectors[0]. */
void shard_sum_vectors(float *vectors, size_t n, size_t stride, int count);

#endif
