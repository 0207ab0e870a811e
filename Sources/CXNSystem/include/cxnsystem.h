#ifndef CXNSYSTEM_H
#define CXNSYSTEM_H

#include <sys/types.h>

/// Starts `file` with posix_spawn(p) in its own process group (or session), signals reset
/// to default and an empty mask, with the given fds as 0, 1 and 2 and an optional cwd.
/// Returns 0 and sets *pid, or an errno value. `search_path` selects posix_spawnp.
int xn_spawn(const char *file, char *const argv[], char *const envp[], const char *cwd,
             int stdin_fd, int stdout_fd, int stderr_fd, int new_session, int search_path,
             pid_t *pid);

/// pidfd_open(2): an fd that polls readable when the process exits; -1 with errno on failure.
int xn_pidfd_open(pid_t pid);

/// Creates a pipe with O_CLOEXEC on both ends; returns 0 or an errno value.
int xn_pipe_cloexec(int fds[2]);

/// Sets O_NONBLOCK on fd; returns 0 or an errno value.
int xn_set_nonblocking(int fd);

#endif
