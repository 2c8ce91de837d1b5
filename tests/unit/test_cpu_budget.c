/* The default thread count: the affinity mask, lowered to the cgroup's CPU quota, read from a
 * fake cgroup tree (v2's cpu.max and v1's cfs files) in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/cpu_budget.h"
#include "../../common/memory_budget.h"

static char root[64];

static void write_file(const char *rel, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    /* make the parent directories */
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_root(void **state) {
    (void)state;
    strcpy(root, "/tmp/gptd-cgroup-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int remove_root(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static CpuBudget budget(int cpus) {
    char proc[128], tree[128];
    snprintf(proc, sizeof proc, "%s/proc_cgroup", root);
    snprintf(tree, sizeof tree, "%s/fs", root);
    CpuBudget b;
    cpu_budget_from(&b, cpus, proc, tree);
    return b;
}

/* cpu.max of "max", "100000 100000" and "150000 100000" with two CPUs allowed: 2, 1, 1. */
static void cgroup_v2_quota(void **state) {
    (void)state;
    write_file("proc_cgroup", "0::/kubepods/pod1/gptd\n");
    write_file("fs/kubepods/pod1/gptd/cpu.max", "max 100000\n");
    CpuBudget b = budget(2);
    assert_int_equal(b.threads, 2);
    assert_non_null(strstr(b.reason, "2 CPUs in the affinity mask"));

    write_file("fs/kubepods/pod1/gptd/cpu.max", "100000 100000\n");
    b = budget(2);
    assert_int_equal(b.threads, 1);
    assert_non_null(strstr(b.reason, "quota of 1.00 CPUs"));
    assert_null(strstr(b.reason, "rounded down"));

    write_file("fs/kubepods/pod1/gptd/cpu.max", "150000 100000\n");
    b = budget(2);
    assert_int_equal(b.threads, 1);
    assert_non_null(strstr(b.reason, "quota of 1.50 CPUs, rounded down"));

    /* A quota above the affinity mask changes nothing; half a CPU still gets one thread. */
    write_file("fs/kubepods/pod1/gptd/cpu.max", "400000 100000\n");
    assert_int_equal(budget(2).threads, 2);
    write_file("fs/kubepods/pod1/gptd/cpu.max", "50000 100000\n");
    assert_int_equal(budget(2).threads, 1);
}

/* A parent's quota binds its children; the tightest on the way up counts. */
static void parent_quota_binds(void **state) {
    (void)state;
    write_file("proc_cgroup", "0::/a/b\n");
    write_file("fs/a/b/cpu.max", "max 100000\n");
    write_file("fs/a/cpu.max", "300000 100000\n");
    write_file("fs/cpu.max", "200000 100000\n");
    assert_int_equal(budget(8).threads, 2);
    write_file("fs/a/b/cpu.max", "100000 100000\n");
    assert_int_equal(budget(8).threads, 1);
}

/* cgroup v1: the cpu controller's cfs files, -1 meaning no quota. */
static void cgroup_v1_quota(void **state) {
    (void)state;
    write_file("proc_cgroup", "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n");
    write_file("fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    write_file("fs/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(budget(4).threads, 4);
    write_file("fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
    CpuBudget b = budget(4);
    assert_int_equal(b.threads, 2);
    assert_non_null(strstr(b.reason, "2.50 CPUs"));
}

/* Nothing readable: the affinity mask alone. */
static void no_cgroup_files(void **state) {
    (void)state;
    CpuBudget b;
    cpu_budget_from(&b, 3, "/nonexistent/cgroup", "/nonexistent/fs");
    assert_int_equal(b.threads, 3);
    cpu_budget_read(&b); /* the real process: at least one */
    assert_true(b.threads >= 1);
}

static MemoryBudget memory(void) {
    char meminfo[128], proc[128], tree[128];
    snprintf(meminfo, sizeof meminfo, "%s/meminfo", root);
    snprintf(proc, sizeof proc, "%s/proc_cgroup", root);
    snprintf(tree, sizeof tree, "%s/fs", root);
    MemoryBudget b;
    memory_budget_from(&b, meminfo, proc, tree);
    return b;
}

/* The machine's memory, lowered by the tightest memory.max on the way up (v2) or by v1's
 * memory.limit_in_bytes; "max" and v1's huge "no limit" count as none. */
static void memory_limits(void **state) {
    (void)state;
    write_file("meminfo", "MemTotal:       24576000 kB\nMemFree:  1000 kB\n");
    write_file("proc_cgroup", "0::/kubepods/pod1/gptd\n");
    MemoryBudget b = memory();
    assert_int_equal(b.bytes, (size_t)24576000 * 1024);
    assert_non_null(strstr(b.reason, "24000 MB of memory"));
    write_file("fs/kubepods/pod1/gptd/memory.max", "max\n");
    write_file("fs/kubepods/pod1/memory.max", "536870912\n");
    write_file("fs/kubepods/memory.max", "1073741824\n");
    b = memory();
    assert_int_equal(b.bytes, 536870912);
    assert_non_null(strstr(b.reason, "cgroup memory limit of 512 MB"));
    /* a limit above the machine's memory does not raise it */
    write_file("fs/kubepods/pod1/memory.max", "99999999999999\n");
    write_file("fs/kubepods/memory.max", "max\n");
    assert_int_equal(memory().bytes, (size_t)24576000 * 1024);
    /* v1: the memory controller's own hierarchy */
    write_file("proc_cgroup", "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
    write_file("fs/memory/docker/abc/memory.limit_in_bytes", "268435456\n");
    write_file("fs/memory/memory.limit_in_bytes", "9223372036854771712\n");
    assert_int_equal(memory().bytes, 268435456);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cgroup_v2_quota, make_root, remove_root),
        cmocka_unit_test_setup_teardown(parent_quota_binds, make_root, remove_root),
        cmocka_unit_test_setup_teardown(cgroup_v1_quota, make_root, remove_root),
        cmocka_unit_test(no_cgroup_files),
        cmocka_unit_test_setup_teardown(memory_limits, make_root, remove_root),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
