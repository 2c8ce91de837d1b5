#include "load.h"

#include <sys/stat.h>

#include "checkpoint.h"
#include "load_hf_gpt2.h"

int model_load(const char *path, GPT *model, Tokenizer *tok, Error *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return hf_gpt2_load(path, model, tok, err);
    return checkpoint_load(path, model, tok, NULL, NULL, err);
}
