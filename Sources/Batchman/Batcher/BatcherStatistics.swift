/// Counters of one key (or, summed, of a whole ``Batchman``) since it started.
public struct BatcherStatistics: Sendable, Hashable {
    /// Jobs accepted into a batcher.
    public var accepted = 0
    /// Jobs that completed.
    public var completed = 0
    /// Jobs that failed for good, by reason (rejections at submission included).
    public var failed: [FailureReason: Int] = [:]
    /// Retries scheduled.
    public var retried = 0
    /// Batches handed to a processor.
    public var batches = 0
    /// Batches handed to a processor, by what cut them.
    public var batchesByReason: [FlushReason: Int] = [:]
    /// Jobs handed to a processor, over all batches (retries count again).
    public var batchedJobs = 0
    /// Jobs held now: waiting, processing, or awaiting a retry.
    public var pending = 0
    /// Batches being processed now.
    public var inFlight = 0

    public init() {}

    /// The average number of jobs per batch.
    public var meanBatchSize: Double { batches == 0 ? 0 : Double(batchedJobs) / Double(batches) }

    /// Counts a job that failed for `reason`; a key counts at most
    /// ``FailureReason/namedReasonsCounted`` named reasons one by one, the rest as
    /// ``FailureReason/otherNamed``.
    @usableFromInline mutating func countFailure(_ reason: FailureReason, times: Int = 1) {
        Self.countFailure(reason, times: times, in: &failed)
    }

    /// Counts `times` failures for `reason` in `failed`, as ``countFailure(_:times:)`` does.
    @usableFromInline static func countFailure(_ reason: FailureReason, times: Int, in failed: inout [FailureReason: Int]) {
        guard times > 0 else { return }
        var counted = reason
        if reason.isNamed, failed[reason] == nil, failed.keys.count(where: \.isNamed) >= FailureReason.namedReasonsCounted {
            counted = .otherNamed
        }
        failed[counted, default: 0] += times
    }

    public static func + (lhs: Self, rhs: Self) -> Self {
        var sum = lhs
        sum.accepted += rhs.accepted
        sum.completed += rhs.completed
        sum.failed.merge(rhs.failed, uniquingKeysWith: +)
        sum.retried += rhs.retried
        sum.batches += rhs.batches
        sum.batchesByReason.merge(rhs.batchesByReason, uniquingKeysWith: +)
        sum.batchedJobs += rhs.batchedJobs
        sum.pending += rhs.pending
        sum.inFlight += rhs.inFlight
        return sum
    }
}
