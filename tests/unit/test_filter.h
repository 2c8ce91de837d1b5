/* One place for how every unit-test binary picks a subset: GPTD_TEST_FILTER, a cmocka glob of
 * test names (e.g. 'top_k_*'; tests/mutations/run.sh uses it). Include after <cmocka.h>. */
#ifndef GPTD_TEST_FILTER_H
#define GPTD_TEST_FILTER_H

#include <stdlib.h>

static inline void apply_test_filter(void) {
    const char *filter = getenv("GPTD_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
}

#endif
