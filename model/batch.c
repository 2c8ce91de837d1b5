#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "../common/thread_pool.h"

/* Sampling after a step runs in up to ADVANCE_PARTS parts over the engine's pool, each with its
 * own scratch; below ADVANCE_SPLIT sequences a hand-off costs more than it saves. */
#define ADVANCE_PARTS 8
#define ADVANCE_SPLIT 16

int batch_scratch_init(BatchScratch *b, int max_slots, int vocab_size, Error *err) {
    memset(b, 0, sizeof *b);
    b->max_slots = max_slots;
    b->vocab_size = vocab_size;
    b->segs = calloc((size_t)max_slots, sizeof *b->segs);
    b->owners = calloc((size_t)max_slots, sizeof *b->owners);
    b->logits = malloc((size_t)max_slots * vocab_size * sizeof *b->logits);
    b->probs = malloc((size_t)ADVANCE_PARTS * vocab_size * sizeof *b->probs);
    b->index = malloc((size_t)ADVANCE_PARTS * vocab_size * sizeof *b->index);
    if (!b->segs || !b->owners || !b->logits || !b->probs || !b->index) {
        batch_scratch_free(b);
        return error_set(err, "out of memory");
    }
    return 0;
}

void batch_scratch_free(BatchScratch *b) {
    free(b->segs);
    free(b->owners);
    free(b->logits);
    free(b->probs);
    free(b->index);
    memset(b, 0, sizeof *b);
}

static int is_decoding(const Sequence *s) {
    return s->n_tokens - s->window_start - s->cached == 1 &&
           s->n_tokens - s->window_start <= s->block_size;
}

typedef struct {
    BatchScratch *b;
    int n_segs, parts;
} AdvanceJob;

/* Each sequence samples with its own RNG and touches only itself, so parts are independent. */
static void advance_task(void *ctx, int part) {
    const AdvanceJob *j = ctx;
    BatchScratch *b = j->b;
    size_t V = (size_t)b->vocab_size;
    for (int i = j->n_segs * part / j->parts; i < j->n_segs * (part + 1) / j->parts; i++)
        sequence_advance(b->owners[i], &b->segs[i], b->probs + part * V, b->index + part * V);
}

int batch_step(Engine *e, Sequence **seqs, int n, int prefill_budget, BatchScratch *b, Error *err) {
    if (n > b->max_slots) return error_set(err, "%d sequences, at most %d", n, b->max_slots);
    int n_segs = 0, first = n > 0 ? (int)(b->step++ % (unsigned long)n) : 0;
    /* Decoders first: one row each, they never wait behind a long prompt. */
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < n; k++) {
            Sequence *s = seqs[(first + k) % n];
            if (s->finish != FINISH_NONE || is_decoding(s) != (pass == 0)) continue;
            int budget = pass == 0 ? 1 : prefill_budget;
            if (pass == 1 && budget < 1) {
                if (n_segs > 0) continue;
                budget = 1; /* an idle step still moves a prompt forward */
            }
            float *logits = b->logits + (size_t)n_segs * b->vocab_size;
            if (!sequence_next_segment(s, budget, logits, &b->segs[n_segs])) continue;
            if (pass == 1) prefill_budget -= b->segs[n_segs].n;
            b->owners[n_segs++] = s;
        }
    if (n_segs == 0) return 0;
    if (engine_forward(e, b->segs, n_segs, err)) return -1;
    b->rows = 0;
    for (int i = 0; i < n_segs; i++) b->rows += b->segs[i].n;
    AdvanceJob job = {b, n_segs, n_segs < ADVANCE_SPLIT ? 1 : ADVANCE_PARTS};
    if (job.parts == 1)
        advance_task(&job, 0);
    else
        thread_pool_run(engine_pool(e), advance_task, &job, job.parts);
    /* Forks whose first sequence prefilled the prompt in this step: a copy of its cache rows, not
     * a prefill of their own. */
    for (int k = 0; k < n; k++) {
        Sequence *s = seqs[k];
        if (!sequence_fork_due(s)) continue;
        if (engine_copy_slot(e, s->fork_of->slot, s->slot, s->fork_of->cached, err)) return -1;
        sequence_fork(s, b->probs, b->index);
    }
    return n_segs;
}
