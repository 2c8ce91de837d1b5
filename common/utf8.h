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
/* Characters (code points) in the valid UTF-8 s[0..len): the bytes that begin one. */
size_t utf8_chars(const char *s, size_t len);
/* Makes the NUL-terminated s valid UTF-8 in place: every byte that is not part of a whole,
 * well-formed character becomes '?', so a message quoting raw client bytes, or one cut short
 * inside a character, is still valid text. Returns the number of bytes replaced. */
size_t utf8_make_valid(char *s);

/* Bytes arriving in pieces (a BPE token may end inside a character) made into valid UTF-8 as
 * they come: whole characters pass, each maximal invalid subpart becomes U+FFFD (as Python's
 * decode(errors="replace") and every browser do), and a character not finished yet waits for
 * the next piece, so no output ever ends inside a character. */
typedef struct {
    char pending[4];
    int n; /* bytes waiting: the beginning of a character, 0-3 */
} Utf8Stream;

/* Writes the valid UTF-8 that bytes[0..len) complete to out and returns its length: at most
 * 3 bytes for each byte taken in, waiting ones included. */
size_t utf8_stream_write(Utf8Stream *s, const char *bytes, size_t len, char *out);
/* The end of the bytes: a character left unfinished becomes U+FFFD. Returns 0 or 3. */
size_t utf8_stream_end(Utf8Stream *s, char *out);

#endif
