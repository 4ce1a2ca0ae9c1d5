/*
 * errno-safe system call wrappers.
 *
 * glibc declares __errno_location() const, so compiled code may keep the
 * address of errno across a context switch and read another pthread's errno
 * after the context migrates. Each wrapper here makes the call and reads
 * errno in the same non-inline C function, and returns both by value.
 * A wrapper never retries: EINTR is returned like any other error, and the
 * caller decides.
 */
#ifndef CSUP_SYSCALL_H
#define CSUP_SYSCALL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct csup_result {
    int64_t value;  /* the call's result; -1 on failure */
    int err;        /* errno when value == -1, else 0 */
} csup_result;

csup_result csup_sys_read(int fd, void *buf, size_t count);
csup_result csup_sys_write(int fd, const void *buf, size_t count);
csup_result csup_sys_pread(int fd, void *buf, size_t count, int64_t offset);
csup_result csup_sys_pwrite(int fd, const void *buf, size_t count, int64_t offset);
/* preadv2 with RWF_NOWAIT: EAGAIN when the data is not in the page cache. */
csup_result csup_sys_pread_nowait(int fd, void *buf, size_t count, int64_t offset);
/* preadv2 / pwritev2 at the current file offset with RWF_NOWAIT. */
csup_result csup_sys_read_nowait(int fd, void *buf, size_t count);
csup_result csup_sys_write_nowait(int fd, const void *buf, size_t count);
csup_result csup_sys_pwrite_nowait(int fd, const void *buf, size_t count, int64_t offset);
/* readv/writev at `offset` (-1: the file position); the nowait forms use
 * RWF_NOWAIT (EAGAIN when they would block, EOPNOTSUPP where unsupported). */
csup_result csup_sys_readv(int fd, const void *iov, int iovcnt, int64_t offset);
csup_result csup_sys_writev(int fd, const void *iov, int iovcnt, int64_t offset);
csup_result csup_sys_readv_nowait(int fd, const void *iov, int iovcnt, int64_t offset);
csup_result csup_sys_writev_nowait(int fd, const void *iov, int iovcnt, int64_t offset);
csup_result csup_sys_recv(int fd, void *buf, size_t count, int flags);
csup_result csup_sys_send(int fd, const void *buf, size_t count, int flags);
csup_result csup_sys_accept(int fd, int flags);
csup_result csup_sys_connect(int fd, const void *addr, uint32_t addrlen);
csup_result csup_sys_poll(void *fds, uint64_t nfds, int timeout_ms);
csup_result csup_sys_open(const char *path, int flags, uint32_t mode);
csup_result csup_sys_close(int fd);
csup_result csup_sys_fsync(int fd);
csup_result csup_sys_fdatasync(int fd);
csup_result csup_sys_nanosleep(int64_t ns);
csup_result csup_sys_pipe(int fds[2], int flags);
csup_result csup_sys_socketpair(int domain, int type, int fds[2]);
csup_result csup_sys_fcntl_getfl(int fd);
csup_result csup_sys_fcntl_setfl(int fd, int flags);
/* getsockopt(SO_ERROR), for finishing a non-blocking connect. */
csup_result csup_sys_socket_error(int fd);

/* The symbolic name of an errno value ("EBADF"), or NULL when unknown
 * (glibc's strerrorname_np). For error messages. */
const char *csup_errno_name(int err);

/* errno of this thread, read now (for tests). */
int csup_errno_now(void);
void csup_errno_set(int value);

/* Thread id (gettid) of the calling pthread. */
int64_t csup_gettid(void);
/* tgkill(2) to a thread of this process (signal-storm tests); 0 or errno. */
int csup_signal_thread(int32_t tid, int sig);

/* CPU time of the process, in nanoseconds (CLOCK_PROCESS_CPUTIME_ID). */
int64_t csup_process_cpu_ns(void);
/* CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), in ns: a
 * system call, about 150-300 ns. */
int64_t csup_self_cpu_ns(void);
/* Monotonic clock, in nanoseconds. */
int64_t csup_monotonic_ns(void);
/* The coarse monotonic clock (CLOCK_MONOTONIC_COARSE: a few ns to read,
 * one scheduler tick of resolution), in nanoseconds. Same epoch as
 * csup_monotonic_ns. For diagnostics' "since when" stamps. */
int64_t csup_coarse_ns(void);

/* Common constants as functions (Swift cannot see some macros). */
int csup_const_EAGAIN(void);
int csup_const_EINTR(void);
int csup_const_EINPROGRESS(void);
int csup_const_O_NONBLOCK(void);
int csup_const_MSG_DONTWAIT(void);
int csup_const_MSG_NOSIGNAL(void);
int csup_const_SOCK_NONBLOCK(void);
int csup_const_SOCK_CLOEXEC(void);
int csup_const_POLLIN(void);
int csup_const_POLLOUT(void);
int csup_const_EOPNOTSUPP(void);
int csup_const_ENOSYS(void);
int csup_const_EINVAL(void);

#endif
