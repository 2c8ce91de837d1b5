/* The training text as tokens, split 90/10 into train and validation (as the lecture), and
 * random batches drawn from either split. */
#ifndef GPTD_DATASET_H
#define GPTD_DATASET_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/error.h"
#include "../common/rng.h"
#include "../model/tokenizer.h"

typedef struct {
    int *tokens;
    size_t n;       /* total tokens */
    size_t n_train; /* the first 90% */
} Dataset;

/* Where the training text is looked for: $GPTD_DATA, else ../shared/data/tinyshakespeare.txt,
 * else data/tinyshakespeare.txt (fetched by `make data`). */
const char *dataset_default_path(void);

/* Reads and encodes path. If tok is empty (vocab_size 0) a character vocabulary is built from the
 * text;
 * otherwise the text must fit the given vocabulary (resuming). */
int dataset_load(Dataset *d, const char *path, Tokenizer *tok, Error *err);
void dataset_free(Dataset *d);

/* Both splits must hold at least one window of T + 1 tokens. */
int dataset_check(const Dataset *d, int T, Error *err);

/* x, y (B, T): B random windows of the split, y shifted by one. */
void dataset_batch(const Dataset *d, bool val, int B, int T, Rng *rng, int *x, int *y);

#endif
