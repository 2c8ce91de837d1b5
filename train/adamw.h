/* AdamW exactly as torch.optim.AdamW: decoupled weight decay p -= lr * wd * p on every
 * parameter (the lecture passes all parameters), then the bias-corrected Adam step. */
#ifndef GPTD_ADAMW_H
#define GPTD_ADAMW_H

#include <stddef.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWConfig;

/* One update of n parameters at step t (1-based); m and v (n) are the moment buffers. */
void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, int t,
                  const AdamWConfig *c);

#endif
