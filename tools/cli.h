/* A table-driven command-line parser shared by the tools: each flag has a type, bounds and a
 * help line, so one table both parses and documents. */
#ifndef GPTD_CLI_H
#define GPTD_CLI_H

#include <stdbool.h>

typedef enum { CLI_INT, CLI_FLOAT, CLI_U64, CLI_STRING, CLI_BOOL } CliType;

typedef struct {
    const char *name; /* without the leading "--" */
    CliType type;
    void *value; /* int*, float*, unsigned long long*, const char**, bool* */
    double min, max;
    const char *help;
    bool seen; /* set by cli_parse */
} CliFlag;

/* Parses argv against flags. Returns 0, 1 for --help (usage printed), or 2 on a bad flag
 * (message printed to stderr). */
int cli_parse(CliFlag *flags, int n_flags, int argc, char **argv, const char *usage);
/* Joins argv into one string (for logs); caller frees. */
char *cli_join(int argc, char **argv);

#endif
