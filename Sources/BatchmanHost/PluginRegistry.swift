import Batchman
import Synchronization

/// The plugins of a manifest and their instances: loads every plugin, creates every named
/// key's instance on the control thread (or starts its worker process, for an isolated key),
/// and makes instances for unnamed keys on demand.
final class PluginRegistry: Sendable {
    let manifest: Manifest
    private let control: WorkerPool
    private let workers: WorkerPool
    private let logger: BatchmanLogger
    private let factory: InstanceFactory
    /// By the key's exact bytes: canonically equivalent keys are different keys.
    private let instances: Mutex<[ExactString: any KeyInstance]>

    /// Loads everything the manifest names; throws every problem found, not only the first.
    init(manifest: Manifest, control: WorkerPool, workers: WorkerPool, logger: BatchmanLogger) throws(HostError) {
        self.manifest = manifest
        self.control = control
        self.workers = workers
        self.logger = logger
        let factory = InstanceFactory(manifest: manifest, control: control, logger: logger)
        self.factory = factory
        var made: [ExactString: any KeyInstance] = [:]
        var problems: [String] = []
        for entry in manifest.keys {
            switch factory.make(key: entry.name, from: entry) {
            case .success(let instance): made[ExactString(entry.name)] = instance
            case .failure(let error): problems.append("\(manifest.path): \(ManifestReader.path("keys", entry.name)): \(error)")
            }
        }
        guard problems.isEmpty else {
            // Instances that were made are released: nothing leaks out of a failed start.
            Self.release(Array(made.values), control: control)
            throw HostError(.configuration, problems.joined(separator: "\n"))
        }
        instances = Mutex(made)
    }

    /// One line per key: its plugin, version and file.
    var summary: [String] {
        let instances = instances.withLock { $0 }
        return manifest.keys.compactMap { entry in
            instances[ExactString(entry.name)].map { "key \"\(entry.name)\": \($0.summary)" }
        }
    }

    /// Each key's plugin file, for `--watch` and the reload report.
    var pluginFiles: [String: String] {
        instances.withLock { instances in
            Dictionary(instances.values.map { ($0.key, $0.pluginPath) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// The name in the descriptor of `key`'s plugin, once it has an instance.
    func pluginName(forKey key: String) -> String? {
        instances.withLock { $0[ExactString(key)]?.pluginName }
    }

    /// Crashes and worker restarts of every isolated key.
    var isolationStatistics: [String: IsolationStatistics] {
        let instances = instances.withLock { Array($0.values) }
        var statistics: [String: IsolationStatistics] = [:]
        for instance in instances {
            guard let counts = instance.isolationStatistics else { continue }
            statistics[instance.key, default: IsolationStatistics()].crashes += counts.crashes
            statistics[instance.key, default: IsolationStatistics()].restarts += counts.restarts
        }
        return statistics
    }

    /// The core's processor factories: named keys get their instance, any other key a new
    /// instance of the `default` key's plugin.
    var processorFactories: [String: Batchman<JobBytes, JobBytes, ContinuousClock>.ProcessorFactory] {
        var factories: [String: Batchman<JobBytes, JobBytes, ContinuousClock>.ProcessorFactory] = [:]
        for entry in manifest.keys {
            factories[entry.name] = { [self] key in try processor(forKey: key) }
        }
        factories[Manifest.defaultKey] = { [self] key in try processor(forKey: key) }
        return factories
    }

    /// Destroys every instance (on the control thread) or shuts its worker down. Call after
    /// the last batch.
    /// - Returns: the instances still inside a call (a shutdown timed out), which are
    ///   released only when that call returns.
    @discardableResult
    func destroyAll() -> [any KeyInstance] {
        let all = instances.withLock { instances in
            defer { instances.removeAll() }
            return Array(instances.values)
        }
        return Self.release(all, control: control)
    }

    @discardableResult
    private static func release(_ all: [any KeyInstance], control: WorkerPool) -> [any KeyInstance] {
        var idle: [any KeyInstance] = [], busy: [any KeyInstance] = []
        for instance in all {
            if instance.close(destroyingLaterOn: control) { idle.append(instance) } else { busy.append(instance) }
        }
        control.runAndWait { [idle] in for instance in idle { instance.destroyNow() } }
        return busy
    }

    private func processor(forKey key: String) throws -> any BatchProcessor<JobBytes, JobBytes> {
        if let instance = instances.withLock({ $0[ExactString(key)] }) {
            return instance.processor(workers: workers)
        }
        guard let entry = manifest.defaultEntry else {
            throw HostError(.configuration, "key \"\(key)\" is not in \(manifest.path), which has no \"default\" key for other keys; add the key or a \"default\" entry")
        }
        let instance = try factory.make(key: key, from: entry).get()
        instances.withLock { $0[ExactString(key)] = instance }
        return instance.processor(workers: workers)
    }
}

/// Makes key instances as the manifest says: in-process on the control thread, or in a worker
/// process of their own.
private final class InstanceFactory: Sendable {
    private let manifest: Manifest
    private let config: BatchmanConfig
    private let control: WorkerPool
    private let logger: BatchmanLogger
    /// Loads each plugin file once; used on the control thread only.
    private let loader: Mutex<PluginLoader>
    /// Plugin files whose permissions were checked, so each is warned about once per configuration.
    private let checkedFiles = Mutex<Set<String>>([])

    init(manifest: Manifest, control: WorkerPool, logger: BatchmanLogger) {
        self.manifest = manifest
        self.config = manifest.batchmanConfig()
        self.control = control
        self.logger = logger
        self.loader = Mutex(PluginLoader(manifestDirectory: manifest.directory))
    }

    /// Makes `key`'s instance from `entry`: the key's own, or the `default` one for a key the
    /// manifest does not name (which then gets the default entry's settings).
    func make(key: String, from entry: Manifest.KeyEntry) -> Result<any KeyInstance, PluginLoadError> {
        let settings = config.config(forKey: entry.name == Manifest.defaultKey ? key : entry.name)
        let placement = manifest.placement(forKey: key)
        if let path = try? loader.withLock({ loader throws(PluginLoadError) in try loader.resolve(entry.plugin, forKey: key) }),
           checkedFiles.withLock({ $0.insert(path).inserted }) {
            for warning in PluginLoader.permissionWarnings(forFileAt: path) { logger.log(.warning, "plugin \"\(entry.plugin)\" (\(path)): \(warning)") }
        }
        if placement.isolation == .process {
            // The host never loads an untrusted plugin itself: only its worker does. Started on
            // the control thread: a worker gets its parent-death signal when the *thread* that
            // started it ends, and the control thread lives as long as the run.
            return control.runAndWait { [self] in
                Result { () throws(PluginLoadError) -> any KeyInstance in
                    let path = try loader.withLock { loader throws(PluginLoadError) in try loader.resolve(entry.plugin, forKey: key) }
                    return try IsolatedInstance(plugin: entry.plugin, path: path, key: key, config: entry.config, debug: settings.debug,
                                                placement: placement, timeout: settings.timeout, logger: logger)
                }
            }
        }
        return control.runAndWait { [self] in
            Result { () throws(PluginLoadError) -> any KeyInstance in
                let plugin = try loader.withLock { loader throws(PluginLoadError) in try loader.load(entry.plugin, forKey: key) }
                if settings.debug {
                    logger.log(.debug, "key \"\(key)\": plugin \(plugin.name) \(plugin.version) loaded from a private copy of \(plugin.path) "
                               + "(\(plugin.loadedFrom)), so a rebuilt file is always fresh code")
                }
                return try plugin.createInstance(plugin: entry.plugin, key: key, config: entry.config, debug: settings.debug, logger: logger,
                                                 maxResultBytes: placement.maxResultBytes)
            }
        }
    }
}
