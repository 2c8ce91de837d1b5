/* The inference engine against the training forward pass, and batch invariance: a seeded
 * request yields the same bytes alone or among 1, 7, 31 or 63 other sequences that start and
 * finish at other steps. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/float16.h"
#include "../../model/batch.h"
#include "../../model/checkpoint.h"
#include "../../model/kernels.h"
#include "../../train/gpt_backprop.h"

#define SHIPPED "weights/shakespeare-char.safetensors"

/* half: every weight rounded to a float16 value, as in a float16 checkpoint, so that the engine
 * stores its panels as float16. */
static void random_model_shaped(GPT *m, Tokenizer *tok, bool half, int n_embd, int n_head,
                                int block_size) {
    GPTConfig c = {.vocab_size = 65,
                   .n_layer = 2,
                   .n_head = n_head,
                   .n_embd = n_embd,
                   .block_size = block_size,
                   .activation = ACT_GELU,
                   .qkv_bias = true};
    Error err;
    assert_int_equal(gpt_init(m, &c, &err), 0);
    Rng rng;
    rng_seed(&rng, 5);
    gpt_init_weights(m, &rng);
    for (size_t i = 0; i < m->n_params; i++) {
        float v = m->param_memory[i] + 0.1f * rng_normal(&rng);
        m->param_memory[i] = half ? float_from_float16(float16_from_float(v)) : v;
    }
    char vocab[66];
    for (int i = 0; i < 65; i++) vocab[i] = (char)(' ' + i);
    vocab[65] = '\0';
    assert_int_equal(tokenizer_from_string(tok, vocab, &err), 0);
}

static void random_model_sized(GPT *m, Tokenizer *tok, bool half, int n_embd, int n_head) {
    random_model_shaped(m, tok, half, n_embd, n_head, 16);
}

/* Width 384: shapes where OpenBLAS's results do depend on the row count, so the invariance test
 * would catch a product that is not batch-invariant. */
static void random_model(GPT *m, Tokenizer *tok, bool half) {
    random_model_sized(m, tok, half, 384, 6);
}

/* Engine logits at every position equal the full forward's on the same tokens (the last
 * block_size of them past the context), within 1e-4. */
static void check_logits(GPT *m, bool expect_half) {
    Error err;
    int T = m->config.block_size, V = m->config.vocab_size, N = T + 20;
    int *tokens = malloc(sizeof(int) * N);
    Rng rng;
    rng_seed(&rng, 11);
    for (int i = 0; i < N; i++) tokens[i] = (int)rng_below(&rng, (uint64_t)V);
    Engine *e;
    EngineConfig ec = {.max_slots = 2, .max_rows = T + 2, .threads = 2};
    assert_int_equal(engine_create(&e, m, &ec, &err), 0);
    bool all_half;
    engine_weight_bytes(e, &all_half);
    assert_int_equal(all_half, expect_half);
    float *logits = malloc(sizeof(float) * V);
    float worst = 0.0f;
    int prefill = 5;
    TrainState ts; /* the training forward pass is the reference */
    train_state_init(&ts, m);
    /* Within the context one causal pass over the first T tokens gives every position's reference
     * (row t sees tokens 0..t); past it, each window is a pass of its own. */
    assert_int_equal(gpt_forward(&ts, tokens, NULL, 1, T, 0.0f, NULL, NULL, &err), 0);
    float *within = malloc(sizeof(float) * (size_t)T * V);
    memcpy(within, ts.acts.logits, sizeof(float) * (size_t)T * V);
    for (int t = prefill - 1; t < N; t++) {
        EngineSegment seg = {.slot = 1, .logits = logits};
        if (t == prefill - 1)
            seg.pos = 0, seg.n = prefill, seg.tokens = tokens;
        else if (t < T)
            seg.pos = t, seg.n = 1, seg.tokens = tokens + t;
        else
            seg.pos = 0, seg.n = T, seg.tokens = tokens + t - T + 1; /* window recompute */
        if (engine_forward(e, &seg, 1, &err)) fail_msg("%s", err.message);
        const float *ref = within + (size_t)t * V;
        if (t >= T) {
            assert_int_equal(
                gpt_forward(&ts, tokens + t - T + 1, NULL, 1, T, 0.0f, NULL, NULL, &err), 0);
            ref = ts.acts.logits + (size_t)(T - 1) * V;
        }
        for (int v = 0; v < V; v++) worst = fmaxf(worst, fabsf(logits[v] - ref[v]));
    }
    printf("  block_size %d, %d positions, %s weights: max |engine - forward| = %.2e\n", T,
           N - prefill + 1, expect_half ? "float16" : "float32", worst);
    assert_true(worst < 1e-4f);
    free(within);
    free(logits);
    free(tokens);
    train_state_free(&ts);
    engine_destroy(e);
}

static void logits_match_forward_random(void **state) {
    (void)state;
    for (int half = 0; half < 2; half++) {
        GPT m;
        Tokenizer tok;
        random_model(&m, &tok, half);
        check_logits(&m, half);
        gpt_free(&m);
        tokenizer_free(&tok);
    }
}

/* Heads 6 wide (not a multiple of the 8-lane vectors) take the scalar paths of attention; a
 * context of 20 is not a whole number of blocks of keys (kernels.h KEY_BLOCK). */
static void logits_match_forward_narrow_heads(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    random_model_shaped(&m, &tok, false, 36, 6, 20);
    check_logits(&m, false);
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* Logits of a prefill and decode steps, as computed by an engine. */
static void engine_logits(GPT *m, bool float32_weights, float *out, size_t *weight_bytes) {
    Error err;
    Engine *e;
    EngineConfig ec = {
        .max_slots = 1, .max_rows = 8, .threads = 2, .float32_weights = float32_weights};
    assert_int_equal(engine_create(&e, m, &ec, &err), 0);
    bool all_half;
    *weight_bytes = engine_weight_bytes(e, &all_half);
    assert_int_equal(all_half, !float32_weights);
    int tokens[12] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}, V = m->config.vocab_size;
    EngineSegment seg = {.slot = 0, .pos = 0, .n = 6, .tokens = tokens, .logits = out};
    assert_int_equal(engine_forward(e, &seg, 1, &err), 0);
    for (int t = 6; t < 12; t++) {
        seg = (EngineSegment){
            .slot = 0, .pos = t, .n = 1, .tokens = tokens + t, .logits = out + (size_t)(t - 5) * V};
        assert_int_equal(engine_forward(e, &seg, 1, &err), 0);
    }
    engine_destroy(e);
}

/* Float16 panels are a storage format only: on a float16 checkpoint they give the very bits the
 * same weights give as float, from half the bytes. */
static void float16_panels_same_bits(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    random_model(&m, &tok, true);
    size_t n = (size_t)7 * m.config.vocab_size, bytes16, bytes32;
    float *half = malloc(n * sizeof(float)), *full = malloc(n * sizeof(float));
    engine_logits(&m, false, half, &bytes16);
    engine_logits(&m, true, full, &bytes32);
    assert_memory_equal(half, full, n * sizeof(float));
    assert_int_equal(bytes32, 2 * bytes16);
    free(half);
    free(full);
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* gptd frees the matrices once the engine has packed them (gpt_keep_unpacked): the engine then
 * reads only the embeddings and LayerNorms from the model, and gives the same bits. */
static void runs_after_keep_unpacked(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    Error err;
    random_model_sized(&m, &tok, false, 32, 4);
    int V = m.config.vocab_size, tokens[6] = {3, 1, 4, 1, 5, 9};
    float *before = malloc(sizeof(float) * V), *after = malloc(sizeof(float) * V);
    Engine *e;
    EngineConfig ec = {.max_slots = 1, .max_rows = 8, .threads = 2};
    assert_int_equal(engine_create(&e, &m, &ec, &err), 0);
    EngineSegment seg = {.slot = 0, .pos = 0, .n = 6, .tokens = tokens, .logits = before};
    assert_int_equal(engine_forward(e, &seg, 1, &err), 0);
    size_t n_params = m.n_params;
    assert_int_equal(gpt_keep_unpacked(&m, &err), 0);
    assert_null(m.params.layer[0].qkv_w);
    assert_null(m.params.head_w);
    assert_int_equal(m.n_params, n_params);
    seg.logits = after;
    assert_int_equal(engine_forward(e, &seg, 1, &err), 0);
    assert_memory_equal(before, after, sizeof(float) * V);
    engine_destroy(e);
    free(before);
    free(after);
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void logits_match_forward_shipped(void **state) {
    (void)state;
    /* no silent skip: the suite runs from the repository root, where the shipped model is */
    if (access(SHIPPED, R_OK) != 0)
        fail_msg("cannot read %s: run the tests from the repository root", SHIPPED);
    GPT m;
    Tokenizer tok;
    Error err;
    if (checkpoint_load(SHIPPED, &m, &tok, NULL, NULL, &err)) fail_msg("%s", err.message);
    check_logits(&m, true); /* the shipped checkpoint is float16 */
    gpt_free(&m);
    tokenizer_free(&tok);
}

typedef struct {
    Sequence seq;
    int start_step;
} Job;

/* Past the context, under each rule: a teacher-forced sequence's logits for every token equal
 * the full forward pass over the window the rule says the model sees (the last block_size
 * tokens for exact; for keep, the last `keep` tokens at a shift, growing until full again),
 * within 1e-4. Checks the window lengths too, so a rule that quietly kept more or fewer tokens
 * fails. */
static void check_windows(const char *rule, int keep) {
    GPT m;
    Tokenizer tok;
    Error err;
    random_model(&m, &tok, true);
    int T = m.config.block_size, V = m.config.vocab_size, N = 3 * T;
    ContextPolicy ctx;
    assert_int_equal(context_policy_init(&ctx, T, rule, keep, &err), 0);
    int *teacher = malloc(sizeof(int) * (size_t)N);
    Rng rng;
    rng_seed(&rng, 21);
    for (int i = 0; i < N; i++) teacher[i] = (int)rng_below(&rng, (uint64_t)V);
    Engine *e;
    EngineConfig ec = {.max_slots = 1, .max_rows = 1 + T, .threads = 2};
    assert_int_equal(engine_create(&e, &m, &ec, &err), 0);
    BatchScratch b;
    assert_int_equal(batch_scratch_init(&b, 1, V, &err), 0);
    Sequence s;
    GenerationParams gp = {.sampler = {1.0f, 0, 1.0f, 0.0f}, .max_tokens = N};
    assert_int_equal(sequence_init(&s, &tok, ctx, "AB", 2, &gp, &err), 0);
    s.teacher = teacher;
    Sequence *all[1] = {&s};
    float worst = 0.0f;
    int shifts_seen = 0;
    TrainState ts;
    train_state_init(&ts, &m);
    while (s.finish == FINISH_NONE) {
        int before = s.n_generated;
        /* a budget of 3 rows: re-prefills run in chunks over several steps */
        assert_true(batch_step(e, all, 1, 3, &b, &err) >= 0);
        if (s.n_generated == before) continue;
        int start = s.window_start, len = s.n_tokens - 1 - start; /* what the model saw */
        assert_true(len >= 1 && len <= T);
        if (s.n_tokens - 1 > T) { /* predicted past the context */
            if (ctx.shift == CONTEXT_EXACT) assert_int_equal(len, T);
            if (ctx.shift == CONTEXT_KEEP) assert_true(len >= ctx.keep);
        }
        if (s.shifts > shifts_seen) {
            assert_int_equal(len, context_policy_kept(&ctx));
            shifts_seen = s.shifts;
        }
        assert_int_equal(gpt_forward(&ts, s.tokens + start, NULL, 1, len, 0.0f, NULL, NULL, &err),
                         0);
        const float *ref = ts.acts.logits + (size_t)(len - 1) * V;
        for (int v = 0; v < V; v++) worst = fmaxf(worst, fabsf(b.logits[v] - ref[v]));
        /* the logprob reported is the model's for the forced token */
        float lp = sampler_logprob(ref, V, s.tokens[s.n_tokens - 1]);
        assert_true(fabsf(lp - s.last_logprob) < 1e-4f);
    }
    /* 2 prompt tokens: the first shift comes before the token predicted from T + 1; exact then
     * shifts for every token, keep every T - keep + 1 tokens */
    int expect = ctx.shift == CONTEXT_EXACT ? N + 1 - T : (N - T) / (T - ctx.keep + 1) + 1;
    printf("  %s %d: %d tokens, %d shifts, max |engine - forward| = %.2e\n", rule,
           context_policy_kept(&ctx), N, s.shifts, worst);
    assert_int_equal(s.shifts, expect);
    assert_true(worst < 1e-4f);
    sequence_free(&s);
    batch_scratch_free(&b);
    engine_destroy(e);
    free(teacher);
    train_state_free(&ts);
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void windows_past_the_context(void **state) {
    (void)state;
    check_windows("exact", 0);
    check_windows("keep", 0); /* a quarter of the context */
    check_windows("keep", 5);
    check_windows("keep", 15);
}

/* Prefills and window re-prefills share the step's budget and take turns: a step never runs more
 * than one row per sequence plus the budget, and no unfinished sequence waits more than n steps
 * for progress, even while others have long prompts or keep re-prefilling past the context. */
static void prefills_take_turns(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    Error err;
    random_model_sized(&m, &tok, false, 32, 4);
    int T = m.config.block_size, n = 4, budget = 3;
    ContextPolicy ctx = {.block_size = T, .shift = CONTEXT_KEEP, .keep = T / 2};
    Engine *e;
    EngineConfig ec = {.max_slots = n, .max_rows = n + budget, .threads = 2};
    assert_int_equal(engine_create(&e, &m, &ec, &err), 0);
    BatchScratch b;
    assert_int_equal(batch_scratch_init(&b, n, m.config.vocab_size, &err), 0);
    Sequence seqs[4];
    Sequence *all[4];
    int progress[4], last_step[4] = {0};
    for (int i = 0; i < n; i++) {
        GenerationParams gp = {
            .sampler = {1.0f, 0, 1.0f, 0.0f}, .seed = (uint64_t)i, .max_tokens = 3 * T};
        const char *prompt = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"; /* longer than the context */
        assert_int_equal(
            sequence_init(&seqs[i], &tok, ctx, prompt, strlen(prompt) - (size_t)i, &gp, &err), 0);
        seqs[i].slot = i;
        all[i] = &seqs[i];
        progress[i] = 0;
    }
    for (int step = 1;; step++) {
        int ran = batch_step(e, all, n, budget, &b, &err);
        assert_true(ran >= 0);
        if (ran == 0) break;
        int rows = 0;
        for (int k = 0; k < ran; k++) rows += b.segs[k].n;
        assert_true(rows <= n + budget);
        for (int i = 0; i < n; i++) {
            int now = seqs[i].cached + seqs[i].n_generated * 1000 + seqs[i].shifts * 100000;
            if (now != progress[i] || seqs[i].finish != FINISH_NONE) last_step[i] = step;
            progress[i] = now;
            if (step - last_step[i] > n)
                fail_msg("sequence %d waited %d steps", i, step - last_step[i]);
        }
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(seqs[i].n_generated, 3 * T);
        assert_true(seqs[i].shifts >= 4);
        sequence_free(&seqs[i]);
    }
    batch_scratch_free(&b);
    engine_destroy(e);
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* Three replies to one prompt: the first prefills it, the two forks copy its cache rows and its
 * logits. Each fork draws the same tokens as a sequence of its own
 * seed run alone, and the prompt goes through the engine once: the rows are the prompt's plus
 * one a generated token (the last excepted) a reply. Prompts shorter and longer than the
 * context, under a small prefill budget (the prompt arrives in chunks). */
static void forks_share_one_prefill(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    Error err;
    random_model_sized(&m, &tok, false, 32, 4);
    int T = m.config.block_size, n = 3, budget = 5, max_tokens = 2 * T;
    ContextPolicy ctx = {.block_size = T, .shift = CONTEXT_KEEP, .keep = T / 2};
    Engine *e;
    EngineConfig ec = {.max_slots = n, .max_rows = n + budget, .threads = 2};
    assert_int_equal(engine_create(&e, &m, &ec, &err), 0);
    BatchScratch b;
    assert_int_equal(batch_scratch_init(&b, n, m.config.vocab_size, &err), 0);
    const char *prompts[] = {"ABCDEFG", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}; /* T is 16 */
    for (int p = 0; p < 2; p++) {
        Sequence group[3], alone;
        Sequence *all[3] = {&group[0], &group[1], &group[2]};
        long rows = 0;
        for (int i = 0; i < n; i++) {
            GenerationParams gp = {.sampler = {1.0f, 0, 1.0f, 0.0f},
                                   .seed = 100 + (uint64_t)i,
                                   .max_tokens = max_tokens};
            assert_int_equal(
                sequence_init(&group[i], &tok, ctx, prompts[p], strlen(prompts[p]), &gp, &err), 0);
            group[i].slot = i;
            if (i > 0) assert_int_equal(sequence_fork_from(&group[i], &group[0], &err), 0);
        }
        for (int ran; (ran = batch_step(e, all, n, budget, &b, &err)) != 0; rows += b.rows)
            assert_true(ran > 0);
        int kept = group[0].n_prompt;
        /* past the context each reply's window moves on its own: keep rows of re-prefill, one
         * of them the token a decode row would have run */
        long shifted = 0;
        for (int i = 0; i < n; i++) shifted += (long)group[i].shifts * (ctx.keep - 1);
        assert_true(shifted > 0);
        assert_int_equal(rows, kept + (long)n * (max_tokens - 1) + shifted);
        for (int i = 1; i < n; i++) {
            GenerationParams gp = group[i].params;
            assert_int_equal(
                sequence_init(&alone, &tok, ctx, prompts[p], strlen(prompts[p]), &gp, &err), 0);
            alone.slot = 0;
            Sequence *one[1] = {&alone};
            while (batch_step(e, one, 1, budget, &b, &err) > 0) {
            }
            assert_int_equal(alone.n_generated, group[i].n_generated);
            assert_memory_equal(alone.tokens, group[i].tokens,
                                (size_t)alone.n_tokens * sizeof *alone.tokens);
            assert_int_equal(alone.shifts, group[i].shifts);
            sequence_free(&alone);
        }
        for (int i = 0; i < n; i++) sequence_free(&group[i]);
    }
    batch_scratch_free(&b);
    engine_destroy(e);
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* Runs job 0 (the seeded request) with n_others, which start at other steps and stop at other
 * lengths; returns job 0's text (caller frees) and fills logprobs (40) with the log-probability
 * of each of its tokens: those carry the logits' bits, so they show any numerical difference
 * even where sampling happens to pick the same token. group_segments: the engine's (2: steps of
 * 2 or more segments go as a group a thread where the work splits evenly; -1: never). */
static char *run_with_others_on(GPT *m, Tokenizer *tok, const ContextPolicy *ctx, int n_others,
                                uint64_t seed, float *logprobs, const Kernels *kernels,
                                int group_segments) {
    Error err;
    int n = 1 + n_others;
    Engine *e;
    EngineConfig ec = {.max_slots = 64,
                       .max_rows = 64 + 24,
                       .threads = 2,
                       .kernels = kernels,
                       .group_segments = group_segments};
    assert_int_equal(engine_create(&e, m, &ec, &err), 0);
    BatchScratch b;
    assert_int_equal(batch_scratch_init(&b, 64, m->config.vocab_size, &err), 0);
    Job *jobs = calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        GenerationParams gp = {.sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f}};
        gp.seed = i == 0 ? seed : (uint64_t)(1000 + i);
        gp.max_tokens = i == 0 ? 40 : 5 + (i * 7) % 19;
        char prompt[64];
        int len = i == 0 ? 9 : 1 + (i * 5) % 30; /* some longer than the context */
        for (int k = 0; k < len; k++) prompt[k] = (char)('A' + (i + k) % 26);
        prompt[len] = '\0';
        if (i == 0) memcpy(prompt, "TO BE, OR", 9);
        assert_int_equal(sequence_init(&jobs[i].seq, tok, *ctx, prompt, strlen(prompt), &gp, &err),
                         0);
        jobs[i].seq.slot = i;
        jobs[i].start_step = i == 0 ? 3 : (i * 3) % 11;
    }
    Sequence **active = calloc((size_t)n, sizeof *active);
    for (int step = 0;; step++) {
        int n_active = 0, unfinished = 0;
        for (int i = 0; i < n; i++) {
            if (jobs[i].seq.finish == FINISH_NONE) unfinished++;
            if (step >= jobs[i].start_step && jobs[i].seq.finish == FINISH_NONE)
                active[n_active++] = &jobs[i].seq;
        }
        if (!unfinished) break;
        int before = jobs[0].seq.n_generated;
        if (batch_step(e, active, n_active, 24, &b, &err) < 0) fail_msg("%s", err.message);
        if (jobs[0].seq.n_generated > before) logprobs[before] = jobs[0].seq.last_logprob;
    }
    assert_true(jobs[0].seq.shifts > 1); /* job 0 runs well past the context */
    char *text = strdup(jobs[0].seq.text);
    for (int i = 0; i < n; i++) sequence_free(&jobs[i].seq);
    free(jobs);
    free(active);
    batch_scratch_free(&b);
    engine_destroy(e);
    return text;
}

static char *run_with_others(GPT *m, Tokenizer *tok, const ContextPolicy *ctx, int n_others,
                             uint64_t seed, float *logprobs) {
    return run_with_others_on(m, tok, ctx, n_others, seed, logprobs, NULL, 2);
}

static void check_batch_invariance(bool half, const char *rule) {
    GPT m;
    Tokenizer tok;
    Error err;
    random_model(&m, &tok, half);
    ContextPolicy ctx;
    assert_int_equal(context_policy_init(&ctx, m.config.block_size, rule, 0, &err), 0);
    printf("  %s weights, %s past the context\n", half ? "float16" : "float32", rule);
    float lp_alone[40], lp_mixed[40];
    char *alone = run_with_others(&m, &tok, &ctx, 0, 424242, lp_alone);
    assert_int_equal(strlen(alone), 40);
    int others[] = {1, 7, 31, 63};
    for (int i = 0; i < 4; i++) { /* steps in groups a thread, and split piece by piece */
        int groups = i % 2 ? 2 : -1;
        char *mixed = run_with_others_on(&m, &tok, &ctx, others[i], 424242, lp_mixed, NULL, groups);
        bool same_lp = memcmp(lp_alone, lp_mixed, sizeof lp_alone) == 0;
        printf("  alone vs with %2d others (%s): text %s, logprobs %s\n", others[i],
               groups > 0 ? "groups" : "pieces",
               strcmp(alone, mixed) == 0 ? "identical" : "DIFFERENT",
               same_lp ? "bit-identical" : "DIFFERENT");
        assert_string_equal(alone, mixed);
        assert_true(same_lp);
        free(mixed);
    }
    free(alone);
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void batch_invariance(void **state) {
    (void)state;
    /* each weight format and each rule once: the product kernels differ by format, the
     * segments (re-prefills past the context) by rule */
    check_batch_invariance(false, "exact");
    check_batch_invariance(true, "keep");
}

/* Same seed, same text, run after run; different seeds, different texts. */
static void seeds(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    random_model(&m, &tok, false);
    ContextPolicy ctx = {.block_size = m.config.block_size, .shift = CONTEXT_KEEP, .keep = 8};
    float lp[40];
    char *texts[4];
    for (int i = 0; i < 4; i++)
        texts[i] = run_with_others(&m, &tok, &ctx, 0, i < 2 ? 7 : (uint64_t)i, lp);
    assert_string_equal(texts[0], texts[1]);
    assert_string_not_equal(texts[0], texts[2]);
    assert_string_not_equal(texts[0], texts[3]);
    assert_string_not_equal(texts[2], texts[3]);
    for (int i = 0; i < 4; i++) free(texts[i]);
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* Every kernel path this CPU has gives the same bits: logits of a prefill and decode steps past
 * the context for float32 and float16 panels and heads 64, 8 and 6 wide (whole vectors, one
 * AVX2 vector, no whole vector), and a seeded generation among 7 others past the context. */
static void paths_same_bits(void **state) {
    (void)state;
    const Kernels *paths[4];
    int n_paths = kernels_available(paths, 4);
    Error err;
    struct {
        int n_embd, n_head;
        bool half;
    } models[] = {{384, 6, false}, {384, 6, true}, {64, 8, true}, {36, 6, false}};
    for (size_t mi = 0; mi < sizeof models / sizeof *models; mi++) {
        GPT m;
        Tokenizer tok;
        random_model_sized(&m, &tok, models[mi].half, models[mi].n_embd, models[mi].n_head);
        int T = m.config.block_size, V = m.config.vocab_size, N = T + 6;
        float *first = malloc(sizeof(float) * (size_t)N * V), *logits = malloc(sizeof(float) * V);
        for (int p = 0; p < n_paths; p++) {
            Engine *e;
            EngineConfig ec = {.max_slots = 1, .max_rows = T, .threads = 2, .kernels = paths[p]};
            assert_int_equal(engine_create(&e, &m, &ec, &err), 0);
            assert_string_equal(engine_kernels_name(e), paths[p]->name);
            int tokens[64];
            for (int i = 0; i < N; i++) tokens[i] = (i * 7 + 3) % V;
            for (int t = 3; t < N; t++) { /* a prefill of 4, decode steps, then windows */
                EngineSegment seg = {.slot = 0, .logits = logits};
                if (t == 3)
                    seg.pos = 0, seg.n = 4, seg.tokens = tokens;
                else if (t < T)
                    seg.pos = t, seg.n = 1, seg.tokens = tokens + t;
                else
                    seg.pos = 0, seg.n = T, seg.tokens = tokens + t - T + 1;
                if (engine_forward(e, &seg, 1, &err)) fail_msg("%s", err.message);
                float *at = first + (size_t)t * V;
                if (p == 0)
                    memcpy(at, logits, sizeof(float) * V);
                else if (memcmp(at, logits, sizeof(float) * V))
                    fail_msg("width %d, %d heads, %s: logits at %d on %s differ from %s",
                             models[mi].n_embd, models[mi].n_head,
                             models[mi].half ? "float16" : "float32", t, paths[p]->name,
                             paths[0]->name);
            }
            engine_destroy(e);
        }
        printf("  width %d, %d heads, %s weights: the same logits on", models[mi].n_embd,
               models[mi].n_head, models[mi].half ? "float16" : "float32");
        for (int p = 0; p < n_paths; p++) printf(" %s", paths[p]->name);
        printf("\n");
        free(first);
        free(logits);
        if (mi == 1) { /* a seeded generation among others, past the context */
            ContextPolicy ctx;
            assert_int_equal(context_policy_init(&ctx, T, "keep", 0, &err), 0);
            float lp_first[40], lp[40];
            char *text = run_with_others_on(&m, &tok, &ctx, 7, 99, lp_first, paths[0], 2);
            for (int p = 1; p < n_paths; p++) {
                char *other = run_with_others_on(&m, &tok, &ctx, 7, 99, lp, paths[p], 2);
                assert_string_equal(text, other);
                if (memcmp(lp_first, lp, sizeof lp))
                    fail_msg("logprobs on %s differ from %s", paths[p]->name, paths[0]->name);
                free(other);
            }
            free(text);
        }
        gpt_free(&m);
        tokenizer_free(&tok);
    }
}

/* A seeded generation past the context (keep 8 of 16) with an attention view: each token's
 * view, its window's first position and length, and the text. */
typedef struct {
    char text[64];
    float values[40][6 * 16];
    int n_values[40], start[40], visible[40];
    int tokens[16 + 40], n_tokens;
} ViewRun;

static void run_view_of(GPT *m, Tokenizer *tok, AttentionView view, const char *prompt,
                        ViewRun *out) {
    Error err;
    ContextPolicy ctx;
    assert_int_equal(context_policy_init(&ctx, m->config.block_size, "keep", 8, &err), 0);
    view.n_head = m->config.n_head;
    view.context = m->config.block_size;
    GenerationParams gp = {.sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f},
                           .seed = 77,
                           .max_tokens = 40,
                           .attention = view};
    Sequence seq;
    assert_int_equal(sequence_init(&seq, tok, ctx, prompt, strlen(prompt), &gp, &err), 0);
    Engine *e;
    EngineConfig ec = {.max_slots = 1, .max_rows = 1 + 16, .threads = 2};
    assert_int_equal(engine_create(&e, m, &ec, &err), 0);
    BatchScratch b;
    assert_int_equal(batch_scratch_init(&b, 1, m->config.vocab_size, &err), 0);
    Sequence *all[1] = {&seq};
    while (seq.finish == FINISH_NONE) {
        int before = seq.n_generated;
        if (batch_step(e, all, 1, 16, &b, &err) < 0) fail_msg("%s", err.message);
        if (seq.n_generated == before || view.form == ATTENTION_NONE) continue;
        out->n_values[before] = seq.attention_values;
        out->start[before] = seq.attention_start;
        out->visible[before] = seq.attention_visible;
        memcpy(out->values[before], seq.attention, sizeof(float) * (size_t)seq.attention_values);
    }
    assert_true(seq.shifts >= 2);
    snprintf(out->text, sizeof out->text, "%s", seq.text);
    out->n_tokens = seq.n_tokens;
    memcpy(out->tokens, seq.tokens, sizeof(int) * (size_t)seq.n_tokens);
    sequence_free(&seq);
    batch_scratch_free(&b);
    engine_destroy(e);
}

static void run_view(GPT *m, Tokenizer *tok, AttentionView view, ViewRun *out) {
    run_view_of(m, tok, view, "TO BE", out);
}

/* The weights a token reports are the softmax the model used: every head's row at the layer
 * asked for equals the training forward pass's over the same window (within 1e-5), rows sum to
 * 1 and cover exactly the positions up to the query (the mask), across context shifts. The mean
 * and top-k views agree with those rows, and asking changes no generated byte. */
static void attention_matches_forward(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    Error err;
    random_model(&m, &tok, false);
    int T = m.config.block_size, NH = m.config.n_head, layer = 1;
    static ViewRun none, all, mean, top;
    run_view(&m, &tok, (AttentionView){.form = ATTENTION_NONE}, &none);
    run_view(&m, &tok, (AttentionView){.form = ATTENTION_ALL, .layer = layer}, &all);
    run_view(&m, &tok, (AttentionView){.form = ATTENTION_MEAN, .layer = layer}, &mean);
    run_view(&m, &tok,
             (AttentionView){.form = ATTENTION_HEAD, .layer = layer, .head = 2, .top_k = 3}, &top);
    assert_string_equal(none.text, all.text);
    assert_string_equal(none.text, mean.text);
    assert_string_equal(none.text, top.text);
    TrainState ts; /* the training forward pass is the reference */
    train_state_init(&ts, &m);
    float worst = 0.0f;
    for (int g = 0; g < 40; g++) {
        int n = all.visible[g], first = all.start[g];
        assert_true(n >= 1 && n <= T);
        assert_int_equal(all.n_values[g], NH * n);
        /* the query is the token before generated token g: the window ends with it */
        assert_int_equal(first + n, 5 + g);
        assert_int_equal(gpt_forward(&ts, all.tokens + first, NULL, 1, n, 0.0f, NULL, NULL, &err),
                         0);
        for (int h = 0; h < NH; h++) {
            const float *ref = ts.acts.att + ((size_t)layer * NH + h) * n * n + (size_t)(n - 1) * n;
            const float *got = all.values[g] + (size_t)h * n;
            double sum = 0;
            for (int t = 0; t < n; t++) {
                worst = fmaxf(worst, fabsf(got[t] - ref[t]));
                sum += got[t];
            }
            if (fabs(sum - 1) > 1e-5) fail_msg("token %d head %d: the row sums to %.9g", g, h, sum);
        }
        for (int t = 0; t < n; t++) { /* the mean of the heads */
            float avg = 0.0f;
            for (int h = 0; h < NH; h++) avg += all.values[g][h * n + t];
            assert_true(fabsf(avg / NH - mean.values[g][t]) < 1e-6f);
        }
        const float *row = all.values[g] + 2 * n; /* head 2: its top 3, heaviest first */
        int k = n < 3 ? n : 3;
        assert_int_equal(top.n_values[g], 2 * k);
        for (int i = 0; i < k; i++) {
            int p = (int)top.values[g][2 * i];
            assert_true(p >= first && p < first + n);
            assert_true(top.values[g][2 * i + 1] == row[p - first]);
        }
        int heavier = 0; /* nothing heavier than the last pick was left out */
        for (int t = 0; t < n; t++) heavier += row[t] > top.values[g][2 * k - 1];
        assert_true(heavier <= k - 1);
        if (k > 1) assert_true(top.values[g][1] >= top.values[g][3]);
    }
    train_state_free(&ts);
    printf("  40 tokens past a context of %d (keep 8): max |reported - forward| = %.2e\n", T,
           worst);
    assert_true(worst < 1e-5f);
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* Positions count every character of the prompt, those cut to fit the context too: with a
 * prompt of 21 characters and a context of 16, the first token's query is at position 20 and
 * sees positions 5..20, and each later one a window that ends where its query is, across the
 * shifts past the context; top-k positions fall inside that window. */
static void attention_positions_count_a_cut_prompt(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    random_model_sized(&m, &tok, false, 32, 4);
    const char *prompt = "ABCDEFGHIJKLMNOPQRSTU"; /* 21 characters */
    int P = (int)strlen(prompt), T = m.config.block_size;
    assert_true(P > T);
    static ViewRun all, top;
    run_view_of(&m, &tok, (AttentionView){.form = ATTENTION_ALL, .layer = 1}, prompt, &all);
    run_view_of(&m, &tok,
                (AttentionView){.form = ATTENTION_HEAD, .layer = 0, .head = 1, .top_k = 4}, prompt,
                &top);
    assert_int_equal(all.start[0], P - T);
    for (int g = 0; g < 40; g++) {
        if (all.start[g] + all.visible[g] != P + g)
            fail_msg("token %d: window %d..%d, its query is at position %d", g, all.start[g],
                     all.start[g] + all.visible[g] - 1, P + g - 1);
        for (int i = 0; i < top.n_values[g] / 2; i++) {
            int p = (int)top.values[g][2 * i];
            if (p < top.start[g] || p >= P + g)
                fail_msg("token %d: top-k position %d outside %d..%d", g, p, top.start[g],
                         P + g - 1);
        }
    }
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* Is s decoding (one row) in the next step: batch.c's rule, written again from sequence.h. */
static bool decodes_next(const Sequence *s) {
    return s->n_tokens - s->window_start - s->cached == 1 &&
           s->n_tokens - s->window_start <= s->block_size;
}

/* Rows of prefill s still needs before its next token (a full window restarts from its kept
 * tokens). */
static int prefill_pending(const Sequence *s) {
    int window = s->n_tokens - s->window_start;
    if (window > s->block_size) return context_policy_kept(&s->context);
    return window - s->cached;
}

/* The prefill budget is spent once a step: over generated mixes (2 to 6 sequences, prompts of 1
 * to 30 characters, budgets of 1 to 9, both rules past the context), every step runs one row per
 * decoding sequence and exactly min(budget, rows of prefill waiting) rows of prefill: no waiting
 * prompt gets a row once the budget is spent, and none is left waiting while budget remains. */
static void prefill_budget_is_spent_exactly(void **state) {
    (void)state;
    GPT m;
    Tokenizer tok;
    Error err;
    random_model_sized(&m, &tok, false, 32, 4);
    int T = m.config.block_size;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        Rng gen;
        rng_seed(&gen, seed);
        int n = 2 + (int)rng_below(&gen, 5), budget = 1 + (int)rng_below(&gen, 9);
        ContextPolicy ctx = {.block_size = T,
                             .shift = rng_below(&gen, 2) ? CONTEXT_KEEP : CONTEXT_EXACT,
                             .keep = 1 + (int)rng_below(&gen, (uint64_t)T)};
        Engine *e;
        EngineConfig ec = {.max_slots = n, .max_rows = n + budget, .threads = 2};
        assert_int_equal(engine_create(&e, &m, &ec, &err), 0);
        BatchScratch b;
        assert_int_equal(batch_scratch_init(&b, n, m.config.vocab_size, &err), 0);
        Sequence seqs[6], *all[6];
        for (int i = 0; i < n; i++) {
            GenerationParams gp = {.sampler = {1.0f, 0, 1.0f, 0.0f},
                                   .seed = seed * 10 + (uint64_t)i,
                                   .max_tokens = 1 + (int)rng_below(&gen, 2 * (uint64_t)T)};
            char prompt[31];
            int len = 1 + (int)rng_below(&gen, 30);
            for (int k = 0; k < len; k++) prompt[k] = (char)('A' + rng_below(&gen, 26));
            assert_int_equal(sequence_init(&seqs[i], &tok, ctx, prompt, (size_t)len, &gp, &err), 0);
            seqs[i].slot = i;
            all[i] = &seqs[i];
        }
        for (int step = 1;; step++) {
            int decoders = 0, waiting = 0;
            for (int i = 0; i < n; i++) {
                if (seqs[i].finish != FINISH_NONE) continue;
                if (decodes_next(&seqs[i]))
                    decoders++;
                else
                    waiting += prefill_pending(&seqs[i]);
            }
            int ran = batch_step(e, all, n, budget, &b, &err);
            assert_true(ran >= 0);
            if (ran == 0) break;
            int rows = 0;
            for (int k = 0; k < ran; k++) rows += b.segs[k].n;
            int want = decoders + (waiting < budget ? waiting : budget);
            if (rows != want)
                fail_msg("seed %llu, step %d (%d sequences, budget %d): %d rows, want %d decode "
                         "rows and %d of prefill (%d waiting)",
                         (unsigned long long)seed, step, n, budget, rows, decoders, want - decoders,
                         waiting);
        }
        for (int i = 0; i < n; i++) sequence_free(&seqs[i]);
        batch_scratch_free(&b);
        engine_destroy(e);
    }
    gpt_free(&m);
    tokenizer_free(&tok);
}

/* KV slots from memory: GPT-2 124M's shapes (72 MB a slot, 475 MB of float32 weights). */
static void slots_fit_the_memory(void **state) {
    (void)state;
    GPTConfig c = {
        .vocab_size = 50257, .n_layer = 12, .n_head = 12, .n_embd = 768, .block_size = 1024};
    size_t n_params = 124439808, mb = 1 << 20, slot = engine_slot_bytes(&c);
    assert_int_equal(slot, 72 * mb);
    Error err;
    int slots = 0;
    /* 512 MiB (a Kubernetes limit): the weights leave 14 MB, less than a slot: still one */
    assert_int_equal(engine_slots_for_memory(&c, n_params, 512 * mb, 0, &slots, &err), 0);
    assert_int_equal(slots, 1);
    /* 4 GiB: half of the 3,621 MB left is 25 slots */
    assert_int_equal(engine_slots_for_memory(&c, n_params, 4096 * mb, 0, &slots, &err), 0);
    assert_int_equal(slots, 25);
    /* 24 GB: capped at 64; unknown memory: 64 */
    assert_int_equal(engine_slots_for_memory(&c, n_params, 24000 * mb, 0, &slots, &err), 0);
    assert_int_equal(slots, 64);
    assert_int_equal(engine_slots_for_memory(&c, n_params, 0, 0, &slots, &err), 0);
    assert_int_equal(slots, 64);
    /* asked for: up to everything the weights leave (50 of 72 MB), not one more */
    assert_int_equal(engine_slots_for_memory(&c, n_params, 4096 * mb, 50, &slots, &err), 0);
    assert_int_equal(slots, 50);
    assert_int_equal(engine_slots_for_memory(&c, n_params, 4096 * mb, 51, &slots, &err), -1);
    assert_non_null(strstr(err.message, "51 KV slots of 72.0 MB need 3672 MB"));
    assert_non_null(strstr(err.message, "ask for at most 50"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(logits_match_forward_random),
        cmocka_unit_test(logits_match_forward_narrow_heads),
        cmocka_unit_test(logits_match_forward_shipped),
        cmocka_unit_test(float16_panels_same_bits),
        cmocka_unit_test(runs_after_keep_unpacked),
        cmocka_unit_test(windows_past_the_context),
        cmocka_unit_test(prefills_take_turns),
        cmocka_unit_test(forks_share_one_prefill),
        cmocka_unit_test(batch_invariance),
        cmocka_unit_test(seeds),
        cmocka_unit_test(paths_same_bits),
        cmocka_unit_test(attention_matches_forward),
        cmocka_unit_test(slots_fit_the_memory),
        cmocka_unit_test(attention_positions_count_a_cut_prompt),
        cmocka_unit_test(prefill_budget_is_spent_exactly),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
