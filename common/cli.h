/* A table-driven command-line parser shared by the tools: each flag has a type, bounds and a
 * help line, so one table both parses and documents. */
#ifndef GPTD_CLI_H
#define GPTD_CLI_H

#include <stdbool.h>

typedef enum { CLI_INT, CLI_FLOAT, CLI_U64, CLI_STRING, CLI_BOOL, CLI_LIST } CliType;

#define CLI_LIST_MAX 8
/* A repeatable flag (or a comma-separated environment variable). */
typedef struct {
    const char *items[CLI_LIST_MAX];
    int n;
} CliList;

typedef struct {
    const char *name; /* without the leading "--" */
    CliType type;
    void *value; /* int*, float*, unsigned long long*, const char**, bool*, CliList* */
    double min, max;
    const char *help;
    bool seen;       /* set by cli_parse */
    const char *env; /* environment variable that also sets it (flags win), or NULL */
} CliFlag;

/* Applies the flags' environment variables, then parses argv against flags. Returns 0, 1 for
 * --help (usage printed), or 2 on a bad flag or variable (message printed to stderr). */
int cli_parse(CliFlag *flags, int n_flags, int argc, char **argv, const char *usage);
/* Joins argv into one string (for logs); caller frees. */
char *cli_join(int argc, char **argv);

#endif
