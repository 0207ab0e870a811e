#ifndef CXNSYSTEM_H
#define CXNSYSTEM_H

#include <sys/types.h>

/// Starts `file` with posix_spawn(p) in its own process group (or session), signals reset
/// to default and an empty mask, with the given fds as 0, 1 and 2 and an optional cwd.
/// Returns 0 and sets *pid, or an errno value. `search_path` selects posix_spawnp.
#include <stddef.h>
#include <sys/resource.h>

/// The RLIMIT_* resources, as plain constants (glibc's are macros of an enum Swift cannot see).
static const int xn_rlimit_cpu = RLIMIT_CPU;
static const int xn_rlimit_as = RLIMIT_AS;
static const int xn_rlimit_nofile = RLIMIT_NOFILE;
static const int xn_rlimit_nproc = RLIMIT_NPROC;

/// Spawns `file` in a new process group, stdio on the given fds; or, when `tty_path` is set, in a
/// new session with that terminal as its controlling terminal and stdio.
int xn_spawn(const char *file, char *const argv[], char *const envp[], const char *cwd,
             int stdin_fd, int stdout_fd, int stderr_fd, const char *tty_path, int search_path,
             pid_t *pid);

/// A resource limit (RLIMIT_*) set, soft and hard, in a job before it starts.
typedef struct {
    int resource;
    unsigned long value;
} xn_limit;

/// Like `xn_spawn` (stdin_fd, stdout_fd, stderr_fd or tty_path), and before the program starts it
/// also sets `limits` and, with `set_ids`, becomes `uid`/`gid` with exactly `groups` as its
/// supplementary groups, and first of all joins the control groups whose `cgroup.procs` files
/// `cgroup_fds` are open for writing. Only raw system calls run between vfork and exec.
int xn_spawn_as(const char *file, char *const argv[], char *const envp[], const char *cwd,
                int stdin_fd, int stdout_fd, int stderr_fd, const char *tty_path,
                int set_ids, uid_t uid, gid_t gid, const gid_t *groups, int group_count,
                const xn_limit *limits, int limit_count, const int *cgroup_fds, int cgroup_count,
                pid_t *pid);

/// Opens a pseudo-terminal of the given size: its master (close-on-exec) and the path of its slave.
int xn_open_terminal(unsigned short rows, unsigned short cols, int *master, char *name, size_t length);

/// Sets a terminal's size; the kernel sends SIGWINCH to its foreground process group.
int xn_resize_terminal(int master, unsigned short rows, unsigned short cols);

/// The size of the terminal on `fd`.
int xn_terminal_size(int fd, unsigned short *rows, unsigned short *cols);

/// A non-blocking, close-on-exec eventfd for waking a poll loop.
int xn_eventfd(void);

/// pidfd_open(2): an fd that polls readable when the process exits; -1 with errno on failure.
int xn_pidfd_open(pid_t pid);

/// Creates a pipe with O_CLOEXEC on both ends; returns 0 or an errno value.
int xn_pipe_cloexec(int fds[2]);

/// Makes a pipe hold `bytes` (F_SETPIPE_SZ); returns 0 or an errno value.
int xn_pipe_grow(int fd, int bytes);

/// Sets O_NONBLOCK on fd; returns 0 or an errno value.
int xn_set_nonblocking(int fd);

/// Fixes glibc's heap thresholds (mallopt): allocations of `mmap_threshold` bytes and more get
/// mappings of their own, and free memory beyond `trim_threshold` at a heap's top goes back to the
/// system. Fixing them also stops glibc from raising them as it runs. Returns 1 on success.
int xn_tune_heap(size_t mmap_threshold, size_t trim_threshold);

/// epoll_create1 with close-on-exec: -1 with errno on failure.
int xn_epoll_create(void);

/// Interest in what can happen to a descriptor, as epoll's flags (Swift cannot see glibc's enum).
static const unsigned int xn_epoll_in = 0x001;
static const unsigned int xn_epoll_out = 0x004;

/// epoll_ctl: `operation` 0 adds `fd`, 1 changes its interest, 2 removes it; `token` comes back
/// with its events. Returns 0 or an errno value.
int xn_epoll_control(int epfd, int operation, int fd, unsigned int events, unsigned long long token);

/// epoll_wait into two plain arrays (at most 256 entries): the count, or -1 with errno.
int xn_epoll_wait(int epfd, unsigned long long *tokens, unsigned int *events, int capacity, int timeout_ms);

#endif
