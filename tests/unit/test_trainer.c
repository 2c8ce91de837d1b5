/* trainer_run holds a fresh run's options to the bounds of gpt-train's flags (the same check a
 * resumed state's values get; tests/cli/test_train_faults.sh covers those): a setting out of
 * bounds, NaN or infinite is refused before the text is read or a file written. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../train/trainer.h"

/* Options of a tiny run that would train; the data path does not exist, so a run the checks let
 * through fails on reading it instead. */
static TrainOptions tiny_options(void) {
    return (TrainOptions){
        .data_path = "/nonexistent/gptd-test-trainer.txt",
        .out_path = "/nonexistent/gptd-test-trainer.safetensors",
        .model = {.n_layer = 1, .n_head = 2, .n_embd = 16, .block_size = 16, .vocab_size = 1},
        .batch_size = 2,
        .max_iters = 4,
        .eval_interval = 2,
        .eval_iters = 2,
        .threads = 1,
        .lr = 3e-4f,
        .min_lr = 3e-4f,
        .dropout = 0.2f,
        .weight_decay = 0.01f,
        .seed = 1337,
    };
}

/* Runs o; it must fail with a message containing want. */
static void assert_refused(const TrainOptions *o, const char *want) {
    Error err = {{0}};
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    int rc = trainer_run(o, devnull, devnull, &err);
    fclose(devnull);
    assert_int_equal(rc, -1);
    if (!strstr(err.message, want)) fail_msg("message '%s' lacks '%s'", err.message, want);
}

static void valid_options_get_as_far_as_the_data(void **state) {
    (void)state;
    TrainOptions o = tiny_options();
    o.dropout = (float)TRAIN_MAX_DROPOUT;
    o.batch_size = TRAIN_MAX_BATCH_SIZE;
    o.lr = (float)TRAIN_MAX_LR;
    assert_refused(&o, "/nonexistent/gptd-test-trainer.txt");
}

static void options_out_of_bounds_are_refused(void **state) {
    (void)state;
    struct {
        const char *want;
        TrainOptions o;
    } cases[] = {
        {"--batch-size must be in [1, 1048576], got 0", tiny_options()},
        {"--batch-size must be in [1, 1048576], got 1048577", tiny_options()},
        {"--warmup-iters must be in [0, 1073741824], got -1", tiny_options()},
        {"--lr must be in [1e-09, 10], got nan", tiny_options()},
        {"--lr must be in [1e-09, 10], got 0", tiny_options()},
        {"--min-lr must be in [0, 10], got inf", tiny_options()},
        {"--dropout must be in [0, 0.95], got 1", tiny_options()},
        {"--dropout must be in [0, 0.95], got -3", tiny_options()},
        {"--weight-decay must be in [0, 10], got 11", tiny_options()},
    };
    cases[0].o.batch_size = 0;
    cases[1].o.batch_size = TRAIN_MAX_BATCH_SIZE + 1;
    cases[2].o.warmup_iters = -1;
    cases[3].o.lr = NAN;
    cases[4].o.lr = 0;
    cases[5].o.min_lr = INFINITY;
    cases[6].o.dropout = 1;
    cases[7].o.dropout = -3;
    cases[8].o.weight_decay = 11;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_refused(&cases[i].o, cases[i].want);
}

int main(void) {
    apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_options_get_as_far_as_the_data),
        cmocka_unit_test(options_out_of_bounds_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
