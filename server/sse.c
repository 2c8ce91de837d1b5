#include "sse.h"

#include <stdlib.h>
#include <string.h>

void sse_init(SseWriter *w) { memset(w, 0, sizeof *w); }

void sse_free(SseWriter *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static void append(SseWriter *w, const char *s, size_t n) {
    if (w->failed) return;
    if (w->pos == w->len) w->pos = w->len = 0; /* all taken: reuse from the start */
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap < w->len + n) cap *= 2;
        char *grown = cap <= SSE_MAX_BUFFER ? realloc(w->buf, cap) : NULL;
        if (!grown) {
            w->failed = true;
            return;
        }
        w->buf = grown;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void sse_write_data(SseWriter *w, const char *payload) {
    if (!payload) {
        w->failed = true;
        return;
    }
    const char *line = payload;
    for (;;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        append(w, "data: ", 6);
        append(w, line, n);
        append(w, "\n", 1);
        if (!nl) break;
        line = nl + 1;
    }
    append(w, "\n", 1);
}

void sse_write_comment(SseWriter *w, const char *text) {
    append(w, ": ", 2);
    append(w, text, strlen(text));
    append(w, "\n\n", 2);
}

size_t sse_pending(const SseWriter *w) { return w->len - w->pos; }

size_t sse_take(SseWriter *w, char *out, size_t max) {
    size_t n = sse_pending(w);
    if (n > max) n = max;
    memcpy(out, w->buf + w->pos, n);
    w->pos += n;
    return n;
}
