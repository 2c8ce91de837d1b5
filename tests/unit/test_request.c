/* The request channel (server/request.c): a consumer is parked only when there is no news, the
 * producer's end wakes a parked consumer exactly once, nothing wakes a consumer that is not
 * parked or has gone, and under a race between parking and the end no wake-up is lost. */
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../server/request.h"

typedef struct {
    Request *r;
    int suspended, resumed;
    int unlocked; /* suspends or resumes that ran without Request.lock held */
    sem_t woken;
} FakeConnection;

/* Parking and waking must run under Request.lock: that is what keeps the decision to park and
 * the producer's wake from crossing. */
static void check_locked(FakeConnection *f) {
    if (pthread_mutex_trylock(&f->r->lock) == 0) {
        pthread_mutex_unlock(&f->r->lock);
        f->unlocked++;
    }
}

static void fake_suspend(void *ctx) {
    FakeConnection *f = ctx;
    check_locked(f);
    f->suspended++;
}

static void fake_resume(void *ctx) {
    FakeConnection *f = ctx;
    check_locked(f);
    f->resumed++;
    sem_post(&f->woken);
}

static Tokenizer tok;

static int setup(void **state) {
    (void)state;
    Error err;
    return tokenizer_build(&tok, "ab\n", 3, &err);
}

static int teardown(void **state) {
    (void)state;
    tokenizer_free(&tok);
    return 0;
}

static Request *request_of(ApiKind kind, const char *body) {
    static const ApiLimits limits = {.max_tokens_cap = 16, .default_max_tokens = 4};
    ApiRequest api;
    ApiError e;
    assert_int_equal(api_parse_request(kind, body, strlen(body), &limits, 7, &api, &e), 0);
    ContextPolicy context;
    Error err;
    assert_int_equal(context_policy_init(&context, 8, "keep", 0, &err), 0);
    Request *r = request_create("req-1", &api, &tok, context, 0, &e);
    api_request_free(&api);
    assert_non_null(r);
    return r;
}

static Request *new_request(void) {
    return request_of(API_GENERATE, "{\"prompt\":\"ab\",\"max_tokens\":4}");
}

/* A consumer on a fresh request (f->r), and its waiter. */
static RequestWaiter open_fake(FakeConnection *f, Request *r) {
    *f = (FakeConnection){.r = r};
    sem_init(&f->woken, 0, 0);
    return (RequestWaiter){fake_suspend, fake_resume, f};
}

static void close_fake(FakeConnection *f) {
    request_release(f->r);
    sem_destroy(&f->woken);
}

static void parks_only_without_news_and_the_end_wakes_once(void **state) {
    (void)state;
    FakeConnection f;
    RequestWaiter w = open_fake(&f, new_request());
    Request *r = f.r;
    assert_false(request_wait(r, 0, INT_MAX, &w));
    assert_int_equal(f.suspended, 1);
    assert_int_equal(f.resumed, 0);
    request_wake(r); /* a timer's wake: resumes the parked consumer */
    assert_int_equal(f.resumed, 1);
    request_wake(r); /* no longer parked: nothing */
    assert_int_equal(f.resumed, 1);
    assert_false(request_wait(r, 0, INT_MAX, &w));
    request_finish(r, API_FINISH_CANCELLED, 1.0);
    assert_int_equal(f.resumed, 2);
    assert_true(request_wait(r, 0, INT_MAX, &w)); /* the end is news: not parked again */
    assert_int_equal(f.suspended, 2);
    assert_int_equal(f.unlocked, 0);
    RequestSnapshot snap;
    request_snapshot(r, &snap);
    assert_true(snap.done);
    assert_int_equal(snap.finish, API_FINISH_CANCELLED);
    close_fake(&f);
}

static void a_failure_is_news_with_its_error(void **state) {
    (void)state;
    FakeConnection f;
    RequestWaiter w = open_fake(&f, new_request());
    Request *r = f.r;
    assert_false(request_wait(r, 0, 0, &w));
    ApiError e;
    api_error(&e, 500, "server_error", "generation failed: %s", "test");
    request_fail(r, &e, 2.0);
    assert_int_equal(f.resumed, 1);
    RequestSnapshot snap;
    request_snapshot(r, &snap);
    assert_true(snap.done && snap.failed);
    assert_int_equal(snap.error.status, 500);
    assert_int_equal(snap.finish, API_FINISH_ERROR);
    close_fake(&f);
}

static void a_consumer_that_has_gone_is_not_woken(void **state) {
    (void)state;
    FakeConnection f;
    RequestWaiter w = open_fake(&f, new_request());
    Request *r = f.r;
    assert_false(request_wait(r, 0, INT_MAX, &w));
    request_forget_waiter(r);
    request_finish(r, API_FINISH_SHUTDOWN, 1.0);
    request_wake(r);
    assert_int_equal(f.resumed, 0);
    close_fake(&f);
}

/* A request of three choices is one group: the consumer waits for all, an end ends every choice,
 * and it is woken once. */
static void a_group_of_choices_ends_together(void **state) {
    (void)state;
    FakeConnection f;
    RequestWaiter w =
        open_fake(&f, request_of(API_COMPLETIONS, "{\"prompt\":\"ab\",\"max_tokens\":4,\"n\":3}"));
    Request *r = f.r;
    assert_int_equal(r->n_choices, 3);
    for (int i = 1; i < 3; i++) {
        assert_ptr_equal(request_choice(r, i)->seq.fork_of, &r->seq);
        assert_int_equal(request_choice(r, i)->seq.params.seed, 7 + (uint64_t)i);
    }
    assert_false(request_all_finished(r));
    assert_false(request_wait(r, 0, INT_MAX, &w));
    request_finish(r, API_FINISH_TIMEOUT, 1.0);
    assert_int_equal(f.resumed, 1);
    for (int i = 0; i < 3; i++) {
        RequestSnapshot snap;
        request_snapshot(request_choice(r, i), &snap);
        assert_true(snap.done);
        assert_int_equal(snap.finish, API_FINISH_TIMEOUT);
    }
    RequestSnapshot group;
    request_snapshot(r, &group);
    assert_true(group.group_done);
    assert_true(request_wait(r, 0, INT_MAX, &w));
    close_fake(&f);
}

/* The end comes from another thread at a random moment around the consumer's snapshot and
 * parking. Whatever the order, the consumer either sees the end or is woken: it never waits. */
typedef struct {
    Request *r;
    int delay_ns;
} Ender;

static void *end_later(void *arg) {
    Ender *x = arg;
    struct timespec t = {0, x->delay_ns};
    nanosleep(&t, NULL);
    request_finish(x->r, API_FINISH_LENGTH, 1.0);
    return NULL;
}

static void no_wake_up_is_lost_in_a_race(void **state) {
    (void)state;
    unsigned seed = 26;
    for (int i = 0; i < 300; i++) {
        FakeConnection f;
        RequestWaiter w = open_fake(&f, new_request());
        Request *r = f.r;
        Ender x = {r, (int)(rand_r(&seed) % 20000)};
        pthread_t t;
        pthread_create(&t, NULL, end_later, &x);
        for (;;) {
            RequestSnapshot snap;
            request_snapshot(r, &snap);
            if (snap.done) break;
            if (request_wait(r, 0, INT_MAX, &w)) continue;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 5;
            if (sem_timedwait(&f.woken, &until) != 0) fail_msg("round %d: a wake-up was lost", i);
        }
        pthread_join(t, NULL);
        assert_true(f.resumed <= f.suspended);
        assert_int_equal(f.unlocked, 0);
        close_fake(&f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parks_only_without_news_and_the_end_wakes_once),
        cmocka_unit_test(a_failure_is_news_with_its_error),
        cmocka_unit_test(a_consumer_that_has_gone_is_not_woken),
        cmocka_unit_test(a_group_of_choices_ends_together),
        cmocka_unit_test(no_wake_up_is_lost_in_a_race),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
