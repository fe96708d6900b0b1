/// Why a batch was cut from its open window.
public enum FlushReason: String, Sendable, Hashable, CaseIterable {
    /// It reached `maxBatchSize`.
    case size
    /// `frequency` passed since its first job arrived.
    case time
    /// The next job would have taken it past `maxBatchBytes`.
    case bytes
    /// Shutdown flushed it.
    case shutdown
    /// It holds only retried jobs of one earlier batch, sent again on their own
    /// (`ordering` `strict`).
    case retry
}

/// A group of jobs of one batcher, handed to a processor in one call.
public struct Batch<Payload: Sendable>: Sendable {
    /// Unique within one `Batchman`; carried by every result of the batch.
    public let id: UInt64
    /// The batcher's key (`"default"` when `useInstancePerKey` is false and keys share a batcher).
    public let key: String
    /// The jobs, in the order they joined the batch (a retried job joins a later batch).
    public let jobs: [Job<Payload>]
    /// What cut the batch.
    public let reason: FlushReason
    /// Set by the batcher for a ``QueueingBatchProcessor``; see ``beginCall(onTimeout:)``.
    @usableFromInline var callStarter: (@Sendable (_ onTimeout: (@Sendable () -> Void)?) -> Bool)?

    /// For a ``QueueingBatchProcessor``: call it when the batch's real work begins, after any
    /// queueing; the batch's `timeout` counts from then. `onTimeout` runs once, on Batchman's
    /// timer thread, if the call overruns it: the batch's jobs are settled then (retried or
    /// failed with `timeout`) and its late outcomes dropped, so a processor that can stop its
    /// call (kill the process that runs it) does so there, and needs no timer of its own.
    /// - Returns: false if the batch was given up on while it waited (a shutdown timed out):
    ///   then do not process it (whatever the processor returns is dropped).
    @inlinable public func beginCall(onTimeout: (@Sendable () -> Void)? = nil) -> Bool {
        callStarter?(onTimeout) ?? true
    }

    /// A batch as Batchman hands it over; public so that processors can be tested directly.
    @inlinable public init(id: UInt64, key: String, jobs: [Job<Payload>], reason: FlushReason) {
        self.id = id
        self.key = key
        self.jobs = jobs
        self.reason = reason
    }
}
