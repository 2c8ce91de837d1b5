/* UTF-8 in common/utf8.c: utf8_make_valid turns every byte that is not part of a whole,
 * well-formed character into '?' and leaves valid text as it is, so error messages that quote
 * client bytes (or are cut inside a character) are always valid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/utf8.h"

static void expect_made_valid(const char *in, const char *want, size_t replaced) {
    char s[64];
    snprintf(s, sizeof s, "%s", in);
    assert_int_equal(utf8_make_valid(s), replaced);
    assert_string_equal(s, want);
}

static void valid_text_is_left_alone(void **state) {
    (void)state;
    expect_made_valid("", "", 0);
    expect_made_valid("plain ASCII", "plain ASCII", 0);
    expect_made_valid("é — ✓ 🙂 \xf4\x8f\xbf\xbf", "é — ✓ 🙂 \xf4\x8f\xbf\xbf", 0);
}

static void each_bad_byte_becomes_a_question_mark(void **state) {
    (void)state;
    expect_made_valid("G\xffT", "G?T", 1);
    expect_made_valid("\xff\xfe", "??", 2);
    expect_made_valid("\x80 stray continuation", "? stray continuation", 1);
    expect_made_valid("\xc0\xaf overlong /", "?? overlong /", 2);
    expect_made_valid("\xed\xa0\x80 surrogate", "??? surrogate", 3);
    expect_made_valid("\xf4\x90\x80\x80 past U+10FFFF", "???? past U+10FFFF", 4);
    /* a character cut short, in the middle or at the end (a message cut at its byte limit) */
    expect_made_valid("a\xc3z", "a?z", 1);
    expect_made_valid("ééé\xc3", "ééé?", 1);
    expect_made_valid("✓\xe2\x9c", "✓??", 2);
}

/* Feeds `in` to a stream in pieces cut at the offsets in cuts (ascending, 0-terminated; those
 * past len are ignored),
 * ends it, and checks the whole output and that no write ended inside a character. */
static void expect_streamed(const char *in, size_t len, const size_t *cuts, const char *want) {
    Utf8Stream s = {0};
    char out[256];
    size_t o = 0, at = 0;
    for (size_t k = 0;; k++) {
        size_t end = cuts[k] && cuts[k] < len ? cuts[k] : len;
        size_t n = utf8_stream_write(&s, in + at, end - at, out + o);
        assert_true(n <= 3 * (end - at + 3));
        o += n;
        out[o] = '\0';
        size_t replaced = utf8_make_valid(out); /* every write so far is whole characters */
        assert_int_equal(replaced, 0);
        at = end;
        if (end == len) break;
    }
    o += utf8_stream_end(&s, out + o);
    out[o] = '\0';
    assert_string_equal(out, want);
}

/* Wanted outputs are Python's bytes.decode("utf-8", errors="replace") of the same bytes: one
 * U+FFFD per maximal invalid subpart. */
static void streams_make_whole_characters(void **state) {
    (void)state;
#define R "\xef\xbf\xbd" /* U+FFFD */
    const size_t none[] = {0}, euro[] = {1, 2, 0}, each[] = {1, 2, 3, 4, 5, 6, 7, 0};
    expect_streamed("a\xe2\x82\xac", 4, none, "a\xe2\x82\xac");
    expect_streamed("a\xe2\x82\xac", 4, euro, "a\xe2\x82\xac"); /* a character split 3 ways */
    expect_streamed("\xf0\x9f\x99\x82!\xe2\x82", 7, each, "\xf0\x9f\x99\x82!" R);
    expect_streamed("\xe2\x28\xa1", 3, each, R "(" R);
    expect_streamed("\xed\xa0\x80", 3, none, R R R);       /* a surrogate */
    expect_streamed("\xf0\x90\x80x", 4, each, R "x");      /* cut short */
    expect_streamed("\xc0\xaf\xff", 3, none, R R R);       /* overlong, never valid */
    expect_streamed("\xf4\x90\x80\x80", 4, each, R R R R); /* past U+10FFFF */
    expect_streamed("\xe0\xa0", 2, each, R);               /* ends unfinished */
    const size_t mid[] = {2, 0};
    expect_streamed("\xf0\x90\x41\x42", 4, mid, R "AB"); /* waiting bytes, then a bad one */
#undef R
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_text_is_left_alone),
        cmocka_unit_test(each_bad_byte_becomes_a_question_mark),
        cmocka_unit_test(streams_make_whole_characters),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
