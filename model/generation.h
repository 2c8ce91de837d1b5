/* What a caller asks of one generation: sampling, seed, length, stop strings and the attention
 * weights to report. Plain values
 * with no engine behind them, so the API layer can fill them (sequence.h runs them). */
#ifndef GPTD_GENERATION_H
#define GPTD_GENERATION_H

#include <stdint.h>

#include "../common/error.h"
#include "attention_view.h"
#include "sampler.h"

#define GENERATION_MAX_STOP 4
#define GENERATION_MAX_STOP_LEN 64

typedef struct {
    SamplerConfig sampler;
    uint64_t seed;
    int max_tokens; /* >= 0 */
    int n_stop;
    char stop[GENERATION_MAX_STOP][GENERATION_MAX_STOP_LEN + 1]; /* non-empty strings */
    AttentionView attention; /* the attention weights to report with each token (form NONE: none) */
} GenerationParams;

/* Checks sampling values, max_tokens and stop strings; names the bad field. */
int generation_params_validate(const GenerationParams *p, Error *err);

#endif
