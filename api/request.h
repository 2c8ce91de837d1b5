/* Request bodies of POST /generate, /v1/completions and /v1/chat/completions, parsed and
 * validated with cJSON
 * into plain structs. Knows nothing of sockets: the server hands it bytes and gets back either
 * a request or an ApiError with the HTTP status and a message that names the field. */
#ifndef GPTD_API_REQUEST_H
#define GPTD_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/generation.h"
#include "../model/tokenizer.h"

typedef enum { API_GENERATE, API_COMPLETIONS, API_CHAT } ApiKind;

typedef struct {
    int status;    /* 400, 413, 422, ... */
    char type[32]; /* "invalid_request_error", ... */
    char message[512];
} ApiError;

typedef struct {
    ApiKind kind;
    char *prompt; /* UTF-8, NUL-terminated; owned */
    size_t prompt_len;
    GenerationParams params;
    bool seed_given;
    bool stream;
    bool include_usage; /* OpenAI stream_options.include_usage */
    bool echo;          /* /v1/completions: the reply's text starts with the prompt */
    int n;              /* choices: the first with params.seed, choice i with seed + i */
} ApiRequest;

typedef struct {
    int max_tokens_cap;              /* a request may not ask for more */
    int default_max_tokens;          /* when it does not ask */
    int n_layer, n_head, block_size; /* the model's shape, for "attention" (0: not offered) */
    const Tokenizer *tok;            /* for logit_bias by character and token ids (NULL: ids only,
                                        unchecked against a vocabulary) */
} ApiLimits;

/* Choices one request may ask for ("n"); the daemon also holds it to its slots (--max-batch). */
#define API_MAX_CHOICES 128

/* Stop strings a request may give (the chat template adds one of its own). */
#define API_MAX_STOP 4

/* Alternatives per token the OpenAI endpoints report ("logprobs", "top_logprobs"), as vLLM's. */
#define API_MAX_OPENAI_LOGPROBS 20

/* The most attention weights one reply may carry (max_tokens x weights per token): 4 MB. */
#define API_MAX_ATTENTION_VALUES (1 << 20)

/* Parses body (len bytes, not NUL-terminated). random_seed is used when no seed is given.
 * Returns 0, or -1 with *e filled (status 400 for malformed JSON, wrong types or out-of-range
 * values). */
int api_parse_request(ApiKind kind, const char *body, size_t len, const ApiLimits *limits,
                      uint64_t random_seed, ApiRequest *req, ApiError *e);
void api_request_free(ApiRequest *req);

/* The body of another POST endpoint (/tokenize, /detokenize): a JSON object whose members are
 * all among `fields` and none given twice, checked as api_parse_request checks its own. Returns
 * the parsed tree (the caller frees it with cJSON_Delete), or NULL with *e filled (400). */
struct cJSON *api_parse_object(const char *body, size_t len, const char *const *fields,
                               size_t n_fields, ApiError *e);

/* Fills *e; returns -1 for `return api_error(...)`. */
int api_error(ApiError *e, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* {"error": {"type": ..., "message": ...}}; caller frees. */
char *api_error_json(const ApiError *e);

#endif
