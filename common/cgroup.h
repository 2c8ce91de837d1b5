/* Where this process sits in the cgroup tree, and the tightest limit on the way up: what the
 * CPU and memory budgets read. */
#ifndef GPTD_CGROUP_H
#define GPTD_CGROUP_H

#include <stddef.h>

/* This process's cgroup path from proc_cgroup (/proc/self/cgroup's form) into path: for the v2
 * tree ("0::/path") when controller is NULL, else for the v1 hierarchy that holds controller
 * ("N:cpu,cpuacct:/path" for "cpu"). 0 if there is none. */
int cgroup_path(const char *proc_cgroup, const char *controller, char *path, size_t size);

/* Walks from the cgroup `path` (changed in place) up to the root of the tree at `root` and
 * returns the tightest limit(dir) on the way (a parent's limit binds its children); 0 if none. */
double cgroup_tightest(const char *root, char *path, double (*limit)(const char *dir));

#endif
