#include "tokenize.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "json_text.h"

/* A reply built in b, or NULL with a 500 when an append ran out of memory. */
static char *take_reply(Buf *b, ApiError *e) {
    char *s = buf_take(b);
    if (!s) api_error(e, 500, "server_error", "out of memory");
    return s;
}

/* "pieces": each token's bytes as valid UTF-8 on their own (tokenize.h). */
static void append_pieces(Buf *b, const Tokenizer *tok, const int *ids, size_t n) {
    char *text = malloc(tokenizer_max_text(tok) + 3);
    if (!text) {
        b->failed = true;
        return;
    }
    buf_append(b, "\"pieces\":[", 10);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *piece = tokenizer_piece(tok, ids[i], &len);
        Utf8Stream utf8 = {0};
        size_t out = utf8_stream_write(&utf8, piece, len, text);
        out += utf8_stream_end(&utf8, text + out);
        if (i) buf_append(b, ",", 1);
        json_append_string(b, text, out);
    }
    buf_append(b, "]", 1);
    free(text);
}

char *api_tokenize_reply(const Tokenizer *tok, const char *body, size_t len, ApiError *e) {
    static const char *const fields[] = {"text"};
    cJSON *root = api_parse_object(body, len, fields, 1, e);
    if (!root) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "text");
    char *reply = NULL;
    int *ids = NULL;
    if (!cJSON_IsString(v)) {
        api_error(e, 400, "invalid_request_error", "\"text\" must be a string%s",
                  v ? "" : " (it is required)");
        goto done;
    }
    const char *text = v->valuestring;
    size_t text_len = strlen(text), n = 0;
    ids = malloc((text_len + 1) * sizeof *ids); /* a token holds at least one byte */
    if (!ids) {
        api_error(e, 500, "server_error", "out of memory");
        goto done;
    }
    Error err;
    if (tokenizer_encode(tok, text, text_len, ids, text_len, &n, &err)) {
        /* a character model refuses text it cannot spell; BPE fails only when out of memory */
        bool refused = tok->kind == TOKENIZER_CHAR;
        api_error(e, refused ? 400 : 500, refused ? "invalid_request_error" : "server_error",
                  "\"text\": %s", err.message);
        goto done;
    }
    Buf b;
    buf_init(&b, (size_t)-1);
    buf_append(&b, "{\"tokens\":[", 11);
    for (size_t i = 0; i < n; i++) buf_printf(&b, i ? ",%d" : "%d", ids[i]);
    buf_printf(&b, "],\"count\":%zu,", n);
    append_pieces(&b, tok, ids, n);
    buf_append(&b, "}", 1);
    reply = take_reply(&b, e);
done:
    free(ids);
    cJSON_Delete(root);
    return reply;
}

/* The ids of "tokens" into ids (room for all of them), or -1 with *e naming the first bad one. */
static int read_ids(const Tokenizer *tok, const cJSON *tokens, int *ids, ApiError *e) {
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, tokens) {
        if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble))
            return api_error(e, 400, "invalid_request_error",
                             "\"tokens\"[%d] must be an integer token id", i);
        double id = item->valuedouble;
        if (id < 0 || id >= tok->vocab_size)
            return api_error(e, 400, "invalid_request_error",
                             "\"tokens\"[%d]: id %.17g is outside the vocabulary of %d tokens "
                             "(ids 0 to %d)",
                             i, id, tok->vocab_size, tok->vocab_size - 1);
        ids[i++] = (int)id;
    }
    return 0;
}

char *api_detokenize_reply(const Tokenizer *tok, const char *body, size_t len, ApiError *e) {
    static const char *const fields[] = {"tokens"};
    cJSON *root = api_parse_object(body, len, fields, 1, e);
    if (!root) return NULL;
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    char *reply = NULL, *text = NULL;
    int *ids = NULL;
    if (!cJSON_IsArray(tokens)) {
        api_error(e, 400, "invalid_request_error", "\"tokens\" must be an array of token ids%s",
                  tokens ? "" : " (it is required)");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(tokens), bytes = 0;
    ids = malloc((n + 1) * sizeof *ids);
    if (!ids) {
        api_error(e, 500, "server_error", "out of memory");
        goto done;
    }
    if (read_ids(tok, tokens, ids, e)) goto done;
    for (size_t i = 0; i < n; i++) {
        size_t piece_len;
        tokenizer_piece(tok, ids[i], &piece_len);
        bytes += piece_len;
    }
    text = malloc(3 * bytes + 4); /* each byte may become U+FFFD */
    if (!text) {
        api_error(e, 500, "server_error", "out of memory");
        goto done;
    }
    /* all the bytes as one text: a character split over tokens comes back whole */
    Utf8Stream utf8 = {0};
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        size_t piece_len;
        const char *piece = tokenizer_piece(tok, ids[i], &piece_len);
        out += utf8_stream_write(&utf8, piece, piece_len, text + out);
    }
    out += utf8_stream_end(&utf8, text + out);
    Buf b;
    buf_init(&b, (size_t)-1);
    buf_append(&b, "{\"text\":", 8);
    json_append_string(&b, text, out);
    buf_append(&b, "}", 1);
    reply = take_reply(&b, e);
done:
    free(ids);
    free(text);
    cJSON_Delete(root);
    return reply;
}
