import Batchman
import Dispatch
import Synchronization

/// A fixed set of dedicated threads taking work from one queue, in order.
///
/// The host runs every plugin call here (`workers`), and every plugin `create`/`destroy` on a
/// pool of one thread (the control thread), so the cooperative pool never blocks on C code.
final class WorkerPool: Sendable {
    /// Work in order; nil tells one thread to stop.
    private let queue = Mutex(FIFOQueue<(@Sendable () -> Void)?>())
    private let available = DispatchSemaphore(value: 0)
    let threadCount: Int

    init(name: String, threads: Int) {
        precondition(threads > 0, "a worker pool needs at least one thread")
        threadCount = threads
        for index in 0..<threads {
            DedicatedThread.start(name: threads == 1 ? name : "\(name)-\(index)") { [self] in
                runWorker()
            }
        }
    }

    /// Runs `work` on one of the pool's threads.
    func submit(_ work: @escaping @Sendable () -> Void) {
        queue.withLock { $0.append(work) }
        available.signal()
    }

    /// Runs `work` on the pool and suspends (without blocking a thread) until it returns.
    func run<Result: Sendable>(_ work: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: work()) }
        }
    }

    /// Runs `work` on the pool and blocks the calling thread until it returns. Only for callers
    /// that are themselves dedicated threads, or synchronous start-up code.
    func runAndWait<Result: Sendable>(_ work: @escaping @Sendable () -> Result) -> Result {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result?>(nil)
        submit {
            let value = work()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    /// Lets every thread finish the work queued so far, then end.
    func stop() {
        for _ in 0..<threadCount {
            queue.withLock { $0.append(nil) }
            available.signal()
        }
    }

    private func runWorker() {
        while true {
            available.wait()
            guard let work = queue.withLock({ $0.popFirst() }) ?? nil else { return }
            work()
        }
    }
}
