/* UTF-8, as every layer reads and writes it: prompts, vocabularies, and error messages that may
 * quote what a client sent. */
#ifndef GPTD_UTF8_H
#define GPTD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one UTF-8 character at s[0..len); returns its byte length, or 0 if malformed
 * (overlong forms, surrogates and values past U+10FFFF included). */
int utf8_decode(const char *s, size_t len, uint32_t *cp);
/* Writes cp as UTF-8 into out (4 bytes room); returns the byte count. */
int utf8_encode(uint32_t cp, char *out);
/* Makes the NUL-terminated s valid UTF-8 in place: every byte that is not part of a whole,
 * well-formed character becomes '?', so a message quoting raw client bytes, or one cut short
 * inside a character, is still valid text. Returns the number of bytes replaced. */
size_t utf8_make_valid(char *s);

#endif
