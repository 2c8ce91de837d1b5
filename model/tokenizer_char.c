/* The character kind of tokenizer (tokenizer.h): the lecture's. */
#include "tokenizer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The tables every kind has, once chars holds the vocabulary. */
static int char_tables(Tokenizer *tok, Error *err) {
    tok->kind = TOKENIZER_CHAR;
    tok->start_token = 0;
    tok->end_token = -1;
    tok->max_piece = 1;
    tok->utf8 = malloc((size_t)tok->vocab_size * sizeof *tok->utf8);
    tok->len = malloc((size_t)tok->vocab_size);
    if (!tok->utf8 || !tok->len) {
        tokenizer_free(tok);
        return error_set(err, "out of memory");
    }
    for (int i = 0; i < tok->vocab_size; i++) {
        tok->len[i] = (unsigned char)utf8_encode(tok->chars[i], tok->utf8[i]);
        if (tok->len[i] > tok->max_piece) tok->max_piece = tok->len[i];
    }
    return 0;
}

int tokenizer_build(Tokenizer *tok, const char *text, size_t len, Error *err) {
    memset(tok, 0, sizeof *tok);
    long count = tokenizer_count(text, len, err);
    if (count < 0) return -1;
    if (count == 0) return error_set(err, "cannot build a vocabulary from empty text");
    uint32_t *all = malloc((size_t)count * sizeof *all);
    if (!all) return error_set(err, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (text[i] == '\0') { /* the vocabulary is stored as a C string */
            free(all);
            return error_set(err, "NUL character at byte %zu: text must not contain NUL", i);
        }
        i += (size_t)utf8_decode(text + i, len - i, &all[n++]);
    }
    qsort(all, n, sizeof *all, compare_u32);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++)
        if (unique == 0 || all[unique - 1] != all[i]) all[unique++] = all[i];
    tok->chars = realloc(all, unique * sizeof *all);
    if (!tok->chars) tok->chars = all;
    tok->vocab_size = (int)unique;
    return char_tables(tok, err);
}

int tokenizer_from_string(Tokenizer *tok, const char *vocab, Error *err) {
    memset(tok, 0, sizeof *tok);
    size_t len = strlen(vocab);
    long count = tokenizer_count(vocab, len, err);
    if (count < 0) return error_wrap(err, "vocabulary");
    if (count == 0) return error_set(err, "vocabulary is empty");
    tok->chars = malloc((size_t)count * sizeof *tok->chars);
    if (!tok->chars) return error_set(err, "out of memory");
    int n = 0;
    for (size_t i = 0; i < len; n++) {
        i += (size_t)utf8_decode(vocab + i, len - i, &tok->chars[n]);
        if (n > 0 && tok->chars[n] <= tok->chars[n - 1]) {
            free(tok->chars);
            tok->chars = NULL;
            return error_set(err, "vocabulary is not sorted and unique at character %d", n);
        }
    }
    tok->vocab_size = n;
    return char_tables(tok, err);
}

char *tokenizer_to_string(const Tokenizer *tok) {
    if (tok->kind != TOKENIZER_CHAR) return NULL;
    char *s = malloc((size_t)tok->vocab_size * 4 + 1);
    if (!s) return NULL;
    size_t n = 0;
    for (int i = 0; i < tok->vocab_size; i++) n += (size_t)utf8_encode(tok->chars[i], s + n);
    s[n] = '\0';
    return s;
}

static int lookup(const Tokenizer *tok, uint32_t cp) {
    int lo = 0, hi = tok->vocab_size - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (tok->chars[mid] == cp) return mid;
        if (tok->chars[mid] < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Describes a character for an error message: quoted, with its code point (an apostrophe in
 * double quotes); a control character, invisible when quoted, by its code point alone. */
static void describe_char(uint32_t cp, char *out, size_t cap) {
    char utf8[5] = {0};
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
        snprintf(out, cap, "U+%04X", (unsigned)cp);
        return;
    }
    utf8[utf8_encode(cp, utf8)] = '\0';
    char quote = cp == '\'' ? '"' : '\'';
    snprintf(out, cap, "%c%s%c (U+%04X)", quote, utf8, quote, (unsigned)cp);
}

int char_encode(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap, bool ring,
                size_t *n, Error *err) {
    size_t count = 0;
    for (size_t i = 0; i < len; count++) {
        uint32_t cp;
        int bytes = utf8_decode(text + i, len - i, &cp);
        if (bytes == 0) return error_set(err, "invalid UTF-8 at byte %zu", i);
        int id = lookup(tok, cp);
        if (id < 0) {
            char what[32];
            describe_char(cp, what, sizeof what);
            return error_set(err,
                             "character %s at position %zu (counting characters from 0) is not "
                             "in the vocabulary of %d characters%s%s",
                             what, count, tok->vocab_size, tok->vocab_hint ? "; " : "",
                             tok->vocab_hint ? tok->vocab_hint : "");
        }
        if (!ring && count >= cap) return error_set(err, "text longer than %zu characters", cap);
        ids[ring ? count % cap : count] = id;
        i += (size_t)bytes;
    }
    *n = count;
    return 0;
}
