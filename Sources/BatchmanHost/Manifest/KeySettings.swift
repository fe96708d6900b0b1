import Batchman

/// The batching settings a manifest can give in `defaults` and per key; nil means "not given".
public struct KeySettings: Sendable, Hashable {
    public var frequency: Duration?
    public var maxBatchSize: Int?
    public var debug: Bool?

    public init() {}

    /// Each setting's manifest name and how to read it: the one table the parser and the
    /// unknown-field check share.
    static let fields: [(name: String, read: @Sendable (inout KeySettings, ManifestReader, JSONValue, String) -> Void)] = [
        ("frequency", { settings, reader, value, path in settings.frequency = reader.milliseconds(value, at: path) }),
        ("maxBatchSize", { settings, reader, value, path in settings.maxBatchSize = reader.positiveInteger(value, at: path) }),
        ("debug", { settings, reader, value, path in settings.debug = reader.boolean(value, at: path) }),
    ]

    /// `config` with every setting given here replacing its value.
    public func applied(to config: BatcherConfig) -> BatcherConfig {
        var config = config
        if let frequency { config.frequency = frequency }
        if let maxBatchSize { config.maxBatchSize = maxBatchSize }
        if let debug { config.debug = debug }
        return config
    }
}
