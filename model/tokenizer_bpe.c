#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_bpe.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/utf8.h"

/* GPT-2's pre-tokenization rule (openai/gpt-2 encoder.py). \p{L} and \p{N} are Unicode's classes,
 * hence PCRE2 with UTF and UCP rather than tables of our own. */
static const char PIECE_RULE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* The pieces already merged, by their bytes: text repeats its words. Bounded: emptied when full. */
#define CACHE_SLOTS 65536
#define CACHE_MAX_PIECE 64

typedef struct {
    char *bytes; /* NULL: empty slot */
    size_t len;
    int *ids, n;
} CacheEntry;

/* A pair of adjacent tokens that merges: its rank (lower first) and the token it becomes. */
typedef struct {
    uint64_t key; /* left << 32 | right, +1 so that 0 means empty */
    int rank, merged;
} MergeSlot;

struct BpeTokenizer {
    int vocab_size;
    char **token_bytes; /* (vocab_size) each token's raw bytes */
    size_t *token_len;
    int byte_token[256]; /* the token of each single byte */
    MergeSlot *merges;   /* open addressing, merge_mask + 1 slots */
    size_t merge_mask;
    pcre2_code *rule;
    size_t max_piece; /* the longest token's bytes */
    char *vocab_text; /* the files it was read from, kept to be saved with a checkpoint */
    char *merges_text;
    pthread_mutex_t cache_lock; /* guards cache */
    CacheEntry *cache;
    size_t cache_used;
};

/* ---- GPT-2's byte-to-unicode map: the vocabulary spells each byte as a printable character -- */

/* The inverse map, which is what reading needs: the byte each of the 512 first code points
 * spells, or -1. */
static void unicode_to_byte_table(int unicode_to_byte[512]) {
    int n = 0;
    for (int cp = 0; cp < 512; cp++) unicode_to_byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        unicode_to_byte[printable ? b : 256 + n++] = b;
    }
}

/* A vocabulary string back to its bytes; -1 when a character is not one of the 256. */
static long unmap_token(const char *s, size_t len, const int *unicode_to_byte, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp);
        if (k == 0 || cp >= 512 || unicode_to_byte[cp] < 0) return -1;
        out[o++] = (char)unicode_to_byte[cp];
        i += (size_t)k;
    }
    return (long)o;
}

/* ---- hashing ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static uint64_t pair_key(int left, int right) {
    return ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
}

static MergeSlot *merge_find(const BpeTokenizer *t, int left, int right) {
    uint64_t key = pair_key(left, right);
    for (size_t i = mix(key) & t->merge_mask;; i = (i + 1) & t->merge_mask)
        if (t->merges[i].key == key || t->merges[i].key == 0) return &t->merges[i];
}

/* The vocabulary by bytes, only while loading: index into token_bytes, -1 empty. */
typedef struct {
    int *slot;
    size_t mask;
} TokenIndex;

static int token_find(const BpeTokenizer *t, const TokenIndex *x, const char *p, size_t n) {
    for (size_t i = hash_bytes(p, n) & x->mask;; i = (i + 1) & x->mask) {
        int id = x->slot[i];
        if (id < 0) return -1;
        if (t->token_len[id] == n && memcmp(t->token_bytes[id], p, n) == 0) return id;
    }
}

/* ---- loading ------------------------------------------------------------------------------ */

static size_t pow2_at_least(size_t n) {
    size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

static int load_vocab(BpeTokenizer *t, const char *json, size_t len, TokenIndex *index,
                      Error *err) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "vocabulary: not a JSON object of token -> id");
    }
    int n = cJSON_GetArraySize(root);
    int unicode_to_byte[512];
    unicode_to_byte_table(unicode_to_byte);
    t->vocab_size = n;
    t->token_bytes = calloc((size_t)n, sizeof *t->token_bytes);
    t->token_len = calloc((size_t)n, sizeof *t->token_len);
    index->mask = pow2_at_least((size_t)n * 2) - 1;
    index->slot = malloc((index->mask + 1) * sizeof *index->slot);
    if (!t->token_bytes || !t->token_len || !index->slot) {
        cJSON_Delete(root);
        return error_set(err, "out of memory");
    }
    memset(index->slot, -1, (index->mask + 1) * sizeof *index->slot);
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        double v = cJSON_IsNumber(item) ? item->valuedouble : -1;
        int id = (int)v;
        if (v != id || id < 0 || id >= n || t->token_bytes[id]) {
            error_set(err, "vocabulary: token \"%.40s\" has id %.0f: ids must be 0..%d, each once",
                      item->string, v, n - 1);
            cJSON_Delete(root);
            return -1;
        }
        size_t slen = strlen(item->string);
        char *bytes = malloc(slen + 1);
        long blen = bytes ? unmap_token(item->string, slen, unicode_to_byte, bytes) : -1;
        if (blen <= 0) {
            if (bytes)
                error_set(err, "vocabulary: token \"%.40s\" is not in GPT-2's byte alphabet",
                          item->string);
            else
                error_set(err, "out of memory");
            free(bytes);
            cJSON_Delete(root);
            return -1;
        }
        t->token_bytes[id] = bytes;
        t->token_len[id] = (size_t)blen;
        if ((size_t)blen > t->max_piece) t->max_piece = (size_t)blen;
        if (token_find(t, index, bytes, (size_t)blen) >= 0) {
            error_set(err, "vocabulary: token \"%.40s\" is listed twice", item->string);
            cJSON_Delete(root);
            return -1;
        }
        size_t i = hash_bytes(bytes, (size_t)blen) & index->mask;
        while (index->slot[i] >= 0) i = (i + 1) & index->mask;
        index->slot[i] = id;
        if (blen == 1) t->byte_token[(unsigned char)bytes[0]] = id;
    }
    cJSON_Delete(root);
    for (int b = 0; b < 256; b++)
        if (t->byte_token[b] < 0)
            return error_set(err,
                             "vocabulary: no token for byte 0x%02x (byte-level BPE needs all "
                             "256)",
                             b);
    return 0;
}

static int load_merges(BpeTokenizer *t, const char *text, size_t len, const TokenIndex *index,
                       Error *err) {
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    t->merge_mask = pow2_at_least(lines * 2) - 1;
    t->merges = calloc(t->merge_mask + 1, sizeof *t->merges);
    if (!t->merges) return error_set(err, "out of memory");
    int unicode_to_byte[512];
    unicode_to_byte_table(unicode_to_byte);
    char *buf = malloc(len + 1);
    if (!buf) return error_set(err, "out of memory");
    int rank = 0, line_no = 0;
    for (size_t at = 0; at < len;) {
        const char *line = text + at, *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + 1;
        line_no++;
        if (n > 0 && line[n - 1] == '\r') n--;
        if (n == 0 || (line_no == 1 && line[0] == '#')) continue;
        const char *space = memchr(line, ' ', n);
        long a = -1, b = -1;
        if (space && space > line && space < line + n - 1) {
            a = unmap_token(line, (size_t)(space - line), unicode_to_byte, buf);
            int left = a > 0 ? token_find(t, index, buf, (size_t)a) : -1;
            size_t rlen = (size_t)(line + n - space - 1);
            b = a > 0 ? unmap_token(space + 1, rlen, unicode_to_byte, buf + a) : -1;
            int right = b > 0 ? token_find(t, index, buf + a, (size_t)b) : -1;
            int merged = left >= 0 && right >= 0 ? token_find(t, index, buf, (size_t)(a + b)) : -1;
            if (merged >= 0) {
                MergeSlot *s = merge_find(t, left, right);
                if (s->key == 0) { /* a pair listed twice keeps its first (highest) rank */
                    s->key = pair_key(left, right);
                    s->rank = rank;
                    s->merged = merged;
                }
                rank++;
                continue;
            }
        }
        error_set(err,
                  "merges line %d: \"%.*s\" is not two tokens of the vocabulary whose join is "
                  "one too",
                  line_no, (int)(n < 60 ? n : 60), line);
        free(buf);
        return -1;
    }
    free(buf);
    return 0;
}

int bpe_load(BpeTokenizer **out, const char *vocab_json, size_t vocab_len, const char *merges,
             size_t merges_len, Error *err) {
    BpeTokenizer *t = calloc(1, sizeof *t);
    if (!t) return error_set(err, "out of memory");
    pthread_mutex_init(&t->cache_lock, NULL);
    TokenIndex index = {0};
    int rc = load_vocab(t, vocab_json, vocab_len, &index, err);
    if (!rc) rc = load_merges(t, merges, merges_len, &index, err);
    free(index.slot);
    if (!rc) {
        t->vocab_text = malloc(vocab_len + 1);
        t->merges_text = malloc(merges_len + 1);
        if (!t->vocab_text || !t->merges_text) rc = error_set(err, "out of memory");
    }
    if (!rc) {
        memcpy(t->vocab_text, vocab_json, vocab_len);
        t->vocab_text[vocab_len] = '\0';
        memcpy(t->merges_text, merges, merges_len);
        t->merges_text[merges_len] = '\0';
    }
    if (!rc) {
        int code;
        PCRE2_SIZE offset;
        t->rule =
            pcre2_compile((PCRE2_SPTR)PIECE_RULE, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, NULL);
        t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
        if (!t->rule || !t->cache) rc = error_set(err, "cannot compile the pre-tokenization rule");
    }
    if (rc) {
        bpe_free(t);
        return -1;
    }
    if (t->rule) pcre2_jit_compile(t->rule, PCRE2_JIT_COMPLETE); /* faster where JIT exists */
    *out = t;
    return 0;
}

int bpe_load_dir(BpeTokenizer **out, const char *dir, Error *err) {
    static const char *const names[][2] = {{"vocab.json", "merges.txt"},
                                           {"encoder.json", "vocab.bpe"}};
    char vpath[4096], mpath[4096];
    for (size_t i = 0; i < 2; i++) {
        snprintf(vpath, sizeof vpath, "%s/%s", dir, names[i][0]);
        snprintf(mpath, sizeof mpath, "%s/%s", dir, names[i][1]);
        size_t vlen = 0, mlen = 0;
        char *v = read_file(vpath, &vlen);
        if (!v) continue;
        char *m = read_file(mpath, &mlen);
        if (!m) {
            free(v);
            return error_set(err, "%s: cannot read it (needed beside %s)", mpath, vpath);
        }
        int rc = bpe_load(out, v, vlen, m, mlen, err);
        free(v);
        free(m);
        return rc ? error_wrap(err, "%s", dir) : 0;
    }
    return error_set(err, "%s: no vocab.json + merges.txt nor encoder.json + vocab.bpe", dir);
}

void bpe_free(BpeTokenizer *t) {
    if (!t) return;
    for (int i = 0; t->token_bytes && i < t->vocab_size; i++) free(t->token_bytes[i]);
    free(t->token_bytes);
    free(t->token_len);
    free(t->merges);
    free(t->vocab_text);
    free(t->merges_text);
    if (t->rule) pcre2_code_free(t->rule);
    for (size_t i = 0; t->cache && i < CACHE_SLOTS; i++) {
        free(t->cache[i].bytes);
        free(t->cache[i].ids);
    }
    free(t->cache);
    pthread_mutex_destroy(&t->cache_lock);
    free(t);
}

int bpe_vocab_size(const BpeTokenizer *t) { return t->vocab_size; }

size_t bpe_max_piece(const BpeTokenizer *t) { return t->max_piece; }

int bpe_find(const BpeTokenizer *t, const char *bytes, size_t len) {
    for (int id = 0; id < t->vocab_size; id++)
        if (t->token_len[id] == len && memcmp(t->token_bytes[id], bytes, len) == 0) return id;
    return -1;
}

void bpe_source(const BpeTokenizer *t, const char **vocab_json, const char **merges) {
    *vocab_json = t->vocab_text;
    *merges = t->merges_text;
}

const char *bpe_token_bytes(const BpeTokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    *len = t->token_len[id];
    return t->token_bytes[id];
}

/* ---- encoding ----------------------------------------------------------------------------- */

/* Merges one piece's tokens in place; returns how many remain. As GPT-2's reference: the pair of
 * lowest rank merges at every place it occurs, left to right, then the next lowest. */
static int merge_piece(const BpeTokenizer *t, int *sym, int n) {
    while (n > 1) {
        int best = -1, best_rank = 0;
        for (int i = 0; i + 1 < n; i++) {
            const MergeSlot *s = merge_find(t, sym[i], sym[i + 1]);
            if (s->key && (best < 0 || s->rank < best_rank)) best = i, best_rank = s->rank;
        }
        if (best < 0) break;
        int left = sym[best], right = sym[best + 1];
        int merged = merge_find(t, left, right)->merged, o = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && sym[i] == left && sym[i + 1] == right) {
                sym[o++] = merged;
                i += 2;
            } else {
                sym[o++] = sym[i++];
            }
        }
        n = o;
    }
    return n;
}

static void emit(int *ids, size_t cap, size_t *n, const int *sym, int count) {
    for (int i = 0; i < count; i++, (*n)++)
        if (*n < cap) ids[*n] = sym[i];
}

/* One piece: from the cache, or merged (and cached when short). */
static int encode_piece(BpeTokenizer *t, const char *p, size_t len, int *ids, size_t cap, size_t *n,
                        int *scratch) {
    size_t slot = hash_bytes(p, len) & (CACHE_SLOTS - 1);
    if (len <= CACHE_MAX_PIECE) {
        pthread_mutex_lock(&t->cache_lock);
        CacheEntry *c = &t->cache[slot];
        if (c->bytes && c->len == len && memcmp(c->bytes, p, len) == 0) {
            emit(ids, cap, n, c->ids, c->n);
            pthread_mutex_unlock(&t->cache_lock);
            return 0;
        }
        pthread_mutex_unlock(&t->cache_lock);
    }
    for (size_t i = 0; i < len; i++) scratch[i] = t->byte_token[(unsigned char)p[i]];
    int count = merge_piece(t, scratch, (int)len);
    emit(ids, cap, n, scratch, count);
    if (len > CACHE_MAX_PIECE) return 0;
    char *bytes = malloc(len);
    int *copy = malloc((size_t)count * sizeof *copy);
    if (!bytes || !copy) { /* the cache is only a saving */
        free(bytes);
        free(copy);
        return 0;
    }
    memcpy(bytes, p, len);
    memcpy(copy, scratch, (size_t)count * sizeof *copy);
    pthread_mutex_lock(&t->cache_lock);
    CacheEntry *c = &t->cache[slot];
    free(c->bytes); /* a collision replaces the older piece */
    free(c->ids);
    *c = (CacheEntry){bytes, len, copy, count};
    pthread_mutex_unlock(&t->cache_lock);
    return 0;
}

int bpe_encode(BpeTokenizer *t, const char *text, size_t len, int *ids, size_t cap, size_t *n,
               Error *err) {
    *n = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->rule, NULL);
    int *scratch = malloc((len ? len : 1) * sizeof *scratch);
    if (!md || !scratch) {
        pcre2_match_data_free(md);
        free(scratch);
        return error_set(err, "out of memory");
    }
    size_t at = 0;
    while (at < len) {
        int rc = pcre2_match(t->rule, (PCRE2_SPTR)text, len, at, 0, md, NULL);
        size_t start = len, end = len;
        if (rc > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            start = ov[0];
            end = ov[1];
        }
        /* Bytes no rule matches (invalid UTF-8) are a piece of their own: nothing is lost. */
        if (start > at) encode_piece(t, text + at, start - at, ids, cap, n, scratch);
        if (end > start) encode_piece(t, text + start, end - start, ids, cap, n, scratch);
        at = end > at ? end : len;
    }
    pcre2_match_data_free(md);
    free(scratch);
    return 0;
}
