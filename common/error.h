/* Errors are values: library code fills an Error and returns -1; the caller decides how to
 * report it (a CLI prints it and exits, the daemon turns it into an HTTP reply). */
#ifndef GPTD_ERROR_H
#define GPTD_ERROR_H

#include <stddef.h>

typedef struct {
    char message[512];
} Error;

/* Formats the message into err (if non-NULL) and returns -1, so callers can write
 * `return error_set(err, "...", ...);`. */
int error_set(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to an existing message (for layering file names over parse errors). */
int error_wrap(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
