/* Character tokenizer, as in the lecture: the vocabulary is the sorted set of characters (Unicode
 * code points) of the training text, and token i is the i-th character. It is stored in the
 * checkpoint as one UTF-8 string of all characters in order. */
#ifndef GPTD_TOKENIZER_H
#define GPTD_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../common/utf8.h"

typedef struct {
    uint32_t *chars; /* (vocab_size) sorted code points */
    int vocab_size;
} Tokenizer;

/* Builds the vocabulary from text (must be valid UTF-8 and non-empty). */
int tokenizer_build(Tokenizer *tok, const char *text, size_t len, Error *err);
/* Reads the vocabulary back from its stored string (sorted, unique characters). */
int tokenizer_from_string(Tokenizer *tok, const char *vocab, Error *err);
/* The stored form: all characters in order, UTF-8, NUL-terminated; caller frees. */
char *tokenizer_to_string(const Tokenizer *tok);
void tokenizer_free(Tokenizer *tok);

/* Number of characters in text, or -1 with err set if it is not valid UTF-8. */
long tokenizer_count(const char *text, size_t len, Error *err);

/* Encodes text into ids (room for `cap`), *n set to the count. A character outside the
 * vocabulary is an error naming it and its (0-based, in characters) position. */
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap,
                     size_t *n, Error *err);

/* Encodes all of text (every character is checked) but keeps only the last `cap` ids, in order:
 * *kept = min(total, cap), *total = the character count. A long prompt needs no more memory
 * than the window the model will see. */
int tokenizer_encode_tail(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap,
                          size_t *kept, size_t *total, Error *err);

/* Writes token id's UTF-8 bytes into out (4 bytes room); returns the byte count (0 if bad id). */
int tokenizer_decode(const Tokenizer *tok, int id, char *out);

#endif
