/* Linux calls the host needs that Swift's Glibc module does not show. */
#ifndef BATCHMAN_SYSTEM_H
#define BATCHMAN_SYSTEM_H

/* prctl(PR_SET_PDEATHSIG, signal): the calling process gets `signal` when its parent dies.
 * Returns 0, or -1 with errno set. */
int bm_set_parent_death_signal(int signal);

/* pipe2(fds, O_CLOEXEC): a pipe whose ends are not inherited by programs the host starts. */
int bm_pipe_cloexec(int fds[2]);

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: a client socket that never leaks into a worker
/// process. (accept4 needs _GNU_SOURCE, which Swift's Glibc module does not define.)
int bm_accept_nonblocking(int listener);

/* sigwaitinfo(set) (`set` is a sigset_t; void here, so that this header stays free of system
 * headers and the types they declare stay Glibc's), EINTR retried: the signal taken, and who sent it: `code` is si_code
 * (SI_USER for kill, SI_QUEUE for sigqueue, SI_TKILL for tgkill, SI_KERNEL and others for the
 * kernel's own, a terminal's Ctrl-C among them), `pid` si_pid, `value` the sigqueue value (0
 * otherwise). -1 with errno set on failure. */
int bm_sigwaitinfo(const void *set, int *code, int *pid, int *value);

/* signalfd(-1, set, SFD_CLOEXEC): the signals in `set` (a sigset_t, blocked in every thread)
 * become readable from a descriptor. Unlike sigwaitinfo, waiting on it leaves them blocked:
 * the Swift runtime's crash handler, which pauses each thread with the first of SIGUSR1, SIGUSR2
 * and SIGPROF that the thread's mask lets through, then sends SIGPROF, which pauses it, not a
 * signal the wait would swallow while the crash handler waits 2 s for it, 16 times over.
 * -1 with errno set. */
int bm_signalfd(const void *set);

/* One signal read from a bm_signalfd descriptor, EINTR retried, as bm_sigwaitinfo reports it. */
int bm_signalfd_read(int fd, int *code, int *pid, int *value);

/* prctl(PR_SET_NAME): the calling thread's name, as `top -H`, /proc and debuggers show it (the
 * first 15 bytes). */
int bm_set_thread_name(const char *name);

/* sigqueue(pid, signal, value): a signal that carries a value (who sent it first, when a parent
 * passes a signal on). */
int bm_sigqueue(int pid, int signal, int value);

/* pidfd_open(pid, 0): a descriptor that becomes readable when process `pid` ends (Linux 5.3). */
int bm_pidfd_open(int pid);

/* memfd_create(name, MFD_CLOEXEC): an anonymous file in memory, for memory shared with a worker. */
int bm_memfd(const char *name);

/* A memfd of `size` bytes sealed against shrinking (F_SEAL_SHRINK, then F_SEAL_SEAL): whoever
 * else maps it (a worker process) can grow it but never cut it short, so a mapping of its first
 * `size` bytes, or of any size it was seen to have, never faults (SIGBUS). -1 with errno set. */
int bm_memfd_growing_only(const char *name, long long size);

/* Bytes malloc has handed out and not had back (mallinfo2: uordblks + hblkhd), for measuring
 * memory per object exactly, where resident size depends on what was freed before. */
unsigned long long bm_heap_bytes_in_use(void);

/* CRC-32C of `length` bytes at `bytes`, continuing from `crc` (0 to start): the SSE 4.2 crc32
 * instruction where the processor has it, a table otherwise. For spool records and ledgers. */
unsigned int bm_crc32c(const void *bytes, unsigned long length, unsigned int crc);

/* Atomic operations on memory shared with another process (a supervising parent reads what the
 * host writes there, even after the host has crashed): relaxed add, acquire load, release store. */
unsigned long long bm_atomic_add(unsigned long long *value, unsigned long long amount);
unsigned long long bm_atomic_load(const unsigned long long *value);
void bm_atomic_store(unsigned long long *value, unsigned long long new_value);

#endif
