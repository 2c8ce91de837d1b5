#include "json_text.h"

void json_append_string(Buf *b, const char *text, size_t len) {
    buf_append(b, "\"", 1);
    size_t run = 0; /* bytes since the last escape, copied in one append */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                                      : NULL;
        if (!esc && c >= 0x20) {
            run++;
            continue;
        }
        buf_append(b, text + i - run, run);
        run = 0;
        if (esc)
            buf_append(b, esc, 2);
        else
            buf_printf(b, "\\u%04x", c);
    }
    buf_append(b, text + len - run, run);
    buf_append(b, "\"", 1);
}
