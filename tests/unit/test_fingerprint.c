/* model/fingerprint.c: the hash gives known values for known inputs (FNV-1a 64's published
 * vectors, and values computed by an independent Python implementation of the documented
 * scheme), so a fingerprint stays the same from build to build; and it changes with any weight,
 * the vocabulary, the config. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../model/fingerprint.h"

static void the_hash_gives_known_values(void **state) {
    (void)state;
    /* FNV-1a 64's own test vectors: under 8 bytes the word-wise form is the byte-wise one */
    assert_true(fingerprint_hash(FINGERPRINT_FNV_OFFSET, "", 0) == FINGERPRINT_FNV_OFFSET);
    assert_true(fingerprint_hash(FINGERPRINT_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(fingerprint_hash(FINGERPRINT_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ull);
    /* two little-endian words, then three tail bytes */
    assert_true(fingerprint_hash(FINGERPRINT_FNV_OFFSET, "0123456789abcdefXYZ", 19) ==
                0xaf6d82e0fa8645b0ull);
    /* MurmurHash3's fmix64 */
    assert_true(fingerprint_finish(0) == 0);
    assert_true(fingerprint_finish(1) == 0xb456bcfc34c2cb2cull);
    assert_true(fingerprint_finish(FINGERPRINT_FNV_OFFSET) == 0xefd01f60ba992926ull);
}

/* A tiny model whose parameters are i / 4. */
static void make_model(GPT *m, Tokenizer *tok) {
    GPTConfig c = {.vocab_size = 3,
                   .n_layer = 1,
                   .n_head = 1,
                   .n_embd = 2,
                   .block_size = 2,
                   .activation = ACT_RELU,
                   .qkv_bias = false,
                   .tied_head = false};
    Error err;
    if (gpt_init(m, &c, &err) || tokenizer_from_string(tok, "abc", &err))
        fail_msg("%s", err.message);
    for (size_t i = 0; i < m->n_params; i++) m->param_memory[i] = (float)i * 0.25f;
}

static void a_model_gives_a_known_fingerprint(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    make_model(&m, &tok);
    assert_int_equal(m.n_params, 91);
    char fp[FINGERPRINT_SIZE];
    fingerprint_model(&m, &tok, fp);
    /* From an independent implementation of fingerprint.h's scheme (Python 3):
     *   import struct
     *   M = (1 << 64) - 1
     *   def h(x, d):  # FNV-1a 64 over little-endian words, then the tail's bytes
     *       i = 0
     *       while i + 8 <= len(d): x = ((x ^ int.from_bytes(d[i:i+8], 'little')) * 0x100000001b3) &
     * M; i += 8 for b in d[i:]: x = ((x ^ b) * 0x100000001b3) & M return x def fmix(x): x ^= x >>
     * 33; x = x * 0xff51afd7ed558ccd & M; x ^= x >> 33 x = x * 0xc4ceb9fe1a85ec53 & M; return x ^
     * (x >> 33) I = lambda x, v: h(x, struct.pack('<q', v)); B = lambda x, d: h(I(x, len(d)), d) x
     * = I(0xcbf29ce484222325, 1)  # GPTD_NUMERICS_VERSION for v in (3, 1, 1, 2, 2, 0, 0, 0): x =
     * I(x, v)  # the config, field by field x = I(I(x, 0), 3)  # char, 3 tokens for t in b'abc': x
     * = B(x, bytes([t])) x = B(x, b''.join(struct.pack('<f', i * 0.25) for i in range(91)))
     *   print('fp_%016x' % fmix(x)) */
    assert_string_equal(fp, "fp_327a74b1506f4343");
    tokenizer_free(&tok);
    gpt_free(&m);
}

static void any_change_changes_it(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok, other;
    make_model(&m, &tok);
    char base[FINGERPRINT_SIZE], fp[FINGERPRINT_SIZE];
    fingerprint_model(&m, &tok, base);
    fingerprint_model(&m, &tok, fp);
    assert_string_equal(fp, base); /* computed twice: the same */
    /* one bit of one weight, anywhere: the first, a middle one and the last */
    size_t where[] = {0, m.n_params / 2, m.n_params - 1};
    for (size_t k = 0; k < 3; k++) {
        float saved = m.param_memory[where[k]];
        m.param_memory[where[k]] = nextafterf(saved, 1e9f);
        fingerprint_model(&m, &tok, fp);
        assert_string_not_equal(fp, base);
        m.param_memory[where[k]] = saved;
    }
    /* -0 is not +0: the bits are hashed, not the values */
    float saved = m.param_memory[0];
    m.param_memory[0] = -0.0f;
    fingerprint_model(&m, &tok, fp);
    assert_string_not_equal(fp, base);
    m.param_memory[0] = saved;
    /* another vocabulary of the same size */
    Error err;
    if (tokenizer_from_string(&other, "abd", &err)) fail_msg("%s", err.message);
    fingerprint_model(&m, &other, fp);
    assert_string_not_equal(fp, base);
    tokenizer_free(&other);
    /* another activation, the same weights */
    m.config.activation = ACT_GELU;
    fingerprint_model(&m, &tok, fp);
    assert_string_not_equal(fp, base);
    tokenizer_free(&tok);
    gpt_free(&m);
}

int main(void) {
    apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_hash_gives_known_values),
        cmocka_unit_test(a_model_gives_a_known_fingerprint),
        cmocka_unit_test(any_change_changes_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
