#define _GNU_SOURCE /* sched_getaffinity */
#include "cpu_budget.h"

#include "cgroup.h"

#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The quota of one cgroup v2 directory's cpu.max ("max P" or "Q P"), in CPUs; 0 if none. */
static double cpu_max_quota(const char *dir) {
    char file[4200];
    if (snprintf(file, sizeof file, "%s/cpu.max", dir) >= (int)sizeof file) return 0;
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char quota[32];
    long period = 0;
    double cpus = 0;
    if (fscanf(f, "%31s %ld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
        long q = 0;
        if (sscanf(quota, "%ld", &q) == 1 && q > 0) cpus = (double)q / period;
    }
    fclose(f);
    return cpus;
}

/* The quota of one cgroup v1 directory (cpu.cfs_quota_us / cpu.cfs_period_us), in CPUs; 0 if
 * none (a quota of -1). */
static double cfs_quota(const char *dir) {
    char file[4300];
    long quota = 0, period = 0;
    if (snprintf(file, sizeof file, "%s/cpu.cfs_quota_us", dir) >= (int)sizeof file) return 0;
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    int ok = fscanf(f, "%ld", &quota) == 1;
    fclose(f);
    if (snprintf(file, sizeof file, "%s/cpu.cfs_period_us", dir) >= (int)sizeof file ||
        !(f = fopen(file, "r")))
        return 0;
    ok = ok && fscanf(f, "%ld", &period) == 1;
    fclose(f);
    return ok && quota > 0 && period > 0 ? (double)quota / period : 0;
}

void cpu_budget_from(CpuBudget *b, int cpus_allowed, const char *proc_cgroup,
                     const char *cgroup_root) {
    if (cpus_allowed < 1) cpus_allowed = 1;
    b->threads = cpus_allowed;
    snprintf(b->reason, sizeof b->reason, "%d CPU%s in the affinity mask", cpus_allowed,
             cpus_allowed == 1 ? "" : "s");
    /* cgroup v2 first; else the v1 cpu controller, mounted as cpu or cpu,cpuacct. In a container
     * the path names the host's tree while the mount shows the container's own cgroup, so the
     * walk up ends at the mount's root either way. */
    double quota = 0;
    char path[4096], root[4200];
    if (cgroup_path(proc_cgroup, NULL, path, sizeof path))
        quota = cgroup_tightest(cgroup_root, path, cpu_max_quota);
    const char *v1_mounts[] = {"cpu", "cpu,cpuacct"};
    for (int i = 0; i < 2 && quota == 0; i++)
        if (cgroup_path(proc_cgroup, "cpu", path, sizeof path)) {
            if (snprintf(root, sizeof root, "%s/%s", cgroup_root, v1_mounts[i]) < (int)sizeof root)
                quota = cgroup_tightest(root, path, cfs_quota);
        }
    if (quota > 0 && quota < cpus_allowed) {
        b->threads = quota < 1 ? 1 : (int)quota;
        bool whole = (double)b->threads == quota;
        snprintf(b->reason, sizeof b->reason,
                 "cgroup CPU quota of %.2f CPUs%s (%d in the affinity mask)", quota,
                 whole ? "" : ", rounded down: a thread more would wait for the quota",
                 cpus_allowed);
    }
}

void cpu_budget_read(CpuBudget *b) {
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                           : (int)sysconf(_SC_NPROCESSORS_ONLN);
    cpu_budget_from(b, cpus, "/proc/self/cgroup", "/sys/fs/cgroup");
}
