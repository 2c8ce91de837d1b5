/* api/info.c and api/finish.c: the describing endpoints' JSON from plain values, and the names of
 * the finish reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "test_filter.h"

#include "../../api/finish.h"
#include "../../api/info.h"

static void health_names_the_state(void **state) {
    (void)state;
    const char *want[] = {"{\"status\":\"loading\"}", "{\"status\":\"ok\"}",
                          "{\"status\":\"draining\"}"};
    ApiServerState states[] = {API_LOADING, API_READY, API_DRAINING};
    for (int i = 0; i < 3; i++) {
        char *s = api_health_json(states[i]);
        assert_string_equal(s, want[i]);
        free(s);
    }
}

static void info_shows_the_model_once_loaded(void **state) {
    (void)state;
    GPTConfig g = {.vocab_size = 65,
                   .n_layer = 2,
                   .n_head = 4,
                   .n_embd = 32,
                   .block_size = 16,
                   .activation = ACT_GELU,
                   .tied_head = true};
    ApiInfo in = {
        .model_name = "m", .state = API_LOADING, .max_batch = 3, .version = "v", .compiled = "c"};
    char *s = api_info_json(&in);
    cJSON *root = cJSON_Parse(s);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "status")->valuestring, "not ready");
    assert_null(cJSON_GetObjectItem(root, "config"));
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "limits"), "max_batch")->valueint, 3);
    cJSON_Delete(root);
    free(s);
    in.state = API_READY;
    in.config = &g;
    in.n_params = 1234;
    in.context_shift = "keep";
    in.context_keep = 8;
    in.kernels = "portable";
    in.tokenizer = "gpt2-bpe";
    in.tokenizer_size = 60;
    in.system_fingerprint = "fp_0123456789abcdef";
    s = api_info_json(&in);
    root = cJSON_Parse(s);
    cJSON *mc = cJSON_GetObjectItem(root, "config");
    assert_string_equal(cJSON_GetObjectItem(root, "status")->valuestring, "ready");
    assert_string_equal(cJSON_GetObjectItem(mc, "activation")->valuestring, "gelu");
    assert_int_equal(cJSON_GetObjectItem(mc, "parameters")->valueint, 1234);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(mc, "tied_head")));
    cJSON *tok = cJSON_GetObjectItem(root, "tokenizer");
    assert_string_equal(cJSON_GetObjectItem(tok, "kind")->valuestring, "gpt2-bpe");
    assert_int_equal(cJSON_GetObjectItem(tok, "tokens")->valueint, 60);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "context"), "keep")->valueint,
                     8);
    assert_string_equal(cJSON_GetObjectItem(root, "system_fingerprint")->valuestring,
                        "fp_0123456789abcdef");
    cJSON_Delete(root);
    free(s);
}

/* "vocabulary": a character model's tokens in id order; a BPE model's kind and size only. */
static void info_lists_a_character_vocabulary(void **state) {
    (void)state;
    GPTConfig g = {.vocab_size = 5, .n_layer = 1, .n_head = 1, .n_embd = 4, .block_size = 8};
    Tokenizer tok;
    Error err;
    if (tokenizer_from_string(&tok, "\n \"a\xc3\xa9", &err)) fail_msg("%s", err.message);
    ApiInfo in = {.model_name = "m",
                  .state = API_READY,
                  .config = &g,
                  .tokenizer = "char",
                  .context_shift = "keep",
                  .kernels = "portable",
                  .vocabulary = &tok,
                  .version = "v",
                  .compiled = "c"};
    char *s = api_info_json(&in);
    cJSON *root = cJSON_Parse(s);
    char *vocabulary = cJSON_PrintUnformatted(cJSON_GetObjectItem(root, "vocabulary"));
    assert_string_equal(vocabulary, "{\"kind\":\"char\",\"size\":5,\"tokens\":[\"\\n\",\" \","
                                    "\"\\\"\",\"a\",\"\xc3\xa9\"]}");
    free(vocabulary);
    cJSON_Delete(root);
    free(s);
    tokenizer_free(&tok);

    if (tokenizer_from_bpe_dir(&tok, "tests/reference/fixtures/hf_gpt2_f32", &err))
        fail_msg("%s", err.message);
    s = api_info_json(&in);
    root = cJSON_Parse(s);
    vocabulary = cJSON_PrintUnformatted(cJSON_GetObjectItem(root, "vocabulary"));
    assert_string_equal(vocabulary, "{\"kind\":\"gpt2-bpe\",\"size\":457}");
    free(vocabulary);
    cJSON_Delete(root);
    free(s);
    tokenizer_free(&tok);
}

static void models_lists_the_one_model(void **state) {
    (void)state;
    char *s = api_models_json("gptd-x");
    cJSON *root = cJSON_Parse(s);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "data"), 0);
    assert_string_equal(cJSON_GetObjectItem(m, "id")->valuestring, "gptd-x");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "data")), 1);
    cJSON_Delete(root);
    free(s);
}

static void finish_names(void **state) {
    (void)state;
    assert_null(api_finish_name(API_FINISH_NONE));
    assert_string_equal(api_finish_name(API_FINISH_LENGTH), "length");
    assert_string_equal(api_finish_name(API_FINISH_STOP), "stop");
    assert_string_equal(api_finish_name(API_FINISH_TIMEOUT), "timeout");
    assert_string_equal(api_finish_name(API_FINISH_CANCELLED), "cancelled");
    assert_string_equal(api_finish_name(API_FINISH_SHUTDOWN), "shutdown");
    assert_string_equal(api_finish_name(API_FINISH_ERROR), "error");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_names_the_state),
        cmocka_unit_test(info_shows_the_model_once_loaded),
        cmocka_unit_test(info_lists_a_character_vocabulary),
        cmocka_unit_test(models_lists_the_one_model),
        cmocka_unit_test(finish_names),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
