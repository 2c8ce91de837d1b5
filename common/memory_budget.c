#include "memory_budget.h"

#include <stdio.h>
#include <string.h>

#include "cgroup.h"

/* The number in one file ("max", or a figure past any machine, is no limit); 0 if none. */
static double bytes_in(const char *dir, const char *name) {
    char file[4300];
    if (snprintf(file, sizeof file, "%s/%s", dir, name) >= (int)sizeof file) return 0;
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    double v = 0;
    if (fscanf(f, "%lf", &v) != 1 || v >= 0x1p62) v = 0; /* v1 writes "no limit" as ~2^63 */
    fclose(f);
    return v;
}

static double memory_max(const char *dir) { return bytes_in(dir, "memory.max"); }
static double limit_in_bytes(const char *dir) { return bytes_in(dir, "memory.limit_in_bytes"); }

void memory_budget_from(MemoryBudget *b, const char *meminfo, const char *proc_cgroup,
                        const char *cgroup_root) {
    b->bytes = 0;
    snprintf(b->reason, sizeof b->reason, "unknown (no /proc/meminfo)");
    FILE *f = fopen(meminfo, "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
                b->bytes = (size_t)kb * 1024;
                snprintf(b->reason, sizeof b->reason, "%zu MB of memory", b->bytes >> 20);
            }
        fclose(f);
    }
    double limit = 0;
    char path[4096], root[4200];
    if (cgroup_path(proc_cgroup, NULL, path, sizeof path))
        limit = cgroup_tightest(cgroup_root, path, memory_max);
    if (limit == 0 && cgroup_path(proc_cgroup, "memory", path, sizeof path) &&
        snprintf(root, sizeof root, "%s/memory", cgroup_root) < (int)sizeof root)
        limit = cgroup_tightest(root, path, limit_in_bytes);
    if (limit > 0 && (b->bytes == 0 || limit < (double)b->bytes)) {
        b->bytes = (size_t)limit;
        snprintf(b->reason, sizeof b->reason, "cgroup memory limit of %zu MB", b->bytes >> 20);
    }
}

void memory_budget_read(MemoryBudget *b) {
    memory_budget_from(b, "/proc/meminfo", "/proc/self/cgroup", "/sys/fs/cgroup");
}
