import Batchman

/// Where a key's plugin instance lives.
public enum Isolation: String, Sendable, Hashable, CaseIterable {
    /// In the host's process: fastest, for trusted plugins. A crash takes the host down.
    case none
    /// In a worker process of its own: a crash, hang or leak costs a retry, not the host.
    case process
}

/// How many plugin instances an entry of the manifest has.
public enum Instances: String, Sendable, Hashable, CaseIterable {
    /// One per key (the default): each key its own instance, or its own worker process.
    case perKey
    /// One for every key the entry configures (or, with isolation, a pool of `processes`
    /// workers); batches stay per key, and the plugin sees each batch's key.
    case shared
}

/// The settings a manifest can give in `defaults` and per key; nil means "not given".
public struct KeySettings: Sendable, Hashable {
    /// The batching settings, as the core's per-key override (its `key` is unused here).
    public var values = KeyConfigOverride(key: "")
    /// Where the key's plugin instance lives (host only).
    public var isolation: Isolation?
    /// Bytes of memory an isolated key's worker may use (host only, with `process`).
    public var memoryLimit: Int?
    /// Bytes of results and messages one batch's plugin call may return (host only); an `emit`
    /// past it is refused and its job fails. Nil: ``defaultMaxResultBytes``.
    public var maxResultBytes: Int?
    /// One instance per key, or one for the entry (host only).
    public var instances: Instances?
    /// Worker processes of a shared isolated entry (host only).
    public var processes: Int?
    /// How long a per-key instance (or worker) may stay unused before it is retired (host only).
    public var idleTimeout: Duration?

    /// A minute: an instance used again within it is not made again.
    public static let defaultIdleTimeout = Duration.seconds(60)

    /// 64 MiB: far more than a batch of results needs, far less than a host can be made to hold.
    public static let defaultMaxResultBytes = 64 << 20

    public init() {}

    typealias Reader = @Sendable (inout KeySettings, ManifestReader, JSONValue, String) -> Void

    /// Each setting's manifest name and how to read it: the one table the parser, the
    /// unknown-field check and the README share. Durations are milliseconds, like `frequency`.
    static let fields: [(name: String, read: Reader)] = [
        ("frequency", { $0.values.frequency = $1.milliseconds($2, at: $3) }),
        ("maxBatchSize", { $0.values.maxBatchSize = $1.positiveInteger($2, at: $3) }),
        ("debug", { $0.values.debug = $1.boolean($2, at: $3) }),
        ("maxAttempts", { $0.values.maxAttempts = $1.positiveInteger($2, at: $3) }),
        ("initialBackoff", { $0.values.initialBackoff = $1.milliseconds($2, at: $3, allowZero: true) }),
        ("maxBackoff", { $0.values.maxBackoff = $1.milliseconds($2, at: $3, allowZero: true) }),
        ("backoffMultiplier", { $0.values.backoffMultiplier = $1.number($2, at: $3, atLeast: 1) }),
        ("timeout", { $0.values.timeout = $1.milliseconds($2, at: $3) }),
        ("maxBatchBytes", { $0.values.maxBatchBytes = $1.positiveInteger($2, at: $3) }),
        ("maxInFlight", { $0.values.maxInFlight = $1.positiveInteger($2, at: $3) }),
        ("maxPending", { $0.values.maxPending = $1.positiveInteger($2, at: $3) }),
        ("overflow", { $0.values.overflow = $1.choice($2, at: $3, of: OverflowPolicy.self) }),
        ("minBatchInterval", { $0.values.minBatchInterval = $1.milliseconds($2, at: $3) }),
        ("ordering", { $0.values.ordering = $1.choice($2, at: $3, of: Ordering.self) }),
        ("isolation", { $0.isolation = $1.choice($2, at: $3, of: Isolation.self) }),
        ("memoryLimit", { $0.memoryLimit = $1.positiveInteger($2, at: $3) }),
        ("maxResultBytes", { $0.maxResultBytes = $1.positiveInteger($2, at: $3) }),
        ("instances", { $0.instances = $1.choice($2, at: $3, of: Instances.self) }),
        ("processes", { $0.processes = $1.positiveInteger($2, at: $3) }),
        ("idleTimeout", { $0.idleTimeout = $1.milliseconds($2, at: $3) }),
    ]

    /// `config` with every setting given here replacing its value.
    public func applied(to config: BatcherConfig) -> BatcherConfig {
        values.applied(to: config)
    }
}
