/* libFuzzer harness: UTF-8 and the character tokenizer. The input is split at its first NUL
 * into a vocabulary text and a text to encode. Checks: a built vocabulary is sorted and unique
 * and survives its stored form; encoding then decoding gives the text back byte for byte; the
 * tail encoder keeps exactly the last characters; every decoded character re-encodes to itself. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = (const char *)data;
    const char *nul = memchr(in, '\0', size);
    size_t vlen = nul ? (size_t)(nul - in) : size;
    const char *text = nul ? nul + 1 : "";
    size_t tlen = nul ? size - vlen - 1 : 0;

    for (size_t i = 0; i < size;) { /* utf8_decode/encode agree */
        uint32_t cp;
        int n = utf8_decode(in + i, size - i, &cp);
        if (n == 0) {
            i++;
            continue;
        }
        char out[4];
        assert(utf8_encode(cp, out) == n && memcmp(out, in + i, (size_t)n) == 0);
        i += (size_t)n;
    }

    Tokenizer tok;
    Error err;
    if (tokenizer_build(&tok, in, vlen, &err)) return 0;
    for (int i = 1; i < tok.vocab_size; i++) assert(tok.chars[i - 1] < tok.chars[i]);
    char *stored = tokenizer_to_string(&tok);
    Tokenizer back;
    assert(stored && tokenizer_from_string(&back, stored, &err) == 0);
    assert(back.vocab_size == tok.vocab_size);
    assert(memcmp(back.chars, tok.chars, (size_t)tok.vocab_size * sizeof *tok.chars) == 0);
    tokenizer_free(&back);
    free(stored);

    int *ids = malloc((tlen + 1) * sizeof *ids);
    size_t n = 0;
    if (ids && tokenizer_encode(&tok, text, tlen, ids, tlen + 1, &n, &err) == 0) {
        char *decoded = malloc(n * 4 + 1);
        size_t len = 0;
        for (size_t i = 0; i < n; i++) len += (size_t)tokenizer_decode(&tok, ids[i], decoded + len);
        assert(len == tlen && memcmp(decoded, text, tlen) == 0);
        free(decoded);
        int tail[5];
        size_t cap = 1 + (size_t)(tlen % 5), kept = 0, total = 0;
        assert(tokenizer_encode_tail(&tok, text, tlen, tail, cap, &kept, &total, &err) == 0);
        assert(total == n && kept == (n < cap ? n : cap));
        assert(kept == 0 || memcmp(tail, ids + (n - kept), kept * sizeof *ids) == 0);
    }
    free(ids);
    tokenizer_free(&tok);
    return 0;
}
