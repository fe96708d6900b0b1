import FoundationEssentials

/// What a processor says about one job of a batch.
///
/// Make outcomes with ``completed(_:_:)``, ``failed(_:_:)`` or ``retry(_:_:)`` from the batch's
/// jobs. Outcomes are matched to jobs by key and id, so their order does not matter; an outcome
/// for a job that is not in the batch is ignored and logged, and a job with no outcome fails with
/// "No result returned for job".
public struct JobOutcome<Output: Sendable>: Sendable {
    /// The key of the job this outcome is for.
    public var key: String
    /// The id of the job this outcome is for.
    public var id: String
    /// `.completed` or `.failed`. `.submitted` and `.processing` count as completed, as in the seed.
    public var status: JobStatus
    /// The result of a completed job.
    public var result: Output?
    /// Why the job failed.
    public var errorMessage: String?
    /// Whether a failure is transient: a retryable job is tried again while attempts remain.
    public var isRetryable: Bool
    /// The reason a failure is reported with; nil means `error`. A retryable failure keeps it
    /// when attempts run out only if it is `crashed`; others become `max_retry`.
    public var failureReason: FailureReason?
    /// For a retryable failure: the earliest the job may be tried again, as the processor
    /// knows it ("the database is locked; try in 2 s"). The backoff honours it as a floor: the
    /// retry waits the longer of the two. Nil: the backoff alone decides.
    public var retryAfter: Duration?
    /// When the job finished; Batchman fills it in when the processor leaves it nil.
    @inlinable public var completedAt: Date? {
        get { completedAtSeconds.map { Date(timeIntervalSince1970: $0) } }
        set { completedAtSeconds = newValue?.timeIntervalSince1970 }
    }
    /// Seconds since 1970 rather than a `Date`: a frozen layout (see `Job.submittedAtSeconds`).
    @usableFromInline var completedAtSeconds: Double?

    @inlinable public init(
        key: String, id: String, status: JobStatus, result: Output? = nil,
        errorMessage: String? = nil, isRetryable: Bool = false, completedAt: Date? = nil
    ) {
        self.key = key
        self.id = id
        self.status = status
        self.result = result
        self.errorMessage = errorMessage
        self.isRetryable = isRetryable
        self.completedAtSeconds = completedAt?.timeIntervalSince1970
    }

    /// The job completed with `result`.
    @inlinable public static func completed<Payload>(_ job: Job<Payload>, _ result: Output) -> Self {
        Self(key: job.key, id: job.id, status: .completed, result: result)
    }

    /// The job failed for good with `message`; it is not retried.
    @inlinable public static func failed<Payload>(_ job: Job<Payload>, _ message: String, reason: FailureReason? = nil) -> Self {
        var outcome = Self(key: job.key, id: job.id, status: .failed, errorMessage: message)
        outcome.failureReason = reason
        return outcome
    }

    /// The job failed with `message` but may succeed later; it is retried while attempts remain,
    /// not sooner than `after` (see ``retryAfter``).
    @inlinable public static func retry<Payload>(
        _ job: Job<Payload>, _ message: String, reason: FailureReason? = nil, after: Duration? = nil
    ) -> Self {
        var outcome = Self(key: job.key, id: job.id, status: .failed, errorMessage: message, isRetryable: true)
        outcome.failureReason = reason
        outcome.retryAfter = after
        return outcome
    }

    @inlinable var identity: JobIdentity { JobIdentity(key: key, id: id) }
}
