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
#include <unistd.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../model/safetensors.h"
#include "../../train/dataset.h"
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

/* Batches come from their own split: over a text whose token at i is i, every training window
 * lies in the first 90% and every validation window in the last 10%, targets included. */
static void batches_come_from_their_own_split(void **state) {
    (void)state;
    enum { N = 1000, B = 8, T = 16 };
    int tokens[N], x[B * T], y[B * T];
    for (int i = 0; i < N; i++) tokens[i] = i;
    Dataset d = {.tokens = tokens, .n = N, .n_train = N * 9 / 10};
    for (uint64_t seed = 1; seed <= 50; seed++) {
        Rng rng;
        rng_seed(&rng, seed);
        for (int val = 0; val < 2; val++) {
            dataset_batch(&d, val, B, T, &rng, x, y);
            int lo = val ? (int)d.n_train : 0, hi = val ? N : (int)d.n_train;
            for (int i = 0; i < B * T; i++) {
                if (x[i] < lo || x[i] >= hi || y[i] != x[i] + 1 || y[i] >= hi)
                    fail_msg("seed %llu, %s batch: x %d, y %d outside tokens %d..%d",
                             (unsigned long long)seed, val ? "validation" : "training", x[i], y[i],
                             lo, hi - 1);
            }
        }
    }
}

/* The split is the first 90% of the tokens, rounded down as n * 9 / 10: 2,005 characters give
 * 1,804 to train and 201 to validate (n / 10 * 9 would give 1,800 and 205). */
static void the_split_is_nine_tenths_rounded_down(void **state) {
    (void)state;
    char path[] = "/tmp/gptd-test-split-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char text[2005];
    for (size_t i = 0; i < sizeof text; i++) text[i] = "ab\n"[i % 3];
    assert_int_equal(write(fd, text, sizeof text), (ssize_t)sizeof text);
    close(fd);
    Tokenizer tok = {0};
    Dataset d;
    Error err;
    int rc = dataset_load(&d, path, &tok, &err);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_int_equal(d.n, 2005);
    assert_int_equal(d.n_train, 1804);
    dataset_free(&d);
    tokenizer_free(&tok);
}

/* A short run of o on a text of n characters, text(i) each, in a fresh directory; the log goes to
 * log. When keep_meta is given, the training state's metadata value for that key is copied into
 * meta before the directory is removed. Fails the test when the run fails. */
static void run_in_temp_dir(TrainOptions o, int n, char (*text)(int), char *log, size_t log_size,
                            const char *keep_meta, char *meta, size_t meta_size) {
    char dir[] = "/tmp/gptd-test-trainer-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char data[64], out[64], state_path[80];
    snprintf(data, sizeof data, "%s/text.txt", dir);
    snprintf(out, sizeof out, "%s/model.safetensors", dir);
    snprintf(state_path, sizeof state_path, "%s.state", out);
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++) fputc(text(i), f);
    fclose(f);
    o.data_path = data;
    o.out_path = out;
    FILE *logf = fmemopen(log, log_size - 1, "w"), *devnull = fopen("/dev/null", "w");
    assert_true(logf && devnull);
    Error err = {{0}};
    int rc = trainer_run(&o, logf, devnull, &err);
    fclose(logf);
    fclose(devnull);
    if (!rc && keep_meta) {
        SafeTensors st;
        rc = safetensors_open(&st, state_path, &err);
        if (!rc) {
            const char *v = safetensors_meta(&st, keep_meta);
            snprintf(meta, meta_size, "%s", v ? v : "(absent)");
            safetensors_close(&st);
        }
    }
    unlink(data), unlink(out), unlink(state_path), rmdir(dir);
    if (rc) fail_msg("%s", err.message);
}

static char mostly_a(int i) { return i < 900 ? 'a' : "ab"[i % 2]; }

/* The log line names the splits right: a text whose training part is one letter repeated and
 * whose validation part alternates two, after a short run the training loss is far below the
 * validation loss (a model that has only seen "aaa" is sure of the next "a" and wrong about "b").
 */
static void evaluation_reports_each_split_as_itself(void **state) {
    (void)state;
    TrainOptions o = tiny_options();
    o.model.block_size = 8;
    o.batch_size = 8;
    o.max_iters = 60;
    o.eval_interval = 60;
    o.eval_iters = 4;
    o.lr = o.min_lr = 1e-2f;
    o.dropout = 0.0f;
    char log[4096] = "";
    run_in_temp_dir(o, 1000, mostly_a, log, sizeof log, NULL, NULL, 0);
    const char *last = strstr(log, "step: 60,");
    assert_non_null(last);
    float train, valid;
    assert_int_equal(sscanf(last, "step: 60, train loss: %f, valid loss: %f", &train, &valid), 2);
    printf("  step 60: train loss %.4f, valid loss %.4f\n", train, valid);
    if (!(train < 0.5f * valid))
        fail_msg("train loss %.4f is not well below valid loss %.4f: are the splits swapped?",
                 train, valid);
}

/* The state keeps all 64 bits of the seed: a resume evaluates on the batches the seed picks, and
 * a seed cut to 32 bits would pick others. */
static void the_state_keeps_the_whole_seed(void **state) {
    (void)state;
    TrainOptions o = tiny_options();
    o.model.block_size = 8;
    o.max_iters = 2;
    o.seed = (1ull << 40) + 7;
    char log[4096] = "", seed[32] = "";
    run_in_temp_dir(o, 1000, mostly_a, log, sizeof log, "train.seed", seed, sizeof seed);
    assert_string_equal(seed, "1099511627783");
}

int main(void) {
    apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_options_get_as_far_as_the_data),
        cmocka_unit_test(options_out_of_bounds_are_refused),
        cmocka_unit_test(batches_come_from_their_own_split),
        cmocka_unit_test(the_split_is_nine_tenths_rounded_down),
        cmocka_unit_test(evaluation_reports_each_split_as_itself),
        cmocka_unit_test(the_state_keeps_the_whole_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
