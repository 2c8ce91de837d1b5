#include "attention_view.h"

int attention_view_validate(const AttentionView *v, int n_layer, Error *err) {
    if (v->form == ATTENTION_NONE) return 0;
    if (v->form < ATTENTION_HEAD || v->form > ATTENTION_ALL)
        return error_set(err, "attention: unknown form %d", (int)v->form);
    if (v->layer < 0 || v->layer >= n_layer)
        return error_set(err, "attention \"layer\" must be in [0, %d], got %d", n_layer - 1,
                         v->layer);
    if (v->form == ATTENTION_HEAD && (v->head < 0 || v->head >= v->n_head))
        return error_set(err, "attention \"head\" must be in [0, %d], \"mean\" or \"all\", got %d",
                         v->n_head - 1, v->head);
    if (v->context < 1 || v->n_head < 1)
        return error_set(err, "attention: the model's shape is not set");
    if (v->top_k < 0 || v->top_k > v->context)
        return error_set(err, "attention \"top_k\" must be in [1, %d], got %d", v->context,
                         v->top_k);
    return 0;
}

int attention_view_rows(const AttentionView *v) {
    return v->form == ATTENTION_ALL ? v->n_head : v->form == ATTENTION_NONE ? 0 : 1;
}

int attention_view_max_values(const AttentionView *v) {
    return attention_view_rows(v) * (v->top_k ? 2 * v->top_k : v->context);
}

/* The k heaviest of row[0, n) as (position, weight) pairs, heaviest first (ties: the earlier
 * position first). k is small: a selection pass per pick. */
static int top_k_pairs(const float *row, int n, int k, int first_position, float *out) {
    int picked = 0;
    float last_w = 2.0f;
    int last_t = -1;
    for (; picked < k && picked < n; picked++) {
        int best = -1;
        for (int t = 0; t < n; t++) {
            /* strictly after the previous pick in (weight desc, position asc) order */
            if (row[t] > last_w || (row[t] == last_w && t <= last_t)) continue;
            if (best < 0 || row[t] > row[best]) best = t;
        }
        if (best < 0) break;
        out[2 * picked] = (float)(first_position + best);
        out[2 * picked + 1] = row[best];
        last_w = row[best];
        last_t = best;
    }
    return 2 * picked;
}

int attention_view_reduce(const AttentionView *v, const float *captured, int visible,
                          int first_position, float *out) {
    int rows = attention_view_rows(v), written = 0;
    float mean[v->form == ATTENTION_MEAN ? visible : 1];
    for (int r = 0; r < rows; r++) {
        const float *row = captured + (size_t)(v->form == ATTENTION_ALL ? r : v->head) * v->context;
        if (v->form == ATTENTION_MEAN) {
            for (int t = 0; t < visible; t++) {
                float sum = 0.0f;
                for (int h = 0; h < v->n_head; h++) sum += captured[(size_t)h * v->context + t];
                mean[t] = sum / (float)v->n_head;
            }
            row = mean;
        }
        if (v->top_k)
            written += top_k_pairs(row, visible, v->top_k, first_position, out + written);
        else
            for (int t = 0; t < visible; t++) out[written++] = row[t];
    }
    return written;
}
