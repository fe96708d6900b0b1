/// A lifecycle event, for metrics and tracing; see ``Batchman/events(bufferingPolicy:)``.
public enum BatchmanEvent: Sendable, Hashable {
    /// A job was accepted into its key's batcher.
    case jobAccepted(key: String, id: String)
    /// A job was refused at submission (`duplicate`, `shutdown_batch`, `overloaded`, `error`).
    case jobRejected(key: String, id: String, reason: FailureReason)
    /// A batch was cut and queued for its processor.
    case batchFlushed(key: String, batchId: UInt64, size: Int, reason: FlushReason)
    /// A processor call returned (or threw) and every job of the batch has its outcome.
    case batchCompleted(key: String, batchId: UInt64, size: Int, failed: Int)
    /// A job completed.
    case jobCompleted(key: String, id: String, batchId: UInt64)
    /// A job failed for good.
    case jobFailed(key: String, id: String, batchId: UInt64?, reason: FailureReason)
}
