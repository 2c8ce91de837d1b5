#include "request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/utf8.h"
#include "../model/tokenizer.h"
#include "chat.h"

int api_error(ApiError *e, int status, const char *type, const char *fmt, ...) {
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent (field names, headers, the method), and a long one is
     * cut at a byte count: either may leave bytes that are not UTF-8 in a JSON reply. */
    utf8_make_valid(e->message);
    return -1;
}

char *api_error_json(const ApiError *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "type", e->type);
    cJSON_AddStringToObject(err, "message", e->message);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static int bad(ApiError *e, const char *fmt, const char *field) {
    return api_error(e, 400, "invalid_request_error", fmt, field);
}

/* An integer field in [lo, hi]; absent or null leaves *out unchanged. */
static int get_int(const cJSON *root, const char *field, long long lo, long long hi, long long *out,
                   bool *given, ApiError *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (given) *given = false;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return bad(e, "\"%s\" must be an integer", field);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return api_error(e, 400, "invalid_request_error",
                         "\"%s\" must be in [%lld, %lld], got %.17g", field, lo, hi,
                         v->valuedouble);
    *out = (long long)v->valuedouble;
    if (given) *given = true;
    return 0;
}

static int get_float(const cJSON *root, const char *field, double lo, double hi, bool lo_open,
                     float *out, ApiError *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return bad(e, "\"%s\" must be a number", field);
    double x = v->valuedouble;
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return api_error(e, 400, "invalid_request_error", "\"%s\" must be in %c%g, %g], got %g",
                         field, lo_open ? '(' : '[', lo, hi, x);
    *out = (float)x;
    /* A value just above an open lower bound may round to it in float (top_p 1e-300 -> 0), which
     * the sampler would refuse: the smallest float above the bound is the closest it can hold. */
    if (lo_open && !(*out > lo)) *out = nextafterf((float)lo, INFINITY);
    return 0;
}

static int get_bool(const cJSON *root, const char *field, bool *out, ApiError *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return bad(e, "\"%s\" must be true or false", field);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int add_stop(GenerationParams *p, const cJSON *s, ApiError *e) {
    if (!cJSON_IsString(s)) return bad(e, "\"%s\" must be a string or an array of strings", "stop");
    size_t n = strlen(s->valuestring);
    if (n == 0) return bad(e, "\"%s\" strings must not be empty", "stop");
    Error err;
    if (tokenizer_count(s->valuestring, n, &err) < 0)
        return api_error(e, 400, "invalid_request_error", "\"stop\" strings must be UTF-8: %s",
                         err.message);
    if (n > GENERATION_MAX_STOP_LEN)
        return api_error(e, 400, "invalid_request_error",
                         "\"stop\" strings must be at most %d bytes", GENERATION_MAX_STOP_LEN);
    if (p->n_stop >= API_MAX_STOP)
        return api_error(e, 400, "invalid_request_error", "\"stop\" takes at most %d strings",
                         API_MAX_STOP);
    memcpy(p->stop[p->n_stop++], s->valuestring, n + 1);
    return 0;
}

static int get_stop(const cJSON *root, GenerationParams *p, ApiError *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsArray(v)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, v) if (add_stop(p, s, e)) return -1;
        return 0;
    }
    return add_stop(p, v, e);
}

/* The prompt: a string (or, for OpenAI, an array holding exactly one string). */
static int get_prompt(cJSON *root, ApiKind kind, ApiRequest *req, ApiError *e) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!v || cJSON_IsNull(v)) v = NULL;
    if (v && kind == API_COMPLETIONS && cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) != 1)
            return bad(e,
                       "\"%s\" as an array must hold exactly one string (batches are not "
                       "supported; send one request per prompt)",
                       "prompt");
        v = cJSON_GetArrayItem(v, 0);
    }
    if (v && !cJSON_IsString(v)) return bad(e, "\"%s\" must be a string", "prompt");
    if (v) { /* taken from the parsed tree, not copied: a prompt can be as large as the body */
        req->prompt = v->valuestring;
        v->valuestring = NULL;
    } else {
        req->prompt = strdup("");
    }
    if (!req->prompt) return api_error(e, 500, "server_error", "out of memory");
    req->prompt_len = strlen(req->prompt);
    return 0;
}

/* Which endpoints take a field: a field an endpoint does not list is refused with a 400 naming
 * it (as OpenAI's API refuses unknown arguments), so a typo or an unsupported option never passes
 * silently. "model", "user" and "suffix" (null) are accepted and mean nothing here (docs/api.md).
 */
enum {
    ON_GENERATE = 1 << API_GENERATE,
    ON_COMPLETIONS = 1 << API_COMPLETIONS,
    ON_CHAT = 1 << API_CHAT,
    ON_OPENAI = ON_COMPLETIONS | ON_CHAT,
    ON_ALL = ON_GENERATE | ON_OPENAI,
};

typedef struct {
    const char *name;
    unsigned endpoints;
} FieldUse;

static const FieldUse fields[] = {
    {"prompt", ON_GENERATE | ON_COMPLETIONS},
    {"messages", ON_CHAT},
    {"speakers", ON_CHAT},
    {"model", ON_OPENAI},
    {"max_tokens", ON_ALL},
    {"max_completion_tokens", ON_CHAT},
    {"temperature", ON_ALL},
    {"top_k", ON_ALL},
    {"top_p", ON_ALL},
    {"min_p", ON_ALL},
    {"repetition_penalty", ON_ALL},
    {"presence_penalty", ON_ALL},
    {"frequency_penalty", ON_ALL},
    {"logit_bias", ON_ALL},
    {"seed", ON_ALL},
    {"stop", ON_ALL},
    {"stream", ON_ALL},
    {"stream_options", ON_OPENAI},
    {"logprobs", ON_ALL},
    {"top_logprobs", ON_CHAT},
    {"echo", ON_COMPLETIONS},
    {"n", ON_OPENAI},
    {"best_of", ON_COMPLETIONS},
    {"user", ON_OPENAI},
    {"suffix", ON_COMPLETIONS},
    {"attention", ON_GENERATE},
};

/* True if every member of obj is a field of this endpoint (else *e names the first that is
 * not). */
static bool endpoint_fields(const cJSON *obj, ApiKind kind, ApiError *e) {
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        bool known = false;
        for (size_t i = 0; i < sizeof fields / sizeof *fields && !known; i++)
            known =
                strcmp(item->string, fields[i].name) == 0 && (fields[i].endpoints & (1u << kind));
        if (!known) {
            api_error(e, 400, "invalid_request_error",
                      "unknown field \"%s\": this endpoint does not take it (docs/api.md lists "
                      "the fields of each)",
                      item->string);
            return false;
        }
    }
    return true;
}

/* True if every member of obj is one of the n names (else *e names the first that is not). */
static bool only_fields(const cJSON *obj, const char *const *names, size_t n, const char *where,
                        ApiError *e) {
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        bool known = false;
        for (size_t i = 0; i < n; i++) known |= strcmp(item->string, names[i]) == 0;
        if (!known) {
            api_error(e, 400, "invalid_request_error", "unknown field \"%s\"%s", item->string,
                      where);
            return false;
        }
    }
    return true;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True if no two members of obj share a name (else *e names it): JSON allows duplicates, and
 * cJSON would let the first win, so a client could not tell which one counted. Sorted, so that a
 * body of many members costs n log n. */
static bool unique_fields(const cJSON *obj, const char *where, ApiError *e) {
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return true;
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names) {
        api_error(e, 500, "server_error", "out of memory");
        return false;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) names[i++] = item->string;
    qsort(names, (size_t)n, sizeof *names, compare_names);
    const char *twice = NULL;
    for (i = 1; i < n && !twice; i++)
        if (strcmp(names[i - 1], names[i]) == 0) twice = names[i];
    if (twice)
        api_error(e, 400, "invalid_request_error", "field \"%s\" given twice%s", twice, where);
    free(names);
    return !twice;
}

/* "attention": {"layer": L, "head": H | "mean" | "all", "top_k": K}: which weights each token
 * reports. The reply stays bounded: max_tokens x weights per token <= API_MAX_ATTENTION_VALUES. */
static int get_attention(const cJSON *root, const ApiLimits *l, int max_tokens, AttentionView *v,
                         ApiError *e) {
    static const char *const fields[] = {"layer", "head", "top_k"};
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "attention");
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsObject(a))
        return bad(e, "\"%s\" must be an object: {\"layer\": L, \"head\": H}", "attention");
    if (!only_fields(a, fields, 3, " in \"attention\"", e) ||
        !unique_fields(a, " in \"attention\"", e))
        return -1;
    if (l->n_layer < 1) return bad(e, "\"%s\" is not available", "attention");
    long long layer = -1, head = 0, top_k = 0;
    bool given;
    if (get_int(a, "layer", 0, l->n_layer - 1, &layer, &given, e)) return -1;
    if (!given) return bad(e, "\"%s\" needs \"layer\"", "attention");
    *v = (AttentionView){
        .form = ATTENTION_HEAD, .layer = (int)layer, .n_head = l->n_head, .context = l->block_size};
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(a, "head");
    if (cJSON_IsString(h) && strcmp(h->valuestring, "mean") == 0)
        v->form = ATTENTION_MEAN;
    else if (cJSON_IsString(h) && strcmp(h->valuestring, "all") == 0)
        v->form = ATTENTION_ALL;
    else if (!h || !cJSON_IsNumber(h))
        return api_error(e, 400, "invalid_request_error",
                         "\"head\" in \"attention\" must be an integer in [0, %d], \"mean\" or "
                         "\"all\"",
                         l->n_head - 1);
    else if (get_int(a, "head", 0, l->n_head - 1, &head, NULL, e))
        return -1;
    v->head = (int)head;
    if (get_int(a, "top_k", 1, l->block_size, &top_k, NULL, e)) return -1;
    v->top_k = (int)top_k;
    long long per_token = attention_view_max_values(v);
    if (per_token * max_tokens > API_MAX_ATTENTION_VALUES)
        return api_error(e, 400, "invalid_request_error",
                         "\"attention\" of this form returns up to %lld weights a token; with it "
                         "\"max_tokens\" may be at most %lld, got %d",
                         per_token, API_MAX_ATTENTION_VALUES / per_token, max_tokens);
    return 0;
}

/* True if the JSON text has an escaped NUL (\u0000) inside a string: cJSON would decode it and
 * silently cut the string there, so it is refused instead. An escape is a 'u' after an odd
 * number of backslashes. */
static bool has_escaped_nul(const char *body, size_t len) {
    for (size_t i = 0; i + 5 < len; i++) {
        if (body[i] != '\\' || body[i + 1] != 'u' || memcmp(body + i + 2, "0000", 4) != 0) continue;
        size_t slashes = 0;
        while (slashes <= i && body[i - slashes] == '\\') slashes++;
        if (slashes % 2 == 1) return true;
    }
    return false;
}

/* "logit_bias": {"TOKEN": bias, ...}. A key of decimal digits is a token id; for a character
 * model any other key must be one character of its vocabulary (a digit is named by its id). */
static int get_logit_bias(const cJSON *root, const Tokenizer *tok, LogitAdjust *a, ApiError *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsObject(v))
        return bad(e, "\"%s\" must be an object: {\"token id\": bias, ...}", "logit_bias");
    if (cJSON_GetArraySize(v) > LOGIT_BIAS_MAX_ENTRIES)
        return api_error(e, 400, "invalid_request_error", "\"logit_bias\" holds at most %d entries",
                         LOGIT_BIAS_MAX_ENTRIES);
    int V = tok ? tok->vocab_size : INT32_MAX;
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        const char *key = item->string;
        size_t n = strlen(key);
        long long id = -1;
        if (n > 0 && strspn(key, "0123456789") == n) {
            id = n <= 10 ? strtoll(key, NULL, 10) : (long long)V;
        } else if (tok && tok->kind == TOKENIZER_CHAR) {
            int ids[2];
            size_t count = 0;
            Error err;
            if (tokenizer_encode(tok, key, n, ids, 2, &count, &err) == 0 && count == 1) id = ids[0];
        }
        if (id < 0)
            return api_error(e, 400, "invalid_request_error",
                             "\"logit_bias\" key \"%s\" is not a token id%s", key,
                             tok && tok->kind == TOKENIZER_CHAR
                                 ? " nor one character of the vocabulary (GET /info lists it)"
                                 : "");
        if (id >= V)
            return api_error(e, 400, "invalid_request_error",
                             "\"logit_bias\" token %s is outside the vocabulary [0, %d)", key, V);
        if (!cJSON_IsNumber(item) || !(fabs(item->valuedouble) <= LOGIT_BIAS_LIMIT))
            return api_error(e, 400, "invalid_request_error",
                             "\"logit_bias\" of \"%s\" must be a number in [-%g, %g]", key,
                             LOGIT_BIAS_LIMIT, LOGIT_BIAS_LIMIT);
        for (int i = 0; i < a->n_bias; i++)
            if (a->bias[i].token == (int)id)
                return api_error(e, 400, "invalid_request_error",
                                 "\"logit_bias\" names token %lld twice", id);
        a->bias[a->n_bias++] = (LogitBias){(int)id, (float)item->valuedouble};
    }
    return 0;
}

/* temperature, top_k, top_p, min_p, the penalties and logit_bias: the same on every endpoint. */
static int get_sampling(const cJSON *root, const ApiLimits *l, GenerationParams *p, ApiError *e) {
    p->sampler = (SamplerConfig){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f};
    p->adjust = (LogitAdjust){.repetition = 1.0f};
    long long top_k = 0;
    if (get_float(root, "temperature", 0, SAMPLER_MAX_TEMPERATURE, false, &p->sampler.temperature,
                  e) ||
        get_float(root, "top_p", 0, 1, true, &p->sampler.top_p, e) ||
        get_float(root, "min_p", 0, 1, false, &p->sampler.min_p, e) ||
        get_int(root, "top_k", 0, SAMPLER_MAX_TOP_K, &top_k, NULL, e) ||
        get_float(root, "repetition_penalty", 0, PENALTY_MAX_REPETITION, true,
                  &p->adjust.repetition, e) ||
        get_float(root, "presence_penalty", -PENALTY_LIMIT, PENALTY_LIMIT, false,
                  &p->adjust.presence, e) ||
        get_float(root, "frequency_penalty", -PENALTY_LIMIT, PENALTY_LIMIT, false,
                  &p->adjust.frequency, e) ||
        get_logit_bias(root, l->tok, &p->adjust, e))
        return -1;
    p->sampler.top_k = (int)top_k;
    return 0;
}

/* "logprobs" per endpoint: /generate an integer N (the token's own and the N likeliest, up to
 * the whole of a small vocabulary), /v1/completions an integer N (OpenAI's form), chat a boolean
 * with "top_logprobs" N. */
static int get_logprobs(const cJSON *root, ApiKind kind, const ApiLimits *l, GenerationParams *p,
                        ApiError *e) {
    long long n = 0;
    bool given = false;
    if (kind == API_CHAT) {
        if (get_bool(root, "logprobs", &p->logprobs, e) ||
            get_int(root, "top_logprobs", 0, API_MAX_OPENAI_LOGPROBS, &n, &given, e))
            return -1;
        if (given && !p->logprobs) return bad(e, "\"%s\" needs \"logprobs\": true", "top_logprobs");
    } else {
        int V = l->tok ? l->tok->vocab_size : GENERATION_MAX_LOGPROBS;
        int most = kind == API_GENERATE
                       ? (V < GENERATION_MAX_LOGPROBS ? V : GENERATION_MAX_LOGPROBS)
                       : API_MAX_OPENAI_LOGPROBS;
        if (get_int(root, "logprobs", 0, most, &n, &given, e)) return -1;
        p->logprobs = given;
    }
    p->top_logprobs = (int)n;
    return 0;
}

/* The OpenAI fields: n and best_of (equal: every choice drawn is returned), stream_options,
 * suffix (none), echo, user and model (any string). */
static int get_openai(const cJSON *root, ApiKind kind, ApiRequest *req, ApiError *e) {
    long long n = 1, best_of;
    if (get_int(root, "n", 1, API_MAX_CHOICES, &n, NULL, e)) return -1;
    best_of = n;
    if (kind == API_COMPLETIONS && get_int(root, "best_of", 1, API_MAX_CHOICES, &best_of, NULL, e))
        return -1;
    if (best_of != n)
        return bad(e, "\"%s\" must equal \"n\": every choice drawn is returned", "best_of");
    req->n = (int)n;
    const char *strings[] = {"model", "user"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, strings[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsString(v))
            return bad(e, "\"%s\" must be a string", strings[i]);
    }
    const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(root, "suffix");
    if (suffix && !cJSON_IsNull(suffix) &&
        !(cJSON_IsString(suffix) && suffix->valuestring[0] == '\0'))
        return bad(e, "\"%s\" is not supported: the model only continues text", "suffix");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        static const char *const so_fields[] = {"include_usage"};
        if (!cJSON_IsObject(so)) return bad(e, "\"%s\" must be an object", "stream_options");
        if (!only_fields(so, so_fields, 1, " in \"stream_options\"", e) ||
            get_bool(so, "include_usage", &req->include_usage, e))
            return -1;
    }
    if (kind == API_COMPLETIONS && get_bool(root, "echo", &req->echo, e)) return -1;
    if (req->echo && req->stream)
        return bad(e, "\"%s\" is not available with \"stream\": ask for the whole reply", "echo");
    if (req->echo && req->n > 1)
        return bad(e, "\"%s\" is not available with \"n\" above 1", "echo");
    return 0;
}

/* max_tokens, or chat's newer name for it (not both). */
static int get_max_tokens(const cJSON *root, ApiKind kind, const ApiLimits *l, long long *out,
                          ApiError *e) {
    bool old_given = false, new_given = false;
    if (get_int(root, "max_tokens", 0, l->max_tokens_cap, out, &old_given, e)) return -1;
    if (kind == API_CHAT &&
        get_int(root, "max_completion_tokens", 0, l->max_tokens_cap, out, &new_given, e))
        return -1;
    if (old_given && new_given)
        return bad(e, "give \"max_tokens\" or \"%s\", not both", "max_completion_tokens");
    return 0;
}

/* A chat request's prompt from its messages (api/chat.h), and the template's stop string. */
static int get_chat(cJSON *root, ApiRequest *req, ApiError *e) {
    if (chat_prompt(cJSON_GetObjectItemCaseSensitive(root, "messages"),
                    cJSON_GetObjectItemCaseSensitive(root, "speakers"), &req->prompt,
                    &req->prompt_len, e))
        return -1;
    GenerationParams *p = &req->params;
    memcpy(p->stop[p->n_stop++], CHAT_STOP, sizeof CHAT_STOP);
    return 0;
}

/* The fields of a parsed body, for its endpoint. */
static int get_fields(cJSON *root, ApiKind kind, const ApiLimits *limits, uint64_t random_seed,
                      ApiRequest *req, ApiError *e) {
    GenerationParams *p = &req->params;
    long long max_tokens = limits->default_max_tokens, seed = 0;
    bool seed_given = false;
    if ((kind == API_CHAT ? get_chat(root, req, e) : get_prompt(root, kind, req, e)) ||
        get_max_tokens(root, kind, limits, &max_tokens, e) || get_sampling(root, limits, p, e) ||
        get_logprobs(root, kind, limits, p, e) ||
        get_int(root, "seed", 0, 9007199254740991LL, &seed, &seed_given, e) ||
        get_stop(root, p, e) || get_bool(root, "stream", &req->stream, e))
        return -1;
    if (kind == API_GENERATE ? get_attention(root, limits, (int)max_tokens, &p->attention, e)
                             : get_openai(root, kind, req, e))
        return -1;
    p->max_tokens = (int)max_tokens;
    p->seed = seed_given ? (uint64_t)seed : random_seed;
    p->score_prompt = req->echo && p->logprobs;
    req->seed_given = seed_given;
    return 0;
}

int api_parse_request(ApiKind kind, const char *body, size_t len, const ApiLimits *limits,
                      uint64_t random_seed, ApiRequest *req, ApiError *e) {
    memset(req, 0, sizeof *req);
    req->kind = kind;
    req->n = 1;
    if (has_escaped_nul(body, len))
        return api_error(e, 400, "invalid_request_error",
                         "NUL characters (\\u0000) are not allowed in prompts or stop strings");
    /* A raw NUL is not JSON (control characters must be escaped) and cJSON would stop at it,
     * silently cutting the prompt short. */
    const char *nul = memchr(body, '\0', len);
    if (nul)
        return api_error(e, 400, "invalid_request_error",
                         "body is not valid JSON: a raw NUL byte at offset %zu",
                         (size_t)(nul - body));
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return api_error(e, 400, "invalid_request_error", "body is not valid JSON");
    int rc = -1;
    if (!cJSON_IsObject(root))
        api_error(e, 400, "invalid_request_error", "body must be a JSON object");
    else if (unique_fields(root, "", e) && endpoint_fields(root, kind, e))
        rc = get_fields(root, kind, limits, random_seed, req, e);
    cJSON_Delete(root);
    if (rc) api_request_free(req);
    return rc;
}

void api_request_free(ApiRequest *req) {
    free(req->prompt);
    req->prompt = NULL;
}

cJSON *api_parse_object(const char *body, size_t len, const char *const *fields, size_t n_fields,
                        ApiError *e) {
    if (has_escaped_nul(body, len)) {
        api_error(e, 400, "invalid_request_error",
                  "NUL characters (\\u0000) are not allowed in strings");
        return NULL;
    }
    const char *nul = memchr(body, '\0', len);
    if (nul) {
        api_error(e, 400, "invalid_request_error",
                  "body is not valid JSON: a raw NUL byte at offset %zu", (size_t)(nul - body));
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        api_error(e, 400, "invalid_request_error", "body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        api_error(e, 400, "invalid_request_error", "body must be a JSON object");
    } else if (unique_fields(root, "", e) && only_fields(root, fields, n_fields, "", e)) {
        return root;
    }
    cJSON_Delete(root);
    return NULL;
}
