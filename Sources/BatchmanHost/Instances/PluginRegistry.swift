import Batchman
import Dispatch
import Synchronization

/// The plugins of a manifest and their instances. Loads every entry's plugin (or, for an
/// isolated entry, finds its file) at once, so a bad file fails the start; makes instances
/// only when a batch needs one (``EntryInstances``), retires idle per-key ones after their
/// `idleTimeout`, and keeps worker processes within the host's ``ProcessBudget``.
///
/// `proving` (for `check` and a reload) also makes one instance of every entry, to prove its
/// plugin can be created with its configuration, before anything runs.
final class PluginRegistry: Sendable {
    let manifest: Manifest
    private let control: WorkerPool
    private let logger: BatchmanLogger
    private let budget: ProcessBudget
    private let factory: InstanceFactory
    /// Where the plugins' `pause` goes: the generation connects its core.
    var pauser: KeyPauser { factory.pauser }
    /// In the manifest's order.
    private let entries: [EntryInstances]
    private let evictor: Mutex<UInt64?>
    /// Signalled to stop the thread that retires idle instances.
    private let stopReaper = DispatchSemaphore(value: 0)
    /// Crashes and restarts of isolated instances already retired, by key.
    private let retiredStatistics = Mutex<[String: IsolationStatistics]>([:])

    /// Loads everything the manifest names; throws every problem found, not only the first.
    init(
        manifest: Manifest, control: WorkerPool, workers: WorkerPool, logger: BatchmanLogger, budget: ProcessBudget, proving: Bool
    ) throws(HostError) {
        self.manifest = manifest
        self.control = control
        self.logger = logger
        self.budget = budget
        let factory = InstanceFactory(manifest: manifest, control: control, logger: logger, budget: budget)
        self.factory = factory
        var problems: [String] = []
        var prepared: Set<String> = []
        for entry in manifest.keys {
            if let error = factory.prepare(entry) {
                problems.append("\(manifest.path): \(ManifestReader.path("keys", entry.name)): \(error)")
            } else {
                prepared.insert(entry.name)
            }
        }
        // Each shared isolated entry keeps a worker for as long as it lives: more of them than
        // the bound would leave some keys waiting for ever.
        let pools = manifest.keys.count { manifest.placement(forKey: $0.name).instances == .shared && manifest.placement(forKey: $0.name).isolation == .process }
        if pools > budget.limit {
            problems.append("\(manifest.path): \(pools) shared isolated entries need a worker process each, "
                            + "more than --max-processes \(budget.limit) allows; raise --max-processes")
        }
        // Proving goes on past a plugin that would not load: every problem is reported at once.
        guard problems.isEmpty || proving else { throw HostError(.configuration, problems.joined(separator: "\n")) }
        // Idle per-key instances make room for a key that waits for a worker: nudged after each
        // batch while someone waits.
        let nudge = Mutex<Callback?>(nil)
        entries = manifest.keys.map { entry in
            EntryInstances(entry: entry, placement: manifest.placement(forKey: entry.name), workers: workers,
                           onEnded: { nudge.withLock { $0 }?.call() }) { key in factory.maker(key: key, entry: entry) }
        }
        evictor = Mutex(nil)
        if proving {
            factory.isProving.store(true, ordering: .sequentiallyConsistent)
            defer { factory.isProving.store(false, ordering: .sequentiallyConsistent) }
            for instances in entries where prepared.contains(instances.entry.name) {
                if let error = instances.prove() { problems.append("\(manifest.path): \(ManifestReader.path("keys", instances.entry.name)): \(error)") }
            }
            guard problems.isEmpty else {
                // Instances that were made are released: nothing leaks out of a failed start.
                destroyAll()
                throw HostError(.configuration, problems.joined(separator: "\n"))
            }
        }
        if entries.contains(where: { $0.placement.isolation == .process && $0.placement.instances == .perKey }) {
            evictor.withLock { $0 = budget.addEvictor { [weak self] in self?.retireOneIdleWorker() ?? false } }
            nudge.withLock { $0 = Callback { [weak self] in self?.budget.offerIdle() } }
        }
        startReaper()
    }

    // MARK: - What the host shows

    /// One line per entry: its plugin, version and file, and how its instances are laid out.
    /// Each entry's instance is there when proven (`check`).
    var summary: [String] {
        entries.map { instances in
            let alive = instances.instances
            let what = alive.first?.summary ?? factory.description(of: instances.entry)
            return "key \"\(instances.entry.name)\": \(what); \(Self.layout(of: instances)) "
                + "(instances=\(alive.count) processes=\(alive.count { $0 is IsolatedInstance }))"
        }
    }

    private static func layout(of instances: EntryInstances) -> String {
        let placement = instances.placement
        let idle = "retired after \(placement.idleTimeout) unused"
        switch (placement.instances, placement.isolation) {
        case (.perKey, .none):
            return instances.entry.name == Manifest.defaultKey ? "an instance per key, made on its first job, \(idle)"
                : "its own instance, made on its first job, \(idle)"
        case (.perKey, .process):
            return instances.entry.name == Manifest.defaultKey ? "a worker process per key, started on its first job, \(idle)"
                : "its own worker process, started on its first job, \(idle)"
        case (.shared, .none):
            let calls = instances.instances.first.map { ($0 as? PluginInstance)?.plugin.isConcurrent == true ? ", concurrent calls" : ", one call at a time" } ?? ""
            return "one instance shared by \(instances.entry.name == Manifest.defaultKey ? "every key" : "the key")\(calls)"
        case (.shared, .process):
            return "shared by every key in \(HostSession.count(placement.processes, "worker process", plural: "worker processes"))"
        }
    }

    /// How many instances and worker processes each entry has now, in the manifest's order.
    var counts: [StatsReporter.EntryCount] {
        entries.map { instances in
            let alive = instances.instances
            return StatsReporter.EntryCount(entry: instances.entry.name, instances: alive.count, processes: alive.count { $0 is IsolatedInstance })
        }
    }

    /// Each entry's plugin file, for `--watch` and the reload report.
    var pluginFiles: [String: String] { factory.paths }

    /// The name in the descriptor of `key`'s plugin, once it is known.
    func pluginName(forKey key: String) -> String? {
        // An isolated plugin's name comes from its worker, so from an instance that has one.
        entries.first { $0.entry.name == key }?.instances.first?.pluginName ?? factory.pluginName(ofEntry: key)
    }

    /// Crashes and worker restarts of every isolated key, retired instances included.
    var isolationStatistics: [String: IsolationStatistics] {
        var statistics = retiredStatistics.withLock { $0 }
        for instance in entries.flatMap(\.instances) {
            guard let counts = instance.isolationStatistics else { continue }
            statistics[instance.key, default: IsolationStatistics()].add(counts)
        }
        return statistics
    }

    // MARK: - Processors

    /// The core's processor factories: a named key gets its entry's instance, any other key the
    /// `default` entry's.
    var processorFactories: [String: Batchman<JobBytes, JobBytes, ContinuousClock>.ProcessorFactory] {
        var factories: [String: Batchman<JobBytes, JobBytes, ContinuousClock>.ProcessorFactory] = [:]
        for instances in entries {
            let processor = EntryProcessor(instances: instances)
            factories[instances.entry.name] = { key in
                instances.warm(key: key)
                return processor
            }
        }
        if factories[Manifest.defaultKey] == nil {
            let path = manifest.path
            factories[Manifest.defaultKey] = { key in
                throw HostError(.configuration, "key \"\(key)\" is not in \(path), which has no \"default\" key for other keys; add the key or a \"default\" entry")
            }
        }
        return factories
    }

    // MARK: - Retiring and releasing

    /// Destroys every instance (on the control thread) or shuts its worker down. Call after
    /// the last batch.
    /// - Returns: the instances still inside a call (a shutdown timed out), which are
    ///   released only when that call returns.
    @discardableResult
    func destroyAll() -> [any KeyInstance] {
        if let handle = evictor.withLock({ $0 }) { budget.removeEvictor(handle) }
        stopReaper.signal()
        var idle: [any KeyInstance] = [], busy: [any KeyInstance] = []
        for instance in entries.flatMap({ $0.close() }) {
            if instance.close(destroyingLaterOn: control) { idle.append(instance) } else { busy.append(instance) }
        }
        control.runAndWait { [idle] in for instance in idle { instance.destroyNow() } }
        return busy
    }

    /// Retires per-key instances past their `idleTimeout`, a few times per timeout.
    private func startReaper() {
        let perKey = entries.filter { $0.placement.instances == .perKey }
        guard let shortest = perKey.map(\.placement.idleTimeout).min() else { return }
        let tick = min(max(shortest / 4, .milliseconds(5)), .seconds(1))
        let nanoseconds = Int(tick.nanosecondsClamped)
        DedicatedThread.start(name: "batchman-reaper") { [weak self, stopReaper] in
            while stopReaper.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .timedOut {
                guard let registry = self else { return }
                let now = Syscall.monotonicNanoseconds()
                for instances in perKey {
                    let timeout = UInt64(max(0, instances.placement.idleTimeout.nanosecondsClamped))
                    guard now > timeout else { continue }
                    registry.release(instances.retireIdle(since: now - timeout), of: instances, why: "unused for \(instances.placement.idleTimeout)")
                }
            }
        }
    }

    /// Makes room under `--max-processes`: retires the isolated per-key worker idle longest.
    private func retireOneIdleWorker() -> Bool {
        let candidates = entries.filter { $0.placement.isolation == .process && $0.placement.instances == .perKey }
        for instances in candidates {
            if let instance = instances.retireLeastRecentlyUsed() {
                release([instance], of: instances, why: "its place is needed by another key's worker (--max-processes \(budget.limit))")
                return true
            }
        }
        return false
    }

    /// Releases retired instances on the control thread, never the caller's.
    private func release(_ retired: [any KeyInstance], of instances: EntryInstances, why: String) {
        guard !retired.isEmpty else { return }
        retiredStatistics.withLock { statistics in
            for instance in retired {
                if let counts = instance.isolationStatistics { statistics[instance.key, default: IsolationStatistics()].add(counts) }
            }
        }
        let debug = factory.settings(forEntry: instances.entry.name).debug
        for instance in retired {
            if debug { logger.log(.debug, "key \"\(instance.key)\": plugin \"\(instance.pluginName)\" instance retired: \(why)") }
            if instance.close(destroyingLaterOn: control) { control.submit { instance.destroyNow() } }
        }
    }
}
