/* bin/gpt-context-loss: what each rule past the context costs in quality. Runs stretches of the
 * validation split teacher-forced through the engine (the same Sequence windowing and batch
 * steps as the daemon: a 1-character prompt, then every next character forced instead of
 * sampled) once per rule, and prints the loss per character: over whole stretches, and over the
 * characters predicted past the context, where the rules differ. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../model/batch.h"
#include "../model/checkpoint.h"
#include "../train/dataset.h"

typedef struct {
    double nll_all, nll_past; /* summed -log p of the true next character */
    long n_all, n_past;
} Loss;

/* Teacher-forces n_stretch stretches of len tokens of the validation split, spread evenly over
 * it, under one context rule; adds to *loss. */
static int run_rule(Engine *e, const Tokenizer *tok, const Dataset *d, ContextPolicy context,
                    int n_stretch, int len, int prefill_budget, BatchScratch *b, Loss *loss,
                    Error *err) {
    const int *val = d->tokens + d->n_train;
    size_t n_val = d->n - d->n_train;
    Sequence *seqs = calloc((size_t)n_stretch, sizeof *seqs);
    Sequence **all = calloc((size_t)n_stretch, sizeof *all);
    int *seen = calloc((size_t)n_stretch, sizeof *seen);
    int rc = -1;
    if (!seqs || !all || !seen) {
        error_set(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_stretch; i++) {
        size_t start =
            n_stretch > 1 ? (n_val - (size_t)len) * (size_t)i / (size_t)(n_stretch - 1) : 0;
        size_t plen;
        const char *prompt = tokenizer_piece(tok, val[start], &plen);
        GenerationParams gp = {.sampler = {1.0f, 0, 1.0f, 0.0f}, .max_tokens = len - 1};
        if (sequence_init(&seqs[i], tok, context, prompt, (size_t)plen, &gp, err)) goto done;
        seqs[i].teacher = val + start + 1;
        seqs[i].slot = i;
        all[i] = &seqs[i];
    }
    for (;;) {
        int ran = batch_step(e, all, n_stretch, prefill_budget, b, err);
        if (ran < 0) goto done;
        if (ran == 0) break;
        for (int i = 0; i < n_stretch; i++) {
            Sequence *s = &seqs[i];
            if (s->n_generated == seen[i]) continue;
            seen[i] = s->n_generated;
            /* This character was predicted from n_generated tokens of text. */
            loss->nll_all -= s->last_logprob;
            loss->n_all++;
            if (s->n_generated > s->block_size) {
                loss->nll_past -= s->last_logprob;
                loss->n_past++;
            }
        }
    }
    rc = 0;
done:
    for (int i = 0; seqs && i < n_stretch; i++) sequence_free(&seqs[i]);
    free(seqs);
    free(all);
    free(seen);
    return rc;
}

int main(int argc, char **argv) {
    const char *model_path = "weights/shakespeare-char.safetensors", *data = NULL;
    int n_stretch = 8, len = 4096, keep = 0, prefill_budget = 4096;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores > 0 ? (int)cores : 1;
    CliFlag flags[] = {
        {"model", CLI_STRING, &model_path, 0, 0, "checkpoint", false, "GPTD_MODEL"},
        {"data", CLI_STRING, &data, 0, 0, "text whose last 10% is the validation split", false,
         NULL},
        {"stretches", CLI_INT, &n_stretch, 1, 1024, "stretches, spread over the split", false,
         NULL},
        {"length", CLI_INT, &len, 2, 1 << 20, "characters per stretch", false, NULL},
        {"context-keep", CLI_INT, &keep, 0, 1 << 20,
         "tokens the keep rule keeps (0 = a quarter of the context)", false, NULL},
        {"prefill-budget", CLI_INT, &prefill_budget, 1, 1 << 20, "rows per engine step", false,
         NULL},
        {"threads", CLI_INT, &threads, 1, 256, "worker threads", false, NULL},
    };
    int rc = cli_parse(flags, sizeof flags / sizeof flags[0], argc, argv,
                       "usage: gpt-context-loss [--model FILE] [--data FILE] [--stretches N] "
                       "[--length N] [--context-keep K]");
    if (rc) return rc == 1 ? 0 : 2;
    if (!data) data = dataset_default_path();
    GPT m;
    Tokenizer tok;
    Dataset d = {0};
    Engine *e = NULL;
    BatchScratch b = {0};
    Error err;
    rc = 1;
    if (checkpoint_load(model_path, &m, &tok, NULL, NULL, &err)) {
        fprintf(stderr, "gpt-context-loss: %s\n", err.message);
        return 1;
    }
    int T = m.config.block_size;
    ContextPolicy rules[2];
    EngineConfig ec = {
        .max_slots = n_stretch, .max_rows = n_stretch + prefill_budget, .threads = threads};
    if (dataset_load(&d, data, &tok, &err) || context_policy_init(&rules[0], T, "exact", 0, &err) ||
        context_policy_init(&rules[1], T, "keep", keep, &err) || engine_create(&e, &m, &ec, &err) ||
        batch_scratch_init(&b, n_stretch, m.config.vocab_size, &err))
        goto done;
    if (d.n - d.n_train < (size_t)len) {
        error_set(&err, "the validation split holds %zu characters, fewer than --length %d",
                  d.n - d.n_train, len);
        goto done;
    }
    printf("model %s (context %d), %d stretches of %d characters of the validation split, "
           "teacher-forced\n\n",
           model_path, T, n_stretch, len);
    printf("| rule | loss per character | past the context (%s characters) |\n", "n");
    printf("|---|---:|---:|\n");
    double past[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
        Loss loss = {0};
        if (run_rule(e, &tok, &d, rules[r], n_stretch, len, prefill_budget, &b, &loss, &err))
            goto done;
        past[r] = loss.n_past ? loss.nll_past / loss.n_past : NAN;
        printf("| %s %d | %.4f | %.4f (%ld) |\n", context_shift_name(rules[r].shift),
               context_policy_kept(&rules[r]), loss.nll_all / loss.n_all, past[r], loss.n_past);
        fflush(stdout);
    }
    printf("\nkeep costs %+.2f%% in loss per character past the context\n",
           100.0 * (past[1] / past[0] - 1.0));
    rc = 0;
done:
    if (rc) fprintf(stderr, "gpt-context-loss: %s\n", err.message);
    batch_scratch_free(&b);
    engine_destroy(e);
    dataset_free(&d);
    tokenizer_free(&tok);
    gpt_free(&m);
    return rc;
}
