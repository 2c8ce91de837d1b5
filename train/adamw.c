#include "adamw.h"

#include <math.h>

void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, int t,
                  const AdamWConfig *c) {
    float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    float decay = 1.0f - c->lr * c->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g;
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g * g;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        params[i] = params[i] * decay - c->lr * mhat / (sqrtf(vhat) + c->eps);
    }
}
