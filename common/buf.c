#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(Buf *b, size_t max) { *b = (Buf){.max = max}; }

void buf_free(Buf *b) {
    free(b->data);
    buf_init(b, b->max);
}

void buf_clear(Buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

size_t buf_cap_for(const Buf *b, size_t more) {
    size_t need = b->len + more + 1, cap = b->cap ? b->cap : 256; /* + 1: the NUL */
    while (cap < need) cap *= 2;
    return cap;
}

int buf_reserve(Buf *b, size_t more) {
    if (b->failed) return -1;
    if (more > b->max - b->len) {
        b->failed = true;
        return -1;
    }
    size_t cap = buf_cap_for(b, more);
    if (cap == b->cap) return 0;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = true;
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

int buf_append(Buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *buf_take(Buf *b) {
    char *out = b->data;
    if (b->failed) {
        free(out);
        out = NULL;
    } else if (!out) {
        out = calloc(1, 1); /* nothing appended: "" */
    }
    buf_init(b, b->max);
    return out;
}

char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n + 1))) {
            if (fread(data, 1, (size_t)n, f) != (size_t)n) {
                free(data);
                data = NULL;
            } else {
                data[n] = '\0';
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return data;
}
