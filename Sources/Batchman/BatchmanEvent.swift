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
    /// A job failed with a transient error and will be tried again (`attempt` is the next try)
    /// after `delay`.
    case jobRetried(key: String, id: String, attempt: Int, delay: Duration)
    /// A batch's processor call overran its `timeout`; its jobs were failed or retried.
    case batchTimedOut(key: String, batchId: UInt64, size: Int)
}
