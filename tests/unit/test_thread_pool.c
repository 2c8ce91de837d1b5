/* The worker pool: every task of every run runs exactly once, whether the workers are polling
 * for the next run or asleep, and a pool can be destroyed in either state. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
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
    thread_pool_always_share(p); /* every run reaches the workers */
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

/* Ranges: each element once, in ranges of at least min_range (the last excepted), and a run on
 * the caller alone where a split would not pay. */
typedef struct {
    atomic_int count[MAX_TASKS];
    atomic_int calls, short_ones;
    size_t min_range, n;
} RangeCounts;

static void count_range(void *ctx, size_t begin, size_t end) {
    RangeCounts *c = ctx;
    for (size_t i = begin; i < end; i++) atomic_fetch_add(&c->count[i], 1);
    atomic_fetch_add(&c->calls, 1);
    if (end - begin < c->min_range && end != c->n) atomic_fetch_add(&c->short_ones, 1);
}

static int check_ranges(ThreadPool *p, size_t n, int per_thread, size_t min_range) {
    static RangeCounts c;
    memset(&c, 0, sizeof c);
    c.min_range = min_range;
    c.n = n;
    thread_pool_run_ranges(p, count_range, &c, n, per_thread, min_range);
    for (size_t i = 0; i < MAX_TASKS; i++) assert_int_equal(atomic_load(&c.count[i]), i < n);
    assert_int_equal(atomic_load(&c.short_ones), 0);
    return atomic_load(&c.calls);
}

static void ranges_cover_every_element_once(void **state) {
    (void)state;
    ThreadPool *p;
    Error err;
    assert_int_equal(thread_pool_create(&p, 2, 200, &err), 0);
    thread_pool_always_share(p);
    assert_int_equal(check_ranges(p, 0, 4, 1), 0);
    assert_int_equal(check_ranges(p, 1, 4, 1), 1);
    assert_int_equal(check_ranges(p, 7, 4, 1), 7);   /* ranges of 1 */
    assert_int_equal(check_ranges(p, 300, 4, 1), 8); /* 2 threads x 4 */
    assert_int_equal(check_ranges(p, 300, 2, 1), 4);
    assert_int_equal(check_ranges(p, 300, 4, 100), 3); /* none under 100 */
    assert_int_equal(check_ranges(p, 100, 4, 100), 1); /* no split of min_range or fewer */
    assert_int_equal(check_ranges(NULL, 300, 4, 1), 1);
    thread_pool_destroy(p);
    assert_int_equal(thread_pool_create(&p, 1, 200, &err), 0);
    assert_int_equal(check_ranges(p, 300, 4, 1), 1);
    thread_pool_destroy(p);
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

/* A gate that holds the first worker to reach the hook until released. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int calls, held, released;
} Gate;

static void gate_hook(void *arg) {
    Gate *g = arg;
    pthread_mutex_lock(&g->lock);
    if (g->calls++ == 0) {
        g->held = 1;
        pthread_cond_broadcast(&g->changed);
        while (!g->released) pthread_cond_wait(&g->changed, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
}

static void gate_release(Gate *g) {
    pthread_mutex_lock(&g->lock);
    assert_int_equal(g->calls, 1); /* still held: the runs so far returned without it */
    g->released = 1;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

/* Run C's tasks: the first releases the held worker and gives it time to wake while most of C's
 * tasks are still unclaimed, so that a worker claiming with its stale description would show. */
typedef struct {
    Counts counts;
    Gate *gate;
} ReleasingRun;

static void release_and_count(void *ctx, int task) {
    ReleasingRun *r = ctx;
    if (task == 0) {
        gate_release(r->gate);
        usleep(50000);
    }
    count_task(&r->counts, task);
}

typedef struct {
    ThreadPool *pool;
    PoolTask fn;
    void *ctx;
    int n;
} RunArgs;

static void *run_on_helper(void *arg) {
    RunArgs *r = arg;
    thread_pool_run(r->pool, r->fn, r->ctx, r->n);
    return NULL;
}

/* thread_pool_run on a helper thread; fails if it has not returned within 30 s. */
static void run_or_fail(ThreadPool *p, PoolTask fn, void *ctx, int n, const char *what) {
    RunArgs r = {p, fn, ctx, n};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_on_helper, &r), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    if (pthread_timedjoin_np(t, NULL, &until) != 0) fail_msg("%s", what);
}

static void assert_each_once(const Counts *c, int n) {
    for (int t = 0; t < MAX_TASKS; t++) assert_int_equal(atomic_load(&c->count[t]), t < n);
}

/* A worker the kernel leaves unscheduled cannot hold a run: with the only worker held in the hook
 * (it has read run A's description, and claimed nothing), run A and then run B return, the
 * caller doing every task. Released only during run C, the late worker touches neither finished
 * run (its claims name run A) and does C's tasks, if any, as C's. */
static void late_worker_cannot_hold_a_run(void **state) {
    (void)state;
    static Counts a, b;
    static ReleasingRun c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    Gate g = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
    c.gate = &g;
    ThreadPool *p;
    Error err;
    assert_int_equal(thread_pool_create(&p, 2, 1000000, &err), 0);
    thread_pool_always_share(p);
    thread_pool_set_worker_hook(p, gate_hook, &g);
    run_or_fail(p, count_task, &a, 50, "run A waited for a worker held before claiming any task");
    pthread_mutex_lock(&g.lock);
    while (!g.held) pthread_cond_wait(&g.changed, &g.lock); /* it holds A's description */
    pthread_mutex_unlock(&g.lock);
    run_or_fail(p, count_task, &b, 80, "run B waited for a worker held in run A");
    assert_each_once(&a, 50);
    assert_each_once(&b, 80);
    run_or_fail(p, release_and_count, &c, 120, "run C did not return");
    usleep(20000); /* anything the late worker would still do, it has done */
    assert_each_once(&a, 50);
    assert_each_once(&b, 80);
    assert_each_once(&c.counts, 120);
    thread_pool_destroy(p);
}

/* Workers that take part: with many runs of slow tasks both threads do some (the caller alone
 * would also pass every count, so check that the worker's claims work too). */
static int worker_ran;
static void mark_task(void *ctx, int task) {
    (void)task;
    if (!pthread_equal(pthread_self(), *(pthread_t *)ctx))
        __atomic_store_n(&worker_ran, 1, __ATOMIC_SEQ_CST);
    usleep(100);
}

static void workers_take_part(void **state) {
    (void)state;
    ThreadPool *p;
    Error err;
    pthread_t self = pthread_self();
    assert_int_equal(thread_pool_create(&p, 2, 1000, &err), 0);
    thread_pool_always_share(p); /* every run reaches the workers */
    for (int run = 0; run < 100 && !__atomic_load_n(&worker_ran, __ATOMIC_SEQ_CST); run++)
        thread_pool_run(p, mark_task, &self, 20);
    assert_true(__atomic_load_n(&worker_ran, __ATOMIC_SEQ_CST));
    thread_pool_destroy(p);
}

/* Tasks that take 0.1 ms on the caller and 3 ms on a worker: the caller finishes its share long
 * before the worker and must sleep, and be woken, for the worker's. */
typedef struct {
    Counts counts;
    pthread_t caller;
} SlowWorkerRun;

static void slow_on_worker(void *ctx, int task) {
    SlowWorkerRun *r = ctx;
    usleep(pthread_equal(pthread_self(), r->caller) ? 100 : 3000);
    count_task(&r->counts, task);
}

/* As run_on_helper, with the helper recorded as the caller. */
static void *run_on_helper_as_caller(void *arg) {
    RunArgs *r = arg;
    ((SlowWorkerRun *)r->ctx)->caller = pthread_self();
    thread_pool_run(r->pool, r->fn, r->ctx, r->n);
    return NULL;
}

static void caller_sleeps_until_a_slow_worker_finishes(void **state) {
    (void)state;
    static SlowWorkerRun r;
    ThreadPool *p;
    Error err;
    assert_int_equal(thread_pool_create(&p, 2, 0, &err), 0);
    thread_pool_always_share(p);
    for (int run = 0; run < 5; run++) {
        memset(&r.counts, 0, sizeof r.counts);
        RunArgs a = {p, slow_on_worker, &r, 20};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, run_on_helper_as_caller, &a), 0);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        if (pthread_timedjoin_np(t, NULL, &until) != 0)
            fail_msg("the caller was never woken after the worker's last task");
        assert_each_once(&r.counts, 20);
    }
    thread_pool_destroy(p);
}

/* Runs of two tasks that sleep for as long as the caller's and the worker's side say, recording
 * whether the worker ran one: whether a run was handed out, seen from outside. */
typedef struct {
    pthread_t caller;
    int caller_ms, worker_ms;
    atomic_int worker_ran;
} TimedRun;

static void timed_task(void *ctx, int task) {
    (void)task;
    TimedRun *r = ctx;
    bool on_caller = pthread_equal(pthread_self(), r->caller);
    if (!on_caller) atomic_store(&r->worker_ran, 1);
    usleep(1000 * (on_caller ? r->caller_ms : r->worker_ms));
}

/* Runs one run of two tasks; returns whether the worker took part. */
static bool timed_run(ThreadPool *p, int caller_ms, int worker_ms) {
    static TimedRun r;
    r.caller = pthread_self();
    r.caller_ms = caller_ms;
    r.worker_ms = worker_ms;
    atomic_store(&r.worker_ran, 0);
    thread_pool_run(p, timed_task, &r, 2);
    return atomic_load(&r.worker_ran);
}

/* The caller on one CPU and the worker on another, so that the pool never finds the worker on
 * the caller's CPU (which also sends the caller alone): only the runs' gains decide. */
typedef struct {
    cpu_set_t all, caller_cpu, worker_cpu;
} Pinning;

static void pin_worker(void *arg) {
    const Pinning *pin = arg;
    pthread_setaffinity_np(pthread_self(), sizeof pin->worker_cpu, &pin->worker_cpu);
}

/* A 2-thread pool pinned so, that has handed out a run; NULL (the test skips) with one CPU. */
static ThreadPool *pinned_pool(Pinning *pin) {
    if (sched_getaffinity(0, sizeof pin->all, &pin->all) != 0 || CPU_COUNT(&pin->all) < 2)
        return NULL;
    CPU_ZERO(&pin->caller_cpu);
    CPU_ZERO(&pin->worker_cpu);
    for (int cpu = 0, found = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
        if (CPU_ISSET(cpu, &pin->all)) CPU_SET(cpu, found++ ? &pin->worker_cpu : &pin->caller_cpu);
    assert_int_equal(
        pthread_setaffinity_np(pthread_self(), sizeof pin->caller_cpu, &pin->caller_cpu), 0);
    ThreadPool *p;
    Error err;
    assert_int_equal(thread_pool_create(&p, 2, 1000, &err), 0);
    thread_pool_set_worker_hook(p, pin_worker, pin);
    bool shared = false;
    for (int run = 0; run < 50 && !shared; run++) shared = timed_run(p, 1, 1);
    assert_true(shared);
    usleep(100 * 1000); /* whatever the first runs did is forgotten */
    return p;
}

static void unpin(ThreadPool *p, const Pinning *pin) {
    thread_pool_destroy(p);
    pthread_setaffinity_np(pthread_self(), sizeof pin->all, &pin->all);
}

/* The daemon's case: runs that gain from the worker (20 ms each side: 20 ms instead of 40), then
 * one where the worker is late (45 ms against the caller's 20: the caller waits 25 ms, longer
 * than doing the task itself would have taken). Sharing still pays over the recent runs, so the
 * next run is handed out again (a back-off at every late run would run it alone). */
static void one_late_run_among_paying_ones_keeps_sharing(void **state) {
    (void)state;
    Pinning pin;
    ThreadPool *p = pinned_pool(&pin);
    if (!p) skip();
    bool late_was_shared = false;
    for (int attempt = 0; attempt < 5 && !late_was_shared; attempt++) {
        for (int run = 0; run < 4; run++) timed_run(p, 20, 20);
        late_was_shared = timed_run(p, 20, 45);
    }
    assert_true(late_was_shared); /* else the test proved nothing */
    assert_true(timed_run(p, 50, 50));
    unpin(p, &pin);
}

/* A neighbour's case: sharing paid (20 ms each side), then the process idled for half a second,
 * then a neighbour took the worker's CPU: a run in which the worker's task takes 60 ms against
 * the caller's 2 loses 56 ms against the caller alone. Little is left of the gains of half a
 * second ago, so the caller runs the next runs alone. */
static void losing_runs_send_the_caller_alone(void **state) {
    (void)state;
    Pinning pin;
    ThreadPool *p = pinned_pool(&pin);
    if (!p) skip();
    for (int run = 0; run < 3; run++) timed_run(p, 20, 20);
    usleep(500 * 1000);
    bool lost = false;
    for (int attempt = 0; attempt < 5 && !lost; attempt++) lost = timed_run(p, 2, 60);
    assert_true(lost); /* else the test proved nothing */
    assert_false(timed_run(p, 1, 1));
    unpin(p, &pin);
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
        cmocka_unit_test(ranges_cover_every_element_once),
        cmocka_unit_test(destroy_while_polling_or_asleep),
        cmocka_unit_test(destroy_ends_a_long_poll),
        cmocka_unit_test(late_worker_cannot_hold_a_run),
        cmocka_unit_test(workers_take_part),
        cmocka_unit_test(caller_sleeps_until_a_slow_worker_finishes),
        cmocka_unit_test(one_late_run_among_paying_ones_keeps_sharing),
        cmocka_unit_test(losing_runs_send_the_caller_alone),
        cmocka_unit_test(refuses_bad_arguments),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
