/* JSON bodies of replies and of server-sent-event payloads, for /generate and the
 * OpenAI-compatible /v1/completions. Each function returns a malloc'd NUL-terminated string
 * (NULL when out of memory). SSE framing ("data: ...\n\n") is the server's job. */
#ifndef GPTD_API_RESPONSE_H
#define GPTD_API_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/attention_view.h"
#include "../model/tokenizer.h"

/* One reported token: a generated one (with "logprobs" or "attention"), or a prompt token scored
 * for "echo". */
typedef struct {
    int index; /* among the generated tokens; for a prompt token, among the prompt's */
    int id;    /* token id */
    bool prompt;
    const char *text; /* the text it released (whole characters; may be empty or several) */
    size_t text_len;
    float logprob; /* as sampled; a prompt token's under the model */
    /* With "logprobs": its log-probability under the adjusted logits at temperature 1, and the
     * n_top likeliest tokens' */
    float adjusted_logprob;
    const int *top_ids;
    const float *top_logprobs;
    int n_top;
    /* With "attention": */
    int position;        /* its position: the prompt's characters, then the generated ones */
    int start;           /* position of the first weight (the window's oldest token) */
    int visible;         /* positions start .. start + visible - 1 */
    const float *values; /* attention_view_reduce's layout */
    int n_values;
} ApiToken;

typedef struct {
    int index; /* the choice ("n") */
    const char *id;
    const char *model; /* name reported to OpenAI clients */
    long long created; /* unix seconds */
    const char *text;  /* generated text (UTF-8) */
    size_t text_len;
    const char *echo; /* NULL, or the prompt, to put before the text (echo) */
    size_t echo_len;
    const char *finish_reason;      /* "length", "stop", ... */
    const char *system_fingerprint; /* model/fingerprint.h; in every reply and event */
    uint64_t seed;
    int prompt_tokens, completion_tokens, prompt_dropped;
    double queue_ms, prefill_ms, decode_ms, tokens_per_second;
    const Tokenizer *tok;      /* for the text of a token id */
    const AttentionView *view; /* NULL, or what "attention" asked for */
    bool logprobs;             /* "logprobs" asked for */
    bool chat;                 /* a /v1/chat/completions reply */
    const ApiToken *tokens;    /* with view or logprobs: the scored prompt's, then generated */
    int n_prompt_scored, n_tokens;
} ApiResult;

char *api_generate_reply(const ApiResult *r);
/* {"index", "text", "logprob", "system_fingerprint"} for one streamed token (text may be several
 * characters when a held-back stop-string prefix is released); with a reported token (tok
 * non-NULL), that token's "top_logprobs" and "attention" as asked. */
char *api_generate_token_event(const ApiResult *r, int index, const char *text, size_t len,
                               float logprob, const ApiToken *tok);
/* The final event: finish_reason, seed, usage, timing. */
char *api_generate_final_event(const ApiResult *r);

/* The OpenAI replies take every choice (n of them, index 0..n-1); usage counts the prompt once
 * and the tokens of all. */
char *api_completion_reply(const ApiResult *choices, int n);
/* One streamed chunk: choices[0].text, with its token's logprobs when one is given, and
 * finish_reason (NULL while streaming). */
char *api_completion_chunk(const ApiResult *r, const char *text, size_t len, const ApiToken *tok,
                           const char *finish_reason);
/* The usage chunk of stream_options.include_usage: empty choices, usage filled (both APIs). */
char *api_openai_usage_chunk(const ApiResult *choices, int n);

/* /v1/chat/completions: the reply, and its chunks: the first with delta.role, then content
 * (with logprobs when tok is given), then the finish. */
char *api_chat_reply(const ApiResult *choices, int n);
char *api_chat_chunk(const ApiResult *r, bool first, const char *text, size_t len,
                     const ApiToken *tok, const char *finish_reason);

#endif
