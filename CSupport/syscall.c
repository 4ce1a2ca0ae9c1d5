/* errno-safe system call wrappers (see csup_syscall.h). Every function reads
 * errno right after its call, in the same non-inline function. */
#include "csup_config.h"
#include "include/csup_syscall.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RET(expr) do { int64_t _v = (int64_t)(expr); \
    return (csup_result){ .value = _v, .err = _v < 0 ? errno : 0 }; } while (0)

CSUP_NOINLINE csup_result csup_sys_read(int fd, void *buf, size_t n) { RET(read(fd, buf, n)); }
CSUP_NOINLINE csup_result csup_sys_write(int fd, const void *buf, size_t n) { RET(write(fd, buf, n)); }
CSUP_NOINLINE csup_result csup_sys_pread(int fd, void *buf, size_t n, int64_t off) { RET(pread(fd, buf, n, off)); }
CSUP_NOINLINE csup_result csup_sys_pwrite(int fd, const void *buf, size_t n, int64_t off) { RET(pwrite(fd, buf, n, off)); }
CSUP_NOINLINE csup_result csup_sys_pread_nowait(int fd, void *buf, size_t n, int64_t off) {
#ifdef RWF_NOWAIT
    struct iovec iov = { .iov_base = buf, .iov_len = n };
    RET(preadv2(fd, &iov, 1, off, RWF_NOWAIT));
#else
    (void)fd; (void)buf; (void)n; (void)off;
    return (csup_result){ .value = -1, .err = EOPNOTSUPP };
#endif
}
static csup_result rw_nowait(int fd, void *buf, size_t n, int64_t off, int write) {
#ifdef RWF_NOWAIT
    struct iovec iov = { .iov_base = buf, .iov_len = n };
    int64_t v = write ? pwritev2(fd, &iov, 1, off, RWF_NOWAIT) : preadv2(fd, &iov, 1, off, RWF_NOWAIT);
    return (csup_result){ .value = v, .err = v < 0 ? errno : 0 };
#else
    (void)fd; (void)buf; (void)n; (void)off; (void)write;
    return (csup_result){ .value = -1, .err = EOPNOTSUPP };
#endif
}
CSUP_NOINLINE csup_result csup_sys_read_nowait(int fd, void *buf, size_t n) { return rw_nowait(fd, buf, n, -1, 0); }
CSUP_NOINLINE csup_result csup_sys_write_nowait(int fd, const void *buf, size_t n) { return rw_nowait(fd, (void *)buf, n, -1, 1); }
CSUP_NOINLINE csup_result csup_sys_pwrite_nowait(int fd, const void *buf, size_t n, int64_t off) { return rw_nowait(fd, (void *)buf, n, off, 1); }
CSUP_NOINLINE csup_result csup_sys_readv(int fd, const void *iov, int cnt, int64_t off) {
    RET(off < 0 ? readv(fd, iov, cnt) : preadv(fd, iov, cnt, off));
}
CSUP_NOINLINE csup_result csup_sys_writev(int fd, const void *iov, int cnt, int64_t off) {
    RET(off < 0 ? writev(fd, iov, cnt) : pwritev(fd, iov, cnt, off));
}
CSUP_NOINLINE csup_result csup_sys_readv_nowait(int fd, const void *iov, int cnt, int64_t off) {
#ifdef RWF_NOWAIT
    RET(preadv2(fd, iov, cnt, off, RWF_NOWAIT));
#else
    (void)fd; (void)iov; (void)cnt; (void)off;
    return (csup_result){ .value = -1, .err = EOPNOTSUPP };
#endif
}
CSUP_NOINLINE csup_result csup_sys_writev_nowait(int fd, const void *iov, int cnt, int64_t off) {
#ifdef RWF_NOWAIT
    RET(pwritev2(fd, iov, cnt, off, RWF_NOWAIT));
#else
    (void)fd; (void)iov; (void)cnt; (void)off;
    return (csup_result){ .value = -1, .err = EOPNOTSUPP };
#endif
}
CSUP_NOINLINE csup_result csup_sys_recv(int fd, void *buf, size_t n, int flags) { RET(recv(fd, buf, n, flags)); }
CSUP_NOINLINE csup_result csup_sys_send(int fd, const void *buf, size_t n, int flags) { RET(send(fd, buf, n, flags | MSG_NOSIGNAL)); }
CSUP_NOINLINE csup_result csup_sys_accept(int fd, int flags) { RET(accept4(fd, NULL, NULL, flags)); }
CSUP_NOINLINE csup_result csup_sys_connect(int fd, const void *addr, uint32_t len) { RET(connect(fd, addr, len)); }
CSUP_NOINLINE csup_result csup_sys_poll(void *fds, uint64_t nfds, int timeout_ms) { RET(poll(fds, nfds, timeout_ms)); }
CSUP_NOINLINE csup_result csup_sys_open(const char *path, int flags, uint32_t mode) { RET(open(path, flags | O_CLOEXEC, mode)); }
CSUP_NOINLINE csup_result csup_sys_close(int fd) { RET(close(fd)); }
CSUP_NOINLINE csup_result csup_sys_fsync(int fd) { RET(fsync(fd)); }
CSUP_NOINLINE csup_result csup_sys_fdatasync(int fd) { RET(fdatasync(fd)); }
CSUP_NOINLINE csup_result csup_sys_nanosleep(int64_t ns) {
    struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
    RET(nanosleep(&ts, NULL));
}
CSUP_NOINLINE csup_result csup_sys_pipe(int fds[2], int flags) { RET(pipe2(fds, flags | O_CLOEXEC)); }
CSUP_NOINLINE csup_result csup_sys_socketpair(int domain, int type, int fds[2]) { RET(socketpair(domain, type | SOCK_CLOEXEC, 0, fds)); }
CSUP_NOINLINE csup_result csup_sys_fcntl_getfl(int fd) { RET(fcntl(fd, F_GETFL)); }
CSUP_NOINLINE csup_result csup_sys_fcntl_setfl(int fd, int flags) { RET(fcntl(fd, F_SETFL, flags)); }
CSUP_NOINLINE csup_result csup_sys_socket_error(int fd) {
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return (csup_result){ .value = -1, .err = errno };
    return soerr ? (csup_result){ .value = -1, .err = soerr } : (csup_result){ .value = 0, .err = 0 };
}

const char *csup_errno_name(int err) { return strerrorname_np(err); }

CSUP_NOINLINE int csup_errno_now(void) { return errno; }
CSUP_NOINLINE void csup_errno_set(int value) { errno = value; }
CSUP_NOINLINE int64_t csup_gettid(void) { return (int64_t)syscall(SYS_gettid); }
int csup_signal_thread(int32_t tid, int sig) {
    return syscall(SYS_tgkill, (long)getpid(), (long)tid, (long)sig) == 0 ? 0 : errno;
}

int64_t csup_process_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int64_t csup_self_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int64_t csup_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t csup_coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int csup_const_EAGAIN(void) { return EAGAIN; }
int csup_const_EINTR(void) { return EINTR; }
int csup_const_EINPROGRESS(void) { return EINPROGRESS; }
int csup_const_O_NONBLOCK(void) { return O_NONBLOCK; }
int csup_const_MSG_DONTWAIT(void) { return MSG_DONTWAIT; }
int csup_const_MSG_NOSIGNAL(void) { return MSG_NOSIGNAL; }
int csup_const_SOCK_NONBLOCK(void) { return SOCK_NONBLOCK; }
int csup_const_SOCK_CLOEXEC(void) { return SOCK_CLOEXEC; }
int csup_const_POLLIN(void) { return POLLIN; }
int csup_const_POLLOUT(void) { return POLLOUT; }
int csup_const_EOPNOTSUPP(void) { return EOPNOTSUPP; }
int csup_const_ENOSYS(void) { return ENOSYS; }
int csup_const_EINVAL(void) { return EINVAL; }
