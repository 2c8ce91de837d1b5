#include "chat.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../common/buf.h"

static int bad_message(ApiError *e, int i, const char *what) {
    return api_error(e, 400, "invalid_request_error", "\"messages\"[%d]: %s", i, what);
}

/* A speaker name: a non-empty string of at most CHAT_MAX_SPEAKER bytes on one line, without the
 * ':' that would end its heading early. */
static bool valid_speaker(const cJSON *v) {
    if (!cJSON_IsString(v)) return false;
    size_t n = strlen(v->valuestring);
    return n > 0 && n <= CHAT_MAX_SPEAKER && !strpbrk(v->valuestring, "\n\r:");
}

static int get_speakers(const cJSON *speakers, ChatSpeakers *out, ApiError *e) {
    snprintf(out->user, sizeof out->user, "%s", CHAT_DEFAULT_USER);
    snprintf(out->assistant, sizeof out->assistant, "%s", CHAT_DEFAULT_ASSISTANT);
    if (!speakers || cJSON_IsNull(speakers)) return 0;
    if (!cJSON_IsObject(speakers))
        return api_error(e, 400, "invalid_request_error",
                         "\"speakers\" must be an object: {\"user\": NAME, \"assistant\": NAME}");
    const cJSON *item;
    cJSON_ArrayForEach(item, speakers) {
        bool user = strcmp(item->string, "user") == 0;
        if (!user && strcmp(item->string, "assistant") != 0)
            return api_error(e, 400, "invalid_request_error",
                             "unknown field \"%s\" in \"speakers\" (it takes \"user\" and "
                             "\"assistant\")",
                             item->string);
        if (!valid_speaker(item))
            return api_error(e, 400, "invalid_request_error",
                             "\"speakers\".\"%s\" must be a name of 1 to %d bytes on one line, "
                             "without ':'",
                             item->string, CHAT_MAX_SPEAKER);
        char *dst = user ? out->user : out->assistant;
        snprintf(dst, CHAT_MAX_SPEAKER + 1, "%s", item->valuestring);
    }
    return 0;
}

/* The text of a message's "content": a string, or OpenAI's array of {"type": "text", "text"}
 * parts, joined. */
static int append_content(Buf *b, const cJSON *content, int i, ApiError *e) {
    if (cJSON_IsString(content)) return buf_printf(b, "%s", content->valuestring) ? -1 : 0;
    if (!cJSON_IsArray(content))
        return bad_message(e, i, "\"content\" must be a string or an array of text parts");
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
            !cJSON_IsString(text))
            return bad_message(e, i,
                               "a \"content\" part must be {\"type\": \"text\", \"text\": ...} "
                               "(this model reads text only)");
        if (buf_printf(b, "%s", text->valuestring)) return -1;
    }
    return 0;
}

static int append_message(Buf *b, const cJSON *m, int i, const ChatSpeakers *sp, ApiError *e) {
    if (!cJSON_IsObject(m)) return bad_message(e, i, "must be an object {\"role\", \"content\"}");
    const cJSON *item;
    cJSON_ArrayForEach(item, m) {
        const char *k = item->string;
        if (strcmp(k, "role") && strcmp(k, "content") && strcmp(k, "name"))
            return api_error(e, 400, "invalid_request_error",
                             "\"messages\"[%d]: unknown field \"%s\" (a message takes \"role\", "
                             "\"content\" and \"name\")",
                             i, k);
    }
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    const char *r = cJSON_IsString(role) ? role->valuestring : "";
    bool system = strcmp(r, "system") == 0 || strcmp(r, "developer") == 0;
    const char *speaker = strcmp(r, "user") == 0        ? sp->user
                          : strcmp(r, "assistant") == 0 ? sp->assistant
                                                        : NULL;
    if (!system && !speaker)
        return bad_message(e, i,
                           "\"role\" must be \"system\", \"developer\", \"user\" or \"assistant\"");
    if (!content || cJSON_IsNull(content)) return bad_message(e, i, "\"content\" is missing");
    if (name && !cJSON_IsNull(name)) {
        if (!valid_speaker(name))
            return bad_message(e, i, "\"name\" must be 1 to 64 bytes on one line, without ':'");
        speaker = name->valuestring;
    }
    if (speaker && buf_printf(b, "%s:\n", speaker)) return -1;
    if (append_content(b, content, i, e)) return -1;
    return buf_append(b, CHAT_STOP, strlen(CHAT_STOP));
}

int chat_prompt(const cJSON *messages, const cJSON *speakers, char **prompt, size_t *len,
                ApiError *e) {
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
        return api_error(e, 400, "invalid_request_error",
                         "\"messages\" must be a non-empty array of {\"role\", \"content\"}");
    if (cJSON_GetArraySize(messages) > CHAT_MAX_MESSAGES)
        return api_error(e, 400, "invalid_request_error", "\"messages\" holds at most %d",
                         CHAT_MAX_MESSAGES);
    ChatSpeakers sp;
    if (get_speakers(speakers, &sp, e)) return -1;
    Buf b;
    buf_init(&b, (size_t)-1);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        e->status = 0;
        if (append_message(&b, m, i++, &sp, e)) {
            buf_free(&b);
            if (!e->status) api_error(e, 500, "server_error", "out of memory");
            return -1;
        }
    }
    if (buf_printf(&b, "%s:\n", sp.assistant)) {
        buf_free(&b);
        return api_error(e, 500, "server_error", "out of memory");
    }
    *len = b.len;
    *prompt = buf_take(&b);
    return *prompt ? 0 : api_error(e, 500, "server_error", "out of memory");
}

cJSON *chat_template_json(void) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "form", "SPEAKER:\ntext\n\n per message; then the reply's speaker");
    cJSON_AddStringToObject(t, "user", CHAT_DEFAULT_USER);
    cJSON_AddStringToObject(t, "assistant", CHAT_DEFAULT_ASSISTANT);
    cJSON_AddStringToObject(t, "system", "(no heading)");
    cJSON_AddStringToObject(t, "stop", CHAT_STOP);
    return t;
}
