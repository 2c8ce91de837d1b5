/* libFuzzer harness: request bodies of both APIs, then the prompt through the sequence's
 * tokenizer, as a connection thread does. The first byte picks the API. A body either parses
 * into a request whose values are in range, or is refused with a 400-class error and a message;
 * nothing in between, and nothing leaks. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "../../api/request.h"
#include "../../model/sequence.h"

static Tokenizer tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* tiny Shakespeare's 65 symbols plus a few multi-byte ones */
    const char *vocab = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzé✓";
    Error err;
    if (tokenizer_build(&tok, vocab, strlen(vocab), &err)) __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ApiKind kind = data[0] & 1 ? API_COMPLETIONS : API_GENERATE;
    ApiLimits limits = {.max_tokens_cap = 64, .default_max_tokens = 16};
    ApiRequest req;
    ApiError e;
    if (api_parse_request(kind, (const char *)data + 1, size - 1, &limits, 7, &req, &e)) {
        assert(e.status >= 400 && e.status < 600);
        assert(e.message[0] != '\0');
        assert(req.prompt == NULL);
        return 0;
    }
    assert(req.params.max_tokens >= 0 && req.params.max_tokens <= limits.max_tokens_cap);
    assert(req.prompt && strlen(req.prompt) == req.prompt_len);
    ContextPolicy context;
    Error err;
    if (context_policy_init(&context, 16, data[0] & 2 ? "exact" : "keep", 0, &err))
        __builtin_trap();
    Sequence s;
    if (sequence_init(&s, &tok, context, req.prompt, req.prompt_len, &req.params, &err) == 0) {
        assert(s.n_prompt >= 1 && s.n_prompt <= 16);
        for (int i = 0; i < s.n_tokens; i++)
            assert(s.tokens[i] >= 0 && s.tokens[i] < tok.vocab_size);
        sequence_free(&s);
    } else {
        assert(err.message[0] != '\0');
    }
    api_request_free(&req);
    return 0;
}
