/* JSON bodies of the endpoints that describe the server rather than generate: /health,
 * /v1/models and /info. Plain values in; each function returns a malloc'd NUL-terminated string
 * (NULL when out of memory). Which HTTP status goes with them is the server's choice. */
#ifndef GPTD_API_INFO_H
#define GPTD_API_INFO_H

#include <stddef.h>

#include "../model/gpt.h"
#include "../model/tokenizer.h"

typedef enum { API_LOADING = 0, API_READY, API_DRAINING } ApiServerState;

/* {"status": "loading" | "ok" | "draining"} */
char *api_health_json(ApiServerState state);

/* The OpenAI model list, with the one model served. */
char *api_models_json(const char *model_name);

typedef struct {
    const char *model_name;
    ApiServerState state;
    const GPTConfig *config; /* NULL while loading: no "config", "context" or "kernels" */
    size_t n_params;
    const char *tokenizer;     /* its kind: "char" or "gpt2-bpe" */
    int tokenizer_size;        /* its tokens (a BPE model's vocab_size may be padded past it) */
    const char *context_shift; /* "exact" or "keep" */
    int context_keep;          /* tokens a full window keeps */
    const char *kernels;
    const char *system_fingerprint; /* model/fingerprint.h */
    /* "vocabulary": its kind and size, and for a character model every token in id order (a
     * BPE model's 50,257 would swell every /info: /tokenize shows those) */
    const Tokenizer *vocabulary;
    int max_batch, max_queue, max_tokens, body_limit, prefill_budget, threads;
    double body_memory_bytes, timeout_s;
    const char *threads_source; /* why that many threads (NULL: not said) */
    const char *version, *compiled;
} ApiInfo;

char *api_info_json(const ApiInfo *info);

#endif
