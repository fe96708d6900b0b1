import Glibc

/// Standard input, output and error as the process found them.
///
/// A process started with one of them closed (`batchman run <&-`) would have the next
/// descriptor it opens take that number: the runtime's own epoll descriptor became "standard
/// input" and the host waited on it for ever. So a closed one is filled with `/dev/null` first
/// thing, and the host is told which were closed.
enum StandardDescriptors {
    /// Which of 0, 1, 2 were closed at start; set once by ``fillClosed()``.
    nonisolated(unsafe) private(set) static var closedAtStart: Set<Int32> = []

    /// Which were closed when the supervising parent started: it filled them before it started
    /// the host, which would see `/dev/null` and not know.
    static func markClosedAtStart(_ descriptors: [Int32]) {
        closedAtStart.formUnion(descriptors)
    }

    /// Opens `/dev/null` on every closed standard descriptor. Call before anything opens a file.
    static func fillClosed() {
        for descriptor in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            closedAtStart.insert(descriptor)
            // open returns the lowest free number: this one, since the lower ones are open now.
            let opened = open("/dev/null", O_RDWR)
            if opened != descriptor, opened >= 0 { close(opened) }
        }
    }
}
