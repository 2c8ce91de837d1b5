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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_text_is_left_alone),
        cmocka_unit_test(each_bad_byte_becomes_a_question_mark),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
