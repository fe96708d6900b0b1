import Batchman

/// The batching settings a manifest can give in `defaults` and per key; nil means "not given".
public struct KeySettings: Sendable, Hashable {
    /// The settings, as the core's per-key override (its `key` is unused here).
    public var values = KeyConfigOverride(key: "")

    public init() {}

    typealias Reader = @Sendable (inout KeyConfigOverride, ManifestReader, JSONValue, String) -> Void

    /// Each setting's manifest name and how to read it: the one table the parser, the
    /// unknown-field check and the README share. Durations are milliseconds, like `frequency`.
    static let fields: [(name: String, read: Reader)] = [
        ("frequency", { $0.frequency = $1.milliseconds($2, at: $3) }),
        ("maxBatchSize", { $0.maxBatchSize = $1.positiveInteger($2, at: $3) }),
        ("debug", { $0.debug = $1.boolean($2, at: $3) }),
        ("maxAttempts", { $0.maxAttempts = $1.positiveInteger($2, at: $3) }),
        ("initialBackoff", { $0.initialBackoff = $1.milliseconds($2, at: $3, allowZero: true) }),
        ("maxBackoff", { $0.maxBackoff = $1.milliseconds($2, at: $3, allowZero: true) }),
        ("backoffMultiplier", { $0.backoffMultiplier = $1.number($2, at: $3, atLeast: 1) }),
        ("timeout", { $0.timeout = $1.milliseconds($2, at: $3) }),
        ("maxBatchBytes", { $0.maxBatchBytes = $1.positiveInteger($2, at: $3) }),
        ("maxInFlight", { $0.maxInFlight = $1.positiveInteger($2, at: $3) }),
        ("maxPending", { $0.maxPending = $1.positiveInteger($2, at: $3) }),
        ("overflow", { $0.overflow = $1.choice($2, at: $3, of: OverflowPolicy.self) }),
        ("minBatchInterval", { $0.minBatchInterval = $1.milliseconds($2, at: $3) }),
    ]

    /// `config` with every setting given here replacing its value.
    public func applied(to config: BatcherConfig) -> BatcherConfig {
        values.applied(to: config)
    }
}
