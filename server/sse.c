#include "sse.h"

#include <string.h>

void sse_init(SseWriter *w) {
    buf_init(&w->buf, SSE_MAX_BUFFER - 1); /* - 1: Buf keeps a NUL after the bytes */
    w->pos = 0;
}

void sse_free(SseWriter *w) {
    buf_free(&w->buf);
    w->pos = 0;
}

static void append(SseWriter *w, const char *s, size_t n) {
    if (w->pos == w->buf.len) { /* all taken: reuse from the start */
        buf_clear(&w->buf);
        w->pos = 0;
    }
    buf_append(&w->buf, s, n);
}

void sse_write_data(SseWriter *w, const char *payload) {
    if (!payload) {
        w->buf.failed = true;
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

bool sse_failed(const SseWriter *w) { return w->buf.failed; }

size_t sse_pending(const SseWriter *w) { return w->buf.len - w->pos; }

size_t sse_take(SseWriter *w, char *out, size_t max) {
    size_t n = sse_pending(w);
    if (n > max) n = max;
    if (n) memcpy(out, w->buf.data + w->pos, n);
    w->pos += n;
    return n;
}
