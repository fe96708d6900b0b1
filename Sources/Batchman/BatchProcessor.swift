/// Processes whole batches: the part of Batchman you bring.
///
/// A processor is handed one batch at a time per key (calls for different keys run in
/// parallel) and returns one ``JobOutcome`` per job. It may throw: every job of the batch then
/// fails with reason `error` and the error's description.
///
/// ```swift
/// struct Uppercaser: BatchProcessor {
///     func process(_ batch: Batch<String>) async throws -> [JobOutcome<String>] {
///         batch.jobs.map { .completed($0, $0.payload.uppercased()) }
///     }
/// }
/// ```
public protocol BatchProcessor<Payload, Output>: Sendable {
    associatedtype Payload: Sendable
    associatedtype Output: Sendable

    /// Processes `batch` and returns an outcome for each of its jobs.
    func process(_ batch: Batch<Payload>) async throws -> [JobOutcome<Output>]

    /// Queues `batch` if this processor queues batches itself (a ``QueueingBatchProcessor``):
    /// true, and `completion` will be called. False: call ``process(_:)``. Implemented for you;
    /// a requirement so that asking costs a witness-table call, not a cast to a parameterised
    /// existential (which the runtime resolves by demangling, microseconds a batch).
    func enqueueIfQueueing(_ batch: Batch<Payload>, completion: @escaping @Sendable (Result<[JobOutcome<Output>], any Error>) -> Void) -> Bool

    /// Whether ``enqueueIfQueueing(_:completion:)`` takes batches (implemented for you, as it is).
    var queuesItsBatches: Bool { get }

    /// True if this processor always returns one outcome per job, in the batch's order: Batchman
    /// then takes each outcome for the job at its position without comparing ids. False (the
    /// default): outcomes in another order, or as many as the jobs but for other ids, are matched
    /// by key and id.
    var answersInOrder: Bool { get }
}

extension BatchProcessor {
    public var queuesItsBatches: Bool { false }

    public var answersInOrder: Bool { false }

    public func enqueueIfQueueing(
        _ batch: Batch<Payload>, completion: @escaping @Sendable (Result<[JobOutcome<Output>], any Error>) -> Void
    ) -> Bool {
        false
    }
}

/// A processor made from a closure, for when a type would be ceremony.
public struct ClosureProcessor<Payload: Sendable, Output: Sendable>: BatchProcessor {
    @usableFromInline let body: @Sendable (Batch<Payload>) async throws -> [JobOutcome<Output>]

    @inlinable public init(_ body: @escaping @Sendable (Batch<Payload>) async throws -> [JobOutcome<Output>]) {
        self.body = body
    }

    @inlinable public func process(_ batch: Batch<Payload>) async throws -> [JobOutcome<Output>] {
        try await body(batch)
    }
}

/// A processor that queues batches and finishes them on threads of its own (the host's plugin
/// processor waits for a worker thread and for its plugin instance).
///
/// Batchman hands it each batch with ``enqueue(_:completion:)`` directly, with no task, and the
/// completion settles the batch and hands its results over on the thread that calls it: no hop
/// through Swift's cooperative pool. It calls ``Batch/beginCall()`` when the work really begins,
/// so time spent queued never counts against the batch's `timeout`, and it skips a batch for
/// which `beginCall()` returns false (given up on while it waited).
public protocol QueueingBatchProcessor<Payload, Output>: BatchProcessor {
    /// Queues `batch`; `completion` must be called exactly once, from any thread, with the
    /// batch's outcomes or the error that failed it.
    func enqueue(_ batch: Batch<Payload>, completion: @escaping @Sendable (Result<[JobOutcome<Output>], any Error>) -> Void)
}

extension QueueingBatchProcessor {
    public var queuesItsBatches: Bool { true }

    public func enqueueIfQueueing(
        _ batch: Batch<Payload>, completion: @escaping @Sendable (Result<[JobOutcome<Output>], any Error>) -> Void
    ) -> Bool {
        enqueue(batch, completion: completion)
        return true
    }

    /// Processes `batch` through ``enqueue(_:completion:)``, for callers that await.
    public func process(_ batch: Batch<Payload>) async throws -> [JobOutcome<Output>] {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(batch) { continuation.resume(with: $0) }
        }
    }
}
