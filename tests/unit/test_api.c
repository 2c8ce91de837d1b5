/* Request parsing and validation (api/request.c), reply bodies (api/response.c) and the SSE
 * framing (server/sse.c): every field checked for type and range with a message naming it;
 * defaults; OpenAI specifics; exact seeds; the stream buffer's reuse and cap. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "test_filter.h"

#include "../../api/finish.h"
#include "../../api/request.h"
#include "../../api/response.h"
#include "../../server/sse.h"

static const ApiLimits limits = {.max_tokens_cap = 500, .default_max_tokens = 100};

static int parse(ApiKind kind, const char *body, ApiRequest *req, ApiError *e) {
    return api_parse_request(kind, body, strlen(body), &limits, 12345, req, e);
}

static void defaults(void **state) {
    (void)state;
    ApiRequest r;
    ApiError e;
    assert_int_equal(parse(API_GENERATE, "{}", &r, &e), 0);
    assert_string_equal(r.prompt, "");
    assert_int_equal(r.params.max_tokens, 100);
    assert_true(r.params.sampler.temperature == 1.0f);
    assert_int_equal(r.params.sampler.top_k, 0);
    assert_true(r.params.sampler.top_p == 1.0f);
    assert_int_equal(r.params.seed, 12345);
    assert_false(r.seed_given);
    assert_false(r.stream);
    api_request_free(&r);
}

static void all_fields(void **state) {
    (void)state;
    ApiRequest r;
    ApiError e;
    assert_int_equal(parse(API_GENERATE,
                           "{\"prompt\":\"Hi\",\"max_tokens\":7,\"temperature\":0,\"top_k\":3,"
                           "\"top_p\":0.5,\"seed\":9,\"stop\":[\"a\",\"bc\"],\"stream\":true}",
                           &r, &e),
                     0);
    assert_string_equal(r.prompt, "Hi");
    assert_int_equal(r.params.max_tokens, 7);
    assert_true(r.params.sampler.temperature == 0.0f);
    assert_int_equal(r.params.sampler.top_k, 3);
    assert_true(r.params.sampler.top_p == 0.5f);
    assert_int_equal(r.params.seed, 9);
    assert_int_equal(r.params.n_stop, 2);
    assert_string_equal(r.params.stop[1], "bc");
    assert_true(r.stream);
    api_request_free(&r);
}

/* Sampling values reach the request as given, on both APIs (a parser that forced every
 * temperature to 1 passed all_fields, which only tries 0). */
static void sampling_values_pass_through(void **state) {
    (void)state;
    const float temps[] = {0.25f, 0.7f, 1.5f, 42.0f};
    for (int kind = 0; kind < 2; kind++)
        for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) {
            char body[160];
            snprintf(body, sizeof body, "{\"prompt\":\"a\",\"temperature\":%g,\"top_p\":0.%zu5}",
                     temps[i], i + 1);
            ApiRequest r;
            ApiError e;
            if (parse(kind ? API_COMPLETIONS : API_GENERATE, body, &r, &e))
                fail_msg("%s: %s", body, e.message);
            assert_true(r.params.sampler.temperature == temps[i]);
            assert_true(fabsf(r.params.sampler.top_p - (0.05f + 0.1f * (float)(i + 1))) < 1e-6f);
            api_request_free(&r);
        }
}

/* A raw NUL inside a JSON string cut the prompt short silently (cJSON stops at it): refused. */
static void raw_nul_is_refused(void **state) {
    (void)state;
    const char body[] = "{\"prompt\":\"ab\0cd\",\"max_tokens\":3}";
    ApiRequest r;
    ApiError e;
    assert_int_equal(api_parse_request(API_GENERATE, body, sizeof body - 1, &limits, 1, &r, &e),
                     -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "NUL byte at offset 13"));
}

static void refused(void **state) {
    (void)state;
    struct {
        ApiKind kind;
        const char *body, *needle;
    } cases[] = {
        {API_GENERATE, "{bad", "not valid JSON"},
        {API_GENERATE, "[1]", "JSON object"},
        {API_GENERATE, "{\"prompt\":5}", "\"prompt\""},
        {API_GENERATE, "{\"max_tokens\":\"9\"}", "\"max_tokens\""},
        {API_GENERATE, "{\"max_tokens\":1.5}", "\"max_tokens\""},
        {API_GENERATE, "{\"max_tokens\":501}", "\"max_tokens\""},
        {API_GENERATE, "{\"max_tokens\":-1}", "\"max_tokens\""},
        {API_GENERATE, "{\"temperature\":-0.1}", "\"temperature\""},
        {API_GENERATE, "{\"temperature\":\"hot\"}", "\"temperature\""},
        {API_GENERATE, "{\"top_p\":0}", "\"top_p\""},
        {API_GENERATE, "{\"top_p\":1.01}", "\"top_p\""},
        {API_GENERATE, "{\"top_k\":-1}", "\"top_k\""},
        {API_GENERATE, "{\"seed\":-3}", "\"seed\""},
        {API_GENERATE, "{\"stream\":\"yes\"}", "\"stream\""},
        {API_GENERATE, "{\"stop\":5}", "\"stop\""},
        {API_GENERATE, "{\"stop\":\"\"}", "\"stop\""},
        {API_GENERATE, "{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "\"stop\""},
        /* a stop string cut inside a character would be held back and matched by bytes */
        {API_GENERATE, "{\"stop\":\"\xc3\"}", "\"stop\" strings must be UTF-8"},
        {API_GENERATE, "{\"stop\":[\"ok\",\"a\xe2\x9c\"]}", "\"stop\" strings must be UTF-8"},
        {API_GENERATE, "{\"promt\":\"typo\"}", "unknown field \"promt\""},
        /* nested objects are held to their own fields, whole names only */
        {API_GENERATE, "{\"attention\":{\"layer\":0,\"layers\":1}}", "unknown field \"layers\""},
        {API_COMPLETIONS, "{\"n\":129}", "\"n\""},
        {API_COMPLETIONS, "{\"n\":2,\"best_of\":3}", "\"best_of\""},
        {API_COMPLETIONS, "{\"prompt\":[\"a\",\"b\"]}", "\"prompt\""},
        {API_COMPLETIONS, "{\"stream_options\":3}", "\"stream_options\""},
        /* duplicate keys: cJSON would let the first win, silently */
        {API_GENERATE, "{\"prompt\":\"a\",\"prompt\":5}", "field \"prompt\" given twice"},
        {API_COMPLETIONS, "{\"max_tokens\":3,\"prompt\":\"a\",\"max_tokens\":9}",
         "field \"max_tokens\" given twice"},
        {API_GENERATE, "{\"attention\":{\"layer\":0,\"layer\":1}}",
         "field \"layer\" given twice in \"attention\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ApiRequest r;
        ApiError e;
        if (parse(cases[i].kind, cases[i].body, &r, &e) != -1)
            fail_msg("accepted %s", cases[i].body);
        assert_int_equal(e.status, 400);
        if (!strstr(e.message, cases[i].needle))
            fail_msg("%s: message \"%s\" lacks %s", cases[i].body, e.message, cases[i].needle);
    }
}

/* The engine's own check (gpt-sample and every caller): a stop string must be whole characters. */
static void generation_params_refuse_broken_utf8_stop(void **state) {
    (void)state;
    GenerationParams p = {.sampler = {.temperature = 1, .top_p = 1}, .max_tokens = 4, .n_stop = 2};
    strcpy(p.stop[0], "fine");
    strcpy(p.stop[1], "\xe2\x9c");
    Error err;
    assert_int_equal(generation_params_validate(&p, &err), -1);
    assert_non_null(strstr(err.message, "stop string 2"));
    strcpy(p.stop[1], "\xe2\x9c\x93");
    assert_int_equal(generation_params_validate(&p, &err), 0);
}

static void openai_specifics(void **state) {
    (void)state;
    ApiRequest r;
    ApiError e;
    assert_int_equal(parse(API_COMPLETIONS,
                           "{\"model\":\"x\",\"prompt\":[\"Hello\"],\"n\":1,\"user\":\"u\","
                           "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                           &r, &e),
                     0);
    assert_string_equal(r.prompt, "Hello");
    assert_true(r.stream);
    assert_true(r.include_usage);
    api_request_free(&r);
}

static void sse_framing(void **state) {
    (void)state;
    SseWriter w;
    sse_init(&w);
    sse_write_data(&w, "{\"a\":1}");
    sse_write_data(&w, "two\nlines");
    sse_write_comment(&w, "keep-alive");
    char out[256];
    size_t n = sse_take(&w, out, sizeof out - 1);
    out[n] = '\0';
    assert_string_equal(out, "data: {\"a\":1}\n\ndata: two\ndata: lines\n\n: keep-alive\n\n");
    assert_int_equal(sse_pending(&w), 0);
    sse_free(&w);
}

/* The stream buffer: taken bytes free their room, so a stream of any length runs in a small
 * buffer; bytes not taken are capped at SSE_MAX_BUFFER, past which the writer fails instead of
 * growing (a client that never reads cannot make the daemon grow without bound). */
static void sse_buffer_is_reused_and_capped(void **state) {
    (void)state;
    const char *ev = "{\"index\":1,\"text\":\"a\",\"logprob\":-0.5}";
    const size_t framed = strlen(ev) + 8; /* "data: " ... "\n\n" */
    char out[256];
    SseWriter w;
    sse_init(&w);
    for (size_t written = 0; written < 4 * (size_t)SSE_MAX_BUFFER; written += framed) {
        sse_write_data(&w, ev);
        assert_int_equal(sse_take(&w, out, sizeof out), framed);
    }
    assert_false(w.buf.failed);
    assert_true(w.buf.cap <= SSE_MAX_BUFFER / 16); /* small beside the 4 MiB that went through */
    sse_free(&w);

    sse_init(&w);
    size_t written = 0;
    while (!w.buf.failed && written <= 2 * (size_t)SSE_MAX_BUFFER) {
        sse_write_data(&w, ev);
        written += framed;
    }
    assert_true(w.buf.failed);
    assert_true(w.buf.cap <= SSE_MAX_BUFFER);
    sse_free(&w);
}

/* Reply bodies (api/response.c): the seed as an exact integer (as a double, seeds above 2^53 came
 * back rounded and did not reproduce their text), token events with their own index and
 * logprob, OpenAI usage with the prompt in the total. */
static void replies_carry_exact_values(void **state) {
    (void)state;
    const uint64_t seeds[] = {8181523195398619ull, 9007199254740993ull, 18446744073709551615ull};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        ApiResult r = {.id = "gen-1",
                       .model = "m",
                       .text = "To be",
                       .text_len = 5,
                       .finish_reason = "stop",
                       .seed = seeds[i],
                       .prompt_tokens = 7,
                       .completion_tokens = 6};
        char want[64];
        snprintf(want, sizeof want, "\"seed\":%llu,", (unsigned long long)seeds[i]);
        char *reply = api_generate_reply(&r), *final = api_generate_final_event(&r);
        if (!strstr(reply, want)) fail_msg("reply %s lacks %s", reply, want);
        if (!strstr(final, want)) fail_msg("final event %s lacks %s", final, want);
        assert_non_null(strstr(reply, "\"text\":\"To be\""));
        assert_non_null(strstr(reply, "\"finish_reason\":\"stop\""));
        free(reply);
        free(final);
        char *completion = api_completion_reply(&r, 1);
        assert_non_null(strstr(completion, "\"prompt_tokens\":7,\"completion_tokens\":6,"
                                           "\"total_tokens\":13"));
        free(completion);
    }
    ApiResult plain = {0};
    char *ev = api_generate_token_event(&plain, 41, "ab", 2, -1.25f, NULL);
    assert_string_equal(ev, "{\"index\":41,\"text\":\"ab\",\"logprob\":-1.25}");
    free(ev);
    /* a NUL the model wrote (GPT-2 has a token for byte 0) is part of the text, escaped */
    ev = api_generate_token_event(&plain, 3, "a\0\"\x01\n\xc3\xa9", 7, -1.0f, NULL);
    assert_string_equal(ev, "{\"index\":3,\"text\":\"a\\u0000\\\"\\u0001\\n\xc3\xa9\","
                            "\"logprob\":-1}");
    cJSON *parsed = cJSON_Parse(ev);
    assert_non_null(parsed);
    cJSON_Delete(parsed);
    free(ev);
}

/* system_fingerprint (model/fingerprint.h) is in every reply and every event of the three APIs,
 * as OpenAI puts it in every completion and chat chunk. */
static void every_reply_carries_the_fingerprint(void **state) {
    (void)state;
    ApiResult r = {.id = "cmpl-1",
                   .model = "m",
                   .text = "To be",
                   .text_len = 5,
                   .finish_reason = "stop",
                   .system_fingerprint = "fp_0123456789abcdef"};
    char *bodies[] = {
        api_generate_reply(&r),
        api_generate_final_event(&r),
        api_generate_token_event(&r, 0, "T", 1, -0.5f, NULL),
        api_completion_reply(&r, 1),
        api_completion_chunk(&r, "T", 1, NULL, NULL),
        api_completion_chunk(&r, "", 0, NULL, "stop"),
        api_openai_usage_chunk(&r, 1),
        api_chat_reply(&r, 1),
        api_chat_chunk(&r, true, "T", 1, NULL, NULL),
        api_chat_chunk(&r, false, "", 0, NULL, "stop"),
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        cJSON *root = cJSON_Parse(bodies[i]);
        const cJSON *fp = cJSON_GetObjectItem(root, "system_fingerprint");
        if (!cJSON_IsString(fp) || strcmp(fp->valuestring, "fp_0123456789abcdef") != 0)
            fail_msg("reply %zu has no system_fingerprint: %s", i, bodies[i]);
        cJSON_Delete(root);
        free(bodies[i]);
    }
}

/* finish_reason: /generate names every end; OpenAI's API gets only the values its clients know
 * ("stop", "length"), never gptd's own "timeout", "cancelled", "shutdown" or "error". */
static void finish_reasons_per_api(void **state) {
    (void)state;
    assert_null(api_finish_name(API_FINISH_NONE));
    assert_null(api_finish_name_openai(API_FINISH_NONE));
    assert_string_equal(api_finish_name(API_FINISH_SHUTDOWN), "shutdown");
    assert_string_equal(api_finish_name(API_FINISH_TIMEOUT), "timeout");
    assert_string_equal(api_finish_name_openai(API_FINISH_STOP), "stop");
    for (ApiFinish f = API_FINISH_LENGTH; f <= API_FINISH_ERROR; f++) {
        const char *name = api_finish_name_openai(f);
        assert_non_null(name);
        if (strcmp(name, "stop") != 0 && strcmp(name, "length") != 0)
            fail_msg("finish %d is \"%s\" on /v1/completions", (int)f, name);
        if (f != API_FINISH_STOP) assert_string_equal(name, "length");
    }
}

/* ---- every documented bound, at the bound, one past it and one inside, on both endpoints
 * (issue 26): one table of fields (docs/api.md), the cases generated from it ---- */

typedef enum { FIELD_INT, FIELD_FLOAT } FieldType;

typedef struct {
    const char *name;
    FieldType type;
    double lo, hi;         /* the documented range */
    bool lo_open;          /* (lo, hi] instead of [lo, hi] */
    bool generate, openai; /* which endpoints take it */
} FieldBound;

/* limits above: --max-tokens 500 */
static const FieldBound field_bounds[] = {
    {"max_tokens", FIELD_INT, 0, 500, false, true, true},
    {"temperature", FIELD_FLOAT, 0, SAMPLER_MAX_TEMPERATURE, false, true, true},
    {"top_p", FIELD_FLOAT, 0, 1, true, true, true},
    {"top_k", FIELD_INT, 0, SAMPLER_MAX_TOP_K, false, true, false},
    {"seed", FIELD_INT, 0, 9007199254740991.0, false, true, true}, /* 2^53 - 1 */
};

/* The value the parsed request holds for a field. */
static double field_value(const ApiRequest *r, const char *name) {
    if (!strcmp(name, "max_tokens")) return r->params.max_tokens;
    if (!strcmp(name, "temperature")) return r->params.sampler.temperature;
    if (!strcmp(name, "top_p")) return r->params.sampler.top_p;
    if (!strcmp(name, "top_k")) return r->params.sampler.top_k;
    return (double)r->params.seed;
}

/* Parses {"NAME": value}; expects it accepted with the value kept (as float for floats), or
 * refused with a 400 naming the field. */
static void expect_field(ApiKind kind, const char *name, double value, bool ok, bool is_float,
                         bool lo_open, double lo) {
    char body[128];
    snprintf(body, sizeof body, "{\"%s\":%.17g}", name, value);
    const char *api = kind == API_GENERATE ? "/generate" : "/v1/completions";
    ApiRequest r;
    ApiError e;
    int rc = parse(kind, body, &r, &e);
    if (ok && rc != 0) fail_msg("%s %s: refused (%s)", api, body, e.message);
    if (!ok && rc == 0) {
        api_request_free(&r);
        fail_msg("%s %s: accepted", api, body);
    }
    if (!ok) {
        assert_int_equal(e.status, 400);
        char quoted[40];
        snprintf(quoted, sizeof quoted, "\"%s\"", name);
        if (!strstr(e.message, quoted))
            fail_msg("%s %s: \"%s\" lacks %s", api, body, e.message, quoted);
        return;
    }
    double got = field_value(&r, name), want = is_float ? (double)(float)value : value;
    /* (lo, hi]: a value above lo that rounds to lo in float becomes the next float above it */
    if (is_float && lo_open && want == lo) want = nextafterf((float)lo, INFINITY);
    if (got != want) fail_msg("%s %s: parsed as %.17g", api, body, got);
    api_request_free(&r);
}

static void every_bound_on_every_endpoint(void **state) {
    (void)state;
    for (size_t f = 0; f < sizeof field_bounds / sizeof *field_bounds; f++) {
        const FieldBound *b = &field_bounds[f];
        bool is_float = b->type == FIELD_FLOAT;
        /* one step: 1 for integers, the next double for numbers */
        double below_lo = is_float ? nextafter(b->lo, -INFINITY) : b->lo - 1;
        double above_lo = is_float ? nextafter(b->lo, INFINITY) : b->lo + 1;
        double below_hi = is_float ? nextafter(b->hi, -INFINITY) : b->hi - 1;
        double above_hi = is_float ? nextafter(b->hi, INFINITY) : b->hi + 1;
        if (!is_float && b->hi >= 9007199254740991.0) above_hi = 9007199254740992.0; /* 2^53 */
        for (int k = 0; k < 2; k++) {
            ApiKind kind = k == 0 ? API_GENERATE : API_COMPLETIONS;
            if (!(k == 0 ? b->generate : b->openai)) continue;
            expect_field(kind, b->name, b->lo, !b->lo_open, is_float, b->lo_open, b->lo);
            expect_field(kind, b->name, below_lo, false, is_float, b->lo_open, b->lo);
            expect_field(kind, b->name, above_lo, true, is_float, b->lo_open, b->lo);
            expect_field(kind, b->name, b->hi, true, is_float, b->lo_open, b->lo);
            expect_field(kind, b->name, above_hi, false, is_float, b->lo_open, b->lo);
            expect_field(kind, b->name, below_hi, true, is_float, b->lo_open, b->lo);
        }
    }
}

/* A stop string of n bytes ('s' repeated), as the only stop string or as the last of count. */
static int parse_stops(ApiKind kind, int count, size_t n, ApiRequest *r, ApiError *e) {
    char body[8 * 80 + 32] = "{\"stop\":[";
    for (int i = 0; i < count; i++) {
        char one[80];
        size_t len = i == count - 1 ? n : 1;
        memset(one, 's', len);
        one[len] = '\0';
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"%s\"", i ? "," : "", one);
    }
    strcat(body, "]}");
    return parse(kind, body, r, e);
}

/* Stop strings: 1 to 64 bytes, 1 to 4 of them; a prompt given as an array only on
 * /v1/completions (exactly one string); n only 1; the defaults the same on both endpoints. */
static void stop_prompt_and_defaults_on_every_endpoint(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        ApiKind kind = k == 0 ? API_GENERATE : API_COMPLETIONS;
        const char *api = k == 0 ? "/generate" : "/v1/completions";
        const struct {
            int count;
            size_t len;
            bool ok;
        } stops[] = {
            {1, GENERATION_MAX_STOP_LEN, true},
            {1, GENERATION_MAX_STOP_LEN + 1, false},
            {1, GENERATION_MAX_STOP_LEN - 1, true},
            {1, 1, true},
            {API_MAX_STOP, 1, true},
            {API_MAX_STOP + 1, 1, false},
            {API_MAX_STOP - 1, 1, true},
            {API_MAX_STOP, GENERATION_MAX_STOP_LEN, true},
        };
        for (size_t i = 0; i < sizeof stops / sizeof *stops; i++) {
            ApiRequest r;
            ApiError e;
            int rc = parse_stops(kind, stops[i].count, stops[i].len, &r, &e);
            if (stops[i].ok != (rc == 0))
                fail_msg("%s: %d stop strings, the last of %zu bytes: %s", api, stops[i].count,
                         stops[i].len, rc ? e.message : "accepted");
            if (rc == 0) {
                assert_int_equal(r.params.n_stop, stops[i].count);
                assert_int_equal(strlen(r.params.stop[stops[i].count - 1]), stops[i].len);
                api_request_free(&r);
            } else {
                assert_non_null(strstr(e.message, "\"stop\""));
            }
        }
        /* the defaults */
        ApiRequest r;
        ApiError e;
        assert_int_equal(parse(kind, "{\"prompt\":\"a\"}", &r, &e), 0);
        if (r.params.max_tokens != limits.default_max_tokens)
            fail_msg("%s: max_tokens defaults to %d, not --default-max-tokens %d", api,
                     r.params.max_tokens, limits.default_max_tokens);
        assert_true(r.params.sampler.temperature == 1.0f);
        assert_true(r.params.sampler.top_p == 1.0f);
        assert_int_equal(r.params.sampler.top_k, 0);
        assert_int_equal(r.params.n_stop, 0);
        assert_false(r.stream);
        assert_false(r.seed_given);
        assert_int_equal(r.params.seed, 12345);
        api_request_free(&r);
        /* a prompt as an array: one string on /v1/completions only */
        const char *arrays[] = {"{\"prompt\":[\"a\"]}", "{\"prompt\":[]}",
                                "{\"prompt\":[\"a\",\"b\"]}"};
        for (int i = 0; i < 3; i++) {
            bool ok = kind == API_COMPLETIONS && i == 0;
            int rc = parse(kind, arrays[i], &r, &e);
            if (ok != (rc == 0)) fail_msg("%s %s: %s", api, arrays[i], rc ? e.message : "accepted");
            if (rc == 0) {
                assert_string_equal(r.prompt, "a");
                api_request_free(&r);
            } else {
                assert_non_null(strstr(e.message, "\"prompt\""));
            }
        }
    }
    /* n: 1 to API_MAX_CHOICES on the OpenAI endpoints; /generate knows no such field */
    const struct {
        ApiKind kind;
        const char *body;
        bool ok;
    } ns[] = {{API_COMPLETIONS, "{\"n\":1}", true},
              {API_COMPLETIONS, "{\"n\":128}", true},
              {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":128}", true},
              {API_COMPLETIONS, "{\"n\":129}", false},
              {API_COMPLETIONS, "{\"n\":0}", false},
              {API_GENERATE, "{\"n\":1}", false}};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        ApiRequest r;
        ApiError e;
        int rc = parse(ns[i].kind, ns[i].body, &r, &e);
        if (ns[i].ok != (rc == 0)) fail_msg("%s: %s", ns[i].body, rc ? e.message : "accepted");
        if (rc == 0) api_request_free(&r);
    }
}

/* "attention": layer 0..n_layer-1, head 0..n_head-1 (or "mean", "all"), top_k 1..block_size, and
 * at most 2^20 weights a reply (max_tokens x weights a token): each at its bound, one past and one
 * inside. A model of 6 layers, 6 heads and a context of 256: one head is 256 weights a token, so
 * 4,096 tokens make 2^20 exactly; "all" is 1,536 a token, 682 tokens the most. */
static void attention_bounds(void **state) {
    (void)state;
    const ApiLimits big = {.max_tokens_cap = 100000,
                           .default_max_tokens = 1,
                           .n_layer = 6,
                           .n_head = 6,
                           .block_size = 256};
    const struct {
        const char *attention;
        int max_tokens;
        bool ok;
    } cases[] = {
        {"{\"layer\":0,\"head\":0}", 1, true},
        {"{\"layer\":-1,\"head\":0}", 1, false},
        {"{\"layer\":1,\"head\":0}", 1, true},
        {"{\"layer\":5,\"head\":0}", 1, true},
        {"{\"layer\":6,\"head\":0}", 1, false},
        {"{\"layer\":4,\"head\":0}", 1, true},
        {"{\"layer\":0,\"head\":-1}", 1, false},
        {"{\"layer\":0,\"head\":5}", 1, true},
        {"{\"layer\":0,\"head\":6}", 1, false},
        {"{\"layer\":0,\"head\":4}", 1, true},
        {"{\"layer\":0,\"head\":0,\"top_k\":0}", 1, false},
        {"{\"layer\":0,\"head\":0,\"top_k\":1}", 1, true},
        {"{\"layer\":0,\"head\":0,\"top_k\":256}", 1, true},
        {"{\"layer\":0,\"head\":0,\"top_k\":257}", 1, false},
        {"{\"layer\":0,\"head\":0}", 4096, true},
        {"{\"layer\":0,\"head\":0}", 4097, false},
        {"{\"layer\":0,\"head\":0}", 4095, true},
        {"{\"layer\":0,\"head\":\"all\"}", 682, true},
        {"{\"layer\":0,\"head\":\"all\"}", 683, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"max_tokens\":%d,\"attention\":%s}", cases[i].max_tokens,
                 cases[i].attention);
        ApiRequest r;
        ApiError e;
        int rc = api_parse_request(API_GENERATE, body, strlen(body), &big, 1, &r, &e);
        if (cases[i].ok != (rc == 0)) fail_msg("%s: %s", body, rc ? e.message : "accepted");
        if (rc == 0)
            api_request_free(&r);
        else
            assert_int_equal(e.status, 400);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finish_reasons_per_api),
        cmocka_unit_test(every_bound_on_every_endpoint),
        cmocka_unit_test(attention_bounds),
        cmocka_unit_test(stop_prompt_and_defaults_on_every_endpoint),
        cmocka_unit_test(defaults),
        cmocka_unit_test(all_fields),
        cmocka_unit_test(refused),
        cmocka_unit_test(generation_params_refuse_broken_utf8_stop),
        cmocka_unit_test(openai_specifics),
        cmocka_unit_test(sse_framing),
        cmocka_unit_test(sampling_values_pass_through),
        cmocka_unit_test(raw_nul_is_refused),
        cmocka_unit_test(sse_buffer_is_reused_and_capped),
        cmocka_unit_test(replies_carry_exact_values),
        cmocka_unit_test(every_reply_carries_the_fingerprint),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
