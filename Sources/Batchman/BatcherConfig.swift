#if canImport(Glibc)
import Glibc
#endif

/// What a key does when it already holds `maxPending` jobs (or the instance `maxPendingTotal`).
public enum OverflowPolicy: String, Sendable, Hashable, CaseIterable {
    /// Submission waits for room: the caller's thread blocks (`submit`) or its task suspends
    /// (`enqueue`, `await submit`). Memory stays bounded whatever the input rate.
    case block
    /// Submission fails at once with `overloaded`.
    case reject
}

/// What order a key's jobs reach its processor in.
public enum Ordering: String, Sendable, Hashable, CaseIterable {
    /// Batches start in the order they were cut (one at a time with `maxInFlight` 1); a retried
    /// job joins a later batch, after jobs that arrived after it.
    case relaxed
    /// As `relaxed`, and a batch's retried jobs are sent again on their own, in their order,
    /// after their backoff; none of the key's later jobs reaches the processor until they have
    /// settled. Needs `maxInFlight` 1.
    case strict
}

/// How one key's batcher cuts, runs and retries batches: the fully resolved settings of a key.
/// Every default keeps the seed's behaviour.
public struct BatcherConfig: Sendable, Hashable {
    /// The longest a job waits before its batch is flushed, counted from the first job that
    /// entered an empty batch. Default 5 seconds, as in the seed.
    public var frequency: Duration
    /// A batch is flushed as soon as it holds this many jobs. Default 10.
    public var maxBatchSize: Int
    /// Log each batch's life at debug level.
    public var debug: Bool
    /// How many times a job may be tried; 1 (the default) means no retry.
    public var maxAttempts: Int
    /// The backoff ceiling before the first retry; it grows by `backoffMultiplier` per attempt
    /// up to `maxBackoff`, and the delay is drawn uniformly below it (full jitter).
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var backoffMultiplier: Double
    /// A batch whose processor call runs longer fails (or retries) its jobs with `timeout`. Nil: no limit.
    public var timeout: Duration?
    /// A batch never holds more payload bytes than this; a larger single job fails at once. Nil: no limit.
    public var maxBatchBytes: Int?
    /// Batches of this key processed at once. 1 (the default) keeps the key's order.
    public var maxInFlight: Int
    /// Jobs this key holds at most (waiting, processing or awaiting a retry). Nil: no limit.
    public var maxPending: Int?
    /// What a full key does with a new job.
    public var overflow: OverflowPolicy
    /// The least time between the starts of two batches of this key (the seed's pacing). Nil: none.
    public var minBatchInterval: Duration?
    /// What order the key's jobs reach the processor in, retries included. Default `relaxed`.
    public var ordering: Ordering

    public init(
        frequency: Duration = .milliseconds(5000), maxBatchSize: Int = 10, debug: Bool = false,
        maxAttempts: Int = 1, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(10),
        backoffMultiplier: Double = 2, timeout: Duration? = nil, maxBatchBytes: Int? = nil, maxInFlight: Int = 1,
        maxPending: Int? = nil, overflow: OverflowPolicy = .block, minBatchInterval: Duration? = nil, ordering: Ordering = .relaxed
    ) {
        self.frequency = frequency
        self.maxBatchSize = maxBatchSize
        self.debug = debug
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.backoffMultiplier = backoffMultiplier
        self.timeout = timeout
        self.maxBatchBytes = maxBatchBytes
        self.maxInFlight = maxInFlight
        self.maxPending = maxPending
        self.overflow = overflow
        self.minBatchInterval = minBatchInterval
        self.ordering = ordering
    }

    /// The most a job may wait before retry number `retry` (1 for the first retry):
    /// `initialBackoff * backoffMultiplier^(retry - 1)`, at most `maxBackoff`.
    public func backoffCeiling(beforeRetry retry: Int) -> Duration {
        let growth = pow(backoffMultiplier, Double(max(0, retry - 1)))
        let ceiling = initialBackoff.seconds * growth
        return ceiling >= maxBackoff.seconds || !ceiling.isFinite ? maxBackoff : .seconds(ceiling)
    }

    /// Throws the first invalid field's message. The host's manifest reader runs it for every
    /// key, so `batchman check` refuses exactly what `batchman run` would.
    package func validate(key: String?) throws(BatchmanConfigurationError) {
        func check(_ valid: Bool, _ code: BatchmanConfigurationError.Code) throws(BatchmanConfigurationError) {
            if !valid { throw BatchmanConfigurationError(code, key: key) }
        }
        try check(frequency > .zero, .invalidFrequency)
        try check(maxBatchSize > 0, .invalidMaxBatchSize)
        try check(maxAttempts > 0, .invalid("maxAttempts must be at least 1"))
        try check(initialBackoff >= .zero && maxBackoff >= initialBackoff, .invalid("Backoff must satisfy 0 <= initialBackoff <= maxBackoff"))
        try check(backoffMultiplier >= 1 && backoffMultiplier.isFinite, .invalid("backoffMultiplier must be at least 1"))
        try check(timeout.map { $0 > .zero } ?? true, .invalid("timeout must be greater than 0"))
        try check(maxBatchBytes.map { $0 > 0 } ?? true, .invalid("maxBatchBytes must be greater than 0"))
        try check(maxInFlight > 0, .invalid("maxInFlight must be at least 1"))
        try check(maxPending.map { $0 > 0 } ?? true, .invalid("maxPending must be at least 1"))
        try check(minBatchInterval.map { $0 > .zero } ?? true, .invalid("minBatchInterval must be greater than 0"))
        try check(ordering == .relaxed || maxInFlight == 1, .invalid("ordering strict needs maxInFlight 1 (one batch of the key at a time)"))
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to what an Int64 holds. Shared with the host
    /// (deadlines for poll and waitpid), hence `package`.
    @usableFromInline package var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
