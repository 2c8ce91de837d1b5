/* libFuzzer harness: a reply's text on its way out. Input: up to four stop strings (each byte
 * below 0x20 ends one, the first 0x1f ends them all; those with characters outside the vocabulary
 * are left out, as the API refuses them), then the tokens of a continuation (one
 * byte each, modulo the vocabulary). The tokens are forced through a real Sequence (as teacher
 * tokens) and each piece it hands out goes into an SSE event. Checks: every piece is whole
 * UTF-8 characters; the pieces add up to the continuation cut before the first stop string, as
 * the sequence finds it; each event is "data: <one line of JSON>\n\n" and its JSON gives the
 * piece back. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/sequence.h"
#include "../../server/sse.h"

static Tokenizer tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *vocab = "\n \"\\:abcdeé✓\xf0\x9f\x99\x82"; /* quotes, backslash, 1-4 byte chars */
    Error err;
    if (tokenizer_build(&tok, vocab, strlen(vocab), &err)) __builtin_trap();
    return 0;
}

static bool whole_utf8(const char *s, size_t n) {
    Error err;
    return tokenizer_count(s, n, &err) >= 0;
}

/* A stop string the model can write (sequence_init refuses the others, as the API does). */
static bool writable(const char *s, size_t n) {
    int ids[GENERATION_MAX_STOP_LEN];
    size_t count;
    Error err;
    return tokenizer_encode(&tok, s, n, ids, GENERATION_MAX_STOP_LEN, &count, &err) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    GenerationParams p = {.sampler = {.temperature = 1, .top_p = 1}, .seed = 1};
    size_t i = 0;
    char stop[GENERATION_MAX_STOP_LEN + 1];
    size_t sl = 0;
    for (; i < size && data[i] != 0x1f && p.n_stop < GENERATION_MAX_STOP; i++) {
        if (data[i] >= 0x20 && sl < GENERATION_MAX_STOP_LEN) {
            stop[sl++] = (char)data[i];
            continue;
        }
        if (data[i] < 0x20 && sl > 0) {
            stop[sl] = '\0';
            if (writable(stop, sl)) memcpy(p.stop[p.n_stop++], stop, sl + 1);
            sl = 0;
        }
    }
    i++;
    int n = i < size ? (int)(size - i) : 0;
    if (n > 512) n = 512;
    int *teacher = malloc(((size_t)n + 1) * sizeof *teacher);
    char *want = malloc((size_t)n * 4 + 1);
    size_t want_len = 0;
    for (int k = 0; k < n; k++) {
        teacher[k] = data[i + (size_t)k] % tok.vocab_size;
        want_len += (size_t)tokenizer_decode(&tok, teacher[k], want + want_len);
    }
    p.max_tokens = n;
    /* the reference: the first token after which the text ends with a stop string; the reply
     * ends where the earliest of those that end there begins */
    size_t cut = want_len, end = 0;
    for (int k = 0; k < n && cut == want_len; k++) {
        char ch[4];
        end += (size_t)tokenizer_decode(&tok, teacher[k], ch);
        for (int j = 0; j < p.n_stop; j++) {
            size_t len = strlen(p.stop[j]);
            if (end >= len && memcmp(want + end - len, p.stop[j], len) == 0 && end - len < cut)
                cut = end - len;
        }
    }

    ContextPolicy context;
    Error err;
    if (context_policy_init(&context, 8, "keep", 0, &err)) __builtin_trap();
    Sequence s;
    if (sequence_init(&s, &tok, context, "a", 1, &p, &err)) __builtin_trap();
    s.teacher = teacher;
    float logits[16] = {0}, probs[16];
    int index[16];
    char *got = malloc(want_len + 1);
    size_t got_len = 0;
    SseWriter w;
    sse_init(&w);
    EngineSegment seg;
    for (;;) {
        int more = sequence_next_segment(&s, 8, logits, &seg);
        if (more) sequence_advance(&s, &seg, probs, index);
        const char *piece;
        size_t len = sequence_take_text(&s, &piece);
        if (len > 0) {
            assert(whole_utf8(piece, len));
            assert(got_len + len <= want_len);
            memcpy(got + got_len, piece, len);
            got_len += len;
            char *text = strndup(piece, len);
            cJSON *event = cJSON_CreateObject();
            cJSON_AddStringToObject(event, "text", text);
            char *payload = cJSON_PrintUnformatted(event);
            sse_write_data(&w, payload);
            char frame[4096];
            size_t flen = sse_take(&w, frame, sizeof frame - 1);
            frame[flen] = '\0';
            assert(strncmp(frame, "data: ", 6) == 0 && flen >= 8);
            assert(strcmp(frame + flen - 2, "\n\n") == 0);
            frame[flen - 2] = '\0';
            assert(!strchr(frame + 6, '\n'));
            cJSON *back = cJSON_Parse(frame + 6);
            assert(back && strcmp(cJSON_GetObjectItem(back, "text")->valuestring, text) == 0);
            cJSON_Delete(back);
            free(payload);
            cJSON_Delete(event);
            free(text);
        }
        if (!more) break;
    }
    assert(got_len == cut && memcmp(got, want, cut) == 0);
    sse_free(&w);
    sequence_free(&s);
    free(got);
    free(want);
    free(teacher);
    return 0;
}
