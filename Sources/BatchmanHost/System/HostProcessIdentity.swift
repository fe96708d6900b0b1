import Glibc

/// Which process a user sees as the host: the one to signal, the one a spool's lock names.
enum HostProcessIdentity {
    /// This process's pid.
    static var visiblePID: pid_t { getpid() }
}
