/* What the kinds of tokenizer share, and the choice between them (tokenizer.h). */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

const char *tokenizer_kind_name(const Tokenizer *tok) {
    return tok->kind == TOKENIZER_BPE ? "gpt2-bpe" : "char";
}

long tokenizer_count(const char *text, size_t len, Error *err) {
    long count = 0;
    for (size_t i = 0; i < len; count++) {
        uint32_t cp;
        int n = utf8_decode(text + i, len - i, &cp);
        if (n == 0) return error_set(err, "invalid UTF-8 at byte %zu", i);
        i += (size_t)n;
    }
    return count;
}

/* The fields every kind has, from a loaded BPE tokenizer (taken over by tok). */
static void from_bpe(Tokenizer *tok, BpeTokenizer *bpe) {
    memset(tok, 0, sizeof *tok);
    tok->kind = TOKENIZER_BPE;
    tok->bpe = bpe;
    tok->vocab_size = bpe_vocab_size(bpe);
    tok->max_piece = (int)bpe_max_piece(bpe);
    /* GPT-2 ends every document with it; as Hugging Face's generate, a sampled one ends a reply
     * and an empty prompt starts from it. */
    static const char END[] = "<|endoftext|>";
    tok->end_token = bpe_find(bpe, END, sizeof END - 1);
    tok->start_token = tok->end_token >= 0 ? tok->end_token : 0;
}

int tokenizer_from_bpe(Tokenizer *tok, const char *vocab_json, size_t vocab_len, const char *merges,
                       size_t merges_len, Error *err) {
    BpeTokenizer *bpe;
    memset(tok, 0, sizeof *tok);
    if (bpe_load(&bpe, vocab_json, vocab_len, merges, merges_len, err)) return -1;
    from_bpe(tok, bpe);
    return 0;
}

int tokenizer_from_bpe_dir(Tokenizer *tok, const char *dir, Error *err) {
    BpeTokenizer *bpe;
    memset(tok, 0, sizeof *tok);
    if (bpe_load_dir(&bpe, dir, err)) return -1;
    from_bpe(tok, bpe);
    return 0;
}

void tokenizer_free(Tokenizer *tok) {
    free(tok->chars);
    free(tok->utf8);
    free(tok->len);
    bpe_free(tok->bpe);
    memset(tok, 0, sizeof *tok);
}

int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap,
                     size_t *n, Error *err) {
    if (tok->kind == TOKENIZER_CHAR) return char_encode(tok, text, len, ids, cap, false, n, err);
    if (bpe_encode(tok->bpe, text, len, ids, cap, n, err)) return -1;
    if (*n > cap) return error_set(err, "text longer than %zu tokens", cap);
    return 0;
}

static void reverse(int *a, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        int t = a[i];
        a[i] = a[n - 1 - i];
        a[n - 1 - i] = t;
    }
}

int tokenizer_encode_tail(const Tokenizer *tok, const char *text, size_t len, int *ids, size_t cap,
                          size_t *kept, size_t *total, Error *err) {
    if (cap == 0) return error_set(err, "no room for any token");
    if (tok->kind == TOKENIZER_BPE) {
        /* A token holds at least one byte: len ids always suffice. */
        int *all = malloc((len ? len : 1) * sizeof *all);
        if (!all) return error_set(err, "out of memory");
        if (bpe_encode(tok->bpe, text, len, all, len, total, err)) {
            free(all);
            return -1;
        }
        *kept = *total < cap ? *total : cap;
        memcpy(ids, all + (*total - *kept), *kept * sizeof *ids);
        free(all);
        return 0;
    }
    if (char_encode(tok, text, len, ids, cap, true, total, err)) return -1;
    *kept = *total < cap ? *total : cap;
    if (*total > cap) { /* the oldest kept id sits at total % cap: rotate it to the front */
        size_t head = *total % cap;
        reverse(ids, head);
        reverse(ids + head, cap - head);
        reverse(ids, cap);
    }
    return 0;
}

const char *tokenizer_piece(const Tokenizer *tok, int id, size_t *len) {
    if (id < 0 || id >= tok->vocab_size) return NULL;
    if (tok->kind == TOKENIZER_BPE) return bpe_token_bytes(tok->bpe, id, len);
    *len = tok->len[id];
    return tok->utf8[id];
}

size_t tokenizer_max_text(const Tokenizer *tok) {
    /* A character token is one whole character; a BPE token's bytes may each become U+FFFD. */
    return tok->kind == TOKENIZER_BPE ? 3 * (size_t)tok->max_piece : (size_t)tok->max_piece;
}

int tokenizer_decode(const Tokenizer *tok, int id, char *out) {
    size_t len;
    const char *piece = tokenizer_piece(tok, id, &len);
    if (!piece) return 0;
    memcpy(out, piece, len);
    return (int)len;
}
