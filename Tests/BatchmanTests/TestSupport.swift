import Batchman
import BatchmanTesting
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
