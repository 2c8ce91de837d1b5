/* What a request asks to see of the model's attention, and how the captured weights become what
 * it sees. The engine captures, for one layer, every head's softmax row of the query that
 * produced a token (EngineSegment.attention); a view reduces that to one head, the mean of the
 * heads, all heads, or each row's top-k positions. Rows cover the positions the model really saw:
 * the sequence's current window, oldest first. */
#ifndef GPTD_ATTENTION_VIEW_H
#define GPTD_ATTENTION_VIEW_H

#include "../common/error.h"

typedef enum {
    ATTENTION_NONE = 0, /* nothing asked: nothing captured, nothing costs */
    ATTENTION_HEAD,     /* one head's row */
    ATTENTION_MEAN,     /* the mean of the heads' rows */
    ATTENTION_ALL,      /* every head's row */
} AttentionForm;

typedef struct {
    AttentionForm form;
    int layer;   /* [0, n_layer) */
    int head;    /* ATTENTION_HEAD: [0, n_head) */
    int top_k;   /* 0: whole rows; else each row's top_k positions as (position, weight) pairs */
    int n_head;  /* the model's heads (sizes the capture) */
    int context; /* the model's block_size: the longest row */
} AttentionView;

/* Checks the view against the model's shape; names the bad field. */
int attention_view_validate(const AttentionView *v, int n_layer, Error *err);

/* Rows a token reports (1, or n_head for ATTENTION_ALL). */
int attention_view_rows(const AttentionView *v);

/* The most floats one token's view can take: rows x (context, or 2 top_k). */
int attention_view_max_values(const AttentionView *v);

/* From captured (n_head, context) rows over positions [0, visible), writes the view into out
 * (attention_view_max_values floats at most): rows one after another, each `visible` weights,
 * or top_k (position, weight) pairs with positions counted from `first_position` and the
 * heaviest first. Returns the floats written. */
int attention_view_reduce(const AttentionView *v, const float *captured, int visible,
                          int first_position, float *out);

#endif
