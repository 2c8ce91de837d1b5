/* The model's fingerprint (fingerprint.h). */
#include "fingerprint.h"

#include <endian.h>
#include <stdio.h>
#include <string.h>

#define FNV_PRIME 0x100000001b3ull

uint64_t fingerprint_hash(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h ^= le64toh(w);
        h *= FNV_PRIME;
    }
    for (; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t fingerprint_finish(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_int(uint64_t h, int64_t v) {
    uint64_t le = htole64((uint64_t)v);
    return fingerprint_hash(h, &le, sizeof le);
}

/* A run of bytes after its length. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    return fingerprint_hash(hash_int(h, (int64_t)n), data, n);
}

static uint64_t hash_config(uint64_t h, const GPTConfig *c) {
    const int64_t fields[] = {c->vocab_size, c->n_layer,         c->n_head,   c->n_embd,
                              c->block_size, (int)c->activation, c->qkv_bias, c->tied_head};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) h = hash_int(h, fields[i]);
    return h;
}

static uint64_t hash_tokenizer(uint64_t h, const Tokenizer *tok) {
    h = hash_int(h, tok->kind);
    h = hash_int(h, tok->vocab_size);
    for (int id = 0; id < tok->vocab_size; id++) {
        size_t len = 0;
        const char *piece = tokenizer_piece(tok, id, &len);
        h = hash_bytes(h, piece, len);
    }
    if (tok->kind == TOKENIZER_BPE) { /* the merges decide how a prompt tokenizes */
        const char *vocab, *merges;
        bpe_source(tok->bpe, &vocab, &merges);
        h = hash_bytes(h, merges, strlen(merges));
    }
    return h;
}

void fingerprint_model(const GPT *model, const Tokenizer *tok, char out[FINGERPRINT_SIZE]) {
    uint64_t h = hash_int(FINGERPRINT_FNV_OFFSET, GPTD_NUMERICS_VERSION);
    h = hash_config(h, &model->config);
    h = hash_tokenizer(h, tok);
    /* float32 as IEEE-754 bits in little-endian order: the words hashed are the same on x86-64
     * and arm64 */
    h = hash_bytes(h, model->param_memory, model->n_params * sizeof(float));
    snprintf(out, FINGERPRINT_SIZE, "fp_%016llx", (unsigned long long)fingerprint_finish(h));
}
