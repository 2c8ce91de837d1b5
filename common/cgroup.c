#include "cgroup.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Whether the comma-separated list holds name. */
static bool lists(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p; p = strchr(p, ',')) {
        if (*p == ',') p++;
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0')) return true;
    }
    return false;
}

int cgroup_path(const char *proc_cgroup, const char *controller, char *path, size_t size) {
    FILE *f = fopen(proc_cgroup, "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *controllers = strchr(line, ':'),
             *p = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!p) continue;
        *p = '\0';
        *controllers = '\0'; /* line: the hierarchy's number; c: its controllers */
        const char *c = controllers + 1;
        if (controller ? lists(c, controller) : strcmp(line, "0") == 0 && *c == '\0')
            found = snprintf(path, size, "%s", p + 1) < (int)size;
    }
    fclose(f);
    return found;
}

double cgroup_tightest(const char *root, char *path, double (*limit)(const char *dir)) {
    double tightest = 0;
    char dir[4200];
    for (;;) {
        double q = snprintf(dir, sizeof dir, "%s%s", root, path) < (int)sizeof dir ? limit(dir) : 0;
        if (q > 0 && (tightest == 0 || q < tightest)) tightest = q;
        char *slash = strrchr(path, '/');
        if (!slash || strcmp(path, "/") == 0) return tightest;
        if (slash == path)
            path[1] = '\0'; /* up to the root, "/" */
        else
            *slash = '\0';
    }
}
