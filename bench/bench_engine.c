/* bin/bench-engine: the inference engine measured on a checkpoint, in one run: OpenBLAS sgemm
 * GFLOP/s at the model's shapes (the machine's yardstick), decode tokens/s at several batch
 * sizes, prefill tokens/s, and each as effective GFLOP/s and a fraction of the sgemm figure.
 * Prints a Markdown table. The PyTorch side is bench/engine_reference.py (see bench_engine.sh). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../model/batch.h"
#include "../model/checkpoint.h"
#include "../tools/cli.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* sgemm GFLOP/s over the four weight shapes of a block, `rows` rows each. */
static double sgemm_gflops(const GPTConfig *c, int rows, int threads) {
    int C = c->n_embd, shapes[4][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}};
    double flops = 0, seconds = 0;
    openblas_set_num_threads(threads);
    for (int s = 0; s < 4; s++) {
        int K = shapes[s][0], M = shapes[s][1];
        float *a = calloc((size_t)rows * K, 4), *w = calloc((size_t)K * M, 4),
              *o = malloc((size_t)rows * M * 4);
        for (size_t i = 0; i < (size_t)K * M; i++) w[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)rows * K; i++) a[i] = (float)(i % 5) * 0.1f;
        int reps = (int)(2e9 / (2.0 * rows * K * M)) + 3;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, M, K, 1, a, K, w, M, 0, o, M);
        double t0 = now();
        for (int r = 0; r < reps; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, M, K, 1, a, K, w, M, 0, o,
                        M);
        seconds += now() - t0;
        flops += 2.0 * rows * K * M * reps;
        free(a);
        free(w);
        free(o);
    }
    return flops / seconds / 1e9;
}

/* FLOPs of one token at context length ctx: the weight products plus attention. */
static double flops_per_token(const GPTConfig *c, double ctx) {
    double C = c->n_embd, L = c->n_layer;
    return 2.0 * (L * 12 * C * C + C * c->vocab_size) + L * 4.0 * ctx * C;
}

typedef struct {
    double tokens_per_s, ms_per_step;
} Rate;

/* B sequences generate n tokens each from a 1-character prompt; decode steps only are timed. */
static int decode_rate(const GPT *m, const Tokenizer *tok, int B, int n, int threads, Rate *r,
                       Error *err) {
    Engine *e;
    BatchScratch b;
    EngineConfig ec = {.max_slots = B, .max_rows = B + m->config.block_size, .threads = threads};
    if (engine_create(&e, m, &ec, err)) return -1;
    if (batch_scratch_init(&b, B, m->config.vocab_size, err)) return -1;
    Sequence *seqs = calloc((size_t)B, sizeof *seqs);
    Sequence **active = calloc((size_t)B, sizeof *active);
    for (int i = 0; i < B; i++) {
        GenerationParams gp = {
            .sampler = {1.0f, 0, 1.0f}, .seed = (uint64_t)i + 1, .max_tokens = n};
        if (sequence_init(&seqs[i], tok, m->config.block_size, "\n", 1, &gp, err)) return -1;
        seqs[i].slot = i;
        active[i] = &seqs[i];
    }
    if (batch_step(e, active, B, B * m->config.block_size, &b, err) < 0) return -1; /* prefill */
    int steps = 0;
    double t0 = now();
    while (seqs[0].finish == FINISH_NONE) {
        if (batch_step(e, active, B, 0, &b, err) < 0) return -1;
        steps++;
    }
    double dt = now() - t0;
    r->tokens_per_s = (double)B * steps / dt;
    r->ms_per_step = dt / steps * 1e3;
    for (int i = 0; i < B; i++) sequence_free(&seqs[i]);
    free(seqs);
    free(active);
    batch_scratch_free(&b);
    engine_destroy(e);
    return 0;
}

/* Prefill of a prompt of `chars` characters (the context's worth if longer), repeated. */
static int prefill_rate(const GPT *m, const Tokenizer *tok, int chars, int threads, Rate *r,
                        int *used, Error *err) {
    int T = m->config.block_size, n = chars < T ? chars : T, reps = 20;
    Engine *e;
    EngineConfig ec = {.max_slots = 1, .max_rows = n, .threads = threads};
    if (engine_create(&e, m, &ec, err)) return -1;
    int *tokens = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) tokens[i] = (i * 7 + 3) % tok->vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)m->config.vocab_size);
    EngineSegment seg = {.slot = 0, .pos = 0, .n = n, .tokens = tokens, .logits = logits};
    if (engine_forward(e, &seg, 1, err)) return -1;
    double t0 = now();
    for (int i = 0; i < reps; i++)
        if (engine_forward(e, &seg, 1, err)) return -1;
    double dt = now() - t0;
    r->tokens_per_s = (double)n * reps / dt;
    r->ms_per_step = dt / reps * 1e3;
    *used = n;
    free(tokens);
    free(logits);
    engine_destroy(e);
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = "weights/shakespeare-char.safetensors";
    int threads = 2, new_tokens = 100;
    CliFlag flags[] = {
        {"model", CLI_STRING, &model_path, 0, 0, "checkpoint", false, NULL},
        {"threads", CLI_INT, &threads, 1, 256, "threads (engine pool and OpenBLAS)", false, NULL},
        {"new-tokens", CLI_INT, &new_tokens, 1, 100000, "tokens per sequence in decode runs", false,
         NULL},
    };
    int rc = cli_parse(flags, 3, argc, argv, "usage: bench-engine [--model FILE] [--threads N]");
    if (rc) return rc == 1 ? 0 : 2;
    GPT m;
    Tokenizer tok;
    Error err;
    if (checkpoint_load(model_path, &m, &tok, NULL, NULL, &err)) {
        fprintf(stderr, "bench-engine: %s\n", err.message);
        return 1;
    }
    const GPTConfig *c = &m.config;
    if (new_tokens > c->block_size - 1) new_tokens = c->block_size - 1;
    double sg64 = sgemm_gflops(c, 64, threads), sg_big = sgemm_gflops(c, 4096, threads);
    openblas_set_num_threads(1); /* the engine does not use OpenBLAS; keep its threads idle */
    printf("model %s: %d layers, %d heads, width %d, context %d, %zu parameters; %d threads\n\n",
           model_path, c->n_layer, c->n_head, c->n_embd, c->block_size, m.n_params, threads);
    printf("OpenBLAS sgemm at the block's weight shapes: %.1f GFLOP/s with 64 rows, %.1f GFLOP/s "
           "with 4096 rows\n\n",
           sg64, sg_big);
    printf("| run | tokens/s | ms/step | GFLOP/s | of sgemm (64 rows) | of sgemm (4096 rows) |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    int batches[] = {1, 4, 16, 64};
    for (int i = 0; i < 4; i++) {
        Rate r;
        if (decode_rate(&m, &tok, batches[i], new_tokens, threads, &r, &err)) {
            fprintf(stderr, "bench-engine: %s\n", err.message);
            return 1;
        }
        double gf = r.tokens_per_s * flops_per_token(c, 1 + new_tokens / 2.0) / 1e9;
        printf("| decode, batch %d | %.0f | %.2f | %.1f | %.0f%% | %.0f%% |\n", batches[i],
               r.tokens_per_s, r.ms_per_step, gf, 100 * gf / sg64, 100 * gf / sg_big);
        fflush(stdout);
    }
    Rate r;
    int used;
    if (prefill_rate(&m, &tok, 256, threads, &r, &used, &err)) {
        fprintf(stderr, "bench-engine: %s\n", err.message);
        return 1;
    }
    double gf = r.tokens_per_s * flops_per_token(c, used / 2.0) / 1e9;
    printf("| prefill, 256-char prompt (%d tokens in context) | %.0f | %.2f | %.1f | %.0f%% | "
           "%.0f%% |\n",
           used, r.tokens_per_s, r.ms_per_step, gf, 100 * gf / sg64, 100 * gf / sg_big);
    tokenizer_free(&tok);
    gpt_free(&m);
    return 0;
}
