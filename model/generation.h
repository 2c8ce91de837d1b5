/* What a caller asks of one generation: sampling, logit adjustments, seed, length, stop strings,
 * and the log-probabilities and attention weights to report. Plain values
 * with no engine behind them, so the API layer can fill them (sequence.h runs them). */
#ifndef GPTD_GENERATION_H
#define GPTD_GENERATION_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/error.h"
#include "attention_view.h"
#include "logit_adjust.h"
#include "sampler.h"

#define GENERATION_MAX_STOP 5 /* a request's 4 (API_MAX_STOP), and the chat template's */
#define GENERATION_MAX_STOP_LEN 64
#define GENERATION_MAX_LOGPROBS                                                                    \
    100 /* alternatives a token may report (all, for a small vocabulary) */

typedef struct {
    SamplerConfig sampler;
    LogitAdjust adjust; /* penalties and logit_bias, before the sampler */
    uint64_t seed;
    int max_tokens; /* >= 0 */
    int n_stop;
    char stop[GENERATION_MAX_STOP][GENERATION_MAX_STOP_LEN + 1]; /* non-empty strings */
    AttentionView attention; /* the attention weights to report with each token (form NONE: none) */
    /* Log-probabilities to report with each token, of the adjusted logits at temperature 1:
     * the token's own, and the top_logprobs likeliest tokens' (0..GENERATION_MAX_LOGPROBS). */
    bool logprobs;
    int top_logprobs;
    bool score_prompt; /* also report each prompt token's (echo): the prompt runs teacher-forced */
} GenerationParams;

/* Checks sampling values, max_tokens and stop strings; names the bad field. */
int generation_params_validate(const GenerationParams *p, Error *err);

#endif
