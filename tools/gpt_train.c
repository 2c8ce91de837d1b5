/* bin/gpt-train: trains the GPT on a text file and writes safetensors checkpoints. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/cpu_budget.h"
#include "../train/data_parallel.h"
#include "../train/dataset.h"
#include "../train/trainer.h"

/* The only mutable global: written by the signal handler, read by the training loop. */
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* The command a checkpoint records: what decides its bytes. The program's own name is recorded as
 * gpt-train (bin/gpt-train-mpi under mpirun writes the same bytes), and --threads is left out,
 * since the thread count changes no result. */
static char *recorded_command(int argc, char **argv) {
    char **kept = malloc(((size_t)argc + 1) * sizeof *kept);
    if (!kept) return NULL;
    int n = 0;
    kept[n++] = "gpt-train";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--threads=", 10) != 0) kept[n++] = argv[i];
    }
    char *command = cli_join(n, kept);
    free(kept);
    return command;
}

static int train(int argc, char **argv, DataParallel *dp);

int main(int argc, char **argv) {
    DataParallel dp;
    Error err;
    if (data_parallel_start(&dp, &argc, &argv, &err)) {
        fprintf(stderr, "gpt-train: %s\n", err.message);
        return 1;
    }
    int rc = train(argc, argv, &dp);
    if (rc == 1) data_parallel_abort(&dp, rc); /* the other ranks may wait for this one */
    data_parallel_end(&dp);
    return rc;
}

/* Threads a rank uses unless told: what this process may use (affinity, cgroup quota), shared
 * by the ranks mpirun started on this machine. */
static int default_threads(void) {
    CpuBudget budget;
    cpu_budget_read(&budget);
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int ranks_here = local && atoi(local) > 0 ? atoi(local) : 1;
    return budget.threads / ranks_here > 1 ? budget.threads / ranks_here : 1;
}

static int train(int argc, char **argv, DataParallel *dp) {
    const char *activation = "relu";
    TrainOptions o = {
        .data_path = dataset_default_path(),
        .out_path = "model.safetensors",
        .model = {.n_layer = 6, .n_head = 6, .n_embd = 384, .block_size = 256},
        .batch_size = 64,
        .max_iters = 5000,
        .eval_interval = 500,
        .eval_iters = 200,
        .threads = default_threads(),
        .log_interval = 10,
        .lr = 3e-4f,
        .min_lr = -1.0f,
        .dropout = 0.2f,
        .weight_decay = 0.01f,
        .seed = 1337,
    };
    bool qkv_bias = false, tied = false, eval_only = false;
    CliFlag flags[] = {
        {"data", CLI_STRING, &o.data_path, 0, 0, "training text (UTF-8)", false, NULL},
        {"out", CLI_STRING, &o.out_path, 0, 0, "model checkpoint; <out>.state resumes", false,
         NULL},
        {"resume", CLI_STRING, &o.resume_path, 0, 0, "continue from a <out>.state file", false,
         NULL},
        {"n-layer", CLI_INT, &o.model.n_layer, 1, GPT_MAX_LAYERS, "transformer blocks", false,
         NULL},
        {"n-head", CLI_INT, &o.model.n_head, 1, 1024, "attention heads", false, NULL},
        {"n-embd", CLI_INT, &o.model.n_embd, 1, 16384, "embedding width", false, NULL},
        {"block-size", CLI_INT, &o.model.block_size, 1, 65536, "context length", false, NULL},
        {"batch-size", CLI_INT, &o.batch_size, 1, TRAIN_MAX_BATCH_SIZE, "sequences per step", false,
         NULL},
        {"max-iters", CLI_INT, &o.max_iters, 0, TRAIN_MAX_ITERS, "optimizer steps", false, NULL},
        {"eval-interval", CLI_INT, &o.eval_interval, 1, 1 << 30, "steps between evals", false,
         NULL},
        {"eval-iters", CLI_INT, &o.eval_iters, 1, 1 << 20, "batches per eval and split", false,
         NULL},
        {"lr", CLI_FLOAT, &o.lr, TRAIN_MIN_LR, TRAIN_MAX_LR, "peak learning rate", false, NULL},
        {"min-lr", CLI_FLOAT, &o.min_lr, 0, TRAIN_MAX_LR,
         "cosine-decay floor (default: lr, constant)", false, NULL},
        {"warmup-iters", CLI_INT, &o.warmup_iters, 0, TRAIN_MAX_ITERS, "linear warmup steps", false,
         NULL},
        {"weight-decay", CLI_FLOAT, &o.weight_decay, 0, TRAIN_MAX_WEIGHT_DECAY,
         "AdamW weight decay", false, NULL},
        {"dropout", CLI_FLOAT, &o.dropout, 0, TRAIN_MAX_DROPOUT, "dropout probability", false,
         NULL},
        {"seed", CLI_U64, &o.seed, 0, 0, "random seed", false, NULL},
        {"activation", CLI_STRING, &activation, 0, 0,
         "relu (the lecture), gelu (GPT-2's tanh form) or gelu_erf (exact)", false, NULL},
        {"qkv-bias", CLI_BOOL, &qkv_bias, 0, 0, "bias on the q/k/v projection", false, NULL},
        {"tied-head", CLI_BOOL, &tied, 0, 0, "share the head with the token embedding", false,
         NULL},
        {"eval-only", CLI_BOOL, &eval_only, 0, 0, "evaluate --resume FILE, do not train", false,
         NULL},
        {"tokenizer", CLI_STRING, &o.tokenizer_path, 0, 0,
         "GPT-2's byte-level BPE from DIR (vocab.json + merges.txt); default: the text's "
         "characters",
         false, NULL},
        {"threads", CLI_INT, &o.threads, 1, 1024,
         "threads (default: the CPUs this process may use, shared by mpirun's ranks on one "
         "machine)",
         false, NULL},
        {"measure-peak", CLI_BOOL, &o.measure_peak, 0, 0,
         "after training, report the products' share of the kernels' FMA peak (bench-train)", false,
         NULL},
        {"log-interval", CLI_INT, &o.log_interval, 0, 1 << 30, "steps between progress lines",
         false, NULL},
    };
    int rc = cli_parse(flags, sizeof flags / sizeof flags[0], argc, argv,
                       "usage: gpt-train [--data FILE] [--out FILE] [--resume FILE.state] ...");
    if (rc) return rc == 1 ? 0 : 2;
    if (activation_parse(activation, &o.model.activation)) {
        fprintf(stderr, "error: --activation must be relu, gelu or gelu_erf, got '%s'\n",
                activation);
        return 2;
    }
    o.model.qkv_bias = qkv_bias;
    o.model.tied_head = tied;
    o.model.vocab_size = 1; /* known once the data is read; validated below with the rest */
    if (o.min_lr < 0) o.min_lr = o.lr;
    if (o.model.n_embd % o.model.n_head != 0) {
        fprintf(stderr, "error: --n-embd (%d) must be divisible by --n-head (%d)\n", o.model.n_embd,
                o.model.n_head);
        return 2;
    }
    char *command = recorded_command(argc, argv);
    o.command_line = command;
    o.ranks = dp;
    o.stop = &stop_requested;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    Error err;
    if (o.tokenizer_path && o.resume_path) {
        fprintf(stderr, "error: --tokenizer is for a new run; --resume takes the state's own\n");
        free(command);
        return 2;
    }
    if (eval_only && !o.resume_path) {
        fprintf(stderr, "error: --eval-only needs --resume FILE (a model or .state file)\n");
        free(command);
        return 2;
    }
    rc = eval_only ? trainer_evaluate(&o, stdout, &err) : trainer_run(&o, stdout, stderr, &err);
    free(command);
    if (rc) {
        if (dp->size > 1)
            fprintf(stderr, "gpt-train (rank %d of %d): %s\n", dp->rank, dp->size, err.message);
        else
            fprintf(stderr, "gpt-train: %s\n", err.message);
        return 1;
    }
    return 0;
}
