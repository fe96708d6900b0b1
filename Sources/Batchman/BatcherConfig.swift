/// How one key's batcher cuts batches: the fully resolved settings of one key.
public struct BatcherConfig: Sendable, Hashable {
    /// The longest a job waits before its batch is flushed, counted from the first job that
    /// entered an empty batch. Default 5 seconds, as in the seed.
    public var frequency: Duration
    /// A batch is flushed as soon as it holds this many jobs. Default 10.
    public var maxBatchSize: Int
    /// Log each batch's life at debug level.
    public var debug: Bool

    public init(frequency: Duration = .milliseconds(5000), maxBatchSize: Int = 10, debug: Bool = false) {
        self.frequency = frequency
        self.maxBatchSize = maxBatchSize
        self.debug = debug
    }

    /// Throws the seed's message for the first invalid field.
    func validate(key: String?) throws(BatchmanConfigurationError) {
        if frequency <= .zero {
            throw BatchmanConfigurationError(.invalidFrequency, key: key)
        }
        if maxBatchSize <= 0 {
            throw BatchmanConfigurationError(.invalidMaxBatchSize, key: key)
        }
    }
}

/// Settings for one key; a field left nil falls back to the instance's default.
public struct KeyConfigOverride: Sendable, Hashable {
    public var key: String
    public var frequency: Duration?
    public var maxBatchSize: Int?
    public var debug: Bool?

    public init(key: String, frequency: Duration? = nil, maxBatchSize: Int? = nil, debug: Bool? = nil) {
        self.key = key
        self.frequency = frequency
        self.maxBatchSize = maxBatchSize
        self.debug = debug
    }

    /// `defaults` with every field this override sets replaced.
    public func applied(to defaults: BatcherConfig) -> BatcherConfig {
        var config = defaults
        if let frequency { config.frequency = frequency }
        if let maxBatchSize { config.maxBatchSize = maxBatchSize }
        if let debug { config.debug = debug }
        return config
    }
}

/// The configuration of a ``Batchman`` instance, with the seed's defaults.
public struct BatchmanConfig: Sendable, Hashable {
    /// The settings every key gets unless an override says otherwise.
    public var defaults: BatcherConfig
    /// Give every key its own batcher and processor instance (default). When false, every job
    /// shares one batcher and one processor, whatever its key.
    public var useInstancePerKey: Bool
    /// Per-key settings; only allowed with `useInstancePerKey`.
    public var keyConfigOverrides: [KeyConfigOverride]

    public init(
        frequency: Duration = .milliseconds(5000), maxBatchSize: Int = 10, debug: Bool = false,
        useInstancePerKey: Bool = true, keyConfigOverrides: [KeyConfigOverride] = []
    ) {
        self.defaults = BatcherConfig(frequency: frequency, maxBatchSize: maxBatchSize, debug: debug)
        self.useInstancePerKey = useInstancePerKey
        self.keyConfigOverrides = keyConfigOverrides
    }

    /// The resolved settings for `key`: its override applied field by field to the defaults.
    public func config(forKey key: String) -> BatcherConfig {
        guard let override = keyConfigOverrides.last(where: { $0.key == key }) else { return defaults }
        return override.applied(to: defaults)
    }

    func validate(processorKeys: some Collection<String>, hasDefaultProcessor: Bool) throws(BatchmanConfigurationError) {
        try defaults.validate(key: nil)
        if !useInstancePerKey {
            if processorKeys.count > 1 { throw BatchmanConfigurationError(.multipleProcessorsWithoutInstancePerKey) }
            if !keyConfigOverrides.isEmpty { throw BatchmanConfigurationError(.overridesWithoutInstancePerKey) }
        }
        if !hasDefaultProcessor { throw BatchmanConfigurationError(.missingDefaultProcessor) }
        for override in keyConfigOverrides {
            try override.applied(to: defaults).validate(key: override.key)
        }
    }
}
