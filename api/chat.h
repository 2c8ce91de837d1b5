/* The chat template: how /v1/chat/completions turns messages into a prompt for a model that is
 * not a chat model. The form is a play script, the corpus' own: each message becomes
 *     SPEAKER:\ntext\n\n
 * and the prompt ends with the reply's speaker heading, "JULIET:\n". The model then writes that
 * speaker's lines, and the reply stops at the blank line before the next speaker's heading
 * (CHAT_STOP). A message's speaker is its `name`, else the request's "speakers" entry for its
 * role, else the role's default below; a system message has no heading (its text stands alone,
 * as a stage direction would). */
#ifndef GPTD_API_CHAT_H
#define GPTD_API_CHAT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "request.h"

#define CHAT_DEFAULT_USER "ROMEO"
#define CHAT_DEFAULT_ASSISTANT "JULIET"
#define CHAT_STOP "\n\n"
#define CHAT_MAX_SPEAKER 64 /* bytes of a speaker name */
#define CHAT_MAX_MESSAGES 1024

typedef struct {
    char user[CHAT_MAX_SPEAKER + 1], assistant[CHAT_MAX_SPEAKER + 1];
} ChatSpeakers;

/* The prompt of a chat request: messages (an array of {"role", "content", "name"?}) and the
 * optional "speakers" object ({"user", "assistant"}). On success *prompt is malloc'd and
 * NUL-terminated; on a bad message, -1 with a 400 naming it in *e. */
int chat_prompt(const cJSON *messages, const cJSON *speakers, char **prompt, size_t *len,
                ApiError *e);

/* {"form", "user", "assistant", "stop"}: the template as /info shows it; caller owns. */
cJSON *chat_template_json(void);

#endif
