import Batchman
import BatchmanTesting
import Dispatch
import Foundation
import Synchronization

typealias TestBatchman = Batchman<String, String, ManualClock>
typealias StringResult = JobResult<String, String>

/// A logger that keeps what it is given, for asserting on diagnostics.
final class LogRecorder: Sendable {
    let entries = RecordLog<(level: BatchmanLogger.Level, message: String)>()

    var logger: BatchmanLogger {
        BatchmanLogger { [entries] level, message in entries.append((level, message)) }
    }

    func messages(at level: BatchmanLogger.Level) -> [String] {
        entries.elements.filter { $0.level == level }.map(\.message)
    }
}

/// A Batchman on a manual clock with one processor for every key.
func makeBatchman(
    _ config: BatchmanConfig = BatchmanConfig(), clock: ManualClock = ManualClock(),
    logger: BatchmanLogger = .silent, processor: TestProcessor<String, String>
) throws -> TestBatchman {
    try TestBatchman(config: config, clock: clock, logger: logger) { _ in processor }
}

/// Waits until the flush scheduler has armed its timer, and returns the deadline it sleeps until.
func armedDeadline(_ clock: ManualClock) async -> ManualClock.Instant? {
    await clock.waitForSleepers()
    return clock.sleeperDeadlines.first
}

/// Runs the jobs of tasks that prefer it on a thread of its own, off the cooperative pool (two
/// threads on two cores): a test that does seconds of work in one go runs there, so that the
/// other tests of the run, waiting for the pool, are not held up by it.
final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` is behind its lock; the thread is the only one to run them.
    private let jobs = Mutex<[UnownedJob]>([])
    private let available = DispatchSemaphore(value: 0)

    init() {
        Thread.detachNewThread { [self] in
            while true {
                available.wait()
                guard let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        available.signal()
    }
}
