#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_usage(const CliFlag *flags, int n, const char *usage) {
    printf("%s\n\nOptions:\n", usage);
    for (int i = 0; i < n; i++) {
        const CliFlag *f = &flags[i];
        char def[64] = "";
        switch (f->type) {
            case CLI_INT:
                snprintf(def, sizeof def, " (default %d)", *(int *)f->value);
                break;
            case CLI_FLOAT:
                snprintf(def, sizeof def, " (default %g)", *(float *)f->value);
                break;
            case CLI_U64:
                snprintf(def, sizeof def, " (default %llu)", *(unsigned long long *)f->value);
                break;
            case CLI_STRING:
                if (*(const char **)f->value)
                    snprintf(def, sizeof def, " (default %s)", *(const char **)f->value);
                break;
            case CLI_BOOL:
            case CLI_LIST:
                break;
        }
        printf("  --%-16s %s%s", f->name, f->help, def);
        if (f->env) printf(" [$%s]", f->env);
        printf("\n");
    }
}

static int set_value(CliFlag *f, const char *arg) {
    char *end;
    errno = 0;
    switch (f->type) {
        case CLI_INT: {
            long v = strtol(arg, &end, 10);
            if (errno || end == arg || *end) goto not_number;
            if (v < f->min || v > f->max) goto out_of_range;
            *(int *)f->value = (int)v;
            return 0;
        }
        case CLI_FLOAT: {
            float v = strtof(arg, &end);
            if (errno || end == arg || *end || v != v) goto not_number;
            if (v < f->min || v > f->max) goto out_of_range;
            *(float *)f->value = v;
            return 0;
        }
        case CLI_U64: {
            if (arg[0] == '-') goto not_number;
            unsigned long long v = strtoull(arg, &end, 10);
            if (errno || end == arg || *end) goto not_number;
            *(unsigned long long *)f->value = v;
            return 0;
        }
        case CLI_STRING:
            *(const char **)f->value = arg;
            return 0;
        case CLI_BOOL:
            *(bool *)f->value = true;
            return 0;
        case CLI_LIST: {
            CliList *l = f->value;
            if (l->n >= CLI_LIST_MAX) {
                fprintf(stderr, "error: --%s given more than %d times\n", f->name, CLI_LIST_MAX);
                return 2;
            }
            l->items[l->n++] = arg;
            return 0;
        }
    }
    return 0;
not_number:
    fprintf(stderr, "error: --%s expects a number, got '%s'\n", f->name, arg);
    return 2;
out_of_range:
    fprintf(stderr, "error: --%s must be in [%g, %g], got %s\n", f->name, f->min, f->max, arg);
    return 2;
}

int cli_parse(CliFlag *flags, int n_flags, int argc, char **argv, const char *usage) {
    for (int k = 0; k < n_flags; k++) {
        const char *v = flags[k].env ? getenv(flags[k].env) : NULL;
        if (!v || !*v) continue;
        if (flags[k].type == CLI_BOOL) {
            *(bool *)flags[k].value = strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
            continue;
        }
        if (flags[k].type == CLI_LIST) { /* comma-separated; the strings stay in environ */
            char *copy = strdup(v);
            for (char *save, *item = copy ? strtok_r(copy, ",", &save) : NULL; item;
                 item = strtok_r(NULL, ",", &save))
                if (set_value(&flags[k], item)) return 2;
            /* copy is referenced by the list for the life of the process */
            continue;
        }
        if (set_value(&flags[k], v)) {
            fprintf(stderr, "error: from $%s\n", flags[k].env);
            return 2;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(flags, n_flags, usage);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "error: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        CliFlag *f = NULL;
        for (int k = 0; k < n_flags; k++)
            if (strlen(flags[k].name) == len && strncmp(flags[k].name, name, len) == 0)
                f = &flags[k];
        if (!f) {
            fprintf(stderr, "error: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        const char *value = NULL;
        if (f->type != CLI_BOOL) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                fprintf(stderr, "error: --%s needs a value\n", f->name);
                return 2;
            }
        }
        if (set_value(f, value)) return 2;
        f->seen = true;
    }
    return 0;
}

char *cli_join(int argc, char **argv) {
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i) strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}
