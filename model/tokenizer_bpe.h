/* Byte-level BPE, as GPT-2 tokenizes: text is cut into pieces by GPT-2's pre-tokenization rule
 * (contractions, runs of letters, of numbers, of other symbols, each with at most one leading
 * space, and runs of white space), each piece's bytes become one-byte tokens, and adjacent tokens
 * are merged by the rank of their pair in the merges list until no ranked pair is left.
 *
 * Reads the vocabulary and merges under either name: Hugging Face's vocab.json + merges.txt or
 * OpenAI's encoder.json + vocab.bpe (the same data). Any bytes encode, invalid UTF-8 included
 * (bytes no rule matches become pieces of their own), and decoding gives them back exactly.
 *
 * Threads: encoding may run on many threads at once; BpeTokenizer.cache_lock guards the cache of
 * pieces already merged, everything else is read-only after loading. */
#ifndef GPTD_TOKENIZER_BPE_H
#define GPTD_TOKENIZER_BPE_H

#include <stddef.h>

#include "../common/error.h"

typedef struct BpeTokenizer BpeTokenizer;

/* vocab_json: {"token": id, ...} with tokens in GPT-2's byte-to-unicode form; merges: a
 * "#version" line, then one "left right" pair per line, highest priority first. */
int bpe_load(BpeTokenizer **out, const char *vocab_json, size_t vocab_len, const char *merges,
             size_t merges_len, Error *err);
/* Reads DIR/vocab.json + DIR/merges.txt, or else DIR/encoder.json + DIR/vocab.bpe. */
int bpe_load_dir(BpeTokenizer **out, const char *dir, Error *err);
void bpe_free(BpeTokenizer *t);

int bpe_vocab_size(const BpeTokenizer *t);
/* The most bytes one token decodes to. */
size_t bpe_max_piece(const BpeTokenizer *t);
/* The token whose bytes are bytes[0..len), or -1 (a scan: for start-up, not per token). */
int bpe_find(const BpeTokenizer *t, const char *bytes, size_t len);
/* The vocabulary and merges texts it was loaded from (NUL-terminated), to be saved again. */
void bpe_source(const BpeTokenizer *t, const char **vocab_json, const char **merges);
/* Encodes text[0..len) into ids (room for `cap`; *n is the count, which may exceed cap: then
 * only the first cap are written). Fails only when out of memory. */
int bpe_encode(BpeTokenizer *t, const char *text, size_t len, int *ids, size_t cap, size_t *n,
               Error *err);
/* The bytes of token id (not NUL-terminated); NULL for an id out of range. */
const char *bpe_token_bytes(const BpeTokenizer *t, int id, size_t *len);

#endif
