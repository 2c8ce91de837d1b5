#include "response.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"

/* text as a JSON string, escaped as cJSON escapes ("\u0000" included). */
static char *json_string(const char *text, size_t len) {
    Buf b;
    buf_init(&b, (size_t)-1);
    buf_append(&b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                                      : NULL;
        if (esc)
            buf_append(&b, esc, 2);
        else if (c < 0x20)
            buf_printf(&b, "\\u%04x", c);
        else
            buf_append(&b, &text[i], 1);
    }
    buf_append(&b, "\"", 1);
    return buf_take(&b);
}

/* cJSON wants NUL-terminated strings; generated text arrives as (pointer, length), and may hold
 * a NUL (GPT-2 has a token for byte 0): then the string is escaped here. */
static cJSON *add_text(cJSON *obj, const char *key, const char *text, size_t len) {
    if (memchr(text, '\0', len)) {
        char *raw = json_string(text, len);
        cJSON *item = raw ? cJSON_AddRawToObject(obj, key, raw) : NULL;
        free(raw);
        return item;
    }
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

/* One token's weights as JSON: n_head rows of block_size weights, about 14 bytes each (under
 * 200 KB for a GPT-2-sized model); the cap only guards against a corrupt view. */
#define WEIGHTS_JSON_MAX ((size_t)8 << 20)

/* The weights as raw JSON, written by hand: cJSON would print each with 17 digits, and a reply
 * can carry a million of them. Six significant digits keep a row's sum within 1e-5 of 1.
 *   one row:            [w, ...]                      (top_k: [[position, w], ...])
 *   every head ("all"): [[w, ...], [w, ...], ...]     (top_k: [[[position, w], ...], ...]) */
static char *weights_json(const AttentionView *v, const ApiTokenAttention *a) {
    int rows = attention_view_rows(v), per_row = rows ? a->n_values / rows : 0;
    Buf t;
    buf_init(&t, WEIGHTS_JSON_MAX);
    if (rows > 1) buf_append(&t, "[", 1);
    for (int r = 0; r < rows; r++) {
        buf_append(&t, r ? ",[" : "[", r ? 2 : 1);
        const float *w = a->values + (size_t)r * per_row;
        for (int i = 0; i < per_row; i++) {
            if (!v->top_k)
                buf_printf(&t, i ? ",%.6g" : "%.6g", w[i]);
            else if (i % 2 == 0)
                buf_printf(&t, i ? ",[%.0f," : "[%.0f,", w[i]);
            else
                buf_printf(&t, "%.6g]", w[i]);
        }
        buf_append(&t, "]", 1);
    }
    if (rows > 1) buf_append(&t, "]", 1);
    return buf_take(&t); /* NULL when out of memory */
}

static bool add_attention(cJSON *obj, const AttentionView *v, const ApiTokenAttention *a) {
    cJSON *att = cJSON_AddObjectToObject(obj, "attention");
    char *weights = weights_json(v, a);
    if (!att || !weights) {
        free(weights);
        return false;
    }
    cJSON_AddNumberToObject(att, "position", a->position);
    cJSON_AddNumberToObject(att, "start", a->start);
    cJSON_AddRawToObject(att, "weights", weights);
    free(weights);
    return true;
}

/* "attention": {"layer", "head", "top_k"?, "tokens": [{"index", "text", "logprob",
 * "attention": {...}}, ...]} */
static void add_attention_tokens(cJSON *root, const ApiResult *r) {
    const AttentionView *v = r->view;
    cJSON *att = cJSON_AddObjectToObject(root, "attention");
    cJSON_AddNumberToObject(att, "layer", v->layer);
    if (v->form == ATTENTION_HEAD)
        cJSON_AddNumberToObject(att, "head", v->head);
    else
        cJSON_AddStringToObject(att, "head", v->form == ATTENTION_MEAN ? "mean" : "all");
    if (v->top_k) cJSON_AddNumberToObject(att, "top_k", v->top_k);
    cJSON *tokens = cJSON_AddArrayToObject(att, "tokens");
    for (int i = 0; i < r->n_tokens; i++) {
        const ApiTokenAttention *a = &r->tokens[i];
        cJSON *tok = cJSON_CreateObject();
        cJSON_AddItemToArray(tokens, tok);
        cJSON_AddNumberToObject(tok, "index", a->index);
        add_text(tok, "text", a->text, a->text_len);
        cJSON_AddNumberToObject(tok, "logprob", a->logprob);
        add_attention(tok, v, a);
    }
}

char *api_generate_reply(const ApiResult *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    add_text(root, "text", r->text, r->text_len);
    cJSON_AddStringToObject(root, "finish_reason", r->finish_reason);
    add_seed(root, r->seed);
    add_usage_and_timing(root, r);
    if (r->view) add_attention_tokens(root, r);
    return print_and_free(root);
}

char *api_generate_token_event(int index, const char *text, size_t len, float logprob,
                               const AttentionView *view, const ApiTokenAttention *att) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "index", index);
    add_text(root, "text", text, len);
    cJSON_AddNumberToObject(root, "logprob", logprob);
    if (view && att && !add_attention(root, view, att)) {
        cJSON_Delete(root);
        return NULL;
    }
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
