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

/// A processor that queues batches before it works on them (the host's plugin processor waits
/// for a worker thread and for its plugin instance). It calls ``Batch/beginCall()`` when the
/// work really begins, so time spent queued never counts against the batch's `timeout`, and it
/// skips a batch for which `beginCall()` returns false (given up on while it waited).
public protocol QueueingBatchProcessor: BatchProcessor {}
