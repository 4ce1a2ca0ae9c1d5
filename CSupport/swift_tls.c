/*
 * Locates the Swift concurrency runtime's thread-local slots (see
 * csup_swift_tls.h for why they move with a context).
 *
 * 1. dladdr(swift_task_getCurrent) names the module that defines the
 *    runtime (libswift_Concurrency.so, or the executable with a static
 *    standard library); dl_iterate_phdr gives its TLS module id.
 * 2. The module file's ELF .symtab gives the three TLS symbols' offsets in
 *    its TLS block (STT_TLS values are block offsets), by mangled name.
 * 3. Check: a sentinel written to the ActiveTask slot must be what
 *    swift_task_getCurrent() returns (then the old value is put back).
 * Any failure leaves the layout unpublished and says why.
 */
#include "csup_config.h"
#include "include/csup_swift_tls.h"
#include "swift_tls_layout.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern void *swift_task_getCurrent(void) __attribute__((weak));

typedef struct { unsigned long ti_module; unsigned long ti_offset; } tls_index_t;
extern void *__tls_get_addr(tls_index_t *ti);

static const char *const slot_names[CSUP_SWIFT_TLS_SLOTS] = {
    "_ZN12_GLOBAL__N_110ActiveTask5ValueE",
    "_ZN12_GLOBAL__N_120ExecutorTrackingInfo18ActiveInfoInThreadE",
    "_ZN24FallbackTaskLocalStorage5ValueE",
};

struct find_module { uintptr_t base; unsigned long modid; const char *name; int found; };

static int find_module_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    struct find_module *f = arg;
    if ((uintptr_t)info->dlpi_addr != f->base) return 0;
    f->modid = info->dlpi_tls_modid;
    f->name = info->dlpi_name;
    f->found = 1;
    return 1;
}

/* Reads the STT_TLS symbols `names_wanted[0..wanted)` of `path` (each of size
 * `size`) into offsets; returns how many of the names were found, or -1
 * when the file cannot be read as ELF64. */
static int read_offsets(const char *path, const char *const *names_wanted, int wanted, size_t size,
                        unsigned long *offsets) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) { close(fd); return -1; }
    size_t len = (size_t)st.st_size;
    const unsigned char *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return -1;
    int found = -1;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)m;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) goto out;
    if (eh->e_shoff == 0 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > len) goto out;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(m + eh->e_shoff);
    found = 0;
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr *strs = &sh[sh[i].sh_link];
        if (sh[i].sh_offset + sh[i].sh_size > len || strs->sh_offset + strs->sh_size > len) continue;
        const Elf64_Sym *syms = (const Elf64_Sym *)(m + sh[i].sh_offset);
        size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
        const char *names = (const char *)(m + strs->sh_offset);
        for (size_t k = 0; k < count; k++) {
            if (ELF64_ST_TYPE(syms[k].st_info) != STT_TLS || syms[k].st_size != size) continue;
            if (syms[k].st_name >= strs->sh_size) continue;
            const char *name = names + syms[k].st_name;
            for (int s = 0; s < wanted; s++) {
                if (strcmp(name, names_wanted[s]) == 0 && offsets[s] == (unsigned long)-1) {
                    offsets[s] = syms[k].st_value;
                    found++;
                }
            }
        }
    }
out:
    munmap((void *)m, len);
    return found;
}

static pthread_mutex_t locate_lock = PTHREAD_MUTEX_INITIALIZER;

int csup_swift_tls_locate(char *why, size_t n) {
    if (__atomic_load_n(&csup_swift_tls_layout.ready, __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&locate_lock);
    int rc = -1;
    if (csup_swift_tls_layout.ready) { rc = 0; goto done; }
    if (!swift_task_getCurrent) {
        snprintf(why, n, "the Swift concurrency runtime (swift_task_getCurrent) is not linked in");
        goto done;
    }
    Dl_info dli;
    if (dladdr((void *)swift_task_getCurrent, &dli) == 0 || dli.dli_fbase == NULL) {
        snprintf(why, n, "dladdr cannot name the module of swift_task_getCurrent");
        goto done;
    }
    struct find_module f = { (uintptr_t)dli.dli_fbase, 0, NULL, 0 };
    dl_iterate_phdr(find_module_cb, &f);
    if (!f.found || f.modid == 0) {
        snprintf(why, n, "the Swift concurrency runtime module has no TLS block");
        goto done;
    }
    const char *path = (f.name && f.name[0]) ? f.name : "/proc/self/exe";
    unsigned long offsets[CSUP_SWIFT_TLS_SLOTS];
    for (int s = 0; s < CSUP_SWIFT_TLS_SLOTS; s++) offsets[s] = (unsigned long)-1;
    int got = read_offsets(path, slot_names, CSUP_SWIFT_TLS_SLOTS, sizeof(void *), offsets);
    if (got != CSUP_SWIFT_TLS_SLOTS) {
        snprintf(why, n, "%s: found %d of the %d Swift concurrency thread-local symbols in its ELF .symtab "
                 "(stripped, or a runtime with another layout)", path, got < 0 ? 0 : got, CSUP_SWIFT_TLS_SLOTS);
        goto done;
    }
    /* Verify the ActiveTask slot on this pthread. */
    tls_index_t ti = { f.modid, offsets[0] };
    void **slot = __tls_get_addr(&ti);
    void *saved = *slot;
    void *sentinel = (void *)(uintptr_t)0x5a5a5a50u;
    *slot = sentinel;
    void *seen = swift_task_getCurrent();
    *slot = saved;
    if (seen != sentinel) {
        snprintf(why, n, "%s: the ActiveTask slot at offset %lu is not what swift_task_getCurrent reads",
                 path, offsets[0]);
        goto done;
    }
    csup_swift_tls_layout.module = f.modid;
    for (int s = 0; s < CSUP_SWIFT_TLS_SLOTS; s++) csup_swift_tls_layout.offset[s] = offsets[s];
    __atomic_store_n(&csup_swift_tls_layout.ready, 1, __ATOMIC_RELEASE);
    rc = 0;
done:
    pthread_mutex_unlock(&locate_lock);
    return rc;
}

void *csup_swift_current_task(void) { return swift_task_getCurrent ? swift_task_getCurrent() : NULL; }

/* ---- the exclusivity access set (libswiftCore) ------------------------
 *
 * swift_task_exitThreadLocalContext(state) moves the pthread's tracked
 * accesses into `state`; when `state` holds none and the pthread's set is
 * empty it does nothing. A switch runs in runtime code with no access in
 * progress, so that is the usual case, and a switch that can read the
 * set's head skips the call then (context.c, excl_exit). The head is the
 * first word of SwiftTLSContext::get()'s thread-local in the module that
 * defines swift_task_exitThreadLocalContext (libswiftCore, or the
 * executable with a static standard library):
 * 1. the module and its TLS module id, as above;
 * 2. the thread-local's offset, from the module's ELF .symtab by name;
 * 3. check, on this pthread: a tracked swift_beginAccess must make the
 *    head point at the record it was given, and swift_endAccess must put
 *    the old head back.
 * Any failure leaves it unpublished: every switch then calls the runtime. */
extern void swift_task_exitThreadLocalContext(char *state) __attribute__((weak));
extern void swift_beginAccess(void *pointer, void *buffer, uintptr_t flags, void *pc) __attribute__((weak));
extern void swift_endAccess(void *buffer) __attribute__((weak));

csup_swift_access_layout_t csup_swift_access_layout;

static void locate_access_set(void) {
    if (!swift_task_exitThreadLocalContext || !swift_beginAccess || !swift_endAccess) return;
    Dl_info dli;
    if (dladdr((void *)swift_task_exitThreadLocalContext, &dli) == 0 || dli.dli_fbase == NULL) return;
    struct find_module f = { (uintptr_t)dli.dli_fbase, 0, NULL, 0 };
    dl_iterate_phdr(find_module_cb, &f);
    if (!f.found || f.modid == 0) return;
    const char *path = (f.name && f.name[0]) ? f.name : "/proc/self/exe";
    /* SwiftTLSContext: the access set (its head pointer), then a flag. */
    static const char *const tls_context[1] = { "_ZZN5swift7runtime15SwiftTLSContext3getEvE10TLSContext" };
    unsigned long offset = (unsigned long)-1;
    if (read_offsets(path, tls_context, 1, 2 * sizeof(void *), &offset) != 1) return;
    tls_index_t ti = { f.modid, offset };
    uintptr_t *head = __tls_get_addr(&ti);
    uintptr_t before = *head;
    /* An access record (the runtime's ValueBuffer: 3 words) on a local.
     * Flags: modify (0x1) | tracking (0x20). An untracked access leaves
     * the record's pointer null, and swift_endAccess then does nothing. */
    uintptr_t record[4] = { 0, 0, 0, 0 };
    int probe = 0;
    swift_beginAccess(&probe, record, 0x21, NULL);
    int inserted = *head == (uintptr_t)record;
    swift_endAccess(record);
    if (!inserted || *head != before) return;
    csup_swift_access_layout.module = f.modid;
    csup_swift_access_layout.offset = offset;
    __atomic_store_n(&csup_swift_access_layout.ready, 1, __ATOMIC_RELEASE);
}

static pthread_once_t access_once = PTHREAD_ONCE_INIT;

void csup_swift_access_locate(void) { pthread_once(&access_once, locate_access_set); }
