#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int error_set(Error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int error_wrap(Error *err, const char *fmt, ...) {
    if (err) {
        char prefix[256], old[sizeof err->message];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->message, sizeof old);
        /* Truncation of a long message is acceptable; it must stay NUL-terminated. */
        size_t n = strlen(prefix), cap = sizeof err->message - 1;
        if (n > cap - 2) n = cap - 2;
        memcpy(err->message, prefix, n);
        memcpy(err->message + n, ": ", 2);
        size_t rest = strnlen(old, cap - n - 2);
        memcpy(err->message + n + 2, old, rest);
        err->message[n + 2 + rest] = '\0';
    }
    return -1;
}
