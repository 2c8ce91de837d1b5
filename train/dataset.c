#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *dataset_default_path(void) {
    const char *env = getenv("GPTD_DATA");
    if (env && *env) return env;
    static const char *const candidates[] = {"../shared/data/tinyshakespeare.txt",
                                             "data/tinyshakespeare.txt"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
        if (access(candidates[i], R_OK) == 0) return candidates[i];
    return candidates[1];
}

static char *read_file(const char *path, size_t *len, Error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        error_set(err, "%s: not a regular file", path);
        return NULL;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fclose(f);
        error_set(err, "%s: out of memory", path);
        return NULL;
    }
    *len = fread(buf, 1, (size_t)sb.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        error_set(err, "%s: read error", path);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

int dataset_load(Dataset *d, const char *path, Tokenizer *tok, Error *err) {
    memset(d, 0, sizeof *d);
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    int rc = -1;
    if (len == 0) {
        error_set(err, "%s: the data file is empty", path);
        goto done;
    }
    bool built = false;
    if (tok->vocab_size == 0) {
        if (tokenizer_build(tok, text, len, err)) goto wrap;
        built = true;
    }
    d->tokens = malloc(len * sizeof *d->tokens); /* tokens (characters or BPE) <= bytes */
    if (!d->tokens) {
        error_set(err, "out of memory");
        goto done;
    }
    if (tokenizer_encode(tok, text, len, d->tokens, len, &d->n, err)) {
        if (built) tokenizer_free(tok);
        free(d->tokens);
        d->tokens = NULL;
        goto wrap;
    }
    d->n_train = d->n * 9 / 10;
    rc = 0;
    goto done;
wrap:
    error_wrap(err, "%s", path);
done:
    free(text);
    return rc;
}

void dataset_free(Dataset *d) {
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

int dataset_check(const Dataset *d, int T, Error *err) {
    size_t n_val = d->n - d->n_train;
    if (d->n_train < (size_t)T + 1 || n_val < (size_t)T + 1)
        return error_set(err,
                         "the data is too short for one batch: %zu characters give %zu train and "
                         "%zu validation tokens, each split needs at least block_size + 1 = %d",
                         d->n, d->n_train, n_val, T + 1);
    return 0;
}

void dataset_batch(const Dataset *d, bool val, int B, int T, Rng *rng, int *x, int *y) {
    const int *base = val ? d->tokens + d->n_train : d->tokens;
    size_t n = val ? d->n - d->n_train : d->n_train;
    for (int b = 0; b < B; b++) {
        size_t start = rng_below(rng, n - (size_t)T);
        memcpy(x + (size_t)b * T, base + start, (size_t)T * sizeof *x);
        memcpy(y + (size_t)b * T, base + start + 1, (size_t)T * sizeof *y);
    }
}
