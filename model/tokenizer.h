/* The tokenizer: text to token ids and back, whichever kind the model was trained with.
 * Everything that turns text into tokens or tokens into text (sequences, stop strings, streams,
 * the tools) goes through this interface and does not ask which kind it has.
 *
 * Kinds (a file each):
 *   char  the lecture's: the vocabulary is the sorted set of characters (Unicode code points) of
 *         the training text and token i is the i-th character (tokenizer_char.c). Text with a
 *         character outside the vocabulary cannot be encoded.
 *   bpe   GPT-2's byte-level BPE (tokenizer_bpe.h): any bytes encode. A token may hold part of a
 *         UTF-8 character, so decoded text is made whole by the caller (utf8_stream.h).
 *
 * Threads: every call may run on many threads at once (the BPE cache has its own lock). */
#ifndef GPTD_TOKENIZER_H
#define GPTD_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../common/utf8.h"
#include "tokenizer_bpe.h"

typedef enum { TOKENIZER_CHAR = 0, TOKENIZER_BPE } TokenizerKind;

typedef struct {
    TokenizerKind kind;
    int vocab_size;
    int start_token; /* what an empty prompt starts from (the lecture: 0; GPT-2: <|endoftext|>) */
    int end_token;   /* the token that ends a text when sampled, or -1 (GPT-2: <|endoftext|>) */
    int max_piece;   /* the most bytes one token decodes to */
    /* Where a user can read the vocabulary, added to the message about a character outside it
     * (the daemon names its endpoints); NULL: nothing added. */
    const char *vocab_hint;
    /* char */
    uint32_t *chars;    /* (vocab_size) sorted code points */
    char (*utf8)[4];    /* (vocab_size) each character's UTF-8 bytes */
    unsigned char *len; /* (vocab_size) their count */
    /* bpe */
    BpeTokenizer *bpe;
} Tokenizer;

/* "char" or "gpt2-bpe", as checkpoints and /info name the kind. */
const char *tokenizer_kind_name(const Tokenizer *tok);

/* ---- the character kind (tokenizer_char.c) ---- */

/* Builds the vocabulary from text (must be valid UTF-8 and non-empty). */
int tokenizer_build(Tokenizer *tok, const char *text, size_t len, Error *err);
/* Reads the vocabulary back from its stored string (sorted, unique characters). */
int tokenizer_from_string(Tokenizer *tok, const char *vocab, Error *err);
/* The stored form: all characters in order, UTF-8, NUL-terminated; caller frees. NULL for a
 * tokenizer of another kind. */
char *tokenizer_to_string(const Tokenizer *tok);

/* The character kind's encoder, for tokenizer.c. With ring, ids holds the last `cap` ids at
 * index (count % cap). */
int char_encode(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap, bool ring,
                size_t *n, Error *err);

/* ---- the BPE kind ---- */

/* GPT-2's files as texts (vocab.json and merges.txt, or encoder.json and vocab.bpe). */
int tokenizer_from_bpe(Tokenizer *tok, const char *vocab_json, size_t vocab_len, const char *merges,
                       size_t merges_len, Error *err);
/* The same files from a directory. */
int tokenizer_from_bpe_dir(Tokenizer *tok, const char *dir, Error *err);

/* ---- every kind ---- */

void tokenizer_free(Tokenizer *tok);

/* Number of characters in text, or -1 with err set if it is not valid UTF-8. */
long tokenizer_count(const char *text, size_t len, Error *err);

/* Encodes text into ids (room for `cap`), *n set to the count. Past cap is an error; so is a
 * character outside a char vocabulary (naming it, its code point, its 0-based position in
 * characters, the vocabulary's size, and vocab_hint). */
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap,
                     size_t *n, Error *err);

/* Encodes all of text (every character is checked) but keeps only the last `cap` ids, in order:
 * *kept = min(total, cap), *total = the token count. A long prompt keeps no more than the window
 * the model will see. */
int tokenizer_encode_tail(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap,
                          size_t *kept, size_t *total, Error *err);

/* The bytes token id decodes to (*len of them, not NUL-terminated); NULL for an id out of
 * range. For BPE they may be part of a character. */
const char *tokenizer_piece(const Tokenizer *tok, int id, size_t *len);

/* Copies token id's bytes into out (room for max_piece); returns their count, 0 for a bad id. */
int tokenizer_decode(const Tokenizer *tok, int id, char *out);

/* The most bytes of valid UTF-8 one token can add to a text: its piece, with every byte that is
 * not part of a whole character replaced by U+FFFD (3 bytes). */
size_t tokenizer_max_text(const Tokenizer *tok);

#endif
