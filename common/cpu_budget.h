/* How many threads this process can use: the CPUs its affinity mask allows, lowered to its
 * cgroup's CPU quota where there is one (a container limited to 1.5 CPUs gets 1 thread: a second
 * would spend half of every period waiting for the quota, and hold up the first). */
#ifndef GPTD_CPU_BUDGET_H
#define GPTD_CPU_BUDGET_H

typedef struct {
    int threads;      /* >= 1 */
    char reason[200]; /* where the count came from, for the start-up line and /info */
} CpuBudget;

/* From the real process: sched_getaffinity, /proc/self/cgroup and /sys/fs/cgroup. */
void cpu_budget_read(CpuBudget *budget);

/* The same from given places, for tests: cpus_allowed from an affinity mask, proc_cgroup a file
 * in /proc/self/cgroup's form, cgroup_root where the cgroup tree is mounted. A file that cannot be
 * read counts as no limit. */
void cpu_budget_from(CpuBudget *budget, int cpus_allowed, const char *proc_cgroup,
                     const char *cgroup_root);

#endif
