/* CPU affinity and cgroup CPU quota (see csup_affinity.h). */
#include "csup_config.h"
#include "include/csup_affinity.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int csup_affinity_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

int csup_affinity_cpu_at(int index) {
    cpu_set_t set;
    if (index < 0 || sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set)) {
            if (seen == index) return cpu;
            seen++;
        }
    }
    return -1;
}

int csup_affinity_pin_self(int cpu, void **saved) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t *old = malloc(sizeof *old);
    if (!old) return ENOMEM;
    int err = pthread_getaffinity_np(pthread_self(), sizeof *old, old);
    if (err) { free(old); return err; }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    err = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    if (err) { free(old); return err; }
    *saved = old;
    return 0;
}

void csup_affinity_restore(void *saved) {
    if (!saved) return;
    pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), saved);
    free(saved);
}

int csup_current_cpu(void) { return sched_getcpu(); }

int csup_cgroup_cpu_limit(void) {
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return 0;
    char line[512], path[512] = "";
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) == 0) {
            strncpy(path, line + 3, sizeof path - 1);
            path[strcspn(path, "\n")] = 0;
            break;
        }
    }
    fclose(f);
    /* Walk from the process's cgroup up to the root; the tightest quota wins. */
    int best = 0;
    for (;;) {
        char file[1100];
        snprintf(file, sizeof file, "/sys/fs/cgroup%s/cpu.max", path);
        FILE *m = fopen(file, "re");
        if (m) {
            char quota[64] = "";
            long period = 0;
            if (fscanf(m, "%63s %ld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
                long q = atol(quota);
                int cpus = (int)((q + period - 1) / period);
                if (cpus < 1) cpus = 1;
                if (best == 0 || cpus < best) best = cpus;
            }
            fclose(m);
        }
        char *slash = strrchr(path, '/');
        if (!slash || path[0] == 0) break;
        if (slash == path) { if (path[1] == 0) break; path[1] = 0; continue; }
        *slash = 0;
    }
    return best;
}
