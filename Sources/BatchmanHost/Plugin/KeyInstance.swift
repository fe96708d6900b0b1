import Batchman

/// What a plugin call's completion gets: one outcome per job, or the error that failed them all.
typealias BatchCompletion = @Sendable (Result<[JobOutcome<JobBytes>], any Error>) -> Void

/// One plugin instance as the registry holds it: in the host's process (``PluginInstance``)
/// or in a worker process (``IsolatedInstance``).
protocol KeyInstance: AnyObject, Sendable {
    /// The key it was made for (the entry's name for a shared instance).
    var key: String { get }
    var pluginName: String { get }
    /// The plugin's file (symbolic links resolved).
    var pluginPath: String { get }
    /// "EchoPlugin 1.0.0 (/path/libEchoPlugin.so)", and where it runs.
    var summary: String { get }
    /// Crashes and restarts, for an isolated instance.
    var isolationStatistics: IsolationStatistics? { get }
    /// Runs `batch` once the instance may take it (one call at a time unless the plugin is
    /// concurrent), on one of `workers` or its own thread, and hands the outcomes to `completion`.
    func run(_ batch: Batch<JobBytes>, on workers: WorkerPool, completion: @escaping BatchCompletion)
    /// Takes it out of service; true if idle, and then the caller calls ``destroyNow()`` on the
    /// control thread. False: it is released when its running call returns.
    func close(destroyingLaterOn control: WorkerPool) -> Bool
    func destroyNow()
    /// Ends a call still running when the instance is given up on (a reload's timeout): an
    /// isolated instance's worker is killed; an in-process call cannot be stopped (false).
    func terminate() -> Bool
}

extension PluginInstance: KeyInstance {
    var pluginName: String { plugin.name }
    var pluginPath: String { plugin.path }
    var summary: String { "\(plugin.name) \(plugin.version) (\(plugin.path))" }
    var isolationStatistics: IsolationStatistics? { nil }

    func terminate() -> Bool { false }

    func run(_ batch: Batch<JobBytes>, on workers: WorkerPool, completion: @escaping BatchCompletion) {
        schedule({ [self] in
            // Given up on while it waited (the shutdown timed out): never call the plugin.
            guard batch.beginCall() else { return { completion(.success([])) } }
            let outcomes = HostMetrics.shared.timeCall(of: batch) { process(batch) }
            return { completion(.success(outcomes)) }
        }, on: workers)
    }
}

extension IsolatedInstance: KeyInstance {
    var summary: String { "\(pluginName) \(pluginVersion) (\(pluginPath)) in a worker process" }
    var isolationStatistics: IsolationStatistics? { statistics }

    func terminate() -> Bool {
        terminate() as Void
        return true
    }

    func run(_ batch: Batch<JobBytes>, on workers: WorkerPool, completion: @escaping BatchCompletion) {
        schedule { [self] in
            // A worker is started (or restarted, after its backoff) before the call begins:
            // start-up time is not the plugin's, and does not count against its timeout.
            prepareWorker()
            // The core's timer is the call's only one: when it runs out, the worker is killed.
            guard batch.beginCall(onTimeout: { [self, id = batch.id] in timeOut(id) }) else { return { completion(.success([])) } }
            let outcomes = HostMetrics.shared.timeCall(of: batch) { process(batch) }
            return { completion(.success(outcomes)) }
        }
    }
}
