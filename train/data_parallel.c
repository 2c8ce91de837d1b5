#include "data_parallel.h"

#include <stdlib.h>
#include <string.h>

#include "shard_sum.h"

#ifdef GPTD_MPI
#include <limits.h>
#include <mpi.h>
#include <stdio.h>

int data_parallel_start(DataParallel *dp, int *argc, char ***argv, Error *err) {
    memset(dp, 0, sizeof *dp);
    if (MPI_Init(argc, argv) != MPI_SUCCESS) return error_set(err, "MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &dp->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dp->size);
    return 0;
}

void data_parallel_end(DataParallel *dp) {
    free(dp->gathered);
    dp->gathered = NULL;
    MPI_Finalize();
}

void data_parallel_combine(void *ctx, float *v, size_t n) {
    DataParallel *dp = ctx;
    if (dp->size == 1) return;
    if (dp->n != n) {
        free(dp->gathered);
        dp->gathered = n <= INT_MAX ? malloc((size_t)dp->size * n * sizeof(float)) : NULL;
        dp->n = n;
        /* Without them every rank would go on with its own gradients: stop the run. */
        if (!dp->gathered) {
            fprintf(stderr, "gpt-train: no room to gather %zu gradients from %d ranks\n", n,
                    dp->size);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
    }
    MPI_Allgather(v, (int)n, MPI_FLOAT, dp->gathered, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    shard_sum_vectors(dp->gathered, n, n, dp->size);
    memcpy(v, dp->gathered, n * sizeof(float));
}

void data_parallel_abort(DataParallel *dp, int code) {
    if (dp->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

bool data_parallel_any(DataParallel *dp, bool flag) {
    int mine = flag, any = 0;
    if (dp->size == 1) return flag;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any != 0;
}

int data_parallel_share(DataParallel *dp, float *values, int n, int status) {
    if (dp->size == 1) return status;
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (n > 0) MPI_Bcast(values, n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    return status;
}

#else

/* Environment variables by which mpirun (Open MPI, MPICH and others through PMI) tells a process
 * how many copies it started. */
static int launched_copies(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 1) return atoi(v);
    }
    return 1;
}

int data_parallel_start(DataParallel *dp, int *argc, char ***argv, Error *err) {
    (void)argc;
    (void)argv;
    memset(dp, 0, sizeof *dp);
    dp->size = 1;
    int copies = launched_copies();
    if (copies > 1)
        return error_set(err,
                         "mpirun started %d copies, but this gpt-train was built without MPI: each "
                         "would train alone and write the same files. Build bin/gpt-train-mpi "
                         "(make gpt-train-mpi, with Open MPI: apt-get install openmpi-bin "
                         "libopenmpi-dev) and start that",
                         copies);
    return 0;
}

void data_parallel_end(DataParallel *dp) { (void)dp; }

void data_parallel_combine(void *ctx, float *v, size_t n) {
    (void)ctx;
    (void)v;
    (void)n;
}

bool data_parallel_any(DataParallel *dp, bool flag) {
    (void)dp;
    return flag;
}

void data_parallel_abort(DataParallel *dp, int code) {
    (void)dp;
    (void)code;
}

int data_parallel_share(DataParallel *dp, float *values, int n, int status) {
    (void)dp;
    (void)values;
    (void)n;
    return status;
}

#endif

int data_parallel_check_batch(const DataParallel *dp, int batch, Error *err) {
    int n = dp->size;
    if ((n & (n - 1)) != 0)
        return error_set(err,
                         "%d ranks: data-parallel training needs a power of two of them (1, 2, "
                         "4, ...), so that the gradients add up in the same order as in one "
                         "process",
                         n);
    if (batch % n != 0)
        return error_set(err, "--batch-size %d does not divide over %d ranks: use a multiple of %d",
                         batch, n, n);
    return 0;
}
