/* One generation request as the engine sees it: its tokens, its window onto the model's
 * context, its own sampler settings and RNG, stop strings, and the text produced so far.
 *
 * Past the context: positions are learned and absolute, so a full window cannot slide by
 * shifting the cache (its keys were computed at other positions). When the window is full the
 * sequence starts a new one and prefills it at positions 0.. (ContextPolicy):
 *   exact  the new window is the last block_size tokens, as the lecture's generate() does:
 *          every token past the context costs a prefill of block_size rows;
 *   keep   the new window is the last `keep` tokens; decoding goes on from the cache until the
 *          window is full again: block_size - keep + 1 tokens for keep rows of prefill: a third
 *          of an extra row per token with the default keep, a quarter of the context.
 * The re-prefill is an ordinary prefill, charged to the step's prefill budget (batch.h). */
#ifndef GPTD_SEQUENCE_H
#define GPTD_SEQUENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/rng.h"
#include "engine.h"
#include "generation.h"
#include "sampler.h"
#include "tokenizer.h"

typedef enum { FINISH_NONE = 0, FINISH_LENGTH, FINISH_STOP } FinishReason;

typedef enum { CONTEXT_EXACT = 0, CONTEXT_KEEP } ContextShift;

/* How a sequence's window moves once it holds block_size tokens (see the top of this file). */
typedef struct {
    int block_size;     /* the model's context */
    ContextShift shift; /* exact or keep */
    int keep;           /* CONTEXT_KEEP: tokens kept, 1..block_size */
} ContextPolicy;

/* Parses "exact" or "keep" and checks keep against block_size (keep 0 = a quarter of the
 * context). */
int context_policy_init(ContextPolicy *p, int block_size, const char *shift, int keep, Error *err);
const char *context_shift_name(ContextShift shift);
/* Tokens a full window keeps when it moves on. */
int context_policy_kept(const ContextPolicy *p);

typedef struct Sequence {
    GenerationParams params;
    const Tokenizer *tok;
    ContextPolicy context;
    int block_size, vocab_size; /* block_size = context.block_size */
    int slot;                   /* the engine slot it runs in, set by the caller */
    Rng rng;
    int *tokens; /* (block_size + max_tokens): the window's prompt part, then generated */
    int n_tokens;
    int n_prompt;       /* prompt tokens kept (at most block_size) */
    int prompt_dropped; /* prompt tokens cut from the front to fit the context */
    int window_start;   /* index in tokens of the slot's position 0 */
    int cached;         /* tokens of the window already in the slot's cache */
    int n_generated;
    int shifts;         /* times the window moved past the context */
    const int *teacher; /* NULL, or max_tokens tokens forced instead of sampled (evaluation) */
    float last_logprob; /* of the last token: as sampled, or the model's for a teacher token */
    /* With params.score_prompt, the prompt's tokens after the first are teacher-forced one a step
     * (tokens holds them all from the start), so that each gets its log-probability: n_score of
     * them, scored so far. n_prompt counts the prompt tokens in the window so far. */
    int n_score, scored;
    /* With params.logprobs: the last token's log-probability under the adjusted logits at
     * temperature 1, and the top_logprobs likeliest tokens' (n_top of them). */
    float last_adjusted_logprob;
    int *top_ids;
    float *top_logprobs;
    int n_top;
    /* With penalties (logit_adjust.h): times each token was generated, and whether it is in the
     * prompt the model sees or the reply (V each). */
    int *count;
    uint8_t *seen;
    /* Several replies to one prompt (n > 1): the first prefills it and keeps the logits after it
     * (fork_logits, fork_ready); each other (fork_of set) waits without a segment, then takes a
     * copy of the first's cache and samples its first token from those logits (sequence_fork). */
    struct Sequence *fork_of;
    float *fork_logits; /* (V) the first's kept logits, or a fork's copy to adjust */
    bool fork_ready;    /* the first: fork_logits hold the logits after the prompt */
    bool forked;        /* a fork: it has its copy and runs on its own */
    /* With params.attention asked for: what the last token's query attended to. Positions count
     * the prompt's characters (dropped ones included), then the generated ones. */
    float *attention_capture; /* (n_head, block_size): the engine writes here */
    float *attention;         /* the view: attention_values floats (attention_view.h) */
    int attention_values;
    int attention_start;   /* position of the first weight: the window's first token */
    int attention_visible; /* positions the query saw, attention_start.. */
    char *text; /* generated text, valid UTF-8, text_len bytes; the stop string is cut off */
    size_t text_len, emitted;
    Utf8Stream utf8; /* the bytes of a character that the next token may finish */
    bool stopped;    /* a stop string ended the text */
    FinishReason finish;
} Sequence;

#define SEQUENCE_NO_MEMORY (-2) /* sequence_init's result when an allocation failed */

/* Encodes the prompt (a character outside the vocabulary is an error naming it and its
 * position; -1), or returns SEQUENCE_NO_MEMORY. An empty prompt starts from token 0, as the
 * lecture's script does; a prompt longer than the context keeps its last block_size tokens
 * (prompt_dropped says how many were cut). */
int sequence_init(Sequence *s, const Tokenizer *tok, ContextPolicy context, const char *prompt,
                  size_t prompt_len, const GenerationParams *params, Error *err);
void sequence_free(Sequence *s);

/* The work this sequence needs from the next engine call: a prefill chunk of at most
 * max_prefill tokens, or one decode token. logits (V) is where the engine should write, or
 * NULL when a prefill chunk does not end the window yet. Returns 0 if finished (no segment). */
int sequence_next_segment(Sequence *s, int max_prefill, float *logits, EngineSegment *seg);

/* After the engine ran seg: records the cached tokens and, if seg asked for logits, samples the
 * next token (probs, index: scratch of V), or takes the teacher's or the next prompt token to
 * score. Adjusts seg->logits in place (penalties, logit_bias). */
void sequence_advance(Sequence *s, const EngineSegment *seg, float *probs, int *index);

/* Makes s (not yet run) a fork of first: s waits until first has prefilled the same prompt.
 * Both must have been made from the same prompt; first keeps its logits for it from now on. */
int sequence_fork_from(Sequence *s, Sequence *first, Error *err);
/* True when s waits for its first sequence and that one's prompt is in its cache. */
bool sequence_fork_due(const Sequence *s);
/* After the engine copied first's cache rows (s->fork_of->cached of them) into s's slot: s samples
 * its first token from the kept logits (probs, index: scratch of V) and runs on its own. */
void sequence_fork(Sequence *s, float *probs, int *index);

/* Tokens reported so far, each with its log-probabilities: the scored prompt tokens, then the
 * generated ones. */
int sequence_reported(const Sequence *s);

/* New text that is safe to hand out: whole characters, never part of a possible stop string.
 * Returns its length and points *out at it; marks it as emitted. */
size_t sequence_take_text(Sequence *s, const char **out);

#endif
