#define _GNU_SOURCE
#include "batchman_system.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <errno.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/signalfd.h>

int bm_set_parent_death_signal(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0UL, 0UL, 0UL);
}

int bm_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int bm_accept_nonblocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int bm_sigwaitinfo(const void *set, int *code, int *pid, int *value) {
    siginfo_t info;
    int signal;
    do {
        signal = sigwaitinfo((const sigset_t *)set, &info);
    } while (signal < 0 && errno == EINTR);
    if (signal < 0) return -1;
    *code = info.si_code;
    *pid = (int)info.si_pid;
    *value = info.si_code == SI_QUEUE ? info.si_value.sival_int : 0;
    return signal;
}

int bm_signalfd(const void *set) {
    return signalfd(-1, (const sigset_t *)set, SFD_CLOEXEC);
}

int bm_signalfd_read(int fd, int *code, int *pid, int *value) {
    struct signalfd_siginfo info;
    ssize_t got;
    do {
        got = read(fd, &info, sizeof info);
    } while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof info) return -1;
    *code = info.ssi_code;
    *pid = (int)info.ssi_pid;
    *value = info.ssi_code == SI_QUEUE ? info.ssi_int : 0;
    return (int)info.ssi_signo;
}

int bm_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

int bm_sigqueue(int pid, int signal, int value) {
    union sigval carried;
    carried.sival_int = value;
    return sigqueue(pid, signal, carried);
}

int bm_pidfd_open(int pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int bm_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int bm_memfd_growing_only(const char *name, long long size) {
    int descriptor = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (descriptor < 0) return -1;
    if (ftruncate(descriptor, size) != 0 || fcntl(descriptor, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
        close(descriptor);
        return -1;
    }
    return descriptor;
}

unsigned long long bm_heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (unsigned long long)info.uordblks + (unsigned long long)info.hblkhd;
}

/* CRC-32C, reflected polynomial 0x82F63B78. */
static unsigned int crc32c_table(const unsigned char *bytes, unsigned long length, unsigned int crc) {
    static unsigned int table[256];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (unsigned int index = 0; index < 256; index++) {
            unsigned int value = index;
            for (int bit = 0; bit < 8; bit++) value = value & 1 ? (value >> 1) ^ 0x82F63B78U : value >> 1;
            table[index] = value;
        }
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    for (unsigned long index = 0; index < length; index++) crc = table[(crc ^ bytes[index]) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <string.h>
__attribute__((target("sse4.2")))
static unsigned int crc32c_hardware(const unsigned char *bytes, unsigned long length, unsigned int crc) {
    unsigned long long wide = crc;
    while (length >= 8) {
        unsigned long long word;
        memcpy(&word, bytes, 8);
        wide = __builtin_ia32_crc32di(wide, word);
        bytes += 8;
        length -= 8;
    }
    crc = (unsigned int)wide;
    while (length > 0) {
        crc = __builtin_ia32_crc32qi(crc, *bytes++);
        length--;
    }
    return crc;
}
#endif

unsigned int bm_crc32c(const void *bytes, unsigned long length, unsigned int crc) {
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc32c_hardware(bytes, length, crc);
#endif
    return ~crc32c_table(bytes, length, crc);
}

unsigned long long bm_atomic_add(unsigned long long *value, unsigned long long amount) {
    return __atomic_add_fetch(value, amount, __ATOMIC_RELAXED);
}

unsigned long long bm_atomic_load(const unsigned long long *value) {
    return __atomic_load_n(value, __ATOMIC_ACQUIRE);
}

void bm_atomic_store(unsigned long long *value, unsigned long long new_value) {
    __atomic_store_n(value, new_value, __ATOMIC_RELEASE);
}
