import Batchman
import Synchronization

/// The plugins of a manifest and their instances: loads every plugin, creates every named
/// key's instance on the control thread, and makes instances for unnamed keys on demand.
final class PluginRegistry: Sendable {
    let manifest: Manifest
    private let control: WorkerPool
    private let workers: WorkerPool
    private let logger: BatchmanLogger
    private let defaultPlugin: LoadedPlugin?
    /// By the key's exact bytes: canonically equivalent keys are different keys.
    private let instances: Mutex<[ExactString: PluginInstance]>

    /// Loads everything the manifest names; throws every problem found, not only the first.
    init(manifest: Manifest, control: WorkerPool, workers: WorkerPool, logger: BatchmanLogger) throws(HostError) {
        self.manifest = manifest
        self.control = control
        self.workers = workers
        self.logger = logger
        let loaded = control.runAndWait { Self.load(manifest, logger: logger) }
        guard loaded.problems.isEmpty else {
            // Instances that were made are released: nothing leaks out of a failed start.
            control.runAndWait {
                for instance in loaded.instances.values where instance.close(destroyingLaterOn: control) { instance.destroyNow() }
            }
            throw HostError(.configuration, loaded.problems.joined(separator: "\n"))
        }
        defaultPlugin = loaded.defaultPlugin
        instances = Mutex(loaded.instances)
    }

    /// One line per key: its plugin, version and file.
    var summary: [String] {
        let instances = instances.withLock { $0 }
        return manifest.keys.compactMap { entry in
            instances[ExactString(entry.name)].map { "key \"\(entry.name)\": \($0.plugin.name) \($0.plugin.version) (\($0.plugin.path))" }
        }
    }

    /// The core's processor factories: named keys get their instance, any other key a new
    /// instance of the `default` key's plugin, made on the control thread.
    var processorFactories: [String: Batchman<JobBytes, JobBytes, ContinuousClock>.ProcessorFactory] {
        var factories: [String: Batchman<JobBytes, JobBytes, ContinuousClock>.ProcessorFactory] = [:]
        for entry in manifest.keys {
            factories[entry.name] = { [self] key in try processor(forKey: key) }
        }
        factories[Manifest.defaultKey] = { [self] key in try processor(forKey: key) }
        return factories
    }

    /// Destroys every instance, on the control thread. Call after the last batch.
    /// - Returns: the instances still inside a call (a shutdown timed out), which are destroyed
    ///   only when that call returns.
    @discardableResult
    func destroyAll() -> [PluginInstance] {
        let all = instances.withLock { instances in
            defer { instances.removeAll() }
            return Array(instances.values)
        }
        var idle: [PluginInstance] = [], busy: [PluginInstance] = []
        for instance in all {
            if instance.close(destroyingLaterOn: control) { idle.append(instance) } else { busy.append(instance) }
        }
        control.runAndWait { [idle] in for instance in idle { instance.destroyNow() } }
        return busy
    }

    private func processor(forKey key: String) throws -> PluginProcessor {
        if let instance = instances.withLock({ $0[ExactString(key)] }) {
            return PluginProcessor(instance: instance, workers: workers)
        }
        guard let defaultPlugin, let entry = manifest.defaultEntry else {
            throw HostError(.configuration, "key \"\(key)\" is not in \(manifest.path), which has no \"default\" key for other keys; add the key or a \"default\" entry")
        }
        let logger = logger
        let debug = manifest.batchmanConfig().defaults.debug  // an unnamed key gets the default entry's settings
        let made = control.runAndWait { () -> Result<PluginInstance, PluginLoadError> in
            Result { () throws(PluginLoadError) in
                try defaultPlugin.createInstance(plugin: entry.plugin, key: key, config: entry.config, debug: debug, logger: logger)
            }
        }
        let instance = try made.get()
        instances.withLock { $0[ExactString(key)] = instance }
        return PluginProcessor(instance: instance, workers: workers)
    }

    private struct Loaded: Sendable {
        var instances: [ExactString: PluginInstance] = [:]
        var defaultPlugin: LoadedPlugin?
        var problems: [String] = []
    }

    private static func load(_ manifest: Manifest, logger: BatchmanLogger) -> Loaded {
        let loader = PluginLoader(manifestDirectory: manifest.directory)
        let config = manifest.batchmanConfig()
        var loaded = Loaded()
        for entry in manifest.keys {
            do throws(PluginLoadError) {
                let plugin = try loader.load(entry.plugin, forKey: entry.name)
                if entry.name == Manifest.defaultKey { loaded.defaultPlugin = plugin }
                let debug = config.config(forKey: entry.name).debug
                loaded.instances[ExactString(entry.name)] = try plugin.createInstance(plugin: entry.plugin, key: entry.name, config: entry.config, debug: debug, logger: logger)
            } catch {
                loaded.problems.append("\(manifest.path): \(ManifestReader.path("keys", entry.name)): \(error)")
            }
        }
        return loaded
    }
}
