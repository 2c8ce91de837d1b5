/* bin/gpt-tokenize: GPT-2's byte-level BPE from the command line, for checking it against other
 * tokenizers and for seeing how a text splits.
 *   gpt-tokenize DIR < text > ids       ids, one line, space-separated
 *   gpt-tokenize --decode DIR < ids     the bytes back
 * DIR holds vocab.json + merges.txt (Hugging Face) or encoder.json + vocab.bpe (OpenAI). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../model/tokenizer_bpe.h"

static int read_stdin(Buf *in) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (buf_append(in, chunk, n)) return -1;
    return ferror(stdin) ? -1 : 0;
}

static int encode(BpeTokenizer *t, const Buf *in, Error *err) {
    size_t n = 0, cap = in->len + 1;
    int *ids = malloc(cap * sizeof *ids);
    if (!ids) return error_set(err, "out of memory");
    int rc = bpe_encode(t, in->data ? in->data : "", in->len, ids, cap, &n, err);
    for (size_t i = 0; !rc && i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    if (!rc) printf("\n");
    free(ids);
    return rc;
}

static int decode(const BpeTokenizer *t, const Buf *in, Error *err) {
    const char *p = in->data ? in->data : "";
    for (;;) {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p) break;
        size_t len;
        const char *bytes = bpe_token_bytes(t, (int)id, &len);
        if (!bytes || id != (int)id) return error_set(err, "no token %ld", id);
        fwrite(bytes, 1, len, stdout);
        p = end;
    }
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return *p ? error_set(err, "not an id: \"%.20s\"", p) : 0;
}

int main(int argc, char **argv) {
    bool decoding = argc == 3 && strcmp(argv[1], "--decode") == 0;
    if (argc != 2 + decoding) {
        fprintf(stderr, "usage: gpt-tokenize [--decode] DIR  (text or ids on stdin)\n");
        return 2;
    }
    Error err;
    BpeTokenizer *t;
    if (bpe_load_dir(&t, argv[1 + decoding], &err)) {
        fprintf(stderr, "gpt-tokenize: %s\n", err.message);
        return 2;
    }
    Buf in;
    buf_init(&in, (size_t)1 << 31);
    int rc = read_stdin(&in) ? error_set(&err, "cannot read stdin") : 0;
    if (!rc) rc = decoding ? decode(t, &in, &err) : encode(t, &in, &err);
    if (rc) fprintf(stderr, "gpt-tokenize: %s\n", err.message);
    buf_free(&in);
    bpe_free(t);
    return rc ? 1 : 0;
}
