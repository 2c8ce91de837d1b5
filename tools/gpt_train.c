/* bin/gpt-train: trains the GPT on a text file and writes safetensors checkpoints. */
#include <cblas.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../train/dataset.h"
#include "../train/trainer.h"

/* The only mutable global: written by the signal handler, read by the training loop. */
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* OpenBLAS picks its kernels when it loads, from the CPU models it knows. Debian 12's 0.3.21
 * does not know CPUs newer than itself (Emerald Rapids, Zen 5) and falls back to its generic
 * SSE3 kernels ("Prescott"), about 3x slower. Then name the closest core it knows and start
 * again, since the choice is made before main. An OPENBLAS_CORETYPE set by the user stands. */
static void pick_openblas_core(char **argv) {
#if defined(__x86_64__)
    const char *core = openblas_get_corename();
    if (getenv("OPENBLAS_CORETYPE") || strcasecmp(core, "prescott") != 0) return;
    __builtin_cpu_init();
    const char *known = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                        : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                          : NULL;
    if (!known) return;
    fprintf(stderr,
            "gpt-train: OpenBLAS does not know this CPU (it chose %s); restarting with "
            "OPENBLAS_CORETYPE=%s\n",
            core, known);
    setenv("OPENBLAS_CORETYPE", known, 1);
    execv("/proc/self/exe", argv);
#else
    (void)argv;
#endif
}

int main(int argc, char **argv) {
    pick_openblas_core(argv);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *activation = "relu";
    TrainOptions o = {
        .data_path = dataset_default_path(),
        .out_path = "model.safetensors",
        .model = {.n_layer = 6, .n_head = 6, .n_embd = 384, .block_size = 256},
        .batch_size = 64,
        .max_iters = 5000,
        .eval_interval = 500,
        .eval_iters = 200,
        .threads = cores > 0 ? (int)cores : 1,
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
        {"threads", CLI_INT, &o.threads, 1, 1024, "OpenBLAS threads", false, NULL},
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
    char *command = cli_join(argc, argv);
    o.command_line = command;
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
        fprintf(stderr, "gpt-train: %s\n", err.message);
        return 1;
    }
    return 0;
}
