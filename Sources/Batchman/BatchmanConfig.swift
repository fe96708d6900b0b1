/// The configuration of a ``Batchman`` instance, with the seed's defaults.
public struct BatchmanConfig: Sendable, Hashable {
    /// The settings every key gets unless an override says otherwise.
    public var defaults: BatcherConfig
    /// Give every key its own batcher and processor instance (default). When false, every job
    /// shares one batcher and one processor, whatever its key.
    public var useInstancePerKey: Bool
    /// Per-key settings; only allowed with `useInstancePerKey`.
    public var keyConfigOverrides: [KeyConfigOverride]
    /// Complete settings for some keys, used as they are (nothing falls back to `defaults`);
    /// they win over `keyConfigOverrides`. Only allowed with `useInstancePerKey`.
    public var keyConfigs: [String: BatcherConfig] = [:]
    /// Jobs the whole instance holds at most, over every key; full keys follow their
    /// `overflow` policy. Nil: no limit.
    public var maxPendingTotal: Int?
    /// The longest ``Batchman/shutdown()`` waits for the drain; jobs still unfinished then fail
    /// with `shutdown_batch`. Nil: wait for every job.
    public var shutdownTimeout: Duration?

    public init(
        frequency: Duration = .milliseconds(5000), maxBatchSize: Int = 10, debug: Bool = false,
        useInstancePerKey: Bool = true, keyConfigOverrides: [KeyConfigOverride] = [],
        maxPendingTotal: Int? = nil, shutdownTimeout: Duration? = nil
    ) {
        self.defaults = BatcherConfig(frequency: frequency, maxBatchSize: maxBatchSize, debug: debug)
        self.useInstancePerKey = useInstancePerKey
        self.keyConfigOverrides = keyConfigOverrides
        self.maxPendingTotal = maxPendingTotal
        self.shutdownTimeout = shutdownTimeout
    }

    /// A configuration whose every key starts from `defaults`.
    public init(
        defaults: BatcherConfig, useInstancePerKey: Bool = true, keyConfigOverrides: [KeyConfigOverride] = [],
        maxPendingTotal: Int? = nil, shutdownTimeout: Duration? = nil
    ) {
        self.defaults = defaults
        self.useInstancePerKey = useInstancePerKey
        self.keyConfigOverrides = keyConfigOverrides
        self.maxPendingTotal = maxPendingTotal
        self.shutdownTimeout = shutdownTimeout
    }

    /// The resolved settings for `key`: its complete config, or its override applied field by
    /// field to the defaults.
    public func config(forKey key: String) -> BatcherConfig {
        if let complete = keyConfigs[key] { return complete }
        guard let override = keyConfigOverrides.last(where: { $0.key == key }) else { return defaults }
        return override.applied(to: defaults)
    }

    @usableFromInline func validate(processorKeys: some Collection<String>, hasDefaultProcessor: Bool) throws(BatchmanConfigurationError) {
        try defaults.validate(key: nil)
        if let maxPendingTotal, maxPendingTotal <= 0 { throw BatchmanConfigurationError(.invalid("maxPendingTotal must be at least 1")) }
        if let shutdownTimeout, shutdownTimeout <= .zero { throw BatchmanConfigurationError(.invalid("shutdownTimeout must be greater than 0")) }
        if !useInstancePerKey {
            if processorKeys.count > 1 { throw BatchmanConfigurationError(.multipleProcessorsWithoutInstancePerKey) }
            if !keyConfigOverrides.isEmpty || !keyConfigs.isEmpty { throw BatchmanConfigurationError(.overridesWithoutInstancePerKey) }
        }
        if !hasDefaultProcessor { throw BatchmanConfigurationError(.missingDefaultProcessor) }
        for override in keyConfigOverrides {
            try override.applied(to: defaults).validate(key: override.key)
        }
        for (key, config) in keyConfigs {
            try config.validate(key: key)
        }
    }
}
