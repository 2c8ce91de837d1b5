/* What a request changes in the model's logits before sampling: a bias per token, and penalties
 * for tokens already in the text. Applied in this order, each on the previous one's result:
 *   repetition  (multiplicative, as llama.cpp and Hugging Face apply it) for each token in the
 *               prompt the model sees or in the reply: a positive logit is divided by it, a
 *               negative one multiplied;
 *   frequency, presence (additive, as OpenAI defines them) for each token of the reply so far:
 *               logit -= frequency x count + presence x (count > 0);
 *   logit_bias  added to its token's logit.
 * Temperature, min_p, top_k and top_p (sampler.h) act on the result. All of it is float
 * arithmetic in a fixed order, so it keeps the same bits on every CPU. */
#ifndef GPTD_LOGIT_ADJUST_H
#define GPTD_LOGIT_ADJUST_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/error.h"

#define LOGIT_BIAS_MAX_ENTRIES 300 /* as OpenAI's API allows */
#define LOGIT_BIAS_LIMIT 100.0f    /* |bias| at most this: -100 bans a token, 100 forces it */
#define PENALTY_MAX_REPETITION 10.0f
#define PENALTY_LIMIT 2.0f /* |presence|, |frequency| at most this, as OpenAI's */

typedef struct {
    int token;
    float bias;
} LogitBias;

typedef struct {
    float repetition;          /* 0 or 1 = off; in (0, 10] */
    float presence, frequency; /* 0 = off; in [-2, 2] */
    int n_bias;
    LogitBias bias[LOGIT_BIAS_MAX_ENTRIES]; /* distinct tokens */
} LogitAdjust;

/* Bounds, and token ids below vocab_size (0: not checked here). */
int logit_adjust_validate(const LogitAdjust *a, int vocab_size, Error *err);
bool logit_adjust_active(const LogitAdjust *a);
/* Whether the penalties need the text's token counts (logit_adjust_apply's count and seen). */
bool logit_adjust_needs_counts(const LogitAdjust *a);

/* Adjusts logits (V) in place. count[t]: times token t was generated so far; seen[t]: nonzero if
 * t is in the prompt the model sees or was generated. Both may be NULL when no penalty is on. */
void logit_adjust_apply(const LogitAdjust *a, float *logits, int V, const int *count,
                        const uint8_t *seen);

#endif
