/* libFuzzer harness: the checkpoint loader on arbitrary bytes (header length, JSON header,
 * metadata, dtypes, shapes, offsets, values). A file either loads into a model whose every
 * weight is finite, or is refused with a message; it never crashes, reads out of bounds or
 * leaks. The bytes are served from a memfd so the real path-based loader runs. */
#define _GNU_SOURCE
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../model/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("checkpoint", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    GPT model;
    Tokenizer tok;
    Error err;
    if (checkpoint_load(path, &model, &tok, NULL, NULL, &err) == 0) {
        assert(model.config.vocab_size == tok.vocab_size);
        for (size_t i = 0; i < model.n_params; i++) assert(isfinite(model.param_memory[i]));
        gpt_free(&model);
        tokenizer_free(&tok);
    } else {
        assert(err.message[0] != '\0');
    }
    close(fd);
    return 0;
}
