/// Settings for one key; a field left nil falls back to the instance's default.
public struct KeyConfigOverride: Sendable, Hashable {
    public var key: String
    public var frequency: Duration?
    public var maxBatchSize: Int?
    public var debug: Bool?
    public var maxAttempts: Int?
    public var initialBackoff: Duration?
    public var maxBackoff: Duration?
    public var backoffMultiplier: Double?
    public var timeout: Duration?
    public var maxBatchBytes: Int?
    public var maxInFlight: Int?
    public var maxPending: Int?
    public var overflow: OverflowPolicy?
    public var minBatchInterval: Duration?
    public var ordering: Ordering?

    public init(
        key: String, frequency: Duration? = nil, maxBatchSize: Int? = nil, debug: Bool? = nil,
        maxAttempts: Int? = nil, initialBackoff: Duration? = nil, maxBackoff: Duration? = nil,
        backoffMultiplier: Double? = nil, timeout: Duration? = nil, maxBatchBytes: Int? = nil,
        maxInFlight: Int? = nil, maxPending: Int? = nil, overflow: OverflowPolicy? = nil,
        minBatchInterval: Duration? = nil, ordering: Ordering? = nil
    ) {
        self.key = key
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

    /// `defaults` with every field this override sets replaced.
    public func applied(to defaults: BatcherConfig) -> BatcherConfig {
        var config = defaults
        if let frequency { config.frequency = frequency }
        if let maxBatchSize { config.maxBatchSize = maxBatchSize }
        if let debug { config.debug = debug }
        if let maxAttempts { config.maxAttempts = maxAttempts }
        if let initialBackoff { config.initialBackoff = initialBackoff }
        if let maxBackoff { config.maxBackoff = maxBackoff }
        if let backoffMultiplier { config.backoffMultiplier = backoffMultiplier }
        if let timeout { config.timeout = timeout }
        if let maxBatchBytes { config.maxBatchBytes = maxBatchBytes }
        if let maxInFlight { config.maxInFlight = maxInFlight }
        if let maxPending { config.maxPending = maxPending }
        if let overflow { config.overflow = overflow }
        if let minBatchInterval { config.minBatchInterval = minBatchInterval }
        if let ordering { config.ordering = ordering }
        return config
    }
}

