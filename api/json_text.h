/* JSON strings written by hand into a Buf, for replies too large or too raw for a cJSON tree:
 * generated text that may hold a NUL byte, and the token lists of /tokenize (a cJSON node per
 * token would cost some 64 bytes each for a body's million characters). */
#ifndef GPTD_JSON_TEXT_H
#define GPTD_JSON_TEXT_H

#include <stddef.h>

#include "../common/buf.h"

/* Appends text[0..len) as a quoted JSON string, escaped as cJSON escapes ("\u0000" included).
 * The bytes are copied as they are: the caller makes them valid UTF-8. */
void json_append_string(Buf *b, const char *text, size_t len);

#endif
