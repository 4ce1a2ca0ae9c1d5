/*
 * Frame-pointer backtraces of suspended and running contexts, and ELF
 * symbolization. See csup_backtrace.h for the contract.
 *
 * Capture protocol of csup_thread_backtrace (one request at a time, under
 * `capture_lock`):
 *   requester: fills a fresh request record (target tid, bounds, a buffer
 *              it owns), publishes it in `active` (release), sends the
 *              signal with tgkill, and waits on the record's futex word.
 *   handler:   on the target thread, takes the record from `active`
 *              (acquire; exchange with NULL, so at most one handler uses a
 *              record), walks from the interrupted registers, stores the
 *              count and sets `done` (release), then wakes the futex.
 *   timeout:   the requester exchanges `active` back to NULL. If it got its
 *              record back, no handler took it: it frees it. If not, a
 *              handler has it and may still write to it: the record is
 *              leaked (never freed), so that late write is harmless.
 * Every read of stack memory, in the handler too, is a process_vm_readv
 * of our own pid: async-signal-safe, and a bad address is EFAULT, not a
 * crash.
 */
#include "csup_backtrace.h"
#include "csup_syscall.h"
#include "csup_futex.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <stdatomic.h>

/* Reads `n` bytes at `addr` of this process into `dst`; 0 or -1. */
static int safe_read(uintptr_t addr, void *dst, size_t n) {
    struct iovec local = { dst, n };
    struct iovec remote = { (void *)addr, n };
    ssize_t r = syscall(SYS_process_vm_readv, (long)getpid(), &local, 1UL, &remote, 1UL, 0UL);
    return r == (ssize_t)n ? 0 : -1;
}

/* Walks the frame-pointer chain from `fp`; out[] gets return addresses.
 * A frame record is [saved fp, return address] at fp on both x86_64 (rbp)
 * and aarch64 (x29). */
static int walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *out, int n, int max) {
    while (n < max && fp != 0) {
        if (fp & (sizeof(void *) - 1)) break;
        if (lo != 0 && (fp < lo || fp + 2 * sizeof(void *) > hi)) break;
        uintptr_t rec[2];
        if (safe_read(fp, rec, sizeof rec) != 0) break;
        if (rec[1] == 0) break;
        out[n++] = rec[1];
        if (rec[0] <= fp) break;   /* callers live higher: no loops */
        fp = rec[0];
    }
    return n;
}


int csup_backtrace_walk_from(uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *out, int max) {
    if (max <= 0) return 0;
    int n = 0;
    if (pc != 0) out[n++] = pc;
    return walk(fp, lo, hi, out, n, max);
}

/* Reads a saved frame's fp and return address from a switch frame at sp
 * (layout: csup_switch_*.S). */

int csup_backtrace_saved_frame(uintptr_t sp, uintptr_t *pc, uintptr_t *fp) {
    if (sp == 0) return -1;
#if defined(__x86_64__)
    uintptr_t regs[2];   /* +48 rbp, +56 return address */
    if (safe_read(sp + 48, regs, sizeof regs) != 0) return -1;
#elif defined(__aarch64__)
    uintptr_t regs[2];   /* +80 x29, +88 x30 */
    if (safe_read(sp + 80, regs, sizeof regs) != 0) return -1;
#else
    uintptr_t regs[2] = { 0, 0 };
    return -1;
#endif
    *fp = regs[0];
    *pc = regs[1];
    return 0;
}

__attribute__((noinline)) int csup_backtrace_here(uintptr_t *out, int max, int skip) {
    uintptr_t tmp[128];
    if (max > 128) max = 128;
    int n = walk((uintptr_t)__builtin_frame_address(0), 0, 0, tmp, 0, max + skip);
    int k = 0;
    for (int i = skip; i < n && k < max; i++) out[k++] = tmp[i];
    return k;
}

/* ---- capture of a running thread ------------------------------------- */

enum { REQUEST_FRAMES = 128 };

typedef struct capture_request {
    int64_t tid;
    uintptr_t lo, hi;
    int max;
    int count;
    uint32_t done;            /* 0 -> 1 (release), futex word */
    uintptr_t frames[REQUEST_FRAMES];
} capture_request;

static _Atomic(capture_request *) active;
static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static struct sigaction previous;
static int handler_installed;

static void capture_handler(int sig, siginfo_t *info, void *uctx) {
    int saved_errno = errno;
    capture_request *r = atomic_load_explicit(&active, memory_order_acquire);
    if (r == NULL || r->tid != csup_gettid() || info->si_code != SI_TKILL || info->si_pid != getpid()) {
        /* Not ours: give it to the handler that was there before. */
        if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
            previous.sa_sigaction(sig, info, uctx);
        } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler) {
            previous.sa_handler(sig);
        }
        errno = saved_errno;
        return;
    }
    /* Exactly one handler takes the record. */
    if (!atomic_compare_exchange_strong_explicit(&active, &r, NULL, memory_order_acq_rel, memory_order_acquire)) {
        errno = saved_errno;
        return;
    }
    ucontext_t *uc = uctx;
    uintptr_t pc = 0, fp = 0;
#if defined(__x86_64__)
    pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    pc = (uintptr_t)uc->uc_mcontext.pc;
    fp = (uintptr_t)uc->uc_mcontext.regs[29];
#endif
    r->count = csup_backtrace_walk_from(pc, fp, r->lo, r->hi, r->frames, r->max);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    csup_futex_wake(&r->done, 1);
    errno = saved_errno;
}

static void install_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = capture_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    handler_installed = sigaction(SIGURG, &sa, &previous) == 0;
}

int csup_backtrace_signal(void) { return SIGURG; }

int csup_thread_backtrace(int64_t tid, uintptr_t lo, uintptr_t hi, uintptr_t *out, int max, int64_t timeout_ns) {
    pthread_once(&handler_once, install_handler);
    if (!handler_installed) return -ENOSYS;
    if (max > REQUEST_FRAMES) max = REQUEST_FRAMES;
    capture_request *r = calloc(1, sizeof *r);
    if (r == NULL) return -ENOMEM;
    r->tid = tid; r->lo = lo; r->hi = hi; r->max = max;
    pthread_mutex_lock(&capture_lock);
    atomic_store_explicit(&active, r, memory_order_release);
    if (syscall(SYS_tgkill, (long)getpid(), (long)tid, (long)SIGURG) != 0) {
        int e = errno;
        atomic_store_explicit(&active, NULL, memory_order_release);
        pthread_mutex_unlock(&capture_lock);
        free(r);
        return -e;
    }
    int64_t deadline = csup_monotonic_ns() + timeout_ns;
    while (__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) == 0) {
        int64_t left = deadline - csup_monotonic_ns();
        if (left <= 0) break;
        csup_futex_wait(&r->done, 0, left);
    }
    int result;
    if (__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
        result = r->count;
        memcpy(out, r->frames, (size_t)result * sizeof(uintptr_t));
        free(r);
    } else {
        capture_request *mine = atomic_exchange_explicit(&active, NULL, memory_order_acq_rel);
        if (mine == r) {
            free(r);   /* no handler took it */
        } else if (__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
            result = r->count;   /* finished just now */
            memcpy(out, r->frames, (size_t)result * sizeof(uintptr_t));
            free(r);
            pthread_mutex_unlock(&capture_lock);
            return result;
        }
        /* else a handler holds it: leak it (see the file comment). */
        result = -EAGAIN;
    }
    pthread_mutex_unlock(&capture_lock);
    return result;
}

/* ---- symbolization ---------------------------------------------------- */

typedef struct sym { uintptr_t value, size; uint32_t name; } sym;

typedef struct image {
    struct image *next;
    char path[512];
    uintptr_t base;            /* dladdr's dli_fbase: the cache key */
    uintptr_t bias;            /* runtime address = st_value + bias */
    sym *syms;
    size_t count;
    const char *strtab;
    size_t strtab_size;
    void *map;
    size_t map_size;
} image;

static image *images;
static pthread_mutex_t images_lock = PTHREAD_MUTEX_INITIALIZER;

static int by_value(const void *a, const void *b) {
    const sym *x = a, *y = b;
    return x->value < y->value ? -1 : x->value > y->value;
}

/* Loads the function symbols of the ELF file at `path` (.symtab, else
 * .dynsym). `fbase` is where dladdr says the object starts. */
static image *load_image(const char *path, uintptr_t fbase) {
    image *im = calloc(1, sizeof *im);
    if (!im) return NULL;
    strncpy(im->path, path, sizeof im->path - 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        /* Transient (out of descriptors, say): not cached, retried later. */
        if (fd >= 0) close(fd);
        free(im);
        return NULL;
    }
    if (st.st_size < (off_t)sizeof(ElfW(Ehdr))) { close(fd); return im; }   /* not an ELF file: cached as symbol-less */
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) { free(im); return NULL; }
    im->map = m;
    im->map_size = (size_t)st.st_size;
    const unsigned char *b = m;
    const ElfW(Ehdr) *eh = m;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shoff == 0
        || eh->e_shoff + (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) > im->map_size) return im;
    /* Bias: the lowest PT_LOAD's page-aligned vaddr sits at fbase. */
    uintptr_t lowest = UINTPTR_MAX;
    if (eh->e_phoff + (size_t)eh->e_phnum * sizeof(ElfW(Phdr)) <= im->map_size) {
        const ElfW(Phdr) *ph = (const void *)(b + eh->e_phoff);
        for (int i = 0; i < eh->e_phnum; i++)
            if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < lowest) lowest = ph[i].p_vaddr;
    }
    if (lowest == UINTPTR_MAX) lowest = 0;
    im->bias = fbase - (lowest & ~(uintptr_t)0xfff);
    const ElfW(Shdr) *sh = (const void *)(b + eh->e_shoff);
    const ElfW(Shdr) *symtab = NULL;
    for (int i = 0; i < eh->e_shnum; i++) if (sh[i].sh_type == SHT_SYMTAB) symtab = &sh[i];
    if (!symtab) for (int i = 0; i < eh->e_shnum; i++) if (sh[i].sh_type == SHT_DYNSYM) symtab = &sh[i];
    if (!symtab || symtab->sh_link >= eh->e_shnum) return im;
    const ElfW(Shdr) *strs = &sh[symtab->sh_link];
    if (symtab->sh_offset + symtab->sh_size > im->map_size || strs->sh_offset + strs->sh_size > im->map_size) return im;
    const ElfW(Sym) *s = (const void *)(b + symtab->sh_offset);
    size_t n = symtab->sh_size / sizeof(ElfW(Sym));
    im->syms = malloc(n * sizeof(sym));
    if (!im->syms) return im;
    for (size_t i = 0; i < n; i++) {
        if (ELF64_ST_TYPE(s[i].st_info) != STT_FUNC || s[i].st_value == 0 || s[i].st_name >= strs->sh_size) continue;
        im->syms[im->count++] = (sym){ s[i].st_value, s[i].st_size, s[i].st_name };
    }
    qsort(im->syms, im->count, sizeof(sym), by_value);
    im->strtab = (const char *)(b + strs->sh_offset);
    im->strtab_size = strs->sh_size;
    return im;
}

/* The file behind an object: dladdr's name when it is absolute; the main
 * program's name is argv[0] (maybe relative), so it is read from
 * /proc/self/exe; anything else with no path (the vDSO) has no file. */
static const char *resolve_path(const char *fname, uintptr_t fbase, char *buf, size_t len) {
    if (fname != NULL && fname[0] == '/') return fname;
    Dl_info main_info;
    uintptr_t phdr = (uintptr_t)getauxval(AT_PHDR);
    if (phdr != 0 && dladdr((void *)phdr, &main_info) && (uintptr_t)main_info.dli_fbase == fbase) {
        ssize_t k = readlink("/proc/self/exe", buf, len - 1);
        if (k > 0) { buf[k] = 0; return buf; }
    }
    return NULL;
}

int csup_symbolize(uintptr_t addr, char *name, size_t len, uintptr_t *offset, char *image_out, size_t image_len) {
    Dl_info info;
    memset(&info, 0, sizeof info);
    if (len) name[0] = 0;
    if (image_out && image_len) image_out[0] = 0;
    if (!dladdr((void *)addr, &info) || info.dli_fbase == NULL) return -1;
    char pathbuf[512];
    const char *path = resolve_path(info.dli_fname, (uintptr_t)info.dli_fbase, pathbuf, sizeof pathbuf);
    const char *shown = path ? path : info.dli_fname;
    if (image_out && image_len && shown) { strncpy(image_out, shown, image_len - 1); image_out[image_len - 1] = 0; }
    pthread_mutex_lock(&images_lock);
    image *im = images;
    while (im && im->base != (uintptr_t)info.dli_fbase) im = im->next;
    if (!im && path) {
        im = load_image(path, (uintptr_t)info.dli_fbase);
        if (im) im->base = (uintptr_t)info.dli_fbase;
        if (im) { im->next = images; images = im; }
    }
    int found = 0;
    if (im && im->count) {
        uintptr_t v = addr - im->bias;
        size_t lo = 0, hi = im->count;
        while (lo < hi) { size_t mid = (lo + hi) / 2; if (im->syms[mid].value <= v) lo = mid + 1; else hi = mid; }
        if (lo > 0) {
            const sym *s = &im->syms[lo - 1];
            if (s->size == 0 || v < s->value + s->size) {
                if (len) { strncpy(name, im->strtab + s->name, len - 1); name[len - 1] = 0; }
                *offset = v - s->value;
                found = 1;
            }
        }
    }
    pthread_mutex_unlock(&images_lock);
    if (!found && info.dli_sname) {
        if (len) { strncpy(name, info.dli_sname, len - 1); name[len - 1] = 0; }
        *offset = addr - (uintptr_t)info.dli_saddr;
        found = 1;
    }
    if (!found) *offset = addr - (uintptr_t)info.dli_fbase;
    return found ? 1 : 0;
}
