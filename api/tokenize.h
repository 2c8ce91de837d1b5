/* POST /tokenize and POST /detokenize: text to token ids and back through the model's own
 * tokenizer, so a client can see how a prompt or a stop string will be read, and what ids mean.
 *   /tokenize    {"text": "..."}    -> {"tokens": [id, ...], "count": n, "pieces": ["...", ...]}
 *   /detokenize  {"tokens": [id, ...]} -> {"text": "..."}
 * A piece is one token's bytes as text. A BPE token may hold part of a character: its piece then
 * shows each byte that is not part of a whole character as U+FFFD, as Python's
 * decode(errors="replace") would, while /detokenize joins the bytes of all its ids first, so a
 * character split over tokens comes back whole. Knows nothing of sockets: bytes in, a malloc'd
 * reply or an ApiError out. */
#ifndef GPTD_API_TOKENIZE_H
#define GPTD_API_TOKENIZE_H

#include <stddef.h>

#include "../model/tokenizer.h"
#include "request.h"

/* The reply to a /tokenize body (len bytes), or NULL with *e filled: 400 for a bad body or a
 * character outside a character model's vocabulary, 500 when out of memory. */
char *api_tokenize_reply(const Tokenizer *tok, const char *body, size_t len, ApiError *e);

/* The reply to a /detokenize body, or NULL with *e filled: 400 for a bad body or an id outside
 * the vocabulary (naming its index, the id and the vocabulary's size). */
char *api_detokenize_reply(const Tokenizer *tok, const char *body, size_t len, ApiError *e);

#endif
