/* api/tokenize.c: the bodies of POST /tokenize and /detokenize through a character vocabulary and
 * a byte-level BPE one (the random GPT-2 fixture's 457 tokens): ids, counts and pieces, round
 * trips, bytes that form no character, and the refusals, each naming what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "test_filter.h"

#include "../../api/tokenize.h"

#define BPE_DIR "tests/reference/fixtures/hf_gpt2_f32"

static cJSON *parse(char *reply) {
    if (!reply) fail_msg("no reply");
    cJSON *root = cJSON_Parse(reply);
    if (!root) fail_msg("not JSON: %s", reply);
    free(reply);
    return root;
}

static char *tokenize(const Tokenizer *tok, const char *body, ApiError *e) {
    return api_tokenize_reply(tok, body, strlen(body), e);
}

static char *detokenize(const Tokenizer *tok, const char *body, ApiError *e) {
    return api_detokenize_reply(tok, body, strlen(body), e);
}

/* A refusal: status 400 and a message holding every one of the NULL-terminated strings. */
static void assert_refused(char *reply, const ApiError *e, ...) {
    if (reply) fail_msg("accepted: %s", reply);
    assert_int_equal(e->status, 400);
    va_list ap;
    va_start(ap, e);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(e->message, want)) fail_msg("\"%s\" is not in: %s", want, e->message);
    va_end(ap);
}

static void characters_tokenize_with_their_pieces(void **state) {
    (void)state;
    Tokenizer tok;
    Error err;
    if (tokenizer_from_string(&tok, "\n !'ABab", &err)) fail_msg("%s", err.message);
    ApiError e;
    cJSON *root = parse(tokenize(&tok, "{\"text\": \"Ab a!\\n\"}", &e));
    char *tokens = cJSON_PrintUnformatted(cJSON_GetObjectItem(root, "tokens"));
    char *pieces = cJSON_PrintUnformatted(cJSON_GetObjectItem(root, "pieces"));
    assert_string_equal(tokens, "[4,7,1,6,2,0]");
    assert_string_equal(pieces, "[\"A\",\"b\",\" \",\"a\",\"!\",\"\\n\"]");
    assert_int_equal(cJSON_GetObjectItem(root, "count")->valueint, 6);
    free(tokens);
    free(pieces);
    cJSON_Delete(root);
    /* and back */
    root = parse(detokenize(&tok, "{\"tokens\": [4,7,1,6,2,0]}", &e));
    assert_string_equal(cJSON_GetObjectItem(root, "text")->valuestring, "Ab a!\n");
    cJSON_Delete(root);
    /* nothing is nothing */
    root = parse(tokenize(&tok, "{\"text\": \"\"}", &e));
    assert_int_equal(cJSON_GetObjectItem(root, "count")->valueint, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "tokens")), 0);
    cJSON_Delete(root);
    root = parse(detokenize(&tok, "{\"tokens\": []}", &e));
    assert_string_equal(cJSON_GetObjectItem(root, "text")->valuestring, "");
    cJSON_Delete(root);
    tokenizer_free(&tok);
}

static void bpe_pieces_show_cut_characters_and_detokenize_joins_them(void **state) {
    (void)state;
    Tokenizer tok;
    Error err;
    if (tokenizer_from_bpe_dir(&tok, BPE_DIR, &err)) fail_msg("%s", err.message);
    ApiError e;
    /* é is two bytes, each a token of its own in this small vocabulary; " the" is one token */
    cJSON *root = parse(tokenize(&tok, "{\"text\": \"\xc3\xa9 the\"}", &e));
    cJSON *tokens = cJSON_GetObjectItem(root, "tokens"),
          *pieces = cJSON_GetObjectItem(root, "pieces");
    assert_int_equal(cJSON_GetArraySize(tokens), 3);
    assert_int_equal(cJSON_GetObjectItem(root, "count")->valueint, 3);
    assert_string_equal(cJSON_GetArrayItem(pieces, 0)->valuestring, "\xef\xbf\xbd"); /* U+FFFD */
    assert_string_equal(cJSON_GetArrayItem(pieces, 1)->valuestring, "\xef\xbf\xbd");
    assert_string_equal(cJSON_GetArrayItem(pieces, 2)->valuestring, " the");
    char body[128];
    snprintf(body, sizeof body, "{\"tokens\": [%d, %d, %d]}",
             cJSON_GetArrayItem(tokens, 0)->valueint, cJSON_GetArrayItem(tokens, 1)->valueint,
             cJSON_GetArrayItem(tokens, 2)->valueint);
    cJSON_Delete(root);
    root = parse(detokenize(&tok, body, &e));
    assert_string_equal(cJSON_GetObjectItem(root, "text")->valuestring, "\xc3\xa9 the");
    cJSON_Delete(root);
    /* half a character alone comes back as U+FFFD; the end of the text is a token's id */
    snprintf(body, sizeof body, "{\"tokens\": [%d, %d]}", bpe_find(tok.bpe, "\xc3", 1),
             tok.end_token);
    root = parse(detokenize(&tok, body, &e));
    assert_string_equal(cJSON_GetObjectItem(root, "text")->valuestring,
                        "\xef\xbf\xbd<|endoftext|>");
    cJSON_Delete(root);
    tokenizer_free(&tok);
}

static void refusals_name_what_is_wrong(void **state) {
    (void)state;
    Tokenizer tok;
    Error err;
    if (tokenizer_from_string(&tok, "\n !'ABab", &err)) fail_msg("%s", err.message);
    tok.vocab_hint = "see GET /info";
    ApiError e;
    assert_refused(tokenize(&tok, "{\"text\": \"Ab\xc3\xa9\"}", &e), &e, "\"text\"",
                   "'\xc3\xa9' (U+00E9)", "position 2", "of 8 characters", "see GET /info", NULL);
    assert_refused(tokenize(&tok, "{\"text\": \"a\", \"prompt\": \"b\"}", &e), &e,
                   "unknown field \"prompt\"", NULL);
    assert_refused(tokenize(&tok, "{}", &e), &e, "\"text\" must be a string (it is required)",
                   NULL);
    assert_refused(tokenize(&tok, "{\"text\": 3}", &e), &e, "\"text\" must be a string", NULL);
    assert_refused(tokenize(&tok, "{\"text\": \"a\", \"text\": \"b\"}", &e), &e, "twice", NULL);
    assert_refused(tokenize(&tok, "[\"a\"]", &e), &e, "JSON object", NULL);
    assert_refused(tokenize(&tok, "{\"text\": \"a", &e), &e, "not valid JSON", NULL);
    assert_refused(tokenize(&tok, "{\"text\": \"a\\u0000b\"}", &e), &e, "NUL", NULL);

    assert_refused(detokenize(&tok, "{\"tokens\": [0, 7, 8]}", &e), &e, "\"tokens\"[2]", "id 8",
                   "vocabulary of 8 tokens", NULL);
    assert_refused(detokenize(&tok, "{\"tokens\": [-1]}", &e), &e, "\"tokens\"[0]", "id -1", NULL);
    assert_refused(detokenize(&tok, "{\"tokens\": [1, 2.5]}", &e), &e, "\"tokens\"[1]", "integer",
                   NULL);
    assert_refused(detokenize(&tok, "{\"tokens\": [\"a\"]}", &e), &e, "\"tokens\"[0]", NULL);
    assert_refused(detokenize(&tok, "{\"tokens\": 3}", &e), &e, "must be an array", NULL);
    assert_refused(detokenize(&tok, "{\"text\": \"a\"}", &e), &e, "unknown field \"text\"", NULL);
    tokenizer_free(&tok);
}

int main(void) {
    apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(characters_tokenize_with_their_pieces),
        cmocka_unit_test(bpe_pieces_show_cut_characters_and_detokenize_joins_them),
        cmocka_unit_test(refusals_name_what_is_wrong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
