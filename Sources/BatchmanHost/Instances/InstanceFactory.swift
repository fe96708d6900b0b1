import Batchman
import Synchronization

/// Makes key instances as the manifest says: in-process on the control thread, or in a worker
/// process, within the ``ProcessBudget``.
final class InstanceFactory: Sendable {
    private let manifest: Manifest
    private let config: BatchmanConfig
    private let control: WorkerPool
    private let logger: BatchmanLogger
    private let budget: ProcessBudget
    /// While the registry proves its entries (`check`, a reload): a proof's worker takes its
    /// place at once, past the bound if need be. A reload needs one worker per entry while the
    /// configuration it replaces still holds its own; waiting for those could wait for ever.
    let isProving = Atomic<Bool>(false)
    /// Loads each plugin file once; used on the control thread only.
    private let loader: Mutex<PluginLoader>
    /// What ``prepare(_:)`` found, by entry name: the plugin's file, and its descriptor's name
    /// and version when loaded in-process.
    private let prepared = Mutex<[String: (path: String, plugin: LoadedPlugin?)]>([:])
    /// Where the instances' `bm_host.pause` goes: connected to the core once it is made.
    let pauser: KeyPauser

    init(manifest: Manifest, control: WorkerPool, logger: BatchmanLogger, budget: ProcessBudget) {
        self.manifest = manifest
        self.config = manifest.batchmanConfig()
        self.control = control
        self.logger = logger
        self.budget = budget
        self.loader = Mutex(PluginLoader(manifestDirectory: manifest.directory))
        self.pauser = KeyPauser(entryOfKey: { [manifest] key in manifest.entryName(forKey: key) })
    }

    var paths: [String: String] { prepared.withLock { $0.mapValues(\.path) } }

    /// An entry's batching settings (`debug`, `timeout`), read once with the manifest.
    func settings(forEntry name: String) -> BatcherConfig { config.config(forKey: name) }

    func pluginName(ofEntry name: String) -> String? { prepared.withLock { $0[name]?.plugin?.name } }

    /// "echo 1.0.0 (/path)", or the file alone for an isolated plugin (only its worker loads it).
    func description(of entry: Manifest.KeyEntry) -> String {
        guard let found = prepared.withLock({ $0[entry.name] }) else { return entry.plugin }
        guard let plugin = found.plugin else { return "\(found.path) in worker processes" }
        return "\(plugin.name) \(plugin.version) (\(plugin.path))"
    }

    /// Finds the entry's plugin file and, in-process, loads it (an isolated plugin is loaded only
    /// by its workers: the host never runs an untrusted plugin's code itself). Warns once about a
    /// file others can write.
    func prepare(_ entry: Manifest.KeyEntry) -> PluginLoadError? {
        let isolated = manifest.placement(forKey: entry.name).isolation == .process
        let result = control.runAndWait { [self] in
            Result { () throws(PluginLoadError) -> (String, LoadedPlugin?) in
                try loader.withLock { loader throws(PluginLoadError) in
                    let path = try loader.resolve(entry.plugin, forKey: entry.name)
                    return (path, isolated ? nil : try loader.load(entry.plugin, forKey: entry.name))
                }
            }
        }
        switch result {
        case .success(let (path, plugin)):
            for warning in PluginLoader.permissionWarnings(forFileAt: path) { logger.log(.warning, "plugin \"\(entry.plugin)\" (\(path)): \(warning)") }
            prepared.withLock { $0[entry.name] = (path, plugin) }
            return nil
        case .failure(let error):
            return error
        }
    }

    /// Makes `key`'s instance from `entry` when called: the key's own, or the `default` one for
    /// a key the manifest does not name (which then gets the default entry's settings).
    func maker(key: String, entry: Manifest.KeyEntry) -> InstanceCell.Make {
        { [self] done in
            guard manifest.placement(forKey: entry.name).isolation == .process else {
                control.submit { [self] in done(makeInProcess(key: key, entry: entry)) }
                return
            }
            // Within --max-processes: waits (holding no thread) for a place, never fails for one.
            let acquire = isProving.load(ordering: .sequentiallyConsistent) ? budget.acquireNow : budget.acquire
            acquire { [self] in
                // Started on the control thread: a worker gets its parent-death signal when the
                // *thread* that started it ends, and the control thread lives as long as the run.
                control.submit { [self] in
                    let result = makeIsolated(key: key, entry: entry)
                    if case .failure = result { budget.release() }
                    done(result)
                }
            }
        }
    }

    private func makeIsolated(key: String, entry: Manifest.KeyEntry) -> Result<any KeyInstance, PluginLoadError> {
        let settings = config.config(forKey: entry.name == Manifest.defaultKey ? key : entry.name)
        let placement = manifest.placement(forKey: entry.name)
        return Result { () throws(PluginLoadError) -> any KeyInstance in
            let path = try loader.withLock { loader throws(PluginLoadError) in try loader.resolve(entry.plugin, forKey: key) }
            return try IsolatedInstance(plugin: entry.plugin, path: path, key: key, config: entry.config, debug: settings.debug,
                                        manifestDirectory: manifest.directory, placement: placement, timeout: settings.timeout,
                                        pauser: pauser, entry: entry.name, logger: logger) { [budget] in budget.release() }
        }
    }

    private func makeInProcess(key: String, entry: Manifest.KeyEntry) -> Result<any KeyInstance, PluginLoadError> {
        let settings = config.config(forKey: entry.name == Manifest.defaultKey ? key : entry.name)
        let placement = manifest.placement(forKey: entry.name)
        return Result { () throws(PluginLoadError) -> any KeyInstance in
            let plugin = try loader.withLock { loader throws(PluginLoadError) in try loader.load(entry.plugin, forKey: key) }
            if settings.debug {
                logger.log(.debug, "key \"\(key)\": plugin \(plugin.name) \(plugin.version) loaded from a private copy of \(plugin.path) "
                           + "(\(plugin.loadedFrom)), so a rebuilt file is always fresh code")
            }
            return try plugin.createInstance(plugin: entry.plugin, key: key, config: entry.config, debug: settings.debug, logger: logger,
                                             maxResultBytes: placement.maxResultBytes, manifestDirectory: manifest.directory, pauser: pauser,
                                             entry: entry.name, timeout: settings.timeout)
        }
    }
}
