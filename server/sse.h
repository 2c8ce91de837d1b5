/* Server-sent events framing: "data: <payload>\n\n" events and ": comment\n\n" keep-alives,
 * buffered until the HTTP layer takes them. The buffer has a cap; past it the writer fails
 * (a client that never reads cannot make the daemon grow without bound). */
#ifndef GPTD_SSE_H
#define GPTD_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/buf.h"

#define SSE_MAX_BUFFER (1u << 20)
/* The HTTP side moves events into the buffer while less than this is pending. */
#define SSE_COLLECT_CHUNK (64u << 10)

typedef struct {
    Buf buf;    /* events written, capped at SSE_MAX_BUFFER */
    size_t pos; /* bytes of buf already taken; when all are, buf is reused from the start */
} SseWriter;

void sse_init(SseWriter *w);
void sse_free(SseWriter *w);
/* One event; a payload with newlines becomes several data: lines, as the format requires. */
void sse_write_data(SseWriter *w, const char *payload);
void sse_write_comment(SseWriter *w, const char *text);
/* An event did not fit (or out of memory): the stream must end as an error. */
bool sse_failed(const SseWriter *w);
size_t sse_pending(const SseWriter *w);
/* Copies up to max pending bytes into out; returns the count. */
size_t sse_take(SseWriter *w, char *out, size_t max);

#endif
