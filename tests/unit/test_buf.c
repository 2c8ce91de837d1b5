/* common/buf.c: the one growable buffer, and its cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/buf.h"

static void grows_and_stays_terminated(void **state) {
    (void)state;
    Buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++) assert_int_equal(buf_printf(&b, "%d,", i % 10), 0);
    assert_int_equal(b.len, 2000);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data, "0,1,2,", 6);
    char *s = buf_take(&b);
    assert_int_equal(strlen(s), 2000);
    assert_null(b.data);
    free(s);
}

static void refuses_past_the_cap(void **state) {
    (void)state;
    Buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), 0); /* exactly the cap */
    assert_int_equal(buf_append(&b, "x", 1), -1);
    assert_true(b.failed);
    assert_int_equal(buf_printf(&b, "%s", ""), -1); /* failed stays failed */
    assert_null(buf_take(&b));
    assert_false(b.failed); /* take empties it */
    char *empty = buf_take(&b);
    assert_string_equal(empty, "");
    free(empty);
    buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_and_stays_terminated),
        cmocka_unit_test(refuses_past_the_cap),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
