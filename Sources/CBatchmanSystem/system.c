#define _GNU_SOURCE
#include "batchman_system.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/prctl.h>

int bm_set_parent_death_signal(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0UL, 0UL, 0UL);
}

int bm_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int bm_pidfd_open(int pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int bm_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

unsigned long long bm_heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (unsigned long long)info.uordblks + (unsigned long long)info.hblkhd;
}
