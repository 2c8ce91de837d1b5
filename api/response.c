#include "response.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/utf8.h"
#include "json_text.h"

/* text as a JSON string, escaped as cJSON escapes ("\u0000" included). */
static char *json_string(const char *text, size_t len) {
    Buf b;
    buf_init(&b, (size_t)-1);
    json_append_string(&b, text, len);
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

/* OpenAI's field: which weights and numerics made the reply (model/fingerprint.h). */
static void add_fingerprint(cJSON *obj, const char *fingerprint) {
    if (fingerprint) cJSON_AddStringToObject(obj, "system_fingerprint", fingerprint);
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
static char *weights_json(const AttentionView *v, const ApiToken *a) {
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

static bool add_attention(cJSON *obj, const AttentionView *v, const ApiToken *a) {
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

/* ---- tokens and their log-probabilities ---- */

/* A token id's text as valid UTF-8 (a BPE token may hold part of a character: that part shows as
 * U+FFFD); out needs 3 x max_piece + 4 bytes. Returns its length. */
static size_t token_text(const Tokenizer *tok, int id, char *out) {
    size_t len = 0;
    const char *piece = tokenizer_piece(tok, id, &len);
    Utf8Stream u = {0};
    size_t n = piece ? utf8_stream_write(&u, piece, len, out) : 0;
    return n + utf8_stream_end(&u, out + n);
}

/* A token's text as a cJSON string, for keys and "token" fields. */
static char *token_string(const Tokenizer *tok, int id) {
    char *s = malloc(3 * (size_t)tok->max_piece + 8);
    if (s) s[token_text(tok, id, s)] = '\0';
    return s;
}

/* The text a reported token stands for in a reply: a generated one's released text, a prompt
 * one's piece (made valid UTF-8). */
static char *record_string(const ApiResult *r, const ApiToken *t) {
    if (t->prompt) return token_string(r->tok, t->id);
    char *s = malloc(t->text_len + 1);
    if (s) {
        memcpy(s, t->text, t->text_len);
        s[t->text_len] = '\0';
    }
    return s;
}

/* The log-probability an OpenAI reply gives a token: under the adjusted logits at temperature 1
 * for a generated one, the model's for a prompt one (null for the first, which nothing
 * predicts). */
static float reported_logprob(const ApiToken *t) {
    return t->prompt ? t->logprob : t->adjusted_logprob;
}

/* /generate's [{"token": id, "text", "logprob"}, ...] of a token's alternatives. */
static void add_generate_top(cJSON *obj, const ApiResult *r, const ApiToken *t) {
    cJSON *top = cJSON_AddArrayToObject(obj, "top_logprobs");
    for (int i = 0; i < t->n_top; i++) {
        cJSON *alt = cJSON_CreateObject();
        char *text = token_string(r->tok, t->top_ids[i]);
        cJSON_AddNumberToObject(alt, "token", t->top_ids[i]);
        cJSON_AddStringToObject(alt, "text", text ? text : "");
        cJSON_AddNumberToObject(alt, "logprob", t->top_logprobs[i]);
        cJSON_AddItemToArray(top, alt);
        free(text);
    }
}

/* {"index", "text", "logprob"} of a generated token, appended to list; returned to add to. */
static cJSON *generated_token(cJSON *list, const ApiToken *t, float logprob) {
    cJSON *tok = cJSON_CreateObject();
    cJSON_AddItemToArray(list, tok);
    cJSON_AddNumberToObject(tok, "index", t->index);
    add_text(tok, "text", t->text, t->text_len);
    cJSON_AddNumberToObject(tok, "logprob", logprob);
    return tok;
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
    for (int i = r->n_prompt_scored; i < r->n_tokens; i++)
        add_attention(generated_token(tokens, &r->tokens[i], r->tokens[i].logprob), v,
                      &r->tokens[i]);
}

/* /generate's "logprobs": [{"index", "text", "logprob", "top_logprobs"}, ...], one a token. */
static void add_generate_logprobs(cJSON *root, const ApiResult *r) {
    cJSON *list = cJSON_AddArrayToObject(root, "logprobs");
    for (int i = r->n_prompt_scored; i < r->n_tokens; i++)
        add_generate_top(generated_token(list, &r->tokens[i], r->tokens[i].adjusted_logprob), r,
                         &r->tokens[i]);
}

char *api_generate_reply(const ApiResult *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    add_text(root, "text", r->text, r->text_len);
    cJSON_AddStringToObject(root, "finish_reason", r->finish_reason);
    add_seed(root, r->seed);
    add_fingerprint(root, r->system_fingerprint);
    add_usage_and_timing(root, r);
    if (r->logprobs) add_generate_logprobs(root, r);
    if (r->view) add_attention_tokens(root, r);
    return print_and_free(root);
}

char *api_generate_token_event(const ApiResult *r, int index, const char *text, size_t len,
                               float logprob, const ApiToken *tok) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "index", index);
    add_text(root, "text", text, len);
    cJSON_AddNumberToObject(root, "logprob", logprob);
    add_fingerprint(root, r->system_fingerprint);
    if (tok && r->logprobs) {
        cJSON_AddNumberToObject(root, "adjusted_logprob", tok->adjusted_logprob);
        add_generate_top(root, r, tok);
    }
    if (tok && r->view && !add_attention(root, r->view, tok)) {
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
    add_fingerprint(root, r->system_fingerprint);
    add_usage_and_timing(root, r);
    return print_and_free(root);
}

static cJSON *completion_head(const ApiResult *r, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)r->created);
    cJSON_AddStringToObject(root, "model", r->model);
    add_fingerprint(root, r->system_fingerprint);
    return root;
}

/* OpenAI's completions "logprobs": {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
 * over tokens [from, to) of r; text_offset counts characters of the reply's text from `offset`. */
static cJSON *completion_logprobs(const ApiResult *r, int from, int to, long offset) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *logprobs = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *offsets = cJSON_AddArrayToObject(lp, "text_offset");
    for (int i = from; i < to; i++) {
        const ApiToken *t = &r->tokens[i];
        char *text = record_string(r, t);
        if (!text) continue;
        cJSON_AddItemToArray(tokens, cJSON_CreateString(text));
        if (t->prompt && t->index == 0) { /* nothing predicts the first token */
            cJSON_AddItemToArray(logprobs, cJSON_CreateNull());
            cJSON_AddItemToArray(top, cJSON_CreateNull());
            cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
            offset += (long)utf8_chars(text, strlen(text));
            free(text);
            continue;
        }
        cJSON_AddItemToArray(logprobs, cJSON_CreateNumber(reported_logprob(t)));
        cJSON *alts = cJSON_CreateObject();
        for (int k = 0; k < t->n_top; k++) {
            char *key = token_string(r->tok, t->top_ids[k]);
            if (key && !cJSON_GetObjectItemCaseSensitive(alts, key))
                cJSON_AddNumberToObject(alts, key, t->top_logprobs[k]);
            free(key);
        }
        cJSON_AddItemToArray(top, alts);
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        offset += (long)utf8_chars(text, strlen(text));
        free(text);
    }
    return lp;
}

/* The "choices" array of root, made on first use. */
static cJSON *choices_of(cJSON *root) {
    cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "choices");
    return a ? a : cJSON_AddArrayToObject(root, "choices");
}

/* A choice's last members, "logprobs" and "finish_reason" (null when absent), and the choice
 * appended to choices. */
static void end_choice(cJSON *choices, cJSON *c, cJSON *logprobs, const char *finish_reason) {
    cJSON_AddItemToObject(c, "logprobs", logprobs ? logprobs : cJSON_CreateNull());
    if (finish_reason)
        cJSON_AddStringToObject(c, "finish_reason", finish_reason);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
}

static void add_choice(cJSON *root, int index, const char *text, size_t len, cJSON *logprobs,
                       const char *finish_reason) {
    cJSON *choices = choices_of(root), *c = cJSON_CreateObject();
    add_text(c, "text", text, len);
    cJSON_AddNumberToObject(c, "index", index);
    end_choice(choices, c, logprobs, finish_reason);
}

/* The prompt once, the tokens of every choice. */
static void add_openai_usage(cJSON *root, const ApiResult *choices, int n) {
    int completion = 0;
    for (int i = 0; i < n; i++) completion += choices[i].completion_tokens;
    cJSON *usage = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", choices[0].prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", completion);
    cJSON_AddNumberToObject(usage, "total_tokens", choices[0].prompt_tokens + completion);
}

char *api_completion_reply(const ApiResult *choices, int n) {
    cJSON *root = completion_head(&choices[0], "text_completion");
    for (int i = 0; i < n; i++) {
        const ApiResult *r = &choices[i];
        cJSON *lp = r->logprobs ? completion_logprobs(r, 0, r->n_tokens, 0) : NULL;
        if (r->echo) {
            Buf b;
            buf_init(&b, (size_t)-1);
            buf_append(&b, r->echo, r->echo_len);
            buf_append(&b, r->text, r->text_len);
            size_t len = b.len;
            char *all = buf_take(&b);
            add_choice(root, r->index, all ? all : "", all ? len : 0, lp, r->finish_reason);
            free(all);
        } else {
            add_choice(root, r->index, r->text, r->text_len, lp, r->finish_reason);
        }
    }
    add_openai_usage(root, choices, n);
    return print_and_free(root);
}

char *api_completion_chunk(const ApiResult *r, const char *text, size_t len, const ApiToken *tok,
                           const char *finish_reason) {
    cJSON *root = completion_head(r, "text_completion");
    cJSON *lp = NULL;
    if (tok && r->logprobs) {
        int i = (int)(tok - r->tokens);
        lp = completion_logprobs(r, i, i + 1,
                                 (long)utf8_chars(r->text, (size_t)(tok->text - r->text)));
    }
    add_choice(root, r->index, text, len, lp, finish_reason);
    return print_and_free(root);
}

char *api_openai_usage_chunk(const ApiResult *choices, int n) {
    const ApiResult *r = &choices[0];
    cJSON *root = completion_head(r, r->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(root, "choices");
    add_openai_usage(root, choices, n);
    return print_and_free(root);
}

/* ---- chat ---- */

/* A token's raw bytes, as chat's "bytes" gives them (a token may hold part of a character). */
static cJSON *token_bytes(const Tokenizer *tok, int id) {
    size_t len = 0;
    const char *piece = tokenizer_piece(tok, id, &len);
    cJSON *bytes = cJSON_CreateArray();
    for (size_t i = 0; piece && i < len; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
    return bytes;
}

/* chat's {"token", "logprob", "bytes"}, with "top_logprobs" for a chosen token. */
static cJSON *chat_token(const ApiResult *r, int id, float logprob) {
    cJSON *o = cJSON_CreateObject();
    char *text = token_string(r->tok, id);
    cJSON_AddStringToObject(o, "token", text ? text : "");
    free(text);
    cJSON_AddNumberToObject(o, "logprob", logprob);
    cJSON_AddItemToObject(o, "bytes", token_bytes(r->tok, id));
    return o;
}

/* chat's "logprobs": {"content": [...]} over generated tokens [from, to). */
static cJSON *chat_logprobs(const ApiResult *r, int from, int to) {
    cJSON *lp = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(lp, "content");
    for (int i = from; i < to; i++) {
        const ApiToken *t = &r->tokens[i];
        cJSON *o = chat_token(r, t->id, t->adjusted_logprob);
        cJSON *top = cJSON_AddArrayToObject(o, "top_logprobs");
        for (int k = 0; k < t->n_top; k++)
            cJSON_AddItemToArray(top, chat_token(r, t->top_ids[k], t->top_logprobs[k]));
        cJSON_AddItemToArray(content, o);
    }
    cJSON_AddNullToObject(lp, "refusal");
    return lp;
}

static void add_chat_choice(cJSON *root, int index, const char *key, cJSON *message,
                            cJSON *logprobs, const char *finish_reason) {
    cJSON *choices = choices_of(root), *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    cJSON_AddItemToObject(c, key, message);
    end_choice(choices, c, logprobs, finish_reason);
}

char *api_chat_reply(const ApiResult *choices, int n) {
    cJSON *root = completion_head(&choices[0], "chat.completion");
    for (int i = 0; i < n; i++) {
        const ApiResult *r = &choices[i];
        cJSON *message = cJSON_CreateObject();
        cJSON_AddStringToObject(message, "role", "assistant");
        add_text(message, "content", r->text, r->text_len);
        cJSON_AddNullToObject(message, "refusal");
        add_chat_choice(root, r->index, "message", message,
                        r->logprobs ? chat_logprobs(r, r->n_prompt_scored, r->n_tokens) : NULL,
                        r->finish_reason);
    }
    add_openai_usage(root, choices, n);
    return print_and_free(root);
}

char *api_chat_chunk(const ApiResult *r, bool first, const char *text, size_t len,
                     const ApiToken *tok, const char *finish_reason) {
    cJSON *root = completion_head(r, "chat.completion.chunk");
    cJSON *delta = cJSON_CreateObject();
    if (first) cJSON_AddStringToObject(delta, "role", "assistant");
    if (!finish_reason) add_text(delta, "content", text, len);
    cJSON *lp = NULL;
    if (tok && r->logprobs) {
        int i = (int)(tok - r->tokens);
        lp = chat_logprobs(r, i, i + 1);
    }
    add_chat_choice(root, r->index, "delta", delta, lp, finish_reason);
    return print_and_free(root);
}
