import Batchman
import FoundationEssentials

/// A parsed `plugins.json`: which plugin and batching settings each job key gets.
///
/// ```json
/// {
///   "defaults": { "frequency": 5000, "maxBatchSize": 10 },
///   "keys": {
///     "default": { "plugin": "EchoPlugin" },
///     "analytics": { "plugin": "SumPlugin", "frequency": 60000, "config": { "field": "value" } }
///   }
/// }
/// ```
/// The `default` key is also the template for keys the manifest does not name: they get its
/// plugin (a new instance each), its config and its settings.
public struct Manifest: Sendable {
    /// One entry of `keys`.
    public struct KeyEntry: Sendable, Hashable {
        public let name: String
        /// The plugin as written: a path, or a bare name such as `EchoPlugin`.
        public let plugin: String
        /// The settings given for this key (not yet merged with the defaults).
        public let settings: KeySettings
        /// The key's `config` as JSON text (`{}` when absent), handed to the plugin's `create`.
        public let config: String
    }

    /// The name of the key that serves keys the manifest does not name.
    public static let defaultKey = "default"

    /// The manifest's path as given.
    public let path: String
    /// The folder that relative plugin paths are resolved against.
    public let directory: String
    public let defaults: KeySettings
    /// The keys, in the order the file lists them.
    public private(set) var keys: [KeyEntry]
    /// Jobs the host holds at most over every key (`defaults.maxPendingTotal`).
    public let maxPendingTotal: Int?
    /// How long a drain may take before unfinished jobs fail (`defaults.shutdownTimeout`).
    public let shutdownTimeout: Duration?
    /// How long a reload lets the configuration it replaces finish its jobs
    /// (`defaults.reloadTimeout`, default 30 s).
    public var reloadTimeout: Duration = .seconds(30)

    /// Options of the whole host, allowed in `defaults` only.
    static let instanceFields = ["maxPendingTotal", "shutdownTimeout", "reloadTimeout"]

    public var defaultEntry: KeyEntry? { keys.first { $0.name == Self.defaultKey } }

    /// Reads and checks the manifest at `path`.
    /// - Throws: ``ManifestError`` listing every problem found.
    public static func load(path: String) throws(ManifestError) -> Manifest {
        let (manifest, error) = loadReportingProblems(path: path)
        if let error { throw error }
        return manifest!
    }

    /// Reads the manifest at `path` as far as it can be read: the keys whose plugin and config
    /// could be read (so that their plugins can be loaded and checked too), and every problem.
    public static func loadReportingProblems(path: String) -> (Manifest?, ManifestError?) {
        switch ManifestFile.read(path) {
        case .success(let bytes):
            return parseReportingProblems(bytes, path: path)
        case .failure(let reason):
            return (nil, ManifestError(file: path, problems: [.init(path: "file", message: "\(reason); pass the manifest's path, e.g. batchman run path/to/plugins.json")]))
        }
    }

    /// Parses manifest text; `path` names it in errors and anchors relative plugin paths.
    public static func parse(_ data: Data, path: String) throws(ManifestError) -> Manifest {
        let (manifest, error) = parseReportingProblems(data, path: path)
        if let error { throw error }
        return manifest!
    }

    /// Parses manifest text as far as it can: what ``loadReportingProblems(path:)`` returns.
    public static func parseReportingProblems(_ data: Data, path: String) -> (Manifest?, ManifestError?) {
        let parsed = data.withUnsafeBytes { raw in
            Result { () throws(JSONSyntaxError) in try JSONValue.parse(raw.bindMemory(to: UInt8.self)) }
        }
        let document: JSONValue
        switch parsed {
        case .success(let value):
            document = value
        case .failure(let error):
            let (line, column) = Self.position(of: error.offset, in: data)
            return (nil, ManifestError(file: path, problems: [.init(path: "line \(line), column \(column)", message: "not valid JSON: \(error.message)")]))
        }
        let reader = ManifestReader()
        guard let manifest = read(document, reader: reader, path: path) else { return (nil, ManifestError(file: path, problems: reader.problems)) }
        guard !reader.problems.isEmpty else { return (manifest, nil) }
        // Only the keys whose plugin and config were read whole: those can still be loaded.
        let broken = Set(reader.problems.compactMap { problem in
            manifest.keys.first { entry in
                [ManifestReader.path(ManifestReader.path("keys", entry.name), "plugin"), ManifestReader.path(ManifestReader.path("keys", entry.name), "config")]
                    .contains { problem.path == $0 || problem.path.hasPrefix($0 + ".") }
            }?.name
        })
        var loadable = manifest
        loadable.keys = manifest.keys.filter { !broken.contains($0.name) }
        return (loadable, ManifestError(file: path, problems: reader.problems))
    }

    private static func read(_ document: JSONValue, reader: ManifestReader, path: String) -> Manifest? {
        guard let top = reader.object(document, at: "(top level)", allowed: ["defaults", "keys"]) else { return nil }
        let settingNames = KeySettings.fields.map(\.name)
        var defaults = KeySettings()
        var maxPendingTotal: Int?
        var shutdownTimeout: Duration?
        var reloadTimeout: Duration?
        if let value = top.first(where: { $0.key == "defaults" })?.value,
           let members = reader.object(value, at: "defaults", allowed: settingNames + instanceFields) {
            defaults = reader.settings(members, at: "defaults")
            if let value = members.first(where: { $0.key == "maxPendingTotal" })?.value {
                maxPendingTotal = reader.positiveInteger(value, at: "defaults.maxPendingTotal")
            }
            if let value = members.first(where: { $0.key == "shutdownTimeout" })?.value {
                shutdownTimeout = reader.milliseconds(value, at: "defaults.shutdownTimeout")
            }
            if let value = members.first(where: { $0.key == "reloadTimeout" })?.value {
                reloadTimeout = reader.milliseconds(value, at: "defaults.reloadTimeout")
            }
        }
        guard let keysValue = top.first(where: { $0.key == "keys" })?.value else {
            reader.problem("keys", "required: an object mapping each job key to {\"plugin\": ...}")
            return nil
        }
        guard let keyMembers = reader.object(keysValue, at: "keys") else { return nil }
        if keyMembers.isEmpty { reader.problem("keys", "expected at least one key") }
        let defaultPlugin = keyMembers.first { $0.key == defaultKey }.flatMap { member -> String? in
            guard case .object(let fields) = member.value, case .string(let plugin)? = fields.first(where: { $0.key == "plugin" })?.value else { return nil }
            return plugin
        }
        var keys: [KeyEntry] = []
        for member in keyMembers {
            let keyPath = ManifestReader.path("keys", member.key)
            guard let fields = reader.object(member.value, at: keyPath, allowed: ["plugin", "config"] + settingNames + instanceFields) else { continue }
            for field in fields where instanceFields.contains(field.key) {
                reader.problem(ManifestReader.path(keyPath, field.key), "applies to the whole host, not one key; set it in \"defaults\"")
            }
            var plugin = defaultPlugin
            if let value = fields.first(where: { $0.key == "plugin" })?.value {
                plugin = reader.string(value, at: ManifestReader.path(keyPath, "plugin"))
            } else if member.key == defaultKey || defaultPlugin == nil {
                let fallback = member.key == defaultKey ? "" : " (there is no \"default\" key to fall back to)"
                reader.problem(ManifestReader.path(keyPath, "plugin"), "required: a plugin path or name such as \"EchoPlugin\"\(fallback)")
            }
            var config = "{}"
            if let value = fields.first(where: { $0.key == "config" })?.value {
                if case .object = value { config = value.jsonText } else {
                    reader.problem(ManifestReader.path(keyPath, "config"), "expected an object (handed to the plugin as JSON), got \(value.kindDescription)")
                }
            }
            let settings = reader.settings(fields, at: keyPath)
            if let plugin { keys.append(KeyEntry(name: member.key, plugin: plugin, settings: settings, config: config)) }
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var manifest = Manifest(path: path, directory: directory, defaults: defaults, keys: keys,
                                maxPendingTotal: maxPendingTotal, shutdownTimeout: shutdownTimeout)
        if let reloadTimeout { manifest.reloadTimeout = reloadTimeout }
        guard reader.problems.isEmpty else { return manifest }
        // Each field was checked alone; now what only their combination can break
        // (initialBackoff > maxBackoff), exactly as `run` will, each at its own path.
        let config = manifest.batchmanConfig()
        let base = defaults.applied(to: BatcherConfig())
        do throws(BatchmanConfigurationError) { try base.validate(key: nil) } catch {
            reader.problem("defaults", error.code.description)
        }
        for entry in keys where manifest.placement(forKey: entry.name).isolation == .none && entry.settings.memoryLimit != nil {
            reader.problem(ManifestReader.path(ManifestReader.path("keys", entry.name), "memoryLimit"),
                           "applies to a worker process only; add \"isolation\": \"process\" or remove it")
        }
        // `processes` in `defaults` is for the entries it fits (shared and isolated); an entry's own
        // must fit the entry.
        for entry in keys where entry.settings.processes != nil {
            let placement = manifest.placement(forKey: entry.name)
            let path = ManifestReader.path(ManifestReader.path("keys", entry.name), "processes")
            if placement.isolation != .process {
                reader.problem(path, "applies to \"isolation\": \"process\" only: in-process a shared instance is one instance")
            } else if placement.instances != .shared {
                reader.problem(path, "needs \"instances\": \"shared\": with \"perKey\" each key has a worker of its own")
            }
        }
        for entry in keys {
            do throws(BatchmanConfigurationError) {
                try (entry.name == defaultKey ? config.defaults : config.config(forKey: entry.name)).validate(key: nil)
            } catch {
                reader.problem(ManifestReader.path("keys", entry.name), error.code.description)
            }
        }
        return manifest
    }

    /// Where a key's plugin instance lives, and the bounds the host keeps it in.
    public struct Placement: Sendable, Hashable {
        public var isolation: Isolation
        public var instances: Instances
        /// Worker processes of a shared isolated entry (1 unless given).
        public var processes: Int
        /// How long a per-key instance may stay unused before it is retired.
        public var idleTimeout: Duration
        /// Bytes of memory its worker process may use (with `process`).
        public var memoryLimit: Int?
        /// Outcome bytes one batch may return.
        public var maxResultBytes: Int
    }

    /// The entry that serves `key`: its own, or `default` for a key the manifest does not name.
    /// What metrics label a key with, so that their series are bounded by the manifest.
    public func entryName(forKey key: String) -> String {
        keys.first { ExactString($0.name) == ExactString(key) }?.name ?? Self.defaultKey
    }

    /// Where `key`'s instance lives and its bounds: the key's own settings, else (for keys the
    /// manifest does not name) the `default` entry's, then `defaults`.
    public func placement(forKey key: String) -> Placement {
        let entry = keys.first { ExactString($0.name) == ExactString(key) } ?? defaultEntry
        return Placement(isolation: entry?.settings.isolation ?? defaults.isolation ?? .none,
                         instances: entry?.settings.instances ?? defaults.instances ?? .perKey,
                         processes: entry?.settings.processes ?? defaults.processes ?? 1,
                         idleTimeout: entry?.settings.idleTimeout ?? defaults.idleTimeout ?? KeySettings.defaultIdleTimeout,
                         memoryLimit: entry?.settings.memoryLimit ?? defaults.memoryLimit,
                         maxResultBytes: entry?.settings.maxResultBytes ?? defaults.maxResultBytes ?? KeySettings.defaultMaxResultBytes)
    }

    /// The core's configuration: every named key fully resolved (defaults, then its own
    /// settings), and the `default` key's settings for keys the manifest does not name.
    public func batchmanConfig() -> BatchmanConfig {
        let base = defaults.applied(to: BatcherConfig())
        // Named keys get complete configs, so settings of the `default` entry never leak into them.
        var config = BatchmanConfig(defaults: defaultEntry?.settings.applied(to: base) ?? base,
                                    maxPendingTotal: maxPendingTotal, shutdownTimeout: shutdownTimeout)
        for entry in keys where entry.name != Self.defaultKey {
            config.keyConfigs[entry.name] = entry.settings.applied(to: base)
        }
        return config
    }

    private static func position(of offset: Int, in data: Data) -> (line: Int, column: Int) {
        var line = 1, column = 1
        for byte in data.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return (line, column)
    }
}
