/* How much memory this process may use: the machine's, lowered to its cgroup's memory limit
 * where there is one (a container run with --memory, a Kubernetes limit). The daemon sizes its
 * KV cache from it. */
#ifndef GPTD_MEMORY_BUDGET_H
#define GPTD_MEMORY_BUDGET_H

#include <stddef.h>

typedef struct {
    size_t bytes;     /* 0 when nothing could be read */
    char reason[200]; /* where the figure came from, for the start-up line */
} MemoryBudget;

/* From the real process: /proc/meminfo, /proc/self/cgroup and /sys/fs/cgroup. */
void memory_budget_read(MemoryBudget *budget);

/* The same from given places, for tests: meminfo in /proc/meminfo's form, proc_cgroup in
 * /proc/self/cgroup's, cgroup_root where the tree is mounted. A file that cannot be read counts
 * as no limit. */
void memory_budget_from(MemoryBudget *budget, const char *meminfo, const char *proc_cgroup,
                        const char *cgroup_root);

#endif
