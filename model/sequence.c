#include "sequence.h"

#include <stdlib.h>
#include <string.h>

int generation_params_validate(const GenerationParams *p, Error *err) {
    if (sampler_config_validate(&p->sampler, err) || logit_adjust_validate(&p->adjust, 0, err))
        return -1;
    if (p->top_logprobs < 0 || p->top_logprobs > GENERATION_MAX_LOGPROBS)
        return error_set(err, "top_logprobs must be in [0, %d], got %d", GENERATION_MAX_LOGPROBS,
                         p->top_logprobs);
    if (p->max_tokens < 0) return error_set(err, "max_tokens must be >= 0, got %d", p->max_tokens);
    if (p->n_stop < 0 || p->n_stop > GENERATION_MAX_STOP)
        return error_set(err, "at most %d stop strings", GENERATION_MAX_STOP);
    /* the layer is checked against the model by the engine */
    if (p->attention.form != ATTENTION_NONE && attention_view_validate(&p->attention, 1 << 30, err))
        return -1;
    for (int i = 0; i < p->n_stop; i++) {
        if (p->stop[i][0] == '\0') return error_set(err, "stop strings must not be empty");
        /* matched and held back by bytes: only whole characters keep replies valid UTF-8 */
        if (tokenizer_count(p->stop[i], strlen(p->stop[i]), err) < 0)
            return error_wrap(err, "stop string %d", i + 1);
    }
    return 0;
}

int context_policy_init(ContextPolicy *p, int block_size, const char *shift, int keep, Error *err) {
    if (block_size < 1) return error_set(err, "block_size must be >= 1, got %d", block_size);
    ContextShift mode;
    if (strcmp(shift, "exact") == 0)
        mode = CONTEXT_EXACT;
    else if (strcmp(shift, "keep") == 0)
        mode = CONTEXT_KEEP;
    else
        return error_set(err, "the context shift is \"exact\" or \"keep\", not \"%s\"", shift);
    /* A quarter: as good in loss per character as a half or the exact rule on the shipped model
     * (README, Numbers), and a third of a row of re-prefill per token instead of one. */
    if (keep == 0) keep = block_size / 4 > 0 ? block_size / 4 : 1;
    if (keep < 1 || keep > block_size)
        return error_set(err, "keep %d is outside 1..%d (the model's context)", keep, block_size);
    *p = (ContextPolicy){.block_size = block_size, .shift = mode, .keep = keep};
    return 0;
}

const char *context_shift_name(ContextShift shift) {
    return shift == CONTEXT_KEEP ? "keep" : "exact";
}

int context_policy_kept(const ContextPolicy *p) {
    return p->shift == CONTEXT_KEEP ? p->keep : p->block_size;
}

int sequence_init(Sequence *s, const Tokenizer *tok, ContextPolicy context, const char *prompt,
                  size_t prompt_len, const GenerationParams *params, Error *err) {
    memset(s, 0, sizeof *s);
    int block_size = context.block_size;
    if (block_size < 1 || context.keep < 1 || context.keep > block_size)
        return error_set(err, "bad context policy (block_size %d, keep %d)", block_size,
                         context.keep);
    if (generation_params_validate(params, err)) return -1;
    s->params = *params;
    s->tok = tok;
    s->context = context;
    s->block_size = block_size;
    s->vocab_size = tok->vocab_size;
    if (logit_adjust_validate(&params->adjust, tok->vocab_size, err)) return -1;
    /* Scoring keeps the whole prompt: at most one token a byte, and the start token. */
    size_t prompt_room = params->score_prompt ? prompt_len + 1 : (size_t)block_size;
    s->tokens = malloc((prompt_room + (size_t)params->max_tokens) * sizeof *s->tokens);
    s->text = malloc((size_t)params->max_tokens * tokenizer_max_text(tok) + 1);
    bool top = params->logprobs && params->top_logprobs > 0;
    if (top) {
        s->top_ids = malloc((size_t)params->top_logprobs * sizeof *s->top_ids);
        s->top_logprobs = malloc((size_t)params->top_logprobs * sizeof *s->top_logprobs);
    }
    bool counts = logit_adjust_needs_counts(&params->adjust);
    if (counts) {
        s->count = calloc((size_t)tok->vocab_size, sizeof *s->count);
        s->seen = calloc((size_t)tok->vocab_size, sizeof *s->seen);
    }
    const AttentionView *view = &params->attention;
    if (view->form != ATTENTION_NONE) {
        s->attention_capture = malloc((size_t)view->n_head * block_size * sizeof(float));
        s->attention = malloc((size_t)attention_view_max_values(view) * sizeof(float));
    }
    if (!s->tokens || !s->text ||
        (view->form != ATTENTION_NONE && (!s->attention_capture || !s->attention)) ||
        (top && (!s->top_ids || !s->top_logprobs)) || (counts && (!s->count || !s->seen))) {
        sequence_free(s);
        error_set(err, "out of memory");
        return SEQUENCE_NO_MEMORY;
    }
    /* only the last block_size characters are kept: the window the model will see */
    size_t kept, total;
    if (tokenizer_encode_tail(tok, prompt, prompt_len, s->tokens, prompt_room, &kept, &total,
                              err)) {
        sequence_free(s);
        return error_wrap(err, "prompt");
    }
    /* A stop string the model cannot write could never match: refused, as a prompt would be. */
    for (int i = 0; i < params->n_stop; i++) {
        int ids[GENERATION_MAX_STOP_LEN];
        size_t n;
        if (tokenizer_encode(tok, params->stop[i], strlen(params->stop[i]), ids,
                             GENERATION_MAX_STOP_LEN, &n, err)) {
            sequence_free(s);
            return error_wrap(err, "stop string %d", i);
        }
    }
    if (kept == 0) s->tokens[kept++] = tok->start_token; /* the lecture's script: token 0 */
    s->n_tokens = s->n_prompt = (int)kept;
    s->prompt_dropped = total > kept ? (int)(total - kept) : 0;
    if (params->score_prompt) { /* the first token, then the rest one a step */
        s->n_score = (int)kept - 1;
        s->n_tokens = s->n_prompt = 1;
    }
    if (counts)
        for (int i = 0; i < s->n_prompt + s->n_score; i++) s->seen[s->tokens[i]] = 1;
    rng_seed(&s->rng, params->seed);
    if (params->max_tokens == 0 && s->n_score == 0) s->finish = FINISH_LENGTH;
    return 0;
}

int sequence_fork_from(Sequence *s, Sequence *first, Error *err) {
    if (first->n_prompt != s->n_prompt || first->n_score || s->n_score || first->fork_of ||
        memcmp(first->tokens, s->tokens, (size_t)s->n_prompt * sizeof *s->tokens) != 0)
        return error_set(err,
                         "a fork needs the same prompt, unscored, and a first that is no fork");
    size_t bytes = (size_t)s->vocab_size * sizeof(float);
    if (!first->fork_logits && !(first->fork_logits = malloc(bytes))) goto oom;
    if (!(s->fork_logits = malloc(bytes))) goto oom;
    s->fork_of = first;
    return 0;
oom:
    return error_set(err, "out of memory");
}

bool sequence_fork_due(const Sequence *s) {
    return s->fork_of && !s->forked && s->fork_of->fork_ready;
}

void sequence_fork(Sequence *s, float *probs, int *index) {
    const Sequence *first = s->fork_of;
    memcpy(s->fork_logits, first->fork_logits, (size_t)s->vocab_size * sizeof(float));
    s->window_start = first->window_start;
    s->forked = true;
    EngineSegment seg = {.slot = s->slot, .pos = 0, .n = 0, .logits = s->fork_logits};
    s->cached = first->cached; /* the prompt's window, forked in the step that prefilled it */
    sequence_advance(s, &seg, probs, index);
}

int sequence_reported(const Sequence *s) { return s->scored + s->n_generated; }

void sequence_free(Sequence *s) {
    free(s->tokens);
    free(s->text);
    free(s->attention_capture);
    free(s->attention);
    free(s->top_ids);
    free(s->top_logprobs);
    free(s->count);
    free(s->seen);
    free(s->fork_logits);
    memset(s, 0, sizeof *s);
}

int sequence_next_segment(Sequence *s, int max_prefill, float *logits, EngineSegment *seg) {
    if (s->finish != FINISH_NONE || (s->fork_of && !s->forked)) return 0;
    int window = s->n_tokens - s->window_start;
    if (window > s->block_size) { /* full: a new window of the last tokens, at position 0 */
        window = context_policy_kept(&s->context);
        s->window_start = s->n_tokens - window;
        s->cached = 0;
        s->shifts++;
    }
    int pending = window - s->cached;
    int n = pending < max_prefill ? pending : max_prefill;
    if (n < 1) n = 1;
    seg->slot = s->slot;
    seg->pos = s->cached;
    seg->n = n;
    seg->tokens = s->tokens + s->window_start + s->cached;
    seg->logits = n == pending ? logits : NULL;
    bool report = seg->logits && s->params.attention.form != ATTENTION_NONE;
    seg->attention = report ? s->attention_capture : NULL;
    seg->attention_layer = s->params.attention.layer;
    return 1;
}

/* Length of the longest suffix of text[from..len) that is a proper prefix of a stop string. */
static size_t stop_prefix_suffix(const Sequence *s, size_t from) {
    size_t best = 0;
    for (int i = 0; i < s->params.n_stop; i++) {
        size_t sl = strlen(s->params.stop[i]);
        for (size_t k = sl - 1; k > best; k--)
            if (k <= s->text_len - from &&
                memcmp(s->text + s->text_len - k, s->params.stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Ends the text at the first stop string it now holds. A token may add several characters, so
 * a stop string can end before the text does; it can begin up to its length minus one bytes
 * before the new text (`from`). */
static void cut_at_stop(Sequence *s, size_t from) {
    size_t first = s->text_len;
    for (int i = 0; i < s->params.n_stop; i++) {
        size_t sl = strlen(s->params.stop[i]);
        size_t start = from >= sl - 1 ? from - (sl - 1) : 0;
        if (s->text_len < sl) continue;
        for (size_t at = start; at + sl <= s->text_len && at < first; at++)
            if (memcmp(s->text + at, s->params.stop[i], sl) == 0) {
                first = at;
                break;
            }
    }
    if (first < s->text_len) {
        s->text_len = first; /* the stop string and what follows are not part of the reply */
        s->finish = FINISH_STOP;
        s->stopped = true;
    }
}

/* The log-probabilities params.logprobs asks for, of token under logits (already adjusted). */
static void report_logprobs(Sequence *s, const float *logits, int token) {
    if (!s->params.logprobs) return;
    s->last_adjusted_logprob = sampler_logprob(logits, s->vocab_size, token);
    if (s->top_ids)
        s->n_top = sampler_top_logprobs(logits, s->vocab_size, s->params.top_logprobs, s->top_ids,
                                        s->top_logprobs);
}

/* The next prompt token to score takes the place of a sampled one: its log-probability under the
 * model's own logits, no text, no count toward max_tokens. */
static void score_prompt_token(Sequence *s, const float *logits) {
    int token = s->tokens[s->n_tokens];
    s->last_logprob = sampler_logprob(logits, s->vocab_size, token);
    report_logprobs(s, logits, token);
    s->n_tokens++;
    s->n_prompt++;
    s->scored++;
    if (s->scored == s->n_score && s->params.max_tokens == 0) s->finish = FINISH_LENGTH;
}

void sequence_advance(Sequence *s, const EngineSegment *seg, float *probs, int *index) {
    s->cached += seg->n;
    if (!seg->logits) return;
    if (s->scored < s->n_score) {
        score_prompt_token(s, seg->logits);
        return;
    }
    if (s->fork_logits && !s->fork_of && !s->fork_ready) { /* the prompt's logits, for forks */
        memcpy(s->fork_logits, seg->logits, (size_t)s->vocab_size * sizeof(float));
        s->fork_ready = true;
    }
    int token;
    if (s->teacher) {
        token = s->teacher[s->n_generated];
        s->last_logprob = sampler_logprob(seg->logits, s->vocab_size, token);
    } else {
        logit_adjust_apply(&s->params.adjust, seg->logits, s->vocab_size, s->count, s->seen);
        token = sampler_sample(seg->logits, s->vocab_size, &s->params.sampler, &s->rng, probs,
                               index, &s->last_logprob);
    }
    report_logprobs(s, seg->logits, token);
    if (s->count) {
        s->count[token]++;
        s->seen[token] = 1;
    }
    if (seg->attention) {
        s->attention_visible = seg->pos + seg->n;
        s->attention_start = s->prompt_dropped + s->window_start;
        s->attention_values =
            attention_view_reduce(&s->params.attention, seg->attention, s->attention_visible,
                                  s->attention_start, s->attention);
    }
    s->tokens[s->n_tokens++] = token;
    s->n_generated++;
    if (token == s->tok->end_token && !s->teacher) {
        s->finish = FINISH_STOP; /* the model ended its text: nothing of the token is shown */
    } else {
        size_t len = 0, before = s->text_len;
        const char *piece = tokenizer_piece(s->tok, token, &len); /* NULL: a padded row's id */
        if (!piece) len = 0;
        s->text_len += utf8_stream_write(&s->utf8, piece, len, s->text + s->text_len);
        cut_at_stop(s, before);
    }
    if (s->finish == FINISH_NONE && s->n_generated >= s->params.max_tokens)
        s->finish = FINISH_LENGTH;
    if (s->finish != FINISH_NONE && !s->stopped) /* a character left unfinished is shown */
        s->text_len += utf8_stream_end(&s->utf8, s->text + s->text_len);
    s->text[s->text_len] = '\0';
}

size_t sequence_take_text(Sequence *s, const char **out) {
    size_t end = s->text_len;
    if (s->finish == FINISH_NONE) end -= stop_prefix_suffix(s, s->emitted);
    if (end < s->emitted) end = s->emitted; /* a stop cut text already... never emitted */
    *out = s->text + s->emitted;
    size_t n = end - s->emitted;
    s->emitted = end;
    return n;
}
