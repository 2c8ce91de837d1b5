#include "response.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cJSON wants NUL-terminated strings; generated text arrives as (pointer, length). */
static cJSON *add_text(cJSON *obj, const char *key, const char *text, size_t len) {
    char *s = malloc(len + 1);
    if (!s) return NULL;
    memcpy(s, text, len);
    s[len] = '\0';
    cJSON *item = cJSON_AddStringToObject(obj, key, s);
    free(s);
    return item;
}

static char *print_and_free(cJSON *root) {
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* Seeds go out as exact integers: a double would print large ones rounded, and a rounded seed
 * does not reproduce the text. */
static void add_seed(cJSON *obj, uint64_t seed) {
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRIu64, seed);
    cJSON_AddRawToObject(obj, "seed", digits);
}

static double round3(double x) { return round(x * 1000.0) / 1000.0; }

static void add_usage_and_timing(cJSON *root, const ApiResult *r) {
    cJSON *usage = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", r->completion_tokens);
    cJSON *timing = cJSON_AddObjectToObject(root, "timing");
    cJSON_AddNumberToObject(timing, "queue_ms", round3(r->queue_ms));
    cJSON_AddNumberToObject(timing, "prefill_ms", round3(r->prefill_ms));
    cJSON_AddNumberToObject(timing, "decode_ms", round3(r->decode_ms));
    cJSON_AddNumberToObject(timing, "tokens_per_second", round3(r->tokens_per_second));
    if (r->prompt_dropped > 0) /* the prompt was longer than the context */
        cJSON_AddNumberToObject(root, "prompt_truncated_tokens", r->prompt_dropped);
}

char *api_generate_reply(const ApiResult *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    add_text(root, "text", r->text, r->text_len);
    cJSON_AddStringToObject(root, "finish_reason", r->finish_reason);
    add_seed(root, r->seed);
    add_usage_and_timing(root, r);
    return print_and_free(root);
}

char *api_generate_token_event(int index, const char *text, size_t len, float logprob) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "index", index);
    add_text(root, "text", text, len);
    cJSON_AddNumberToObject(root, "logprob", logprob);
    return print_and_free(root);
}

char *api_generate_final_event(const ApiResult *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "finish_reason", r->finish_reason);
    add_seed(root, r->seed);
    add_usage_and_timing(root, r);
    return print_and_free(root);
}

static cJSON *completion_head(const ApiResult *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "object", "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)r->created);
    cJSON_AddStringToObject(root, "model", r->model);
    return root;
}

static void add_choice(cJSON *root, const char *text, size_t len, const char *finish_reason) {
    cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *c = cJSON_CreateObject();
    add_text(c, "text", text, len);
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish_reason)
        cJSON_AddStringToObject(c, "finish_reason", finish_reason);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
}

static void add_openai_usage(cJSON *root, const ApiResult *r) {
    cJSON *usage = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", r->completion_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", r->prompt_tokens + r->completion_tokens);
}

char *api_completion_reply(const ApiResult *r) {
    cJSON *root = completion_head(r);
    add_choice(root, r->text, r->text_len, r->finish_reason);
    add_openai_usage(root, r);
    return print_and_free(root);
}

char *api_completion_chunk(const ApiResult *r, const char *text, size_t len,
                           const char *finish_reason) {
    cJSON *root = completion_head(r);
    add_choice(root, text, len, finish_reason);
    return print_and_free(root);
}

char *api_completion_usage_chunk(const ApiResult *r) {
    cJSON *root = completion_head(r);
    cJSON_AddArrayToObject(root, "choices");
    add_openai_usage(root, r);
    return print_and_free(root);
}
