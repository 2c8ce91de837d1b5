/* The character tokenizer (model/tokenizer.c): the vocabulary built from text and stored as a
 * string, encoding and decoding on ASCII and multi-byte UTF-8, the tail of a long prompt, and
 * every kind of bad input refused with a message that names it (the character and its position,
 * or the byte where UTF-8 goes wrong). GPTD_TEST_VERBOSE=1 prints the refusal messages. */
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

#include "../../common/error.h"
#include "../../common/rng.h"
#include "../../model/tokenizer.h"

static void make_tokenizer(Tokenizer *tok, const char *text) {
    Error err;
    if (tokenizer_build(tok, text, strlen(text), &err)) fail_msg("%s", err.message);
}

static void assert_same_tokenizer(const Tokenizer *a, const Tokenizer *b) {
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_memory_equal(a->chars, b->chars, (size_t)a->vocab_size * sizeof *a->chars);
}

/* GPTD_TEST_VERBOSE=1 prints every refusal message. */
static bool verbose(void) {
    const char *e = getenv("GPTD_TEST_VERBOSE");
    return e && strcmp(e, "1") == 0;
}

static void tokenizer_builds_sorted_unique_chars(void **state) {
    (void)state;
    Tokenizer tok;
    Error err;
    make_tokenizer(&tok, "hello");
    assert_int_equal(tok.vocab_size, 4);
    const uint32_t want[] = {'e', 'h', 'l', 'o'};
    assert_memory_equal(tok.chars, want, sizeof want);
    int ids[8];
    size_t n = 0;
    assert_int_equal(tokenizer_encode(&tok, "hello", 5, ids, 8, &n, &err), 0);
    assert_int_equal(n, 5);
    const int want_ids[] = {1, 0, 2, 2, 3};
    assert_memory_equal(ids, want_ids, sizeof want_ids);
    char *s = tokenizer_to_string(&tok);
    assert_string_equal(s, "ehlo");
    free(s);
    char out[4];
    assert_int_equal(tokenizer_decode(&tok, 1, out), 1);
    assert_int_equal(out[0], 'h');
    assert_int_equal(tokenizer_decode(&tok, 4, out), 0);
    assert_int_equal(tokenizer_decode(&tok, -1, out), 0);

    tokenizer_free(&tok);
    assert_int_equal(tokenizer_build(&tok, "", 0, &err), -1);
    assert_non_null(strstr(err.message, "empty"));
    assert_null(tok.chars);
    tokenizer_free(&tok);
}

/* A long prompt is checked whole but only its last `cap` characters are kept, in order, for
 * every length around and across the capacity (the ring wraps at each multiple of cap). */
static void tokenizer_encode_tail_keeps_the_last_characters(void **state) {
    (void)state;
    Tokenizer tok;
    Error err = {{0}};
    make_tokenizer(&tok, "abcdefghijklmnopqrstuvwxyzé");
    const char *alphabet = "abcdefghijklmnopqrstuvwxyz";
    for (size_t cap = 1; cap <= 7; cap++)
        for (size_t len = 0; len <= 26; len++) {
            int ids[8] = {0}, full[32];
            size_t kept = 99, total = 99, n = 0;
            assert_int_equal(
                tokenizer_encode_tail(&tok, alphabet, len, ids, cap, &kept, &total, &err), 0);
            assert_int_equal(tokenizer_encode(&tok, alphabet, len, full, 32, &n, &err), 0);
            assert_int_equal(total, len);
            assert_int_equal(kept, len < cap ? len : cap);
            if (kept) assert_memory_equal(ids, full + (len - kept), kept * sizeof *ids);
        }
    /* every character is still checked, also those that are dropped, and positions stay whole */
    int ids[4];
    size_t kept, total;
    assert_int_equal(tokenizer_encode_tail(&tok, "aZbcdefg", 8, ids, 4, &kept, &total, &err), -1);
    assert_non_null(strstr(err.message, "'Z'"));
    assert_non_null(strstr(err.message, "at position 1"));
    assert_int_equal(tokenizer_encode_tail(&tok,
                                           "ab\xff"
                                           "cdefg",
                                           8, ids, 4, &kept, &total, &err),
                     -1);
    assert_non_null(strstr(err.message, "invalid UTF-8 at byte 2"));
    /* multi-byte characters are kept whole */
    assert_int_equal(
        tokenizer_encode_tail(&tok, "éabé", strlen("éabé"), ids, 2, &kept, &total, &err), 0);
    assert_int_equal(total, 4);
    assert_int_equal(kept, 2);
    assert_int_equal(ids[0], 1);  /* 'b' */
    assert_int_equal(ids[1], 26); /* 'é' */
    tokenizer_free(&tok);
}

static void tokenizer_names_unknown_character_and_position(void **state) {
    (void)state;
    Tokenizer tok;
    Error err = {{0}};
    int ids[16];
    size_t n = 0;
    make_tokenizer(&tok, "hello");
    assert_int_equal(tokenizer_encode(&tok, "hez", 3, ids, 16, &n, &err), -1);
    if (verbose()) print_message("refused: %s\n", err.message);
    assert_non_null(strstr(err.message, "'z' (U+007A) at position 2"));
    assert_non_null(strstr(err.message, "not in the vocabulary of 4 characters"));
    assert_null(strstr(err.message, ";")); /* no hint given: none added */
    /* the caller's hint, where to see the vocabulary */
    tok.vocab_hint = "see the vocabulary in GET /info";
    assert_int_equal(tokenizer_encode(&tok, "hez", 3, ids, 16, &n, &err), -1);
    assert_non_null(strstr(err.message, "of 4 characters; see the vocabulary in GET /info"));
    /* control characters are spelled as code points alone, an apostrophe in double quotes */
    assert_int_equal(tokenizer_encode(&tok, "h\te", 3, ids, 16, &n, &err), -1);
    assert_non_null(strstr(err.message, "character U+0009 at position 1"));
    assert_int_equal(tokenizer_encode(&tok, "'", 1, ids, 16, &n, &err), -1);
    assert_non_null(strstr(err.message, "character \"'\" (U+0027) at position 0"));
    /* capacity */
    assert_int_equal(tokenizer_encode(&tok, "hello", 5, ids, 3, &n, &err), -1);
    assert_non_null(strstr(err.message, "longer than 3"));
    tokenizer_free(&tok);

    /* positions count characters, not bytes */
    make_tokenizer(&tok, "héllo");
    assert_int_equal(tokenizer_encode(&tok, "hé✓", strlen("hé✓"), ids, 16, &n, &err), -1);
    if (verbose()) print_message("refused: %s\n", err.message);
    assert_non_null(strstr(err.message, "'✓' (U+2713) at position 2"));
    tokenizer_free(&tok);
}

static void tokenizer_refuses_invalid_utf8(void **state) {
    (void)state;
    Tokenizer tok;
    Error err = {{0}};
    static const struct {
        const char *s;
        size_t byte;
    } bad[] = {
        {"he\xffllo", 2},          /* not a lead byte */
        {"ab\x80", 2},             /* stray continuation */
        {"h\xc3", 1},              /* cut off */
        {"h\xc3(", 1},             /* bad continuation */
        {"\xc0\xaf", 0},           /* overlong '/' */
        {"x\xe0\x80\xaf", 1},      /* overlong, 3 bytes */
        {"\xed\xa0\x80", 0},       /* surrogate U+D800 */
        {"ok\xf4\x90\x80\x80", 2}, /* U+110000 */
        {"\xf8\x88\x80\x80\x80", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[48];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad[i].byte);
        size_t len = strlen(bad[i].s);
        assert_int_equal(tokenizer_build(&tok, bad[i].s, len, &err), -1);
        if (!strstr(err.message, want)) fail_msg("case %zu: \"%s\"", i, err.message);
        assert_null(tok.chars);
        assert_int_equal(tokenizer_count(bad[i].s, len, &err), -1);

        Tokenizer full;
        make_tokenizer(&full, "abcdefghijklmnopqrstuvwxyz()/");
        int ids[16];
        size_t n;
        assert_int_equal(tokenizer_encode(&full, bad[i].s, len, ids, 16, &n, &err), -1);
        if (!strstr(err.message, "invalid UTF-8")) fail_msg("case %zu: \"%s\"", i, err.message);
        tokenizer_free(&full);
    }
    assert_int_equal(tokenizer_from_string(&tok, "ab\xfe", &err), -1);
    assert_non_null(strstr(err.message, "invalid UTF-8"));
    assert_null(tok.chars);
}

static void tokenizer_round_trips_multibyte(void **state) {
    (void)state;
    Tokenizer tok, tok2;
    Error err;
    make_tokenizer(&tok, "héllo");
    assert_int_equal(tok.vocab_size, 4);
    const uint32_t want[] = {'h', 'l', 'o', 0xE9};
    assert_memory_equal(tok.chars, want, sizeof want);

    char *s = tokenizer_to_string(&tok);
    assert_string_equal(s, "hlo\xc3\xa9");
    assert_int_equal(tokenizer_from_string(&tok2, s, &err), 0);
    assert_same_tokenizer(&tok, &tok2);
    free(s);
    tokenizer_free(&tok2);

    const char *text = "héllo";
    int ids[8];
    size_t n;
    assert_int_equal(tokenizer_encode(&tok, text, strlen(text), ids, 8, &n, &err), 0);
    assert_int_equal(n, 5);
    const int want_ids[] = {0, 3, 1, 1, 2};
    assert_memory_equal(ids, want_ids, sizeof want_ids);
    char out[32];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)tokenizer_decode(&tok, ids[i], out + len);
    out[len] = '\0';
    assert_string_equal(out, text);
    tokenizer_free(&tok);

    /* 1- to 4-byte characters, including the extremes of each length */
    const char *all =
        "a\x7f\xc2\x80é\xdf\xbf\xe0\xa0\x80—✓\xef\xbf\xbf\xf0\x90\x80\x80🙂\xf4\x8f\xbf\xbf";
    make_tokenizer(&tok, all);
    assert_int_equal(tok.vocab_size, 12);
    assert_int_equal(tok.chars[tok.vocab_size - 1], 0x10FFFF);
    s = tokenizer_to_string(&tok);
    assert_int_equal(strlen(s), strlen(all));
    assert_int_equal(tokenizer_from_string(&tok2, s, &err), 0);
    assert_same_tokenizer(&tok, &tok2);
    for (int i = 0; i < tok.vocab_size; i++) {
        char one[5] = {0};
        int b = tokenizer_decode(&tok, i, one);
        uint32_t cp;
        assert_int_equal(utf8_decode(one, (size_t)b, &cp), b);
        assert_int_equal(cp, tok.chars[i]);
    }
    int ids2[16];
    assert_int_equal(tokenizer_encode(&tok, all, strlen(all), ids2, 16, &n, &err), 0);
    assert_int_equal(n, 12);
    len = 0;
    char back[64];
    for (size_t i = 0; i < n; i++) len += (size_t)tokenizer_decode(&tok, ids2[i], back + len);
    back[len] = '\0';
    char *sorted = tokenizer_to_string(&tok);
    assert_int_equal(len, strlen(all));
    free(sorted);
    free(s);
    tokenizer_free(&tok);
    tokenizer_free(&tok2);
}

/* ---- round trips over generated text (issue 26): each case from a seeded Rng, named by its seed
 * on failure ---- */

/* cp as UTF-8 into out; its length. */
static size_t put_utf8(uint32_t cp, char *out) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F)), out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A code point of 1 to 4 bytes, never NUL nor a surrogate. */
static uint32_t random_code_point(Rng *rng) {
    static const uint32_t lo[4] = {1, 0x80, 0x800, 0x10000},
                          hi[4] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    for (;;) {
        int k = (int)rng_below(rng, 4);
        uint32_t cp = lo[k] + (uint32_t)rng_below(rng, hi[k] - lo[k] + 1);
        if (cp < 0xD800 || cp > 0xDFFF) return cp;
    }
}

/* Random vocabularies of 1 to 40 characters of every UTF-8 length, and random texts of 0 to 80
 * of them: the vocabulary survives its string form, a text decodes back byte for byte, the tail
 * of any capacity is the end of the whole encoding, and its count is the text's characters. */
static void char_round_trips_over_generated_text(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        Rng rng;
        rng_seed(&rng, seed);
        char vocab_text[40 * 4 + 1];
        size_t vl = 0;
        int n_chars = 1 + (int)rng_below(&rng, 40);
        uint32_t cps[40];
        for (int i = 0; i < n_chars; i++) {
            cps[i] = random_code_point(&rng);
            vl += put_utf8(cps[i], vocab_text + vl);
        }
        vocab_text[vl] = '\0';
        Tokenizer tok, tok2;
        Error err;
        if (tokenizer_build(&tok, vocab_text, vl, &err))
            fail_msg("seed %llu: %s", (unsigned long long)seed, err.message);
        char *str = tokenizer_to_string(&tok);
        assert_int_equal(tokenizer_from_string(&tok2, str, &err), 0);
        assert_same_tokenizer(&tok, &tok2);
        free(str);
        tokenizer_free(&tok2);
        char text[80 * 4 + 1], back[80 * 4 + 1];
        size_t tl = 0;
        int len = (int)rng_below(&rng, 81);
        for (int i = 0; i < len; i++)
            tl += put_utf8(cps[rng_below(&rng, (uint64_t)n_chars)], text + tl);
        int ids[80], tail[80];
        size_t n, kept, total, bl = 0;
        assert_int_equal(tokenizer_encode(&tok, text, tl, ids, 80, &n, &err), 0);
        assert_int_equal(n, (size_t)len);
        assert_int_equal(tokenizer_count(text, tl, &err), len);
        for (size_t i = 0; i < n; i++) bl += (size_t)tokenizer_decode(&tok, ids[i], back + bl);
        if (bl != tl || memcmp(back, text, tl) != 0)
            fail_msg("seed %llu: %zu bytes decode to %zu others", (unsigned long long)seed, tl, bl);
        size_t cap = 1 + rng_below(&rng, 40);
        assert_int_equal(tokenizer_encode_tail(&tok, text, tl, tail, cap, &kept, &total, &err), 0);
        assert_int_equal(total, n);
        assert_int_equal(kept, n < cap ? n : cap);
        if (kept && memcmp(tail, ids + (n - kept), kept * sizeof *ids) != 0)
            fail_msg("seed %llu: the tail of %zu is not the last %zu ids", (unsigned long long)seed,
                     cap, kept);
        tokenizer_free(&tok);
    }
}

/* GPT-2's byte-level BPE (a fixture of 256 bytes and 200 merges): random bytes of 0 to 300,
 * mostly letters and spaces (so merges apply) with any byte mixed in, come back byte for byte
 * from their tokens' pieces, and the tail of any capacity is the end of the whole encoding. */
static void bpe_round_trips_over_generated_bytes(void **state) {
    (void)state;
    Tokenizer tok;
    Error err;
    if (tokenizer_from_bpe_dir(&tok, "tests/reference/fixtures/hf_gpt2_f32", &err))
        fail_msg("%s", err.message);
    const char common[] = "etaoin shrdlu ETAOIN.,'\n";
    for (uint64_t seed = 1; seed <= 300; seed++) {
        Rng rng;
        rng_seed(&rng, seed);
        char text[300], back[300 * 8];
        size_t tl = rng_below(&rng, 301), bl = 0, n, kept, total;
        for (size_t i = 0; i < tl; i++)
            text[i] = rng_below(&rng, 5) ? common[rng_below(&rng, sizeof common - 1)]
                                         : (char)rng_below(&rng, 256);
        int ids[300], tail[300];
        if (tokenizer_encode(&tok, text, tl, ids, 300, &n, &err))
            fail_msg("seed %llu: %s", (unsigned long long)seed, err.message);
        for (size_t i = 0; i < n; i++) {
            size_t k;
            const char *piece = tokenizer_piece(&tok, ids[i], &k);
            assert_non_null(piece);
            memcpy(back + bl, piece, k);
            bl += k;
        }
        if (bl != tl || memcmp(back, text, tl) != 0)
            fail_msg("seed %llu: %zu bytes come back as %zu others", (unsigned long long)seed, tl,
                     bl);
        size_t cap = 1 + rng_below(&rng, 60);
        if (tokenizer_encode_tail(&tok, text, tl, tail, cap, &kept, &total, &err))
            fail_msg("seed %llu: %s", (unsigned long long)seed, err.message);
        assert_int_equal(total, n);
        assert_int_equal(kept, n < cap ? n : cap);
        if (kept && memcmp(tail, ids + (n - kept), kept * sizeof *ids) != 0)
            fail_msg("seed %llu: the tail of %zu is not the last %zu ids", (unsigned long long)seed,
                     cap, kept);
    }
    tokenizer_free(&tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokenizer_builds_sorted_unique_chars),
        cmocka_unit_test(tokenizer_encode_tail_keeps_the_last_characters),
        cmocka_unit_test(tokenizer_names_unknown_character_and_position),
        cmocka_unit_test(tokenizer_refuses_invalid_utf8),
        cmocka_unit_test(tokenizer_round_trips_multibyte),
        cmocka_unit_test(char_round_trips_over_generated_text),
        cmocka_unit_test(bpe_round_trips_over_generated_bytes),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
