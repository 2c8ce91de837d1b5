#include "logit_adjust.h"

#include <math.h>

int logit_adjust_validate(const LogitAdjust *a, int vocab_size, Error *err) {
    if (!(a->repetition >= 0.0f && a->repetition <= PENALTY_MAX_REPETITION))
        return error_set(err, "repetition_penalty must be in (0, %g], got %g",
                         PENALTY_MAX_REPETITION, a->repetition);
    if (!(fabsf(a->presence) <= PENALTY_LIMIT))
        return error_set(err, "presence_penalty must be in [-%g, %g], got %g", PENALTY_LIMIT,
                         PENALTY_LIMIT, a->presence);
    if (!(fabsf(a->frequency) <= PENALTY_LIMIT))
        return error_set(err, "frequency_penalty must be in [-%g, %g], got %g", PENALTY_LIMIT,
                         PENALTY_LIMIT, a->frequency);
    if (a->n_bias < 0 || a->n_bias > LOGIT_BIAS_MAX_ENTRIES)
        return error_set(err, "logit_bias holds at most %d entries", LOGIT_BIAS_MAX_ENTRIES);
    for (int i = 0; i < a->n_bias; i++) {
        const LogitBias *b = &a->bias[i];
        if (b->token < 0 || (vocab_size > 0 && b->token >= vocab_size))
            return error_set(err, "logit_bias token %d is outside the vocabulary [0, %d)", b->token,
                             vocab_size);
        if (!(fabsf(b->bias) <= LOGIT_BIAS_LIMIT))
            return error_set(err, "logit_bias of token %d must be in [-%g, %g], got %g", b->token,
                             LOGIT_BIAS_LIMIT, LOGIT_BIAS_LIMIT, b->bias);
    }
    return 0;
}

static bool repetition_on(const LogitAdjust *a) {
    return a->repetition != 0.0f && a->repetition != 1.0f;
}

bool logit_adjust_needs_counts(const LogitAdjust *a) {
    return repetition_on(a) || a->presence != 0.0f || a->frequency != 0.0f;
}

bool logit_adjust_active(const LogitAdjust *a) {
    return logit_adjust_needs_counts(a) || a->n_bias > 0;
}

void logit_adjust_apply(const LogitAdjust *a, float *logits, int V, const int *count,
                        const uint8_t *seen) {
    if (repetition_on(a) && seen)
        for (int t = 0; t < V; t++)
            if (seen[t])
                logits[t] =
                    logits[t] > 0.0f ? logits[t] / a->repetition : logits[t] * a->repetition;
    if ((a->presence != 0.0f || a->frequency != 0.0f) && count)
        for (int t = 0; t < V; t++)
            if (count[t] > 0) logits[t] -= a->frequency * (float)count[t] + a->presence;
    for (int i = 0; i < a->n_bias; i++) logits[a->bias[i].token] += a->bias[i].bias;
}
