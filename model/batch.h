/* One step of continuous batching over a set of sequences: every decoding sequence advances by
 * one token and prefilling sequences share a budget of prompt tokens, all in one engine call.
 * The daemon's scheduler and the command-line tools both drive generation through this. */
#ifndef GPTD_BATCH_H
#define GPTD_BATCH_H

#include "engine.h"
#include "sequence.h"

typedef struct {
    int max_slots, vocab_size;
    EngineSegment *segs; /* (max_slots) */
    Sequence **owners;   /* (max_slots) sequence of each segment */
    float *logits;       /* (max_slots, V) */
    float *probs;        /* (parts, V) sampling scratch, one per part of a step's sampling */
    int *index;          /* (parts, V) */
    unsigned long step;  /* rotates which sequence's prefill goes first */
    long rows;           /* tokens the last step ran through the engine */
} BatchScratch;

int batch_scratch_init(BatchScratch *b, int max_slots, int vocab_size, Error *err);
void batch_scratch_free(BatchScratch *b);

/* Advances each unfinished sequence in seqs (n <= max_slots, distinct slots): decode rows first,
 * then prefill chunks while prefill_budget tokens last (at least one chunk per step so prompts
 * always progress). Prompt prefills and window re-prefills past the context alike take turns:
 * the sequence that goes first rotates every step, so a long prompt or a long reply cannot
 * starve the others. A sequence that forks another (sequence.h) gets its copy in the step that
 * prefilled the prompt. Returns the number of sequences that ran, or -1 with err. */
int batch_step(Engine *e, Sequence **seqs, int n, int prefill_budget, BatchScratch *b, Error *err);

#endif
