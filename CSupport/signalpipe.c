/* See csup_signalpipe.h. */
#include "csup_signalpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_SIGNAL 65

/* Write ends per signal (0: none). Written under `lock` before the handler
 * is installed; the handler reads them (an int store then a sigaction
 * call, which is a system call: the kernel orders them). */
static int write_end[MAX_SIGNAL];
static int read_end[MAX_SIGNAL];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int signo) {
    int saved = errno;
    if (signo > 0 && signo < MAX_SIGNAL && write_end[signo] > 0) {
        char b = 1;
        ssize_t r = write(write_end[signo], &b, 1);
        (void)r;
    }
    errno = saved;
}

int csup_signal_pipe_install(int signo) {
    if (signo <= 0 || signo >= MAX_SIGNAL || signo == SIGKILL || signo == SIGSTOP) return -EINVAL;
    pthread_mutex_lock(&lock);
    if (read_end[signo] > 0) { int fd = read_end[signo]; pthread_mutex_unlock(&lock); return fd; }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) { int e = errno; pthread_mutex_unlock(&lock); return -e; }
    fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
    write_end[signo] = p[1];
    read_end[signo] = p[0];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, NULL) != 0) {
        int e = errno;
        close(p[0]); close(p[1]);
        write_end[signo] = 0; read_end[signo] = 0;
        pthread_mutex_unlock(&lock);
        return -e;
    }
    pthread_mutex_unlock(&lock);
    return p[0];
}

int csup_signal_number(const char *name) {
    if (name == NULL || *name == 0) return -1;
    char *end;
    long n = strtol(name, &end, 10);
    if (*end == 0) return n > 0 && n < MAX_SIGNAL ? (int)n : -1;
    if (strncasecmp(name, "SIG", 3) == 0) name += 3;
    static const struct { const char *n; int s; } table[] = {
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}, {"HUP", SIGHUP},
        {"INFO", SIGPWR}, {"PWR", SIGPWR}, {"WINCH", SIGWINCH}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(name, table[i].n) == 0) return table[i].s;
    return -1;
}
