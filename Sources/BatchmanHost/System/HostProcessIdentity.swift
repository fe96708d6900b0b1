import Glibc

/// Which process a user sees as the host: the one to signal, the one a spool's lock names.
enum HostProcessIdentity {
    /// The supervising parent's pid (``Supervisor``), when the host runs under one; set once at start.
    nonisolated(unsafe) static var supervisor: pid_t?

    /// The pid to signal: the supervising parent's, which passes signals on, else this process's.
    static var visiblePID: pid_t { supervisor ?? getpid() }
}
