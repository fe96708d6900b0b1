import CBatchmanSystem
import Glibc

/// Starts OS threads of our own, for blocking work that must never run on Swift's cooperative
/// pool (which has only as many threads as cores): plugin calls, blocking reads and writes,
/// sigwait.
enum DedicatedThread {
    private final class Body {
        let name: String
        let run: () -> Void
        init(_ name: String, _ run: @escaping () -> Void) { (self.name, self.run) = (name, run) }
    }

    /// Starts a detached thread running `body`; `name` says what it is for, in error messages and
    /// as the thread's name (`top -H`, /proc/<pid>/task/<tid>/comm: the first 15 bytes).
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(Body(name, body)).toOpaque()
        // pthread_attr_init initialises the attributes, as in C.
        let attributes = UnsafeMutablePointer<pthread_attr_t>.allocate(capacity: 1)
        pthread_attr_init(attributes)
        defer {
            pthread_attr_destroy(attributes)
            attributes.deallocate()
        }
        pthread_attr_setdetachstate(attributes, Int32(PTHREAD_CREATE_DETACHED))
        // Plugins may run language runtimes that expect a generous stack (Go, deep recursion).
        pthread_attr_setstacksize(attributes, 8 << 20)
        var thread = pthread_t()
        let status = pthread_create(&thread, attributes, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            _ = bm_set_thread_name(body.name)
            body.run()
            return nil
        }, context)
        precondition(status == 0, "pthread_create failed with \(status): cannot start thread \(name)")
    }
}
