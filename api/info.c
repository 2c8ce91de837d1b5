#include "info.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "chat.h"

static char *print(cJSON *root) {
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

char *api_health_json(ApiServerState state) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status",
                            state == API_READY     ? "ok"
                            : state == API_LOADING ? "loading"
                                                   : "draining");
    return print(root);
}

char *api_models_json(const char *model_name) {
    cJSON *root = cJSON_CreateObject(), *data;
    cJSON_AddStringToObject(root, "object", "list");
    data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "gptd");
    cJSON_AddItemToArray(data, m);
    return print(root);
}

static void add_vocabulary(cJSON *root, const Tokenizer *tok) {
    cJSON *v = cJSON_AddObjectToObject(root, "vocabulary");
    cJSON_AddStringToObject(v, "kind", tokenizer_kind_name(tok));
    cJSON_AddNumberToObject(v, "size", tok->vocab_size);
    if (tok->kind != TOKENIZER_CHAR) return;
    cJSON *tokens = cJSON_AddArrayToObject(v, "tokens");
    for (int id = 0; id < tok->vocab_size; id++) {
        char utf8[5] = {0};
        size_t len;
        const char *piece = tokenizer_piece(tok, id, &len);
        memcpy(utf8, piece, len); /* one character: at most 4 bytes, never NUL */
        cJSON_AddItemToArray(tokens, cJSON_CreateString(utf8));
    }
}

char *api_info_json(const ApiInfo *in) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", in->model_name);
    cJSON_AddStringToObject(root, "status", in->state == API_READY ? "ready" : "not ready");
    if (in->config) {
        const GPTConfig *g = in->config;
        cJSON *mc = cJSON_AddObjectToObject(root, "config");
        cJSON_AddNumberToObject(mc, "vocab_size", g->vocab_size);
        cJSON_AddNumberToObject(mc, "n_layer", g->n_layer);
        cJSON_AddNumberToObject(mc, "n_head", g->n_head);
        cJSON_AddNumberToObject(mc, "n_embd", g->n_embd);
        cJSON_AddNumberToObject(mc, "block_size", g->block_size);
        cJSON_AddStringToObject(mc, "activation", activation_name(g->activation));
        cJSON_AddBoolToObject(mc, "qkv_bias", g->qkv_bias);
        cJSON_AddBoolToObject(mc, "tied_head", g->tied_head);
        cJSON_AddNumberToObject(mc, "parameters", (double)in->n_params);
        cJSON *tok = cJSON_AddObjectToObject(root, "tokenizer");
        cJSON_AddStringToObject(tok, "kind", in->tokenizer);
        cJSON_AddNumberToObject(tok, "tokens", in->tokenizer_size);
        cJSON *ctx = cJSON_AddObjectToObject(root, "context");
        cJSON_AddStringToObject(ctx, "shift", in->context_shift);
        cJSON_AddNumberToObject(ctx, "keep", in->context_keep);
        cJSON_AddStringToObject(root, "kernels", in->kernels);
        if (in->system_fingerprint)
            cJSON_AddStringToObject(root, "system_fingerprint", in->system_fingerprint);
        if (in->vocabulary) add_vocabulary(root, in->vocabulary);
        cJSON_AddItemToObject(root, "chat_template", chat_template_json());
    }
    cJSON *lim = cJSON_AddObjectToObject(root, "limits");
    cJSON_AddNumberToObject(lim, "max_batch", in->max_batch);
    cJSON_AddNumberToObject(lim, "max_queue", in->max_queue);
    cJSON_AddNumberToObject(lim, "max_tokens", in->max_tokens);
    cJSON_AddNumberToObject(lim, "body_limit_bytes", in->body_limit);
    cJSON_AddNumberToObject(lim, "body_memory_bytes", in->body_memory_bytes);
    cJSON_AddNumberToObject(lim, "timeout_s", in->timeout_s);
    cJSON_AddNumberToObject(lim, "prefill_budget", in->prefill_budget);
    cJSON_AddNumberToObject(lim, "threads", in->threads);
    if (in->threads_source) cJSON_AddStringToObject(lim, "threads_source", in->threads_source);
    cJSON *build = cJSON_AddObjectToObject(root, "build");
    cJSON_AddStringToObject(build, "version", in->version);
    cJSON_AddStringToObject(build, "compiled", in->compiled);
    return print(root);
}
