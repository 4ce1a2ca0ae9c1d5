/* CPU affinity and cgroup CPU quota (see csup_affinity.h).
 *
 * Masks are sized at run time (CPU_ALLOC): a kernel built for more than
 * CPU_SETSIZE (1,024) CPUs rejects a too-small mask with EINVAL, so
 * read_mask doubles the mask until sched_getaffinity accepts it. */
#include "csup_config.h"
#include "include/csup_affinity.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest mask tried: 2^18 CPUs (32 KiB), far above any kernel's NR_CPUS. */
#define CSUP_MAX_CPUS (1 << 18)

/* This thread's mask in a CPU_ALLOC'd set of *ncpus bits (free with
 * CPU_FREE), or NULL with errno set. */
static cpu_set_t *read_mask(int *ncpus) {
    for (int n = CPU_SETSIZE; n <= CSUP_MAX_CPUS; n *= 2) {
        cpu_set_t *set = CPU_ALLOC(n);
        if (!set) { errno = ENOMEM; return NULL; }
        size_t size = CPU_ALLOC_SIZE(n);
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) { *ncpus = n; return set; }
        int err = errno;
        CPU_FREE(set);
        if (err != EINVAL) { errno = err; return NULL; }
    }
    errno = EINVAL;
    return NULL;
}

int csup_affinity_cpus(int *out, int capacity) {
    int n = 0;
    cpu_set_t *set = read_mask(&n);
    if (!set) return -errno;
    size_t size = CPU_ALLOC_SIZE(n);
    int count = 0;
    for (int cpu = 0; cpu < n; cpu++) {
        if (CPU_ISSET_S(cpu, size, set)) {
            if (out && count < capacity) out[count] = cpu;
            count++;
        }
    }
    CPU_FREE(set);
    return count;
}

int csup_affinity_count(void) {
    int n = csup_affinity_cpus(NULL, 0);
    return n > 0 ? n : 1;
}

int csup_affinity_cpu_at(int index) {
    if (index < 0) return -1;
    int n = 0;
    cpu_set_t *set = read_mask(&n);
    if (!set) return -1;
    size_t size = CPU_ALLOC_SIZE(n);
    int found = -1;
    for (int cpu = 0, seen = 0; cpu < n; cpu++) {
        if (CPU_ISSET_S(cpu, size, set)) {
            if (seen == index) { found = cpu; break; }
            seen++;
        }
    }
    CPU_FREE(set);
    return found;
}

/* A saved mask and its size in CPUs. */
struct saved_mask { int ncpus; cpu_set_t *set; };

int csup_affinity_pin_self(int cpu, void **saved) {
    if (cpu < 0 || cpu >= CSUP_MAX_CPUS) return EINVAL;
    struct saved_mask *old = malloc(sizeof *old);
    if (!old) return ENOMEM;
    old->set = read_mask(&old->ncpus);
    if (!old->set) { int err = errno; free(old); return err; }
    int n = cpu + 1 > old->ncpus ? cpu + 1 : old->ncpus;
    cpu_set_t *one = CPU_ALLOC(n);
    if (!one) { CPU_FREE(old->set); free(old); return ENOMEM; }
    size_t size = CPU_ALLOC_SIZE(n);
    CPU_ZERO_S(size, one);
    CPU_SET_S(cpu, size, one);
    int err = pthread_setaffinity_np(pthread_self(), size, one);
    CPU_FREE(one);
    if (err) { CPU_FREE(old->set); free(old); return err; }
    *saved = old;
    return 0;
}

void csup_affinity_restore(void *saved) {
    if (!saved) return;
    struct saved_mask *old = saved;
    pthread_setaffinity_np(pthread_self(), CPU_ALLOC_SIZE(old->ncpus), old->set);
    CPU_FREE(old->set);
    free(old);
}

/* The mask of the thread that loaded CSupport (the main thread, before the
 * runtime pinned anything): what an unpinned runtime thread may use. Read
 * once by a constructor, never written after, so any thread may read it. */
static cpu_set_t *start_set;
static int start_ncpus;

__attribute__((constructor)) static void capture_start_mask(void) {
    start_set = read_mask(&start_ncpus);
}

int csup_affinity_unpin_self(void) {
    if (!start_set) return 0;
    return pthread_setaffinity_np(pthread_self(), CPU_ALLOC_SIZE(start_ncpus), start_set);
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
