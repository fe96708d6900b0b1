import Batchman

/// The outcomes of one batch sent to a worker process, filled in by job index as the worker (or
/// its death, or a timeout) decides them; a job nothing decided gets a retry.
///
/// Outcomes are made from each job's key and id read through the batch's array, and kept in a
/// plain array with a flag beside it: a whole job or outcome copied (to make an outcome from a
/// job, or out of an array of optionals) goes through its type's value witnesses, which by perf
/// cost the isolated path more than the worker's own work.
struct BatchOutcomes {
    private let jobs: [Job<JobBytes>]
    private(set) var outcomes: [JobOutcome<JobBytes>]
    private var decided: [Bool]

    /// Every job undecided; `fallback` is what one left so says.
    init(_ batch: Batch<JobBytes>, fallback: String) {
        jobs = batch.jobs
        outcomes = []
        outcomes.reserveCapacity(jobs.count)
        for index in jobs.indices {
            outcomes.append(JobOutcome(key: jobs[index].key, id: jobs[index].id, status: .failed, errorMessage: fallback, isRetryable: true))
        }
        decided = [Bool](repeating: false, count: jobs.count)
    }

    func isDecided(_ index: Int) -> Bool { decided[index] }

    mutating func complete(_ index: Int, _ result: JobBytes) {
        decide(index, .completed, result: result)
    }

    mutating func fail(_ index: Int, _ message: String, reason: FailureReason? = nil) {
        decide(index, .failed, message: message, reason: reason)
    }

    mutating func retry(_ index: Int, _ message: String, reason: FailureReason? = nil, after: Duration? = nil) {
        decide(index, .failed, message: message, retryable: true, reason: reason, after: after)
    }

    /// Retries every job still undecided, with `message`.
    mutating func retryUndecided(_ message: String, reason: FailureReason? = nil) {
        for index in decided.indices where !decided[index] { retry(index, message, reason: reason) }
    }

    private mutating func decide(
        _ index: Int, _ status: JobStatus, result: JobBytes? = nil, message: String? = nil, retryable: Bool = false,
        reason: FailureReason? = nil, after: Duration? = nil
    ) {
        // Field by field, in place: assigning a whole outcome destroys and copies one.
        outcomes[index].status = status
        outcomes[index].result = result
        outcomes[index].errorMessage = message
        outcomes[index].isRetryable = retryable
        outcomes[index].failureReason = reason
        outcomes[index].retryAfter = after
        decided[index] = true
    }
}
