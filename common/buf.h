/* A growable byte buffer with a cap, the one buffer type of the daemon (as curl's dynbuf): it
 * doubles as it fills and refuses to grow past its cap, so no client and no counter can make
 * the daemon's memory grow without bound. The contents stay NUL-terminated. */
#ifndef GPTD_BUF_H
#define GPTD_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data; /* NULL until the first byte */
    size_t len, cap;
    size_t max;  /* cap on len */
    bool failed; /* an append was refused (past max, or out of memory); later ones are ignored */
} Buf;

void buf_init(Buf *b, size_t max);
void buf_free(Buf *b);
/* Empties b but keeps its memory, for a buffer that is filled and drained over and over. */
void buf_clear(Buf *b);

/* The capacity buf_reserve(b, more) would leave: lets a caller charge memory before it is taken. */
size_t buf_cap_for(const Buf *b, size_t more);
/* Room for `more` bytes after len; -1 (and failed) past max or when out of memory. */
int buf_reserve(Buf *b, size_t more);
int buf_append(Buf *b, const void *p, size_t n);
int buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the contents (NUL-terminated, malloc'd) to the caller and empties b; NULL if an append
 * failed. */
char *buf_take(Buf *b);

/* A whole file, NUL-terminated (*len bytes before the NUL); NULL with errno set when it cannot
 * be read. The caller frees it. */
char *read_file(const char *path, size_t *len);

#endif
