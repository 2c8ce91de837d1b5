/* Data-parallel training: N copies of gpt-train, started by mpirun, each take a contiguous N-th of
 * every batch's sequences; after each backward pass they exchange their gradient sums and add
 * them in shard_sum.h's tree, so every rank holds the same gradients, takes the same AdamW step,
 * and the run gives the same losses and checkpoint bytes as one process with the same batch.
 * Rank 0 evaluates, logs and writes checkpoints.
 *
 * Built with MPI (Open MPI) only for bin/gpt-train-mpi (make gpt-train-mpi, which compiles this
 * file with GPTD_MPI); bin/gpt-train has the one-process version, which refuses to run as one of
 * several copies started by mpirun. */
#ifndef GPTD_DATA_PARALLEL_H
#define GPTD_DATA_PARALLEL_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/error.h"

typedef struct DataParallel {
    int rank, size;
    float *gathered; /* size vectors of n floats: what every rank sent */
    size_t n;
} DataParallel;

/* Joins the run (MPI_Init under mpirun; one process otherwise). */
int data_parallel_start(DataParallel *dp, int *argc, char ***argv, Error *err);
void data_parallel_end(DataParallel *dp);

/* Whether a batch of `batch` sequences splits over the ranks: a power of two of them that
 * divides it, so that each rank's share is a node of the gradients' tree. */
int data_parallel_check_batch(const DataParallel *dp, int batch, Error *err);

/* GradCombine (gpt_backprop.h): v (n floats) becomes the tree sum of every rank's v. */
void data_parallel_combine(void *dp, float *v, size_t n);

/* Whether any rank passes true (a stop signal seen by some ranks only). */
bool data_parallel_any(DataParallel *dp, bool flag);

/* Ends every rank of the run with `code` (one rank's error would leave the others waiting). */
void data_parallel_abort(DataParallel *dp, int code);

/* Rank 0's floats (and its status, 0 or -1) to every rank. */
int data_parallel_share(DataParallel *dp, float *values, int n, int status);

#endif
