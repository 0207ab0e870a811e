#include "cxnsystem.h"

#include <errno.h>
#include <sys/epoll.h>

// Thin wrappers: `struct epoll_event` is packed on x86-64, so Swift never touches it.

int xn_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int xn_epoll_control(int epfd, int operation, int fd, unsigned int events, unsigned long long token) {
    struct epoll_event event = {.events = events, .data = {.u64 = token}};
    int op = operation == 0 ? EPOLL_CTL_ADD : operation == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    return epoll_ctl(epfd, op, fd, &event) == 0 ? 0 : errno;
}

int xn_epoll_wait(int epfd, unsigned long long *tokens, unsigned int *events, int capacity, int timeout_ms) {
    struct epoll_event ready[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epfd, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}
