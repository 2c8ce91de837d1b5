/* The worker pool: every task of every run runs exactly once, whether the workers are polling
 * for the next run or asleep, and a pool can be destroyed in either state. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/thread_pool.h"

#define MAX_TASKS 300

typedef struct {
    atomic_int count[MAX_TASKS];
} Counts;

static void count_task(void *ctx, int task) { atomic_fetch_add(&((Counts *)ctx)->count[task], 1); }

static void check_runs(int threads, int spin_us, int pause_us) {
    ThreadPool *p;
    Error err;
    assert_int_equal(thread_pool_create(&p, threads, spin_us, &err), 0);
    assert_int_equal(thread_pool_size(p), threads);
    static Counts c;
    for (int run = 0; run < 200; run++) {
        int n = run % 7 == 0 ? 1 : 1 + (run * 37) % MAX_TASKS;
        memset(&c, 0, sizeof c);
        thread_pool_run(p, count_task, &c, n);
        for (int t = 0; t < MAX_TASKS; t++) assert_int_equal(atomic_load(&c.count[t]), t < n);
        if (pause_us && run % 50 == 0) usleep(pause_us); /* let the workers fall asleep */
    }
    thread_pool_destroy(p);
}

static void every_task_once_polling(void **state) {
    (void)state;
    check_runs(2, 200, 0);
    check_runs(4, 200, 0);
}

static void every_task_once_sleeping(void **state) {
    (void)state;
    check_runs(2, 0, 0);
    check_runs(3, 20, 2000);
}

static void single_thread_runs_inline(void **state) {
    (void)state;
    check_runs(1, 200, 0);
}

static void destroy_while_polling_or_asleep(void **state) {
    (void)state;
    ThreadPool *p;
    Error err;
    static Counts c;
    assert_int_equal(thread_pool_create(&p, 2, 1000000, &err), 0); /* polls for a second */
    thread_pool_run(p, count_task, &c, 10);
    thread_pool_destroy(p); /* must not wait out the poll */
    assert_int_equal(thread_pool_create(&p, 2, 0, &err), 0);
    usleep(1000);
    thread_pool_destroy(p);
}

static void *destroy_pool(void *pool) {
    thread_pool_destroy(pool);
    return NULL;
}

/* Workers that would poll for 35 minutes (spin INT_MAX us): destroy must end their poll, not
 * wait it out. It runs on a helper thread given 30 s, thousands of times what it needs; a destroy
 * that does not wake the pollers would take the whole 35 minutes. */
static void destroy_ends_a_long_poll(void **state) {
    (void)state;
    ThreadPool *p;
    Error err;
    static Counts c;
    assert_int_equal(thread_pool_create(&p, 2, INT_MAX, &err), 0);
    thread_pool_run(p, count_task, &c, 10); /* the worker then polls for the next run */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, destroy_pool, p), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    if (pthread_timedjoin_np(t, NULL, &until) != 0)
        fail_msg("thread_pool_destroy still waiting after 30 s: it does not end the workers' poll");
}

static void refuses_bad_arguments(void **state) {
    (void)state;
    ThreadPool *p;
    Error err;
    assert_int_equal(thread_pool_create(&p, 0, 0, &err), -1);
    assert_non_null(strstr(err.message, "at least 1 thread"));
    assert_int_equal(thread_pool_create(&p, 2, -1, &err), -1);
    assert_non_null(strstr(err.message, "spin"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_task_once_polling),
        cmocka_unit_test(every_task_once_sleeping),
        cmocka_unit_test(single_thread_runs_inline),
        cmocka_unit_test(destroy_while_polling_or_asleep),
        cmocka_unit_test(destroy_ends_a_long_poll),
        cmocka_unit_test(refuses_bad_arguments),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
