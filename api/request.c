#include "request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/utf8.h"
#include "../model/tokenizer.h"

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
    if (p->n_stop >= GENERATION_MAX_STOP)
        return api_error(e, 400, "invalid_request_error", "\"stop\" takes at most %d strings",
                         GENERATION_MAX_STOP);
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

static const char *const generate_fields[] = {
    "prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "stop", "stream", "attention"};

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

int api_parse_request(ApiKind kind, const char *body, size_t len, const ApiLimits *limits,
                      uint64_t random_seed, ApiRequest *req, ApiError *e) {
    memset(req, 0, sizeof *req);
    req->kind = kind;
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
    if (!cJSON_IsObject(root)) {
        api_error(e, 400, "invalid_request_error", "body must be a JSON object");
        goto done;
    }
    if (!unique_fields(root, "", e)) goto done;
    /* a typo in a field name should not pass silently */
    if (kind == API_GENERATE &&
        !only_fields(root, generate_fields, sizeof generate_fields / sizeof *generate_fields, "",
                     e))
        goto done;
    GenerationParams *p = &req->params;
    p->sampler.temperature = 1.0f;
    p->sampler.top_k = 0;
    p->sampler.top_p = 1.0f;
    long long max_tokens = limits->default_max_tokens, top_k = 0, seed = 0, n = 1;
    bool seed_given = false;
    if (get_prompt(root, kind, req, e) ||
        get_int(root, "max_tokens", 0, limits->max_tokens_cap, &max_tokens, NULL, e) ||
        get_float(root, "temperature", 0, SAMPLER_MAX_TEMPERATURE, false, &p->sampler.temperature,
                  e) ||
        get_float(root, "top_p", 0, 1, true, &p->sampler.top_p, e) ||
        get_int(root, "seed", 0, 9007199254740991LL, &seed, &seed_given, e) ||
        get_stop(root, p, e) || get_bool(root, "stream", &req->stream, e))
        goto done;
    if (kind == API_GENERATE) {
        if (get_int(root, "top_k", 0, SAMPLER_MAX_TOP_K, &top_k, NULL, e) ||
            get_attention(root, limits, (int)max_tokens, &p->attention, e))
            goto done;
    } else {
        if (get_int(root, "n", 1, 1000000, &n, NULL, e)) goto done;
        if (n != 1) {
            api_error(e, 400, "invalid_request_error",
                      "\"n\" must be 1: gptd returns one choice "
                      "per request");
            goto done;
        }
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
        if (so && !cJSON_IsNull(so)) {
            if (!cJSON_IsObject(so)) {
                api_error(e, 400, "invalid_request_error", "\"stream_options\" must be an object");
                goto done;
            }
            if (get_bool(so, "include_usage", &req->include_usage, e)) goto done;
        }
    }
    p->max_tokens = (int)max_tokens;
    p->sampler.top_k = (int)top_k;
    p->seed = seed_given ? (uint64_t)seed : random_seed;
    req->seed_given = seed_given;
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc) api_request_free(req);
    return rc;
}

void api_request_free(ApiRequest *req) {
    free(req->prompt);
    req->prompt = NULL;
}
