/* The inference engine: a fixed pool of KV-cache slots and one forward pass that advances any
 * mix of sequences at once. Each call takes segments (slot, first position, tokens): a decode
 * step is one token per sequence, a prefill is many tokens of one sequence, and both can share a
 * call. All rows of a call go through each weight matrix together (one product per matrix);
 * attention runs per segment and head against the segment's own slot, on the worker pool.
 *
 * Everything is allocated by engine_create; engine_forward allocates nothing. Results are
 * batch-invariant: a segment's logits are bit-identical whatever else shares the call.
 * The engine knows nothing of sampling, text or HTTP (see sequence.h and batch.h). */
#ifndef GPTD_ENGINE_H
#define GPTD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/error.h"
#include "gpt.h"

typedef struct Engine Engine;

typedef struct {
    int max_slots;        /* sequences held at once */
    int max_rows;         /* tokens one engine_forward may process in all (decode rows + prefill) */
    int threads;          /* worker threads, the caller's included */
    bool float32_weights; /* keep weights as float even where float16 holds them exactly (the
                           * results are the same bits; tests compare the two) */
    const struct Kernels *kernels; /* NULL: GPTD_KERNELS, else the best this CPU has */
    int group_segments; /* from how many segments each thread takes a group of them through the
                         * whole step rather than every piece being split over the threads (the
                         * same bits either way): 0, measured at start-up; -1, never */
} EngineConfig;

typedef struct {
    int slot;          /* [0, max_slots) */
    int pos;           /* position of tokens[0]; the slot's cache must hold [0, pos) */
    int n;             /* tokens, pos + n <= block_size */
    const int *tokens; /* (n) */
    float *logits;     /* (V) receives the logits after the last token; NULL: not needed */
    float *attention;  /* NULL, or (n_head, block_size): receives, for each head at layer
                        * attention_layer, the softmax row of the last token's query over
                        * positions [0, pos + n) (what it attended to) */
    int attention_layer;
} EngineSegment;

/* The model must outlive the engine; its weights are only read. */
int engine_create(Engine **engine, const GPT *model, const EngineConfig *config, Error *err);
void engine_destroy(Engine *engine);

/* Bytes of repacked weights the engine streams per step, and whether all are float16. */
size_t engine_weight_bytes(const Engine *engine, bool *all_half);

/* The kernels the engine runs (kernels.h), for logs and /info. */
const char *engine_kernels_name(const Engine *engine);

/* The engine's threads, for work between its calls that is spread the same way (sampling). */
struct ThreadPool *engine_pool(Engine *engine);

/* Bytes of KV cache per slot: 2 (k, v) x n_layer x block_size (rounded up to KEY_BLOCK) x n_embd
 * floats. */
size_t engine_slot_bytes(const GPTConfig *c);

/* How many KV slots to make for a model of n_params in memory_bytes (0: unknown): `asked`, refused
 * when it cannot fit beside the weights (held as float32 while loading), or with asked 0 as many
 * as fit in half of what the weights leave, between 1 and 64 (64 when memory is unknown). */
int engine_slots_for_memory(const GPTConfig *c, size_t n_params, size_t memory_bytes, int asked,
                            int *slots, Error *err);

/* Runs the segments (at most one per slot), writing their keys/values into the slots and the
 * requested logits. Errors (bad slot, positions past the context, too many rows, a token outside
 * the vocabulary) are reported before anything is computed. */
int engine_forward(Engine *engine, const EngineSegment *segs, int n_segs, Error *err);

/* Copies the first `rows` positions of slot from's cache into slot to (the rest of `to` is
 * dropped): a prompt's keys and values, prefilled once, shared by several replies to it. */
int engine_copy_slot(Engine *engine, int from, int to, int rows, Error *err);

#endif
