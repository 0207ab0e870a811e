#define _GNU_SOURCE
#include "cxnsystem.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <grp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef POSIX_SPAWN_SETSID
#define POSIX_SPAWN_SETSID 0x80
#endif

int xn_spawn(const char *file, char *const argv[], char *const envp[], const char *cwd,
             int stdin_fd, int stdout_fd, int stderr_fd, const char *tty_path, int search_path,
             pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    if (cwd != NULL && (rc = posix_spawn_file_actions_addchdir_np(&actions, cwd)) != 0) goto done;
    if (tty_path != NULL) {
        // Opened by path (not inherited) and without O_NOCTTY after setsid: the terminal becomes
        // the child's controlling terminal, so /dev/tty, job control and Ctrl-C work inside it.
        if ((rc = posix_spawn_file_actions_addopen(&actions, 0, tty_path, O_RDWR, 0)) != 0) goto done;
        if ((rc = posix_spawn_file_actions_adddup2(&actions, 0, 1)) != 0) goto done;
        if ((rc = posix_spawn_file_actions_adddup2(&actions, 0, 2)) != 0) goto done;
    } else {
        if ((rc = posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0)) != 0) goto done;
        if ((rc = posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1)) != 0) goto done;
        if ((rc = posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2)) != 0) goto done;
    }
    // Nothing else of the runner's crosses into a job: not its sockets, not its database, not
    // other jobs' pipes (which would keep their readers from seeing EOF).
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) != 0) goto done;

    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    int reset[] = {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2,
                   SIGALRM, SIGTTIN, SIGTTOU, SIGTSTP, SIGWINCH, SIGXFSZ};
    for (unsigned i = 0; i < sizeof(reset) / sizeof(reset[0]); i++) sigaddset(&defaults, reset[i]);
    if ((rc = posix_spawnattr_setsigmask(&attr, &empty)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &defaults)) != 0) goto done;
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (tty_path != NULL) {
        flags |= POSIX_SPAWN_SETSID;
    } else {
        flags |= POSIX_SPAWN_SETPGROUP;
        if ((rc = posix_spawnattr_setpgroup(&attr, 0)) != 0) goto done;
    }
    if ((rc = posix_spawnattr_setflags(&attr, flags)) != 0) goto done;

    if (search_path) {
        rc = posix_spawnp(pid, file, &actions, &attr, argv, envp);
    } else {
        rc = posix_spawn(pid, file, &actions, &attr, argv, envp);
    }
done:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int xn_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int xn_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : errno;
}

int xn_pipe_grow(int fd, int bytes) {
    return fcntl(fd, F_SETPIPE_SZ, bytes) < 0 ? errno : 0;
}

int xn_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return errno;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 ? 0 : errno;
}

int xn_open_terminal(unsigned short rows, unsigned short cols, int *master, char *name, size_t length) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return errno;
    if (grantpt(fd) != 0 || unlockpt(fd) != 0 || ptsname_r(fd, name, length) != 0) {
        int saved = errno;
        close(fd);
        return saved;
    }
    struct winsize size = {.ws_row = rows, .ws_col = cols};
    if (ioctl(fd, TIOCSWINSZ, &size) != 0) {
        int saved = errno;
        close(fd);
        return saved;
    }
    *master = fd;
    return 0;
}

int xn_resize_terminal(int master, unsigned short rows, unsigned short cols) {
    struct winsize size = {.ws_row = rows, .ws_col = cols};
    return ioctl(master, TIOCSWINSZ, &size) == 0 ? 0 : errno;
}

int xn_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int xn_terminal_size(int fd, unsigned short *rows, unsigned short *cols) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) != 0) return errno;
    *rows = size.ws_row;
    *cols = size.ws_col;
    return 0;
}

int xn_spawn_as(const char *file, char *const argv[], char *const envp[], const char *cwd,
                int stdin_fd, int stdout_fd, int stderr_fd, const char *tty_path,
                int set_ids, uid_t uid, gid_t gid, const gid_t *groups, int group_count,
                const xn_limit *limits, int limit_count, const int *cgroup_fds, int cgroup_count,
                pid_t *pid) {
    // A bare name is looked up in the child, after the user switch, as execvp would: the job's
    // user must be able to reach the file. Looked up here as root, a file under a directory only
    // root can enter would be chosen and then refused, though one the user can run is next.
    char program[4096];
    int search = strchr(file, '/') == NULL;
    const char *path = NULL;
    if (search) {
        path = getenv("PATH");
        if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
    } else {
        if (strlen(file) >= sizeof program) return ENAMETOOLONG;
        strcpy(program, file);
    }
    size_t file_length = strlen(file);
    // For kernels without close_range (before 5.9): every descriptor below the soft limit, the
    // most this process could have opened while it stood.
    struct rlimit files;
    unsigned int highest_fd = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                                  ? (unsigned int)(files.rlim_cur > 1u << 20 ? 1u << 20 : files.rlim_cur)
                                  : 1u << 16;
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    volatile int child_error = 0;
    pid_t child = vfork();
    if (child == 0) {
        // The child: only system calls until exec; every handler back to the default first.
        for (int sig = 1; sig < NSIG; sig++) {
            struct sigaction action;
            if (sigaction(sig, NULL, &action) == 0 && action.sa_handler != SIG_IGN) {
                action.sa_handler = SIG_DFL;
                sigaction(sig, &action, NULL);
            }
        }
        signal(SIGPIPE, SIG_DFL);
        // Into the job's control groups before anything else, so all it ever starts is in them
        // ("0" moves the writer); as root, before the user switch takes the right to.
        for (int i = 0; i < cgroup_count; i++) {
            if (syscall(SYS_write, cgroup_fds[i], "0", (size_t)1) != 1) goto fail;
        }
        sigset_t none;
        sigemptyset(&none);
        if (tty_path != NULL) {
            if (setsid() < 0) goto fail;
            int fd = open(tty_path, O_RDWR);
            if (fd < 0) goto fail;
            if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) goto fail;
        } else {
            if (setpgid(0, 0) < 0) goto fail;
            if (dup2(stdin_fd, 0) < 0 || dup2(stdout_fd, 1) < 0 || dup2(stderr_fd, 2) < 0) goto fail;
        }
        if (cwd != NULL && chdir(cwd) < 0) goto fail;
        for (int i = 0; i < limit_count; i++) {
            struct rlimit limit = {.rlim_cur = limits[i].value, .rlim_max = limits[i].value};
            /* CPU: SIGXCPU at the limit (so the job's end names it), SIGKILL a second later. */
            if (limits[i].resource == RLIMIT_CPU) limit.rlim_max = limits[i].value + 1;
            if (setrlimit(limits[i].resource, &limit) < 0) goto fail;
        }
        if (set_ids) {
            // Raw system calls: glibc's setgroups/setgid/setuid make every thread of the process
            // switch too (a signal to each, then a wait), which a vfork child sharing the hub's
            // memory and threads must not do; the kernel calls change this process only.
            if (syscall(SYS_setgroups, (size_t)group_count, groups) < 0) goto fail;
            if (syscall(SYS_setresgid, gid, gid, gid) < 0) goto fail;
            if (syscall(SYS_setresuid, uid, uid, uid) < 0) goto fail;
        }
        if (syscall(SYS_close_range, 3u, ~0u, 0) < 0) {
            for (unsigned int fd = 3; fd < highest_fd; fd++) syscall(SYS_close, fd);
        }
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (!search) {
            execve(program, argv, envp);
            goto fail;
        }
        int denied = 0;
        for (const char *entry = path;;) {
            const char *end = strchr(entry, ':');
            size_t dir = end ? (size_t)(end - entry) : strlen(entry);
            if (dir + 1 + file_length < sizeof program) {
                size_t at = 0;
                if (dir > 0) {
                    memcpy(program, entry, dir);
                    program[dir] = '/';
                    at = dir + 1;
                }
                memcpy(program + at, file, file_length + 1);
                execve(program, argv, envp);
                switch (errno) {
                case EACCES: denied = 1; break;
                case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: break;
                default: goto fail;
                }
            }
            if (!end) break;
            entry = end + 1;
        }
        errno = denied ? EACCES : ENOENT;
    fail:
        child_error = errno;
        _exit(127);
    }
    int spawn_error = child < 0 ? errno : child_error;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (child > 0 && spawn_error != 0) {
        int status;
        waitpid(child, &status, 0);
    }
    if (spawn_error != 0) return spawn_error;
    *pid = child;
    return 0;
}
