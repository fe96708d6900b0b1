import FoundationEssentials

/// The one final answer every submitted job gets: completed with a result, or failed with a reason.
public struct JobResult<Payload: Sendable, Output: Sendable>: Sendable {
    public let id: String
    public let key: String
    public let payload: Payload
    /// `.completed` or `.failed`.
    public let status: JobStatus
    /// The processor's result; nil when the job failed.
    public let result: Output?
    /// Why the job failed; nil when it completed.
    public let errorReason: FailureReason?
    /// A human-readable account of the failure; nil when the job completed.
    public let errorMessage: String?
    /// The batch that produced this result; nil when the job never reached a batch.
    public let batchId: UInt64?
    /// How many times a processor was given the job (0 if it never reached one).
    public let attempts: Int
    /// The tag the job was submitted with (see ``JobTag``).
    public let tag: JobTag
    @inlinable public var submittedAt: Date { Date(timeIntervalSince1970: submittedAtSeconds) }
    @inlinable public var completedAt: Date { Date(timeIntervalSince1970: completedAtSeconds) }
    /// Seconds since 1970, not `Date`s: a frozen layout keeps copies free of runtime metadata.
    @usableFromInline let submittedAtSeconds: Double
    @usableFromInline let completedAtSeconds: Double

    /// `borrowing`: an initialiser takes its arguments owned, and a whole job copied for it
    /// (only to read four fields) showed in profiles.
    @inlinable init(
        job: borrowing Job<Payload>, status: JobStatus, result: Output?, errorReason: FailureReason?,
        errorMessage: String?, batchId: UInt64?, attempts: Int, completedAt: Date
    ) {
        self.id = job.id
        self.key = job.key
        self.payload = job.payload
        self.status = status
        self.result = result
        self.errorReason = errorReason
        self.errorMessage = errorMessage
        self.batchId = batchId
        self.attempts = attempts
        self.tag = job.tag
        self.submittedAtSeconds = job.submittedAtSeconds
        self.completedAtSeconds = completedAt.timeIntervalSince1970
    }

    /// The result of `jobs[position]`, its fields read through the array (a whole job taken
    /// out is copied through its value witnesses: see `Job.init(copying:)`), with the completion
    /// time in seconds since 1970.
    @inlinable init(
        fieldsOf jobs: [Job<Payload>], at position: Int, status: JobStatus, result: Output?, errorReason: FailureReason?,
        errorMessage: String?, batchId: UInt64?, attempts: Int, completedAtSeconds: Double
    ) {
        self.id = jobs[position].id
        self.key = jobs[position].key
        self.payload = jobs[position].payload
        self.status = status
        self.result = result
        self.errorReason = errorReason
        self.errorMessage = errorMessage
        self.batchId = batchId
        self.attempts = attempts
        self.tag = jobs[position].tag
        self.submittedAtSeconds = jobs[position].submittedAtSeconds
        self.completedAtSeconds = completedAtSeconds
    }

    @inlinable static func failure(
        _ job: borrowing Job<Payload>, reason: FailureReason, message: String, batchId: UInt64? = nil,
        attempts: Int = 0, at time: Date
    ) -> Self {
        Self(job: job, status: .failed, result: nil, errorReason: reason, errorMessage: message,
             batchId: batchId, attempts: attempts, completedAt: time)
    }
}
