import Dispatch
import FoundationEssentials
import Synchronization

/// What every batcher of one ``Batchman`` shares: batch ids, events, the logger, and the
/// instance-wide pending count with the gate that blocked producers wait at.
@usableFromInline final class BatchmanShared: Sendable {
    @usableFromInline let batchIds: BatchIdGenerator
    @usableFromInline let events = EventBroadcaster()
    @usableFromInline let logger: BatchmanLogger
    @usableFromInline let capacity = CapacityGate()
    /// Jobs held by every batcher together, for `maxPendingTotal`.
    let pendingTotal = Atomic<Int>(0)
    @usableFromInline let maxPendingTotal: Int?
    /// Jobs refused at submission, by reason.
    @usableFromInline let refusals = Mutex<[FailureReason: Int]>([:])

    @usableFromInline init(logger: BatchmanLogger, maxPendingTotal: Int?, batchIds: BatchIdGenerator) {
        self.batchIds = batchIds
        self.logger = logger
        self.maxPendingTotal = maxPendingTotal
    }

    /// Takes room for one job in the instance; false when `maxPendingTotal` is reached.
    @usableFromInline func reserve() -> Bool {
        let total = pendingTotal.add(1, ordering: .relaxed).newValue
        guard let maxPendingTotal, total > maxPendingTotal else { return true }
        pendingTotal.subtract(1, ordering: .relaxed)
        return false
    }

    /// Takes room for `count` jobs at once, or none of it.
    @usableFromInline func reserve(count: Int) -> Bool {
        let total = pendingTotal.add(count, ordering: .relaxed).newValue
        guard let maxPendingTotal, total > maxPendingTotal else { return true }
        pendingTotal.subtract(count, ordering: .relaxed)
        return false
    }

    /// Gives back room taken for `count` jobs that were not accepted after all.
    @usableFromInline func unreserve(count: Int) {
        if count > 0 { pendingTotal.subtract(count, ordering: .relaxed) }
    }

    /// Gives back room taken by ``reserve()`` for a job that was not accepted after all. It
    /// does not open the gate: the room existed before, and opening it here would wake the
    /// caller itself into a busy loop.
    @usableFromInline func unreserve() {
        pendingTotal.subtract(1, ordering: .relaxed)
    }

    /// `count` jobs are no longer held: wake producers waiting for room.
    @usableFromInline func released(_ count: Int) {
        pendingTotal.subtract(count, ordering: .relaxed)
        capacity.open()
    }

    /// Answers a refused job's handler at once.
    @usableFromInline func refuse<Payload: Sendable, Output: Sendable>(
        _ job: Job<Payload>, reason: FailureReason, message: String, handler: ResultHandler<Payload, Output>, debug: Bool
    ) {
        if debug { logger.log(.debug, "key \"\(job.key)\": refused job \"\(job.id)\": \(message)") }
        refusals.withLock { $0[reason, default: 0] += 1 }
        events.emit(.jobRejected(key: job.key, id: job.id, reason: reason))
        handler.deliverNow(.failure(job, reason: reason, message: message, at: Date()), logger: logger)
    }
}
