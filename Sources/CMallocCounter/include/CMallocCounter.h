/* Counts heap allocations in the benchmark process (linked into ums-bench
 * only). malloc, calloc, realloc and posix_memalign/aligned_alloc are
 * interposed and forwarded to glibc's implementations. */
#ifndef CMALLOC_COUNTER_H
#define CMALLOC_COUNTER_H
#include <stdint.h>
/* Allocations made so far by the whole process. */
uint64_t ums_malloc_count(void);
#endif
