/// Why a job failed. The raw values are the wire names used in results and events.
public enum FailureReason: String, Sendable, Hashable, CaseIterable {
    /// The processor threw, returned a failure, or returned no result for the job.
    case error
    /// The job's batch overran its timeout.
    case timeout
    /// Every allowed attempt failed; the message is the last attempt's.
    case maxRetry = "max_retry"
    /// A job with the same key and id was still pending or processing.
    case duplicate
    /// The job was submitted after shutdown began, or the drain ran out of time.
    case shutdownBatch = "shutdown_batch"
    /// Backpressure rejected the job: its key or the whole instance was full.
    case overloaded
    /// The host could not read the job (bad JSON, missing field, line too long).
    case invalidInput = "invalid_input"
    /// The job crashed its isolated plugin's worker process when it was processed alone (host
    /// only, `"isolation": "process"`).
    case crashed
}
