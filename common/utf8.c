#include "utf8.h"

#include <string.h>

int utf8_decode(const char *s, size_t len, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (len == 0) return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    int n;
    uint32_t c, min;
    if ((u[0] & 0xE0) == 0xC0)
        n = 2, c = u[0] & 0x1F, min = 0x80;
    else if ((u[0] & 0xF0) == 0xE0)
        n = 3, c = u[0] & 0x0F, min = 0x800;
    else if ((u[0] & 0xF8) == 0xF0)
        n = 4, c = u[0] & 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)n > len) return 0;
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (u[i] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not characters. */
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return n;
}

int utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_make_valid(char *s) {
    size_t len = strlen(s), replaced = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = utf8_decode(s + i, len - i, &cp);
        if (n > 0) {
            i += (size_t)n;
        } else {
            s[i++] = '?';
            replaced++;
        }
    }
    return replaced;
}

/* The length of the character starting with lead byte b (1-4), or 0 if no character starts so;
 * [*lo, *hi] is the range its second byte must fall in (which rules out overlong forms,
 * surrogates and values past U+10FFFF). */
static int lead_length(unsigned char b, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80, *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* At p[0..n): a whole character (its length), a character not finished before n (0), or bytes
 * that cannot become one (minus the length of their maximal subpart, which U+FFFD replaces). */
static int scan(const unsigned char *p, size_t n) {
    unsigned char lo, hi;
    int need = lead_length(p[0], &lo, &hi);
    if (need == 0) return -1;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return 0;
        if (p[i] < lo || p[i] > hi) return -i;
        lo = 0x80, hi = 0xBF;
    }
    return need;
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

size_t utf8_stream_write(Utf8Stream *s, const char *bytes, size_t len, char *out) {
    size_t o = 0;
    if (s->n > 0 && len > 0) { /* the waiting bytes first, with those that finish them */
        unsigned char w[8];
        size_t take = len < 4 ? len : 4;
        memcpy(w, s->pending, (size_t)s->n);
        memcpy(w + s->n, bytes, take);
        int r = scan(w, (size_t)s->n + take);
        if (r == 0) { /* still not finished: all of bytes (fewer than 4) waits */
            memcpy(s->pending + s->n, bytes, len);
            s->n += (int)len;
            return 0;
        }
        /* The waiting bytes are a valid beginning, so whatever r is covers them all. */
        size_t used = (size_t)(r > 0 ? r : -r);
        memcpy(out, r > 0 ? (const char *)w : REPLACEMENT, r > 0 ? used : 3);
        o = r > 0 ? used : 3;
        bytes += used - (size_t)s->n;
        len -= used - (size_t)s->n;
        s->n = 0;
    }
    for (size_t i = 0; i < len;) {
        int r = scan((const unsigned char *)bytes + i, len - i);
        if (r == 0) {
            memcpy(s->pending, bytes + i, len - i);
            s->n = (int)(len - i);
            break;
        }
        if (r > 0) {
            memcpy(out + o, bytes + i, (size_t)r);
            o += (size_t)r;
            i += (size_t)r;
        } else {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            i += (size_t)-r;
        }
    }
    return o;
}

size_t utf8_stream_end(Utf8Stream *s, char *out) {
    if (s->n == 0) return 0;
    s->n = 0;
    memcpy(out, REPLACEMENT, 3);
    return 3;
}

size_t utf8_chars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}
