/* JSON bodies of replies and of server-sent-event payloads, for /generate and the
 * OpenAI-compatible /v1/completions. Each function returns a malloc'd NUL-terminated string
 * (NULL when out of memory). SSE framing ("data: ...\n\n") is the server's job. */
#ifndef GPTD_API_RESPONSE_H
#define GPTD_API_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "../model/attention_view.h"

/* One generated token with the attention weights its query used ("attention" in a request). */
typedef struct {
    int index; /* of the token among the generated ones */
    const char *text;
    size_t text_len;
    float logprob;
    int position;        /* its position: the prompt's characters, then the generated ones */
    int start;           /* position of the first weight (the window's oldest token) */
    int visible;         /* positions start .. start + visible - 1 */
    const float *values; /* attention_view_reduce's layout */
    int n_values;
} ApiTokenAttention;

typedef struct {
    const char *id;
    const char *model; /* name reported to OpenAI clients */
    long long created; /* unix seconds */
    const char *text;  /* generated text (UTF-8) */
    size_t text_len;
    const char *finish_reason; /* "length", "stop", ... */
    uint64_t seed;
    int prompt_tokens, completion_tokens, prompt_dropped;
    double queue_ms, prefill_ms, decode_ms, tokens_per_second;
    const AttentionView *view; /* NULL, or what "attention" asked for: tokens then holds */
    const ApiTokenAttention *tokens;
    int n_tokens;
} ApiResult;

char *api_generate_reply(const ApiResult *r);
/* {"index", "text", "logprob"} for one streamed token (text may be several characters when a
 * held-back stop-string prefix is released); with attention (view non-NULL), one token and its
 * "attention": {"position", "start", "weights"}. */
char *api_generate_token_event(int index, const char *text, size_t len, float logprob,
                               const AttentionView *view, const ApiTokenAttention *att);
/* The final event: finish_reason, seed, usage, timing. */
char *api_generate_final_event(const ApiResult *r);

char *api_completion_reply(const ApiResult *r);
/* One streamed chunk: choices[0].text, and finish_reason (NULL while streaming). */
char *api_completion_chunk(const ApiResult *r, const char *text, size_t len,
                           const char *finish_reason);
/* The usage chunk of stream_options.include_usage: empty choices, usage filled. */
char *api_completion_usage_chunk(const ApiResult *r);

#endif
